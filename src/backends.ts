// The three backends behind the context. Each implements every kernel with the same signature
// over validated, flat float32 arrays; shapes and options were checked once, in api.ts.
import * as ref from './reference/cosine-similarity.ts';
import * as refMatch from './reference/bipartite-soft-matching.ts';
import * as refMerge from './reference/merge-primitives.ts';
import { type HistogramRequest, type TiesMergeCounts, type TiesMergeOptions } from './reference/merge-primitives.ts';
import * as wasm from './wasm/cosine-similarity.ts';
import * as wasmMatch from './wasm/best-match.ts';
import * as wasmMerge from './wasm/merge-primitives.ts';
import * as gpu from './webgpu/cosine-similarity.ts';
import * as gpuMatch from './webgpu/best-match.ts';
import * as gpuMerge from './webgpu/merge-primitives.ts';
import type { DeviceStorage, DeviceStore } from './device-tensor.ts';
import type { WasmRuntime } from './wasm/runtime.ts';
import type { GpuRuntime } from './webgpu/runtime.ts';

export type BackendName = 'js' | 'wasm' | 'webgpu';

export interface BestMatch {
  score: Float32Array;
  index: Int32Array;
}

export interface Backend extends DeviceStore {
  readonly name: BackendName;
  /** cosineSimilarity on device storage (from this backend): the result stays on the device. */
  cosineSimilarityOnDevice(a: DeviceStorage, b: DeviceStorage, batch: number, m: number, n: number, c: number): Promise<DeviceStorage>;
  /** Writes into `out` when given (and returns it). */
  cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number, out?: Float32Array): Promise<Float32Array>;
  /** Each A row's best cosine match in B (score, lowest index on ties); see reference/bipartite-soft-matching.ts. */
  bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean): Promise<BestMatch>;
  /** ToMe's split (even tokens A, odd tokens B of `metric` [batch, tokens, c]), then bestMatch. */
  bestMatchEvenOdd(metric: Float32Array, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean): Promise<BestMatch>;
  /** bestMatchEvenOdd of a metric in device storage (from this backend); the matches come to the host for the ranking. */
  bestMatchEvenOddOnDevice(metric: DeviceStorage, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean): Promise<BestMatch>;
  // Model-merging primitives over one chunk of a tensor; see reference/merge-primitives.ts.
  /** Every requested histogram over one chunk of T models (minus `base` when given), reading the chunk once. */
  absHistograms(models: Float32Array[], base: Float32Array | undefined, requests: readonly HistogramRequest[]): Promise<void>;
  /** Returns the vote count Σ sign(total) and the undecided entries (see the reference). */
  tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions): Promise<TiesMergeCounts>;
  dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array): Promise<[number, number]>;
  findNonFinite(x: Float32Array): Promise<number>;
  /**
   * Optional (webgpu): until the matching releaseInputs(), the memory of `arrays` does not change,
   * so the model-merging primitives may keep what they upload of views into it (a chunk's models
   * and base) and reuse it in later calls over the same chunk instead of uploading it again: the
   * histogram passes and the merge pass of a chunk then share one upload. Calls nest. The
   * in-memory driver (mk.mergeTensors) holds the tensors it merges; the file runner, whose chunks
   * are reused buffers, does not.
   */
  holdInputs?(arrays: readonly Float32Array[]): void;
  releaseInputs?(): void;
  /**
   * Optional (wasm): decodes little-endian bfloat16 `bytes` into `out` and returns the index of
   * the first NaN/±Infinity, or -1: the file runner's decode and finiteness check in one SIMD
   * pass. Without it the runner decodes in JavaScript.
   */
  decodeBf16?(bytes: Uint8Array, out: Float32Array): number;
  dispose(): void;
}

