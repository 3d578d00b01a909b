// How well a compressed KV cache stands in for the full one, without a model: attention outputs
// of many queries over the full cache and over the compressed one (proportional attention with
// log size), compared by relative L2 error ‖o − o_c‖/‖o‖ and by recall of the true top-k attended
// tokens. And the synthetic caches the measure is run on: keys around a few cluster centres, a
// smoothly drifting sequence, the drifting one with rotary position embedding (RoPE, Su et al.
// 2021) applied, and unstructured random keys.
import { attention, type KvCluster } from './kv-clustering.ts';

/** A synthetic cache with queries: keys [H, T, D], values [H, T, Dv], queries [H, Q, D] (one query head per KV head). */
export interface SyntheticCache {
  heads: number;
  tokens: number;
  keyDim: number;
  valueDim: number;
  keys: Float32Array;
  values: Float32Array;
  queries: Float32Array;
  queryCount: number;
  /** [H, Q, D]: other queries from the same process, for scores that must not see `queries` (accumulatedAttention). */
  probes: Float32Array;
}

export type SyntheticKind = 'clusters' | 'drifting' | 'rotary' | 'random';

/** mulberry32 uniform [0, 1) and a Box–Muller normal from it: seeded and the same in every runtime. */
function generator(seed: number): { normal: () => number; uniform: () => number } {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { uniform, normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()) };
}

/** Rotates pairs (2i, 2i + 1) of `x` (width d) by position · 10000^(−2i/d), in place (RoPE). */
function rotate(x: Float32Array, offset: number, d: number, position: number): void {
  for (let i = 0; i + 1 < d; i += 2) {
    const angle = position * Math.pow(10000, -i / d);
    const c = Math.cos(angle), s = Math.sin(angle);
    const a = x[offset + i]!, b = x[offset + i + 1]!;
    x[offset + i] = a * c - b * s;
    x[offset + i + 1] = a * s + b * c;
  }
}

/**
 * A synthetic cache of `kind`:
 * - 'clusters': every token's key is one of `centres` random centres (per head) plus noise of a
 *   quarter of its norm; values likewise around per-centre value centres;
 * - 'drifting': keys and values follow a slow random walk, x_t = ρ·x_{t−1} + √(1 − ρ²)·noise, ρ = 0.98;
 * - 'rotary': the drifting cache with RoPE applied to keys at their positions, and to queries at T;
 * - 'random': independent normal keys and values (no structure to exploit).
 * Queries: the (unrotated) key of a random token plus noise, so that attention is peaked around
 * real tokens as in a trained model.
 */
export function syntheticCache(kind: SyntheticKind, heads: number, tokens: number, keyDim: number, valueDim: number, queryCount: number, seed: number): SyntheticCache {
  const { normal: next, uniform } = generator(seed);
  const keys = new Float32Array(heads * tokens * keyDim), values = new Float32Array(heads * tokens * valueDim);
  const queries = new Float32Array(heads * queryCount * keyDim), probes = new Float32Array(heads * queryCount * keyDim);
  const rho = 0.98, fresh = Math.sqrt(1 - rho * rho);
  const centres = 4;
  for (let h = 0; h < heads; h++) {
    const kc = Float32Array.from({ length: centres * keyDim }, next), vc = Float32Array.from({ length: centres * valueDim }, next);
    const k = new Float64Array(keyDim).map(next), v = new Float64Array(valueDim).map(next);
    for (let t = 0; t < tokens; t++) {
      const ko = (h * tokens + t) * keyDim, vo = (h * tokens + t) * valueDim;
      if (kind === 'clusters') {
        const c = Math.floor(uniform() * centres);
        for (let i = 0; i < keyDim; i++) keys[ko + i] = kc[c * keyDim + i]! + 0.25 * next();
        for (let i = 0; i < valueDim; i++) values[vo + i] = vc[c * valueDim + i]! + 0.25 * next();
      } else if (kind === 'random') {
        for (let i = 0; i < keyDim; i++) keys[ko + i] = next();
        for (let i = 0; i < valueDim; i++) values[vo + i] = next();
      } else {
        if (t > 0) {
          for (let i = 0; i < keyDim; i++) k[i] = rho * k[i]! + fresh * next();
          for (let i = 0; i < valueDim; i++) v[i] = rho * v[i]! + fresh * next();
        }
        for (let i = 0; i < keyDim; i++) keys[ko + i] = k[i]!;
        for (let i = 0; i < valueDim; i++) values[vo + i] = v[i]!;
      }
    }
    for (const q of [queries, probes]) {
      for (let j = 0; j < queryCount; j++) {
        const t = Math.floor(uniform() * tokens);
        const qo = (h * queryCount + j) * keyDim;
        for (let i = 0; i < keyDim; i++) q[qo + i] = keys[(h * tokens + t) * keyDim + i]! + 0.5 * next();
        if (kind === 'rotary') rotate(q, qo, keyDim, tokens);
      }
    }
    if (kind === 'rotary') for (let t = 0; t < tokens; t++) rotate(keys, (h * tokens + t) * keyDim, keyDim, t);
  }
  return { heads, tokens, keyDim, valueDim, keys, values, queries, queryCount, probes };
}

