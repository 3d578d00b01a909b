// The singular value decomposition, written for clarity: the oracle of the svd suite and the
// 'js' backend. Everything is computed in float64 (JS numbers) and rounded to float32 once, at
// the end, so this is the most accurate of the backends.
//
// Exact (what the numerical literature recommends for float32 data; Demmel & Veselić 1992,
// Drmač & Veselić 2008, "New fast and accurate Jacobi SVD algorithm"):
//   1. A tall matrix A [m, n] (m ≥ n; a wide one is transposed) is reduced by Householder QR,
//      A = Q·R, never forming AᵀA (which squares the condition number).
//   2. One-sided (Hestenes) Jacobi on X = Rᵀ: pairs of columns are rotated until all are
//      orthogonal, X·V = U_X·Σ. Columns of X are the rows of R, contiguous in memory. The pair
//      order is round-robin (Brent & Luk 1985): each round's pairs are disjoint, so a round
//      could run in parallel (GPU workgroups, threads) with the same result.
//   3. R = V·Σ·U_Xᵀ, so A = (Q·V)·Σ·U_Xᵀ: u = Q·V (the reflectors applied to V), vt = U_Xᵀ.
// Randomized (Halko, Martinsson & Tropp 2011, "Finding structure with randomness", Alg. 4.4
// and 5.1): a Gaussian test matrix Ω [n, l] (l = k + oversample) from our own seeded
// generator, Y = A·Ω, `powerIters` rounds of subspace iteration each re-orthonormalised by
// Householder QR, then the exact SVD of the small Bᵀ = Aᵀ·Q [n, l].
//
// Conventions, the same on every backend: singular values descending (equal ones keep their
// order of appearance); each column of u has its largest-magnitude entry positive (the first
// such entry on ties), its row of vt flipped with it; singular vectors of zero singular values
// complete u and vt to orthonormal sets.
import { seededStream } from './token-merging-variants.ts';

export interface SvdFactors {
  /** [batch, m, k] */
  u: Float32Array;
  /** [batch, k], descending per item */
  s: Float32Array;
  /** [batch, k, n] */
  vt: Float32Array;
}

export type SvdMethod = 'exact' | 'randomized' | 'auto';

export interface SvdOptions {
  /** How many singular triplets (default min(m, n)). */
  k?: number;
  method?: SvdMethod;
  /** Randomized: extra columns of the test matrix (default 10). */
  oversample?: number;
  /** Randomized: subspace (power) iterations (default 2). */
  powerIters?: number;
  /** Randomized: seed of the test matrix (default 0). */
  seed?: number;
}

/**
 * 'auto' chooses the randomized method when few triplets of a large matrix are asked for:
 * k + oversample ≤ min(m, n) / 4 and min(m, n) ≥ 128; otherwise exact. (Randomized costs
 * O(mn·l·(2q + 2)) against the exact O(mn²), and with q = 2 power iterations its error is close
 * to optimal on spectra that decay.)
 */
export function chooseMethod(m: number, n: number, k: number, oversample: number): 'exact' | 'randomized' {
  const small = Math.min(m, n);
  return small >= 128 && k + oversample <= small / 4 ? 'randomized' : 'exact';
}

/** Thin SVD of `batch` matrices a [batch, m, n], the top k triplets each (see the file comment). */
export function svd(a: Float32Array, batch: number, m: number, n: number, o: SvdOptions = {}): SvdFactors {
  const k = o.k ?? Math.min(m, n);
  const oversample = o.oversample ?? 10;
  const method = o.method === undefined || o.method === 'auto' ? chooseMethod(m, n, k, oversample) : o.method;
  const l = Math.min(k + oversample, m, n);
  const out = method === 'randomized' && l < Math.min(m, n)
    ? randomizedSvd(a, batch, m, n, k, l, o.powerIters ?? 2, gaussianTestMatrix(o.seed ?? 0, batch, n, l))
    : exactSvd(a, batch, m, n, k);
  fixSigns(out, batch, m, n, k);
  return out;
}

