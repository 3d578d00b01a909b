// Model merging by interpolation: plain whole-tensor references (the oracle) of mergekit's
// `linear`, `slerp`, `nuslerp`, `model_stock` and `karcher`, and of metrics-weighted averaging.
// Arithmetic is float64 over float32 inputs; results are rounded once to float32. The streaming
// methods (src/merging/methods/interpolation.ts) share the scalar rules below (factors, ratios,
// weights) and must equal these functions for any chunking.
//
// - linear: Wortsman et al. 2022, "Model soups", method section (the uniform soup is the mean of
//   fine-tuned weights; mergekit weighs each model).
// - slerp: Shoemake 1985, "Animating rotation with quaternion curves" (spherical linear
//   interpolation), applied as mergekit's slerp.py does: one arc over the whole tensor.
// - nuslerp: mergekit's nuslerp.py (no paper): slerp with t from two weights, per tensor or per
//   row/column, optionally of task vectors.
// - model_stock: Jang, Yun and Han 2024, "Model Stock: All we need is just a few fine-tuned
//   models", method section: w_H = t·w_avg + (1 − t)·w_0 with t = N·cos θ / (1 + (N − 1)·cos θ), per layer.
// - karcher: the Riemannian centre of mass of the unit directions (Karcher 1977), by mergekit's
//   fixed-point iteration (karcher.py), rescaled by the mean norm.
// - metrics-weighted averaging: Yu and Choi 2025, "Parameter-Efficient Checkpoint Merging via
//   Metrics-Weighted Averaging" (arXiv 2504.18580): checkpoints weighted by loss or training step
//   with one penalty factor. Their formula was not available to us; `metricsWeights` is ours.
//
// Where we differ from mergekit (everything else follows its code, constants included):
// - Arithmetic: float64 inside, float32 out; mergekit computes in the config dtype (slerp in
//   float32 numpy). Only results near a branch threshold (slerp's 0.9995) can differ visibly.
// - Errors instead of Inf/NaN: slerp's t outside [0, 1] (mergekit's docstring range, unchecked
//   there); linear with normalize and weights summing to ~0; NaN/±Inf inputs to the methods that
//   take norms (slerp, nuslerp, model_stock, karcher).
// - nuslerp: (anti)parallel to within rounding interpolates linearly (NUSLERP_COS_ROUNDING).
//   `nuslerp_row_wise: true` follows mergekit's code (vectors along the first dimension, i.e. the
//   columns of an [out, in] weight); mergekit's docs call these "row vectors".
// - model_stock: at the pole of t (offsets that cancel) the result is the base, not NaN; computed
//   as w_0 + t·mean δ, the same value without cancellation for large |t|.
// - karcher: same iterates, but the streaming method runs them on the models' Gram matrix
//   (one pass over the data instead of one per iteration).

/** mergekit slerp: |cos| above this means (anti)parallel vectors, interpolated linearly. */
export const SLERP_DOT_THRESHOLD = 0.9995;
/** mergekit slerp: vectors no longer than this are not normalised before the dot product. */
export const SLERP_EPS = 1e-8;
/** mergekit nuslerp: norms are clamped to at least this when normalising. */
export const NUSLERP_NORM_EPS = 1e-7;
/** mergekit nuslerp: |sin θ| below this means (anti)parallel vectors, interpolated linearly. */
export const NUSLERP_EPS = 1e-8;
/**
 * Ours: |cos θ| above 1 − this also means (anti)parallel. Antiparallel inputs give a cos a few
 * ulps above −1, so sin θ ≈ 2e-8 passes mergekit's test and the arc's 1/sin θ multiplies the
 * result by ~5e7 (mergekit's float32 does the same: sin(π in float32) ≈ 8.7e-8). Norms and dot
 * products are compensated sums (addCompensated), accurate to a few ulps at any length, so this
 * only catches angles within ~1.4e-7 of 0 or π: below the resolution of float32 inputs.
 */
export const NUSLERP_COS_ROUNDING = 1e-14;

/**
 * Neumaier's compensated summation: acc[k] += x, with the rounding error gathered in acc[k + 1];
 * the sum is acc[k] + acc[k + 1]. Keeps slerp's cos accurate to a few ulps whatever the length.
 */
export function addCompensated(acc: Float64Array, k: number, x: number): void {
  const s = acc[k]!, t = s + x;
  acc[k + 1] += Math.abs(s) >= Math.abs(x) ? s - t + x : x - t + s;
  acc[k] = t;
}
/** mergekit model_stock: the product of two offset norms is clamped to at least this. */
export const MODEL_STOCK_NORM_EPS = 1e-6;
/**
 * Model Stock's t has a pole where 1 + (N − 1)·c = 0, i.e. where the unit offsets cancel out and
 * there is no common direction to move along. Below this denominator t is 0 and the result is
 * the base (mergekit divides by ~0 there and returns ±Inf or NaN).
 */
