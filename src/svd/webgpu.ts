// The SVD family on WebGPU: every O(m·n²) and O(n³) step is a WGSL kernel over the whole batch —
// Householder QR and the application of Q (kernels/svd-householder.wgsl), the Jacobi sweeps on
// the n × n core with double-float pair sums (kernels/svd-jacobi.wgsl), the randomized range
// finder's products (kernels/svd-matmul.wgsl) — and the data stays on the GPU between them.
// The host reads back the converged core (2·n² values per item, with the sweep's rotation count
// that says whether to stop) and does the reference's O(n²) bookkeeping (finishCore: σ, their
// order, normalising and completing vt), then uploads V's columns for Q to be applied to.
import { MergeKernelsError } from '../errors.ts';
import { svdHouseholder as HOUSEHOLDER_WGSL, svdJacobi as JACOBI_WGSL, svdMatmul as MATMUL_WGSL } from '../gen/wgsl.ts';
import * as ref from '../reference/svd.ts';
import type { SvdFactors } from '../reference/svd.ts';
import type { GpuRuntime } from '../webgpu/runtime.ts';
import type { SvdKernels } from './kernels.ts';

/**
 * The GPU core stops at |x_p·x_q| ≤ 1e-6·‖x_p‖‖x_q‖: its rows are float32, whose rotations leave
 * them orthogonal to ~1e-7, so a tighter test would never be met; 1e-6 is 10× inside the bound.
 */
const CORE_TOL = 1e-6;
/** Sweeps in the first submit (typical convergence), then per further submit. */
const FIRST_SWEEPS = 6, MORE_SWEEPS = 2;

interface Pipelines {
  hhLayout: GPUBindGroupLayout;
  reflector: GPUComputePipeline;
  reflectW: GPUComputePipeline;
  reflectUpdate: GPUComputePipeline;
  jacLayout: GPUBindGroupLayout;
  coreInit: GPUComputePipeline;
  jacobiRound: GPUComputePipeline;
  mmLayout: GPUBindGroupLayout;
  matmul: GPUComputePipeline;
  eye: GPUComputePipeline;
}

function pipelines(rt: GpuRuntime): Pipelines {
  const cached = rt.pipelines.get('svd') as Pipelines | undefined;
  if (cached) return cached;
  const device = rt.device;
  const entry = (binding: number, type: GPUBufferBindingType): GPUBindGroupLayoutEntry =>
    ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: type === 'uniform' ? { type, hasDynamicOffset: true } : { type } });
  const layout = (label: string, types: GPUBufferBindingType[]) =>
    device.createBindGroupLayout({ label: `merge-kernels:${label}:layout`, entries: types.map((t, i) => entry(i, t)) });
  const hhLayout = layout('svdHouseholder', ['uniform', 'storage', 'storage', 'storage', 'storage']);
  const jacLayout = layout('svdJacobi', ['uniform', 'storage', 'storage', 'storage', 'storage']);
  const mmLayout = layout('svdMatmul', ['uniform', 'read-only-storage', 'read-only-storage', 'storage']);
  const make = (name: string, code: string, bgl: GPUBindGroupLayout, entryPoint: string) => {
    const module = device.createShaderModule({ label: `merge-kernels:${name}`, code });
    return device.createComputePipeline({
      label: `merge-kernels:${name}:${entryPoint}:pipeline`,
      layout: device.createPipelineLayout({ label: `merge-kernels:${name}:${entryPoint}:pipelineLayout`, bindGroupLayouts: [bgl] }),
      compute: { module, entryPoint },
    });
  };
  const p: Pipelines = {
    hhLayout, jacLayout, mmLayout,
    reflector: make('svdHouseholder', HOUSEHOLDER_WGSL, hhLayout, 'reflector'),
    reflectW: make('svdHouseholder', HOUSEHOLDER_WGSL, hhLayout, 'reflectW'),
    reflectUpdate: make('svdHouseholder', HOUSEHOLDER_WGSL, hhLayout, 'reflectUpdate'),
    coreInit: make('svdJacobi', JACOBI_WGSL, jacLayout, 'coreInit'),
    jacobiRound: make('svdJacobi', JACOBI_WGSL, jacLayout, 'jacobiRound'),
    matmul: make('svdMatmul', MATMUL_WGSL, mmLayout, 'main'),
    eye: make('svdMatmul', MATMUL_WGSL, mmLayout, 'eye'),
  };
  rt.pipelines.set('svd', p);
  return p;
}

