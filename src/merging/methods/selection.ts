// mergekit's methods that choose, entry by entry, how much of a fine-tune's change to keep:
// `nearswap` (mergekit/merge_methods/nearswap.py), `ram` and `ramplus_tl` (Reinforced Agent
// Merging, arXiv 2601.13572; mergekit/merge_methods/ram.py) and `arcee_fusion`
// (mergekit/merge_methods/arcee_fusion.py). Plain TypeScript over the chunks: the differences
// (δ = x − base) are rounded to float32 as mergekit's torch code does, so thresholds on |δ| fall
// where its fall; the rest is float64 rounded once to float32.
import type { Chunk, MethodSpec, TensorInfo, TensorMerge } from '../types.ts';
import { MergeKernelsError } from '../../errors.ts';
import { REQUIRED, checkChunk, checkModelCount, inRange, lastDim, lookup, methodOf, nonFinite, number } from './interpolation.ts';

/**
 * NearSwap: the base's value where the other model is far from it, the other model's where it is
 * near: w = clamp(t / max(|base − x|, 1e-6), 0, 1), out = w·x + (1 − w)·base.
 */
const nearswap: MethodSpec = {
  name: 'nearswap',
  needsBase: true,
  globalParams: { t: REQUIRED },
  modelParams: {},
  create(ctx) {
    checkModelCount('nearswap', ctx, ctx.models === 1, 'the base model with exactly one other model');
    return methodOf('nearswap', true, (_info, params) => {
      const t = number('t', lookup('t', params.global, undefined, REQUIRED));
      return {
        passes: 0,
        rowAlign: 1,
        observe: async () => {},
        async apply(chunk, out) {
          checkChunk(chunk, 1, 'required');
          const a = chunk.base!, b = chunk.models[0]!;
          for (let i = 0; i < chunk.length; i++) {
            const w = Math.min(1, Math.max(0, t / Math.max(Math.abs(Math.fround(a[i]! - b[i]!)), 1e-6)));
            out[i] = w * b[i]! + (1 - w) * a[i]!;
          }
        },
      };
    });
  },
};

/**
 * RAM over one tensor: the task vectors' entries with |δ| > epsilon count; an entry changed by one
 * model keeps that model's δ (times λ_m in RAM+), one changed by several takes their mean.
 * RAM+ (`plus`) first counts, per model, its entries shared with others and its unique ones
 * (one observation pass), ρ_m = shared / max(unique, epsilon), λ_m = 1 + r·clamp(ρ_m, 0, α).
 */
function ramMerge(info: TensorInfo, models: number, epsilon: number, plus: { r: number; alpha: number } | undefined): TensorMerge {
  const N = models;
  const shared = new Float64Array(N), unique = new Float64Array(N);
  let lambda: Float64Array | undefined;
  const delta = new Float64Array(N);
  /** δ of every model at entry i (float32, as torch subtracts), and how many exceed epsilon. */
  function deltas(chunk: Chunk, i: number): number {
    let count = 0;
    for (let m = 0; m < N; m++) {
      const d = Math.fround(chunk.models[m]![i]! - chunk.base![i]!);
      if (Number.isNaN(d)) throw nonFinite(plus ? 'ramplus_tl' : 'ram', info);
      delta[m] = Math.abs(d) > epsilon ? d : 0;
      if (delta[m] !== 0) count++;
    }
    return count;
  }
  return {
    passes: plus && N > 0 ? 1 : 0,
    rowAlign: 1,
    async observe(_pass, chunk) {
      checkChunk(chunk, N, 'required');
      for (let i = 0; i < chunk.length; i++) {
        const count = deltas(chunk, i);
        if (count === 0) continue;
        for (let m = 0; m < N; m++) if (delta[m] !== 0) (count === 1 ? unique : shared)[m] += 1;
      }
    },
    async apply(chunk, out) {
      checkChunk(chunk, N, 'required');
      if (plus && !lambda) lambda = Float64Array.from(shared, (s, m) => 1 + plus.r * Math.min(plus.alpha, Math.max(0, s / Math.max(unique[m]!, epsilon))));
      for (let i = 0; i < chunk.length; i++) {
        const count = deltas(chunk, i);
        let sum = 0;
        for (let m = 0; m < N; m++) sum += count === 1 && lambda ? delta[m]! * lambda[m]! : delta[m]!;
        out[i] = chunk.base![i]! + (count > 1 ? sum / count : sum);
      }
    },
  };
}

