import { LEVEL1_BINS, type HistogramRequest, type TiesMergeCounts, type TiesMergeOptions } from '../reference/merge-primitives.ts';
import type { WasmRuntime } from './runtime.ts';

/**
 * Thin wrappers over assembly/merge-primitives.ts. Inputs go through wasm memory in slices of
 * SLICE entries: wasm memory stays small whatever the chunk size, and a slice copied in is still
 * in cache when the kernel reads it (T + 2 slices of 64 KiB fit in L2; 2^14 was no slower than
 * 2^13..2^20 in bench/merge-primitives.mjs). State that spans slices (histogram, tie budgets)
 * stays in wasm memory until the call ends.
 */
const SLICE = 1 << 14;

const VOTE = { sum: 0, count: 1, none: 2 } as const;
const MERGE = { sum: 0, mean: 1, normalize: 2, max: 3 } as const;
const OUTPUT = { merged: 0, sign: 1, none: 2 } as const;
/** Or'ed into tiesMerge's output: the models are fine-tuned weights, the base to subtract first. */
const SUBTRACT_BASE = 4;
/** Or'ed into tiesMerge's output: count votes and undecided entries. */
const COUNT = 8;

/**
 * Every request's histogram over one chunk: each slice of the models the requests read (and of the
 * base) is copied in once, turned into task vectors in place, then counted by every request.
 */
export function absHistograms(rt: WasmRuntime, models: Float32Array[], base: Float32Array | undefined, requests: readonly HistogramRequest[]): void {
  if (requests.length === 0) return;
  const n = models[0]!.length;
  const size = Math.min(n, SLICE);
  const used = models.map((_, t) => requests.some((r) => r.model === t));
  rt.reset();
  const pm = models.map((_, t) => (used[t] ? rt.alloc(size * 4, `a slice of models[${t}]`) : 0));
  const pBase = base ? rt.alloc(size * 4, 'a slice of base') : 0;
  const ph = requests.map((r, i) => rt.alloc(r.hist.byteLength, `histogram ${i}`));
  // Views only after the last alloc: growing memory detaches them.
  const mem = rt.memory.buffer;
  const ms = pm.map((p) => (p ? new Float32Array(mem, p, size) : undefined));
  const bs = base ? new Float32Array(mem, pBase, size) : undefined;
  const hs = requests.map((r, i) => new Uint32Array(mem, ph[i]!, r.hist.length));
  requests.forEach((r, i) => hs[i]!.set(r.hist));
  for (let s = 0; s < n; s += size) {
    const len = Math.min(size, n - s);
    bs?.set(base!.subarray(s, s + len));
    for (let t = 0; t < models.length; t++) {
      if (!used[t]) continue;
      ms[t]!.set(models[t]!.subarray(s, s + len));
      if (base) rt.exports.subtractInPlace(pm[t]!, pBase, len);
    }
    requests.forEach((r, i) => rt.exports.absHistogram(pm[r.model]!, len, ph[i]!, r.level, r.prefix, r.hist.length / LEVEL1_BINS));
  }
  requests.forEach((r, i) => r.hist.set(hs[i]!));
}

