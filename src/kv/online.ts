// Online KV-cache clustering for decoding: a compressor that takes appended tokens and clusters
// each chunk of `chunkSize` tokens once it has aged past the recent window (Chelsea's online
// mode). The cache it holds is [sinks | merged slots | tokens not yet in a full chunk | recent];
// when the middle length is a multiple of chunkSize it equals the offline clusterKV result.
//
// Cost per appended token: O(D + Dv) to store it, plus, amortised, one chunk's clustering per
// chunkSize tokens (O(chunkSize · D) per token: rounds of |A| × |B| similarities within the chunk,
// each ≤ chunkSize²/4 · D) and moving the chunk's rows out of the window (O(D + Dv) per token).
import type { Backend } from '../backends.ts';
import { MergeKernelsError } from '../errors.ts';
import { kernelsOf } from '../kernel-table.ts';
import { chunkKeep, type KvLayout } from '../reference/kv-clustering.ts';
import { checkTensor, checkFinite, type Tensor } from '../tensor.ts';
import { integer, options as checkOptions } from '../validate.ts';
import { checkPlanOptions, type IndexTensor, type KvPlanOptions } from './api.ts';
import { kvKernels } from './kernels.ts';

export interface KvCompressorOptions {
  chunkSize: number;
  ratio: number;
  sinkTokens?: number;
  recentTokens?: number;
  /** Key/value heads (H). */
  heads: number;
  /** Key width D. */
  keyDim: number;
  /** Value width Dv. */
  valueDim: number;
}

/** The cache a compressor holds: S slots per head (sinks, merged slots, pending tokens, recent window). */
export interface KvCacheState {
  keys: Tensor;
  values: Tensor;
  size: Tensor;
  position: IndexTensor;
  /** Tokens appended so far. */
  tokens: number;
}

/** Growable per-head rows: [H, n, width], appended at the end, removed from the front. */
class Rows {
  data: Float32Array;
  count = 0;
  constructor(readonly heads: number, readonly width: number, capacity = 64) {
    this.data = new Float32Array(heads * capacity * width);
  }
  get capacity(): number {
    return this.heads === 0 || this.width === 0 ? Infinity : this.data.length / (this.heads * this.width);
  }
  /** Appends n rows per head from `src` [H, n, width]. */
  push(src: Float32Array, n: number): void {
    if (this.count + n > this.capacity) {
      const cap = Math.max(2 * this.capacity, this.count + n);
      const next = new Float32Array(this.heads * cap * this.width);
      for (let h = 0; h < this.heads; h++) next.set(this.head(h), h * cap * this.width);
      this.data = next;
    }
    const cap = this.capacity, w = this.width;
    if (cap !== Infinity) for (let h = 0; h < this.heads; h++) this.data.set(src.subarray(h * n * w, (h + 1) * n * w), (h * cap + this.count) * w);
    this.count += n;
  }
  head(h: number): Float32Array {
    const cap = this.capacity === Infinity ? 0 : this.capacity;
    return this.data.subarray(h * cap * this.width, (h * cap + this.count) * this.width);
  }
  /** The first n rows of every head, [H, n, width]. */
  front(n: number): Float32Array {
    const out = new Float32Array(this.heads * n * this.width);
    for (let h = 0; h < this.heads; h++) out.set(this.head(h).subarray(0, n * this.width), h * n * this.width);
    return out;
  }
  /** Drops the first n rows of every head. */
  shift(n: number): void {
    const cap = this.capacity === Infinity ? 0 : this.capacity, w = this.width;
    for (let h = 0; h < this.heads; h++) this.data.copyWithin(h * cap * w, (h * cap + n) * w, (h * cap + this.count) * w);
    this.count -= n;
  }
}

/** Chelsea's online mode: append tokens, read the compressed cache. Made by mk.kvCompressor. */
export class KvCompressor {
  readonly heads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly plan: KvPlanOptions;
  #backend: () => Backend;
  #tokens = 0;
  /** Sinks and merged slots (final), per head. */
  #slotKeys: Rows;
  #slotValues: Rows;
  #slotSize: Rows;
  /** Tokens past the sinks not yet clustered (pending + recent window); the first is at #tailStart. */
  #tailKeys: Rows;
  #tailValues: Rows;
  #tailStart = 0;

  /** @internal made by mk.kvCompressor */
  constructor(backend: () => Backend, options: KvCompressorOptions) {
    const o = checkOptions('options', options, ['chunkSize', 'ratio', 'sinkTokens', 'recentTokens', 'heads', 'keyDim', 'valueDim'], true);
    this.plan = checkPlanOptions(o);
    this.heads = integer('heads', o.heads, 1);
    this.keyDim = integer('keyDim', o.keyDim, 0);
    this.valueDim = integer('valueDim', o.valueDim, 0);
    this.#backend = backend;
    const H = this.heads;
    this.#slotKeys = new Rows(H, this.keyDim);
    this.#slotValues = new Rows(H, this.valueDim);
    this.#slotSize = new Rows(H, 1);
    this.#tailKeys = new Rows(H, this.keyDim);
    this.#tailValues = new Rows(H, this.valueDim);
    backend(); // DISPOSED now rather than at the first append
  }

  /** Tokens appended so far. */
  get tokens(): number {
    return this.#tokens;
  }

