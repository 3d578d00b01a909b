// ToMe's variants on the context's backend: each runs its similarity step on the backend's
// bestMatch or cosineSimilarity kernel over gathered A and B rows, then builds its plan with the
// shared host code of src/reference/token-merging-variants.ts (so choices and tie rules are the
// same on every backend). Papers and sections: see that file's header.
import type { Backend } from '../backends.ts';
import { DeviceTensor } from '../device-tensor.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import * as tome from '../reference/bipartite-soft-matching.ts';
import * as ref from '../reference/token-merging-variants.ts';
import { checkFinite, checkTensor, type Tensor } from '../tensor.ts';
import { TokenMergePlan, checkMode, type MergeMode } from './merge-plan.ts';
import { boolean, finite, integer, options as checkOptions } from '../validate.ts';


/** Options of mk.bipartiteSoftMatchingRandom2d: those of the reference. */
export type Random2dMatchingOptions = ref.Random2dOptions;

export interface ThresholdMatchingOptions {
  /** Merge every A token whose best cosine similarity is strictly above this (a finite number). */
  threshold: number;
  /** At most this many merges per batch item (DyMU's max_r_per_instance). */
  maxR?: number;
  classToken?: boolean;
  distillToken?: boolean;
}

export interface BatchLevelMatchingOptions {
  /** Average merges per item: the batch merges its best r·B edges (r is clamped as ToMe clamps it; 0: nothing). */
  r: number;
  /** Merge every edge strictly above this instead (DyMU's specified_threshold); r = 0 still merges nothing. */
  threshold?: number;
  /** At most this many merges per item (DyMU's max_r_per_instance). */
  maxR?: number;
  classToken?: boolean;
  distillToken?: boolean;
}

