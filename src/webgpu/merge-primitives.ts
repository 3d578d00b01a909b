// WebGPU model-merging primitives: thin host code over kernels/abs-histogram.wgsl,
// find-non-finite.wgsl, drop-and-rescale.wgsl and the three TIES stages (ties-tie-count.wgsl,
// ties-tie-cutoff.wgsl, ties-merge.wgsl). Semantics: src/reference/merge-primitives.ts.
// The TIES primitives work on a chunk already on the GPU (uploadChunk: each model and the base
// written once; the backend keeps it across the passes over that chunk) and form the task vectors
// δ = f32(x − base) in the kernels (kernels/lib/task-vector.wgsl). Chunks larger than the device's
// storage-binding limit are split into blocks: the histograms of all blocks go in one submission;
// the merge takes one per block, as the tie budgets and the DARE flat index (53 bits) cross
// blocks through the host. Scratch, parameter and staging buffers come from the runtime's pool.
import { MergeKernelsError } from '../errors.ts';
import { LEVEL1_BINS, type HistogramRequest, type TiesMergeCounts, type TiesMergeOptions } from '../reference/merge-primitives.ts';
import {
  absHistogram as HISTOGRAM_WGSL,
  dropAndRescale as DROP_WGSL,
  findNonFinite as NON_FINITE_WGSL,
  tiesMerge as TIES_MERGE_WGSL,
  tiesTieCount as TIE_COUNT_WGSL,
  tiesTieCutoff as TIE_CUTOFF_WGSL,
  absHistogramParams, dropAndRescaleParams, findNonFiniteParams, tiesMergeParams, tiesTieCountParams,
} from '../gen/wgsl.ts';
import { packParams, type GpuRuntime } from './runtime.ts';

const WG = 256;           // workgroup size of every kernel here
const TIE_TILE = 4096;    // entries per tile of ties-tie-count.wgsl (256 invocations × 16)
const DROP_TILE = 4096;   // entries per workgroup of drop-and-rescale.wgsl (256 invocations × 16)
const NO_HIT = 0xffffffff;

type KernelName = 'absHistogram' | 'findNonFinite' | 'dropAndRescale' | 'tiesTieCount' | 'tiesTieCutoff' | 'tiesMerge' | 'tiesMergeCounting';

const SOURCES: Record<KernelName, { code: string; bindings: GPUBufferBindingType[]; entryPoint?: string }> = {
  absHistogram: { code: HISTOGRAM_WGSL, bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'] },
  findNonFinite: { code: NON_FINITE_WGSL, bindings: ['uniform', 'read-only-storage', 'storage'] },
  dropAndRescale: { code: DROP_WGSL, bindings: ['uniform', 'read-only-storage', 'storage', 'storage'] },
  tiesTieCount: { code: TIE_COUNT_WGSL, bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage', 'read-only-storage'] },
  tiesTieCutoff: { code: TIE_CUTOFF_WGSL, bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'read-only-storage'] },
  tiesMerge: { code: TIES_MERGE_WGSL, bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'storage'] },
  tiesMergeCounting: { code: TIES_MERGE_WGSL, bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'storage'], entryPoint: 'mainCounting' },
};

/** A 2-D grid of `groups` workgroups within maxComputeWorkgroupsPerDimension: [x, y]. */
const grid = (rt: GpuRuntime, groups: number) => rt.grid(groups);

/** Records one dispatch of `name` over a [gx, gy] grid (its pipeline built once per device by rt.kernel). */
function dispatch(rt: GpuRuntime, pass: GPUComputePassEncoder, name: KernelName, buffers: Array<GPUBuffer | { buffer: GPUBuffer; size: number }>, g: [number, number]): void {
  const { code, bindings, entryPoint } = SOURCES[name];
  rt.dispatch(pass, rt.kernel(name, code, bindings, { entryPoint }), buffers, g);
}

/** Entries per block, a multiple of `align`, such that `wordsPerEntry` words per entry fit one binding. */
function blockEntries(rt: GpuRuntime, wordsPerEntry: number, align: number, argument: string): number {
  const entries = Math.floor(rt.maxBinding / (4 * wordsPerEntry) / align) * align;
  if (entries < align) {
    throw new MergeKernelsError('TOO_LARGE', `webgpu backend: ${argument} needs ${wordsPerEntry * align * 4} bytes per block of ${align} entries, over this device's storage binding limit of ${rt.maxBinding} bytes; use the wasm backend`, argument);
  }
  return entries;
}

const u32Of = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0]!;

