// KV-cache compression, the public calls behind mk.clusterKV and mk.attention: options and shapes
// checked once here, then the backend's kernels (src/kv/kernels.ts). Method and choices: see
// src/reference/kv-clustering.ts.
import type { Backend } from '../backends.ts';
import { DeviceTensor, type DeviceStorage } from '../device-tensor.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import { kernelsOf } from '../kernel-table.ts';
import * as ref from '../reference/kv-clustering.ts';
import { checkFinite, checkTensor, type Tensor } from '../tensor.ts';
import { boolean, finite, integer, oneOf, options as checkOptions } from '../validate.ts';
import { kvKernels, type KvClusterOut, type KvInput } from './kernels.ts';

/** An int32 tensor (positions, assignments), row-major. */
export interface IndexTensor {
  data: Int32Array;
  shape: number[];
}

/**
 * How clusterKV compresses, all at the same slot budget M:
 * - 'chunkedSoftMatching' (default): Chelsea's clustering, merging similar tokens within chunks;
 * - 'streaming': StreamingLLM's eviction, the sinks and the most recent M − sinkTokens tokens;
 * - 'stride': uniform-stride eviction of the middle (the sinks and recent window kept);
 * - 'scores': score-based eviction of the middle by `scores` [H, T] (kvpress's interface), highest kept;
 * - 'mergeOnEvict': 'scores', and every evicted token's value folded into its most key-similar
 *   survivor (keys kept, so rotary positions stay valid; kvpress's MergingPress, CaM);
 * - 'kvMerger': KVMerger's runs of similar adjacent keys, each merged into its pivot (highest
 *   `scores`, the accumulated attention) with Gaussian-kernel weights.
 * See src/reference/kv-clustering.ts for each one's exact rules.
 */
export type KvMethod = 'chunkedSoftMatching' | 'streaming' | 'stride' | 'scores' | 'mergeOnEvict' | 'kvMerger';
const KV_METHODS: readonly KvMethod[] = ['chunkedSoftMatching', 'streaming', 'stride', 'scores', 'mergeOnEvict', 'kvMerger'];
/** Methods that read per-token `scores`. */
const SCORED: readonly KvMethod[] = ['scores', 'mergeOnEvict', 'kvMerger'];

export interface ClusterKVOptions {
  /** Tokens per chunk of the middle (an integer ≥ 2); the last chunk may be shorter. */
  chunkSize: number;
  /** Slots kept per chunk as a fraction of its tokens, in (0, 1]: ceil(len · ratio) (at least 1). */
  ratio: number;
  /** Tokens at the start kept as single slots (attention sinks). Default 0. */
  sinkTokens?: number;
  /** Tokens at the end kept as single slots (the recent window). Default 0. */
  recentTokens?: number;
  /** [H, T]: how many tokens each entry already stands for (a merged cache); default ones. Positive. */
  size?: Tensor;
  /** Default 'chunkedSoftMatching'; see KvMethod. */
  method?: KvMethod;
  /** [H, T]: per-token importance (e.g. accumulated attention) for methods 'scores', 'mergeOnEvict' and 'kvMerger'. */
  scores?: Tensor;
}

/**
 * A compressed cache of M slots per head. Given device tensors for both keys and values,
 * chunkedSoftMatching returns `keys` and `values` as device tensors of the context (dispose them).
 */
export interface KvClusterResult<T extends Tensor | DeviceTensor = Tensor> {
  /** [H, M, D]: size-weighted mean keys. */
  keys: T;
  /** [H, M, Dv]: size-weighted mean values. */
  values: T;
  /** [H, M]: the tokens each slot stands for (pass it to attention as `size`). */
  size: Tensor;
  /** [H, M]: the position of each slot's representative token, ascending. */
  position: IndexTensor;
  /** [H, T]: the slot each token went to; -1 for a token an eviction method dropped. */
  assignment: IndexTensor;
}

export interface AttentionOptions {
  /** [Hkv, Tk]: slot sizes; adds log(size) to the logits (proportional attention). Default ones. */
  size?: Tensor;
  /** Mask keys after each query. Default false. */
  causal?: boolean;
  /** [Hkv, Tk]: key positions for the causal mask (a compressed cache's `position`); default 0 … Tk − 1. */
  position?: IndexTensor;
  /** Causal: the position of the first query (the i-th is queryStart + i); default (last key position + 1) − Tq. */
  queryStart?: number;
}

const CLUSTER_OPTIONS = ['chunkSize', 'ratio', 'sinkTokens', 'recentTokens', 'size', 'method', 'scores'] as const;
const ATTENTION_OPTIONS = ['size', 'causal', 'position', 'queryStart'] as const;

