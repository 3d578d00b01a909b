// The SVD's kernels (see src/reference/svd.ts for the method): Householder QR and the
// application of Q in float32 (f32x4 over the contiguous row), the products of the randomized
// range finder in float32, and the one-sided Jacobi sweeps on the small core in float64
// (f64x2): plain float32 Jacobi stalls near 1e-5, the float64 core holds the float32 bound.

// y[0..len) += alpha·x[0..len), f32x4 (rows need not be 16-byte aligned).
// @ts-ignore: decorator
@inline function axpy(y: usize, x: usize, alpha: f32, len: i32): void {
  const va = f32x4.splat(alpha);
  let c = 0;
  for (; c + 8 <= len; c += 8) {
    const o = <usize>c << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(va, v128.load(x + o))));
    v128.store(y + o, f32x4.add(v128.load(y + o, 16), f32x4.mul(va, v128.load(x + o, 16))), 16);
  }
  for (; c + 4 <= len; c += 4) {
    const o = <usize>c << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(va, v128.load(x + o))));
  }
  for (; c < len; c++) {
    const o = <usize>c << 2;
    store<f32>(y + o, load<f32>(y + o) + alpha * load<f32>(x + o));
  }
}

// y[0..len) (float64) += alpha·x[0..len) (float32 widened), f64x2.
// @ts-ignore: decorator
@inline function axpyWiden(y: usize, x: usize, alpha: f64, len: i32): void {
  const va = f64x2.splat(alpha);
  let c = 0;
  for (; c + 4 <= len; c += 4) {
    const xs = v128.load(x + (<usize>c << 2));
    const o = <usize>c << 3;
    v128.store(y + o, f64x2.add(v128.load(y + o), f64x2.mul(va, f64x2.promote_low_f32x4(xs))));
    v128.store(y + o, f64x2.add(v128.load(y + o, 16), f64x2.mul(va, f64x2.promote_low_f32x4(i32x4.shuffle(xs, xs, 2, 3, 0, 1)))), 16);
  }
  for (; c < len; c++) {
    const o = <usize>c << 3;
    store<f64>(y + o, load<f64>(y + o) + alpha * <f64>load<f32>(x + (<usize>c << 2)));
  }
}

/**
 * Householder QR in place (LAPACK's sgeqr2 layout): R on and above the diagonal of a [m, n],
 * reflector j's vector below it (leading 1 implicit), τ_j at tau (f64). w: 3n floats of scratch.
 * The column norms are summed in float64, and τ_j = 2/‖v_j‖² from the stored float32 v_j, so
 * that each H_j = I − τ_j·v_j·v_jᵀ is orthogonal to float64 precision (τ from the unrounded v
 * leaves an error of ~ε₃₂ per reflector, which adds up to 1e-6 in UᵀU over a few dozen).
 */
export function householderQR(a: usize, m: i32, n: i32, tau: usize, w: usize): void {
  const stride = <usize>n << 2;
  const steps = min(m, n);
  for (let j = 0; j < steps; j++) {
    const col = a + (<usize>j << 2);
    let tail: f64 = 0;
    for (let i = j + 1; i < m; i++) {
      const x = <f64>load<f32>(col + <usize>i * stride);
      tail += x * x;
    }
    const alpha = <f64>load<f32>(col + <usize>j * stride);
    if (tail == 0) { store<f64>(tau + (<usize>j << 3), 0); continue; }
    const norm = Math.sqrt(alpha * alpha + tail);
    const beta = alpha >= 0 ? -norm : norm;
    const scale = 1 / (alpha - beta);
    let vv: f64 = 1;
    for (let i = j + 1; i < m; i++) {
      const p = col + <usize>i * stride;
      const vi = <f32>(<f64>load<f32>(p) * scale);
      store<f32>(p, vi);
      vv += <f64>vi * <f64>vi;
    }
    const tau64 = 2 / vv;
    store<f64>(tau + (<usize>j << 3), tau64);
    const t = <f32>tau64;
    store<f32>(col + <usize>j * stride, <f32>beta);
    const len = n - j - 1;
    if (len == 0) continue;
    // w = vᵀ·A[j:, j+1:] (v_j = 1), summed over the m − j rows in float64 (a float32 running sum
    // over thousands of rows costs ~√m·ε in R), then A ← A − τ·v·wᵀ, row by row.
    const first = (<usize>(j + 1)) << 2;
    const w32 = w + (<usize>len << 3);
    for (let c = 0; c < len; c++) store<f64>(w + (<usize>c << 3), <f64>load<f32>(a + <usize>j * stride + first + (<usize>c << 2)));
    for (let i = j + 1; i < m; i++) axpyWiden(w, a + <usize>i * stride + first, <f64>load<f32>(col + <usize>i * stride), len);
    for (let c = 0; c < len; c++) store<f32>(w32 + (<usize>c << 2), <f32>load<f64>(w + (<usize>c << 3)));
    axpy(a + <usize>j * stride + first, w32, -t, len);
    for (let i = j + 1; i < m; i++) axpy(a + <usize>i * stride + first, w32, -t * load<f32>(col + <usize>i * stride), len);
  }
}