export interface PitomeMatchingOptions {
  /** Tokens to remove per batch item (give r or ratio): clamped to half the tokens besides the class token. */
  r?: number;
  /** PiToMe's keep ratio in [0, 1] (give r or ratio): r = floor(T − T·ratio), T = tokens besides the class token. */
  ratio?: number;
  /** The energy margin, a finite number; PiToMe sets it per layer (pitomeMargin). */
  margin: number;
  /** Token 0 is a class token: left out of the energy and first in the output. Default false. */
  classToken?: boolean;
  /** PiToMe's use_bsm_pitome: A/B alternate over all tokens by energy, then ToMe's ranking. Default false. */
  useBsm?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Option checks

/**
 * The metric's values on the host. The variants gather their sets on the host, so a device metric
 * (of this context) is read: on webgpu one readback, on wasm a copy out of its memory.
 */
async function checkMetric(impl: Backend, metric: Tensor | DeviceTensor): Promise<[Float32Array, number, number, number]> {
  if (metric instanceof DeviceTensor) {
    DeviceTensor.storageOf(metric, impl, 'metric');
    if (metric.shape.length !== 3) throw new MergeKernelsError('INVALID_SHAPE', `metric: expected rank 3 [B, N, C], got [${metric.shape.join(', ')}]`, 'metric');
    const host = await metric.read();
    checkFinite('metric', host.data);
    const [batch, tokens, c] = host.shape as [number, number, number];
    return [host.data, batch, tokens, c];
  }
  const m = checkTensor('metric', metric, [3]);
  checkFinite('metric', m.data);
  const [batch, tokens, c] = m.shape as [number, number, number];
  return [m.data, batch, tokens, c];
}

/** Checks a [batch, n, D] tensor against a plan; returns D. */
function checkRows(name: string, t: unknown, batch: number, n: number, plan: string): number {
  const x = checkTensor(name, t, [3]);
  const [b, tokens, d] = x.shape as [number, number, number];
  if (b !== batch || tokens !== n) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected [${batch}, ${n}, D] to match the plan (${plan}), got [${x.shape.join(', ')}]`, name);
  }
  return d;
}

/** Each A row's best B row on the backend; empty sets skip the kernel. */
async function bestMatchOn(
  impl: Backend, metric: Float32Array, batch: number, tokens: number, c: number,
  aIdx: Int32Array, nA: number, bIdx: Int32Array, nB: number, maskFirstA = false, maskFirstB = false,
): Promise<{ score: Float32Array; index: Int32Array }> {
  if (batch === 0 || nA === 0 || nB === 0) return { score: new Float32Array(batch * nA).fill(-Infinity), index: new Int32Array(batch * nA) };
  const a = ref.gatherTokens(metric, batch, tokens, c, aIdx, nA);
  const b = ref.gatherTokens(metric, batch, tokens, c, bIdx, nB);
  return impl.bestMatch(a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
}

const evenOdd = (batch: number, tokens: number) => {
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  return {
    nA, nB,
    aIdx: ref.repeatBatch(Int32Array.from({ length: nA }, (_, i) => 2 * i), batch),
    bIdx: ref.repeatBatch(Int32Array.from({ length: nB }, (_, i) => 2 * i + 1), batch),
  };
};

// ---------------------------------------------------------------------------------------------
// The variants

export async function random2d(impl: Backend, metric: Tensor | DeviceTensor, options: Random2dMatchingOptions): Promise<TokenMergePlan> {
  const [data, batch, tokens, c] = await checkMetric(impl, metric);
  const o = checkOptions('options', options, ['w', 'h', 'sx', 'sy', 'r', 'seed', 'noRand'], true);
  const w = integer('w', o.w, 1, undefined, 'image width in tokens');
  const h = integer('h', o.h, 1, undefined, 'image height in tokens');
  if (w * h !== tokens) {
    throw new MergeKernelsError('INVALID_OPTION', `w: expected w·h to equal the metric's N = ${tokens}, got w = ${w}, h = ${h} (w·h = ${w * h})`, 'w');
  }
  const sx = integer('sx', o.sx, 1, w, 'destination stride along x, at most w');
  const sy = integer('sy', o.sy, 1, h, 'destination stride along y, at most h');
  const r = integer('r', o.r, 0, undefined, 'tokens to remove per batch item');
  const seed = o.seed === undefined ? 0 : integer('seed', o.seed, 0, 0xffffffff, 'seed of the random destinations');
  const noRand = boolean('noRand', o.noRand);
  if (r === 0) return new TokenMergePlan(ref.bipartiteSoftMatchingRandom2d(data, batch, tokens, c, { w, h, sx, sy, r: 0 }), r, 'random2d', impl);
  const sets = ref.random2dSets(w, h, sx, sy, noRand, seed);
  const nA = sets.src.length, nB = sets.dst.length;
  const aIdx = ref.repeatBatch(sets.src, batch), bIdx = ref.repeatBatch(sets.dst, batch);
  const { score, index } = await bestMatchOn(impl, data, batch, tokens, c, aIdx, nA, bIdx, nB);
  return new TokenMergePlan(ref.rankedPlan(batch, tokens, Math.min(r, nA), aIdx, nA, bIdx, nB, score, index), r, 'random2d', impl);
}

export async function kth(impl: Backend, metric: Tensor | DeviceTensor, options: { k: number }): Promise<TokenMergePlan> {
  const [data, batch, tokens, c] = await checkMetric(impl, metric);
  const o = checkOptions('options', options, ['k'], true);
  const k = integer('k', o.k, 1, Math.max(tokens, 1), 'group size: the last of every k tokens is a destination');
  if (k === 1) return new TokenMergePlan(ref.kthBipartiteSoftMatching(data, batch, tokens, c, 1), 0, 'kth', impl);
  const sets = ref.kthSets(tokens, k);
  const nA = sets.src.length, nB = sets.dst.length;
  const aIdx = ref.repeatBatch(sets.src, batch), bIdx = ref.repeatBatch(sets.dst, batch);
  const { index } = await bestMatchOn(impl, data, batch, tokens, c, aIdx, nA, bIdx, nB);
  return new TokenMergePlan(ref.allMergedPlan(batch, tokens, aIdx, nA, bIdx, nB, index), tokens - nB, 'kth', impl);
}

