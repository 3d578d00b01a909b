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

/**
 * Householder QR in place (LAPACK's sgeqr2 layout): R on and above the diagonal of a [m, n],
 * reflector j's vector below it (leading 1 implicit), τ_j at tau (f64). w: n floats of scratch.
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
    // w = vᵀ·A[j:, j+1:] (v_j = 1), then A ← A − τ·v·wᵀ, row by row.
    const first = (<usize>(j + 1)) << 2;
    memory.copy(w, a + <usize>j * stride + first, <usize>len << 2);
    for (let i = j + 1; i < m; i++) axpy(w, a + <usize>i * stride + first, load<f32>(col + <usize>i * stride), len);
    axpy(a + <usize>j * stride + first, w, -t, len);
    for (let i = j + 1; i < m; i++) axpy(a + <usize>i * stride + first, w, -t * load<f32>(col + <usize>i * stride), len);
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
 * out [m, l] = A·X (a [m, n], x [n, l]) or, transposeA, out [n, l] = Aᵀ·X (x [m, l]). Row by
 * row of A: each a_ij scales a contiguous row of X into a row of out (f32x4).
 */
export function multiply(a: usize, x: usize, out: usize, m: i32, n: i32, l: i32, transposeA: i32): void {
  const ls = <usize>l << 2, ns = <usize>n << 2;
  memory.fill(out, 0, <usize>(transposeA ? n : m) * ls);
  for (let i = 0; i < m; i++) {
    const row = a + <usize>i * ns;
    for (let j = 0; j < n; j++) {
      const aij = load<f32>(row + (<usize>j << 2));
      if (transposeA) axpy(out + <usize>j * ls, x + <usize>i * ls, aij, l);
      else axpy(out + <usize>i * ls, x + <usize>j * ls, aij, l);
    }
  }
}

// Σ x_p², Σ x_q², Σ x_p·x_q over rows p, q of n doubles (f64x2), into the three globals.
let dotPP: f64 = 0, dotQQ: f64 = 0, dotPQ: f64 = 0;
// @ts-ignore: decorator
@inline function pairDots(p: usize, q: usize, n: i32): void {
  let pp = f64x2.splat(0), qq = f64x2.splat(0), pq = f64x2.splat(0);
  let c = 0;
  for (; c + 2 <= n; c += 2) {
    const o = <usize>c << 3;
    const vp = v128.load(p + o), vq = v128.load(q + o);
    pp = f64x2.add(pp, f64x2.mul(vp, vp));
    qq = f64x2.add(qq, f64x2.mul(vq, vq));
    pq = f64x2.add(pq, f64x2.mul(vp, vq));
  }
  let spp = f64x2.extract_lane(pp, 0) + f64x2.extract_lane(pp, 1);
  let sqq = f64x2.extract_lane(qq, 0) + f64x2.extract_lane(qq, 1);
  let spq = f64x2.extract_lane(pq, 0) + f64x2.extract_lane(pq, 1);
  if (c < n) {
    const o = <usize>c << 3;
    const xp = load<f64>(p + o), xq = load<f64>(q + o);
    spp += xp * xp; sqq += xq * xq; spq += xp * xq;
  }
  dotPP = spp; dotQQ = sqq; dotPQ = spq;
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

/**
 * One-sided Jacobi on the rows of x [n, n] (float64), the rotations accumulated in the rows of
 * v [n, n], round-robin pair order (the circle method, as reference/svd.ts roundRobinPairs),
 * until no pair has |x_p·x_q| > tol·‖x_p‖‖x_q‖ or maxSweeps; returns the sweeps run.
 */
export function jacobiSweeps(x: usize, v: usize, n: i32, tol: f64, maxSweeps: i32): i32 {
  const players = n + (n & 1), last = players - 1;
  const rs = <usize>n << 3;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = 0;
    for (let r = 0; r < last; r++) {
      for (let t = 0; t < players / 2; t++) {
        let i = t == 0 ? r % last : (r + t) % last;
        let j = t == 0 ? last : (r - t + last) % last;
        if (i >= n || j >= n) continue;
        if (i > j) { const tmp = i; i = j; j = tmp; }
        const p = x + <usize>i * rs, q = x + <usize>j * rs;
        pairDots(p, q, n);
        const alpha = dotPP, beta = dotQQ, gamma = dotPQ;
        if (!(Math.abs(gamma) > tol * Math.sqrt(alpha * beta))) continue;
        const zeta = (beta - alpha) / (2 * gamma);
        const tt = (zeta >= 0 ? 1.0 : -1.0) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + tt * tt), sn = cs * tt;
        rotateRows(p, q, n, cs, sn);
        rotateRows(v + <usize>i * rs, v + <usize>j * rs, n, cs, sn);
        rotated++;
      }
    }
    if (rotated == 0) return sweep + 1;
  }
  return maxSweeps;
}
