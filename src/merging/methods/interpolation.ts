// The interpolation-style merge methods, streamed over chunks: mergekit's `linear`, `slerp`,
// `nuslerp`, `model_stock`, `karcher` and `multislerp`, and metrics-weighted averaging (`metrics_weighted`,
// Yu and Choi 2025). Semantics, papers and where we differ from mergekit: the references in
// src/reference/model-interpolation.ts, which these equal for any chunk size.
//
// Each needs at most O(1) statistics per vector, so plain TypeScript suffices: float64
// accumulators for norms, dot products and Gram matrices (one observation pass), then one
// element-wise apply pass writing float32. Row-wise variants (nuslerp over the last dimension,
// model_stock filter_wise) ask for whole rows per chunk and need no observation pass. Karcher's
// iteration stays in the span of the models, so it runs on their N×N Gram matrix after a single
// pass instead of one pass per iteration.
import type { Chunk, MergeMethod, MethodContext, MethodSpec, ParamValue, TensorInfo, TensorMerge, TensorParams } from '../types.ts';
import { MergeKernelsError, describe } from '../../errors.ts';
import * as ref from '../../reference/model-interpolation.ts';

/** A default of NaN marks a parameter that must be given (mergekit's `required=True`). */
export const REQUIRED = NaN;

type Params = Readonly<Record<string, ParamValue>>;

/** A model's own value, else the global one, else the default. */
export function lookup(name: string, global: Params, own: Params | undefined, fallback: ParamValue): ParamValue {
  return own?.[name] ?? global[name] ?? fallback;
}

function where(model: number | undefined): string {
  return model === undefined ? '' : ` for model ${model}`;
}

export function number(name: string, v: ParamValue, model?: number): number {
  if (typeof v === 'number' && Number.isNaN(v)) {
    throw new MergeKernelsError('INVALID_OPTION', `${name}: required${where(model)}, but not given`, name);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new MergeKernelsError('INVALID_OPTION', `${name}: expected a finite number${where(model)}, got ${describe(v)}`, name);
  }
  return v;
}

export function inRange(name: string, v: ParamValue, lo: number, hi: number, what: string, model?: number): number {
  const x = number(name, v, model);
  if (!(x >= lo && x <= hi)) throw new MergeKernelsError('INVALID_OPTION', `${name}: expected ${what}${where(model)}, got ${x}`, name);
  return x;
}

export function boolean(name: string, v: ParamValue): boolean {
  if (typeof v !== 'boolean') throw new MergeKernelsError('INVALID_OPTION', `${name}: expected true or false, got ${describe(v)}`, name);
  return v;
}

/** One value of `name` per model (the model's own, else the global one, else `fallback`). */
export function perModel(params: TensorParams, models: number, name: string, fallback: ParamValue): ParamValue[] {
  if (!Array.isArray(params.models) || params.models.length !== models) {
    throw new MergeKernelsError('INVALID_OPTION', `params.models: expected one parameter record per model (${models}), got ${describe(params.models)}`, 'params.models');
  }
  return params.models.map((own) => lookup(name, params.global, own, fallback));
}

export function checkModelCount(method: string, ctx: MethodContext, ok: boolean, expected: string): void {
  if (!ok) throw new MergeKernelsError('INVALID_OPTION', `models: ${method} merges ${expected}, got ${ctx.models}`, 'models');
}

/** The chunk holds `models` arrays of its length, and a base when `base` is 'required'. */
export function checkChunk(chunk: Chunk, models: number, base: 'required' | 'optional' | 'none'): void {
  if (chunk.models.length !== models) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `models: expected ${models} model slices in the chunk at ${chunk.offset}, got ${chunk.models.length}`, 'models');
  }
  chunk.models.forEach((m, i) => {
    if (!(m instanceof Float32Array) || m.length !== chunk.length) {
      throw new MergeKernelsError('SHAPE_MISMATCH', `models[${i}]: expected a Float32Array of ${chunk.length} values at ${chunk.offset}, got ${describe(m)}`, `models[${i}]`);
    }
  });
  if (base === 'none' || (base === 'optional' && chunk.base === undefined)) return;
  if (!(chunk.base instanceof Float32Array) || chunk.base.length !== chunk.length) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `base: expected a Float32Array of ${chunk.length} values at ${chunk.offset}, got ${describe(chunk.base)}`, 'base');
  }
}