export async function random(impl: Backend, metric: Tensor | DeviceTensor, options: { r: number; seed?: number }): Promise<TokenMergePlan> {
  const [data, batch, tokens, c] = await checkMetric(impl, metric);
  const o = checkOptions('options', options, ['r', 'seed'], true);
  const rReq = integer('r', o.r, 0, undefined, 'tokens to remove per batch item');
  const seed = o.seed === undefined ? 0 : integer('seed', o.seed, 0, 0xffffffff, 'seed of the random split');
  const r = ref.randomR(rReq, tokens);
  if (r === 0) return new TokenMergePlan(ref.randomBipartiteSoftMatching(data, batch, tokens, c, 0, seed), rReq, 'random', impl);
  const { aIdx, bIdx } = ref.randomSets(batch, tokens, r, seed);
  const { index } = await bestMatchOn(impl, data, batch, tokens, c, aIdx, r, bIdx, tokens - r);
  return new TokenMergePlan(ref.allMergedPlan(batch, tokens, aIdx, r, bIdx, tokens - r, index), rReq, 'random', impl);
}

export async function pitome(impl: Backend, metric: Tensor | DeviceTensor, options: PitomeMatchingOptions): Promise<TokenMergePlan> {
  const [data, batch, tokens, c] = await checkMetric(impl, metric);
  const o = checkOptions('options', options, ['r', 'ratio', 'margin', 'classToken', 'useBsm'], true);
  if ((o.r === undefined) === (o.ratio === undefined)) {
    throw new MergeKernelsError('INVALID_OPTION', `r: expected exactly one of r (tokens to remove) and ratio (share of tokens to keep), got ${o.r === undefined ? 'neither' : 'both'}`, 'r');
  }
  const r = o.r === undefined ? undefined : integer('r', o.r, 0, undefined, 'tokens to remove per batch item');
  const ratio = o.ratio === undefined ? undefined : finite('ratio', o.ratio, 'share of tokens to keep, in [0, 1]');
  if (ratio !== undefined && (ratio < 0 || ratio > 1)) {
    throw new MergeKernelsError('INVALID_OPTION', `ratio: expected a number in [0, 1] (share of tokens to keep), got ${ratio}`, 'ratio');
  }
  const margin = finite('margin', o.margin, 'the energy margin, e.g. pitomeMargin(layer, layers)');
  const classToken = boolean('classToken', o.classToken);
  const useBsm = boolean('useBsm', o.useBsm);
  const method = useBsm ? 'pitome-bsm' : 'pitome';
  const t = tokens - (classToken && tokens > 0 ? 1 : 0);
  const requested = ratio !== undefined ? (ratio < 1 ? Math.floor(t - t * ratio) : 0) : r!;
  const rEff = ref.pitomeR({ r, ratio }, tokens, classToken && tokens > 0);
  const cls = classToken && tokens > 0;
  if (rEff === 0 || batch === 0) return new TokenMergePlan(ref.pitomeSoftMatching(data, batch, tokens, c, { r: 0, margin, classToken: cls }), requested, method, impl);
  const rows = ref.pitomeRows(data, batch, tokens, c, cls);
  const sim = await impl.cosineSimilarity(rows, rows, batch, t, t, c);
  return new TokenMergePlan(ref.pitomePlan(sim, batch, tokens, rEff, margin, cls, useBsm), requested, method, impl);
}

/**
 * DToMe's plan: one ToMe plan per batch item, each with its own r (so outputs differ in length).
 * merge returns one tensor per item; unmerge takes them back. Holds O(B·N) integers.
 */
export class ThresholdMergePlan {
  readonly batch: number;
  readonly tokens: number;
  readonly threshold: number;
  readonly maxR: number | undefined;
  readonly classToken: boolean;
  readonly distillToken: boolean;
  /** [B]: tokens each item merges away, min(#(best score > threshold), (N − protected) // 2, maxR). */
  readonly r: Int32Array;
  /** One plan per batch item (batch 1 each): its indices, and what mk.mergeWavg / mk.mergeSource take. */
  readonly items: readonly TokenMergePlan[];

