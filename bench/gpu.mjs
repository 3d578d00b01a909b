// The WebGPU backend on a hardware GPU, against PyTorch on CUDA (bench/gpu_torch.py) and our own
// wasm backend, in the same process: cosineSimilarity, one ToMe step (bipartiteSoftMatching +
// mergeWavg) and TIES (mergeTensors, the issue-4 case). Runs only where WebGPU gives a hardware
// adapter; a software adapter (SwiftShader, lavapipe) says nothing about GPU speed, so the bench is
// skipped there with the reason (`--allow-software` runs it anyway, to check the bench itself).
//
// The GPU's limits are measured first with WGSL probes on a device of our own: memory bandwidth
// (a vec4 copy kernel, bytes read + written), the f32 FMA rate, and the host↔GPU transfer rates
// through the WebGPU queue (writeBuffer; copy + mapAsync). Every time of ours is the API call as a
// user makes it: Float32Arrays in, results back in Float32Arrays, uploads and readbacks included.
// PyTorch is timed both ways: "host" (the same: .cuda() of the inputs and .cpu() of the result
// included) and "device" (inputs already on the GPU, result left there).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDir, rng, timeStats, webgpuContext, maxAbsDiff } from './lib.mjs';
import { inputs as tomeInputs, ours as tomeOurs, compare as tomeCompare } from './token-merging.mjs';
import { inputs as tiesInputs } from './model-merging.mjs';

const COSINE = [[512, 512, 1024], [2048, 2048, 128], [4096, 4096, 1024]];
const TOME = [
  { name: 'ViT-B/16', B: 1, N: 197, C: 768, r: 16 },
  { name: 'ViT-L/14@336', B: 1, N: 577, C: 1024, r: 64 },
  { name: 'ViT-B/16, B = 64', B: 64, N: 197, C: 768, r: 16 },
  { name: 'long', B: 1, N: 4097, C: 1024, r: 1024 },
];
const TIES = { T: 3, n: 50_000_000, density: 0.2, chunkSize: 1 << 24 };

const f = (ms) => (ms === undefined || Number.isNaN(ms) ? '—' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const ratio = (peer, ours) => (peer && ours ? `${(peer / ours).toFixed(peer / ours >= 10 ? 0 : 2)}×` : '—');

/** Runs a WGSL compute shader `passes` times in one submit; returns the wall ms per pass (fastest of 3 submits). */
async function timeShader(device, code, buffers, workgroups, passes) {
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  let best = Infinity;
  for (let rep = 0; rep < 4; rep++) {
    const encoder = device.createCommandEncoder();
    for (let p = 0; p < (rep === 0 ? 1 : passes); p++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(workgroups);
      pass.end();
    }
    const t0 = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    if (rep > 0) best = Math.min(best, (performance.now() - t0) / passes);
  }
  return best;
}

const COPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let n = arrayLength(&src);
  for (var i = gid.x; i < n; i += groups.x * 256u) { dst[i] = src[i]; }
}`;

// 8 independent vec4 FMA chains per invocation: 8 · 4 · 2 · ITERS flops.
const FMA_ITERS = 2048;
const FMA_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let s = f32(gid.x) * 1e-9;
  var a0 = vec4<f32>(s); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
  var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
  let m = vec4<f32>(0.99999); let c = vec4<f32>(1e-7);
  for (var k = 0u; k < ${FMA_ITERS}u; k++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  out[gid.x] = dot(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7, vec4<f32>(1.0));
}`;

