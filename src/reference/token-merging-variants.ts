// Plain TypeScript references for ToMe's descendants, written for clarity (the oracle of the
// wasm and WebGPU paths). Each follows the published code as METHODS.md sets it out:
// - bipartiteSoftMatchingRandom2d: Bolya & Hoffman, "Token Merging for Fast Stable Diffusion",
//   CVPRW 2023, §4.1 (dbolya/tomesd tomesd/merge.py, bipartite_soft_matching_random2d).
// - kthBipartiteSoftMatching, randomBipartiteSoftMatching: Bolya et al., "Token Merging: Your ViT
//   but Faster", ICLR 2023, Appendix (facebookresearch/ToMe tome/merge.py).
// - thresholdSoftMatching, batchLevelSoftMatching: Wang et al., "DyMU: Dynamic Merging and Virtual
//   Unmerging for Efficient VLMs", 2025, §3.1 DToMe (MikeWangWZHL/dymu src/open_clip/tome.py).
// - pitomeSoftMatching: Tran et al., "Accelerating Transformers with Spectrum-Preserving Token
//   Merging", NeurIPS 2024, §4 (hchautran/PiToMe algo/pitome/merge.py, pitome_vision).
//
// Every plan is a MergePlan whose `outputRow` says where each token lands, so one merge and one
// unmerge (groupRows/ungroupRows) serve every variant. Canonical rules shared with ToMe's
// reference: the best match is the lowest B index on ties; rankings are stable descending sorts
// (lower index first); zero metric rows have similarity 0. Randomness comes from seededStream,
// our own generator, so a seed gives the same choice on every backend and runtime (PyTorch's
// torch.rand/randint streams are not reproduced).

import { cosineSimilarity } from './cosine-similarity.ts';
import { bestMatch, descendingOrder, effectiveR, groupRows, planFromMatches, type MergeMode, type MergePlan } from './bipartite-soft-matching.ts';

// ---------------------------------------------------------------------------------------------
// Shared pieces

/**
 * Our seeded generator: uniform 32-bit integers from mulberry32, started from a state that mixes
 * `seed` and `stream` (e.g. the batch item). Integer arithmetic only, so every runtime and backend
 * draws the same numbers for the same seed.
 */
export function seededStream(seed: number, stream: number): () => number {
  let s = mix32((seed >>> 0) ^ mix32((stream + 0x9e3779b9) >>> 0));
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** An integer in [0, k) from a 32-bit draw (bias below k / 2^32). */
function below(next: () => number, k: number): number {
  return Math.floor((next() / 4294967296) * k);
}

/** murmur3's finaliser: spreads nearby seeds and streams over the whole state space. */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Rows idx[b, i] of each batch item of x [batch, tokens, c] → [batch, n, c], idx being [batch, n]. */
export function gatherTokens(x: Float32Array, batch: number, tokens: number, c: number, idx: Int32Array, n: number): Float32Array {
  const out = new Float32Array(batch * n * c);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < n; i++) {
      const from = (t * tokens + idx[t * n + i]!) * c;
      out.set(x.subarray(from, from + c), (t * n + i) * c);
    }
  }
  return out;
}

/** The identity plan (nothing merged, original order) in the variants' form. */
function identityPlan(batch: number, tokens: number, classToken = false): MergePlan {
  const outputRow = new Int32Array(batch * tokens);
  for (let i = 0; i < outputRow.length; i++) outputRow[i] = i % tokens;
  return {
    batch, tokens, r: 0, classToken, distillToken: false,
    unmergedIdx: new Int32Array(0), srcIdx: new Int32Array(0), dstIdx: new Int32Array(0),
    aIdx: new Int32Array(0), bIdx: new Int32Array(0), outputRow,
  };
}

/**
 * Writes one item's output order: `head` token positions first (in order), then every B token
 * (positions bPos, in order); source A positions srcPos[k] land on their destination's row.
 * Tokens in none of these are dropped (-1).
 */
function writeRows(row: Int32Array, head: ArrayLike<number>, bPos: ArrayLike<number>, srcPos: ArrayLike<number>, dst: ArrayLike<number>): void {
  row.fill(-1);
  for (let i = 0; i < head.length; i++) row[head[i]!] = i;
  for (let j = 0; j < bPos.length; j++) row[bPos[j]!] = head.length + j;
  for (let k = 0; k < srcPos.length; k++) row[srcPos[k]!] = head.length + dst[k]!;
}

