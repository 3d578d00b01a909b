// ToMe's bipartite soft matching + merge_wavg (Bolya et al., ICLR 2023, §3; the timm patch: class
// token protected, sizes carried between blocks) on our wasm backend, against the same algorithm
// written with TensorFlow.js ops (wasm backend), in plain JS, and in PyTorch on the CPU (2 and 1 threads,
// bench/tome_torch.py, run as a child process when a python3 with torch is found).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reference } from '../dist/index.js';
import { benchDir, rng, time, timeStats, timePeer } from './lib.mjs';

const SHAPES = [
  { label: 'ViT-B/16', B: 1, N: 197, C: 768, r: 16 },
  { label: 'ViT-L/14@336', B: 1, N: 577, C: 1024, r: 64 },
  { label: 'long sequence', B: 1, N: 4097, C: 1024, r: 1024 },
  { label: 'ViT-B/16, B=8', B: 8, N: 197, C: 768, r: 16 },
];
/** The issue's PyTorch anchor runs 2 threads; 1 thread is shown too (this 2-core machine is shared, and OpenMP's
 * spinning threads suffer when the other core is busy). */
const TORCH_THREADS = [2, 1];
/** Merged values: |Δ| ≤ ATOL on values in [-1, 1] (float32 sums in another order differ by ~1e-7). */
const ATOL = 1e-5;

export function inputs({ B, N, C }, seed) {
  const next = rng(seed);
  const metric = Float32Array.from({ length: B * N * C }, () => 2 * next() - 1);
  const x = Float32Array.from({ length: B * N * C }, () => 2 * next() - 1);
  // Token sizes as after a few merged blocks: small whole numbers.
  const size = Float32Array.from({ length: B * N }, () => 1 + Math.floor(4 * next()));
  return { metric, x, size };
}

/** The ToMe step with our wasm backend: the plan (matching), then merge_wavg. */
export function ours(mk, { B, N, C, r }, { metric, x, size }) {
  const match = () => mk.bipartiteSoftMatching({ data: metric, shape: [B, N, C] }, { r, classToken: true });
  const merge = (plan) => mk.mergeWavg(plan, { data: x, shape: [B, N, C] }, { data: size, shape: [B, N, 1] });
  const result = (plan, out) => ({ unm: plan.unmergedIdx, src: plan.srcIdx, dst: plan.dstIdx, x: out.x.data, size: out.size.data });
  return { match, merge, run: async () => { const plan = await match(); return result(plan, merge(plan)); } };
}