/**
 * One chunk of T models (and its base) on the GPU, split into blocks that fit one storage
 * binding: per block, the T models' entries back to back ([T][len] float bits) and the base's.
 * Every primitive over the chunk binds these buffers, so a chunk uploaded once serves all its
 * passes (see WebGpuBackend's held inputs).
 */
export interface GpuChunk {
  T: number;
  n: number;
  blocks: Array<{ start: number; len: number; models: GPUBuffer; base: GPUBuffer | undefined }>;
  /** Bytes held on the GPU. */
  bytes: number;
}

/** Entries per block of a chunk of T models: T words per entry in one binding (at least 2, so that tiesMerge's out also has room for its tail). */
function chunkBlock(rt: GpuRuntime, T: number): number {
  return blockEntries(rt, Math.max(T, 2), TIE_TILE, 'models');
}

/** Uploads a chunk (each model and the base written once, at buffer creation). */
export function uploadChunk(rt: GpuRuntime, models: readonly Float32Array[], base: Float32Array | undefined): GpuChunk {
  const T = models.length, n = models[0]!.length;
  const block = chunkBlock(rt, T);
  const chunk: GpuChunk = { T, n, blocks: [], bytes: 0 };
  try {
    for (let start = 0; start < n; start += block) {
      const len = Math.min(block, n - start);
      const m = rt.storageOf('chunk:models', models.map((x) => x.subarray(start, start + len)));
      chunk.blocks.push({ start, len, models: m, base: undefined });
      chunk.bytes += m.size;
      if (base) {
        const b = rt.storage('chunk:base', len * 4, base.subarray(start, start + len));
        chunk.blocks[chunk.blocks.length - 1]!.base = b;
        chunk.bytes += b.size;
      }
    }
  } catch (e) {
    freeChunk(chunk);
    throw e;
  }
  return chunk;
}

export function freeChunk(chunk: GpuChunk): void {
  for (const b of chunk.blocks) { b.models.destroy(); b.base?.destroy(); }
  chunk.blocks = [];
}

/**
 * Accumulates every request's radix-select histogram of |models[r.model]| (|f32(models[r.model] −
 * base)| with `subtract`) over a chunk into r.hist: one dispatch per block, all in one submission,
 * the bins of every request in one buffer (zeroed on the GPU, added to the host's counts after).
 */
export async function absHistograms(rt: GpuRuntime, chunk: GpuChunk, subtract: boolean, requests: readonly HistogramRequest[]): Promise<void> {
  if (chunk.n === 0 || requests.length === 0) return;
  const table = new Uint32Array(8 * requests.length);
  let words = 0;
  requests.forEach((r, i) => {
    table.set([r.model, r.level, r.level === 0 ? 0 : r.prefix * LEVEL1_BINS, r.hist.length, words], 8 * i);
    words += r.hist.length;
  });
  const bins = rt.take('storage', words * 4);
  const list = rt.storageFrom(table);
  const dummy = subtract ? undefined : rt.take('storage', 16);
  const uniforms: GPUBuffer[] = [];
  try {
    const got = await rt.submitAndRead('absHistograms', (encoder) => {
      encoder.clearBuffer(bins, 0, words * 4);
      const pass = rt.computePass(encoder, 'absHistograms');
      for (const b of chunk.blocks) {
        const g = grid(rt, Math.ceil(b.len / WG));
        const params = rt.uniformFrom(packParams(absHistogramParams, { n: b.len, numRequests: requests.length, hasBase: subtract ? 1 : 0, gridX: g[0] }));
        uniforms.push(params);
        dispatch(rt, pass, 'absHistogram', [params, b.models, b.base ?? dummy!, list, bins], g);
      }
      pass.end();
    }, bins, words * 4);
    const counts = new Uint32Array(got.buffer, got.byteOffset, words);
    let at = 0;
    for (const r of requests) {
      const h = r.hist;
      for (let j = 0; j < h.length; j++) h[j] = (h[j]! + counts[at + j]!) >>> 0;
      at += h.length;
    }
  } finally {
    rt.give(bins, list, ...uniforms, ...(dummy ? [dummy] : []));
  }
}