export const MODEL_STOCK_MIN_DENOMINATOR = 1e-6;

/** Σ_m w_m·x_m, divided by Σ w when `normalize` (mergekit's linear; default normalize = true). */
export function linear(models: readonly Float32Array[], weights: readonly number[], normalize = true): Float32Array {
  const n = models[0]!.length;
  let sumW = 0;
  for (const w of weights) sumW += w;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let m = 0; m < models.length; m++) acc += weights[m]! * models[m]![i]!;
    out[i] = normalize ? acc / sumW : acc;
  }
  return out;
}

/**
 * mergekit's slerp factors (s0, s1) for v0 → v1 at t, from ‖v0‖², ‖v1‖² and v0·v1:
 * cos = v0·v1 / (‖v0‖·‖v1‖), where a norm ≤ 1e-8 counts as 1 (mergekit leaves such a vector
 * unnormalised); |cos| > 0.9995 → lerp (1 − t, t); else θ = acos(cos),
 * s0 = sin(θ − tθ) / sin θ, s1 = sin(tθ) / sin θ.
 */
export function slerpFactors(t: number, normSq0: number, normSq1: number, dot: number): [number, number] {
  const n0 = Math.sqrt(normSq0), n1 = Math.sqrt(normSq1);
  const cos = dot / ((n0 > SLERP_EPS ? n0 : 1) * (n1 > SLERP_EPS ? n1 : 1));
  if (Math.abs(cos) > SLERP_DOT_THRESHOLD) return [1 - t, t];
  const theta0 = Math.acos(cos);
  const sinTheta0 = Math.sin(theta0);
  const thetaT = theta0 * t;
  return [Math.sin(theta0 - thetaT) / sinTheta0, Math.sin(thetaT) / sinTheta0];
}

/** mergekit's slerp of the whole tensor from `v0` (the base model) to `v1` at `t` ∈ [0, 1]. */
export function slerp(t: number, v0: Float32Array, v1: Float32Array): Float32Array {
  const acc = new Float64Array(6);
  for (let i = 0; i < v0.length; i++) {
    addCompensated(acc, 0, v0[i]! * v0[i]!);
    addCompensated(acc, 2, v1[i]! * v1[i]!);
    addCompensated(acc, 4, v0[i]! * v1[i]!);
  }
  const [s0, s1] = slerpFactors(t, acc[0]! + acc[1]!, acc[2]! + acc[3]!, acc[4]! + acc[5]!);
  const out = new Float32Array(v0.length);
  for (let i = 0; i < v0.length; i++) out[i] = s0 * v0[i]! + s1 * v1[i]!;
  return out;
}

/** NuSLERP's t from the two models' weights: w1 / (w0 + w1), or 0.5 when |w0 + w1| < 1e-6. */
export function nuslerpT(w0: number, w1: number): number {
  const sum = w0 + w1;
  return Math.abs(sum) < 1e-6 ? 0.5 : w1 / sum;
}

/**
 * mergekit's nuslerp factors: cos = v0·v1 / (max(‖v0‖, 1e-7)·max(‖v1‖, 1e-7)) clamped to
 * [−1, 1]; θ = acos(cos); |sin θ| < 1e-8 (or |cos| > 1 − 1e-14, ours) → lerp (1 − t, t); else
 * (sin((1 − t)θ) / sin θ, sin(tθ) / sin θ).
 */
export function nuslerpFactors(t: number, normSq0: number, normSq1: number, dot: number): [number, number] {
  const denom = Math.max(Math.sqrt(normSq0), NUSLERP_NORM_EPS) * Math.max(Math.sqrt(normSq1), NUSLERP_NORM_EPS);
  const cos = Math.min(1, Math.max(-1, dot / denom));
  const theta = Math.acos(cos);
  const sinTheta = Math.sin(theta);
  if (Math.abs(sinTheta) < NUSLERP_EPS || Math.abs(cos) > 1 - NUSLERP_COS_ROUNDING) return [1 - t, t];
  return [Math.sin((1 - t) * theta) / sinTheta, Math.sin(t * theta) / sinTheta];
}

/** How nuslerp and model_stock cut a tensor into vectors. */
export type VectorLayout =
  /** the whole tensor is one vector */
  | 'flat'
  /** each run of the last dimension (a row in row-major storage) is one vector */
  | 'rows'
  /** vectors run along the first dimension: entry i belongs to vector i mod (numel / shape[0]) */
  | 'first-dim';

