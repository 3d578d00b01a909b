// KV-cache clustering (Chelsea's chunked soft matching, chunk 64, ratio 0.25) on our wasm backend
// against the same algorithm in tight plain JavaScript (Float32Array loops, no allocation per
// round: what a skilled user would write without us), on the shapes; the time per token
// from 4k to 32k tokens (the method is O(T · chunk · D): it should be flat); the share of the wasm
// SIMD limit the similarity reaches; and mk.attention over the compressed cache against the full
// one. Every contender is validated against our js reference first (✔/✘).
//   node bench/kv-clustering.mjs [--quick]   (or through bench/run.mjs)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, reference } from '../dist/index.js';
import { benchDir, describeMachine, measureLimits, rng, timeStats, timePeer, writeResult } from './lib.mjs';

const CHUNK = 64, RATIO = 0.25, SINKS = 4, RECENT = 64;
const SHAPES = [
  { label: '32 heads × 8192 × 128', H: 32, T: 8192, D: 128 },
  { label: '8 heads × 32768 × 128', H: 8, T: 32768, D: 128 },
];

function inputs(H, T, D, seed) {
  // A drifting cache (what merging is for; random keys would time the same work).
  const next = rng(seed);
  const keys = new Float32Array(H * T * D), values = new Float32Array(H * T * D);
  for (let h = 0; h < H; h++) {
    const k = new Float32Array(D).map(() => next() - 0.5), v = new Float32Array(D).map(() => next() - 0.5);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < D; i++) { k[i] = 0.98 * k[i] + 0.2 * (next() - 0.5); v[i] = 0.98 * v[i] + 0.2 * (next() - 0.5); }
      keys.set(k, (h * T + t) * D);
      values.set(v, (h * T + t) * D);
    }
  }
  return { keys: { data: keys, shape: [H, T, D] }, values: { data: values, shape: [H, T, D] } };
}

/**
 * The same algorithm in plain JavaScript, written for speed: per chunk, float32 sums, normalised
 * copies of A and B, a dot-product loop, running best, stable insertion ranking, row adds.
 */