/** One call's GPU objects: every buffer it makes is destroyed at the end. */
class Scope {
  readonly buffers: GPUBuffer[] = [];
  constructor(readonly rt: GpuRuntime) {}
  storage(label: string, floats: number, data?: Float32Array): GPUBuffer {
    const b = this.rt.storage(`svd:${label}`, Math.max(4, floats) * 4, data);
    this.buffers.push(b);
    return b;
  }
  /**
   * One uniform block per step at the device's dynamic-offset alignment: a step's parameters are
   * bound by offset, so a sweep's hundreds of dispatches share one buffer and one bind group.
   */
  params(label: string, steps: Array<Array<number>>, floatAt = -1): { buffer: GPUBuffer; offset: (i: number) => number } {
    const stride = Math.max(32, this.rt.limits.minUniformBufferOffsetAlignment);
    const bytes = Math.max(1, steps.length) * stride;
    const buffer = this.rt.device.createBuffer({ label: `merge-kernels:svd:${label}:params`, size: bytes, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
    const range = buffer.getMappedRange();
    const u32 = new Uint32Array(range), f32 = new Float32Array(range);
    steps.forEach((words, i) => words.forEach((w, k) => { if (k === floatAt) f32[i * stride / 4 + k] = w; else u32[i * stride / 4 + k] = w; }));
    buffer.unmap();
    this.buffers.push(buffer);
    return { buffer, offset: (i) => i * stride };
  }
  bindGroup(label: string, layout: GPUBindGroupLayout, params: GPUBuffer, buffers: GPUBuffer[]): GPUBindGroup {
    return this.rt.device.createBindGroup({
      label: `merge-kernels:svd:${label}:bindGroup`, layout,
      entries: [{ binding: 0, resource: { buffer: params, size: 32 } }, ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))],
    });
  }
  destroy(): void {
    for (const b of this.buffers) b.destroy();
  }
}

const groups = (count: number) => Math.max(1, Math.ceil(count / 16));

/** Records the Householder QR of x [batch, m, cols] (m ≥ cols): R in place, the reflectors' rows in refl [batch, cols, m]. */
function encodeQR(s: Scope, pass: GPUComputePassEncoder, p: Pipelines, x: GPUBuffer, refl: GPUBuffer, tau: GPUBuffer, w: GPUBuffer, batch: number, m: number, cols: number): void {
  const params = s.params('qr', Array.from({ length: cols }, (_, j) => [m, cols, cols, j, j + 1, 0, 0, 0]));
  const bg = s.bindGroup('qr', p.hhLayout, params.buffer, [x, refl, tau, w]);
  for (let j = 0; j < cols; j++) {
    pass.setBindGroup(0, bg, [params.offset(j)]);
    pass.setPipeline(p.reflector);
    pass.dispatchWorkgroups(batch);
    if (j + 1 >= cols) continue;
    pass.setPipeline(p.reflectW);
    pass.dispatchWorkgroups(groups(cols - j - 1), 1, batch);
    pass.setPipeline(p.reflectUpdate);
    pass.dispatchWorkgroups(groups(cols - j - 1), groups(m - j), batch);
  }
}

/** Records x [batch, m, cols] ← Q·x with Q's nr reflectors in refl [batch, nr, m]. */
function encodeApplyQ(s: Scope, pass: GPUComputePassEncoder, p: Pipelines, x: GPUBuffer, refl: GPUBuffer, tau: GPUBuffer, w: GPUBuffer, batch: number, m: number, nr: number, cols: number): void {
  const params = s.params('applyQ', Array.from({ length: nr }, (_, j) => [m, cols, nr, j, 0, 0, 0, 0]));
  const bg = s.bindGroup('applyQ', p.hhLayout, params.buffer, [x, refl, tau, w]);
  for (let j = nr - 1; j >= 0; j--) {
    pass.setBindGroup(0, bg, [params.offset(j)]);
    pass.setPipeline(p.reflectW);
    pass.dispatchWorkgroups(groups(cols), 1, batch);
    pass.setPipeline(p.reflectUpdate);
    pass.dispatchWorkgroups(groups(cols), groups(m - j), batch);
  }
}

/** Records out = op(a)·x per item (a [m, n]; x [inner, l]; out [rows, l]). */
function encodeMatmul(s: Scope, pass: GPUComputePassEncoder, p: Pipelines, a: GPUBuffer, x: GPUBuffer, out: GPUBuffer, batch: number, m: number, n: number, l: number, transposeA: boolean): void {
  const params = s.params('matmul', [[m, n, l, transposeA ? 1 : 0]]);
  pass.setPipeline(p.matmul);
  pass.setBindGroup(0, s.bindGroup('matmul', p.mmLayout, params.buffer, [a, x, out]), [0]);
  pass.dispatchWorkgroups(groups(l), groups(transposeA ? n : m), batch);
}