export function nonFinite(method: string, info: TensorInfo): MergeKernelsError {
  return new MergeKernelsError('NON_FINITE', `models: tensor "${info.name}" holds NaN or ±Infinity, so ${method}'s norms and angles are undefined`, 'models');
}

export function methodOf(name: string, needsBase: boolean, tensor: (info: TensorInfo, params: TensorParams) => TensorMerge): MergeMethod {
  return { name, needsBase, modelPasses: 0, observeModel: async () => {}, tensor };
}

/** The run of the last dimension (1 for a scalar): row-wise variants ask for whole rows. */
export function lastDim(info: TensorInfo): number {
  return Math.max(1, info.shape[info.shape.length - 1] ?? 1);
}

/** Σ_m w_m·x_m (÷ Σw when normalize), element by element: linear and metrics-weighted averaging. */
function weightedSum(models: number, weights: readonly number[], normalize: boolean): TensorMerge {
  let sumW = 0;
  for (const w of weights) sumW += w;
  return {
    passes: 0,
    rowAlign: 1,
    observe: async () => {},
    async apply(chunk, out) {
      checkChunk(chunk, models, 'none');
      for (let i = 0; i < chunk.length; i++) {
        let acc = 0;
        for (let m = 0; m < models; m++) acc += weights[m]! * chunk.models[m]![i]!;
        out[i] = normalize ? acc / sumW : acc;
      }
    },
  };
}

/**
 * Interpolation of two vectors per group of entries (slerp, nuslerp): the groups' ‖a‖², ‖b‖², a·b,
 * then out = anchor + s0·a + s1·b with a = v0 − anchor, b = v1 − anchor (anchor 0 unless task
 * vectors). 'rows' groups are computed chunk by chunk (whole rows); the others in one pass.
 */