function plainJs(keys, values, H, T, D, Dv) {
  const layout = reference.kvClustering.kvLayout(T, SINKS, RECENT, CHUNK, RATIO);
  const M = layout.slots;
  const outK = new Float32Array(H * M * D), outV = new Float32Array(H * M * Dv), outS = new Float32Array(H * M);
  const assignment = new Int32Array(H * T);
  const n = CHUNK, half = n >> 1;
  const ks = new Float32Array(n * D), vs = new Float32Array(n * Dv), sz = new Float32Array(n);
  const live = new Int32Array(n), into = new Int32Array(n), slotOf = new Int32Array(n);
  const a = new Float32Array(half * D), b = new Float32Array(half * D);
  const bestS = new Float32Array(half), best = new Int32Array(half), order = new Int32Array(half);
  const normalise = (x, rows) => {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += x[r * D + k] * x[r * D + k];
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let k = 0; k < D; k++) x[r * D + k] *= inv;
    }
  };
  for (let h = 0; h < H; h++) {
    let slot = 0;
    const single = (t) => {
      outK.set(keys.subarray((h * T + t) * D, (h * T + t + 1) * D), (h * M + slot) * D);
      outV.set(values.subarray((h * T + t) * Dv, (h * T + t + 1) * Dv), (h * M + slot) * Dv);
      outS[h * M + slot] = 1;
      assignment[h * T + t] = slot++;
    };
    for (let t = 0; t < SINKS; t++) single(t);
    for (const { start, length, keep } of layout.chunks) {
      ks.set(keys.subarray((h * T + start) * D, (h * T + start + length) * D));
      vs.set(values.subarray((h * T + start) * Dv, (h * T + start + length) * Dv));
      for (let i = 0; i < length; i++) { sz[i] = 1; live[i] = i; into[i] = -1; }
      let count = length;
      while (count > keep) {
        const nA = (count + 1) >> 1, nB = count >> 1;
        for (let i = 0; i < count; i++) ((i & 1) === 0 ? a : b).set(ks.subarray(live[i] * D, live[i] * D + D), (i >> 1) * D);
        normalise(a, nA); normalise(b, nB);
        for (let i = 0; i < nA; i++) {
          let top = -Infinity, topJ = 0;
          for (let j = 0; j < nB; j++) {
            let dot = 0;
            for (let k = 0; k < D; k++) dot += a[i * D + k] * b[j * D + k];
            dot = Math.fround(dot);
            if (dot > top) { top = dot; topJ = j; }
          }
          bestS[i] = top; best[i] = topJ;
          let k = i;
          while (k > 0 && bestS[order[k - 1]] < top) { order[k] = order[k - 1]; k--; }
          order[k] = i;
        }
        const r = Math.min(count - keep, nA);
        for (let k = 0; k < r; k++) {
          const i = order[k], src = live[2 * i], dst = live[2 * best[i] + 1];
          for (let e = 0; e < D; e++) ks[dst * D + e] += ks[src * D + e];
          for (let e = 0; e < Dv; e++) vs[dst * Dv + e] += vs[src * Dv + e];
          sz[dst] += sz[src];
          into[src] = dst;
        }
        let kept = 0;
        for (let i = 0; i < count; i++) if (into[live[i]] < 0) live[kept++] = live[i];
        count = kept;
      }
      for (let k = 0; k < count; k++) {
        const i = live[k], o = h * M + slot;
        for (let e = 0; e < D; e++) outK[o * D + e] = ks[i * D + e] / sz[i];
        for (let e = 0; e < Dv; e++) outV[o * Dv + e] = vs[i * Dv + e] / sz[i];
        outS[o] = sz[i];
        slotOf[i] = slot++;
      }
      for (let i = 0; i < length; i++) { let o = i; while (into[o] >= 0) o = into[o]; assignment[h * T + start + i] = slotOf[o]; }
    }
    for (let t = T - RECENT; t < T; t++) single(t);
  }
  return { assignment, values: outV };
}

/** Multiply-adds of the similarity (normalise + A×B dots), counted as 2 flops each, over every chunk of every head. */
function similarityFlops(H, T, D) {
  const layout = reference.kvClustering.kvLayout(T, SINKS, RECENT, CHUNK, RATIO);
  let flops = 0;
  for (const { length, keep } of layout.chunks) {
    let count = length;
    while (count > keep) {
      const nA = (count + 1) >> 1, nB = count >> 1;
      flops += 2 * D * (nA * nB + count);
      count -= Math.min(count - keep, nA);
    }
  }
  return H * flops;
}

/**
 * The wasm kernel alone: the cache already in wasm memory (as a device tensor would hold it), the
 * export called directly — no copies in or out, no finiteness check. Our own instance of dist/kernels.wasm.
 */