/**
 * ToMe's ranking on arbitrary sets: A (positions aIdx [batch, nA]) and B (bIdx [batch, nB]), each
 * A's best B (score, index [batch, nA]); the r best-scoring A tokens merge (stable descending
 * order). Output order cat[head, unmerged A (edge order), B]. `head` [batch, h] are positions
 * kept in front and in neither set (PiToMe's class token).
 */
export function rankedPlan(
  batch: number, tokens: number, r: number, aIdx: Int32Array, nA: number, bIdx: Int32Array, nB: number,
  score: Float32Array, index: Int32Array, head: Int32Array = new Int32Array(0), classToken = false,
): MergePlan {
  const h = batch > 0 ? head.length / batch : 0;
  const plan: MergePlan = {
    batch, tokens, r, classToken, distillToken: false,
    unmergedIdx: new Int32Array(batch * (nA - r)), srcIdx: new Int32Array(batch * r), dstIdx: new Int32Array(batch * r),
    aIdx, bIdx, outputRow: new Int32Array(batch * tokens),
  };
  for (let t = 0; t < batch; t++) {
    const edge = descendingOrder(score.subarray(t * nA, (t + 1) * nA));
    const a = aIdx.subarray(t * nA, (t + 1) * nA);
    const unm = edge.slice(r), src = edge.slice(0, r);
    const dst = src.map((i) => index[t * nA + i]!);
    plan.unmergedIdx.set(unm, t * (nA - r));
    plan.srcIdx.set(src, t * r);
    plan.dstIdx.set(dst, t * r);
    const front = [...head.subarray(t * h, (t + 1) * h), ...unm.map((i) => a[i]!)];
    writeRows(plan.outputRow!.subarray(t * tokens, (t + 1) * tokens), front, bIdx.subarray(t * nB, (t + 1) * nB), src.map((i) => a[i]!), dst);
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// tomesd: random 2-D strided destinations

export interface Random2dOptions {
  /** Image width in tokens; w·h must equal N. */
  w: number;
  /** Image height in tokens. */
  h: number;
  /** Destination stride along x (columns): a positive integer at most w. */
  sx: number;
  /** Destination stride along y (rows): a positive integer at most h. */
  sy: number;
  /** Tokens to remove per batch item; clamped to the number of source tokens (plan.r says). tomesd's patch passes int(N·ratio). */
  r: number;
  /** Seed of the random destination in each cell: an integer in [0, 2^32). Default 0; ignored with noRand. */
  seed?: number;
  /** Every cell's top-left token is its destination (tomesd's no_rand). Default false. */
  noRand?: boolean;
}

/**
 * tomesd's partition: one destination per sy × sx cell of the top-left floor(h/sy)·sy ×
 * floor(w/sx)·sx region, at a random offset in the cell (one draw per cell, raster order of
 * cells, stream 0, shared by the batch) or the top-left with noRand; every other token
 * (including rows and columns beyond the region) is a source. Returns the positions ascending.
 */
export function random2dSets(w: number, h: number, sx: number, sy: number, noRand: boolean, seed: number): { src: Int32Array; dst: Int32Array } {
  const hsy = Math.floor(h / sy), wsx = Math.floor(w / sx);
  const isDst = new Uint8Array(w * h);
  const next = seededStream(seed, 0);
  for (let cy = 0; cy < hsy; cy++) {
    for (let cx = 0; cx < wsx; cx++) {
      const o = noRand ? 0 : below(next, sx * sy);
      // Offset o is (row o / sx, column o % sx) inside the cell, as tomesd's view(sy, sx).
      isDst[(cy * sy + Math.floor(o / sx)) * w + cx * sx + (o % sx)] = 1;
    }
  }
  const dst: number[] = [], src: number[] = [];
  for (let i = 0; i < w * h; i++) (isDst[i] ? dst : src).push(i);
  return { src: Int32Array.from(src), dst: Int32Array.from(dst) };
}

/** Repeats an index set [n] for every batch item → [batch, n]. */
export function repeatBatch(idx: Int32Array, batch: number): Int32Array {
  const out = new Int32Array(batch * idx.length);
  for (let t = 0; t < batch; t++) out.set(idx, t * idx.length);
  return out;
}

/**
 * tomesd's bipartite_soft_matching_random2d on metric [batch, w·h, c]: A = sources, B = one
 * destination per cell (both in raster order — tomesd's unstable argsort leaves that order
 * backend-defined; raster is our canonical one), r = min(r, |A|), then ToMe's ranking with no
 * protected token. Output cat[unmerged A (edge order), B]; unmerge scatters back to the original
 * positions.
 */
export function bipartiteSoftMatchingRandom2d(metric: Float32Array, batch: number, tokens: number, c: number, o: Random2dOptions): MergePlan {
  if (o.r <= 0) return identityPlan(batch, tokens);
  const sets = random2dSets(o.w, o.h, o.sx, o.sy, o.noRand ?? false, o.seed ?? 0);
  const nA = sets.src.length, nB = sets.dst.length;
  const aIdx = repeatBatch(sets.src, batch), bIdx = repeatBatch(sets.dst, batch);
  const r = Math.min(o.r, nA);
  const { score, index } = bestMatch(gatherTokens(metric, batch, tokens, c, aIdx, nA), gatherTokens(metric, batch, tokens, c, bIdx, nB), batch, nA, nB, c, false, false);
  return rankedPlan(batch, tokens, r, aIdx, nA, bIdx, nB, score, index);
}

// ---------------------------------------------------------------------------------------------
// ToMe's k-th and random bipartite matching

/** kth's sets: groups of k consecutive tokens (N truncated to a multiple of k); A = the first k - 1 of each group, B = the last. */
export function kthSets(tokens: number, k: number): { src: Int32Array; dst: Int32Array } {
  const groups = Math.floor(tokens / k);
  const src = new Int32Array(groups * (k - 1)), dst = new Int32Array(groups);
  for (let g = 0; g < groups; g++) {
    for (let i = 0; i < k - 1; i++) src[g * (k - 1) + i] = g * k + i;
    dst[g] = g * k + k - 1;
  }
  return { src, dst };
}

/** Every A token of `score`/`index` merges into its best B: the plan once the match is known (kth, random, PiToMe). */
export function allMergedPlan(
  batch: number, tokens: number, aIdx: Int32Array, nA: number, bIdx: Int32Array, nB: number, index: Int32Array,
  head: Int32Array = new Int32Array(0), classToken = false,
): MergePlan {
  const h = batch > 0 ? head.length / batch : 0;
  const plan: MergePlan = {
    batch, tokens, r: tokens - h - nB, classToken, distillToken: false,
    unmergedIdx: new Int32Array(0), srcIdx: new Int32Array(batch * nA), dstIdx: new Int32Array(index),
    aIdx, bIdx, outputRow: new Int32Array(batch * tokens),
  };
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < nA; i++) plan.srcIdx[t * nA + i] = i;
    writeRows(plan.outputRow!.subarray(t * tokens, (t + 1) * tokens), head.subarray(t * h, (t + 1) * h),
      bIdx.subarray(t * nB, (t + 1) * nB), aIdx.subarray(t * nA, (t + 1) * nA), index.subarray(t * nA, (t + 1) * nA));
  }
  return plan;
}