/** The same step written with TensorFlow.js ops, as a JS user would: no custom kernels. */
function tfjsToMe(tf, { B, N, C, r }, { metric, x, size }) {
  const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
  return tf.tidy(() => {
    const even = tf.range(0, N, 2, 'int32'), odd = tf.range(1, N, 2, 'int32');
    const m = tf.tensor3d(metric, [B, N, C]);
    const unit = tf.div(m, tf.norm(m, 'euclidean', -1, true));
    const scores = tf.matMul(tf.gather(unit, even, 1), tf.gather(unit, odd, 1), false, true); // [B, nA, nB]
    // The class token (A row 0) is never a source: its row scores -inf.
    const masked = tf.concat([tf.fill([B, 1, nB], -Infinity), tf.slice(scores, [0, 1, 0], [B, nA - 1, nB])], 1);
    const nodeMax = tf.max(masked, -1), nodeIdx = tf.argMax(masked, -1); // [B, nA]
    const edges = tf.topk(nodeMax, nA).indices; // descending
    const srcIdx = tf.slice(edges, [0, 0], [B, r]);
    // With a class token the kept A tokens go back to position order: ascending = top-k of the negated indices.
    const unmIdx = tf.cast(tf.neg(tf.topk(tf.neg(tf.slice(edges, [0, r], [B, nA - r])), nA - r).values), 'int32');
    // Per-batch gathers go through gatherND with (batch, index) pairs: tf.gather(…, batchDims = 1) on
    // tfjs-backend-wasm 4.22 reads the wrong indices for B > 1 (tensorflow/tfjs#8658, found by this bench).
    const perBatch = (idx, k) => tf.stack([tf.tile(tf.reshape(tf.range(0, B, 1, 'int32'), [B, 1]), [1, k]), idx], -1); // [B, k, 2]
    const srcAt = perBatch(srcIdx, r), unmAt = perBatch(unmIdx, nA - r);
    const dstIdx = tf.gatherND(nodeIdx, srcAt); // [B, r]
    const dstAt = perBatch(dstIdx, r);
    const merge = (t, dim) => {
      const src = tf.gather(t, even, 1), dst = tf.gather(t, odd, 1);
      // scatterND sums updates that land on the same index: scatter_reduce('sum') with the destination included.
      return tf.concat([tf.gatherND(src, unmAt), tf.add(dst, tf.scatterND(dstAt, tf.gatherND(src, srcAt), [B, nB, dim]))], 1);
    };
    const sz = tf.tensor3d(size, [B, N, 1]);
    const num = merge(tf.mul(tf.tensor3d(x, [B, N, C]), sz), C), den = merge(sz, 1);
    return {
      unm: Int32Array.from(unmIdx.dataSync()), src: Int32Array.from(srcIdx.dataSync()), dst: Int32Array.from(dstIdx.dataSync()),
      x: tf.div(num, den).dataSync(), size: den.dataSync(),
    };
  });
}

/** The same step in straightforward loops. */
function plainJsToMe({ B, N, C, r }, { metric, x, size }) {
  const nA = Math.ceil(N / 2), nB = Math.floor(N / 2), M = N - r;
  const unit = new Float32Array(metric.length);
  for (let row = 0; row < B * N; row++) {
    let ss = 0;
    for (let k = 0; k < C; k++) ss += metric[row * C + k] ** 2;
    const inv = 1 / Math.sqrt(ss);
    for (let k = 0; k < C; k++) unit[row * C + k] = metric[row * C + k] * inv;
  }
  const out = { unm: new Int32Array(B * (nA - r)), src: new Int32Array(B * r), dst: new Int32Array(B * r), x: new Float32Array(B * M * C), size: new Float32Array(B * M) };
  for (let t = 0; t < B; t++) {
    const tok = (i) => (t * N + i) * C;
    const nodeMax = new Float32Array(nA), nodeIdx = new Int32Array(nA);
    nodeMax[0] = -Infinity; // the class token is never a source
    for (let i = 1; i < nA; i++) {
      let best = -Infinity, bestJ = 0;
      for (let j = 0; j < nB; j++) {
        let s = 0;
        for (let k = 0; k < C; k++) s += unit[tok(2 * i) + k] * unit[tok(2 * j + 1) + k];
        if (s > best) { best = s; bestJ = j; }
      }
      nodeMax[i] = best; nodeIdx[i] = bestJ;
    }
    const edges = Array.from({ length: nA }, (_, i) => i).sort((i, j) => (nodeMax[i] === nodeMax[j] ? i - j : nodeMax[j] - nodeMax[i]));
    const unm = edges.slice(r).sort((i, j) => i - j);
    out.unm.set(unm, t * (nA - r));
    // merge_wavg: x' = Σ x·size / Σ size over each destination and its sources.
    const num = new Float64Array(nB * C), den = new Float64Array(nB);
    for (let j = 0; j < nB; j++) {
      const s = size[t * N + 2 * j + 1];
      den[j] = s;
      for (let k = 0; k < C; k++) num[j * C + k] = x[tok(2 * j + 1) + k] * s;
    }
    for (let e = 0; e < r; e++) {
      const i = edges[e], j = nodeIdx[i], s = size[t * N + 2 * i];
      out.src[t * r + e] = i; out.dst[t * r + e] = j;
      den[j] += s;
      for (let k = 0; k < C; k++) num[j * C + k] += x[tok(2 * i) + k] * s;
    }
    for (let u = 0; u < unm.length; u++) {
      out.size[t * M + u] = size[t * N + 2 * unm[u]];
      out.x.set(x.subarray(tok(2 * unm[u]), tok(2 * unm[u]) + C), (t * M + u) * C);
    }
    for (let j = 0; j < nB; j++) {
      out.size[t * M + unm.length + j] = den[j];
      for (let k = 0; k < C; k++) out.x[(t * M + unm.length + j) * C + k] = num[j * C + k] / den[j];
    }
  }
  return out;
}

