// TIES merging (Yadav et al. 2023, §3 and Algorithm 1: trim to the top-density magnitudes, elect the
// sign of the sum, disjoint mean) of T task vectors of N float32 values, the issue's case: 3 × 50M
// at density 0.2, with the paper's semantics (keep |δ| ≥ the k-th magnitude, a zero sum takes the
// majority sign). Contenders, fed the same seeded inputs:
//  - ours, wasm, end to end: mk.mergeTensors('ties', { base, models, parameters: { density, semantics: 'paper' } }) with a
//    real (random, non-zero) base, so the task vectors δ = x − base are formed inside;
//  - ours, wasm, the primitives pipeline on the task vectors themselves, phase by phase (two
//    histogram passes per model, selectThreshold, the fused trim/elect/merge pass that also counts
//    the votes under a guessed zero sign, and the chunks to apply again if the guess was wrong);
//  - the fused kernel alone on task vectors already in wasm memory (a raw instance of the module),
//    next to a stream of the same three reads and one write;
//  - plain JS: what a JS user writes (k-th magnitude by quickselect, then elect and disjoint mean);
//  - the TIES reference in numpy and PyTorch (bench/ties_reference.py), child processes, when found;
//  - the WebGPU backend when an adapter exists (here: software Vulkan, which says nothing of GPU speed).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, reference } from '../dist/index.js';
import { benchDir, rng, timeStats, timePeer, webgpuContext } from './lib.mjs';

const R = reference.mergePrimitives;
const T = 3;
const DENSITY = 0.2;
/** Entries per chunk, for mergeTensors and the primitives pipeline (16 MiB per input). */
const CHUNK = 1 << 22;
/** Our result vs a peer's: |Δ| ≤ RTOL·|peer| (float32: the same operations in the same order give equal values). */
const RTOL = 1e-6;

/**
 * A base (weights ~ N(0, 0.02²)) and T fine-tuned models x_t = base + δ_t, with δ_t ~ N(0, σ²),
 * σ = 1e-3 (a sum of four uniforms, near-Gaussian), and heavier tails: 1% of the entries (the same
 * for every task, as parameters that every fine-tune moves) have 10σ, so the trim matters.
 * Returns the base, the models, and the task vectors as our code forms them, f32(x_t − base).
 */
export function inputs(n, seed) {
  const next = rng(seed);
  const gauss = () => (next() + next() + next() + next() - 2) * Math.sqrt(3);
  const base = new Float32Array(n);
  const scale = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    base[i] = 0.02 * gauss();
    scale[i] = next() < 0.01 ? 1e-2 : 1e-3;
  }
  const models = [], deltas = [];
  for (let t = 0; t < T; t++) {
    const x = new Float32Array(n), d = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = base[i] + scale[i] * gauss();
      d[i] = Math.fround(x[i] - base[i]);
    }
    models.push(x);
    deltas.push(d);
  }
  return { base, models, deltas };
}

/** k-th smallest of `a` (0-based), reordering `a`: Hoare's quickselect with a median-of-three pivot. */
function quickselect(a, k) {
  let lo = 0, hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (k <= j) hi = j; else if (k >= i) lo = i; else return a[k];
  }
  return a[k];
}

/** TIES as a JS user writes it, in float32 like the paper's code: k-th magnitude per task, trimmed sums, majority, disjoint mean. */
function plainJsTies(deltas, density) {
  const n = deltas[0].length;
  const k = n - Math.floor(n * density); // the paper's cut: the k-th smallest magnitude (1-based)
  const f = Math.fround;
  const kth = deltas.map((d) => {
    const mags = new Float32Array(n);
    for (let i = 0; i < n; i++) mags[i] = Math.abs(d[i]);
    return quickselect(mags, k - 1);
  });
  const signs = new Int8Array(n);
  let majority = 0;
  for (let i = 0; i < n; i++) {
    let total = 0;
    for (let t = 0; t < deltas.length; t++) { const v = deltas[t][i]; if (Math.abs(v) >= kth[t]) total = f(total + v); }
    const s = Math.sign(total);
    signs[i] = s;
    majority += s;
  }
  const zeroSign = Math.sign(majority);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = signs[i] || zeroSign;
    let sum = 0, count = 0;
    for (let t = 0; t < deltas.length; t++) {
      const v = deltas[t][i];
      if (Math.abs(v) >= kth[t] && Math.sign(v) === s) { sum = f(sum + v); count++; }
    }
    out[i] = f(sum / Math.max(1, count));
  }
  return out;
}

