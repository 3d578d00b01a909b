// WebGPU cosine similarity: kernels/row-inv-norm.wgsl then kernels/cosine-similarity.wgsl.
// Problems whose arrays exceed the device's storage-binding limit are split into blocks
// (batch items, then row ranges of A), each run as its own submission.
import { MergeKernelsError } from '../errors.ts';
import { cosineSimilarity as COSINE_WGSL, cosineSimilarityParams, rowInvNorm as INV_NORM_WGSL, rowInvNormParams } from '../gen/wgsl.ts';
import type { GpuKernel, GpuRuntime } from './runtime.ts';

const TILE = 64;          // output tile edge of cosine-similarity.wgsl
const NORM_WG = 64;       // workgroup size of row-inv-norm.wgsl

export interface Pipelines {
  invNorm: GpuKernel;
  cosine: GpuKernel;
}

/** row-inv-norm.wgsl and cosine-similarity.wgsl (and best-match.wgsl, with the same bindings). */
export const COSINE_BINDINGS: readonly GPUBufferBindingType[] = ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'];

export function pipelines(rt: GpuRuntime): Pipelines {
  return {
    invNorm: rt.kernel('rowInvNorm', INV_NORM_WGSL, ['uniform', 'read-only-storage', 'storage'], { constants: { WORKGROUP_SIZE: NORM_WG } }),
    cosine: rt.kernel('cosineSimilarity', COSINE_WGSL, COSINE_BINDINGS),
  };
}

/** A whole buffer, or a range of one (an adopted buffer with an offset). */
export type Binding = GPUBuffer | GPUBufferBinding;
const resource = (b: Binding): GPUBufferBinding => ('buffer' in b ? b : { buffer: b });

/** Records the inverse-norm pass for `rows` rows of `x` into `out`; returns buffers to destroy. */
export function encodeInvNorm(rt: GpuRuntime, pass: GPUComputePassEncoder, p: Pipelines, x: Binding, out: GPUBuffer, rows: number, cols: number): GPUBuffer[] {
  const maxDim = rt.limits.maxComputeWorkgroupsPerDimension;
  const groups = Math.ceil(rows / NORM_WG);
  const gx = Math.max(1, Math.min(groups, maxDim));
  const gy = Math.max(1, Math.ceil(groups / gx));
  const params = rt.params('rowInvNorm:params', rowInvNormParams, { rows, cols, rowsPerDispatchX: gx * NORM_WG });
  pass.setPipeline(p.invNorm.pipeline);
  pass.setBindGroup(0, rt.device.createBindGroup({
    label: 'merge-kernels:rowInvNorm:bindGroup', layout: p.invNorm.layout,
    entries: [{ binding: 0, resource: { buffer: params } }, { binding: 1, resource: resource(x) }, { binding: 2, resource: { buffer: out } }],
  }));
  pass.dispatchWorkgroups(gx, gy);
  return [params];
}

/** Records one block's passes (a, b → out, [batch, m, n]); returns the buffers to destroy after the submit. */
function encodeBlock(rt: GpuRuntime, encoder: GPUCommandEncoder, a: Binding, b: Binding, out: GPUBuffer, batch: number, m: number, n: number, c: number): GPUBuffer[] {
  const p = pipelines(rt);
  const invA = rt.storage('cosineSimilarity:factorsA', batch * m * 8);
  const invB = rt.storage('cosineSimilarity:factorsB', batch * n * 8);
  const temps: GPUBuffer[] = [invA, invB];
  const pass = rt.computePass(encoder, 'cosineSimilarity');
  if (batch * m > 0 && c > 0) temps.push(...encodeInvNorm(rt, pass, p, a, invA, batch * m, c));
  if (batch * n > 0 && c > 0) temps.push(...encodeInvNorm(rt, pass, p, b, invB, batch * n, c));
  if (batch * m * n > 0) {
    pass.setPipeline(p.cosine.pipeline);
    const maxDim = rt.limits.maxComputeWorkgroupsPerDimension;
    for (let first = 0; first < batch; first += maxDim) {
      const count = Math.min(maxDim, batch - first);
      const params = rt.params('cosineSimilarity:params', cosineSimilarityParams, { m, n, c, batchOffset: first });
      temps.push(params);
      pass.setBindGroup(0, rt.device.createBindGroup({
        label: 'merge-kernels:cosineSimilarity:bindGroup', layout: p.cosine.layout,
        entries: [params, a, b, invA, invB, out].map((x, binding) => ({ binding, resource: resource(x) })),
      }));
      pass.dispatchWorkgroups(Math.ceil(n / TILE), Math.ceil(m / TILE), count);
    }
  }
  pass.end();
  return temps;
}