  /** @internal built by mk.thresholdSoftMatching */
  constructor(batch: number, tokens: number, o: Required<Omit<ThresholdMatchingOptions, 'maxR'>> & { maxR: number | undefined }, r: Int32Array, items: TokenMergePlan[]) {
    this.batch = batch;
    this.tokens = tokens;
    this.threshold = o.threshold;
    this.maxR = o.maxR;
    this.classToken = o.classToken;
    this.distillToken = o.distillToken;
    this.r = r;
    this.items = items;
  }

  /** `x [B, N, D]` → one tensor `[1, N − r_b, D]` per batch item, in ToMe's output order. */
  merge(x: Tensor, options: { mode?: MergeMode } = {}): Tensor[] {
    const mode = checkMode(options);
    const d = checkRows('x', x, this.batch, this.tokens, `B = ${this.batch}, N = ${this.tokens}`);
    const n = this.tokens * d;
    return this.items.map((p, t) => p.merge({ data: x.data.subarray(t * n, (t + 1) * n), shape: [1, this.tokens, d] }, { mode }));
  }

  /** One tensor `[1, N − r_b, D]` per item → `[B, N, D]`: every token gets the row it went into. */
  unmerge(ys: Tensor[]): Tensor {
    if (!Array.isArray(ys) || ys.length !== this.batch) {
      throw new MergeKernelsError('INVALID_TYPE', `ys: expected an array of ${this.batch} tensors (one per batch item, as merge returns), got ${describe(ys)}`, 'ys');
    }
    let d = -1;
    const parts = ys.map((y, t) => {
      const dt = checkRows(`ys[${t}]`, y, 1, this.tokens - this.r[t]!, `item ${t}: N = ${this.tokens}, r = ${this.r[t]}`);
      if (d >= 0 && dt !== d) throw new MergeKernelsError('SHAPE_MISMATCH', `ys[${t}]: expected D = ${d} like ys[0], got ${dt}`, `ys[${t}]`);
      d = dt;
      return this.items[t]!.unmerge(y).data;
    });
    const out = new Float32Array(this.batch * this.tokens * Math.max(d, 0));
    parts.forEach((p, t) => out.set(p, t * p.length));
    return { data: out, shape: [this.batch, this.tokens, Math.max(d, 0)] };
  }
}

export async function threshold(impl: Backend, metric: Tensor | DeviceTensor, options: ThresholdMatchingOptions): Promise<ThresholdMergePlan> {
  const [data, batch, tokens, c] = await checkMetric(impl, metric);
  const o = checkOptions('options', options, ['threshold', 'maxR', 'classToken', 'distillToken'], true);
  const thr = finite('threshold', o.threshold, 'merge A tokens whose best cosine similarity is above it');
  const maxR = o.maxR === undefined ? undefined : integer('maxR', o.maxR, 0, undefined, 'most merges per batch item');
  const classToken = boolean('classToken', o.classToken), distillToken = boolean('distillToken', o.distillToken);
  const { nA, nB, aIdx, bIdx } = evenOdd(batch, tokens);
  const { score, index } = await bestMatchOn(impl, data, batch, tokens, c, aIdx, nA, bIdx, nB, classToken, distillToken);
  const r = ref.thresholdR(score, batch, nA, tokens, thr, maxR ?? Infinity, classToken, distillToken);
  const items = ref.thresholdPlans(batch, tokens, r, classToken, distillToken, score, index).map((p) => new TokenMergePlan(p, p.r, 'bipartite', impl));
  return new ThresholdMergePlan(batch, tokens, { threshold: thr, maxR, classToken, distillToken }, r, items);
}

/**
 * DyMU's batch-level plan (its training path): shapes stay `[B, N]`. merge's output holds, per
 * item, the even tokens then the odd tokens (DyMU's cat[A, B]); a merged slot is zero and marked
 * 1 in the padding mask. Holds O(B·N) integers.
 */