/** Exact SVD of any shape: wide items are transposed, decomposed tall, and transposed back. */
export function exactSvd(a: Float32Array, batch: number, m: number, n: number, k: number): SvdFactors {
  if (m >= n) return exactTall(a, batch, m, n, k);
  return swapSides(exactTall(transposeItems(a, batch, m, n), batch, n, m, k), batch, n, m, k);
}

/** Aᵀ = U·S·Vᵀ ⇒ A = V·S·Uᵀ: the factors of the transposed items [batch, n, m] → those of A [batch, m, n]. */
export function swapSides(f: SvdFactors, batch: number, tallRows: number, tallCols: number, k: number): SvdFactors {
  // f.u [batch, tallRows, k] → vt [batch, k, tallRows]; f.vt [batch, k, tallCols] → u [batch, tallCols, k].
  return { u: transposeItems(f.vt, batch, k, tallCols), s: f.s, vt: transposeItems(f.u, batch, tallRows, k) };
}

/** Each item of x [batch, rows, cols] transposed → [batch, cols, rows]. */
export function transposeItems(x: Float32Array, batch: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < batch; b++) {
    const o = b * rows * cols;
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[o + j * rows + i] = x[o + i * cols + j]!;
  }
  return out;
}

/**
 * The sign convention: per item and column j of u, the entry of largest magnitude (the first on
 * ties) is made positive, negating that column of u and row j of vt when it was negative.
 */
export function fixSigns(f: SvdFactors, batch: number, m: number, n: number, k: number): void {
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < k; j++) {
      let best = 0, at = 0;
      for (let i = 0; i < m; i++) {
        const v = Math.abs(f.u[(b * m + i) * k + j]!);
        if (v > best) { best = v; at = i; }
      }
      if (f.u[(b * m + at) * k + j]! >= 0) continue;
      for (let i = 0; i < m; i++) f.u[(b * m + i) * k + j] = -f.u[(b * m + i) * k + j]!;
      for (let i = 0; i < n; i++) f.vt[(b * k + j) * n + i] = -f.vt[(b * k + j) * n + i]!;
    }
  }
}

/** Exact thin SVD of tall items (m ≥ n), top k; signs not yet fixed. */
export function exactTall(a: Float32Array, batch: number, m: number, n: number, k: number): SvdFactors {
  const u = new Float32Array(batch * m * k), s = new Float32Array(batch * k), vt = new Float32Array(batch * k * n);
  for (let b = 0; b < batch; b++) {
    const item = Float64Array.from(a.subarray(b * m * n, (b + 1) * m * n));
    const f = exactTallItem(item, m, n, k);
    u.set(f.u, b * m * k);
    s.set(f.s, b * k);
    vt.set(f.vt, b * k * n);
  }
  return { u, s, vt };
}

/** One tall matrix (float64, overwritten): Householder QR, Jacobi on Rᵀ, u = Q·V. */
function exactTallItem(a: Float64Array, m: number, n: number, k: number): { u: Float64Array; s: Float64Array; vt: Float64Array } {
  const tau = householderQR(a, m, n);
  const { rows, v } = sortedRows((i, j) => (j >= i ? a[i * n + j]! : 0), n);
  jacobiSweeps(rows, v, n);
  const f = finishCore(rows, v, n, k);
  // u = Q·[V(:, :k); 0]: the reflectors applied, last first.
  const u = new Float64Array(m * k);
  u.set(f.vColumns);
  applyQ(a, tau, m, n, u, k);
  return { u, s: f.sigma, vt: f.vt };
}

/**
 * The start of the Jacobi core: the rows of R (x = Rᵀ's columns, given by entry(i, j)) in
 * decreasing order of norm (fewer sweeps), and v the matching permutation (rows = columns of V).
 */
export function sortedRows(entry: (i: number, j: number) => number, n: number): { rows: Float64Array; v: Float64Array } {
  const rows = new Float64Array(n * n), v = new Float64Array(n * n);
  const norms = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) norms[i] = norms[i]! + entry(i, j) ** 2;
  descending(norms).forEach((src, dst) => {
    for (let j = 0; j < n; j++) rows[dst * n + j] = entry(src, j);
    v[dst * n + src] = 1;
  });
  return { rows, v };
}

