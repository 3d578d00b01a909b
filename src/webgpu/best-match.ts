// WebGPU best match per A token: kernels/row-inv-norm.wgsl (shared with cosine similarity),
// then the fused kernels/best-match.wgsl, split over B when there are too few A rows to fill
// the GPU, and then kernels/best-match-reduce.wgsl. Memory: a, b, their norm factors and
// 2 words per A row per split.
import { MergeKernelsError } from '../errors.ts';
import { bestMatch as BEST_MATCH_WGSL, bestMatchReduce as BEST_MATCH_REDUCE_WGSL, splitEvenOdd as SPLIT_WGSL, splitEvenOddParams, bestMatchParams, bestMatchReduceParams } from '../gen/wgsl.ts';
import { COSINE_BINDINGS, encodeInvNorm, pipelines } from './cosine-similarity.ts';
import type { GpuRuntime } from './runtime.ts';

const TILE = 64;
const NONE = -2; // the kernel's "no match" score
/** Workgroups worth having in flight: below this, B is split across workgroups. */
const TARGET_WORKGROUPS = 256;

const bestMatchKernel = (rt: GpuRuntime) => rt.kernel('bestMatch', BEST_MATCH_WGSL, COSINE_BINDINGS);
const reduceKernel = (rt: GpuRuntime) => rt.kernel('bestMatchReduce', BEST_MATCH_REDUCE_WGSL, ['uniform', 'read-only-storage', 'storage']);

/** How many column ranges B is split into: enough workgroups to fill a GPU, within the binding limit. */
export function bestMatchSplits(batch: number, nA: number, nB: number, maxBinding: number): number {
  const rowTiles = Math.ceil(nA / TILE) * batch;
  const colTiles = Math.max(1, Math.ceil(nB / TILE));
  const wanted = Math.ceil(TARGET_WORKGROUPS / Math.max(1, rowTiles));
  const fit = Math.max(1, Math.floor(maxBinding / Math.max(1, batch * nA * 8)));
  const splits = Math.max(1, Math.min(wanted, colTiles, fit));
  // Equal tile counts per split; recount so no split is empty.
  return Math.ceil(colTiles / Math.ceil(colTiles / splits));
}

export async function bestMatch(
  rt: GpuRuntime, a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number,
  maskFirstA: boolean, maskFirstB: boolean,
): Promise<{ score: Float32Array; index: Int32Array }> {
  checkSizes(rt, a.byteLength, b.byteLength, batch * nA * 8);
  const bufA = rt.storage('bestMatch:a', a.byteLength, a);
  const bufB = rt.storage('bestMatch:b', b.byteLength, b);
  try {
    return await bestMatchOf(rt, () => {}, bufA, bufB, batch, nA, nB, c, maskFirstA, maskFirstB);
  } finally {
    bufA.destroy();
    bufB.destroy();
  }
}

/**
 * ToMe's split and best match of a metric already on the device: the split (split-even-odd.wgsl)
 * and the match in one submit; one readback of the scores and indices, for the host's ranking.
 */
export async function bestMatchEvenOddOnDevice(
  rt: GpuRuntime, metric: { buffer: GPUBuffer; offset: number; size: number }, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean,
): Promise<{ score: Float32Array; index: Int32Array }> {
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  checkSizes(rt, batch * nA * c * 4, batch * nB * c * 4, batch * nA * 8);
  const bufA = rt.storage('bestMatch:a', batch * nA * c * 4);
  const bufB = rt.storage('bestMatch:b', batch * nB * c * 4);
  let temps: GPUBuffer[] = [];
  try {
    return await bestMatchOf(rt, (pass) => { temps = encodeSplitEvenOdd(rt, pass, metric, bufA, bufB, batch, tokens, c); }, bufA, bufB, batch, nA, nB, c, maskFirstA, maskFirstB);
  } finally {
    for (const buffer of [bufA, bufB, ...temps]) buffer.destroy();
  }
}

/** Records ToMe's even/odd split of `metric` [B, N, C] into `bufA` and `bufB`; returns the buffers to free after the submit. */
export function encodeSplitEvenOdd(
  rt: GpuRuntime, pass: GPUComputePassEncoder, metric: { buffer: GPUBuffer; offset: number; size: number },
  bufA: GPUBuffer, bufB: GPUBuffer, batch: number, tokens: number, c: number,
): GPUBuffer[] {
  const total = batch * tokens * c;
  if (total === 0) return [];
  const split = rt.kernel('splitEvenOdd', SPLIT_WGSL, ['uniform', 'read-only-storage', 'storage', 'storage']);
  const grid = rt.grid(Math.ceil(total / 256));
  const params = rt.params('splitEvenOdd:params', splitEvenOddParams, { total, tokens, c, gridX: grid[0] });
  rt.dispatch(pass, split, [params, metric, bufA, bufB], grid);
  return [params];
}

