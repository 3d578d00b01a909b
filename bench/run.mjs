// npm run bench: measures this machine's limits, then times each kernel against the peers a
// user would otherwise pick, in the same process. Every contender is validated against the
// js reference (✔/✘) before it is timed. Results are printed and written to
// bench/results/<kernel>.json (written to a temporary name, then renamed).
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { init, reference } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');

/** Median wall time in ms of `fn` over `reps` runs after one warm-up. */
async function time(fn, reps) {
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

function writeResult(name, value) {
  mkdirSync(join(here, 'results'), { recursive: true });
  const path = join(here, 'results', `${name}.json`);
  writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n');
  renameSync(`${path}.tmp`, path);
}

const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, date: new Date().toISOString() };

// ── Machine limits ──────────────────────────────────────────────────────────
// The kernels' own wasm module, instantiated with a memory of our own, gives the probes.
const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
const { instance } = await WebAssembly.instantiate(readFileSync(join(here, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
const probe = instance.exports;

// Copy bandwidth: memory.copy of a 256 MiB block (4× the last-level caches of any CPU here),
// counted STREAM-style as bytes read + bytes written per second.
const COPY = 256 << 20;
const base = probe.heapBase();
memory.grow(Math.ceil((base + 2 * COPY) / 65536) - memory.buffer.byteLength / 65536);
new Uint8Array(memory.buffer, base, 2 * COPY).fill(1);
const copyMs = await time(() => probe.copyBytes(base + COPY, base, COPY), quick ? 3 : 7);
const bandwidth = (2 * COPY) / (copyMs / 1e3) / 1e9;

// SIMD FLOP rate: 8 independent f32x4 multiply-add chains (64 flops per iteration), one thread.
const ITERS = quick ? 5e6 : 3e7;
const flopMs = await time(() => probe.simdFlopProbe(ITERS, 1.5), quick ? 3 : 5);
const flopRate = (ITERS * 64) / (flopMs / 1e3) / 1e9;

console.log(`merge-kernels bench — ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, ${machine.date.slice(0, 10)}\n`);
console.log('machine limits (one thread)');
console.log(`  memory copy bandwidth   ${bandwidth.toFixed(1)} GB/s   (wasm memory.copy of 256 MiB; read + write bytes)`);
console.log(`  wasm SIMD f32 rate      ${flopRate.toFixed(1)} GFLOP/s (8 chains of f32x4 mul + add)\n`);

// ── cosineSimilarity ────────────────────────────────────────────────────────
await tf.setBackend('wasm');
await tf.ready();
const tfFlags = `tfjs-backend-wasm ${tf.version_core}, SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}`;
const mk = await init({ backend: 'wasm' });

/** What a JS user would write without us: normalise rows, then the double loop of dot products. */
function plainJs(a, b, m, n, c) {
  const na = new Float32Array(a), nb = new Float32Array(b);
  for (const [x, rows] of [[na, m], [nb, n]]) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += x[r * c + k] ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let k = 0; k < c; k++) x[r * c + k] *= inv;
    }
  }
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += na[i * c + k] * nb[j * c + k];
    out[i * n + j] = s;
  }
  return out;
}

/** TensorFlow.js on its wasm backend: l2-normalise along the last axis, then matMul with bᵀ. */
function tfjs(a, b, m, n, c) {
  return tf.tidy(() => {
    const ta = tf.tensor2d(a, [m, c]), tb = tf.tensor2d(b, [n, c]);
    const norm = (t) => tf.div(t, tf.maximum(tf.sqrt(tf.sum(tf.square(t), 1, true)), 1e-30));
    return tf.matMul(norm(ta), norm(tb), false, true).dataSync();
  });
}

const shapes = quick ? [[98, 98, 768]] : [[98, 98, 768], [512, 512, 1024], [2048, 2048, 128]];
const rows = [];
console.log(`cosineSimilarity [M, C] × [N, C] → [M, N]   (peer: ${tfFlags})`);
console.log('  shape (M×N×C)      contender          ✔   time (ms)   GFLOP/s   vs plain JS   vs tfjs   % SIMD limit');
for (const [m, n, c] of shapes) {
  const a = Float32Array.from({ length: m * c }, (_, i) => Math.sin(i * 0.37) + 0.1);
  const b = Float32Array.from({ length: n * c }, (_, i) => Math.cos(i * 0.23) - 0.05);
  const want = reference.cosineSimilarity(a, b, 1, m, n, c);
  const flops = 2 * m * n * c;
  const contenders = {
    'merge-kernels wasm': async () => (await mk.cosineSimilarity({ data: a, shape: [m, c] }, { data: b, shape: [n, c] })).data,
    'tfjs wasm': async () => tfjs(a, b, m, n, c),
    'plain JS': async () => plainJs(a, b, m, n, c),
  };
  const times = {};
  for (const [name, fn] of Object.entries(contenders)) {
    const got = await fn();
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    const ok = worst <= 1e-4;
    const reps = name === 'plain JS' ? (quick ? 1 : 3) : (quick ? 3 : 10);
    times[name] = ok ? await time(fn, reps) : NaN;
    rows.push({ shape: [m, n, c], contender: name, valid: ok, maxAbsError: worst, ms: times[name], gflops: flops / (times[name] / 1e3) / 1e9 });
  }
  for (const [name, ms] of Object.entries(times)) {
    const gflops = flops / (ms / 1e3) / 1e9;
    const ok = rows.find((r) => r.contender === name && r.shape[0] === m && r.shape[2] === c).valid;
    console.log(`  ${`${m}×${n}×${c}`.padEnd(18)} ${name.padEnd(18)} ${ok ? '✔' : '✘'}  ${ms.toFixed(2).padStart(10)}  ${gflops.toFixed(2).padStart(8)}  ${(times['plain JS'] / ms).toFixed(1).padStart(10)}×  ${(times['tfjs wasm'] / ms).toFixed(2).padStart(7)}×  ${(100 * gflops / flopRate).toFixed(0).padStart(8)}%`);
  }
}
mk.dispose();
writeResult('cosine-similarity', { machine, limits: { copyBandwidthGBs: bandwidth, wasmSimdGflops: flopRate }, peer: tfFlags, rows });
console.log('\nwritten: bench/results/cosine-similarity.json');
process.exit(0);