/**
 * ToMe's kth_bipartite_soft_matching: in every group of k consecutive tokens the first k - 1
 * merge into their best match among the groups' last tokens; output = the last tokens, N // k of
 * them (a tail of N mod k tokens is dropped: unmerge gives it zeros, where ToMe's unmerge returns
 * only (N // k)·k rows). k = 1 is the identity. No protected tokens.
 */
export function kthBipartiteSoftMatching(metric: Float32Array, batch: number, tokens: number, c: number, k: number): MergePlan {
  if (k <= 1) return identityPlan(batch, tokens);
  const sets = kthSets(tokens, k);
  const nA = sets.src.length, nB = sets.dst.length;
  const aIdx = repeatBatch(sets.src, batch), bIdx = repeatBatch(sets.dst, batch);
  const { index } = bestMatch(gatherTokens(metric, batch, tokens, c, aIdx, nA), gatherTokens(metric, batch, tokens, c, bIdx, nB), batch, nA, nB, c, false, false);
  return allMergedPlan(batch, tokens, aIdx, nA, bIdx, nB, index);
}

/** random's r, clamped so that B keeps at least one token (ToMe has no cap and fails there). */
export function randomR(r: number, tokens: number): number {
  return Math.max(0, Math.min(r, tokens - 1));
}

