// Cosine similarity of the rows of A [m, c] and B [n, c], batched: out [batch, m, n].
// The core of ToMe's bipartite soft matching (Bolya et al. 2023, §3 "Bipartite Soft Matching")
// and of chunked KV-cache soft matching. Rows are L2-normalised in place, then a 2×4
// register-blocked f32x4 kernel computes the dot products (8 accumulators + 3 loads fit in
// the 16 vector registers of x86-64 and arm64, so nothing spills).
import { dotRow, hsum } from "./simd";

/**
 * Scales each of `rows` rows of length `cols` at `x` to unit L2 norm, in place.
 * The sum of squares is taken in f64 so that no finite f32 row overflows; a zero row stays zero
 * (its similarity to anything is then 0, not NaN).
 */
export function l2NormalizeRows(x: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = x + (<usize>r * <usize>cols << 2);
    let acc = f64x2.splat(0);
    let k = 0;
    for (; k + 4 <= cols; k += 4) {
      const v = v128.load(row + (<usize>k << 2));
      const lo = f64x2.promote_low_f32x4(v);
      const hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
      acc = f64x2.add(acc, f64x2.add(f64x2.mul(lo, lo), f64x2.mul(hi, hi)));
    }
    let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
    for (; k < cols; k++) {
      const v = <f64>load<f32>(row + (<usize>k << 2));
      s += v * v;
    }
    // Scale in f64: for rows near the f32 maximum, 1/||x|| is subnormal in f32 and would lose bits.
    const scale = s > 0 ? 1.0 / Math.sqrt(s) : 0.0;
    const vs = f64x2.splat(scale);
    k = 0;
    for (; k + 4 <= cols; k += 4) {
      const p = row + (<usize>k << 2);
      const v = v128.load(p);
      const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v), vs));
      const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), vs));
      v128.store(p, v128.shuffle<f32>(lo, hi, 0, 1, 4, 5));
    }
    for (; k < cols; k++) {
      const p = row + (<usize>k << 2);
      store<f32>(p, <f32>(<f64>load<f32>(p) * scale));
    }
  }
}

/** out[i, j] = a_i · b_j for already-normalised rows; one batch item. */
export function rowDots(a: usize, b: usize, out: usize, m: i32, n: i32, c: i32): void {
  const rowBytes = <usize>c << 2;
  const outRow = <usize>n << 2;
  const c4 = c & ~3;
  let i = 0;
  for (; i + 2 <= m; i += 2) {
    const a0 = a + <usize>i * rowBytes;
    const a1 = a0 + rowBytes;
    const o0 = out + <usize>i * outRow;
    const o1 = o0 + outRow;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const b0 = b + <usize>j * rowBytes;
      const b1 = b0 + rowBytes;
      const b2 = b1 + rowBytes;
      const b3 = b2 + rowBytes;
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
      let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
      for (let k = 0; k < c4; k += 4) {
        const o = <usize>k << 2;
        const x0 = v128.load(a0 + o);
        const x1 = v128.load(a1 + o);
        let y = v128.load(b0 + o);
        s00 = f32x4.add(s00, f32x4.mul(x0, y));
        s10 = f32x4.add(s10, f32x4.mul(x1, y));
        y = v128.load(b1 + o);
        s01 = f32x4.add(s01, f32x4.mul(x0, y));
        s11 = f32x4.add(s11, f32x4.mul(x1, y));
        y = v128.load(b2 + o);
        s02 = f32x4.add(s02, f32x4.mul(x0, y));
        s12 = f32x4.add(s12, f32x4.mul(x1, y));
        y = v128.load(b3 + o);
        s03 = f32x4.add(s03, f32x4.mul(x0, y));
        s13 = f32x4.add(s13, f32x4.mul(x1, y));
      }
      let r00 = hsum(s00), r01 = hsum(s01), r02 = hsum(s02), r03 = hsum(s03);
      let r10 = hsum(s10), r11 = hsum(s11), r12 = hsum(s12), r13 = hsum(s13);
      for (let k = c4; k < c; k++) {
        const o = <usize>k << 2;
        const x0 = load<f32>(a0 + o), x1 = load<f32>(a1 + o);
        const y0 = load<f32>(b0 + o), y1 = load<f32>(b1 + o);
        const y2 = load<f32>(b2 + o), y3 = load<f32>(b3 + o);
        r00 += x0 * y0; r01 += x0 * y1; r02 += x0 * y2; r03 += x0 * y3;
        r10 += x1 * y0; r11 += x1 * y1; r12 += x1 * y2; r13 += x1 * y3;
      }
      const p0 = o0 + (<usize>j << 2);
      const p1 = o1 + (<usize>j << 2);
      store<f32>(p0, r00); store<f32>(p0, r01, 4); store<f32>(p0, r02, 8); store<f32>(p0, r03, 12);
      store<f32>(p1, r10); store<f32>(p1, r11, 4); store<f32>(p1, r12, 8); store<f32>(p1, r13, 12);
    }
    for (; j < n; j++) {
      const bj = b + <usize>j * rowBytes;
      store<f32>(o0 + (<usize>j << 2), dotRow(a0, bj, c));
      store<f32>(o1 + (<usize>j << 2), dotRow(a1, bj, c));
    }
  }
  for (; i < m; i++) {
    const ai = a + <usize>i * rowBytes;
    const oi = out + <usize>i * outRow;
    for (let j = 0; j < n; j++) {
      store<f32>(oi + (<usize>j << 2), dotRow(ai, b + <usize>j * rowBytes, c));
    }
  }
}

/**
 * Batched cosine similarity. `a` [batch, m, c] and `b` [batch, n, c] are normalised in place
 * (the caller passes scratch copies); `out` receives [batch, m, n].
 */
export function cosineSimilarity(a: usize, b: usize, out: usize, batch: i32, m: i32, n: i32, c: i32): void {
  l2NormalizeRows(a, batch * m, c);
  l2NormalizeRows(b, batch * n, c);
  const aStride = <usize>m * <usize>c << 2;
  const bStride = <usize>n * <usize>c << 2;
  const oStride = <usize>m * <usize>n << 2;
  for (let t = 0; t < batch; t++) {
    rowDots(a + <usize>t * aStride, b + <usize>t * bStride, out + <usize>t * oStride, m, n, c);
  }
}