/** Records out [batch, rows, cols] = [I; 0]; `other` is any buffer but out (the unused inputs' binding). */
function encodeEye(s: Scope, pass: GPUComputePassEncoder, p: Pipelines, out: GPUBuffer, other: GPUBuffer, batch: number, rows: number, cols: number): void {
  const params = s.params('eye', [[rows, 0, cols, 0]]);
  pass.setPipeline(p.eye);
  pass.setBindGroup(0, s.bindGroup('eye', p.mmLayout, params.buffer, [other, other, out]), [0]);
  pass.dispatchWorkgroups(groups(cols), groups(rows), batch);
}

/**
 * The exact SVD of the tall items in x [batch, m, n] (on the GPU, overwritten), top k: QR, the
 * Jacobi core (sweeps until one rotates nothing), the host's finishing, u = Q·V. `before`
 * records work to run first in the same submit (the randomized method's products).
 */
async function exactOnGpu(s: Scope, x: GPUBuffer, batch: number, m: number, n: number, k: number, before?: (pass: GPUComputePassEncoder) => void): Promise<SvdFactors> {
  const rt = s.rt, p = pipelines(rt);
  const refl = s.storage('reflectors', batch * n * m), tau = s.storage('tau', batch * n), w = s.storage('w', batch * Math.max(n, k));
  const core = s.storage('core', batch * n * n), v = s.storage('rotations', batch * n * n), counter = s.storage('counter', 4);
  const result = s.storage('core readback', 4 + 2 * batch * n * n);
  const players = n + (n % 2);
  const jac = s.params('jacobi', [[n, m, players, CORE_TOL], ...Array.from({ length: players - 1 }, (_, r) => [n, r, players, CORE_TOL])], 3);
  const jbg = s.bindGroup('jacobi', p.jacLayout, jac.buffer, [x, core, v, counter]);
  const sweeps = (pass: GPUComputePassEncoder, count: number) => {
    pass.setPipeline(p.jacobiRound);
    for (let sweep = 0; sweep < count; sweep++) {
      for (let r = 0; r < players - 1; r++) {
        pass.setBindGroup(0, jbg, [jac.offset(r + 1)]);
        pass.dispatchWorkgroups(players / 2, batch);
      }
    }
  };
  // Runs `count` sweeps, the last one counted; reads [count | core | v] back.
  const chunk = async (count: number, first: boolean) => rt.submitAndRead('svd', (encoder) => {
    let pass = rt.computePass(encoder, 'svd');
    if (first) {
      before?.(pass);
      encodeQR(s, pass, p, x, refl, tau, w, batch, m, n);
      pass.setPipeline(p.coreInit);
      pass.setBindGroup(0, jbg, [jac.offset(0)]);
      pass.dispatchWorkgroups(groups(n), groups(n), batch);
    }
    sweeps(pass, count - 1);
    pass.end();
    encoder.clearBuffer(counter);
    pass = rt.computePass(encoder, 'svd');
    sweeps(pass, 1);
    pass.end();
    encoder.copyBufferToBuffer(counter, 0, result, 0, 4);
    encoder.copyBufferToBuffer(core, 0, result, 16, batch * n * n * 4);
    encoder.copyBufferToBuffer(v, 0, result, 16 + batch * n * n * 4, batch * n * n * 4);
  }, result, 16 + 2 * batch * n * n * 4);
  let read = await chunk(FIRST_SWEEPS, true);
  for (let done = FIRST_SWEEPS; new Uint32Array(read.buffer, 0, 1)[0]! > 0 && done < ref.MAX_SWEEPS; done += MORE_SWEEPS) {
    read = await chunk(MORE_SWEEPS, false);
  }
  const nn = n * n;
  const u0 = new Float32Array(batch * m * k), s0 = new Float32Array(batch * k), vt = new Float32Array(batch * k * n);
  for (let b = 0; b < batch; b++) {
    const f = ref.finishCore(Float64Array.from(read.subarray(4 + b * nn, 4 + (b + 1) * nn)), Float64Array.from(read.subarray(4 + (batch + b) * nn, 4 + (batch + b + 1) * nn)), n, k);
    u0.set(f.vColumns, b * m * k);
    s0.set(f.sigma, b * k);
    vt.set(f.vt, b * k * n);
  }
  const u = s.storage('u', batch * m * k, u0);
  const uData = await rt.submitAndRead('svd:u', (encoder) => {
    const pass = rt.computePass(encoder, 'svd:u');
    encodeApplyQ(s, pass, p, u, refl, tau, w, batch, m, n, k);
    pass.end();
  }, u, batch * m * k * 4);
  return { u: uData, s: s0, vt };
}