/** Whether one block fits the device's binding and dispatch limits. */
function fitsOneBlock(rt: GpuRuntime, batch: number, m: number, n: number, c: number): boolean {
  const limit = rt.maxBinding;
  const fits = (rows: number, cols: number) => rows * cols * 4 <= limit;
  const maxTiles = rt.limits.maxComputeWorkgroupsPerDimension * TILE;
  return fits(batch * m, Math.max(c, 2)) && fits(batch * n, Math.max(c, 2)) && fits(batch * m, n) && m <= maxTiles && n <= maxTiles;
}

/** One block that fits the device's binding limits: [batch, m, c] × [batch, n, c] → [batch, m, n]. */
async function runBlock(rt: GpuRuntime, a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number): Promise<Float32Array> {
  const outBytes = batch * m * n * 4;
  const bufA = rt.storage('cosineSimilarity:a', a.byteLength, a);
  const bufB = rt.storage('cosineSimilarity:b', b.byteLength, b);
  const out = rt.storage('cosineSimilarity:out', outBytes);
  const temps: GPUBuffer[] = [bufA, bufB, out];
  try {
    return await rt.submitAndRead('cosineSimilarity', (encoder) => { temps.push(...encodeBlock(rt, encoder, bufA, bufB, out, batch, m, n, c)); }, out, outBytes);
  } finally {
    for (const buffer of temps) buffer.destroy();
  }
}

/**
 * Device tensors in, a device buffer out: one submit, no upload, no readback. Only problems that
 * fit one block (the device's binding limits) run this way.
 */
export async function cosineSimilarityOnDevice(rt: GpuRuntime, a: Binding, b: Binding, batch: number, m: number, n: number, c: number): Promise<GPUBuffer> {
  if (!fitsOneBlock(rt, batch, m, n, c)) {
    throw new MergeKernelsError('TOO_LARGE', `webgpu backend: device tensors [${batch}, ${m}, ${c}] × [${batch}, ${n}, ${c}] exceed one storage binding (${rt.maxBinding} bytes) or the dispatch limits; pass host tensors, which are split into blocks`, 'a');
  }
  const out = rt.storage('cosineSimilarity:out', batch * m * n * 4);
  const temps: GPUBuffer[] = [];
  try {
    await rt.submit('cosineSimilarity', (encoder) => { temps.push(...encodeBlock(rt, encoder, a, b, out, batch, m, n, c)); });
  } catch (e) {
    out.destroy();
    throw e;
  } finally {
    for (const buffer of temps) buffer.destroy();
  }
  return out;
}

/** Batched cosine similarity on the GPU, split into blocks that fit the device's limits. */
export async function cosineSimilarity(rt: GpuRuntime, a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number): Promise<Float32Array> {
  const limit = rt.maxBinding;
  const fits = (rows: number, cols: number) => rows * cols * 4 <= limit;
  const maxTiles = rt.limits.maxComputeWorkgroupsPerDimension * TILE;
  if (fitsOneBlock(rt, batch, m, n, c)) return runBlock(rt, a, b, batch, m, n, c);
  // Too large for one binding: one batch item at a time, and rows of A in chunks.
  if (!fits(n, Math.max(c, 2)) || n > maxTiles || !fits(1, n)) {
    throw new MergeKernelsError('TOO_LARGE', `webgpu backend: b's rows (${n} × ${c} floats per batch item) exceed this device's storage binding limit of ${limit} bytes; use the wasm backend or a device with larger limits`, 'b');
  }
  const rowsPerChunk = Math.min(maxTiles, Math.floor(limit / (4 * Math.max(c, n, 2))));
  const out = new Float32Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const bt = b.subarray(t * n * c, (t + 1) * n * c);
    for (let i0 = 0; i0 < m; i0 += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, m - i0);
      const block = await runBlock(rt, a.subarray((t * m + i0) * c, (t * m + i0 + rows) * c), bt, 1, rows, n, c);
      out.set(block, (t * m + i0) * n);
    }
  }
  return out;
}