function pairMerge(
  method: string, info: TensorInfo, layout: ref.VectorLayout, t: number,
  factorsOf: (t: number, n0: number, n1: number, dot: number) => [number, number],
  pick: (chunk: Chunk) => { v0: Float32Array; v1: Float32Array; anchor: Float32Array | undefined },
  check: (chunk: Chunk) => void,
): TensorMerge {
  const vectors = ref.vectorIndex(layout, info.shape);
  const row = layout === 'rows' ? lastDim(info) : 1;
  // Per vector ‖a‖², ‖b‖², a·b as compensated sums (value + error): six float64s.
  const stats = layout === 'rows' ? new Float64Array(6) : new Float64Array(6 * vectors.count);
  let factors: Float64Array | undefined;

  /** Adds entry i to vector k's sums (first-dimension layout: each entry of a row goes to another vector). */
  function accumulate(into: Float64Array, k: number, v0: Float32Array, v1: Float32Array, anchor: Float32Array | undefined, i: number): void {
    const a = v0[i]! - (anchor ? anchor[i]! : 0), b = v1[i]! - (anchor ? anchor[i]! : 0);
    ref.addCompensated(into, 6 * k, a * a);
    ref.addCompensated(into, 6 * k + 2, b * b);
    ref.addCompensated(into, 6 * k + 4, a * b);
  }
  /** Adds entries [from, to) to vector k's sums: ref.addCompensated inlined on locals, 3-4× faster. */
  function accumulateRange(into: Float64Array, k: number, v0: Float32Array, v1: Float32Array, anchor: Float32Array | undefined, from: number, to: number): void {
    const o = 6 * k;
    let s0 = into[o]!, c0 = into[o + 1]!, s1 = into[o + 2]!, c1 = into[o + 3]!, s2 = into[o + 4]!, c2 = into[o + 5]!;
    for (let i = from; i < to; i++) {
      const z = anchor ? anchor[i]! : 0;
      const a = v0[i]! - z, b = v1[i]! - z;
      let x = a * a, u = s0 + x;
      c0 += Math.abs(s0) >= Math.abs(x) ? s0 - u + x : x - u + s0;
      s0 = u;
      x = b * b; u = s1 + x;
      c1 += Math.abs(s1) >= Math.abs(x) ? s1 - u + x : x - u + s1;
      s1 = u;
      x = a * b; u = s2 + x;
      c2 += Math.abs(s2) >= Math.abs(x) ? s2 - u + x : x - u + s2;
      s2 = u;
    }
    into[o] = s0; into[o + 1] = c0; into[o + 2] = s1; into[o + 3] = c1; into[o + 4] = s2; into[o + 5] = c2;
  }
  function factorsFrom(s: Float64Array, count: number): Float64Array {
    const f = new Float64Array(2 * count);
    for (let k = 0; k < count; k++) {
      const n0 = s[6 * k]! + s[6 * k + 1]!, n1 = s[6 * k + 2]! + s[6 * k + 3]!, dot = s[6 * k + 4]! + s[6 * k + 5]!;
      if (!Number.isFinite(n0 + n1 + dot)) throw nonFinite(method, info);
      [f[2 * k], f[2 * k + 1]] = factorsOf(t, n0, n1, dot);
    }
    return f;
  }
  function writeRange(out: Float32Array, f0: number, f1: number, v0: Float32Array, v1: Float32Array, anchor: Float32Array | undefined, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const z = anchor ? anchor[i]! : 0;
      out[i] = z + f0 * (v0[i]! - z) + f1 * (v1[i]! - z);
    }
  }

  return {
    passes: layout === 'rows' ? 0 : 1,
    rowAlign: row,
    async observe(_pass, chunk) {
      check(chunk);
      const { v0, v1, anchor } = pick(chunk);
      if (layout === 'flat') {
        accumulateRange(stats, 0, v0, v1, anchor, 0, chunk.length);
        return;
      }
      for (let i = 0, k = chunk.offset % vectors.count; i < chunk.length; i++, k = k + 1 === vectors.count ? 0 : k + 1) {
        accumulate(stats, k, v0, v1, anchor, i);
      }
    },
    async apply(chunk, out) {
      check(chunk);
      const { v0, v1, anchor } = pick(chunk);
      if (layout === 'rows') {
        for (let start = 0; start < chunk.length; start += row) {
          stats.fill(0);
          accumulateRange(stats, 0, v0, v1, anchor, start, start + row);
          const f = factorsFrom(stats, 1);
          writeRange(out, f[0]!, f[1]!, v0, v1, anchor, start, start + row);
        }
        return;
      }
      factors ??= factorsFrom(stats, vectors.count);
      if (layout === 'flat') {
        writeRange(out, factors[0]!, factors[1]!, v0, v1, anchor, 0, chunk.length);
        return;
      }
      for (let i = 0, k = chunk.offset % vectors.count; i < chunk.length; i++, k = k + 1 === vectors.count ? 0 : k + 1) {
        writeRange(out, factors[2 * k]!, factors[2 * k + 1]!, v0, v1, anchor, i, i + 1);
      }
    },
  };
}

/** Model Stock over one tensor: the offsets' Gram matrix per vector (whole tensor or row), then w_0 + t·mean δ. */
function modelStockMerge(info: TensorInfo, models: number, filterWise: boolean): TensorMerge {
  const N = models;
  const layout: ref.VectorLayout = filterWise ? 'rows' : 'flat';
  const row = filterWise ? lastDim(info) : 1;
  const gram = new Float64Array(N * N);
  let ratio: number | undefined;

  function accumulate(chunk: Chunk, from: number, to: number): void {
    const base = chunk.base!;
    for (let i = from; i < to; i++) {
      for (let a = 0; a < N; a++) {
        const da = chunk.models[a]![i]! - base[i]!;
        for (let b = a; b < N; b++) gram[a * N + b] += da * (chunk.models[b]![i]! - base[i]!);
      }
    }
  }
  function ratioFromGram(): number {
    for (let a = 0; a < N; a++) for (let b = 0; b < a; b++) gram[a * N + b] = gram[b * N + a]!;
    const t = ref.modelStockRatio(N, gram);
    if (!Number.isFinite(t) || !gram.every(Number.isFinite)) throw nonFinite('model_stock', info);
    return t;
  }
  function write(chunk: Chunk, out: Float32Array, t: number, from: number, to: number): void {
    const base = chunk.base!;
    for (let i = from; i < to; i++) {
      let meanOffset = 0;
      for (let m = 0; m < N; m++) meanOffset += chunk.models[m]![i]! - base[i]!;
      out[i] = base[i]! + t * (meanOffset / N);
    }
  }

  return {
    passes: layout === 'rows' ? 0 : 1,
    rowAlign: row,
    async observe(_pass, chunk) {
      checkChunk(chunk, N, 'required');
      accumulate(chunk, 0, chunk.length);
    },
    async apply(chunk, out) {
      checkChunk(chunk, N, 'required');
      if (layout !== 'rows') {
        ratio ??= ratioFromGram();
        write(chunk, out, ratio, 0, chunk.length);
        return;
      }
      for (let start = 0; start < chunk.length; start += row) {
        gram.fill(0);
        accumulate(chunk, start, start + row);
        write(chunk, out, ratioFromGram(), start, start + row);
      }
    },
  };
}

