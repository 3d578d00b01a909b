// node bench/merge-primitives.mjs [--quick]: TIES-merging 3 task vectors of 50M float32 (density
// 0.2) through mk.primitives on wasm, phase by phase, against this machine's copy bandwidth; the
// fused pass through the API (chunks copied into wasm memory) vs the bare kernel on data already
// there (the copy's share); the plain JS reference on one chunk. Validates before timing.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, reference } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const R = reference.mergePrimitives;
const N = quick ? 8_000_000 : 50_000_000;
const T = 3;
const CHUNK = 4 << 20;
const DENSITY = 0.2;

const now = () => performance.now();
async function best(fn, reps) {
  let t = Infinity;
  for (let i = 0; i < reps; i++) { const t0 = now(); await fn(); t = Math.min(t, now() - t0); }
  return t;
}

// Machine limit: memory.copy of 256 MiB inside wasm memory, read + write bytes per second.
const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
const { instance } = await WebAssembly.instantiate(readFileSync(join(here, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
const k = instance.exports;
const COPY = 256 << 20;
const heap = k.heapBase();
memory.grow(Math.ceil((heap + 2 * COPY) / 65536) - memory.buffer.byteLength / 65536);
new Uint8Array(memory.buffer, heap, 2 * COPY).fill(1);
const copyGBs = (2 * COPY) / (await best(() => k.copyBytes(heap + COPY, heap, COPY), 5)) / 1e6;

// Task vectors: roughly Gaussian (sum of 4 uniforms), scale 1e-3, like fine-tuning deltas.
function taskVector(n, seed) {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  for (let i = 0; i < n; i++) x[i] = (u() + u() + u() + u() - 2) * 1e-3;
  return x;
}
const models = Array.from({ length: T }, (_, t) => taskVector(N, 17 + t));
const weights = new Float32Array([1, 0.8, 1.2]);
const mk = await init({ backend: 'wasm' });
const p = mk.primitives;
const chunks = (n) => { const c = []; for (let s = 0; s < n; s += CHUNK) c.push([s, Math.min(n, s + CHUNK)]); return c; };
const o = { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 1 };

// Phase 1-2: two histogram passes per model → exact top-k threshold (k = density · N).
async function thresholds() {
  const thr = new Int32Array(T), budget = new Float64Array(T);
  const kk = Math.round(DENSITY * N);
  for (let t = 0; t < T; t++) {
    const h0 = new Uint32Array(R.LEVEL0_BINS);
    for (const [s, e] of chunks(N)) await p.absHistogram(models[t].subarray(s, e), h0, 0);
    const { bin } = R.selectBin(h0, kk);
    const h1 = new Uint32Array(R.LEVEL1_BINS);
    for (const [s, e] of chunks(N)) await p.absHistogram(models[t].subarray(s, e), h1, 1, bin);
    const sel = R.selectThreshold(h0, h1, kk);
    thr[t] = sel.kthBits;
    budget[t] = kk - sel.above; // exact k: ties at the k-th magnitude resolved to the lowest indices
  }
  return { thr, budget };
}
const out = new Float32Array(N);
async function fused(thr, budget) {
  const b = budget.slice();
  for (const [s, e] of chunks(N)) await p.tiesMerge(models.map((m) => m.subarray(s, e)), weights, thr, b, undefined, out.subarray(s, e), o);
}

// Validate: the first chunk against the reference (budgets as they stand at the start).
const { thr, budget } = await thresholds();
await fused(thr, budget);
const want = new Float32Array(CHUNK);
const t0 = now();
R.tiesMerge(models.map((m) => m.subarray(0, CHUNK)), weights, thr, budget.slice(), undefined, want, o);
const jsChunkMs = now() - t0;
let worst = 0;
for (let i = 0; i < CHUNK; i++) worst = Math.max(worst, Math.abs(out[i] - want[i]));
const ok = worst === 0;

const h0 = new Uint32Array(R.LEVEL0_BINS);
const histMs = await best(async () => { for (const [s, e] of chunks(N)) await p.absHistogram(models[0].subarray(s, e), h0, 0); }, 3);
const h1 = new Uint32Array(R.LEVEL1_BINS);
const hist1Ms = await best(async () => { for (const [s, e] of chunks(N)) await p.absHistogram(models[0].subarray(s, e), h1, 1, 0x3a00); }, 3);
const thrMs = await best(thresholds, 2);
const fusedMs = await best(() => fused(thr, budget), 3);

// The bare kernel on one chunk already in wasm memory (no copies), for the copy's share.
const pm = [], n = CHUNK;
const need = heap + (T + 1) * n * 4 + 4096;
if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
for (let t = 0; t < T; t++) { pm.push(heap + t * n * 4); new Float32Array(memory.buffer, pm[t], n).set(models[t].subarray(0, n)); }
const pOut = heap + T * n * 4, pTab = pOut + n * 4, pW = pTab + 64, pThr = pW + 64, pB = pThr + 64, pS = pB + 64;
new Uint32Array(memory.buffer, pTab, T).set(pm);
new Float32Array(memory.buffer, pW, T).set(weights);
new Int32Array(memory.buffer, pThr, T).set(thr);
const kernelMs = await best(() => { new Float64Array(memory.buffer, pB, T).fill(0); k.tiesMerge(pTab, T, pW, pThr, pB, 0, pOut, n, 0, 1, 0, 1, 1, pS); }, 5);
const histKernelMs = await best(() => k.absHistogram(pm[0], n, pS + 4096, 0, 0), 5);

const gb = (bytes, ms) => bytes / ms / 1e6;
const fusedBytes = (T + 1) * N * 4;
console.log(`merge-primitives bench — ${cpus()[0]?.model}, ${cpus().length} cores, Node ${process.version}, N = ${N}, T = ${T}, chunks of ${CHUNK}`);
console.log(`  copy bandwidth (wasm memory.copy, read + write)   ${copyGBs.toFixed(1)} GB/s`);
console.log(`  validation (first chunk vs reference)            ${ok ? '✔' : '✘'} max |diff| ${worst}`);
console.log(`  absHistogram level 0, one model                  ${histMs.toFixed(0)} ms  (${(N / histMs / 1e3).toFixed(0)} M entries/s, ${gb(N * 4, histMs).toFixed(1)} GB/s read)`);
console.log(`    bare kernel, one 4M chunk in wasm memory       ${(n / histKernelMs / 1e3).toFixed(0)} M entries/s`);
console.log(`  absHistogram level 1, one model                  ${hist1Ms.toFixed(0)} ms`);
console.log(`  thresholds: 2 histogram passes × ${T} models      ${thrMs.toFixed(0)} ms`);
console.log(`  fused tiesMerge pass                             ${fusedMs.toFixed(0)} ms  (${gb(fusedBytes, fusedMs).toFixed(1)} GB/s of ${T} reads + 1 write = ${(100 * gb(fusedBytes, fusedMs) / copyGBs).toFixed(0)}% of copy bandwidth)`);
console.log(`    bare kernel, one 4M chunk in wasm memory       ${kernelMs.toFixed(1)} ms/chunk → ${(kernelMs * N / n).toFixed(0)} ms for N (${(100 * gb((T + 1) * n * 4, kernelMs) / copyGBs).toFixed(0)}% of copy bandwidth)`);
console.log(`    plain JS reference, one 4M chunk               ${jsChunkMs.toFixed(0)} ms/chunk → ~${(jsChunkMs * N / CHUNK / 1e3).toFixed(1)} s for N (${(jsChunkMs / (fusedMs * CHUNK / N)).toFixed(0)}× the wasm pass)`);
console.log(`  TIES total (thresholds + fused)                  ${(thrMs + fusedMs).toFixed(0)} ms`);
