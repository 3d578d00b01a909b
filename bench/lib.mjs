// What every bench shares: the timer, the machine's description and limits, the TensorFlow.js
// peer's setup, and the atomic result writer.
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

export const benchDir = dirname(fileURLToPath(import.meta.url));

/** Median wall time in ms of `fn` over `reps` runs after one warm-up. */
export async function time(fn, reps) {
  await fn();
  const t = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

/** Writes bench/results/<name>.json: to a temporary name, then renamed, so it is complete or absent. */
export function writeResult(name, value) {
  mkdirSync(join(benchDir, 'results'), { recursive: true });
  const path = join(benchDir, 'results', `${name}.json`);
  writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n');
  renameSync(`${path}.tmp`, path);
}

export function describeMachine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, date: new Date().toISOString() };
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
  const copyMs = await time(() => probe.copyBytes(base + COPY, base, COPY), quick ? 3 : 7);

  // SIMD FLOP rate: 8 independent f32x4 multiply-add chains (64 flops per iteration).
  const ITERS = quick ? 5e6 : 3e7;
  const flopMs = await time(() => probe.simdFlopProbe(ITERS, 1.5), quick ? 3 : 5);
  return { copyBandwidthGBs: (2 * COPY) / (copyMs / 1e3) / 1e9, wasmSimdGflops: (ITERS * 64) / (flopMs / 1e3) / 1e9 };
}

/** TensorFlow.js on its wasm backend, as a user would set it up; returns tf and a line describing the build. */
export async function loadTfWasm() {
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