/** The plain TypeScript reference: readable, obviously correct, the oracle of every test. */
export class JsBackend implements Backend {
  readonly name = 'js' as const;
  alive = true;
  upload(data: Float32Array): DeviceStorage {
    return { kind: 'host', data: data.slice() };
  }
  async read(s: DeviceStorage) {
    return host(s).slice();
  }
  free(): void {}
  async cosineSimilarityOnDevice(a: DeviceStorage, b: DeviceStorage, batch: number, m: number, n: number, c: number): Promise<DeviceStorage> {
    return { kind: 'host', data: ref.cosineSimilarity(host(a), host(b), batch, m, n, c) };
  }
  async cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number, out?: Float32Array) {
    const sim = ref.cosineSimilarity(a, b, batch, m, n, c);
    return out ? (out.set(sim), out) : sim;
  }
  async bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    return refMatch.bestMatch(a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async bestMatchEvenOdd(metric: Float32Array, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    const { a, b, nA, nB } = splitEvenOdd(metric, batch, tokens, c);
    return refMatch.bestMatch(a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async bestMatchEvenOddOnDevice(metric: DeviceStorage, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    return this.bestMatchEvenOdd(host(metric), batch, tokens, c, maskFirstA, maskFirstB);
  }
  async absHistograms(models: Float32Array[], base: Float32Array | undefined, requests: readonly HistogramRequest[]) {
    refMerge.absHistograms(models, base, requests);
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    return refMerge.tiesMerge(models, weights, thr, tieBudget, base, out, o);
  }
  async dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array) {
    return refMerge.dropAndRescale(x, offset, key, p, scale, out);
  }
  async findNonFinite(x: Float32Array) {
    return refMerge.findNonFinite(x);
  }
  dispose(): void {
    this.alive = false;
  }
}

/** WebAssembly SIMD (AssemblyScript, f32x4). */
export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  alive = true;
  constructor(readonly runtime: WasmRuntime) {}
  upload(data: Float32Array): DeviceStorage {
    const ptr = this.runtime.keep(data.byteLength, 'a device tensor');
    this.runtime.f32(ptr, data.length).set(data);
    return { kind: 'wasm', ptr, length: data.length };
  }
  async read(s: DeviceStorage) {
    const { ptr, length } = inWasm(s);
    return this.runtime.take(ptr, length);
  }
  free(s: DeviceStorage): void {
    const { ptr, length } = inWasm(s);
    this.runtime.release(ptr, length * 4);
  }
  async cosineSimilarityOnDevice(a: DeviceStorage, b: DeviceStorage, batch: number, m: number, n: number, c: number): Promise<DeviceStorage> {
    const out = this.runtime.keep(batch * m * n * 4, 'the similarity matrix');
    wasm.cosineSimilarityAt(this.runtime, inWasm(a), inWasm(b), out, batch, m, n, c);
    return { kind: 'wasm', ptr: out, length: batch * m * n };
  }
  async cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number, out?: Float32Array) {
    return wasm.cosineSimilarity(this.runtime, a, b, batch, m, n, c, out);
  }
  async bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    return wasmMatch.bestMatch(this.runtime, a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async bestMatchEvenOdd(metric: Float32Array, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    return wasmMatch.bestMatchEvenOdd(this.runtime, metric, batch, tokens, c, maskFirstA, maskFirstB);
  }
  async bestMatchEvenOddOnDevice(metric: DeviceStorage, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    this.runtime.reset();
    return wasmMatch.bestMatchEvenOddAt(this.runtime, inWasm(metric).ptr, batch, tokens, c, maskFirstA, maskFirstB);
  }
  async absHistograms(models: Float32Array[], base: Float32Array | undefined, requests: readonly HistogramRequest[]) {
    wasmMerge.absHistograms(this.runtime, models, base, requests);
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    return wasmMerge.tiesMerge(this.runtime, models, weights, thr, tieBudget, base, out, o);
  }
  async dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array) {
    return wasmMerge.dropAndRescale(this.runtime, x, offset, key, p, scale, out);
  }
  async findNonFinite(x: Float32Array) {
    return wasmMerge.findNonFinite(this.runtime, x);
  }
  /** The file runner's bfloat16 decode, in SIMD with the finiteness check (see Backend.decodeBf16). */
  decodeBf16(bytes: Uint8Array, out: Float32Array): number {
    return wasmMerge.decodeBf16(this.runtime, bytes, out);
  }
  dispose(): void {
    this.alive = false;
    this.runtime.dispose();
  }
}