// y[0..len) += alpha·x[0..len) in float64 (f64x2).
// @ts-ignore: decorator
@inline function axpy64(y: usize, x: usize, alpha: f64, len: i32): void {
  const va = f64x2.splat(alpha);
  let c = 0;
  for (; c + 2 <= len; c += 2) {
    const o = <usize>c << 3;
    v128.store(y + o, f64x2.add(v128.load(y + o), f64x2.mul(va, v128.load(x + o))));
  }
  if (c < len) {
    const o = <usize>c << 3;
    store<f64>(y + o, load<f64>(y + o) + alpha * load<f64>(x + o));
  }
}

/**
 * x [m, cols] (float64) ← Q·x, Q = H_0·…·H_{n−1} from householderQR's a [m, n] and tau; w: cols
 * doubles. In float64, so that the float32 u it becomes is orthonormal to float32's rounding.
 */
export function applyQ(a: usize, tau: usize, m: i32, n: i32, x: usize, cols: i32, w: usize): void {
  const stride = <usize>n << 2, xs = <usize>cols << 3;
  for (let j = min(m, n) - 1; j >= 0; j--) {
    const t = load<f64>(tau + (<usize>j << 3));
    if (t == 0) continue;
    const col = a + (<usize>j << 2);
    memory.copy(w, x + <usize>j * xs, xs);
    for (let i = j + 1; i < m; i++) axpy64(w, x + <usize>i * xs, <f64>load<f32>(col + <usize>i * stride), cols);
    axpy64(x + <usize>j * xs, w, -t, cols);
    for (let i = j + 1; i < m; i++) axpy64(x + <usize>i * xs, w, -t * <f64>load<f32>(col + <usize>i * stride), cols);
  }
}

/**
 * out [rows, l] = op(A)·X with A [m, n] and X [inner, l]: op(A) = A (rows = m, inner = n) or,
 * transposeA, Aᵀ (rows = n, inner = m). A register-blocked micro-kernel: 4 rows of out × 8
 * columns (8 f32x4 accumulators) over the inner dimension, each X row chunk loaded once per 4
 * rows; op(A)'s element (r, t) is at r·rs + t·ts, so both orientations share the loop.
 */
export function multiply(a: usize, x: usize, out: usize, m: i32, n: i32, l: i32, transposeA: i32): void {
  const rows = transposeA ? n : m, inner = transposeA ? m : n;
  const rs: usize = transposeA ? 4 : <usize>n << 2, ts: usize = transposeA ? <usize>n << 2 : 4;
  const ls = <usize>l << 2;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const base = a + <usize>r * rs, o = out + <usize>r * ls;
    let c = 0;
    for (; c + 8 <= l; c += 8) {
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s10 = f32x4.splat(0), s11 = f32x4.splat(0);
      let s20 = f32x4.splat(0), s21 = f32x4.splat(0), s30 = f32x4.splat(0), s31 = f32x4.splat(0);
      for (let t = 0; t < inner; t++) {
        const xp = x + <usize>t * ls + (<usize>c << 2);
        const x0 = v128.load(xp), x1 = v128.load(xp, 16);
        const e = base + <usize>t * ts;
        const a0 = f32x4.splat(load<f32>(e)), a1 = f32x4.splat(load<f32>(e + rs));
        const a2 = f32x4.splat(load<f32>(e + 2 * rs)), a3 = f32x4.splat(load<f32>(e + 3 * rs));
        s00 = f32x4.add(s00, f32x4.mul(a0, x0)); s01 = f32x4.add(s01, f32x4.mul(a0, x1));
        s10 = f32x4.add(s10, f32x4.mul(a1, x0)); s11 = f32x4.add(s11, f32x4.mul(a1, x1));
        s20 = f32x4.add(s20, f32x4.mul(a2, x0)); s21 = f32x4.add(s21, f32x4.mul(a2, x1));
        s30 = f32x4.add(s30, f32x4.mul(a3, x0)); s31 = f32x4.add(s31, f32x4.mul(a3, x1));
      }
      const oc = o + (<usize>c << 2);
      v128.store(oc, s00); v128.store(oc, s01, 16);
      v128.store(oc + ls, s10); v128.store(oc + ls, s11, 16);
      v128.store(oc + 2 * ls, s20); v128.store(oc + 2 * ls, s21, 16);
      v128.store(oc + 3 * ls, s30); v128.store(oc + 3 * ls, s31, 16);
    }
    for (; c < l; c++) {
      for (let rr = 0; rr < 4; rr++) {
        let sum: f32 = 0;
        const e = base + <usize>rr * rs;
        for (let t = 0; t < inner; t++) sum += load<f32>(e + <usize>t * ts) * load<f32>(x + <usize>t * ls + (<usize>c << 2));
        store<f32>(o + <usize>rr * ls + (<usize>c << 2), sum);
      }
    }
  }
  for (; r < rows; r++) {
    const o = out + <usize>r * ls;
    memory.fill(o, 0, ls);
    for (let t = 0; t < inner; t++) axpy(o, x + <usize>t * ls, load<f32>(a + <usize>r * rs + <usize>t * ts), l);
  }
}

