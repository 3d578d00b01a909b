// What every bench shares: the timer, the machine's description and limits, the TensorFlow.js
// peer's setup, and the atomic result writer.
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = dirname(fileURLToPath(import.meta.url));

/** Median and fastest wall time in ms of `fn` over `reps` runs after `warmups` untimed runs. */
/** mulberry32: a small seeded generator, so that every run and every peer sees the same inputs. */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function timeStats(fn, reps, warmups = 1) {
  for (let i = 0; i < warmups; i++) await fn();
  const t = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return { median: t[Math.floor(t.length / 2)], min: t[0] };
}

/** Median wall time in ms of `fn` over `reps` runs after one warm-up. */
export async function time(fn, reps) {
  return (await timeStats(fn, reps)).median;
}

/**
 * Times a peer whose first (validating, warm-up) run took `onceMs`: up to `maxReps` more runs within
 * about `budgetMs`; a peer slower than the budget is timed by that one run. Returns { median, min, runs }.
 */
export async function timePeer(fn, onceMs, maxReps, budgetMs) {
  if (onceMs > budgetMs) return { median: onceMs, min: onceMs, runs: 1 };
  const reps = Math.max(1, Math.min(maxReps, Math.floor(budgetMs / onceMs)));
  return { ...(await timeStats(fn, reps, 0)), runs: reps };
}

/** Writes bench/results/<name>.json: to a temporary name, then renamed, so it is complete or absent. */
export function writeResult(name, value) {
  mkdirSync(join(benchDir, 'results'), { recursive: true });
  const path = join(benchDir, 'results', `${name}.json`);
  writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n');
  renameSync(`${path}.tmp`, path);
}

/** The machine, and how busy it was when the bench started (1-minute load average: other processes skew timings). */
export function describeMachine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, date: new Date().toISOString(), loadAverage1m: loadavg()[0] };
}

/**
 * This machine's limits for one thread, measured with probes compiled into the kernels' own wasm
 * module (instantiated here with a memory of our own): memory.copy bandwidth and the f32x4 FLOP rate.
 */
export async function measureLimits(quick) {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  const { instance } = await WebAssembly.instantiate(readFileSync(join(benchDir, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
  const probe = instance.exports;

  // Copy bandwidth: memory.copy of a 256 MiB block (4× the last-level caches of any CPU here),
  // counted STREAM-style as bytes read + bytes written per second.
  const COPY = 256 << 20;
  const base = probe.heapBase();
  memory.grow(Math.ceil((base + 2 * COPY) / 65536) - memory.buffer.byteLength / 65536);
  new Uint8Array(memory.buffer, base, 2 * COPY).fill(1);
  // A limit is the best the machine does: the fastest run counts (other processes only slow it down).
  const copyMs = (await timeStats(() => probe.copyBytes(base + COPY, base, COPY), quick ? 3 : 7)).min;

  // SIMD FLOP rate: a dot-product loop of 8 f32x4 accumulators (64 flops per iteration). Many
  // short runs (~6 ms each) so that on a busy machine some run is not preempted.
  const ITERS = 3e6;
  const flopMs = (await timeStats(() => probe.simdFlopProbe(ITERS, 1.5), quick ? 7 : 25)).min;
  return { copyBandwidthGBs: (2 * COPY) / (copyMs / 1e3) / 1e9, wasmSimdGflops: (ITERS * 64) / (flopMs / 1e3) / 1e9 };
}

/** TensorFlow.js on its wasm backend, as a user would set it up; returns tf and a line describing the build. */
export async function loadTfWasm() {
  // Imported here, not at the top: the GPU bench runs where only our package is installed.
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
  const flags = `tfjs-backend-wasm ${tf.version_core}, SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}`;
  return { tf, flags };
}

/** Largest |a[i] - b[i]| (Infinity when the lengths differ). */
export function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/**
 * A WebGPU context on the webgpu backend (init `options` added), or { reason } when there is none. In Node: the npm package
 * "webgpu" (Dawn). Returns the GPU object too (for the GPU bench's own probes), the adapter's name,
 * and whether it is a software adapter (SwiftShader, lavapipe: says nothing about GPU speed).
 */
export async function webgpuContext(options = {}) {
  let gpu = globalThis.navigator?.gpu;
  if (!gpu) {
    try {
      const webgpu = await import('webgpu');
      Object.assign(globalThis, webgpu.globals);
      gpu = webgpu.create([]);
    } catch (e) {
      return { reason: `no WebGPU in this runtime (${e.message})` };
    }
  }
  let adapter;
  try { adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }); } catch (e) { return { reason: `requestAdapter threw: ${e.message}` }; }
  if (!adapter) return { reason: 'no WebGPU adapter (Node without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json gives Dawn the SwiftShader CPU adapter)' };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown adapter';
  try {
    const { init } = await import('../dist/index.js');
    return { gpu, adapter, mk: await init({ backend: 'webgpu', gpu, ...options }), name, software: /swiftshader|llvmpipe|lavapipe|software/i.test(name) };
  } catch (e) {
    return { reason: `init failed on ${name}: ${e.message}` };
  }
}