/**
 * Checks `got` against `want` (ours). Exact indices: ✔. The same (source → destination) pairs and
 * kept tokens with the sources in another order: ✔ with a note (near-equal best scores ranked
 * differently; the merged output does not depend on that order). Anything else: ✘.
 */
export function compare(got, want, { B, r }) {
  let maxAbsError = 0;
  for (const k of ['x', 'size']) {
    if (got[k].length !== want[k].length) return { valid: false, note: `${k}: ${got[k].length} values, expected ${want[k].length}`, maxAbsError: Infinity };
    for (let i = 0; i < want[k].length; i++) maxAbsError = Math.max(maxAbsError, Math.abs(got[k][i] - want[k][i]));
  }
  const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
  const valuesOk = maxAbsError <= ATOL; // false on NaN too
  if (same(got.unm, want.unm) && same(got.src, want.src) && same(got.dst, want.dst)) {
    return { valid: valuesOk, note: valuesOk ? '' : `values differ by ${maxAbsError.toExponential(1)}`, maxAbsError };
  }
  let reordered = 0, pairsOk = same(got.unm, want.unm);
  for (let t = 0; t < B; t++) {
    const pairs = (p) => [...p.src.subarray(t * r, (t + 1) * r)].map((s, k) => `${s}>${p.dst[t * r + k]}`);
    const g = pairs(got), w = pairs(want);
    reordered += g.filter((p, k) => p !== w[k]).length;
    pairsOk &&= same([...g].sort(), [...w].sort());
  }
  if (pairsOk && valuesOk) return { valid: true, note: `${reordered} sources ranked in another order (near-equal scores)`, maxAbsError };
  return { valid: false, note: pairsOk ? `values differ by ${maxAbsError.toExponential(1)}` : 'different tokens merged', maxAbsError };
}

/** A python3 that imports torch, or the reason there is none. */
function findTorch() {
  const tried = [];
  for (const python of ['python3', '/usr/bin/python3']) {
    const p = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (p.status === 0) return { python, version: p.stdout.trim() };
    tried.push(`${python}: ${p.error ? p.error.message : (p.stderr.trim().split('\n').pop() || `exit ${p.status}`)}`);
  }
  return { reason: `no python3 with torch (${tried.join('; ')}); Debian: apt-get install -y python3-torch` };
}

/**
 * Which BLAS torch's matmul uses: the libblas.so.3 it mapped. Debian's python3-torch takes whatever
 * update-alternatives selects: the reference BLAS (libblas3) unless an optimised one is installed.
 */
function describeBlas(paths) {
  const blas = paths.find((p) => /libblas\.so/.test(p));
  if (!blas) return paths.join(', ') || 'none found';
  if (blas.includes('openblas')) return `OpenBLAS (${blas})`;
  if (blas.includes('/blas/')) return `the reference BLAS, unoptimised (${blas})`;
  return blas;
}