function checkSize(rt: GpuRuntime, batch: number, floats: number): void {
  if (floats * 4 > rt.maxBinding || batch > rt.limits.maxComputeWorkgroupsPerDimension) {
    throw new MergeKernelsError('TOO_LARGE', `webgpu backend: the SVD of ${batch} item(s) needs ${floats * 4} bytes in one binding (this device allows ${rt.maxBinding}) or more than ${rt.limits.maxComputeWorkgroupsPerDimension} items; use the wasm backend or fewer items per call`, 'a');
  }
}

async function exactTall(rt: GpuRuntime, a: Float32Array, batch: number, m: number, n: number, k: number): Promise<SvdFactors> {
  rt.check();
  checkSize(rt, batch, batch * m * Math.max(n, k));
  const s = new Scope(rt);
  try {
    return await exactOnGpu(s, s.storage('a', a.length, a), batch, m, n, k);
  } finally {
    s.destroy();
  }
}

/** HMT's randomized SVD (as reference/svd.ts randomizedSvd), every product and QR on the GPU. */
async function randomized(rt: GpuRuntime, a: Float32Array, batch: number, m: number, n: number, k: number, l: number, powerIters: number, omega: Float32Array): Promise<SvdFactors> {
  rt.check();
  checkSize(rt, batch, batch * m * n);
  const s = new Scope(rt);
  try {
    const p = pipelines(rt);
    const big = Math.max(m, n);
    const pa = s.storage('a', a.length, a), po = s.storage('omega', omega.length, omega);
    const y = s.storage('Y', batch * m * l), q = s.storage('Q', batch * m * l);
    const z = s.storage('Z', batch * n * l), zq = s.storage('orth(Z)', batch * n * l);
    const refl = s.storage('range reflectors', batch * l * big), tau = s.storage('range tau', batch * l), w = s.storage('range w', batch * l);
    const orthonormalise = (pass: GPUComputePassEncoder, from: GPUBuffer, to: GPUBuffer, rows: number) => {
      encodeQR(s, pass, p, from, refl, tau, w, batch, rows, l);
      encodeEye(s, pass, p, to, from, batch, rows, l);
      encodeApplyQ(s, pass, p, to, refl, tau, w, batch, rows, l, l);
    };
    // Bᵀ = Aᵀ·Q [n, l] is recorded before, and decomposed in, the exact method's first submit.
    const f = await exactOnGpu(s, z, batch, n, l, k, (pass) => {
      encodeMatmul(s, pass, p, pa, po, y, batch, m, n, l, false);
      orthonormalise(pass, y, q, m);
      for (let it = 0; it < powerIters; it++) {
        encodeMatmul(s, pass, p, pa, q, z, batch, m, n, l, true);
        orthonormalise(pass, z, zq, n);
        encodeMatmul(s, pass, p, pa, zq, y, batch, m, n, l, false);
        orthonormalise(pass, y, q, m);
      }
      encodeMatmul(s, pass, p, pa, q, z, batch, m, n, l, true);
    });
    // u = Q·V_B (V_B [l, k]: f.vt transposed), vt = U_Bᵀ.
    const vb = new Float32Array(batch * l * k);
    for (let b = 0; b < batch; b++) for (let j = 0; j < k; j++) for (let c = 0; c < l; c++) vb[(b * l + c) * k + j] = f.vt[(b * k + j) * l + c]!;
    const pvb = s.storage('V_B', vb.length, vb), pu = s.storage('u', batch * m * k);
    const u = await rt.submitAndRead('svd:randomized:u', (encoder) => {
      const pass = rt.computePass(encoder, 'svd:randomized:u');
      encodeMatmul(s, pass, p, q, pvb, pu, batch, m, l, k, false);
      pass.end();
    }, pu, batch * m * k * 4);
    const vt = new Float32Array(batch * k * n);
    for (let b = 0; b < batch; b++) for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) vt[(b * k + j) * n + i] = f.u[(b * n + i) * k + j]!;
    return { u, s: f.s, vt };
  } finally {
    s.destroy();
  }
}

export function webgpuSvdKernels(rt: GpuRuntime): SvdKernels {
  return {
    exactTall: (a, batch, m, n, k) => exactTall(rt, a, batch, m, n, k),
    randomized: (a, batch, m, n, k, l, q, omega) => randomized(rt, a, batch, m, n, k, l, q, omega),
  };
}