/**
 * Per batch item, a uniform random permutation of the tokens (Fisher–Yates on seededStream(seed,
 * item)); A = its first r entries, B = the rest, both in permutation order → [batch, r], [batch, N - r].
 */
export function randomSets(batch: number, tokens: number, r: number, seed: number): { aIdx: Int32Array; bIdx: Int32Array } {
  const aIdx = new Int32Array(batch * r), bIdx = new Int32Array(batch * (tokens - r));
  for (let t = 0; t < batch; t++) {
    const next = seededStream(seed, t);
    const perm = Array.from({ length: tokens }, (_, i) => i);
    for (let i = tokens - 1; i > 0; i--) {
      const j = below(next, i + 1);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    aIdx.set(perm.slice(0, r), t * r);
    bIdx.set(perm.slice(r), t * (tokens - r));
  }
  return { aIdx, bIdx };
}

/**
 * ToMe's random_bipartite_soft_matching: r tokens chosen at random (our seeded permutation, not
 * torch.rand) all merge into their best match among the others; output = B in permutation order.
 * No protected tokens.
 */
export function randomBipartiteSoftMatching(metric: Float32Array, batch: number, tokens: number, c: number, rRequested: number, seed: number): MergePlan {
  const r = randomR(rRequested, tokens);
  if (r === 0) return identityPlan(batch, tokens);
  const { aIdx, bIdx } = randomSets(batch, tokens, r, seed);
  const nB = tokens - r;
  const { index } = bestMatch(gatherTokens(metric, batch, tokens, c, aIdx, r), gatherTokens(metric, batch, tokens, c, bIdx, nB), batch, r, nB, c, false, false);
  return allMergedPlan(batch, tokens, aIdx, r, bIdx, nB, index);
}

// ---------------------------------------------------------------------------------------------
// DyMU's DToMe: threshold merging and the batch-level training path

/**
 * DToMe's per-item r (DyMU bipartite_soft_matching with specified_threshold): the number of A
 * tokens whose best score is strictly above `threshold`, capped by ToMe's (N - protected) // 2
 * and by maxR. `score` is ToMe's [batch, |A|] best scores (-Infinity for a class token).
 */
export function thresholdR(score: Float32Array, batch: number, nA: number, tokens: number, threshold: number, maxR: number, classToken: boolean, distillToken: boolean): Int32Array {
  const r = new Int32Array(batch);
  for (let t = 0; t < batch; t++) {
    let count = 0;
    for (let i = 0; i < nA; i++) if (score[t * nA + i]! > threshold) count++;
    r[t] = Math.min(effectiveR(count, tokens, classToken, distillToken), maxR);
  }
  return r;
}

/** Per batch item, a one-item ToMe plan with that item's r. */
export function thresholdPlans(
  batch: number, tokens: number, rPerItem: Int32Array, classToken: boolean, distillToken: boolean, score: Float32Array, index: Int32Array,
): MergePlan[] {
  const nA = Math.ceil(tokens / 2);
  return Array.from({ length: batch }, (_, t) => planFromMatches(1, tokens, rPerItem[t]!, classToken, distillToken,
    score.subarray(t * nA, (t + 1) * nA), index.subarray(t * nA, (t + 1) * nA)));
}

export interface ThresholdOptions {
  /** Merge every A token whose best cosine similarity is strictly above this. */
  threshold: number;
  /** At most this many merges per batch item (DyMU's max_r_per_instance). */
  maxR?: number;
  classToken?: boolean;
  distillToken?: boolean;
}

/**
 * DToMe at inference: ToMe's sets and scores; each batch item merges its own
 * r_b = min(#(best score > threshold), (N - protected) // 2, maxR) best edges. (DyMU's code takes
 * one r for the whole batch from item 0 and expects B = 1; here every item has its own.)
 */
export function thresholdSoftMatching(metric: Float32Array, batch: number, tokens: number, c: number, o: ThresholdOptions): MergePlan[] {
  const cls = o.classToken ?? false, dist = o.distillToken ?? false;
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  const parity = (p: 0 | 1, n: number) => repeatBatch(Int32Array.from({ length: n }, (_, i) => 2 * i + p), batch);
  const { score, index } = nB > 0
    ? bestMatch(gatherTokens(metric, batch, tokens, c, parity(0, nA), nA), gatherTokens(metric, batch, tokens, c, parity(1, nB), nB), batch, nA, nB, c, cls, dist)
    : { score: new Float32Array(batch * nA).fill(-Infinity), index: new Int32Array(batch * nA) };
  const r = thresholdR(score, batch, nA, tokens, o.threshold, o.maxR ?? Infinity, cls, dist);
  return thresholdPlans(batch, tokens, r, cls, dist, score, index);
}

/**
 * The batch-level plan (DyMU's training path): shapes stay [batch, N]. Output order per item is
 * cat[A, B] (even tokens, then odd tokens, as DyMU's merge returns them); a merged A slot becomes
 * zeros and is marked 1 in `paddingMask` (1 = padding, 0 = a token, DyMU's convention).
 */
export interface BatchLevelPlan {
  batch: number;
  tokens: number;
  /** The per-item r after ToMe's clamp; the batch merges r·batch edges in all (or the threshold's count). */
  r: number;
  /** [batch]: how many tokens each item merged. */
  merged: Int32Array;
  /** Flattened over the batch, best first: src = (item·|A| + A index), dst = the B index it merged into. */
  srcIdx: Int32Array;
  dstIdx: Int32Array;
  /** [batch, N]: the output slot of each token (merged A tokens: their destination's slot). */
  outputRow: Int32Array;
  /** [batch, N]: 1 where merge's output slot holds no token. */
  paddingMask: Uint8Array;
  /** The score of the first edge left unmerged, clamped at 0: what DyMU averages into its learned threshold. Undefined when a threshold chose the edges. */
  batchThreshold: number | undefined;
}

export interface BatchLevelOptions {
  /** Merges per item on average: the batch merges the global top r·batch edges. */
  r: number;
  /** Merge every edge strictly above this instead of the top r·batch (r ≤ 0 still means nothing). */
  threshold?: number;
  /** At most this many merges per item (DyMU's max_r_per_instance). */
  maxR?: number;
  classToken?: boolean;
  distillToken?: boolean;
}

/**
 * DyMU's batch_level_bipartite_soft_matching from ToMe's scores [batch, |A|]: with maxR, each
 * item's A tokens beyond its own maxR best are excluded; then all items' best scores are ranked
 * together (stable, flattened index item·|A| + i) and the top r·batch merge (or all above
 * `threshold`). Never more than the finite scores: DyMU would also "merge" excluded or class
 * tokens (score -inf) when they run out; we stop there.
 */
export function batchLevelPlan(
  batch: number, tokens: number, score: Float32Array, index: Int32Array, o: BatchLevelOptions,
): BatchLevelPlan {
  const cls = o.classToken ?? false, dist = o.distillToken ?? false;
  const r = effectiveR(o.r, tokens, cls, dist);
  const nA = Math.ceil(tokens / 2);
  const outputRow = new Int32Array(batch * tokens);
  const plan: BatchLevelPlan = {
    batch, tokens, r, merged: new Int32Array(batch), srcIdx: new Int32Array(0), dstIdx: new Int32Array(0),
    outputRow, paddingMask: new Uint8Array(batch * tokens), batchThreshold: undefined,
  };
  if (r === 0) {
    for (let i = 0; i < outputRow.length; i++) outputRow[i] = i % tokens;
    return plan;
  }
  const nodeMax = new Float32Array(score);
  if (o.maxR !== undefined) {
    for (let t = 0; t < batch; t++) {
      const own = descendingOrder(nodeMax.subarray(t * nA, (t + 1) * nA));
      for (const i of own.slice(o.maxR)) nodeMax[t * nA + i] = -Infinity;
    }
  }
  const edge = descendingOrder(nodeMax);
  let finite = 0;
  for (const s of nodeMax) if (s > -Infinity) finite++;
  let rb: number;
  if (o.threshold !== undefined) {
    rb = 0;
    for (const s of nodeMax) if (s > o.threshold) rb++;
  } else {
    rb = r * batch;
    const j = Math.min(rb, edge.length - 1);
    if (j >= 0) plan.batchThreshold = Math.max(nodeMax[edge[j]!]!, 0);
  }
  rb = Math.min(rb, finite);
  plan.srcIdx = Int32Array.from(edge.slice(0, rb));
  plan.dstIdx = Int32Array.from(plan.srcIdx, (e) => index[e]!);
  // Slots: A index i → i, B index j → nA + j; a merged A token goes to its destination's slot.
  for (let t = 0; t < batch; t++) {
    for (let tok = 0; tok < tokens; tok++) outputRow[t * tokens + tok] = tok % 2 === 0 ? tok / 2 : nA + (tok - 1) / 2;
  }
  for (let k = 0; k < rb; k++) {
    const t = Math.floor(plan.srcIdx[k]! / nA), i = plan.srcIdx[k]! % nA;
    outputRow[t * tokens + 2 * i] = nA + plan.dstIdx[k]!;
    plan.paddingMask[t * tokens + i] = 1;
    plan.merged[t]!++;
  }
  return plan;
}

/** DyMU's batch-level matching on metric [batch, N, c], with ToMe's even/odd sets and scores. */
export function batchLevelSoftMatching(metric: Float32Array, batch: number, tokens: number, c: number, o: BatchLevelOptions): BatchLevelPlan {
  const cls = o.classToken ?? false, dist = o.distillToken ?? false;
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  if (effectiveR(o.r, tokens, cls, dist) === 0) return batchLevelPlan(batch, tokens, new Float32Array(0), new Int32Array(0), o);
  const parity = (p: 0 | 1, n: number) => repeatBatch(Int32Array.from({ length: n }, (_, i) => 2 * i + p), batch);
  const { score, index } = bestMatch(gatherTokens(metric, batch, tokens, c, parity(0, nA), nA), gatherTokens(metric, batch, tokens, c, parity(1, nB), nB), batch, nA, nB, c, cls, dist);
  return batchLevelPlan(batch, tokens, score, index, o);
}

/** Batch-level merge: x [batch, N, dim] → [batch, N, dim] in cat[A, B] order, merged slots zero. */
export function batchLevelMerge(plan: BatchLevelPlan, x: Float32Array, dim: number, mode: MergeMode): Float32Array {
  return new Float32Array(groupRows(plan.outputRow, plan.batch, plan.tokens, plan.tokens, x, dim, mode));
}

// ---------------------------------------------------------------------------------------------
// PiToMe: energy-scored token merging

/**
 * PiToMe's per-layer margin as its patches set it: start − drop·layer/layers. The ViT (timm/aug),
 * BLIP and HF CLIP patches use start = drop = 0.9; DeiT and MAE 0.75; open_clip CLIP 0.95;
 * BERT/DistilBERT start 0.9, drop 0.25; BLIP-2 start 0.75, drop 0.4.
 */
export function pitomeMargin(layer: number, layers: number, start = 0.9, drop = start): number {
  return start - drop * (layer / layers);
}

/** ELU with alpha 1: x above 0, e^x − 1 below. */
function elu(x: number): number {
  return x > 0 ? x : Math.expm1(x);
}

/**
 * Energy of every token from its cosine similarities sim [batch, n, n]: the mean over all j (itself
 * included) of ELU(sim_ij − margin), in float64.
 */
export function pitomeEnergy(sim: Float32Array, batch: number, n: number, margin: number): Float64Array {
  const energy = new Float64Array(batch * n);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += elu(sim[(t * n + i) * n + j]! - margin);
      energy[t * n + i] = s / n;
    }
  }
  return energy;
}