/** Runs bench/tome_torch.py once for all shapes; returns per shape { timings: { threads: { ms, msMatch, msMerge } }, result } or a reason. */
function runTorch(python, cases, reps) {
  const dir = mkdtempSync(join(tmpdir(), 'merge-kernels-bench-'));
  try {
    const manifest = { reps, threads: TORCH_THREADS, cases: cases.map(({ shape, data }, i) => {
      const file = (name, a) => { const p = join(dir, `${i}-${name}.f32`); writeFileSync(p, new Uint8Array(a.buffer, a.byteOffset, a.byteLength)); return p; };
      return { B: shape.B, N: shape.N, C: shape.C, r: shape.r, class_token: true, metric: file('metric', data.metric), x: file('x', data.x), size: file('size', data.size), out: join(dir, `${i}-out.bin`), reps: shape.N > 2000 ? Math.min(reps, 5) : reps };
    }) };
    const p = spawnSync(python, [join(benchDir, 'tome_torch.py')], { input: JSON.stringify(manifest), encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 20 });
    if (p.status !== 0) return { reason: `tome_torch.py failed: ${p.error?.message ?? p.stderr.trim().split('\n').slice(-3).join(' | ')}` };
    const report = JSON.parse(p.stdout);
    return {
      version: `torch ${report.torch}, BLAS: ${describeBlas(report.blas)}`,
      cases: report.cases.map((timings, i) => {
        const { B, N, r } = cases[i].shape, nA = Math.ceil(N / 2), M = N - r, C = cases[i].shape.C;
        const buf = readFileSync(manifest.cases[i].out);
        const bytes = new Uint8Array(buf.byteLength); bytes.set(buf);
        let at = 0;
        const take = (Type, n) => { const a = new Type(bytes.buffer, at, n); at += n * 4; return a; };
        return { timings, result: { unm: take(Int32Array, B * (nA - r)), src: take(Int32Array, B * r), dst: take(Int32Array, B * r), x: take(Float32Array, B * M * C), size: take(Float32Array, B * M) } };
      }),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where our time goes, from outside the package: the wasm bestMatch kernel alone (normalisation,
 * A·Bᵀ blocks and running argmax on data already in wasm memory), timed on a raw instance of the
 * package's own module. The rest of the matching is host-side (row gathers, copies, ranking).
 */
async function kernelOnlyMs({ B, N, C }, metric, reps) {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  const { instance } = await WebAssembly.instantiate(readFileSync(join(benchDir, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
  const k = instance.exports;
  const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
  let top = k.heapBase();
  const alloc = (bytes) => { const p = top; top += Math.ceil(bytes / 16) * 16; return p; };
  const pa = alloc(B * nA * C * 4), pb = alloc(B * nB * C * 4), scratch = alloc(16 * nB * 4), ps = alloc(B * nA * 4), pi = alloc(B * nA * 4);
  memory.grow(Math.max(0, Math.ceil(top / 65536) - memory.buffer.byteLength / 65536));
  const a = new Float32Array(memory.buffer, pa, B * nA * C), b = new Float32Array(memory.buffer, pb, B * nB * C);
  for (let t = 0; t < B; t++) for (let i = 0; i < N; i++) {
    const row = metric.subarray((t * N + i) * C, (t * N + i + 1) * C);
    if (i % 2 === 0) a.set(row, (t * nA + i / 2) * C); else b.set(row, (t * nB + (i - 1) / 2) * C);
  }
  return time(() => k.bestMatch(pa, pb, scratch, ps, pi, B, nA, nB, C, 1, 0), reps);
}

const stats = ({ median, min }) => ({ ms: median, msMin: min });
const f = (ms) => (Number.isNaN(ms) ? '—' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

/** Prints the tables and returns the result object for bench/results/token-merging.json. */
export default async function bench({ quick, limits, mk, tf, tfFlags }) {
  const shapes = quick ? SHAPES.slice(0, 1) : SHAPES;
  const reps = quick ? 3 : 10;
  const cases = shapes.map((shape, i) => ({ shape, data: inputs(shape, 1234 + i) }));
  const torch = findTorch();
  let torchRun = torch;
  if (torch.python) {
    process.stdout.write(`token merging: running the PyTorch peer (${torch.python}, torch ${torch.version})…\n`);
    torchRun = runTorch(torch.python, cases, reps);
  }
  const torchLine = torchRun.version ?? `skipped: ${torchRun.reason}`;
  console.log(`ToMe bipartite soft matching + merge_wavg, class token protected: metric [B, N, C], x [B, N, C], size [B, N, 1]`);
  console.log(`  peers: ${tfFlags}; PyTorch CPU: ${torchLine}`);
  const rows = [];
  for (const [i, { shape, data }] of cases.entries()) {
    const { B, N, C, r } = shape;
    const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
    const simFlops = 2 * B * nA * nB * C;
    const wantPlan = reference.bipartiteSoftMatching(data.metric, B, N, C, { r, classToken: true });
    const want = reference.mergeWavg(wantPlan, data.x, C, data.size);
    const oursFns = ours(mk, shape, data);
    const mine = await oursFns.run();
    const refCheck = compare(mine, { unm: wantPlan.unmergedIdx, src: wantPlan.srcIdx, dst: wantPlan.dstIdx, x: want.x, size: want.size }, shape);

    const plan = await oursFns.match();
    const row = { shape: { ...shape }, simFlops, contenders: {} };
    row.contenders['merge-kernels wasm'] = {
      ...refCheck, checkedAgainst: 'js reference',
      ...stats(await timeStats(oursFns.run, reps)), runs: reps,
      msMatch: await time(oursFns.match, reps),
      msMerge: await time(() => oursFns.merge(plan), reps),
      msKernel: await kernelOnlyMs(shape, data.metric, reps),
    };

    // The validating run is the peer's warm-up; then up to `reps` runs within ~3 s (the slow peers
    // take seconds a run on the long sequence: there the validating run is the one timed run).
    const peer = async (name, fn, peerReps) => {
      const t0 = performance.now();
      const check = compare(await fn(), mine, shape);
      const once = performance.now() - t0;
      const timing = check.valid ? await timePeer(fn, once, peerReps, quick ? 1000 : 3000) : { median: NaN, min: NaN, runs: 0 };
      row.contenders[name] = { ...check, ...stats(timing), runs: timing.runs };
    };
    await peer('tfjs wasm', async () => tfjsToMe(tf, shape, data), reps);
    await peer('plain JS', async () => plainJsToMe(shape, data), quick ? 1 : 3);
    if (torchRun.cases) {
      const t = torchRun.cases[i];
      const check = compare(t.result, mine, shape);
      for (const threads of TORCH_THREADS) {
        const { ms, msMin, msMatch, msMerge } = t.timings[threads];
        row.contenders[`PyTorch CPU ${threads}T`] = { ...check, ms: check.valid ? ms : NaN, msMin: check.valid ? msMin : NaN, msMatch, msMerge };
      }
    }
    rows.push(row);
  }

  console.log('\n  total = match + merge_wavg, median (fastest) of the repeats; match and merge medians timed apart');
  console.log('  shape                               contender            ✔   total ms  (fastest)   match ms   merge ms   peer/ours');
  for (const row of rows) {
    const { label, B, N, C, r } = row.shape;
    const name = `${label} (B=${B} N=${N} C=${C} r=${r})`;
    const ourMs = row.contenders['merge-kernels wasm'].ms;
    for (const [who, c] of Object.entries(row.contenders)) {
      const ratio = who === 'merge-kernels wasm' ? '' : Number.isNaN(c.ms) ? '—' : `${(c.ms / ourMs).toFixed(1)}×`;
      console.log(`  ${name.padEnd(36)}${who.padEnd(21)}${c.valid ? '✔' : '✘'}  ${f(c.ms).padStart(9)}  ${`(${f(c.msMin)})`.padStart(9)}  ${f(c.msMatch ?? NaN).padStart(9)}  ${f(c.msMerge ?? NaN).padStart(9)}   ${ratio.padStart(8)}${c.note ? `   (${c.note})` : ''}`);
    }
  }
  if (!torchRun.cases) console.log(`  PyTorch CPU: skipped: ${torchRun.reason}`);

  console.log('\n  where our time goes (wasm backend)   similarity GFLOP   kernel ms   % SIMD limit (kernel)   % SIMD limit (whole match)   host side of match ms   merge_wavg ms');
  for (const row of rows) {
    const { label } = row.shape;
    const o = row.contenders['merge-kernels wasm'];
    const pct = (ms) => (100 * row.simFlops / (ms / 1e3) / 1e9 / limits.wasmSimdGflops);
    o.simdLimitShareKernel = pct(o.msKernel) / 100;
    o.simdLimitShareMatch = pct(o.msMatch) / 100;
    console.log(`  ${label.padEnd(36)} ${(row.simFlops / 1e9).toFixed(3).padStart(16)}   ${f(o.msKernel).padStart(9)}   ${pct(o.msKernel).toFixed(0).padStart(20)}%   ${pct(o.msMatch).toFixed(0).padStart(25)}%   ${(o.msMatch > o.msKernel ? f(o.msMatch - o.msKernel) : '~0 (noise)').padStart(21)}   ${f(o.msMerge).padStart(13)}`);
  }
  const backToBack = await layerAfterLayer(mk, quick);
  return { peers: { tfjs: tfFlags, torch: torchLine }, rows, backToBack };
}

/**
 * The ToMe step at ViT-B/16 called back to back, as a model calls it layer after layer: 200
 * calls, median and p90 (a fresh output per call makes new pages fault in some stretches; the
 * `out` form writes into the same arrays every call). Both forms in the same run.
 */
export async function layerAfterLayer(mk, quick) {
  const shape = { B: 1, N: 197, C: 768, r: 16 };
  const { metric, x, size } = inputs(shape, 11);
  const m = { data: metric, shape: [1, 197, 768] }, xs = { data: x, shape: [1, 197, 768] }, sz = { data: size, shape: [1, 197, 1] };
  const out = { x: { data: new Float32Array(181 * 768), shape: [1, 181, 768] }, size: { data: new Float32Array(181), shape: [1, 181, 1] } };
  // Device tensors: metric, x and size live in wasm memory; each step's outputs are freed as a
  // model would free the previous layer's.
  const dm = mk.upload(m), dx = mk.upload(xs), dsz = mk.upload(sz);
  const forms = {
    'fresh outputs': async () => mk.mergeWavg(await mk.bipartiteSoftMatching(m, { r: 16, classToken: true }), xs, sz),
    'into out': async () => mk.mergeWavg(await mk.bipartiteSoftMatching(m, { r: 16, classToken: true }), xs, sz, out),
    'device tensors': async () => {
      const got = mk.mergeWavg(await mk.bipartiteSoftMatching(dm, { r: 16, classToken: true }), dx, dsz);
      got.x.dispose();
      got.size.dispose();
    },
  };
  const calls = quick ? 60 : 200;
  console.log(`\n  ViT-B/16 ToMe step (match + merge_wavg, ${mk.backend}: host tensors, into out, device tensors), ${calls} calls back to back, 3 rounds each`);
  console.log('  form             median ms   p90 ms   p90/median');
  const result = {};
  for (const [form, step] of Object.entries(forms)) {
    for (let i = 0; i < 20; i++) await step();
    const rounds = [];
    for (let round = 0; round < 3; round++) {
      const t = [];
      for (let i = 0; i < calls; i++) { const t0 = performance.now(); await step(); t.push(performance.now() - t0); }
      t.sort((a, b) => a - b);
      rounds.push({ median: t[Math.floor(calls / 2)], p90: t[Math.floor(calls * 0.9)] });
    }
    // The round with the median p90 of the three: one noisy round (another process) does not decide.
    const mid = [...rounds].sort((a, b) => a.p90 - b.p90)[1];
    result[form] = { ...mid, rounds };
    console.log(`  ${form.padEnd(16)} ${f(mid.median).padStart(9)}   ${f(mid.p90).padStart(6)}   ${(mid.p90 / mid.median).toFixed(2).padStart(10)}`);
  }
  for (const t of [dm, dx, dsz]) t.dispose();
  return result;
}