/** The merged task vectors compared entry by entry: entries beyond RTOL, the worst relative gap and where. */
export function compare(got, want) {
  if (got.length !== want.length) return { valid: false, mismatches: Infinity, note: `length ${got.length} ≠ ${want.length}` };
  let mismatches = 0, worst = 0, at = -1;
  for (let i = 0; i < got.length; i++) {
    const g = got[i], w = want[i];
    if (g === w) continue;
    const rel = Math.abs(g - w) / Math.abs(w);
    if (!(rel <= RTOL)) mismatches++;
    if (!(rel <= worst)) { worst = rel; at = i; }
  }
  return { valid: mismatches === 0, mismatches, worstRelative: worst, note: mismatches ? `${mismatches} entries differ, worst at ${at}: ${got[at]} vs ${want[at]}` : '' };
}

/** The first python3 (of python3, /usr/bin/python3) that imports `module`, or the reason there is none. */
function findPython(module) {
  const tried = [];
  for (const python of ['python3', '/usr/bin/python3']) {
    const p = spawnSync(python, ['-c', `import numpy, ${module}; print(${module}.__version__)`], { encoding: 'utf8', timeout: 60_000 });
    if (p.status === 0) return { python, version: `${module} ${p.stdout.trim()}` };
    tried.push(`${python}: ${p.error ? p.error.message : (p.stderr.trim().split('\n').pop() || `exit ${p.status}`)}`);
  }
  return { reason: `no python3 with numpy and ${module} (${tried.join('; ')}); Debian: apt-get install -y python3-${module === 'numpy' ? 'numpy' : 'torch'}` };
}

/** Runs bench/ties_reference.py once: { seconds, threads, out } or { reason }. The task vectors go to a temp file, deleted after. */
function runPythonTies(python, impl, deltas) {
  const n = deltas[0].length;
  const dir = mkdtempSync(join(tmpdir(), 'merge-kernels-ties-'));
  try {
    const tasks = join(dir, 'tasks.f32'), out = join(dir, 'out.f32');
    const bytes = new Uint8Array(deltas.length * n * 4);
    deltas.forEach((d, t) => bytes.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), t * n * 4));
    writeFileSync(tasks, bytes);
    const p = spawnSync(python, [join(benchDir, 'ties_reference.py'), impl, tasks, String(deltas.length), String(n), String(DENSITY), out], { encoding: 'utf8', timeout: 600_000 });
    if (p.status !== 0) return { reason: `ties_reference.py ${impl} failed: ${p.error?.message ?? p.stderr.trim().split('\n').slice(-3).join(' | ')}` };
    const report = JSON.parse(p.stdout);
    const buf = readFileSync(out);
    const merged = new Float32Array(n);
    new Uint8Array(merged.buffer).set(buf);
    return { seconds: report.seconds, threads: report.threads, out: merged };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The chunks [start, end) of [0, n). */
function chunks(n) {
  const c = [];
  for (let s = 0; s < n; s += CHUNK) c.push([s, Math.min(n, s + CHUNK)]);
  return c;
}

/**
 * The primitives pipeline on task vectors, phase by phase, as src/merging drives them: level-0 and
 * level-1 histograms of every model, selectThreshold (paper: keep ≥ the (⌊d·n⌋+1)-th magnitude),
 * the fused trim/elect/merge pass with the paper's zero sign guessed from the votes counted so far
 * (the kernel returns the vote count and the entries the guess decided), and the chunks with such
 * entries applied again if the final majority says the guess was wrong.
 */