/**
 * The end of the Jacobi core, from its orthogonal rows and accumulated rotations: σ (the row
 * norms) descending, vt [k, n] (the rows normalised; completed to an orthonormal set where σ
 * vanishes) and vColumns [n, k] (the columns of V: R's left singular vectors).
 */
export function finishCore(rows: Float64Array, v: Float64Array, n: number, k: number): { sigma: Float64Array; vt: Float64Array; vColumns: Float64Array } {
  // Rotations whose c² + s² is 1 only to float32 rounding (the GPU's) scale each pair of rows of
  // x and v alike: x = D·O·R with D the rows' drift, so σ_j = ‖x_j‖/‖v_j‖ and V's columns are
  // v_j/‖v_j‖. In exact arithmetic ‖v_j‖ = 1.
  const drift = Array.from({ length: n }, (_, i) => Math.sqrt(rowDot(v, i, i, n)));
  const norms = Array.from({ length: n }, (_, i) => Math.sqrt(rowDot(rows, i, i, n)));
  const order = descending(norms.map((x, i) => x / drift[i]!));
  const sigma = Float64Array.from(order, (i) => norms[i]! / drift[i]!);
  const unit = new Float64Array(n * n);
  const done: number[] = [];
  order.forEach((src, dst) => {
    // Zero (or negligible, below 1e-30·σ₁) singular values: their vectors come from completeRows.
    if (!(sigma[dst]! > 0 && sigma[dst]! > sigma[0]! * 1e-30)) return;
    for (let c = 0; c < n; c++) unit[dst * n + c] = rows[src * n + c]! / norms[src]!;
    done.push(dst);
  });
  completeRows(unit, n, done);
  const vColumns = new Float64Array(n * k);
  for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) vColumns[i * k + j] = v[order[j]! * n + i]! / drift[order[j]!]!;
  return { sigma: sigma.subarray(0, k), vt: unit.subarray(0, k * n), vColumns };
}

/**
 * Householder QR in place (LAPACK's dgeqr2): on return R is on and above the diagonal of a
 * [m, n] and reflector j's vector below it (its leading 1 implicit); returns the τ's.
 * H_j = I − τ_j·v_j·v_jᵀ, Q = H_0·H_1·…·H_{n−1}.
 */
export function householderQR(a: Float64Array, m: number, n: number): Float64Array {
  const tau = new Float64Array(n);
  const w = new Float64Array(n);
  for (let j = 0; j < n && j < m; j++) {
    let tail = 0;
    for (let i = j + 1; i < m; i++) tail += a[i * n + j]! ** 2;
    const alpha = a[j * n + j]!;
    if (tail === 0) continue; // already upper triangular in this column: H_j = I
    const beta = -(alpha >= 0 ? 1 : -1) * Math.sqrt(alpha * alpha + tail);
    tau[j] = (beta - alpha) / beta;
    const scale = 1 / (alpha - beta);
    for (let i = j + 1; i < m; i++) a[i * n + j] = a[i * n + j]! * scale;
    a[j * n + j] = beta;
    // The trailing columns: A ← A − τ·v·(vᵀA), row by row (the contiguous dimension).
    w.fill(0, j + 1);
    for (let c = j + 1; c < n; c++) w[c] = a[j * n + c]!;
    for (let i = j + 1; i < m; i++) {
      const v = a[i * n + j]!;
      for (let c = j + 1; c < n; c++) w[c] = w[c]! + v * a[i * n + c]!;
    }
    for (let c = j + 1; c < n; c++) a[j * n + c] = a[j * n + c]! - tau[j]! * w[c]!;
    for (let i = j + 1; i < m; i++) {
      const tv = tau[j]! * a[i * n + j]!;
      for (let c = j + 1; c < n; c++) a[i * n + c] = a[i * n + c]! - tv * w[c]!;
    }
  }
  return tau;
}