/** The index of the first NaN or ±Infinity in `x`, or -1 (atomicMin per block, blocks in order). */
export async function findNonFinite(rt: GpuRuntime, x: Float32Array): Promise<number> {
  const n = x.length;
  const block = blockEntries(rt, 1, WG, 'x');
  // Blocks in order: the first block with a hit holds the first non-finite entry.
  for (let start = 0; start < n; start += block) {
    const len = Math.min(block, n - start);
    const xs = rt.storage('findNonFinite:x', len * 4, x.subarray(start, start + len));
    const first = rt.storage('findNonFinite:first', 4, new Uint32Array([NO_HIT]));
    const g = grid(rt, Math.ceil(len / WG));
    const params = rt.params('findNonFinite:params', findNonFiniteParams, { n: len, gridX: g[0] });
    try {
      const words = await rt.submitAndRead('findNonFinite', (encoder) => {
        const pass = rt.computePass(encoder, 'findNonFinite');
        dispatch(rt, pass, 'findNonFinite', [params, xs, first], g);
        pass.end();
      }, first, 4);
      const hit = new Uint32Array(words.buffer, words.byteOffset, 1)[0]!;
      if (hit !== NO_HIT) return start + hit;
    } finally {
      xs.destroy();
      first.destroy();
      params.destroy();
    }
  }
  return -1;
}

/** DARE's drop: writes the kept entries × scale into `out`; returns [Σ|x|, Σ|kept x|] in float64. */
export async function dropAndRescale(rt: GpuRuntime, x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array): Promise<[number, number]> {
  const n = x.length;
  // An integer draw u is below p·2^24 iff it is below the ceiling.
  const cut = Math.ceil(Math.fround(p) * 16777216);
  // out and the per-workgroup partials (4 words per 4096 entries) share one buffer.
  const block = Math.floor(blockEntries(rt, 1, DROP_TILE, 'x') / DROP_TILE * 1024 / 1025) * DROP_TILE;
  const scaleHi = Math.fround(scale), scaleLo = Math.fround(scale - scaleHi);
  let sumAbs = 0, sumKept = 0;
  for (let start = 0; start < n; start += block) {
    const len = Math.min(block, n - start);
    const groups = Math.ceil(len / DROP_TILE);
    const at = offset + start;
    const lo = at % 4294967296, hi = Math.floor(at / 4294967296);
    const g = grid(rt, groups);
    const params = rt.params('dropAndRescale:params', dropAndRescaleParams, { n: len, key: key >>> 0, offsetLo: lo, offsetHi: hi, cut, scaleHi, scaleLo, gridX: g[0], groups, zero: 0 });
    const xs = rt.storage('dropAndRescale:x', len * 4, x.subarray(start, start + len));
    const result = rt.storage('dropAndRescale:out', (len + 4 * groups) * 4);
    const partial = rt.storage('dropAndRescale:partial', groups * 16);
    try {
      const got = await rt.submitAndRead('dropAndRescale', (encoder) => {
        const pass = rt.computePass(encoder, 'dropAndRescale');
        dispatch(rt, pass, 'dropAndRescale', [params, xs, { buffer: result, size: len * 4 }, partial], g);
        pass.end();
        encoder.copyBufferToBuffer(partial, 0, result, len * 4, groups * 16);
      }, result, (len + 4 * groups) * 4);
      out.set(got.subarray(0, len), start);
      // hi + lo, or hi alone when it is ±∞ or NaN (its lo is then meaningless).
      const pair = (hi: number, lo: number) => (Number.isFinite(hi) ? hi + lo : hi);
      for (let w = len; w < len + 4 * groups; w += 4) {
        sumAbs += pair(got[w]!, got[w + 1]!);
        sumKept += pair(got[w + 2]!, got[w + 3]!);
      }
    } finally {
      for (const b of [params, xs, result, partial]) b.destroy();
    }
  }
  return [sumAbs, sumKept];
}

const VOTE = { sum: 0, count: 1, none: 2 } as const;
const MERGE = { sum: 0, mean: 1, normalize: 2, max: 3 } as const;

/**
 * Fused TIES trim + elect + disjoint merge over a chunk on the GPU, δ = f32(model − base) formed in
 * the kernels with `subtract`, base added to the output with `addBase`. With a tie budget left:
 * stage 1 counts the ties per tile, stage 2 turns each budget into an index cutoff, stage 3
 * merges and (when `o.counts` and a vote) counts the votes and undecided entries; `tieBudget` is
 * updated per block. One submission and one readback per block (the out entries, the consumed
 * budgets and the counts, as needed).
 */