/** The GPU's limits, measured on a device of our own. */
async function gpuLimits(adapter, software) {
  // A software adapter gets small probes (it runs them on the CPU, and only the bench's own check needs them).
  const scale = software ? 1 / 64 : 1;
  const device = await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize } });
  try {
    const bytes = Math.min((256 << 20) * scale, adapter.limits.maxStorageBufferBindingSize);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const src = device.createBuffer({ size: bytes, usage }), dst = device.createBuffer({ size: bytes, usage });
    const copyMs = await timeShader(device, COPY_WGSL, [src, dst], 16384 * scale, software ? 2 : 50);
    const threads = 4096 * 256 * scale;
    const out = device.createBuffer({ size: threads * 4, usage: GPUBufferUsage.STORAGE });
    const fmaMs = await timeShader(device, FMA_WGSL, [out], 4096 * scale, software ? 2 : 20);
    // Host → GPU and GPU → host through the queue, as our backend moves data.
    const host = new Float32Array(bytes / 4).fill(1);
    const upload = await timeStats(async () => { device.queue.writeBuffer(src, 0, host); await device.queue.onSubmittedWorkDone(); }, 5);
    // What our runtime does instead (src/webgpu/runtime.ts storage()): a buffer mapped at creation.
    const uploadMapped = await timeStats(async () => {
      const b = device.createBuffer({ size: bytes, usage, mappedAtCreation: true });
      new Float32Array(b.getMappedRange()).set(host);
      b.unmap();
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(b, 0, src, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      b.destroy();
    }, 5);
    const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const download = await timeStats(async () => {
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(dst, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      host.set(new Float32Array(staging.getMappedRange()));
      staging.unmap();
    }, 5);
    return {
      bandwidthGBs: (2 * bytes) / (copyMs / 1e3) / 1e9,
      f32Gflops: (threads * 8 * 4 * 2 * FMA_ITERS) / (fmaMs / 1e3) / 1e9,
      uploadGBs: bytes / (upload.min / 1e3) / 1e9,
      uploadMappedGBs: bytes / (uploadMapped.min / 1e3) / 1e9,
      downloadGBs: bytes / (download.min / 1e3) / 1e9,
    };
  } finally {
    device.destroy();
  }
}

/** A python3 whose torch sees CUDA, or the reason there is none. */
function findTorchCuda() {
  const tried = [];
  for (const python of ['python3', '/usr/bin/python3']) {
    const p = spawnSync(python, ['-c', 'import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
    if (p.status === 0) return { python, version: p.stdout.trim() };
    tried.push(`${python}: ${p.error ? p.error.message : (p.stderr.trim().split('\n').pop() || `exit ${p.status}`)}`);
  }
  return { reason: `no python3 with CUDA torch (${tried.join('; ')})` };
}

/** Runs gpu_torch.py on the cases (each with its input arrays); returns per case { host, device, out: Uint8Array }. */
function runTorch(python, cases, reps) {
  const dir = mkdtempSync(join(tmpdir(), 'merge-kernels-gpu-'));
  try {
    const file = (name, a) => { const p = join(dir, name); writeFileSync(p, new Uint8Array(a.buffer, a.byteOffset, a.byteLength)); return p; };
    const manifest = { reps, cases: cases.map((c, i) => ({ ...c.spec(file, i), out: join(dir, `${i}-out.bin`) })) };
    const p = spawnSync(python, [join(benchDir, 'gpu_torch.py')], { cwd: benchDir, input: JSON.stringify(manifest), encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 20 });
    if (p.status !== 0) return { reason: `gpu_torch.py failed: ${p.error?.message ?? p.stderr.trim().split('\n').slice(-3).join(' | ')}` };
    const report = JSON.parse(p.stdout.trim().split('\n').pop());
    if (report.error) return { reason: report.error };
    return {
      device: report.device, torch: report.torch,
      results: report.results.map((r, i) => { const b = readFileSync(manifest.cases[i].out); const out = new Uint8Array(b.byteLength); out.set(b); return { ...r, out }; }),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * TIES outputs f32(base + merged): compared with |Δ| ≤ 1e-6 · (|base| + |merged|), the float32 bound
 * of that sum. (Relative to the output alone, a 1-ulp difference in the merged task vector reads as
 * a large error wherever base + merged nearly cancels; WGSL's division is accurate to 2.5 ulp.)
 */
function compareWithBase(got, want, base) {
  let mismatches = 0, worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (d === 0) continue;
    const rel = d / (Math.abs(base[i]) + Math.abs(want[i] - base[i]));
    if (!(rel <= 1e-6)) mismatches++;
    if (!(rel <= worst)) { worst = rel; at = i; }
  }
  return { valid: mismatches === 0, note: worst > 0 ? `${mismatches} entries beyond 1e-6; worst ${worst.toExponential(1)} of |base| + |merged| at ${at}` : '' };
}

/** Median and fastest ms of ours: `reps` runs after one warm-up (which also gives the result); the kernels' GPU ms per call on WebGPU. */
async function timeOurs(fn, reps, mk) {
  const result = await fn();
  const before = mk.gpuTimeMs;
  const { median, min } = await timeStats(fn, reps, 0);
  // The GPU's own time in our compute passes per call (timestamp queries), when the device has them.
  const gpuMs = before === undefined ? undefined : (mk.gpuTimeMs - before) / reps;
  return { result, ms: median, msMin: min, gpuMs };
}

export default async function bench({ quick, mk: wasm }) {
  const allowSoftware = process.argv.includes('--allow-software');
  const ctx = await webgpuContext({ gpuTiming: true });
  if (!ctx.mk) {
    console.log(`GPU bench: skipped: ${ctx.reason}`);
    return { skipped: ctx.reason };
  }
  if (ctx.software && !allowSoftware) {
    ctx.mk.dispose();
    const reason = `the WebGPU adapter is ${ctx.name}, a software Vulkan driver on the CPU: its times say nothing about a GPU (--allow-software runs the bench anyway)`;
    console.log(`GPU bench: skipped: ${reason}`);
    return { skipped: reason };
  }
  const gpu = ctx.mk;
  // dawn.node does not hold Node's event loop open while a GPU promise is pending: without a timer
  // of our own the process would exit in the middle of our own probes.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    return await run(gpu, ctx, quick, wasm);
  } finally {
    clearInterval(keepAlive);
  }
}

async function run(gpu, ctx, quick, wasm) {
  console.log(`GPU bench on ${ctx.name}${ctx.software ? ' (software adapter: these times say nothing about a GPU)' : ''}`);
  const limits = await gpuLimits(ctx.adapter, ctx.software);
  console.log(`  GPU limits: memory bandwidth ${limits.bandwidthGBs.toFixed(0)} GB/s (vec4 copy kernel, read + write bytes); f32 FMA rate ${(limits.f32Gflops / 1e3).toFixed(1)} TFLOP/s;`);
  console.log(`              host → GPU ${limits.uploadGBs.toFixed(1)} GB/s (queue.writeBuffer), ${limits.uploadMappedGBs.toFixed(1)} GB/s (mappedAtCreation + copy, what our runtime does), GPU → host ${limits.downloadGBs.toFixed(1)} GB/s (copy + mapAsync)`);
  const torch = findTorchCuda();
  const reps = quick ? 3 : 10;

  // Our contenders first (validated against our wasm backend, itself tested against the js reference), then one torch run for every case.
  const cases = [];
  for (const [m, n, c] of quick ? COSINE.slice(0, 1) : COSINE) {
    const next = rng(m * 7 + n * 13 + c);
    const a = Float32Array.from({ length: m * c }, () => 2 * next() - 1), b = Float32Array.from({ length: n * c }, () => 2 * next() - 1);
    const call = (ctxMk) => async () => (await ctxMk.cosineSimilarity({ data: a, shape: [m, c] }, { data: b, shape: [n, c] })).data;
    const w = await timeOurs(call(wasm), quick ? 1 : 3, wasm);
    const g = await timeOurs(call(gpu), reps, gpu);
    const flops = 2 * m * n * c;
    cases.push({
      kind: 'cosineSimilarity', label: `${m}×${n}×${c}`, flops,
      wasm: w, webgpu: { ...g, valid: maxAbsDiff(g.result, w.result) <= 1e-4 },
      spec: (file, i) => ({ kind: 'cosine', m, n, c, a: file(`${i}-a.f32`, a), b: file(`${i}-b.f32`, b) }),
      check: (bytes) => { const worst = maxAbsDiff(new Float32Array(bytes.buffer, 0, m * n), w.result); return { valid: worst <= 1e-4, note: `max |Δ| ${worst.toExponential(1)}` }; },
    });
  }
  for (const shape of quick ? TOME.slice(0, 1) : TOME) {
    const data = tomeInputs(shape, 1 + shape.N + shape.B);
    const w = await timeOurs(tomeOurs(wasm, shape, data).run, shape.N > 2000 ? 2 : reps, wasm);
    const g = await timeOurs(tomeOurs(gpu, shape, data).run, shape.N > 2000 ? 3 : reps, gpu);
    const { B, N, C, r } = shape, nA = Math.ceil(N / 2), M = N - r;
    cases.push({
      kind: 'ToMe step', label: `${shape.name} (B=${B} N=${N} C=${C} r=${r})`, flops: 2 * B * nA * Math.floor(N / 2) * C,
      wasm: w, webgpu: { ...g, ...tomeCompare(g.result, w.result, shape) },
      spec: (file, i) => ({ kind: 'tome', B, N, C, r, metric: file(`${i}-metric.f32`, data.metric), x: file(`${i}-x.f32`, data.x), size: file(`${i}-size.f32`, data.size) }),
      check: (bytes) => {
        let at = 0;
        const take = (Type, k) => { const v = new Type(bytes.buffer, at, k); at += 4 * k; return v; };
        const got = { unm: take(Int32Array, B * (nA - r)), src: take(Int32Array, B * r), dst: take(Int32Array, B * r), x: take(Float32Array, B * M * C), size: take(Float32Array, B * M) };
        return tomeCompare(got, w.result, shape);
      },
    });
  }
  {
    const { T, density, chunkSize } = TIES;
    const n = quick ? 5_000_000 : TIES.n;
    process.stdout.write(`  generating TIES inputs (${T} × ${n.toLocaleString('en')} float32 and a base)…\n`);
    const { base, models, deltas } = tiesInputs(n, 42);
    const shape = [n];
    const call = (ctxMk) => async () => (await ctxMk.mergeTensors('ties', { base: { data: base, shape }, models: models.map((data) => ({ data, shape })), parameters: { density, semantics: 'paper' }, chunkSize })).data;
    const w = await timeOurs(call(wasm), quick ? 1 : 3, wasm);
    const g = await timeOurs(call(gpu), quick ? 1 : 3, gpu);
    const tasks = new Float32Array(T * n);
    deltas.forEach((d, t) => tasks.set(d, t * n));
    cases.push({
      kind: 'TIES mergeTensors', label: `${T} × ${n / 1e6}M, density ${density}`,
      wasm: w, webgpu: { ...g, ...compareWithBase(g.result, w.result, base) },
      spec: (file, i) => ({ kind: 'ties', t: T, n, density, tasks: file(`${i}-tasks.f32`, tasks), reps: quick ? 1 : 3 }),
      // torch merges the task vectors: compared as f32(base + merged), like mergeTensors' output.
      check: (bytes) => compareWithBase(Float32Array.from(new Float32Array(bytes.buffer, 0, n), (v, i) => base[i] + v), w.result, base),
    });
  }

  let torchRun = torch.reason ? { reason: torch.reason } : (process.stdout.write(`  running the PyTorch CUDA peer (${torch.python}, torch ${torch.version})…\n`), runTorch(torch.python, cases, reps));
  if (torchRun.reason) console.log(`  PyTorch CUDA peer: skipped: ${torchRun.reason}`);
  cases.forEach((c, i) => {
    const t = torchRun.results?.[i];
    c.torch = t ? { host: t.host, device: t.device, ...c.check(t.out) } : undefined;
  });

  console.log(`\n  ours: median (fastest) ms of the API call, Float32Arrays in and out; PyTorch ${torchRun.device ? `on ${torchRun.device}` : ''} "host" = the same, "device" = data already on the GPU`);
  console.log('  "kernels": the GPU time of our compute passes per call (timestamp queries); % f32 limit: the similarity\'s flops over that time');
  console.log('  workload            shape                                   webgpu ✔   kernels   wasm (1 thread)   torch host ✔   torch device   wasm/webgpu   torch host/webgpu   % GPU f32 limit');
  for (const c of cases) {
    const k = c.webgpu.gpuMs;
    const tflops = c.flops && k ? `${((100 * c.flops) / (k / 1e3) / 1e9 / limits.f32Gflops).toFixed(1)}%` : '—';
    const th = c.torch?.host, td = c.torch?.device;
    console.log(`  ${c.kind.padEnd(19)} ${c.label.padEnd(38)} ${f(c.webgpu.ms).padStart(8)} (${f(c.webgpu.msMin)}) ${c.webgpu.valid ? '✔' : '✘'}  ${f(k).padStart(7)}  ${f(c.wasm.ms).padStart(9)}   ${th ? `${f(th[0]).padStart(9)} ${c.torch.valid ? '✔' : '✘'}` : '        —  '}   ${td ? f(td[0]).padStart(9) : '        —'}   ${ratio(c.wasm.ms, c.webgpu.ms).padStart(10)}   ${ratio(th?.[0], c.webgpu.ms).padStart(12)}   ${tflops.padStart(10)}`);
    if (c.webgpu.note) console.log(`      webgpu: ${c.webgpu.note}`);
    if (c.torch?.note) console.log(`      torch: ${c.torch.note}`);
  }
  gpu.dispose();
  return {
    adapter: ctx.name, software: ctx.software, gpuLimits: limits,
    torch: torchRun.reason ? { skipped: torchRun.reason } : { device: torchRun.device, version: torchRun.torch },
    cases: cases.map(({ kind, label, flops, wasm: w, webgpu: g, torch: t }) => ({
      kind, label, flops,
      webgpu: { ms: g.ms, msMin: g.msMin, kernelMs: g.gpuMs, valid: g.valid, note: g.note },
      wasm: { ms: w.ms, msMin: w.msMin },
      torch: t ? { hostMs: t.host[0], hostMsMin: t.host[1], deviceMs: t.device[0], deviceMsMin: t.device[1], valid: t.valid, note: t.note } : undefined,
    })),
  };
}