/** x [m, cols] (its first n rows set, the rest zero) ← Q·x, Q from householderQR's a and τ. */
export function applyQ(qr: Float64Array, tau: Float64Array, m: number, n: number, x: Float64Array, cols: number): void {
  const w = new Float64Array(cols);
  for (let j = Math.min(n, m) - 1; j >= 0; j--) {
    if (tau[j] === 0) continue;
    for (let c = 0; c < cols; c++) w[c] = x[j * cols + c]!;
    for (let i = j + 1; i < m; i++) {
      const v = qr[i * n + j]!;
      for (let c = 0; c < cols; c++) w[c] = w[c]! + v * x[i * cols + c]!;
    }
    for (let c = 0; c < cols; c++) x[j * cols + c] = x[j * cols + c]! - tau[j]! * w[c]!;
    for (let i = j + 1; i < m; i++) {
      const tv = tau[j]! * qr[i * n + j]!;
      for (let c = 0; c < cols; c++) x[i * cols + c] = x[i * cols + c]! - tv * w[c]!;
    }
  }
}

/** The pairs of round r of a round-robin tournament over `players` (even): the circle method. */
export function roundRobinPairs(players: number, r: number): Array<[number, number]> {
  const last = players - 1;
  const pairs: Array<[number, number]> = [[r % last, last]];
  for (let i = 1; i < players / 2; i++) pairs.push([(r + i) % last, (r - i + last) % last]);
  return pairs;
}

/** Sweeps stop when no pair rotated, or after this many (a safeguard; convergence is quadratic). */
export const MAX_SWEEPS = 60;

/**
 * One-sided Jacobi on the rows of x [n, n] (in place): rotates pairs of rows, in round-robin
 * order, until every pair is orthogonal to |x_p·x_q| ≤ tol·‖x_p‖‖x_q‖ (or MAX_SWEEPS); the same
 * rotations accumulate in the rows of v. Returns the number of sweeps.
 */
export function jacobiSweeps(x: Float64Array, v: Float64Array, n: number, tol = Math.sqrt(n) * Number.EPSILON): number {
  const players = n + (n % 2);
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = 0;
    for (let r = 0; r < players - 1; r++) {
      for (const [i, j] of roundRobinPairs(players, r)) {
        if (i >= n || j >= n) continue;
        const [p, q] = i < j ? [i, j] : [j, i];
        const alpha = rowDot(x, p, p, n), beta = rowDot(x, q, q, n), gamma = rowDot(x, p, q, n);
        if (!(Math.abs(gamma) > tol * Math.sqrt(alpha * beta))) continue;
        // The rotation that makes rows p and q orthogonal (Rutishauser's stable formulas).
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        rotate(x, p, q, n, c, s);
        rotate(v, p, q, n, c, s);
        rotated++;
      }
    }
    if (rotated === 0) return sweep + 1;
  }
  return MAX_SWEEPS;
}

/** Indices by decreasing value, ties in index order. */
function descending(values: number[]): number[] {
  return values.map((_, i) => i).sort((i, j) => values[j]! - values[i]! || i - j);
}

function rowDot(x: Float64Array, p: number, q: number, n: number): number {
  let sum = 0;
  for (let c = 0; c < n; c++) sum += x[p * n + c]! * x[q * n + c]!;
  return sum;
}

/** Rows p, q ← c·x_p − s·x_q, s·x_p + c·x_q. */
function rotate(x: Float64Array, p: number, q: number, n: number, c: number, s: number): void {
  for (let col = 0; col < n; col++) {
    const xp = x[p * n + col]!, xq = x[q * n + col]!;
    x[p * n + col] = c * xp - s * xq;
    x[q * n + col] = s * xp + c * xq;
  }
}

/**
 * Rows not in `done` (those of zero singular values) replaced by unit vectors orthogonal to every
 * other row: for each, the standard basis vector that keeps most of its length after projecting
 * out the rows so far (twice: classical Gram–Schmidt with reorthogonalisation).
 */
export function completeRows(x: Float64Array, n: number, done: number[]): void {
  const basis = [...done];
  for (let j = 0; j < n; j++) {
    if (done.includes(j)) continue;
    let best: Float64Array | undefined, bestNorm = -1;
    for (let e = 0; e < n; e++) {
      const y = new Float64Array(n);
      y[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (const b of basis) {
          let d = 0;
          for (let c = 0; c < n; c++) d += x[b * n + c]! * y[c]!;
          for (let c = 0; c < n; c++) y[c] = y[c]! - d * x[b * n + c]!;
        }
      }
      const norm = Math.hypot(...y);
      if (norm > bestNorm + 1e-12) { best = y; bestNorm = norm; }
      if (norm > 0.7) break; // good enough: well away from the span
    }
    for (let c = 0; c < n; c++) x[j * n + c] = best![c]! / bestNorm;
    basis.push(j);
  }
}