/** The vector each flat index belongs to, and how many vectors there are. */
export function vectorIndex(layout: VectorLayout, shape: readonly number[]): { count: number; of: (i: number) => number } {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (layout === 'flat' || shape.length === 0 || numel === 0) return { count: numel === 0 ? 0 : 1, of: () => 0 };
  if (layout === 'rows') {
    const len = shape[shape.length - 1]!;
    return { count: numel / len, of: (i) => Math.floor(i / len) };
  }
  const stride = numel / shape[0]!;
  return { count: stride, of: (i) => i % stride };
}

export interface NuslerpOptions {
  /** mergekit's nuslerp_flatten (default true): one arc over the whole tensor. */
  flatten?: boolean;
  /**
   * mergekit's nuslerp_row_wise (default false), used when flatten is false: false → one arc per
   * run of the last dimension; true → one arc per vector along the first dimension (mergekit
   * transposes dim 0 with the last; for an [out, in] weight these are its columns).
   */
  rowWise?: boolean;
  /** When given, interpolate the task vectors v − base and add the base back. */
  base?: Float32Array;
}

/** mergekit's nuslerp of `v0` and `v1` (shape `shape`) at t (see nuslerpT). */
export function nuslerp(t: number, v0: Float32Array, v1: Float32Array, shape: readonly number[], options: NuslerpOptions = {}): Float32Array {
  const { flatten = true, rowWise = false, base } = options;
  const layout: VectorLayout = flatten ? 'flat' : rowWise ? 'first-dim' : 'rows';
  const vec = vectorIndex(layout, shape);
  const d0 = new Float64Array(v0.length), d1 = new Float64Array(v0.length);
  for (let i = 0; i < v0.length; i++) {
    d0[i] = v0[i]! - (base ? base[i]! : 0);
    d1[i] = v1[i]! - (base ? base[i]! : 0);
  }
  const acc = new Float64Array(6 * vec.count); // per vector: ‖d0‖², ‖d1‖², d0·d1 as compensated sums
  for (let i = 0; i < v0.length; i++) {
    const k = 6 * vec.of(i);
    addCompensated(acc, k, d0[i]! * d0[i]!);
    addCompensated(acc, k + 2, d1[i]! * d1[i]!);
    addCompensated(acc, k + 4, d0[i]! * d1[i]!);
  }
  const factors = Array.from({ length: vec.count }, (_, v) => {
    const k = 6 * v;
    return nuslerpFactors(t, acc[k]! + acc[k + 1]!, acc[k + 2]! + acc[k + 3]!, acc[k + 4]! + acc[k + 5]!);
  });
  const out = new Float32Array(v0.length);
  for (let i = 0; i < v0.length; i++) {
    const [s0, s1] = factors[vec.of(i)]!;
    out[i] = (base ? base[i]! : 0) + s0 * d0[i]! + s1 * d1[i]!;
  }
  return out;
}

/**
 * Model Stock's interpolation ratio from the Gram matrix of N ≥ 2 offsets δ_i = w_i − w_0
 * (`gram[i·N + j]` = δ_i·δ_j): c = the mean over pairs i < j of
 * δ_i·δ_j / max(‖δ_i‖·‖δ_j‖, 1e-6) clamped to [−1, 1], then t = N·c / (1 + (N − 1)·c).
 * The paper assumes one angle θ between every pair and does not say how to estimate it for
 * N > 2; the mean pairwise cosine is mergekit's choice. t = 0 at the pole (see
 * MODEL_STOCK_MIN_DENOMINATOR).
 */
export function modelStockRatio(n: number, gram: Float64Array): number {
  let sum = 0, pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const normProduct = Math.sqrt(gram[i * n + i]!) * Math.sqrt(gram[j * n + j]!);
      sum += Math.min(1, Math.max(-1, gram[i * n + j]! / Math.max(normProduct, MODEL_STOCK_NORM_EPS)));
      pairs++;
    }
  }
  const c = sum / pairs;
  if (Number.isNaN(c)) return NaN;
  const denominator = 1 + (n - 1) * c;
  return denominator > MODEL_STOCK_MIN_DENOMINATOR ? (n * c) / denominator : 0;
}

/**
 * Model Stock: w_0 + t·(mean_i w_i − w_0), which is the paper's t·w_avg + (1 − t)·w_0 written so
 * that a large |t| does not cancel catastrophically. `filterWise` (mergekit's filter_wise,
 * default false) takes one t per run of the last dimension instead of one per tensor.
 */