export interface PitomeOptions {
  /** Tokens to merge away (after the class token is set aside), at most half of them. */
  r?: number;
  /** PiToMe's keep ratio instead of r: r = floor(T − T·ratio) with T the tokens besides the class token. */
  ratio?: number;
  /** The energy margin (see pitomeMargin). */
  margin: number;
  /** Token 0 is a class token: left out of the metric, first in the output. */
  classToken?: boolean;
  /** PiToMe's use_bsm_pitome: all tokens alternate into A and B by energy, then ToMe's ranking with r. */
  useBsm?: boolean;
}

/** PiToMe's r: from ratio as its code computes it (in float64), or the given r; clamped to [0, T // 2]. */
export function pitomeR(o: { r?: number; ratio?: number }, tokens: number, classToken: boolean): number {
  const t = tokens - (classToken ? 1 : 0);
  const r = o.ratio !== undefined ? (o.ratio < 1 ? Math.floor(t - t * o.ratio) : 0) : o.r ?? 0;
  return Math.max(0, Math.min(r, Math.floor(t / 2)));
}

/**
 * The plan from the similarities sim [batch, T, T] of the tokens besides the class token.
 * Tokens are ordered by energy, descending (stable). Default: the top 2r alternate into A and B
 * (A = order[0, 2, …], B = order[1, 3, …]); every A merges into its most similar B; output
 * [cls, the rest by descending energy, B]. useBsm: A and B alternate over all tokens, and ToMe's
 * ranking merges the r best edges; output [cls, unmerged A (edge order), B].
 */