/** The checked options of a clusterKV-like call (shared with the online compressor). */
export interface KvPlanOptions {
  chunkSize: number;
  ratio: number;
  sinkTokens: number;
  recentTokens: number;
}

export function checkPlanOptions(o: Record<string, unknown>): KvPlanOptions {
  const chunkSize = integer('chunkSize', o.chunkSize, 2, Number.MAX_SAFE_INTEGER, 'tokens per chunk');
  const ratio = finite('ratio', o.ratio, 'the fraction of each chunk kept, in (0, 1]');
  if (!(ratio > 0 && ratio <= 1)) throw new MergeKernelsError('INVALID_OPTION', `ratio: expected a number in (0, 1] (the fraction of each chunk kept), got ${ratio}`, 'ratio');
  const sinkTokens = o.sinkTokens === undefined ? 0 : integer('sinkTokens', o.sinkTokens, 0);
  const recentTokens = o.recentTokens === undefined ? 0 : integer('recentTokens', o.recentTokens, 0);
  return { chunkSize, ratio, sinkTokens, recentTokens };
}

/** A positive, finite [H, T] tensor named `name`. */
function checkPerToken(name: string, value: unknown, heads: number, tokens: number, positive: boolean): Float32Array {
  const t = checkTensor(name, value, [2]);
  if (t.shape[0] !== heads || t.shape[1] !== tokens) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected [${heads}, ${tokens}] (one value per head and token), got [${t.shape.join(', ')}]`, name);
  }
  checkFinite(name, t.data);
  if (positive) {
    const bad = t.data.findIndex((v) => !(v > 0));
    if (bad >= 0) throw new MergeKernelsError('INVALID_OPTION', `${name}: expected positive sizes, found ${t.data[bad]} at flat index ${bad}`, name);
  }
  return t.data;
}

/** A cache tensor: a host tensor, or a device tensor of this context (its storage; not scanned for NaN, which would read it back). */
function cacheTensor(backend: Backend, name: string, value: unknown): { shape: readonly number[]; input: KvInput; host: Float32Array | undefined } {
  if (value instanceof DeviceTensor) {
    if (value.shape.length !== 3) throw new MergeKernelsError('INVALID_SHAPE', `${name}: expected rank 3 [H, T, D], got [${value.shape.join(', ')}]`, name);
    return { shape: value.shape, input: DeviceTensor.storageOf(value, backend, name), host: undefined };
  }
  const t = checkTensor(name, value, [3]);
  return { shape: t.shape, input: t.data, host: t.data };
}

/**
 * keys [H, T, D] and values [H, T, Dv] (host or device tensors), agreeing on H and T; host ones
 * finite (unless `finite` is false: the kernel checks).
 */
export function checkCache(backend: Backend, keys: unknown, values: unknown, finite = true): ref.KvShape & { keys: KvInput; values: KvInput; onDevice: boolean } {
  const k = cacheTensor(backend, 'keys', keys);
  const v = cacheTensor(backend, 'values', values);
  const [heads, tokens, keyDim] = k.shape as [number, number, number];
  const [vh, vt, valueDim] = v.shape as [number, number, number];
  if (vh !== heads || vt !== tokens) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `values: expected [${heads}, ${tokens}, Dv] (the heads and tokens of keys [${k.shape.join(', ')}]), got [${v.shape.join(', ')}]`, 'values');
  }
  if (finite) {
    if (k.host) checkFinite('keys', k.host);
    if (v.host) checkFinite('values', v.host);
  }
  return { heads, tokens, keyDim, valueDim, keys: k.input, values: v.input, onDevice: !k.host || !v.host };
}

/**
 * Chelsea's KV-cache clustering, or an eviction baseline at the same budget (see ClusterKVOptions).
 * keys and values may be device tensors of this context (the cache resident in wasm memory or on
 * the GPU: not copied in, not scanned for NaN); the result is on the host.
 */
export async function clusterKV(backend: Backend, keys: Tensor | DeviceTensor, values: Tensor | DeviceTensor, options: ClusterKVOptions): Promise<KvClusterResult<Tensor | DeviceTensor>> {
  const o = checkOptions('options', options, CLUSTER_OPTIONS, true);
  const plan = checkPlanOptions(o);
  const method = oneOf('method', o.method, KV_METHODS, 'chunkedSoftMatching');
  const kernels = kernelsOf(backend, kvKernels);
  // The eviction methods are host code: they need the scan here.
  const cache = checkCache(backend, keys, values, !(method === 'chunkedSoftMatching' && kernels.checksFinite));
  const shape: ref.KvShape = { heads: cache.heads, tokens: cache.tokens, keyDim: cache.keyDim, valueDim: cache.valueDim };
  const { heads, tokens, keyDim: d, valueDim: dv } = shape;
  if (plan.sinkTokens + plan.recentTokens > tokens) {
    throw new MergeKernelsError('INVALID_OPTION', `sinkTokens + recentTokens: expected at most T = ${tokens} (the tokens in keys), got ${plan.sinkTokens} + ${plan.recentTokens}`, plan.recentTokens > 0 ? 'recentTokens' : 'sinkTokens');
  }
  const size = o.size === undefined ? undefined : checkPerToken('size', o.size, heads, tokens, true);
  const scored = SCORED.includes(method);
  if (scored && o.scores === undefined) throw new MergeKernelsError('INVALID_OPTION', `scores: method '${method}' needs per-token scores [H, T]`, 'scores');
  if (!scored && o.scores !== undefined) throw new MergeKernelsError('INVALID_OPTION', `scores: only methods ${SCORED.map((m) => `'${m}'`).join(', ')} read scores (method is '${method}')`, 'scores');
  const scores = scored ? checkPerToken('scores', o.scores, heads, tokens, false) : undefined;
  const layout = ref.kvLayout(tokens, plan.sinkTokens, plan.recentTokens, plan.chunkSize, plan.ratio);
  const m = layout.slots;
  let r: KvClusterOut;
  const resident = keys instanceof DeviceTensor && values instanceof DeviceTensor;
  if (method === 'chunkedSoftMatching') {
    r = await kernels.clusterKV(cache.keys, cache.values, size, shape, layout, resident);
  } else {
    // Host code shared by every backend: device tensors are read back for it.
    const hostOf = async (t: Tensor | DeviceTensor) => (t instanceof DeviceTensor ? (await t.read()).data : t.data);
    const [k, v] = [await hostOf(keys), await hostOf(values)];
    if (method === 'kvMerger') {
      r = ref.kvMerger(k, v, size, shape, layout, scores!);
    } else {
      const kept = method === 'streaming' ? ref.streamingKept(layout)
        : method === 'stride' ? ref.strideKept(layout)
        : ref.scoresKept(layout, scores!);
      r = method === 'mergeOnEvict' ? ref.mergeOnEvict(k, v, size, shape, m, kept) : ref.evict(k, v, size, shape, m, kept);
    }
  }
  const out = (x: Float32Array | DeviceStorage, shape: number[]): Tensor | DeviceTensor =>
    (x instanceof Float32Array ? { data: x, shape } : new DeviceTensor(backend, backend, x, shape));
  return {
    keys: out(r.keys, [heads, m, d]), values: out(r.values, [heads, m, dv]), size: { data: r.size, shape: [heads, m] },
    position: { data: r.position, shape: [heads, m] }, assignment: { data: r.assignment, shape: [heads, tokens] },
  };
}

/**
 * Proportional, grouped-query attention: q [Hq, Tq, D] over keys [Hkv, Tk, D], values [Hkv, Tk, Dv]
 * → [Hq, Tq, Dv]. keys and values may be device tensors (a resident cache); q and the result are host tensors.
 */
export async function attention(backend: Backend, q: Tensor, keys: Tensor | DeviceTensor, values: Tensor | DeviceTensor, options?: AttentionOptions): Promise<Tensor> {
  const o = checkOptions('options', options, ATTENTION_OPTIONS);
  const tq = checkTensor('q', q, [3]);
  const [queryHeads, queries, qd] = tq.shape as [number, number, number];
  const kernels = kernelsOf(backend, kvKernels);
  const cache = checkCache(backend, keys, values, !kernels.checksFinite);
  const { heads: kvHeads, tokens: tk, keyDim: d, valueDim: dv } = cache;
  if (qd !== d) throw new MergeKernelsError('SHAPE_MISMATCH', `q: expected the key width D = ${d} of keys [${keys.shape.join(', ')}], got [${tq.shape.join(', ')}]`, 'q');
  if (kvHeads === 0 ? queryHeads !== 0 : queryHeads % kvHeads !== 0) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `q: expected a multiple of the ${kvHeads} key/value heads (grouped-query attention), got ${queryHeads} query heads`, 'q');
  }
  if (!kernels.checksFinite) checkFinite('q', tq.data);
  const size = o.size === undefined ? undefined : checkPerToken('size', o.size, kvHeads, tk, true);
  const causal = boolean('causal', o.causal);
  let mask: ref.CausalMask | undefined;
  if (!causal && (o.position !== undefined || o.queryStart !== undefined)) {
    throw new MergeKernelsError('INVALID_OPTION', `${o.position !== undefined ? 'position' : 'queryStart'}: only read with causal: true`, o.position !== undefined ? 'position' : 'queryStart');
  }
  if (causal) {
    let keyPosition: Int32Array | undefined;
    let last = tk - 1;
    if (o.position !== undefined) {
      const p = o.position as IndexTensor;
      if (p === null || typeof p !== 'object' || !(p.data instanceof Int32Array) || !Array.isArray(p.shape) || p.shape.length !== 2 || p.shape[0] !== kvHeads || p.shape[1] !== tk || p.data.length !== kvHeads * tk) {
        throw new MergeKernelsError('SHAPE_MISMATCH', `position: expected an int32 tensor { data: Int32Array, shape: [${kvHeads}, ${tk}] } (clusterKV's position), got ${describe(p)}`, 'position');
      }
      keyPosition = p.data;
      last = keyPosition.reduce((a, b) => Math.max(a, b), -1);
    }
    const queryStart = o.queryStart === undefined ? last + 1 - queries : integer('queryStart', o.queryStart, Number.MIN_SAFE_INTEGER);
    mask = { queryStart, keyPosition };
  }
  const shape: ref.AttentionShape = { queryHeads, kvHeads, queries, keys: tk, keyDim: d, valueDim: dv };
  const data = await kernels.attention(tq.data, cache.keys, cache.values, size, shape, mask);
  return { data, shape: [queryHeads, queries, dv] };
}