/**
 * Per-token scores [H, T] as score-based methods get them (kvpress, H2O, KVMerger's pivots): the
 * attention each token received, summed over the cache's `probes` (not the measured queries).
 */
export function accumulatedAttention(cache: SyntheticCache): Float32Array {
  const { heads, tokens, keyDim: d, probes, queryCount } = cache;
  const scores = new Float32Array(heads * tokens);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < queryCount; j++) {
      const w = weights(probes, (h * queryCount + j) * d, cache.keys, h * tokens * d, tokens, d);
      let total = 0;
      for (const x of w) total += x;
      for (let t = 0; t < tokens; t++) scores[h * tokens + t] += w[t]! / total;
    }
  }
  return scores;
}

/** Attention quality of a compressed cache against the full one. */
export interface KvQuality {
  /** ‖o − o_c‖ / ‖o‖ over all queries and heads. */
  relativeError: number;
  /** The mean fraction of each query's true top-k tokens whose slots are among its top-k slots of the compressed cache. */
  recall: number;
}

/** Row indices of the k largest values of `w` (length n), lower index first on ties. */
function topK(w: Float64Array | Float32Array, k: number): number[] {
  return Array.from({ length: w.length }, (_, i) => i).sort((i, j) => (w[j]! - w[i]!) || i - j).slice(0, k);
}

/** Attention weights of query row `q` over `n` keys (width d), with optional log-size bias. */
function weights(q: Float32Array, qo: number, keys: Float32Array, ko: number, n: number, d: number, size?: Float32Array, so = 0): Float64Array {
  const w = new Float64Array(n);
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    let dot = 0;
    for (let i = 0; i < d; i++) dot += q[qo + i]! * keys[ko + j * d + i]!;
    w[j] = dot / Math.sqrt(d) + (size ? Math.log(size[so + j]!) : 0);
    max = Math.max(max, w[j]!);
  }
  for (let j = 0; j < n; j++) w[j] = Math.exp(w[j]! - max);
  return w;
}

/**
 * Compares attention over `cache` with attention over `compressed` (M slots per head; `useSize`
 * false drops the log(size) bias, to show what it is worth). Recall: of each query's `k` most
 * attended tokens in the full cache, the fraction whose slot (compressed.assignment; an evicted
 * token has none) is among the query's `k` most attended slots.
 */
export function kvQuality(cache: SyntheticCache, compressed: KvCluster, slots: number, options: { useSize?: boolean; k?: number } = {}): KvQuality {
  const { heads, tokens, keyDim: d, valueDim: dv, queries, queryCount } = cache;
  const useSize = options.useSize ?? true, k = options.k ?? 8;
  const shape = (n: number) => ({ queryHeads: heads, kvHeads: heads, queries: queryCount, keys: n, keyDim: d, valueDim: dv });
  const full = attention(queries, cache.keys, cache.values, undefined, shape(tokens));
  const comp = attention(queries, compressed.keys, compressed.values, useSize ? compressed.size : undefined, shape(slots));
  let err = 0, norm = 0;
  for (let i = 0; i < full.length; i++) { err += (full[i]! - comp[i]!) ** 2; norm += full[i]! ** 2; }
  let recall = 0;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < queryCount; j++) {
      const qo = (h * queryCount + j) * d;
      const trueTop = topK(weights(queries, qo, cache.keys, h * tokens * d, tokens, d), k);
      const slotTop = new Set(topK(weights(queries, qo, compressed.keys, h * slots * d, slots, d, useSize ? compressed.size : undefined, h * slots), k));
      let hit = 0;
      for (const t of trueTop) if (slotTop.has(compressed.assignment[h * tokens + t]!)) hit++;
      recall += hit / k;
    }
  }
  return { relativeError: Math.sqrt(err / norm), recall: recall / (heads * queryCount) };
}