const ram: MethodSpec = {
  name: 'ram',
  needsBase: true,
  globalParams: { epsilon: 1e-5 },
  modelParams: {},
  create(ctx) {
    checkModelCount('ram', ctx, ctx.models >= 1, 'the base model with one or more fine-tuned models');
    return methodOf('ram', true, (info, params) => {
      const epsilon = inRange('epsilon', lookup('epsilon', params.global, undefined, 1e-5), 0, Infinity, 'a threshold ≥ 0 on |δ|');
      return ramMerge(info, ctx.models, epsilon, undefined);
    });
  },
};

const ramplusTl: MethodSpec = {
  name: 'ramplus_tl',
  needsBase: true,
  globalParams: { r: 0.1, alpha: 0.2, epsilon: 1e-5 },
  modelParams: {},
  create(ctx) {
    checkModelCount('ramplus_tl', ctx, ctx.models >= 1, 'the base model with one or more fine-tuned models');
    return methodOf('ramplus_tl', true, (info, params) => {
      const epsilon = inRange('epsilon', lookup('epsilon', params.global, undefined, 1e-5), Number.MIN_VALUE, Infinity, 'a threshold > 0 on |δ| (also the floor of the unique count)');
      const r = number('r', lookup('r', params.global, undefined, 0.1));
      const alpha = inRange('alpha', lookup('alpha', params.global, undefined, 0.2), 0, Infinity, 'a cap ≥ 0 on the overlap ratio ρ');
      return ramMerge(info, ctx.models, epsilon, { r, alpha });
    });
  },
};

/** float32 bits mapped to unsigned keys in the floats' order (negative floats below positive ones). */
function sortKey(x: number, view: DataView): number {
  view.setFloat32(0, x);
  const bits = view.getUint32(0);
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}
function fromKey(key: number, view: DataView): number {
  view.setUint32(0, (key & 0x80000000 ? key & 0x7fffffff : ~key) >>> 0);
  return view.getFloat32(0);
}

/**
 * Arcee Fusion over one tensor: importance = |x − base| · KL(softmax(x) ‖ softmax(base)) per
 * row of the last dimension (softmaxes + 1e-8, as mergekit), the threshold median + 1.5·IQR of
 * the importances (quantile q: the sorted scores' entry ⌊q·(n − 1)⌋), and out = base + δ where
 * importance ≥ threshold. The three order statistics are found exactly in two histogram passes
 * over the float32 bits (high 16, then low 16 within the chosen buckets), so memory stays one
 * chunk whatever the tensor; mergekit sorts the scores, and for tensors over 10⁶ entries an
 * unseeded random sample of 10⁶ of them, so there its threshold is an estimate of ours.
 */