/** dst [cols, rows] = srcᵀ (src [rows, cols]), in 16 × 16 tiles so both sides stay in cache. */
export function transpose(src: usize, dst: usize, rows: i32, cols: i32): void {
  for (let i0 = 0; i0 < rows; i0 += 16) {
    for (let j0 = 0; j0 < cols; j0 += 16) {
      const iEnd = min(i0 + 16, rows), jEnd = min(j0 + 16, cols);
      for (let i = i0; i < iEnd; i++) {
        for (let j = j0; j < jEnd; j++) store<f32>(dst + ((<usize>j * rows + i) << 2), load<f32>(src + ((<usize>i * cols + j) << 2)));
      }
    }
  }
}

// Rows p, q of n doubles ← c·x_p − s·x_q, s·x_p + c·x_q.
// @ts-ignore: decorator
@inline function rotateRows(p: usize, q: usize, n: i32, cs: f64, sn: f64): void {
  const vc = f64x2.splat(cs), vs = f64x2.splat(sn);
  let c = 0;
  for (; c + 2 <= n; c += 2) {
    const o = <usize>c << 3;
    const vp = v128.load(p + o), vq = v128.load(q + o);
    v128.store(p + o, f64x2.sub(f64x2.mul(vc, vp), f64x2.mul(vs, vq)));
    v128.store(q + o, f64x2.add(f64x2.mul(vs, vp), f64x2.mul(vc, vq)));
  }
  if (c < n) {
    const o = <usize>c << 3;
    const xp = load<f64>(p + o), xq = load<f64>(q + o);
    store<f64>(p + o, cs * xp - sn * xq);
    store<f64>(q + o, sn * xp + cs * xq);
  }
}

// x_p·x_q over n doubles (f64x2, two accumulators).
// @ts-ignore: decorator
@inline function rowDot(p: usize, q: usize, n: i32): f64 {
  let acc0 = f64x2.splat(0), acc1 = f64x2.splat(0);
  let c = 0;
  for (; c + 4 <= n; c += 4) {
    const o = <usize>c << 3;
    acc0 = f64x2.add(acc0, f64x2.mul(v128.load(p + o), v128.load(q + o)));
    acc1 = f64x2.add(acc1, f64x2.mul(v128.load(p + o, 16), v128.load(q + o, 16)));
  }
  const acc = f64x2.add(acc0, acc1);
  let sum = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (; c < n; c++) {
    const o = <usize>c << 3;
    sum += load<f64>(p + o) * load<f64>(q + o);
  }
  return sum;
}

/** Rows per block of the blocked cyclic order: a pair of blocks of x and v (4·16 rows) stays in cache. */
const BLOCK = 16;

/**
 * One-sided Jacobi on the rows of x [n, n] (float64), the rotations accumulated in the rows of
 * v [n, n], until no pair has |x_p·x_q| > tol·‖x_p‖‖x_q‖ or maxSweeps; returns the sweeps run.
 * One thread, so the order is blocked row-cyclic (every pair once per sweep, like the
 * reference's round-robin, but a pair of 16-row blocks at a time so the rows stay in cache: the
 * round-robin order streams all of x and v through memory every round). The squared norms are
 * kept in norms (n doubles) and updated by each rotation (α − tγ, β + tγ: one dot product per
 * pair instead of three), recomputed exactly at each sweep's start.
 */
export function jacobiSweeps(x: usize, v: usize, n: i32, tol: f64, maxSweeps: i32, norms: usize): i32 {
  const rs = <usize>n << 3;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    for (let i = 0; i < n; i++) store<f64>(norms + (<usize>i << 3), rowDot(x + <usize>i * rs, x + <usize>i * rs, n));
    let rotated = 0;
    for (let i0 = 0; i0 < n; i0 += BLOCK) {
      for (let j0 = i0; j0 < n; j0 += BLOCK) {
        const iEnd = min(i0 + BLOCK, n), jEnd = min(j0 + BLOCK, n);
        for (let i = i0; i < iEnd; i++) {
          for (let j = max(j0, i + 1); j < jEnd; j++) {
            const p = x + <usize>i * rs, q = x + <usize>j * rs;
            const alpha = load<f64>(norms + (<usize>i << 3)), beta = load<f64>(norms + (<usize>j << 3));
            const gamma = rowDot(p, q, n);
            if (!(Math.abs(gamma) > tol * Math.sqrt(alpha * beta))) continue;
            const zeta = (beta - alpha) / (2 * gamma);
            const tt = (zeta >= 0 ? 1.0 : -1.0) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
            const cs = 1 / Math.sqrt(1 + tt * tt), sn = cs * tt;
            rotateRows(p, q, n, cs, sn);
            rotateRows(v + <usize>i * rs, v + <usize>j * rs, n, cs, sn);
            store<f64>(norms + (<usize>i << 3), max(0, alpha - tt * gamma));
            store<f64>(norms + (<usize>j << 3), beta + tt * gamma);
            rotated++;
          }
        }
      }
    }
    if (rotated == 0) return sweep + 1;
  }
  return maxSweeps;
}