async function kernelOnly(keys, values, H, T, D, reps) {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  const { instance } = await WebAssembly.instantiate(readFileSync(join(benchDir, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
  const x = instance.exports;
  const layout = reference.kvClustering.kvLayout(T, SINKS, RECENT, CHUNK, RATIO);
  const M = layout.slots, half = CHUNK / 2;
  const words = [H * T * D, H * T * D, layout.chunks.length * 3, H * M * D, H * M * D, H * M, H * M, H * T, CHUNK * (2 * D + 4) + half * (2 * D + half + 3)];
  let at = Math.ceil(x.heapBase() / 16) * 16;
  const ptr = words.map((w) => { const p = at; at += Math.ceil((w * 4) / 16) * 16; return p; });
  memory.grow(Math.ceil(at / 65536) - memory.buffer.byteLength / 65536);
  new Float32Array(memory.buffer, ptr[0], words[0]).set(keys);
  new Float32Array(memory.buffer, ptr[1], words[1]).set(values);
  new Int32Array(memory.buffer, ptr[2], words[2]).set(layout.chunks.flatMap((c) => [c.start, c.length, c.keep]));
  const run = () => x.kvCluster(ptr[0], ptr[1], 0, H, T, D, D, SINKS, RECENT, ptr[2], layout.chunks.length, M, ptr[3], ptr[4], ptr[5], ptr[6], ptr[7], ptr[8], CHUNK);
  return timeStats(run, reps);
}

/** Same assignment on every token, values within 1e-5: ✔. */
function agrees(got, want) {
  if (got.assignment.length !== want.assignment.data.length) return false;
  let diff = 0;
  for (let i = 0; i < got.assignment.length; i++) if (got.assignment[i] !== want.assignment.data[i]) diff++;
  let worst = 0;
  for (let i = 0; i < got.values.length; i++) worst = Math.max(worst, Math.abs(got.values[i] - want.values.data[i]) / Math.max(1e-3, Math.abs(want.values.data[i])));
  return { ok: diff === 0 && worst <= 1e-4, diff, worst };
}

export default async function kvClustering({ quick, limits, mk }) {
  const results = { shapes: [], perToken: [], attention: [] };
  const js = await init({ backend: 'js' });
  const reps = quick ? 3 : 7;
  console.log(`KV-cache clustering — chunk ${CHUNK}, ratio ${RATIO}, ${SINKS} sinks, ${RECENT} recent (median of back-to-back calls)`);
  for (const { label, H, T, D } of SHAPES) {
    const { keys, values } = inputs(H, T, D, 1);
    const o = { chunkSize: CHUNK, ratio: RATIO, sinkTokens: SINKS, recentTokens: RECENT };
    // Validation: the js reference on two heads (the whole shape would take the reference minutes).
    const small = { keys: { data: keys.data.subarray(0, 2 * T * D), shape: [2, T, D] }, values: { data: values.data.subarray(0, 2 * T * D), shape: [2, T, D] } };
    const want = await js.clusterKV(small.keys, small.values, o);
    const oursSmall = await mk.clusterKV(small.keys, small.values, o);
    const okOurs = agrees({ assignment: oursSmall.assignment.data, values: oursSmall.values.data }, want);
    const okJs = agrees(plainJs(small.keys.data, small.values.data, 2, T, D, D), want);
    const wasm = await timeStats(() => mk.clusterKV(keys, values, o), reps);
    // The cache resident in wasm memory (device tensors): no copy in, no NaN scan, the merged keys
    // and values stay there too (device tensors); size, position and assignment come back.
    const dk = mk.upload(keys), dv = mk.upload(values);
    const resident = await timeStats(async () => { const r = await mk.clusterKV(dk, dv, o); r.keys.dispose(); r.values.dispose(); }, reps);
    dk.dispose(); dv.dispose();
    const t0 = performance.now();
    plainJs(keys.data, values.data, H, T, D, D);
    const once = performance.now() - t0;
    const plain = await timePeer(() => plainJs(keys.data, values.data, H, T, D, D), once, reps, quick ? 3000 : 15000);
    const kernel = await kernelOnly(keys.data, values.data, H, T, D, reps);
    const simFlops = similarityFlops(H, T, D);
    // The similarity's share of the limit: its flops over the kernel's whole time (an upper bound on its time).
    const gflops = simFlops / (kernel.median / 1e3) / 1e9;
    const row = {
      label, wasmMs: wasm.median, residentMs: resident.median, kernelMs: kernel.median, plainJsMs: plain.median, speedup: plain.median / wasm.median, kernelSpeedup: plain.median / kernel.median,
      similarityGflops: gflops, simdShare: gflops / limits.wasmSimdGflops, valid: { wasm: okOurs, plainJs: okJs },
    };
    results.shapes.push(row);
    console.log(`  ${label.padEnd(24)} mk.clusterKV (wasm) ${wasm.median.toFixed(0).padStart(5)} ms ${okOurs.ok ? '✔' : '✘'}   resident ${resident.median.toFixed(0).padStart(5)} ms   kernel alone ${kernel.median.toFixed(0).padStart(5)} ms   plain JS ${plain.median.toFixed(0).padStart(5)} ms ${okJs.ok ? '✔' : '✘'}` +
      `   ${row.speedup.toFixed(1)}× (call) / ${row.kernelSpeedup.toFixed(1)}× (kernel) faster;   similarity ${gflops.toFixed(1)} GFLOP/s over the whole kernel time = ${(100 * row.simdShare).toFixed(0)}% of the SIMD limit`);
  }
  console.log('  time per token, 8 heads × T × 128 (flat means O(T)):');
  for (const T of [4096, 8192, 16384, 32768]) {
    const { keys, values } = inputs(8, T, 128, 2);
    const t = await timeStats(() => mk.clusterKV(keys, values, { chunkSize: CHUNK, ratio: RATIO, sinkTokens: SINKS, recentTokens: RECENT }), reps);
    const ns = (t.median * 1e6) / (8 * T);
    results.perToken.push({ tokens: T, ms: t.median, nsPerHeadToken: ns });
    console.log(`    T = ${String(T).padStart(5)}: ${t.median.toFixed(1).padStart(7)} ms, ${ns.toFixed(0)} ns per head-token`);
  }
  // Attention: decoding 8 queries per head (grouped-query, 32 query heads over 8 KV heads) over the full and the compressed cache.
  {
    const H = 8, T = 32768, D = 128;
    const { keys, values } = inputs(H, T, D, 3);
    const c = await mk.clusterKV(keys, values, { chunkSize: CHUNK, ratio: RATIO, sinkTokens: SINKS, recentTokens: RECENT });
    const next = rng(4);
    const q = { data: Float32Array.from({ length: 32 * 8 * D }, () => next() - 0.5), shape: [32, 8, D] };
    const full = await timeStats(() => mk.attention(q, keys, values), reps);
    const comp = await timeStats(() => mk.attention(q, c.keys, c.values, { size: c.size }), reps);
    // Decoding keeps the cache resident: upload once, attend many times.
    const [fk, fv, ck, cv] = [keys, values, c.keys, c.values].map((x) => mk.upload(x));
    const fullResident = await timeStats(() => mk.attention(q, fk, fv), reps);
    const compResident = await timeStats(() => mk.attention(q, ck, cv, { size: c.size }), reps);
    for (const d of [fk, fv, ck, cv]) d.dispose();
    const M = c.size.shape[1];
    results.attention.push({ tokens: T, slots: M, fullMs: full.median, compressedMs: comp.median, speedup: full.median / comp.median, fullResidentMs: fullResident.median, compressedResidentMs: compResident.median, residentSpeedup: fullResident.median / compResident.median, compression: T / M });
    console.log(`  attention, 32 query heads × 8 queries over 8 KV heads: full ${T} tokens ${full.median.toFixed(1)} ms, compressed ${M} slots ${comp.median.toFixed(1)} ms: ${(full.median / comp.median).toFixed(2)}× faster at ${(T / M).toFixed(2)}× fewer slots`);
    console.log(`    cache resident (device tensors): full ${fullResident.median.toFixed(1)} ms, compressed ${compResident.median.toFixed(1)} ms: ${(fullResident.median / compResident.median).toFixed(2)}× faster`);
  }
  js.dispose();
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const machine = describeMachine();
  const limits = await measureLimits(quick);
  console.log(`${machine.cpu}, Node ${machine.node}, load ${machine.loadAverage1m.toFixed(1)}; wasm SIMD limit ${limits.wasmSimdGflops.toFixed(1)} GFLOP/s\n`);
  const mk = await init({ backend: 'wasm' });
  const result = await kvClustering({ quick, limits, machine, mk });
  writeResult('kv-clustering', { machine, quick, limits, ...result });
  mk.dispose();
}