/** WebGPU compute shaders (WGSL). */
export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  constructor(readonly runtime: GpuRuntime) {}
  get alive(): boolean {
    return !this.runtime.isDisposed;
  }
  upload(data: Float32Array): DeviceStorage {
    this.runtime.check();
    const buffer = this.runtime.storage('deviceTensor', data.byteLength, data);
    return { kind: 'gpu', buffer, offset: 0, bytes: data.byteLength, owned: true };
  }
  async read(s: DeviceStorage) {
    this.runtime.check();
    const g = onGpu(s);
    return this.runtime.read('deviceTensor', g.buffer, g.offset, g.bytes);
  }
  free(s: DeviceStorage): void {
    const g = onGpu(s);
    if (g.owned) g.buffer.destroy();
  }
  async cosineSimilarityOnDevice(a: DeviceStorage, b: DeviceStorage, batch: number, m: number, n: number, c: number): Promise<DeviceStorage> {
    this.runtime.check();
    const binding = (s: DeviceStorage) => { const g = onGpu(s); return { buffer: g.buffer, offset: g.offset, size: Math.max(16, g.bytes) }; };
    const buffer = await gpu.cosineSimilarityOnDevice(this.runtime, binding(a), binding(b), batch, m, n, c);
    return { kind: 'gpu', buffer, offset: 0, bytes: batch * m * n * 4, owned: true };
  }
  async cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number, out?: Float32Array) {
    this.runtime.check();
    // The readback is a fresh array either way until results can stay on the device.
    const sim = await gpu.cosineSimilarity(this.runtime, a, b, batch, m, n, c);
    return out ? (out.set(sim), out) : sim;
  }
  async bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    this.runtime.check();
    return gpuMatch.bestMatch(this.runtime, a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async bestMatchEvenOdd(metric: Float32Array, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    // The split on the host for now: the inputs are host arrays and get uploaded either way.
    const { a, b, nA, nB } = splitEvenOdd(metric, batch, tokens, c);
    return this.bestMatch(a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async bestMatchEvenOddOnDevice(metric: DeviceStorage, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    this.runtime.check();
    const g = onGpu(metric);
    return gpuMatch.bestMatchEvenOddOnDevice(this.runtime, { buffer: g.buffer, offset: g.offset, size: Math.max(4, g.bytes) }, batch, tokens, c, maskFirstA, maskFirstB);
  }
  async absHistograms(models: Float32Array[], base: Float32Array | undefined, requests: readonly HistogramRequest[]) {
    this.runtime.check();
    if (models[0]!.length === 0 || requests.length === 0) return;
    // δ = f32(x − base) is formed in the kernel; every request is counted in one dispatch per block.
    await this.#withChunk(models, base, (chunk) => gpuMerge.absHistograms(this.runtime, chunk, base !== undefined, requests));
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    this.runtime.check();
    if (out.length === 0) return { votes: 0, undecided: 0 };
    // Task vectors, the vote count and the undecided entries all come from the kernels, in one pass.
    return this.#withChunk(models, base, (chunk) => gpuMerge.tiesMerge(this.runtime, chunk, weights, thr, tieBudget, out, o, o.subtractBase === true && base !== undefined, base !== undefined));
  }
  holdInputs(arrays: readonly Float32Array[]): void {
    this.#held ??= { depth: 0, ranges: [], chunks: new Map(), bytes: 0 };
    this.#held.depth++;
    for (const a of arrays) this.#held.ranges.push({ memory: a.buffer, from: a.byteOffset, to: a.byteOffset + a.byteLength });
  }
  releaseInputs(): void {
    const held = this.#held;
    if (!held || --held.depth > 0) return;
    for (const chunk of held.chunks.values()) gpuMerge.freeChunk(chunk);
    this.#held = undefined;
  }
  /** Held inputs: the memory that does not change, the chunks uploaded from it (by key) and their bytes. */
  #held: HeldInputs | undefined;
  #memoryIds = new WeakMap<ArrayBufferLike, number>();
  #nextMemoryId = 0;
  /**
   * Runs `work` on the chunk (models, base) on the GPU: the held upload of these very views when
   * there is one; else uploaded now, and kept when every view lies in held memory (up to
   * HOLD_BYTES: beyond it, later chunks are uploaded per call, while those kept stay kept, which
   * suits the driver's passes in chunk order), or freed after the call.
   */
  async #withChunk<R>(models: readonly Float32Array[], base: Float32Array | undefined, work: (chunk: gpuMerge.GpuChunk) => Promise<R>): Promise<R> {
    const held = this.#held;
    const key = held && this.#chunkKey(held, models, base);
    const kept = key === undefined ? undefined : held!.chunks.get(key);
    if (kept) return work(kept);
    const chunk = gpuMerge.uploadChunk(this.runtime, models, base);
    if (key !== undefined && held!.bytes + chunk.bytes <= HOLD_BYTES) {
      held!.chunks.set(key, chunk);
      held!.bytes += chunk.bytes;
      return work(chunk);
    }
    try {
      return await work(chunk);
    } finally {
      gpuMerge.freeChunk(chunk);
    }
  }
  /** Identifies a chunk by its views' memory, offsets and lengths, when all lie in held memory. */
  #chunkKey(held: HeldInputs, models: readonly Float32Array[], base: Float32Array | undefined): string | undefined {
    const parts: string[] = [];
    for (const a of base ? [...models, base] : models) {
      const end = a.byteOffset + a.byteLength;
      if (!held.ranges.some((r) => r.memory === a.buffer && r.from <= a.byteOffset && end <= r.to)) return undefined;
      let id = this.#memoryIds.get(a.buffer);
      if (id === undefined) this.#memoryIds.set(a.buffer, (id = this.#nextMemoryId++));
      parts.push(`${id}:${a.byteOffset}:${a.length}`);
    }
    return `${parts.join(',')}|${base ? 'base' : 'none'}`;
  }
  async dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array) {
    this.runtime.check();
    return gpuMerge.dropAndRescale(this.runtime, x, offset, key, p, scale, out);
  }
  async findNonFinite(x: Float32Array) {
    this.runtime.check();
    return gpuMerge.findNonFinite(this.runtime, x);
  }
  dispose(): void {
    if (this.#held) { this.#held.depth = 1; this.releaseInputs(); }
    this.runtime.dispose();
  }
}