export interface MiniCacheOptions {
  /** The SLERP weight of the later layer, in [0, 1]. Default 0.6 (MiniCache's). */
  t?: number;
  /** The fraction of tokens per head kept unmerged, those whose layers disagree most in angle, in [0, 1]. Default 0.05. */
  retain?: number;
}

export interface MiniCacheResult {
  /** [H, T, D]: the shared unit directions (zero rows for retained tokens). */
  direction: Tensor;
  /** [H, T]: each layer's norms. */
  normA: Tensor;
  normB: Tensor;
  /** [H, T]: 1 = retained (kept unmerged). */
  retained: IndexTensor;
  /** [H, T, D]: both layers as restored from the merge. */
  restoredA: Tensor;
  restoredB: Tensor;
}

/** MiniCache's cross-layer merge of `a` (layer l − 1) and `b` (layer l), both [H, T, D] (keys, or values). */
export async function miniCache(backend: Backend, a: Tensor, b: Tensor, options?: MiniCacheOptions): Promise<MiniCacheResult> {
  void backend; // host code on every backend
  const o = checkOptions('options', options, ['t', 'retain']);
  const t = o.t === undefined ? 0.6 : finite('t', o.t, 'the SLERP weight of the later layer');
  if (t < 0 || t > 1) throw new MergeKernelsError('INVALID_OPTION', `t: expected a number in [0, 1] (the SLERP weight of the later layer), got ${t}`, 't');
  const retain = o.retain === undefined ? 0.05 : finite('retain', o.retain, 'the fraction of tokens kept unmerged');
  if (retain < 0 || retain > 1) throw new MergeKernelsError('INVALID_OPTION', `retain: expected a number in [0, 1] (the fraction of tokens kept unmerged), got ${retain}`, 'retain');
  const ta = checkTensor('a', a, [3]), tb = checkTensor('b', b, [3]);
  if (ta.shape.some((d, i) => d !== tb.shape[i])) throw new MergeKernelsError('SHAPE_MISMATCH', `b: expected the shape of a [${ta.shape.join(', ')}] (the same heads, tokens and width in the adjacent layer), got [${tb.shape.join(', ')}]`, 'b');
  checkFinite('a', ta.data);
  checkFinite('b', tb.data);
  const [heads, tokens, d] = ta.shape as [number, number, number];
  const r = ref.miniCache(ta.data, tb.data, heads, tokens, d, t, retain);
  return {
    direction: { data: r.direction, shape: [heads, tokens, d] }, normA: { data: r.normA, shape: [heads, tokens] }, normB: { data: r.normB, shape: [heads, tokens] },
    retained: { data: r.retained, shape: [heads, tokens] }, restoredA: { data: r.restoredA, shape: [heads, tokens, d] }, restoredB: { data: r.restoredB, shape: [heads, tokens, d] },
  };
}