function quadratic(h: Float64Array, k: number, x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) s += x[i]! * h[i * k + j]! * y[j]!;
  return s;
}

/**
 * mergekit's Karcher iteration (see ref.karcher) on the Gram matrix G of the models: the
 * iterate u stays in the span of the unit directions e_k, so u = Σ a_k e_k, u·e_k = (H a)_k
 * and ‖Σ b_k e_k‖² = bᵀHb with H_kl = e_k·e_l. Returns c with result = Σ_m c_m·x_m.
 */
function karcherCoefficients(gram: Float64Array, models: number, maxIter: number, tol: number): Float64Array {
  const N = models;
  const norms = Array.from({ length: N }, (_, m) => Math.sqrt(gram[m * N + m]!));
  const valid = norms.flatMap((n, m) => (n > tol ? [m] : []));
  const K = valid.length;
  const coefficients = new Float64Array(N);
  if (K === 0) return coefficients;
  const h = new Float64Array(K * K);
  for (let k = 0; k < K; k++) {
    for (let l = 0; l < K; l++) h[k * K + l] = gram[valid[k]! * N + valid[l]!]! / (norms[valid[k]!]! * norms[valid[l]!]!);
  }
  const alpha = 1 / K;
  let a = new Float64Array(K).fill(alpha);
  const normU = Math.sqrt(Math.max(0, quadratic(h, K, a, a)));
  if (normU < tol) {
    a = new Float64Array(K);
    a[0] = 1;
  } else {
    for (let k = 0; k < K; k++) a[k] = a[k]! / normU;
  }
  for (let iter = 0; iter < maxIter; iter++) {
    const b = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      let dot = 0;
      for (let l = 0; l < K; l++) dot += a[l]! * h[l * K + k]!;
      const cos = Math.min(1, Math.max(-1, dot));
      const theta = Math.acos(cos);
      if (theta < tol) continue;
      const f = (alpha * theta) / Math.sin(theta);
      b[k] += f;
      for (let l = 0; l < K; l++) b[l] -= f * cos * a[l]!;
    }
    const normT = Math.sqrt(Math.max(0, quadratic(h, K, b, b)));
    if (normT < tol) break;
    const c = Math.cos(normT), s = Math.sin(normT) / normT;
    for (let k = 0; k < K; k++) a[k] = c * a[k]! + s * b[k]!;
    const len = Math.sqrt(Math.max(0, quadratic(h, K, a, a)));
    if (len > tol) for (let k = 0; k < K; k++) a[k] = a[k]! / len;
  }
  let scale = 0;
  for (const n of norms) scale += n / N;
  for (let k = 0; k < K; k++) coefficients[valid[k]!] = (scale * a[k]!) / norms[valid[k]!]!;
  return coefficients;
}

