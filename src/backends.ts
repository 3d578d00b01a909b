// The three backends behind the context. Each implements every kernel with the same signature
// over validated, flat float32 arrays; shapes and options were checked once, in api.ts.
import * as ref from './reference/cosine-similarity.ts';
import * as refMatch from './reference/bipartite-soft-matching.ts';
import * as refMerge from './reference/merge-primitives.ts';
import type { TiesMergeOptions } from './reference/merge-primitives.ts';
import * as wasm from './wasm/cosine-similarity.ts';
import * as wasmMatch from './wasm/best-match.ts';
import * as wasmMerge from './wasm/merge-primitives.ts';
import * as gpu from './webgpu/cosine-similarity.ts';
import * as gpuMatch from './webgpu/best-match.ts';
import * as gpuMerge from './webgpu/merge-primitives.ts';
import type { WasmRuntime } from './wasm/runtime.ts';
import type { GpuRuntime } from './webgpu/runtime.ts';

export type BackendName = 'js' | 'wasm' | 'webgpu';

export interface BestMatch {
  score: Float32Array;
  index: Int32Array;
}

export interface Backend {
  readonly name: BackendName;
  cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number): Promise<Float32Array>;
  /** Each A row's best cosine match in B (score, lowest index on ties); see reference/bipartite-soft-matching.ts. */
  bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean): Promise<BestMatch>;
  // Model-merging primitives over one chunk of a tensor; see reference/merge-primitives.ts.
  absHistogram(x: Float32Array, hist: Uint32Array, level: 0 | 1, prefix: number): Promise<void>;
  tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions): Promise<void>;
  dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array): Promise<[number, number]>;
  findNonFinite(x: Float32Array): Promise<number>;
  dispose(): void;
}

/** The plain TypeScript reference: readable, obviously correct, the oracle of every test. */
export class JsBackend implements Backend {
  readonly name = 'js' as const;
  async cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number) {
    return ref.cosineSimilarity(a, b, batch, m, n, c);
  }
  async bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    return refMatch.bestMatch(a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async absHistogram(x: Float32Array, hist: Uint32Array, level: 0 | 1, prefix: number) {
    refMerge.absHistogram(x, hist, level, prefix);
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    refMerge.tiesMerge(models, weights, thr, tieBudget, base, out, o);
  }
  async dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array) {
    return refMerge.dropAndRescale(x, offset, key, p, scale, out);
  }
  async findNonFinite(x: Float32Array) {
    return refMerge.findNonFinite(x);
  }
  dispose(): void {}
}

/** WebAssembly SIMD (AssemblyScript, f32x4). */
export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  constructor(readonly runtime: WasmRuntime) {}
  async cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number) {
    return wasm.cosineSimilarity(this.runtime, a, b, batch, m, n, c);
  }
  async bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    return wasmMatch.bestMatch(this.runtime, a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async absHistogram(x: Float32Array, hist: Uint32Array, level: 0 | 1, prefix: number) {
    wasmMerge.absHistogram(this.runtime, x, hist, level, prefix);
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    wasmMerge.tiesMerge(this.runtime, models, weights, thr, tieBudget, base, out, o);
  }
  async dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array) {
    return wasmMerge.dropAndRescale(this.runtime, x, offset, key, p, scale, out);
  }
  async findNonFinite(x: Float32Array) {
    return wasmMerge.findNonFinite(this.runtime, x);
  }
  dispose(): void {
    this.runtime.dispose();
  }
}

/** WebGPU compute shaders (WGSL). */
export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  constructor(readonly runtime: GpuRuntime) {}
  async cosineSimilarity(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number) {
    this.runtime.check();
    return gpu.cosineSimilarity(this.runtime, a, b, batch, m, n, c);
  }
  async bestMatch(a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean) {
    this.runtime.check();
    return gpuMatch.bestMatch(this.runtime, a, b, batch, nA, nB, c, maskFirstA, maskFirstB);
  }
  async absHistogram(x: Float32Array, hist: Uint32Array, level: 0 | 1, prefix: number) {
    this.runtime.check();
    return gpuMerge.absHistogram(this.runtime, x, hist, level, prefix);
  }
  async tiesMerge(models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array, base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions) {
    this.runtime.check();
    return gpuMerge.tiesMerge(this.runtime, models, weights, thr, tieBudget, base, out, o);
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