function primitivesPipeline(p, deltas, out) {
  const n = deltas[0].length;
  const k = Math.floor(DENSITY * n) + 1;
  const hist0 = deltas.map(() => new Uint32Array(R.LEVEL0_BINS));
  const hist1 = deltas.map(() => new Uint32Array(R.LEVEL1_BINS));
  const thr = new Int32Array(T);
  const weights = new Float32Array(T).fill(1);
  const merge = (s, e, zeroSign, counts) => p.tiesMerge(deltas.map((d) => d.subarray(s, e)), weights, thr, new Float64Array(T), undefined, out.subarray(s, e),
    { vote: 'sum', zeroSign, merge: 'mean', lambda: 1, output: 'merged', counts });
  let redo = [];
  let zeroSign = 1;
  return {
    async level0() {
      for (const h of hist0) h.fill(0);
      for (const [s, e] of chunks(n)) for (let t = 0; t < T; t++) await p.absHistogram(deltas[t].subarray(s, e), hist0[t], 0);
    },
    async level1() {
      const bins = hist0.map((h) => R.selectBin(h, k).bin);
      for (const h of hist1) h.fill(0);
      for (const [s, e] of chunks(n)) for (let t = 0; t < T; t++) await p.absHistogram(deltas[t].subarray(s, e), hist1[t], 1, bins[t]);
      for (let t = 0; t < T; t++) thr[t] = R.selectThreshold(hist0[t], hist1[t], k).kthBits - 1;
    },
    // What mergeTensors does instead of the two passes: level 0 and level 1 over a window of 5
    // level-0 bins around the bin predicted from the first chunk (here: the known one), in one pass.
    async level0Windows() {
      const bins = hist0.map((h) => R.selectBin(h, k).bin);
      const windows = bins.map(() => new Uint32Array(5 * R.LEVEL1_BINS));
      const h0 = deltas.map(() => new Uint32Array(R.LEVEL0_BINS));
      for (const [s, e] of chunks(n)) {
        await p.absHistograms(deltas.map((d) => d.subarray(s, e)), undefined, [
          ...h0.map((hist, t) => ({ model: t, hist, level: 0, prefix: 0 })),
          ...windows.map((hist, t) => ({ model: t, hist, level: 1, prefix: bins[t] - 2 })),
        ]);
      }
    },
    // The apply pass as mergeTensors runs it: each chunk under the sign of the votes so far (≤ 0 → -1).
    async fused() {
      let majority = 0;
      const guessed = [];
      for (const [s, e] of chunks(n)) {
        const guess = majority <= 0 ? -1 : 1;
        const { votes, undecided } = await merge(s, e, guess, true);
        majority += votes;
        if (undecided > 0) guessed.push({ s, e, guess });
      }
      zeroSign = majority <= 0 ? -1 : 1;
      redo = guessed.filter((c) => c.guess !== zeroSign);
    },
    async redo() {
      for (const { s, e } of redo) await merge(s, e, zeroSign, false);
    },
    redoChunks: () => redo.length,
    thresholds: () => thr,
    zeroSign: () => zeroSign,
    // The same pass without counting (counts: false), under the final zero sign.
    async fusedNoCounts() {
      for (const [s, e] of chunks(n)) await merge(s, e, zeroSign, false);
    },
  };
}

/**
 * The fused kernel on data already in wasm memory: a raw instance of dist/kernels.wasm with a
 * memory of its own, the task vectors copied in once, then tiesMerge over all N entries in one call
 * (vote sum, mean, output merged, no base: the pass above without the copies in and out), with and
 * without counting, and the stream floor (out = a + b + c). Arrays are page-aligned, like the wasm
 * runtime's slices (a 512-byte stagger between arrays costs a few ms more: 4 KiB aliasing).
 */