function karcherMerge(info: TensorInfo, models: number, maxIter: number, tol: number): TensorMerge {
  const N = models;
  const gram = new Float64Array(N * N);
  let coefficients: Float64Array | undefined;
  return {
    passes: N === 1 ? 0 : 1,
    rowAlign: 1,
    async observe(_pass, chunk) {
      checkChunk(chunk, N, 'none');
      for (let i = 0; i < chunk.length; i++) {
        for (let a = 0; a < N; a++) {
          const xa = chunk.models[a]![i]!;
          for (let b = a; b < N; b++) gram[a * N + b] += xa * chunk.models[b]![i]!;
        }
      }
    },
    async apply(chunk, out) {
      checkChunk(chunk, N, 'none');
      if (N === 1) {
        out.set(chunk.models[0]!);
        return;
      }
      if (!coefficients) {
        if (!gram.every(Number.isFinite)) throw nonFinite('karcher', info);
        for (let a = 0; a < N; a++) for (let b = 0; b < a; b++) gram[a * N + b] = gram[b * N + a]!;
        coefficients = karcherCoefficients(gram, N, maxIter, tol);
      }
      for (let i = 0; i < chunk.length; i++) {
        let acc = 0;
        for (let m = 0; m < N; m++) acc += coefficients[m]! * chunk.models[m]![i]!;
        out[i] = acc;
      }
    },
  };
}

/**
 * mergekit's `multislerp` (mergekit/merge_methods/multislerp.py) on one tensor, flattened: the
 * vectors a_m = x_m − base (x_m without a base), their unit directions u_m = a_m / (‖a_m‖ + eps),
 * the weighted mean m = Σ w_m·u_m, and the result m/‖m‖ · Σ w_m‖a_m‖ (+ base). mergekit then
 * projects the u_m onto the tangent space at m̂ and maps Σ w_m·(u_m − (u_m·m̂)·m̂) back with the
 * exponential map; that sum is m − (m·m̂)·m̂ = 0 for any inputs, so its result is m̂·cos(eps)
 * times the mean norm up to its float32 rounding of that zero, and we compute this closed form
 * (in float64) from the models' Gram matrix after one pass, as for Karcher.
 */
function multislerpMerge(info: TensorInfo, models: number, weights: readonly number[], eps: number): TensorMerge {
  const N = models;
  const gram = new Float64Array(N * N);
  let coefficients: Float64Array | undefined;
  const vec = (chunk: Chunk, m: number, i: number) => (chunk.base ? Math.fround(chunk.models[m]![i]! - chunk.base[i]!) : chunk.models[m]![i]!);

  function coefficientsFromGram(): Float64Array {
    if (!gram.every(Number.isFinite)) throw nonFinite('multislerp', info);
    for (let a = 0; a < N; a++) for (let b = 0; b < a; b++) gram[a * N + b] = gram[b * N + a]!;
    const norms = Array.from({ length: N }, (_, m) => Math.sqrt(gram[m * N + m]!));
    const c = norms.map((n, m) => weights[m]! / (n + eps));
    let meanNorm2 = 0;
    for (let a = 0; a < N; a++) for (let b = 0; b < N; b++) meanNorm2 += c[a]! * gram[a * N + b]! * c[b]!;
    const meanNorm = Math.sqrt(Math.max(0, meanNorm2));
    if (meanNorm < eps) {
      // mergekit: two (anti)parallel directions that cancel fall back to w_0·a_0 + w_1·a_1; more cannot.
      if (N === 2) return Float64Array.from(weights);
      throw new MergeKernelsError('INVALID_OPTION', `weight: the weighted mean of the unit directions of tensor "${info.name}" is zero (antipodal models whose weights balance out), so multislerp has no direction; give other weights`, 'weight');
    }
    let avgNorm = 0;
    for (let m = 0; m < N; m++) avgNorm += norms[m]! * weights[m]!;
    const scale = (Math.cos(eps) * avgNorm) / meanNorm;
    return Float64Array.from(c, (x) => x * scale);
  }

  return {
    passes: N === 1 ? 0 : 1,
    rowAlign: 1,
    async observe(_pass, chunk) {
      checkChunk(chunk, N, 'optional');
      for (let i = 0; i < chunk.length; i++) {
        for (let a = 0; a < N; a++) {
          const xa = vec(chunk, a, i);
          for (let b = a; b < N; b++) gram[a * N + b] += xa * vec(chunk, b, i);
        }
      }
    },
    async apply(chunk, out) {
      checkChunk(chunk, N, 'optional');
      if (N === 1) {
        // mergekit returns the one model as it is (no base subtracted or added).
        out.set(chunk.models[0]!.subarray(0, chunk.length));
        return;
      }
      coefficients ??= coefficientsFromGram();
      for (let i = 0; i < chunk.length; i++) {
        let acc = chunk.base ? chunk.base[i]! : 0;
        for (let m = 0; m < N; m++) acc += coefficients[m]! * vec(chunk, m, i);
        out[i] = acc;
      }
    },
  };
}