export function modelStock(base: Float32Array, models: readonly Float32Array[], shape: readonly number[], filterWise = false): Float32Array {
  const N = models.length;
  const vec = vectorIndex(filterWise ? 'rows' : 'flat', shape);
  const gram = Array.from({ length: vec.count }, () => new Float64Array(N * N));
  for (let i = 0; i < base.length; i++) {
    const g = gram[vec.of(i)]!;
    for (let a = 0; a < N; a++) {
      for (let b = a; b < N; b++) g[a * N + b] += (models[a]![i]! - base[i]!) * (models[b]![i]! - base[i]!);
    }
  }
  for (const g of gram) for (let a = 0; a < N; a++) for (let b = 0; b < a; b++) g[a * N + b] = g[b * N + a]!;
  const t = gram.map((g) => modelStockRatio(N, g));
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    let meanOffset = 0;
    for (let m = 0; m < N; m++) meanOffset += models[m]![i]! - base[i]!;
    out[i] = base[i]! + t[vec.of(i)]! * (meanOffset / N);
  }
  return out;
}

function dot64(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * mergekit's karcher: every model weighs 1/N. Directions u_i = x_i / ‖x_i‖ of the models with
 * ‖x_i‖ > tol; start from their normalised mean (or the first one if that mean is shorter than
 * tol); then up to `maxIter` times: T = Σ (1/K)·(θ_i / sin θ_i)·(u_i − cos θ_i·u) over the K
 * directions with θ_i = acos(u·u_i) ≥ tol, stop when ‖T‖ < tol, else step along the geodesic
 * u ← cos‖T‖·u + sin‖T‖·T/‖T‖ and renormalise. Result: (Σ_i ‖x_i‖ / N)·u. One model: itself.
 */
export function karcher(models: readonly Float32Array[], maxIter = 10, tol = 1e-5): Float32Array {
  const N = models.length, n = models[0]!.length;
  if (N === 1) return models[0]!.slice();
  const norms = models.map((x) => Math.sqrt(dot64(x, x)));
  const units: Float64Array[] = [];
  for (let m = 0; m < N; m++) {
    if (norms[m]! > tol) units.push(Float64Array.from(models[m]!, (v) => v / norms[m]!));
  }
  if (units.length === 0) return new Float32Array(n);
  const alpha = 1 / units.length;
  let u = new Float64Array(n);
  for (const e of units) for (let i = 0; i < n; i++) u[i] += alpha * e[i]!;
  const normU = Math.sqrt(dot64(u, u));
  if (normU < tol) u = units[0]!.slice();
  else for (let i = 0; i < n; i++) u[i] /= normU;
  for (let iter = 0; iter < maxIter; iter++) {
    const T = new Float64Array(n);
    for (const e of units) {
      const cos = Math.min(1, Math.max(-1, dot64(u, e)));
      const theta = Math.acos(cos);
      if (theta < tol) continue;
      const f = (alpha * theta) / Math.sin(theta);
      for (let i = 0; i < n; i++) T[i] += f * (e[i]! - cos * u[i]!);
    }
    const normT = Math.sqrt(dot64(T, T));
    if (normT < tol) break;
    const c = Math.cos(normT), s = Math.sin(normT) / normT;
    for (let i = 0; i < n; i++) u[i] = c * u[i]! + s * T[i]!;
    const len = Math.sqrt(dot64(u, u));
    if (len > tol) for (let i = 0; i < n; i++) u[i] /= len;
  }
  let scale = 0;
  for (const norm of norms) scale += norm / N;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * u[i]!;
  return out;
}

/** What metrics-weighted averaging weighs checkpoints by. */
export type WeightBy = 'metric' | 'step';

/**
 * Metrics-weighted averaging's weights (our formula; see the file header): with penalty p ≥ 0,
 * `metric` (a loss, > 0; lower is better): w_i ∝ metric_i^(−p);
 * `step` (training step, > 0; later is better): w_i ∝ step_i^p; normalised to Σw = 1.
 * p = 0 is the uniform average, p = 1 weighs by inverse loss (or by step), and a large p tends
 * to the single best checkpoint. Computed in log space so a large p cannot overflow.
 */
export function metricsWeights(values: readonly number[], weightBy: WeightBy, penalty: number): number[] {
  const sign = weightBy === 'metric' ? -1 : 1;
  const scores = values.map((v) => sign * penalty * Math.log(v));
  const top = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** Metrics-weighted averaging: linear(models, metricsWeights(values, weightBy, penalty)). */
export function metricsWeightedAverage(models: readonly Float32Array[], values: readonly number[], weightBy: WeightBy, penalty: number): Float32Array {
  return linear(models, metricsWeights(values, weightBy, penalty), true);
}