export function pitomePlan(sim: Float32Array, batch: number, tokens: number, r: number, margin: number, classToken: boolean, useBsm: boolean): MergePlan {
  if (r === 0) return identityPlan(batch, tokens, classToken);
  const off = classToken ? 1 : 0, t = tokens - off;
  const energy = pitomeEnergy(sim, batch, t, margin);
  const nA = useBsm ? Math.ceil(t / 2) : r, nB = useBsm ? Math.floor(t / 2) : r;
  const aIdx = new Int32Array(batch * nA), bIdx = new Int32Array(batch * nB);
  const score = new Float32Array(batch * nA), index = new Int32Array(batch * nA);
  const head = new Int32Array(batch * (useBsm ? off : t - 2 * r + off));
  const h = head.length / batch;
  for (let b = 0; b < batch; b++) {
    const order = descendingOrder(energy.subarray(b * t, (b + 1) * t));
    for (let i = 0; i < nA; i++) aIdx[b * nA + i] = order[2 * i]! + off;
    for (let j = 0; j < nB; j++) bIdx[b * nB + j] = order[2 * j + 1]! + off;
    if (classToken) head[b * h] = 0;
    if (!useBsm) for (let k = 2 * r; k < t; k++) head[b * h + off + k - 2 * r] = order[k]! + off;
    // Best B per A from the similarities: the first (lowest B index) of equal maxima.
    for (let i = 0; i < nA; i++) {
      let best = -Infinity, bestJ = 0;
      for (let j = 0; j < nB; j++) {
        const s = sim[(b * t + order[2 * i]!) * t + order[2 * j + 1]!]!;
        if (j === 0 || s > best) { best = s; bestJ = j; }
      }
      score[b * nA + i] = best;
      index[b * nA + i] = bestJ;
    }
  }
  return useBsm
    ? rankedPlan(batch, tokens, r, aIdx, nA, bIdx, nB, score, index, head, classToken)
    : allMergedPlan(batch, tokens, aIdx, nA, bIdx, nB, index, head, classToken);
}

/** The metric rows PiToMe scores: all tokens, or all but the class token → [batch, T, c]. */
export function pitomeRows(metric: Float32Array, batch: number, tokens: number, c: number, classToken: boolean): Float32Array {
  if (!classToken) return metric;
  const t = tokens - 1;
  const out = new Float32Array(batch * t * c);
  for (let b = 0; b < batch; b++) out.set(metric.subarray((b * tokens + 1) * c, (b + 1) * tokens * c), b * t * c);
  return out;
}

/** PiToMe's pitome_vision on metric [batch, N, c] (see pitomePlan). Memory: the T × T similarities per item. */
export function pitomeSoftMatching(metric: Float32Array, batch: number, tokens: number, c: number, o: PitomeOptions): MergePlan {
  const cls = o.classToken ?? false;
  const r = pitomeR(o, tokens, cls);
  if (r === 0) return identityPlan(batch, tokens, cls);
  const rows = pitomeRows(metric, batch, tokens, c, cls);
  const t = tokens - (cls ? 1 : 0);
  return pitomePlan(cosineSimilarity(rows, rows, batch, t, t, c), batch, tokens, r, o.margin, cls, o.useBsm ?? false);
}
