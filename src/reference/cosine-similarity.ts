// Plain TypeScript reference for cosine similarity: written for clarity, used as the `js`
// backend and as the oracle every other backend is tested against.
// Norms and dot products are accumulated in float64 and rounded once to float32.

/** Cosine similarity of every row of `a` [batch, m, c] with every row of `b` [batch, n, c] → [batch, m, n]. A zero row gives 0. */
export function cosineSimilarity(
  a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number,
): Float32Array {
  const out = new Float32Array(batch * m * n);
  const normA = rowNorms(a, batch * m, c);
  const normB = rowNorms(b, batch * n, c);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < m; i++) {
      const ai = (t * m + i) * c;
      for (let j = 0; j < n; j++) {
        const bj = (t * n + j) * c;
        let dot = 0;
        for (let k = 0; k < c; k++) dot += a[ai + k]! * b[bj + k]!;
        const denom = normA[t * m + i]! * normB[t * n + j]!;
        out[(t * m + i) * n + j] = denom > 0 ? dot / denom : 0;
      }
    }
  }
  return out;
}

/** Euclidean norm of each of `rows` rows of length `c`, in float64. */
export function rowNorms(x: Float32Array, rows: number, c: number): Float64Array {
  const norms = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += x[r * c + k]! ** 2;
    norms[r] = Math.sqrt(s);
  }
  return norms;
}