const linear: MethodSpec = {
  name: 'linear',
  needsBase: false,
  globalParams: { normalize: true },
  modelParams: { weight: REQUIRED },
  create(ctx) {
    checkModelCount('linear', ctx, ctx.models >= 1, 'one or more models');
    return methodOf('linear', false, (_info, params) => {
      const weights = perModel(params, ctx.models, 'weight', REQUIRED).map((w, m) => number('weight', w, m));
      const normalize = boolean('normalize', lookup('normalize', params.global, undefined, true));
      if (normalize) {
        let sum = 0, sumAbs = 0;
        for (const w of weights) { sum += w; sumAbs += Math.abs(w); }
        if (!(Math.abs(sum) > 1e-6 * sumAbs)) {
          throw new MergeKernelsError('INVALID_OPTION', `weight: the weights [${weights.join(', ')}] sum to ${sum}, and normalize divides by that sum; give weights with a non-zero sum or set normalize: false`, 'weight');
        }
      }
      return weightedSum(ctx.models, weights, normalize);
    });
  },
};

const slerp: MethodSpec = {
  name: 'slerp',
  needsBase: true,
  globalParams: { t: REQUIRED },
  modelParams: {},
  create(ctx) {
    checkModelCount('slerp', ctx, ctx.models === 1, 'the base model with exactly one other model');
    return methodOf('slerp', true, (info, params) => {
      const t = inRange('t', lookup('t', params.global, undefined, REQUIRED), 0, 1, 'a number in [0, 1] (0: the base model, 1: the other one)');
      return pairMerge('slerp', info, 'flat', t, ref.slerpFactors,
        (chunk) => ({ v0: chunk.base!, v1: chunk.models[0]!, anchor: undefined }),
        (chunk) => checkChunk(chunk, 1, 'required'));
    });
  },
};

const nuslerp: MethodSpec = {
  name: 'nuslerp',
  // The base is optional: when the runner supplies one, nuslerp interpolates task vectors.
  needsBase: false,
  optionalBase: true,
  globalParams: { nuslerp_flatten: true, nuslerp_row_wise: false },
  modelParams: { weight: REQUIRED },
  create(ctx) {
    checkModelCount('nuslerp', ctx, ctx.models === 2, 'exactly two models (plus an optional base model)');
    return methodOf('nuslerp', false, (info, params) => {
      const [w0, w1] = perModel(params, 2, 'weight', REQUIRED).map((w, m) => number('weight', w, m)) as [number, number];
      const flatten = boolean('nuslerp_flatten', lookup('nuslerp_flatten', params.global, undefined, true));
      const rowWise = boolean('nuslerp_row_wise', lookup('nuslerp_row_wise', params.global, undefined, false));
      const layout: ref.VectorLayout = flatten ? 'flat' : rowWise ? 'first-dim' : 'rows';
      return pairMerge('nuslerp', info, layout, ref.nuslerpT(w0, w1), ref.nuslerpFactors,
        (chunk) => ({ v0: chunk.models[0]!, v1: chunk.models[1]!, anchor: chunk.base }),
        (chunk) => checkChunk(chunk, 2, 'optional'));
    });
  },
};

const modelStock: MethodSpec = {
  name: 'model_stock',
  needsBase: true,
  globalParams: { filter_wise: false },
  modelParams: {},
  create(ctx) {
    checkModelCount('model_stock', ctx, ctx.models >= 2, 'the base model with two or more fine-tuned models');
    return methodOf('model_stock', true, (info, params) => {
      const filterWise = boolean('filter_wise', lookup('filter_wise', params.global, undefined, false));
      return modelStockMerge(info, ctx.models, filterWise);
    });
  },
};