function fusionMerge(info: TensorInfo): TensorMerge {
  const row = lastDim(info);
  const n = info.numel;
  const ranks = [0.5, 0.25, 0.75].map((q) => Math.floor(q * (n - 1)));
  const view = new DataView(new ArrayBuffer(4));
  const high = new Float64Array(65536);
  const lows = new Map<number, Float64Array>();
  const highOf: number[] = [];
  let threshold: number | undefined;
  let scores = new Float32Array(0);

  /** The chunk's importance scores (whole rows: rowAlign). */
  function importance(chunk: Chunk): Float32Array {
    if (scores.length < chunk.length) scores = new Float32Array(chunk.length);
    const a = chunk.base!, x = chunk.models[0]!;
    for (let start = 0; start < chunk.length; start += row) {
      const end = Math.min(chunk.length, start + row);
      let maxA = -Infinity, maxX = -Infinity;
      for (let i = start; i < end; i++) { maxA = Math.max(maxA, a[i]!); maxX = Math.max(maxX, x[i]!); }
      let sumA = 0, sumX = 0;
      for (let i = start; i < end; i++) { sumA += Math.exp(a[i]! - maxA); sumX += Math.exp(x[i]! - maxX); }
      let kl = 0;
      for (let i = start; i < end; i++) {
        const p = Math.exp(x[i]! - maxX) / sumX + 1e-8, q = Math.exp(a[i]! - maxA) / sumA + 1e-8;
        kl += p * Math.log(p / q);
      }
      for (let i = start; i < end; i++) scores[i] = Math.abs(Math.fround(x[i]! - a[i]!)) * kl;
    }
    for (let i = 0; i < chunk.length; i++) if (Number.isNaN(scores[i]!)) throw nonFinite('arcee_fusion', info);
    return scores;
  }
  /** The bucket holding rank k of a histogram, and the rank within it. */
  function find(hist: Float64Array, k: number): [number, number] {
    let below = 0;
    for (let b = 0; b < hist.length; b++) {
      if (below + hist[b]! > k) return [b, k - below];
      below += hist[b]!;
    }
    throw new MergeKernelsError('SHAPE_MISMATCH', `arcee_fusion: tensor "${info.name}" gave fewer chunk entries than its ${n} values`, 'models');
  }

  return {
    passes: n === 0 ? 0 : 2,
    rowAlign: row,
    async observe(pass, chunk) {
      checkChunk(chunk, 1, 'required');
      const s = importance(chunk);
      if (pass === 0) {
        for (let i = 0; i < chunk.length; i++) high[sortKey(s[i]!, view) >>> 16] += 1;
        return;
      }
      if (highOf.length === 0) {
        for (const k of ranks) {
          const [bucket] = find(high, k);
          highOf.push(bucket);
          if (!lows.has(bucket)) lows.set(bucket, new Float64Array(65536));
        }
      }
      for (let i = 0; i < chunk.length; i++) {
        const key = sortKey(s[i]!, view);
        const low = lows.get(key >>> 16);
        if (low) low[key & 0xffff] += 1;
      }
    },
    async apply(chunk, out) {
      checkChunk(chunk, 1, 'required');
      if (n === 0) return;
      if (threshold === undefined) {
        const [median, q1, q3] = ranks.map((k, j) => {
          const bucket = highOf[j]!;
          const [, within] = find(high, k);
          const [low] = find(lows.get(bucket)!, within);
          return fromKey(((bucket << 16) | low) >>> 0, view);
        }) as [number, number, number];
        // As torch computes it, in float32.
        threshold = Math.fround(median + Math.fround(1.5 * Math.fround(q3 - q1)));
      }
      const s = importance(chunk);
      const a = chunk.base!, x = chunk.models[0]!;
      for (let i = 0; i < chunk.length; i++) out[i] = s[i]! >= threshold ? a[i]! + Math.fround(x[i]! - a[i]!) : a[i]!;
    },
  };
}

const arceeFusion: MethodSpec = {
  name: 'arcee_fusion',
  needsBase: true,
  globalParams: {},
  modelParams: {},
  create(ctx) {
    checkModelCount('arcee_fusion', ctx, ctx.models === 1, 'the base model with exactly one other model');
    return methodOf('arcee_fusion', true, (info) => fusionMerge(info));
  },
};

/** The selection methods by mergekit name. */
export const SELECTION_METHODS: Readonly<Record<string, MethodSpec>> = {
  nearswap,
  ram,
  ramplus_tl: ramplusTl,
  arcee_fusion: arceeFusion,
};