  /**
   * Appends `keys` [H, n, D] and `values` [H, n, Dv] (n ≥ 0 new tokens), then clusters every
   * chunk that has aged past the recent window (all such chunks in one kernel call).
   */
  async append(keys: Tensor, values: Tensor): Promise<void> {
    const backend = this.#backend();
    const k = checkTensor('keys', keys, [3]), v = checkTensor('values', values, [3]);
    const [H, n, D] = k.shape as [number, number, number];
    if (H !== this.heads || D !== this.keyDim) throw new MergeKernelsError('SHAPE_MISMATCH', `keys: expected [${this.heads}, n, ${this.keyDim}], got [${k.shape.join(', ')}]`, 'keys');
    if (v.shape[0] !== H || v.shape[1] !== n || v.shape[2] !== this.valueDim) throw new MergeKernelsError('SHAPE_MISMATCH', `values: expected [${H}, ${n}, ${this.valueDim}], got [${v.shape.join(', ')}]`, 'values');
    checkFinite('keys', k.data);
    checkFinite('values', v.data);
    const { sinkTokens, recentTokens, chunkSize, ratio } = this.plan;
    // Sinks first (they are final slots), the rest into the tail.
    const toSinks = Math.max(0, Math.min(n, sinkTokens - this.#tokens));
    if (toSinks > 0) {
      this.#slotKeys.push(slice(k.data, H, n, D, 0, toSinks), toSinks);
      this.#slotValues.push(slice(v.data, H, n, this.valueDim, 0, toSinks), toSinks);
      this.#slotSize.push(new Float32Array(H * toSinks).fill(1), toSinks);
    }
    if (n > toSinks) {
      if (this.#tailKeys.count === 0) this.#tailStart = this.#tokens + toSinks;
      this.#tailKeys.push(slice(k.data, H, n, D, toSinks, n), n - toSinks);
      this.#tailValues.push(slice(v.data, H, n, this.valueDim, toSinks, n), n - toSinks);
    }
    this.#tokens += n;
    const ready = Math.floor(Math.max(0, this.#tailKeys.count - recentTokens) / chunkSize);
    if (ready === 0) return;
    const len = ready * chunkSize;
    const keep = chunkKeep(chunkSize, ratio);
    const layout: KvLayout = {
      tokens: len, sinkTokens: 0, recentTokens: 0, slots: ready * keep,
      chunks: Array.from({ length: ready }, (_, c) => ({ start: c * chunkSize, length: chunkSize, keep })),
    };
    const r = await kernelsOf(backend, kvKernels).clusterKV(this.#tailKeys.front(len), this.#tailValues.front(len), undefined, { heads: H, tokens: len, keyDim: D, valueDim: this.valueDim }, layout);
    this.#slotKeys.push(r.keys as Float32Array, layout.slots);
    this.#slotValues.push(r.values as Float32Array, layout.slots);
    this.#slotSize.push(r.size, layout.slots);
    // Heads merge differently: every head's representatives, as absolute positions.
    this.#positions.push(...Array.from({ length: H }, (_, h) => r.position.subarray(h * layout.slots, (h + 1) * layout.slots).map((p) => p + this.#tailStart)));
    this.#tailKeys.shift(len);
    this.#tailValues.shift(len);
    this.#tailStart += len;
  }

  /** Per-head positions of merged slots, chunk batch by chunk batch (heads merge differently). */
  #positions: Int32Array[] = [];

  /** The cache now: [H, S, ·] with S = sinks + merged slots + pending tokens + recent window; attend with its size (and position for causal). */
  state(): KvCacheState {
    this.#backend();
    const H = this.heads, D = this.keyDim, Dv = this.valueDim;
    const slots = this.#slotKeys.count, tail = this.#tailKeys.count, S = slots + tail;
    const keys = new Float32Array(H * S * D), values = new Float32Array(H * S * Dv), size = new Float32Array(H * S).fill(1);
    const position = new Int32Array(H * S);
    for (let h = 0; h < H; h++) {
      keys.set(this.#slotKeys.head(h), h * S * D);
      keys.set(this.#tailKeys.head(h), (h * S + slots) * D);
      values.set(this.#slotValues.head(h), h * S * Dv);
      values.set(this.#tailValues.head(h), (h * S + slots) * Dv);
      size.set(this.#slotSize.head(h), h * S);
      // Sinks, then every batch's merged positions for this head, then the tail's.
      let at = h * S;
      const sinks = Math.min(this.plan.sinkTokens, this.#tokens);
      for (let i = 0; i < sinks; i++) position[at++] = i;
      for (let b = h; b < this.#positions.length; b += H) { position.set(this.#positions[b]!, at); at += this.#positions[b]!.length; }
      for (let i = 0; i < tail; i++) position[at++] = this.#tailStart + i;
    }
    return { keys: { data: keys, shape: [H, S, D] }, values: { data: values, shape: [H, S, Dv] }, size: { data: size, shape: [H, S] }, position: { data: position, shape: [H, S] }, tokens: this.#tokens };
  }
}

/** Rows [from, to) of every head of x [H, n, w], as [H, to − from, w]. */
function slice(x: Float32Array, H: number, n: number, w: number, from: number, to: number): Float32Array {
  const out = new Float32Array(H * (to - from) * w);
  for (let h = 0; h < H; h++) out.set(x.subarray((h * n + from) * w, (h * n + to) * w), h * (to - from) * w);
  return out;
}