const karcher: MethodSpec = {
  name: 'karcher',
  needsBase: false,
  globalParams: { max_iter: 10, tol: 1e-5 },
  modelParams: {},
  create(ctx) {
    checkModelCount('karcher', ctx, ctx.models >= 1, 'one or more models');
    return methodOf('karcher', false, (info, params) => {
      const maxIter = inRange('max_iter', lookup('max_iter', params.global, undefined, 10), 0, 1e6, 'an integer in [0, 1000000]');
      if (!Number.isInteger(maxIter)) throw new MergeKernelsError('INVALID_OPTION', `max_iter: expected an integer in [0, 1000000], got ${maxIter}`, 'max_iter');
      const tol = inRange('tol', lookup('tol', params.global, undefined, 1e-5), 0, Infinity, 'a tolerance ≥ 0');
      return karcherMerge(info, ctx.models, maxIter, tol);
    });
  },
};

const metricsWeighted: MethodSpec = {
  name: 'metrics_weighted',
  needsBase: false,
  globalParams: { weight_by: 'metric', penalty: 1 },
  modelParams: { metric: REQUIRED, step: REQUIRED },
  create(ctx) {
    checkModelCount('metrics_weighted', ctx, ctx.models >= 1, 'one or more checkpoints');
    return methodOf('metrics_weighted', false, (_info, params) => {
      const weightBy = lookup('weight_by', params.global, undefined, 'metric');
      if (weightBy !== 'metric' && weightBy !== 'step') {
        throw new MergeKernelsError('INVALID_OPTION', `weight_by: expected 'metric' (a loss: lower weighs more) or 'step' (later weighs more), got ${describe(weightBy)}`, 'weight_by');
      }
      const penalty = inRange('penalty', lookup('penalty', params.global, undefined, 1), 0, Infinity, 'a penalty factor ≥ 0 (0: uniform average)');
      const values = perModel(params, ctx.models, weightBy, REQUIRED)
        .map((v, m) => inRange(weightBy, v, Number.MIN_VALUE, Infinity, weightBy === 'metric' ? 'a loss > 0' : 'a training step > 0', m));
      return weightedSum(ctx.models, ref.metricsWeights(values, weightBy, penalty), true);
    });
  },
};

const multislerp: MethodSpec = {
  name: 'multislerp',
  // The base is optional (mergekit's Optional base_tensor): with one, the task vectors are interpolated.
  needsBase: false,
  optionalBase: true,
  globalParams: { normalize_weights: true, eps: 1e-8 },
  modelParams: { weight: REQUIRED },
  create(ctx) {
    checkModelCount('multislerp', ctx, ctx.models >= 1, 'one or more models (plus an optional base model)');
    return methodOf('multislerp', false, (info, params) => {
      let weights = perModel(params, ctx.models, 'weight', REQUIRED).map((w, m) => number('weight', w, m));
      const normalize = boolean('normalize_weights', lookup('normalize_weights', params.global, undefined, true));
      const eps = inRange('eps', lookup('eps', params.global, undefined, 1e-8), 0, Infinity, 'a small constant ≥ 0');
      if (normalize && ctx.models > 1) {
        let sum = 0, sumAbs = 0;
        for (const w of weights) { sum += w; sumAbs += Math.abs(w); }
        if (!(Math.abs(sum) > 1e-6 * sumAbs)) {
          throw new MergeKernelsError('INVALID_OPTION', `weight: the weights [${weights.join(', ')}] sum to ${sum}, and normalize_weights divides by that sum; give weights with a non-zero sum or set normalize_weights: false`, 'weight');
        }
        weights = weights.map((w) => w / sum);
      }
      return multislerpMerge(info, ctx.models, weights, eps);
    });
  },
};

/** The interpolation-style methods by mergekit name (`metrics_weighted` is ours: mergekit has none). */
export const INTERPOLATION_METHODS: Readonly<Record<string, MethodSpec>> = {
  linear,
  slerp,
  nuslerp,
  model_stock: modelStock,
  karcher,
  multislerp,
  metrics_weighted: metricsWeighted,
};