export function checkSizes(rt: GpuRuntime, aBytes: number, bBytes: number, resultBytes: number): void {
  for (const [name, bytes] of [['metric (set A)', aBytes], ['metric (set B)', bBytes], ['the best-match result', resultBytes]] as const) {
    if (bytes > rt.maxBinding) {
      throw new MergeKernelsError('TOO_LARGE', `webgpu backend: ${name} needs ${bytes} bytes, over this device's storage binding limit of ${rt.maxBinding} bytes; use the wasm backend or split the batch`, 'metric');
    }
  }
}

/** The match of A rows in `bufA` against B rows in `bufB`, after `prelude` (recorded first in the same pass). */
async function bestMatchOf(
  rt: GpuRuntime, prelude: (pass: GPUComputePassEncoder) => void, bufA: GPUBuffer, bufB: GPUBuffer,
  batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean,
): Promise<{ score: Float32Array; index: Int32Array }> {
  const total = batch * nA;
  const out = rt.storage('bestMatch:out', total * 8);
  const temps: GPUBuffer[] = [out];
  try {
    const words = await rt.submitAndRead('bestMatch', (encoder) => {
      const pass = rt.computePass(encoder, 'bestMatch');
      prelude(pass);
      temps.push(...encodeBestMatch(rt, pass, bufA, bufB, out, batch, nA, nB, c, maskFirstA, maskFirstB));
      pass.end();
    }, out, total * 8);
    const score = words.slice(0, total);
    for (let i = 0; i < total; i++) if (score[i]! <= NONE) score[i] = -Infinity;
    const index = new Int32Array(words.buffer, words.byteOffset + total * 4, total).slice();
    return { score, index };
  } finally {
    for (const buffer of temps) buffer.destroy();
  }
}

/**
 * Records the match into `pass`: `out` gets [B·|A|] best scores (f32 bits; the sentinel -2 where
 * masked) then [B·|A|] best B indices. Returns the buffers to free after the submit.
 */
export function encodeBestMatch(
  rt: GpuRuntime, pass: GPUComputePassEncoder, bufA: GPUBuffer, bufB: GPUBuffer, out: GPUBuffer,
  batch: number, nA: number, nB: number, c: number, maskFirstA: boolean, maskFirstB: boolean,
): GPUBuffer[] {
  const total = batch * nA;
  const p = pipelines(rt);
  const match = bestMatchKernel(rt);
  const facA = rt.storage('bestMatch:factorsA', batch * nA * 8);
  const facB = rt.storage('bestMatch:factorsB', batch * nB * 8);
  const splits = bestMatchSplits(batch, nA, nB, rt.maxBinding);
  const splitTiles = Math.ceil(Math.max(1, Math.ceil(nB / TILE)) / splits);
  const partial = splits > 1 ? rt.storage('bestMatch:partial', splits * total * 8) : out;
  const temps: GPUBuffer[] = [facA, facB, ...(splits > 1 ? [partial] : [])];
  if (c > 0) {
    temps.push(...encodeInvNorm(rt, pass, p, bufA, facA, batch * nA, c));
    temps.push(...encodeInvNorm(rt, pass, p, bufB, facB, batch * nB, c));
  }
  pass.setPipeline(match.pipeline);
  const maxDim = rt.limits.maxComputeWorkgroupsPerDimension;
  for (let first = 0; first < batch; first += maxDim) {
    const count = Math.min(maxDim, batch - first);
    const params = rt.params('bestMatch:params', bestMatchParams, { nA, nB, c, batchOffset: first, maskFirstA: maskFirstA ? 1 : 0, maskFirstB: maskFirstB ? 1 : 0, total, splitTiles });
    temps.push(params);
    pass.setBindGroup(0, rt.device.createBindGroup({
      label: 'merge-kernels:bestMatch:bindGroup', layout: match.layout,
      entries: [params, bufA, bufB, facA, facB, partial].map((buffer, binding) => ({ binding, resource: { buffer } })),
    }));
    pass.dispatchWorkgroups(splits, Math.ceil(nA / TILE), count);
  }
  if (splits > 1) {
    const reduce = reduceKernel(rt);
    const groups = Math.ceil(total / 256);
    const x = Math.min(groups, maxDim);
    const params = rt.params('bestMatchReduce:params', bestMatchReduceParams, { total, splits, rowsX: x * 256 });
    temps.push(params);
    pass.setPipeline(reduce.pipeline);
    pass.setBindGroup(0, rt.device.createBindGroup({
      label: 'merge-kernels:bestMatchReduce:bindGroup', layout: reduce.layout,
      entries: [params, partial, out].map((buffer, binding) => ({ binding, resource: { buffer } })),
    }));
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  }
  return temps;
}