/** Inputs held by WebGpuBackend.holdInputs: the memory that does not change, the chunks uploaded from it (by key) and their bytes. */
interface HeldInputs {
  depth: number;
  ranges: Array<{ memory: ArrayBufferLike; from: number; to: number }>;
  chunks: Map<string, gpuMerge.GpuChunk>;
  bytes: number;
}

/** GPU bytes of held input chunks (see WebGpuBackend.holdInputs): the whole inputs of a 3 × 50M-entry TIES merge with a base fit. */
const HOLD_BYTES = 1024 * 1024 * 1024;

// Device storage of the kind each backend makes (DeviceTensor.storageOf checked the context).
function host(s: DeviceStorage): Float32Array {
  if (s.kind !== 'host') throw new Error(`internal: expected host storage, got ${s.kind}`);
  return s.data;
}
function inWasm(s: DeviceStorage): { ptr: number; length: number } {
  if (s.kind !== 'wasm') throw new Error(`internal: expected wasm storage, got ${s.kind}`);
  return s;
}
function onGpu(s: DeviceStorage): Extract<DeviceStorage, { kind: 'gpu' }> {
  if (s.kind !== 'gpu') throw new Error(`internal: expected GPU storage, got ${s.kind}`);
  return s;
}

/** ToMe's sets on the host: even tokens (A) and odd tokens (B) of each batch item. */
function splitEvenOdd(metric: Float32Array, batch: number, tokens: number, c: number) {
  return {
    a: refMatch.gatherRows(metric, batch, tokens, c, 0), b: refMatch.gatherRows(metric, batch, tokens, c, 1),
    nA: Math.ceil(tokens / 2), nB: Math.floor(tokens / 2),
  };
}
