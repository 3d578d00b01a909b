// The three backends behind the context. Each implements every kernel with the same signature
// over validated, flat float32 arrays; shapes and options were checked once, in api.ts.
import * as ref from './reference/cosine-similarity.ts';
import * as refMatch from './reference/bipartite-soft-matching.ts';
import * as refMerge from './reference/merge-primitives.ts';
import { LEVEL0_BINS, LEVEL1_BINS, type HistogramRequest, type TiesMergeCounts, type TiesMergeOptions } from './reference/merge-primitives.ts';
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
    // The GPU kernel takes one task vector and one level-0 bin at a time: form δ on the host and
    // count a multi-bin level-1 request bin by bin. (TODO: fuse both into the kernel.)
    const deltas = base ? models.map((m) => subtract(m, base)) : models;
    for (const r of requests) {
      if (r.level === 0) { await gpuMerge.absHistogram(this.runtime, deltas[r.model]!, r.hist, 0, 0); continue; }
      for (let s = 0; s * LEVEL1_BINS < r.hist.length && r.prefix + s < LEVEL0_BINS; s++) {
        await gpuMerge.absHistogram(this.runtime, deltas[r.model]!, r.hist.subarray(s * LEVEL1_BINS, (s + 1) * LEVEL1_BINS), 1, r.prefix + s);
      }
    }
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    this.runtime.check();
    const deltas = o.subtractBase && base ? models.map((m) => subtract(m, base)) : models;
    const n = out.length;
    const plain: TiesMergeOptions = { ...o, subtractBase: false };
    // The counts, host-assisted: the disjoint sums (merge 'sum', λ = 1, no base) under either zero
    // sign, each on a copy of the tie budgets. Where both are > 0 the total was > 0, where both are
    // < 0 it was < 0 (the same elected sign, the same agreeing values); elsewhere the zero sign
    // elected, and the sum under it is non-zero iff some value agrees (one sign: no cancellation).
    let counts: TiesMergeCounts = { votes: 0, undecided: 0 };
    if (o.counts !== false && o.vote !== 'none') {
      const sums = async (zeroSign: 1 | -1) => {
        const s = new Float32Array(n);
        await gpuMerge.tiesMerge(this.runtime, deltas, weights, thr, tieBudget.slice(), undefined, s, { ...plain, zeroSign, merge: 'sum', lambda: 1, output: 'merged' });
        return s;
      };
      const plus = await sums(1), minus = await sums(-1);
      const own = o.zeroSign > 0 ? plus : minus;
      let votes = 0, undecided = 0;
      for (let i = 0; i < n; i++) {
        if (plus[i]! > 0 && minus[i]! > 0) votes++;
        else if (plus[i]! < 0 && minus[i]! < 0) votes--;
        else if (own[i] !== 0) undecided++;
      }
      counts = { votes, undecided };
    }
    if (o.output !== 'none') {
      await gpuMerge.tiesMerge(this.runtime, deltas, weights, thr, tieBudget, base, out, plain);
    } else if (tieBudget.some((b) => b > 0)) {
      // Nothing to write, but the tie budgets are spent as by any pass.
      await gpuMerge.tiesMerge(this.runtime, deltas, weights, thr, tieBudget, undefined, new Float32Array(n), { ...plain, output: 'sign' });
    }
    return counts;
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
    this.runtime.dispose();
  }
}

/** f32(x − base), the task vector the WebGPU kernels take. */
function subtract(x: Float32Array, base: Float32Array): Float32Array {
  const d = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) d[i] = x[i]! - base[i]!;
  return d;
}

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