async function residentPass(deltas, thr, zeroSign, reps) {
  const n = deltas[0].length;
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  const { instance } = await WebAssembly.instantiate(readFileSync(join(benchDir, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
  const k = instance.exports;
  const page = 4096;
  const bytes = Math.ceil((n * 4) / page) * page;
  const first = Math.ceil((k.heapBase() + 4096) / page) * page;
  const ptr = (i) => first + i * bytes;
  const table = ptr(T + 1);
  memory.grow(Math.ceil((table + 4096 + 320 + 68 * T - memory.buffer.byteLength) / 65536));
  deltas.forEach((d, t) => new Float32Array(memory.buffer, ptr(t), n).set(d));
  const dv = new DataView(memory.buffer);
  const models = table, weights = table + 64, thrs = table + 128, budget = table + 192, counts = table + 256, scratch = table + 512;
  for (let t = 0; t < T; t++) {
    dv.setUint32(models + 4 * t, ptr(t), true);
    dv.setFloat32(weights + 4 * t, 1, true);
    dv.setInt32(thrs + 4 * t, thr[t], true);
    dv.setFloat64(budget + 8 * t, 0, true);
  }
  // tiesMerge's codes: vote 0 = sum, merge 1 = mean, output 0 = merged (| 8: count).
  const run = (output) => k.tiesMerge(models, T, weights, thrs, budget, 0, ptr(T), n, 0, 1, output, zeroSign, 1, scratch, counts);
  const result = {
    fused: stats(await timeStats(() => run(0), reps)),
    fusedCounts: stats(await timeStats(() => run(8), reps)),
    stream: stats(await timeStats(() => k.streamProbe(ptr(0), ptr(1), ptr(2), ptr(T), n), reps)),
  };
  // The resident kernel's output equals the API's: checked by the caller.
  run(0);
  result.out = new Float32Array(memory.buffer, ptr(T), n).slice();
  return result;
}

const stats = ({ median, min }) => ({ ms: median, msMin: min });
const f = (ms) => (Number.isNaN(ms) ? '—' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

/** Prints the tables and returns the result object for bench/results/model-merging.json. */
export default async function bench({ quick, limits, mk }) {
  const N = quick ? 4_000_000 : 50_000_000;
  const reps = quick ? 3 : 5;
  process.stdout.write(`model merging: generating ${T} models of ${N / 1e6}M float32 values and a base…\n`);
  const { base, models, deltas } = inputs(N, 2023);
  const shape = [N];
  const ties = () => mk.mergeTensors('ties', { base: { data: base, shape }, models: models.map((data) => ({ data, shape })), parameters: { density: DENSITY, semantics: 'paper' }, chunkSize: CHUNK });

  // Ours end to end: validated below against numpy (or plain JS), timed here.
  const first = (await ties()).data;
  const e2e = await timeStats(ties, reps);
  // Our merged task vector: out − base is not exact in float32, so the peers' results are compared
  // after the same final step, f32(base + merged).
  const withBase = (merged) => Float32Array.from(merged, (v, i) => base[i] + v);

  // The primitives pipeline, phase by phase (on task vectors; no base).
  const merged = new Float32Array(N);
  const pipe = primitivesPipeline(mk.primitives, deltas, merged);
  await pipe.level0(); await pipe.level1(); await pipe.fused(); await pipe.redo();
  const phase = {
    level0: stats(await timeStats(pipe.level0, reps, 0)),
    level1: stats(await timeStats(pipe.level1, reps, 0)),
    level0Windows: stats(await timeStats(pipe.level0Windows, reps, 0)),
    fused: stats(await timeStats(pipe.fused, reps, 0)),
    redo: stats(await timeStats(pipe.redo, reps, 0)),
    fusedNoCounts: stats(await timeStats(pipe.fusedNoCounts, reps, 0)),
  };
  const redoChunks = pipe.redoChunks();
  // The pipeline with two histogram passes (the one-pass variant is shown apart); the fused pass
  // counts the votes, so there is no majority pass.
  const pipelineMs = phase.level0.ms + phase.level1.ms + phase.fused.ms + phase.redo.ms;
  const pipelineMinMs = phase.level0.msMin + phase.level1.msMin + phase.fused.msMin + phase.redo.msMin;
  const e2eVsPipeline = compare(first, withBase(merged));

  // The fused kernel with its inputs already in wasm memory, and the stream floor.
  process.stdout.write('model merging: the fused kernel on data resident in wasm memory…\n');
  const resident = await residentPass(deltas, pipe.thresholds(), pipe.zeroSign(), reps);
  const residentCheck = compare(resident.out, merged);

  // Peers.
  const contenders = {};
  process.stdout.write('model merging: plain JS…\n');
  let t0 = performance.now();
  const js = plainJsTies(deltas, DENSITY);
  const jsOnce = performance.now() - t0;
  const jsTiming = await timePeer(() => plainJsTies(deltas, DENSITY), jsOnce, quick ? 1 : 2, quick ? 2000 : 1000);
  contenders['plain JS'] = { ...compare(merged, js), ...stats(jsTiming), runs: jsTiming.runs };
  let anchor = { name: 'plain JS', out: js };
  for (const module of ['numpy', 'torch']) {
    const py = findPython(module);
    const name = module === 'numpy' ? 'numpy' : 'PyTorch CPU';
    if (!py.python) { contenders[name] = { skipped: py.reason }; continue; }
    process.stdout.write(`model merging: ${name} (${py.python}, ${py.version})…\n`);
    const run = runPythonTies(py.python, module, deltas);
    if (!run.out) { contenders[name] = { skipped: run.reason }; continue; }
    contenders[name] = { ...compare(merged, run.out), ms: run.seconds * 1e3, msMin: run.seconds * 1e3, runs: 1, threads: run.threads, version: py.version, python: py.python };
    if (module === 'numpy') anchor = { name: 'numpy', out: run.out };
  }
  const e2eCheck = compare(first, withBase(anchor.out));

  // WebGPU, when an adapter exists.
  const gpu = await webgpuContext();
  let webgpu = { skipped: gpu.reason };
  if (gpu.mk) {
    process.stdout.write(`model merging: WebGPU (${gpu.name})…\n`);
    const run = () => gpu.mk.mergeTensors('ties', { base: { data: base, shape }, models: models.map((data) => ({ data, shape })), parameters: { density: DENSITY, semantics: 'paper' }, chunkSize: CHUNK });
    // What one merge asks of the GPU (mk.gpuCounters): each input should go up once, (T + 1)·N·4 bytes.
    const before = gpu.mk.gpuCounters;
    t0 = performance.now();
    const out = (await run()).data;
    const once = performance.now() - t0;
    const after = gpu.mk.gpuCounters;
    const transfers = Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
    const timing = await timePeer(run, once, reps, quick ? 2000 : 5000);
    webgpu = { adapter: gpu.name, software: gpu.software, ...compare(out, first), ...stats(timing), runs: timing.runs, transfers, inputBytes: (T + 1) * N * 4 };
    gpu.mk.dispose();
  }

  // Bandwidth of the fused pass: T task vectors read, one result written.
  const fusedBytes = (T + 1) * N * 4;
  const share = (ms) => fusedBytes / (ms / 1e3) / 1e9 / limits.copyBandwidthGBs;
  const fusedGBs = fusedBytes / (phase.fused.ms / 1e3) / 1e9;
  const fusedGBsBest = fusedBytes / (phase.fused.msMin / 1e3) / 1e9;
  const ours = {
    'merge-kernels wasm, mergeTensors': { ...e2eCheck, checkedAgainst: anchor.name, ...stats(e2e), runs: reps },
    'merge-kernels wasm, primitives': { ...compare(merged, anchor.out), checkedAgainst: anchor.name, ms: pipelineMs, msMin: pipelineMinMs, runs: reps },
  };

  console.log(`\nTIES (paper semantics) of ${T} task vectors × ${N.toLocaleString('en')} float32, density ${DENSITY}; chunks of ${CHUNK} entries`);
  console.log(`  mergeTensors: a real base (N(0, 0.02²) weights) and fine-tuned models x = base + δ; the others take δ = f32(x − base) directly`);
  console.log(`  ours vs ${anchor.name}: compared as merged task vectors; mergeTensors as f32(base + merged); |Δ| ≤ ${RTOL}·|peer|`);
  console.log('\n  contender                            ✔   median ms  (fastest)   runs   peer/ours (vs mergeTensors)   note');
  const oursMs = ours['merge-kernels wasm, mergeTensors'].ms;
  for (const [who, c] of Object.entries({ ...ours, ...contenders })) {
    if (c.skipped) { console.log(`  ${who.padEnd(37)}skipped: ${c.skipped}`); continue; }
    const ratio = who.startsWith('merge-kernels') ? '' : `${(c.ms / oursMs).toFixed(1)}×`;
    const note = [c.note, c.checkedAgainst && `checked against ${c.checkedAgainst}`, c.threads && `${c.threads} threads`, c.version].filter(Boolean).join('; ');
    console.log(`  ${who.padEnd(37)}${c.valid ? '✔' : '✘'}  ${f(c.ms).padStart(9)}  ${`(${f(c.msMin)})`.padStart(10)}  ${String(c.runs).padStart(5)}   ${ratio.padStart(27)}   ${note}`);
  }
  console.log(`  mergeTensors vs the primitives pipeline: ${e2eVsPipeline.valid ? '✔ equal' : `✘ ${e2eVsPipeline.note}`}`);
  console.log(`  WebGPU: ${webgpu.skipped ? `skipped: ${webgpu.skipped}` : `${webgpu.valid ? '✔' : '✘'} ${f(webgpu.ms)} ms (${f(webgpu.msMin)}) on ${webgpu.adapter}${webgpu.software ? ' — a software Vulkan adapter on the CPU: says nothing about GPU speed' : ''}`}`);
  if (webgpu.transfers) {
    const x = webgpu.transfers;
    console.log(`  WebGPU mergeTensors vs wasm: ${f(webgpu.ms)} vs ${f(oursMs)} ms; per merge ${(x.uploadBytes / 1e6).toFixed(1)} MB uploaded in ${x.uploads} uploads (${(x.uploadBytes / webgpu.inputBytes).toFixed(3)}× the inputs' ${(webgpu.inputBytes / 1e6).toFixed(1)} MB), ${x.submits} submits, ${x.readbacks} readbacks`);
  }

  console.log('\n  primitives pipeline, phase by phase      median ms  (fastest)');
  for (const [name, label] of [
    ['level0', `histogram level 0, ${T} models`], ['level1', `histogram level 1, ${T} models`], ['level0Windows', '(instead: level 0 + 5-bin level-1 windows)'],
    ['fused', 'fused pass, counting (zero sign guessed)'], ['redo', `chunks applied again (${redoChunks} of ${chunks(N).length})`], ['fusedNoCounts', '(the fused pass without counting)'],
  ]) {
    console.log(`  ${label.padEnd(40)} ${f(phase[name].ms).padStart(9)}  ${`(${f(phase[name].msMin)})`.padStart(10)}`);
  }
  const pct = (ms) => `${(100 * share(ms)).toFixed(0)}%`;
  console.log(`  fused pass: ${(fusedBytes / 1e9).toFixed(2)} GB moved (${T} reads + 1 write); % of the ${limits.copyBandwidthGBs.toFixed(1)} GB/s copy bandwidth, median (fastest):`);
  console.log(`    via mk.primitives (slices copied in and out), counting   ${f(phase.fused.ms).padStart(6)} ms  ${pct(phase.fused.ms)} (${pct(phase.fused.msMin)})`);
  console.log(`    via mk.primitives, without counting                     ${f(phase.fusedNoCounts.ms).padStart(6)} ms  ${pct(phase.fusedNoCounts.ms)} (${pct(phase.fusedNoCounts.msMin)})`);
  console.log(`    resident in wasm memory (one call, no copies)            ${f(resident.fused.ms).padStart(6)} ms  ${pct(resident.fused.ms)} (${pct(resident.fused.msMin)})   ${residentCheck.valid ? '✔ equal to the API' : `✘ ${residentCheck.note}`}`);
  console.log(`    resident, counting                                      ${f(resident.fusedCounts.ms).padStart(6)} ms  ${pct(resident.fusedCounts.ms)} (${pct(resident.fusedCounts.msMin)})`);
  console.log(`    stream floor: out = a + b + c in wasm SIMD (resident)    ${f(resident.stream.ms).padStart(6)} ms  ${pct(resident.stream.ms)} (${pct(resident.stream.msMin)})   the most this traffic pattern reaches here`);

  const numpyMs = contenders.numpy?.ms;
  const verdict = {
    under500ms: oursMs < 500,
    vsNumpy: numpyMs ? numpyMs / oursMs : null,
    fusedShareOfCopyBandwidth: share(phase.fused.ms),
    fusedShareOfCopyBandwidthFastest: share(phase.fused.msMin),
    residentShareOfCopyBandwidth: share(resident.fused.ms),
    residentCountingShareOfCopyBandwidth: share(resident.fusedCounts.ms),
    streamShareOfCopyBandwidth: share(resident.stream.ms),
  };
  const mark = (ok) => (ok ? '✔' : '✘');
  console.log(`\n  targets: TIES under 0.5 s on wasm: ${mark(verdict.under500ms)} ${f(oursMs)} ms (mergeTensors median); ≥ 20× numpy: ${numpyMs ? `${mark(verdict.vsNumpy >= 20)} ${verdict.vsNumpy.toFixed(1)}×` : 'numpy not run'}; fused pass ≥ 50% of copy bandwidth: resident ${mark(verdict.residentShareOfCopyBandwidth >= 0.5)} ${pct(resident.fused.ms)} (counting ${mark(verdict.residentCountingShareOfCopyBandwidth >= 0.5)} ${pct(resident.fusedCounts.ms)}), via the API ${mark(verdict.fusedShareOfCopyBandwidth >= 0.5)} ${pct(phase.fused.ms)}`);

  return {
    N, T, density: DENSITY, chunkSize: CHUNK, semantics: 'paper', base: 'real (random N(0, 0.02²) weights)',
    contenders: { ...ours, ...Object.fromEntries(Object.entries(contenders).map(([k, v]) => [k, v])), webgpu },
    phases: phase, redoChunks, resident: { fused: resident.fused, fusedCounts: resident.fusedCounts, streamFloor: resident.stream, equalToApi: residentCheck.valid },
    fusedBytes, fusedGBs, fusedGBsBest, verdict,
  };
}