export class BatchLevelMergePlan {
  readonly batch: number;
  readonly tokens: number;
  /** The per-item r after ToMe's clamp (the batch merges r·B edges unless a threshold is given). */
  readonly r: number;
  readonly requestedR: number;
  /** [B]: tokens each item merged. */
  readonly merged: Int32Array;
  /** Edges merged, best first, flattened over the batch: src = item·|A| + A index, dst = B index. */
  readonly srcIdx: Int32Array;
  readonly dstIdx: Int32Array;
  /** [B, N]: merge's output slot of every token. */
  readonly outputRow: Int32Array;
  /** [B, N] as 0/1: 1 where merge's output slot holds no token (DyMU's padding mask). */
  readonly paddingMask: Uint8Array;
  /** max(0, the best score left unmerged): what DyMU's training averages into its threshold. Undefined when a threshold was given or nothing was ranked. */
  readonly batchThreshold: number | undefined;

  /** @internal built by mk.batchLevelSoftMatching */
  constructor(plan: ref.BatchLevelPlan, requestedR: number) {
    this.batch = plan.batch;
    this.tokens = plan.tokens;
    this.r = plan.r;
    this.requestedR = requestedR;
    this.merged = plan.merged;
    this.srcIdx = plan.srcIdx;
    this.dstIdx = plan.dstIdx;
    this.outputRow = plan.outputRow;
    this.paddingMask = plan.paddingMask;
    this.batchThreshold = plan.batchThreshold;
  }

  /** `x [B, N, D]` → `{ x: [B, N, D], paddingMask: [B, N] }`: merged slots zero, every token reduced into its slot. */
  merge(x: Tensor, options: { mode?: MergeMode } = {}): { x: Tensor; paddingMask: Tensor } {
    const mode = checkMode(options);
    const d = checkRows('x', x, this.batch, this.tokens, `B = ${this.batch}, N = ${this.tokens}`);
    return {
      x: { data: ref.batchLevelMerge(this, x.data, d, mode), shape: [this.batch, this.tokens, d] },
      paddingMask: { data: Float32Array.from(this.paddingMask), shape: [this.batch, this.tokens] },
    };
  }

  /** `y [B, N, D]` (merge's slots) → `[B, N, D]` in the original token order; merged tokens get their destination's row. */
  unmerge(y: Tensor): Tensor {
    const d = checkRows('y', y, this.batch, this.tokens, `B = ${this.batch}, N = ${this.tokens}`);
    return { data: tome.ungroupRows(this.outputRow, this.batch, this.tokens, this.tokens, y.data, d), shape: [this.batch, this.tokens, d] };
  }
}

export async function batchLevel(impl: Backend, metric: Tensor | DeviceTensor, options: BatchLevelMatchingOptions): Promise<BatchLevelMergePlan> {
  const [data, batch, tokens, c] = await checkMetric(impl, metric);
  const o = checkOptions('options', options, ['r', 'threshold', 'maxR', 'classToken', 'distillToken'], true);
  const r = integer('r', o.r, 0, undefined, 'average merges per batch item');
  const thr = o.threshold === undefined ? undefined : finite('threshold', o.threshold, 'merge edges whose score is above it');
  const maxR = o.maxR === undefined ? undefined : integer('maxR', o.maxR, 0, undefined, 'most merges per batch item');
  const classToken = boolean('classToken', o.classToken), distillToken = boolean('distillToken', o.distillToken);
  const opts = { r, threshold: thr, maxR, classToken, distillToken };
  if (tome.effectiveR(r, tokens, classToken, distillToken) === 0) return new BatchLevelMergePlan(ref.batchLevelSoftMatching(data, batch, tokens, c, opts), r);
  const { nA, nB, aIdx, bIdx } = evenOdd(batch, tokens);
  const { score, index } = await bestMatchOn(impl, data, batch, tokens, c, aIdx, nA, bIdx, nB, classToken, distillToken);
  return new BatchLevelMergePlan(ref.batchLevelPlan(batch, tokens, score, index, opts), r);
}