/**
 * The test matrices Ω [batch, n, l]: standard normal values by Box–Muller from seededStream(seed,
 * item), rounded to float32, so every backend and runtime uses the same Ω for the same seed.
 */
export function gaussianTestMatrix(seed: number, batch: number, n: number, l: number): Float32Array {
  const out = new Float32Array(batch * n * l);
  for (let b = 0; b < batch; b++) {
    const next = seededStream(seed, b);
    for (let i = 0; i < n * l; i += 2) {
      const u1 = (next() + 1) / 4294967296, u2 = next() / 4294967296; // u1 in (0, 1]
      const radius = Math.sqrt(-2 * Math.log(u1));
      out[b * n * l + i] = radius * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n * l) out[b * n * l + i + 1] = radius * Math.sin(2 * Math.PI * u2);
    }
  }
  return out;
}

/**
 * Randomized SVD of any shape (HMT Alg. 4.4 then 5.1): Q = orth(A·Ω), q times Q = orth(A·orth(AᵀQ)),
 * then Bᵀ = Aᵀ·Q [n, l] = U_B·S·V_Bᵀ exactly, so A ≈ (Q·V_B)·S·U_Bᵀ; the top k kept. Signs not yet fixed.
 */
export function randomizedSvd(a: Float32Array, batch: number, m: number, n: number, k: number, l: number, powerIters: number, omega: Float32Array): SvdFactors {
  const u = new Float32Array(batch * m * k), s = new Float32Array(batch * k), vt = new Float32Array(batch * k * n);
  for (let b = 0; b < batch; b++) {
    const item = Float64Array.from(a.subarray(b * m * n, (b + 1) * m * n));
    let q = orthonormalBasis(multiply(item, Float64Array.from(omega.subarray(b * n * l, (b + 1) * n * l)), m, n, l, false), m, l);
    for (let it = 0; it < powerIters; it++) {
      const z = orthonormalBasis(multiply(item, q, m, n, l, true), n, l);
      q = orthonormalBasis(multiply(item, z, m, n, l, false), m, l);
    }
    const bt = multiply(item, q, m, n, l, true); // [n, l], n ≥ l
    const f = exactTallItem(bt, n, l, k);
    // u = Q·V_B: Q [m, l] times V_B [l, k] (V_B's columns are f.vt's rows).
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < k; j++) {
        let sum = 0;
        for (let c = 0; c < l; c++) sum += q[i * l + c]! * f.vt[j * l + c]!;
        u[(b * m + i) * k + j] = sum;
      }
    }
    s.set(f.s, b * k);
    // vt = U_Bᵀ: f.u is [n, k].
    for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) vt[(b * k + j) * n + i] = f.u[i * k + j]!;
  }
  return { u, s, vt };
}

/** A·x (a [m, n], x [n, l] → [m, l]) or, with `transposeA`, Aᵀ·x (x [m, l] → [n, l]). */
function multiply(a: Float64Array, x: Float64Array, m: number, n: number, l: number, transposeA: boolean): Float64Array {
  const out = new Float64Array((transposeA ? n : m) * l);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const aij = a[i * n + j]!;
      const [dst, src] = transposeA ? [j, i] : [i, j];
      for (let c = 0; c < l; c++) out[dst * l + c] = out[dst * l + c]! + aij * x[src * l + c]!;
    }
  }
  return out;
}

/** The explicit thin Q [rows, cols] of y's Householder QR (y is overwritten). */
function orthonormalBasis(y: Float64Array, rows: number, cols: number): Float64Array {
  const tau = householderQR(y, rows, cols);
  const q = new Float64Array(rows * cols);
  for (let i = 0; i < cols; i++) q[i * cols + i] = 1;
  applyQ(y, tau, rows, cols, q, cols);
  return q;
}