export async function tiesMerge(
  rt: GpuRuntime, chunk: GpuChunk, weights: Float32Array, thr: Int32Array, tieBudget: Float64Array,
  out: Float32Array, o: TiesMergeOptions, subtract: boolean, addBase: boolean,
): Promise<TiesMergeCounts> {
  const T = chunk.T;
  const counting = o.counts !== false && o.vote !== 'none';
  const writes = o.output !== 'none';
  let votes = 0, undecided = 0;
  for (const block of chunk.blocks) {
    const len = block.len;
    // Models with a tie budget left need stages 1–2; without any, stage 3 runs alone.
    const budgeted: number[] = [];
    for (let t = 0; t < T; t++) if (tieBudget[t]! > 0 && thr[t]! >= 0) budgeted.push(t);
    const B = budgeted.length;
    if (!writes && !counting && B === 0) continue; // nothing to write, count or spend
    const info = new Uint32Array(4 * T);
    for (let t = 0; t < T; t++) {
      info[4 * t] = u32Of(weights[t]!);
      info[4 * t + 1] = thr[t]! >>> 0;
    }
    const list = new Uint32Array(4 * Math.max(1, B));
    budgeted.forEach((t, j) => {
      list[4 * j] = t;
      list[4 * j + 1] = thr[t]!;
      list[4 * j + 2] = Math.min(tieBudget[t]!, 0xffffffff);
    });
    const numTiles = Math.ceil(len / TIE_TILE);
    const gTiles = grid(rt, numTiles);
    const gEntries = grid(rt, Math.ceil(len / WG));
    const mergeParams = packParams(tiesMergeParams, {
      n: len, T, vote: VOTE[o.vote], merge: MERGE[o.merge], output: o.output === 'sign' ? 1 : o.output === 'none' ? 2 : 0, zeroSign: o.zeroSign, lambda: o.lambda,
      hasBase: addBase ? 1 : 0, gridX: gEntries[0], zero: 0, subtract: subtract ? 1 : 0, counting: counting ? 1 : 0,
    });
    // The result: out (when written), then a copy of modelInfo (its consumed budgets, when stages
    // 1–2 run), then the tally (when counting): one readback of what is needed.
    const outBytes = writes ? len * 4 : 0;
    const infoAt = outBytes, tallyAt = infoAt + (B > 0 ? info.byteLength : 0), end = tallyAt + (counting ? 16 : 0);
    const pooled: GPUBuffer[] = [];
    const take = (b: GPUBuffer) => (pooled.push(b), b);
    try {
      const baseBuf = block.base ?? take(rt.take('storage', 16));
      const infoBuf = take(rt.storageFrom(info));
      const result = take(rt.take('storage', Math.max(16, end)));
      const tally = take(rt.take('storage', 16));
      const mergeUniform = take(rt.uniformFrom(mergeParams));
      let listBuf: GPUBuffer | undefined, countBuf: GPUBuffer | undefined, tieUniform: GPUBuffer | undefined;
      if (B > 0) {
        listBuf = take(rt.storageFrom(list));
        countBuf = take(rt.take('storage', B * numTiles * 4));
        // ties-tie-count.wgsl and ties-tie-cutoff.wgsl share this block (the same Params).
        tieUniform = take(rt.uniformFrom(packParams(tiesTieCountParams, { n: len, numBudgeted: B, numTiles, gridX: gTiles[0], hasBase: subtract ? 1 : 0 })));
      }
      const got = await rt.submitAndRead('tiesMerge', (encoder) => {
        if (counting) encoder.clearBuffer(tally, 0, 16);
        const pass = rt.computePass(encoder, 'tiesMerge');
        if (B > 0) {
          dispatch(rt, pass, 'tiesTieCount', [tieUniform!, block.models, listBuf!, countBuf!, baseBuf], gTiles);
          dispatch(rt, pass, 'tiesTieCutoff', [tieUniform!, block.models, listBuf!, countBuf!, infoBuf, baseBuf], [B, 1]);
        }
        dispatch(rt, pass, counting ? 'tiesMergeCounting' : 'tiesMerge', [mergeUniform, block.models, baseBuf, infoBuf, { buffer: result, size: Math.max(16, outBytes) }, { buffer: tally, size: 16 }], gEntries);
        pass.end();
        if (B > 0) encoder.copyBufferToBuffer(infoBuf, 0, result, infoAt, info.byteLength);
        if (counting) encoder.copyBufferToBuffer(tally, 0, result, tallyAt, 16);
      }, result, end);
      if (writes) out.set(got.subarray(0, len), block.start);
      const words = new Uint32Array(got.buffer, got.byteOffset, end / 4);
      if (B > 0) for (const t of budgeted) tieBudget[t] = tieBudget[t]! - words[infoAt / 4 + 4 * t + 3]!;
      if (counting) {
        votes += words[tallyAt / 4]! - words[tallyAt / 4 + 1]!;
        undecided += words[tallyAt / 4 + 2]!;
      }
    } finally {
      rt.give(...pooled);
    }
  }
  return counting ? { votes, undecided } : { votes: 0, undecided: 0 };
}