export function tiesMerge(
  rt: WasmRuntime, models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array,
  base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions,
): TiesMergeCounts {
  const T = models.length;
  const n = out.length;
  const size = Math.min(n, SLICE);
  rt.reset();
  const pm = models.map((_, t) => rt.alloc(size * 4, `a slice of models[${t}]`));
  const pTable = rt.alloc(T * 4, 'the model table');
  const pw = rt.alloc(T * 4, 'weights');
  const pThr = rt.alloc(T * 4, 'thresholds');
  const pBudget = rt.alloc(T * 8, 'tie budgets');
  const pBase = base ? rt.alloc(size * 4, 'a slice of base') : 0;
  const pOut = rt.alloc(size * 4, 'a slice of out');
  const pScratch = rt.alloc(320 + T * 68, 'scratch');
  const pCounts = rt.alloc(8, 'counts');
  const mem = rt.memory.buffer;
  new Uint32Array(mem, pTable, T).set(pm);
  new Float32Array(mem, pw, T).set(weights);
  new Int32Array(mem, pThr, T).set(thr);
  const budget = new Float64Array(mem, pBudget, T);
  budget.set(tieBudget);
  const ms = pm.map((p) => new Float32Array(mem, p, size));
  const bs = base ? new Float32Array(mem, pBase, size) : undefined;
  const os = new Float32Array(mem, pOut, size);
  const sliceCounts = new Int32Array(mem, pCounts, 2);
  // The kernel forms δ = f32(x − base) itself, in registers when it can.
  const counting = o.counts !== false && o.vote !== 'none';
  const output = OUTPUT[o.output] | (o.subtractBase === true && base !== undefined ? SUBTRACT_BASE : 0) | (counting ? COUNT : 0);
  let votes = 0, undecided = 0;
  for (let s = 0; s < n; s += size) {
    const len = Math.min(size, n - s);
    bs?.set(base!.subarray(s, s + len));
    for (let t = 0; t < T; t++) ms[t]!.set(models[t]!.subarray(s, s + len));
    rt.exports.tiesMerge(pTable, T, pw, pThr, pBudget, pBase, pOut, len, VOTE[o.vote], MERGE[o.merge], output, o.zeroSign, o.lambda, pScratch, pCounts);
    if (o.output !== 'none') out.set(len === size ? os : os.subarray(0, len), s);
    votes += sliceCounts[0]!;
    undecided += sliceCounts[1]!;
  }
  tieBudget.set(budget);
  return counting ? { votes, undecided } : { votes: 0, undecided: 0 };
}

export function dropAndRescale(rt: WasmRuntime, x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array): [number, number] {
  const n = x.length;
  const size = Math.min(n, SLICE);
  // uniform24 < f32(p)·2^24 on integers is uniform24 < ceil(f32(p)·2^24).
  const cut = Math.ceil(Math.fround(p) * 16777216);
  rt.reset();
  const px = rt.alloc(size * 4, 'a slice of x');
  const pOut = rt.alloc(size * 4, 'a slice of out');
  const pSums = rt.alloc(16, 'sums');
  const xs = rt.f32(px, size);
  const os = rt.f32(pOut, size);
  const sums = new Float64Array(rt.memory.buffer, pSums, 2);
  let sumAbs = 0, sumKept = 0;
  for (let s = 0; s < n; s += size) {
    const len = Math.min(size, n - s);
    xs.set(x.subarray(s, s + len));
    // The flat index as two u32 halves; the kernel carries a wrap of the low half within the slice.
    const first = offset + s;
    const lo = first % 4294967296;
    rt.exports.dropAndRescale(px, len, lo, (first - lo) / 4294967296, key, cut, scale, pOut, pSums);
    out.set(len === size ? os : os.subarray(0, len), s);
    sumAbs += sums[0]!;
    sumKept += sums[1]!;
  }
  return [sumAbs, sumKept];
}

export function findNonFinite(rt: WasmRuntime, x: Float32Array): number {
  const n = x.length;
  const size = Math.min(n, SLICE);
  rt.reset();
  const px = rt.alloc(size * 4, 'a slice of x');
  const xs = rt.f32(px, size);
  for (let s = 0; s < n; s += size) {
    const len = Math.min(size, n - s);
    xs.set(x.subarray(s, s + len));
    const at = rt.exports.findNonFinite(px, len);
    if (at >= 0) return s + at;
  }
  return -1;
}

/**
 * Decodes little-endian bfloat16 `bytes` into `out` (out.length entries) through wasm memory in
 * slices, checking finiteness on the way: returns the index of the first NaN/±Infinity, or -1.
 */
export function decodeBf16(rt: WasmRuntime, bytes: Uint8Array, out: Float32Array): number {
  const n = out.length;
  const size = Math.min(n, SLICE);
  rt.reset();
  const pIn = rt.alloc(size * 2, 'a slice of bfloat16 bytes');
  const pOut = rt.alloc(size * 4, 'a slice of out');
  const mem = rt.memory.buffer;
  const ins = new Uint8Array(mem, pIn, size * 2);
  const os = new Float32Array(mem, pOut, size);
  let bad = -1;
  for (let s = 0; s < n; s += size) {
    const len = Math.min(size, n - s);
    ins.set(bytes.subarray(2 * s, 2 * (s + len)));
    const at = rt.exports.bf16ToF32(pIn, pOut, len);
    if (bad < 0 && at >= 0) bad = s + at;
    out.set(len === size ? os : os.subarray(0, len), s);
  }
  return bad;
}
