// The model-merging primitives (mk.primitives) on every backend against the js reference: the
// histogram, elected signs, tie budgets and DARE masks bit for bit, merged values within float32
// rounding, over many sizes, model counts, every option combination and several chunkings; and
// bad input. `mergePrimitivesReference` (run once) checks the reference itself by hand.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference, type TiesMergeOptions } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, rejects, rng } from '../util.ts';

const R = reference.mergePrimitives;
const { absBits, fromBits, LEVEL0_BINS, LEVEL1_BINS, NON_FINITE_BIN } = R;

// Sizes 0 and 1, around the SIMD width (3, 4, 5, 7), around a 64-wide workgroup (64, 65), odd
// and large (1023, 100003).
const SIZES = [0, 1, 3, 4, 5, 7, 17, 64, 65, 1023, 100003];
const MODEL_COUNTS = [1, 2, 3, 5, 8];
const VOTES = ['sum', 'count', 'none'] as const;
const MERGES = ['sum', 'mean', 'normalize', 'max'] as const;
const OUTPUTS = ['merged', 'sign'] as const;

// Merged values: the reference rounds to float32 after every operation and sums over models in
// order. A kernel doing the same agrees exactly; one whose division or scale multiply is off by an
// ulp (GPUs) differs by ~1e-7 relative per operation. Inputs are ≤ 1 in magnitude and weights
// ≤ 1.5, so 2e-6 absolute (a few ulps of the largest term) still catches any wrong sign, mask or
// model (those are ≥ 1/16).
const MERGED = { rtol: 1e-6, atol: 2e-6 };

/** Values in (-1, 1) on a grid of 1/16: many exact ties in magnitude, a few zeros. */
function gridValues(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.round((next() * 2 - 1) * 16) / 16;
  return x;
}

/** Uniform values in [lo, hi). */
function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = lo + (hi - lo) * next();
  return x;
}

/**
 * Float32 values of every kind: normal of all exponents, subnormal, ±0, ±Inf, NaN (several
 * payloads). NaNs are quiet: reading a signalling NaN into a JS number sets its quiet bit, so the
 * reference would bin it by other bits than a kernel that reads the raw bits (both non-finite bins).
 */
function everyKind(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(n);
  const bits = new Uint32Array(x.buffer);
  for (let i = 0; i < n; i++) {
    const sign = next() < 0.5 ? 0x80000000 : 0;
    const kind = next();
    if (kind < 0.6) bits[i] = (sign | Math.floor(next() * 0x7f800000)) >>> 0;         // any finite, incl. subnormal
    else if (kind < 0.75) bits[i] = (sign | Math.floor(next() * 0x800000)) >>> 0;     // subnormal
    else if (kind < 0.85) bits[i] = sign;                                              // ±0
    else if (kind < 0.92) bits[i] = (sign | 0x7f800000) >>> 0;                         // ±Inf
    else bits[i] = (sign | 0x7fc00000 | Math.floor(next() * 0x400000)) >>> 0;          // quiet NaN
  }
  return x;
}

/** Asserts two integer arrays are equal, naming the first difference. */
function sameInts(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) assert.unreachable(`${what}: first difference at ${i}: got ${got[i]}, expected ${want[i]}`);
  }
}

/** Asserts two float arrays are equal bit for bit (so -0 ≠ 0 and NaN payloads count). */
function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  sameInts(new Uint32Array(got.buffer, got.byteOffset, got.length), new Uint32Array(want.buffer, want.byteOffset, want.length), what);
}

interface TiesCase {
  models: Float32Array[];
  weights: Float32Array;
  thr: Int32Array;
  tieBudget: Float64Array;
  base: Float32Array | undefined;
}

/**
 * T grid-valued task vectors of length n with thresholds that make many exact ties: model t keeps
 * magnitudes > thrValue, and `budgetShare` of the entries equal to it (so the budget runs out
 * part-way through the data). Model 0 of T ≥ 2 keeps everything (thr = -1).
 */
function tiesCase(n: number, T: number, seed: number, withBase: boolean, budgetShare = 0.5): TiesCase {
  const models = Array.from({ length: T }, (_, t) => gridValues(n, seed * 31 + t));
  const next = rng(seed);
  const weights = new Float32Array(Array.from({ length: T }, () => 0.25 + 1.25 * next()));
  const thr = new Int32Array(T);
  const tieBudget = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    if (T >= 2 && t === 0) { thr[t] = -1; continue; }
    const thrValue = [0.25, 0.5, 0.0625, 0.75][t % 4]!;
    thr[t] = absBits(thrValue);
    let ties = 0;
    for (const v of models[t]!) if (absBits(v) === thr[t]) ties++;
    tieBudget[t] = Math.floor(ties * budgetShare);
  }
  return { models, weights, thr, tieBudget, base: withBase ? gridValues(n, seed + 7) : undefined };
}

/** The reference's output and final tie budgets for a case. */
function refTies(c: TiesCase, o: TiesMergeOptions): { out: Float32Array; budget: Float64Array } {
  const out = new Float32Array(c.models[0]!.length);
  const budget = c.tieBudget.slice();
  R.tiesMerge(c.models, c.weights, c.thr, budget, c.base, out, o);
  return { out, budget };
}

/**
 * Checks a tiesMerge output against the reference's: signs exactly; merged values bit for bit on
 * js and wasm (the same float32 operations in the same order, so -0 and +0 differ), within float32
 * rounding on webgpu (see MERGED).
 */
function tiesClose(backend: string, got: Float32Array, want: Float32Array, o: TiesMergeOptions, what: string): void {
  if (o.output === 'sign') sameInts(got, want, `${what}: elected signs`);
  else if (backend === 'webgpu') allClose(got, want, MERGED, `${what}: merged values`);
  else sameBits(got, want, `${what}: merged values`);
}

/** A mask from DARE's definition: kept iff uniform24(key, offset + i) < p·2^24. */
function dareMask(n: number, offset: number, key: number, p: number): boolean[] {
  const cut = Math.fround(p) * 16777216;
  return Array.from({ length: n }, (_, i) => R.uniform24(key, offset + i) < cut);
}

/** Relative closeness for float64 sums. */
function closeRel(got: number, want: number, rel: number, what: string): void {
  assert.ok(Math.abs(got - want) <= rel * Math.abs(want), `${what}: got ${got}, expected ${want} (rel ${rel})`);
}

export default function (h: Harness) {
  const test = suite(`mergePrimitives [${h.backend}]`);
  const p = h.mk.primitives;

  test('absHistogram level 0 equals the reference on every size, over every kind of float (±0, subnormal, ±Inf, NaN)', async () => {
    for (const n of SIZES) {
      const x = everyKind(n, 100 + n);
      const got = new Uint32Array(LEVEL0_BINS), want = new Uint32Array(LEVEL0_BINS);
      await p.absHistogram(x, got, 0);
      R.absHistogram(x, want, 0, 0);
      sameInts(got, want, `level 0, n = ${n}`);
      let total = 0, nonFinite = 0;
      for (let b = 0; b < LEVEL0_BINS; b++) { total += got[b]!; if (b >= NON_FINITE_BIN) nonFinite += got[b]!; }
      assert.is(total, n, `level 0, n = ${n}: every entry counted once`);
      assert.is(nonFinite, x.filter((v) => !Number.isFinite(v)).length, `level 0, n = ${n}: ±Inf and NaN in the non-finite bins`);
    }
  });

  test('absHistogram accumulates into a non-empty histogram; -0 and +0 share bin 0; subnormals are not bin 0', async () => {
    const tiny = fromBits(1);                          // the smallest subnormal: absBits 1 → level-0 bin 0, level-1 bin 1
    const sub = fromBits(0x8000);                      // absBits 0x8000 → level-0 bin 1
    const x = new Float32Array([0, -0, tiny, -tiny, sub, 1, -1, Infinity, NaN]);
    const hist = new Uint32Array(LEVEL0_BINS).fill(5);
    await p.absHistogram(x, hist, 0);
    assert.is(hist[0], 5 + 4, 'bin 0: +0, -0 and ±(smallest subnormal)');
    assert.is(hist[1], 5 + 1, 'bin 1: the subnormal 0x8000');
    assert.is(hist[0x3f800000 >>> 15], 5 + 2, 'bin of ±1');
    assert.is(hist[NON_FINITE_BIN], 5 + 1, 'bin of Inf');
    assert.is(hist[0x7fc00000 >>> 15], 5 + 1, 'bin of the canonical NaN');
    const low = new Uint32Array(LEVEL1_BINS);
    await p.absHistogram(x, low, 1, 0);
    assert.is(low[0], 2, 'level 1 of bin 0: ±0 at low bits 0');
    assert.is(low[1], 2, 'level 1 of bin 0: ±(smallest subnormal) at low bits 1');
  });

  test('absHistogram level 1 equals the reference for the prefixes of the busiest bins and an empty one', async () => {
    for (const n of [1, 5, 65, 1023, 100003]) {
      const x = uniform(n, 200 + n);
      for (let i = 0; i < n; i += 3) x[i] = Math.fround(x[i]! * 1e-3);
      const h0 = new Uint32Array(LEVEL0_BINS);
      R.absHistogram(x, h0, 0, 0);
      const prefixes = [absBits(x[0]!) >>> 15, absBits(x[n - 1]!) >>> 15, NON_FINITE_BIN, LEVEL0_BINS - 1];
      for (const prefix of prefixes) {
        const got = new Uint32Array(LEVEL1_BINS), want = new Uint32Array(LEVEL1_BINS);
        await p.absHistogram(x, got, 1, prefix);
        R.absHistogram(x, want, 1, prefix);
        sameInts(got, want, `level 1, n = ${n}, prefix ${prefix}`);
      }
    }
  });

  test('absHistogram with a base counts the task vector f32(x − base), at both levels, on every size', async () => {
    for (const n of SIZES) {
      const x = uniform(n, 300 + n), base = uniform(n, 400 + n, -0.5, 0.5);
      for (let i = 0; i < n; i += 7) x[i] = base[i]!;                 // δ = 0 exactly
      for (let i = 3; i < n; i += 11) x[i] = i % 2 ? Infinity : -Infinity;
      const delta = Float32Array.from(x, (v, i) => v - base[i]!);
      const got = new Uint32Array(LEVEL0_BINS), want = new Uint32Array(LEVEL0_BINS);
      await p.absHistogram(x, got, 0, 0, base);
      R.absHistogram(delta, want, 0, 0);
      sameInts(got, want, `level 0 with base, n = ${n}`);
      if (n === 0) continue;
      const prefix = absBits(delta[n - 1]!) >>> 15;
      const got1 = new Uint32Array(LEVEL1_BINS), want1 = new Uint32Array(LEVEL1_BINS);
      await p.absHistogram(x, got1, 1, prefix, base);
      R.absHistogram(delta, want1, 1, prefix);
      sameInts(got1, want1, `level 1 with base, n = ${n}`);
    }
  });

  test('absHistograms: several models and levels in one call equal one absHistogram each', async () => {
    for (const n of [1, 5, 1023, 100003]) {
      const models = [uniform(n, 600 + n), gridValues(n, 700 + n), uniform(n, 800 + n, -1e-3, 1e-3)];
      for (const base of [undefined, uniform(n, 900 + n, -0.25, 0.25)]) {
        const bin = absBits(base ? models[1]![0]! - base[0]! : models[1]![0]!) >>> 15;
        const requests = [
          { model: 0, hist: new Uint32Array(LEVEL0_BINS), level: 0 as const, prefix: 0 },
          { model: 2, hist: new Uint32Array(LEVEL0_BINS).fill(3), level: 0 as const, prefix: 0 },
          { model: 1, hist: new Uint32Array(LEVEL1_BINS), level: 1 as const, prefix: bin },
          { model: 1, hist: new Uint32Array(LEVEL1_BINS), level: 1 as const, prefix: NON_FINITE_BIN },
        ];
        const want = requests.map((r) => { const h = r.hist.slice(); R.absHistogram(models[r.model]!, h, r.level, r.prefix, base); return h; });
        await p.absHistograms(models, base, requests);
        requests.forEach((r, i) => sameInts(r.hist, want[i]!, `n = ${n}, ${base ? 'base' : 'no base'}, request ${i}`));
      }
    }
  });

  test('tiesMerge with subtractBase equals tiesMerge on the task vectors formed first; the counts equal the reference for every output', async () => {
    let combo = 0;
    for (const n of SIZES) for (const T of [1, 3, 5]) {
      combo++;
      const c = tiesCase(n, T, 500 + combo, true);
      // Fine-tuned x = δ + base (so x − base is δ up to rounding); the reference of record is the task vectors f32(x − base).
      const xs = c.models.map((d) => Float32Array.from(d, (v, i) => v + c.base![i]!));
      const deltas = xs.map((x) => Float32Array.from(x, (v, i) => v - c.base![i]!));
      for (const output of ['merged', 'sign', 'none'] as const) {
        const o: TiesMergeOptions = { vote: VOTES[combo % 3]!, merge: MERGES[combo % 4]!, output, zeroSign: combo % 2 ? 1 : -1, lambda: 0.75 };
        const what = `n = ${n}, T = ${T}, ${o.vote}/${o.merge}/${output}`;
        const want = new Float32Array(n).fill(7), wantBudget = c.tieBudget.slice();
        const wantCounts = R.tiesMerge(deltas, c.weights, c.thr, wantBudget, c.base, want, o);
        const out = new Float32Array(n).fill(7), budget = c.tieBudget.slice();
        const counts = await p.tiesMerge(xs, c.weights, c.thr, budget, c.base, out, { ...o, subtractBase: true });
        assert.equal(counts, wantCounts, `${what}: counts`);
        sameInts(budget, wantBudget, `${what}: final tie budgets`);
        if (output === 'none') sameInts(out, want, `${what}: nothing written`);
        else tiesClose(h.backend, out, want, o, what);
      }
    }
  });

  test('absHistogram level 1 over several consecutive level-0 bins equals one level-1 histogram per bin, side by side', async () => {
    for (const n of [1, 5, 1023, 100003]) {
      const x = uniform(n, 1100 + n, -2, 2);
      const first = absBits(x[0]!) >>> 15;
      for (const [prefix, span] of [[first, 1], [Math.max(0, first - 2), 5], [LEVEL0_BINS - 3, 3], [0, 2]] as const) {
        const got = new Uint32Array(span * LEVEL1_BINS);
        await p.absHistogram(x, got, 1, prefix);
        for (let b = 0; b < span; b++) {
          const want = new Uint32Array(LEVEL1_BINS);
          R.absHistogram(x, want, 1, prefix + b);
          sameInts(got.subarray(b * LEVEL1_BINS, (b + 1) * LEVEL1_BINS), want, `n = ${n}, bins ${prefix}+${b} of ${span}`);
        }
      }
    }
  });

  test('two histogram passes on this backend give the k-th largest magnitude of a sort (selectThreshold)', async () => {
    for (const [n, seed] of [[1, 1], [7, 2], [1023, 3], [100003, 4]] as const) {
      // Half grid values (many ties), half continuous, a few zeros and subnormals.
      const x = uniform(n, seed);
      const g = gridValues(n, seed + 1);
      for (let i = 0; i < n; i += 2) x[i] = g[i]!;
      for (let i = 5; i < n; i += 97) x[i] = fromBits(i);
      const sorted = Array.from(x, absBits).sort((a, b) => b - a);
      const h0 = new Uint32Array(LEVEL0_BINS);
      await p.absHistogram(x, h0, 0);
      for (const k of new Set([1, 2, Math.ceil(n / 5), Math.ceil(n / 2), n - 1, n].filter((k) => k >= 1 && k <= n))) {
        const { bin } = R.selectBin(h0, k);
        const h1 = new Uint32Array(LEVEL1_BINS);
        await p.absHistogram(x, h1, 1, bin);
        const sel = R.selectThreshold(h0, h1, k);
        const kth = sorted[k - 1]!;
        assert.is(sel.kthBits, kth, `n = ${n}, k = ${k}: k-th largest |x| bits`);
        assert.is(sel.above, sorted.filter((b) => b > kth).length, `n = ${n}, k = ${k}: entries above`);
        assert.is(sel.ties, sorted.filter((b) => b === kth).length, `n = ${n}, k = ${k}: ties`);
      }
    }
  });

  test('tiesMerge equals the reference for every vote × merge × output × zeroSign, T = 2..4, unit and other weights, with and without base', async () => {
    const n = 1023;
    // T and unit weights pick wasm loops; the WGSL kernel has one for all (and a submit per call).
    const gpu = h.backend === 'webgpu';
    for (const T of gpu ? [3] : [2, 3, 4]) for (const unit of gpu ? [false] : [false, true]) for (const withBase of [false, true]) {
      const c = tiesCase(n, T, T * 4 + (withBase ? 11 : 12), withBase);
      // Weights of exactly 1 take the wasm loops without a multiply (the TIES paper's case).
      if (unit) c.weights.fill(1);
      for (const vote of VOTES) for (const merge of MERGES) for (const output of OUTPUTS) for (const zeroSign of [1, -1] as const) {
        const o: TiesMergeOptions = { vote, merge, output, zeroSign, lambda: withBase ? 0.7 : 1 };
        const what = `T = ${T}, ${unit ? 'unit' : 'other'} weights, ${vote}/${merge}/${output}/zeroSign ${zeroSign}/${withBase ? 'base' : 'no base'}`;
        const want = refTies(c, o);
        const out = new Float32Array(n).fill(NaN);
        const budget = c.tieBudget.slice();
        await p.tiesMerge(c.models, c.weights, c.thr, budget, c.base, out, o);
        tiesClose(h.backend, out, want.out, o, what);
        sameInts(budget, want.budget, `${what}: final tie budgets`);
      }
    }
  });

  test('tiesMerge equals the reference on every size and model count (T = 1, 2, 3, 5, 8)', async () => {
    let combo = 0;
    for (const n of SIZES) for (const T of MODEL_COUNTS) {
      if (n === 100003 && T > 3) continue; // the big size once per small T keeps the suite quick
      combo++;
      const o: TiesMergeOptions = {
        vote: VOTES[combo % 3]!, merge: MERGES[combo % 4]!, output: combo % 5 === 0 ? 'sign' : 'merged',
        zeroSign: combo % 2 ? 1 : -1, lambda: combo % 3 ? 1 : 1.3,
      };
      const c = tiesCase(n, T, 1000 + combo, combo % 2 === 0);
      const want = refTies(c, o);
      const out = new Float32Array(n);
      const budget = c.tieBudget.slice();
      await p.tiesMerge(c.models, c.weights, c.thr, budget, c.base, out, o);
      const what = `n = ${n}, T = ${T}, ${o.vote}/${o.merge}/${o.output}`;
      tiesClose(h.backend, out, want.out, o, what);
      sameInts(budget, want.budget, `${what}: final tie budgets`);
    }
  });

  test('tiesMerge streamed in chunks equals one whole call, and the tie budget carries over', async () => {
    const n = 4099, T = 5;
    for (const o of [
      { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 0.5 },
      { vote: 'count', merge: 'normalize', output: 'merged', zeroSign: -1, lambda: 1 },
      { vote: 'sum', merge: 'sum', output: 'sign', zeroSign: 1, lambda: 1 },
    ] as TiesMergeOptions[]) {
      const c = tiesCase(n, T, 77, true, 0.3);
      const whole = new Float32Array(n);
      const wholeBudget = c.tieBudget.slice();
      await p.tiesMerge(c.models, c.weights, c.thr, wholeBudget, c.base, whole, o);
      const want = refTies(c, o);
      tiesClose(h.backend, whole, want.out, o, `whole, ${o.vote}/${o.merge}/${o.output}`);
      sameInts(wholeBudget, want.budget, 'whole: final tie budgets');
      assert.ok(want.budget.every((b) => b === 0), 'the case uses up every budget before the end');
      // Chunks of 1 and 3 are thousands of calls: on webgpu each is a submit and a readback (~10 ms on
      // software Vulkan), so that backend streams in 64 and up; js and wasm check every size.
      for (const size of h.backend === 'webgpu' ? [64, 1000, 4096] : [1, 3, 64, 1000, 4096]) {
        const out = new Float32Array(n);
        const budget = c.tieBudget.slice();
        for (let s = 0; s < n; s += size) {
          const e = Math.min(n, s + size);
          await p.tiesMerge(c.models.map((m) => m.subarray(s, e)), c.weights, c.thr, budget, c.base?.subarray(s, e), out.subarray(s, e), o);
        }
        sameBits(out, whole, `chunks of ${size} vs one call, ${o.vote}/${o.merge}/${o.output}`);
        sameInts(budget, wholeBudget, `chunks of ${size}: final tie budgets`);
      }
    }
  });

  test('tiesMerge: a tie budget that runs out inside a chunk keeps exactly the first ties', async () => {
    // One model, all entries ±0.5 (ties at thr), every 5th entry 0.75 (above): with budget 6 and
    // vote 'none', merge 'sum', lambda 1, out = kept values: the first 6 ties and every 0.75.
    const n = 37;
    const x = new Float32Array(n).map((_, i) => (i % 5 === 0 ? 0.75 : i % 2 ? -0.5 : 0.5));
    const out = new Float32Array(n);
    const budget = new Float64Array([6]);
    await p.tiesMerge([x], new Float32Array([1]), new Int32Array([absBits(0.5)]), budget, undefined, out,
      { vote: 'none', merge: 'sum', output: 'merged', zeroSign: 1, lambda: 1 });
    // Ties are at i = 1, 2, 3, 4, 6, 7, …: the first six end at i = 7.
    const want = Array.from(x, (v, i) => (i % 5 === 0 || i <= 7 ? v : 0));
    sameInts(out, want, 'kept entries');
    assert.is(budget[0], 0, 'budget used up');
  });

  test('tiesMerge: thr = -1 keeps zeros; negative zero is never an agreeing entry', async () => {
    // Two models; entry 0 is (-0, 1), entry 1 is (0.5, -0): vote sum elects +, merge 'mean' counts
    // non-zero agreeing entries only, so the means are 1 and 0.5.
    const out = new Float32Array(2);
    await p.tiesMerge([new Float32Array([-0, 0.5]), new Float32Array([1, -0])], new Float32Array([1, 1]), new Int32Array([-1, -1]),
      new Float64Array(2), undefined, out, { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 1 });
    sameInts(out, [1, 0.5], 'means');
  });

  test('tiesMerge counts votes and undecided entries, worked by hand, for every output and chunking', async () => {
    // Three models, thr = -1 (keep all), weights 1, entries repeating every 4 (each meets every lane):
    //   (1, -1, 0)    total 0: values agree with either zero sign → undecided
    //   (0, 0, 0)     total 0, nothing agrees whatever the sign → not undecided
    //   (2, -1, 0.5)  total 1.5 → vote +1
    //   (-3, 1, 0.5)  total -1.5 → vote -1
    // so 64 entries give votes 16 - 16 = 0 and 16 undecided, under either zero sign. The merged
    // means: 1 or -1 (the zero sign's agreeing value), 0, (2 + 0.5)/2 = 1.25, -3.
    const n = 64;
    const rows = [[1, -1, 0], [0, 0, 0], [2, -1, 0.5], [-3, 1, 0.5]];
    const models = [0, 1, 2].map((t) => Float32Array.from({ length: n }, (_, i) => rows[i % 4]![t]!));
    for (const zeroSign of [1, -1] as const) for (const output of ['merged', 'sign', 'none'] as const) {
      const o: TiesMergeOptions = { vote: 'sum', merge: 'mean', output, zeroSign, lambda: 1 };
      // (A submit or three per chunk on webgpu: no chunks of 1 there.)
      for (const size of h.backend === 'webgpu' ? [16, 64] : [1, 3, 64]) {
        const out = new Float32Array(n).fill(7);
        let votes = 0, undecided = 0;
        for (let s = 0; s < n; s += size) {
          const e = Math.min(n, s + size);
          const c = await p.tiesMerge(models.map((m) => m.subarray(s, e)), new Float32Array(3).fill(1), new Int32Array(3).fill(-1), new Float64Array(3), undefined, out.subarray(s, e), o);
          votes += c.votes;
          undecided += c.undecided;
        }
        const what = `zeroSign ${zeroSign}, ${output}, chunks of ${size}`;
        assert.equal({ votes, undecided }, { votes: 0, undecided: 16 }, `${what}: counts`);
        const want = output === 'merged' ? [zeroSign, 0, 1.25, -3] : output === 'sign' ? [zeroSign, zeroSign, 1, -1] : [7, 7, 7, 7];
        sameInts(out, Array.from({ length: n }, (_, i) => want[i % 4]!), `${what}: output`);
      }
      // Without a vote, or with counts: false, nothing is counted.
      const none = await p.tiesMerge(models, new Float32Array(3).fill(1), new Int32Array(3).fill(-1), new Float64Array(3), undefined, new Float32Array(n), { ...o, vote: 'none' });
      assert.equal(none, { votes: 0, undecided: 0 }, 'vote none');
      const off = await p.tiesMerge(models, new Float32Array(3).fill(1), new Int32Array(3).fill(-1), new Float64Array(3), undefined, new Float32Array(n), { ...o, counts: false });
      assert.equal(off, { votes: 0, undecided: 0 }, 'counts: false');
    }
  });

  test('tiesMerge: signed zeros, cancellations, underflow and negative weights equal the reference bit for bit', async () => {
    // Five entry patterns, repeated (so each meets every SIMD lane): a cancellation (0.5, -0.5, 0:
    // total exactly 0, agreeing entries under either zero sign), values dropped by the trim
    // (nothing agrees: merged +0 even with a base of -0), a lone tiny value (a mean that must not
    // underflow to -0), a single negative entry, and -0 everywhere (kept where thr = -1).
    const n = 67;
    // The smallest subnormal, except on WebGPU, where a device may flush subnormals (SwiftShader
    // does; see kernels/ties-merge.wgsl): there the smallest normal, for the same pattern.
    const gpu = h.backend === 'webgpu';
    const tiny = fromBits(gpu ? 0x00800000 : 1);
    const rows = [[0.5, -0.5, 0, 0.01], [0.01, -0.01, 0.02, 0], [-tiny, -tiny, -tiny, 0.01], [-0.5, 0.01, 0.01, 0.01], [-0, -0, -0, -0]];
    const models = [0, 1, 2, 3].map((t) => Float32Array.from({ length: n }, (_, i) => rows[i % 5]![t]!));
    const base = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : 1.5));
    // On WebGPU (a submit per call) the options that pick wasm loops (T, unit weights, base and λ) less exhaustively.
    for (const T of gpu ? [3] : [2, 3, 4]) for (const weights of [[1, 1, 1, 1], [1.5, -0.5, 2, 0.25], [-1, -1, -1, -1]]) for (const keepAll of [false, true]) {
      const ms = models.slice(0, T);
      // Models 0 and 1 keep |δ| > 0.25 (or everything), the others everything, zeros included.
      const thr = Int32Array.from({ length: T }, (_, t) => (t < 2 && !keepAll ? absBits(0.25) : -1));
      for (const vote of VOTES) for (const merge of MERGES) for (const output of ['merged', 'sign', 'none'] as const)
        for (const zeroSign of [1, -1] as const) for (const lambda of gpu ? [-1] : [1, 0.5, -1]) for (const io of gpu ? ['base'] as const : ['no base', 'base', 'subtractBase'] as const) {
          // subtractBase: fine-tuned x = δ + base (the reference forms δ = f32(x − base) the same way).
          const b = io === 'no base' ? undefined : base;
          const inputs = io === 'subtractBase' ? ms.map((m) => Float32Array.from(m, (v, i) => v + base[i]!)) : ms;
          const o: TiesMergeOptions = { vote, merge, output, zeroSign, lambda, subtractBase: io === 'subtractBase' };
          const w = Float32Array.from(weights.slice(0, T));
          const want = new Float32Array(n).fill(7), got = new Float32Array(n).fill(7);
          const wantCounts = R.tiesMerge(inputs.map((m) => m.slice()), w, thr, new Float64Array(T), b, want, o);
          const counts = await p.tiesMerge(inputs, w, thr, new Float64Array(T), b, got, o);
          const what = `T = ${T}, weights ${weights.slice(0, T)}, thr ${keepAll ? '-1' : '0.25'}, ${vote}/${merge}/${output}, zeroSign ${zeroSign}, λ ${lambda}, ${io}`;
          assert.equal(counts, wantCounts, `${what}: counts`);
          if (output === 'none') sameInts(got, want, `${what}: nothing written`);
          else tiesClose(h.backend, got, want, o, what);
        }
    }
  });

  test('dropAndRescale masks equal the definition bit for bit at offsets 0, 12345 and across 2^32 and 2^33', async () => {
    const key = R.streamKey(42, 'model.layers.0.mlp.down_proj.weight');
    for (const n of [0, 1, 3, 5, 7, 65, 1023, 100003]) {
      // Magnitudes in [0.5, 1.5): never zero, so a zero output means "dropped".
      const x = uniform(n, 300 + n, 0.5, 1.5).map((v, i) => (i % 3 ? v : -v));
      for (const offset of [0, 12345, 2 ** 32 - 3, 2 ** 33 - 2, 2 ** 53 - 1 - n]) {
        for (const prob of [0, 1, 0.3]) {
          const scale = prob === 0 ? 1 : 1 / prob;
          const out = new Float32Array(n).fill(NaN);
          const [sumAbs, sumKept] = await p.dropAndRescale(x, offset, key, prob, scale, out);
          const ref = new Float32Array(n);
          const [refAbs, refKept] = R.dropAndRescale(x, offset, key, prob, scale, ref);
          const what = `n = ${n}, offset ${offset}, p = ${prob}`;
          const mask = dareMask(n, offset, key, prob);
          for (let i = 0; i < n; i++) {
            if ((out[i] !== 0) !== mask[i]) assert.unreachable(`${what}: mask differs at ${i} (flat index ${offset + i}): got ${out[i]}`);
          }
          allClose(out, ref, { rtol: 1e-7 }, `${what}: rescaled values`);
          closeRel(sumAbs, refAbs, 1e-9, `${what}: Σ|x|`);
          closeRel(sumKept, refKept, 1e-9, `${what}: Σ|kept x|`);
          if (prob === 1) assert.ok(mask.every(Boolean), 'p = 1 keeps every entry');
          if (prob === 0) assert.ok(!mask.some(Boolean), 'p = 0 drops every entry');
        }
      }
    }
  });

  test('dropAndRescale in chunks that straddle 2^32 equals one call', async () => {
    const n = 1029, base = 2 ** 32 - 500, key = 0xdeadbeef;
    const x = uniform(n, 9, 0.5, 1.5);
    const whole = new Float32Array(n);
    const [wa, wk] = await p.dropAndRescale(x, base, key, 0.3, 1, whole);
    for (const size of [4, 7, 500, 501]) {
      const out = new Float32Array(n);
      let sa = 0, sk = 0;
      for (let s = 0; s < n; s += size) {
        const e = Math.min(n, s + size);
        const [a, k] = await p.dropAndRescale(x.subarray(s, e), base + s, key, 0.3, 1, out.subarray(s, e));
        sa += a; sk += k;
      }
      sameBits(out, whole, `chunks of ${size}`);
      closeRel(sa, wa, 1e-9, `chunks of ${size}: Σ|x|`);
      closeRel(sk, wk, 1e-9, `chunks of ${size}: Σ|kept x|`);
    }
  });

  test('findNonFinite finds the first NaN or ±Inf anywhere, ignores huge finite values and subnormals', async () => {
    for (const n of [0, 1, 3, 4, 5, 7, 17, 64, 65, 1023, 100003]) {
      const x = uniform(n, 400 + n);
      if (n > 2) { x[1] = 3.4028234663852886e38; x[2] = fromBits(0x80000001); }
      assert.is(await p.findNonFinite(x), -1, `n = ${n}: all finite`);
      for (const at of new Set([0, 3, 4, 5, Math.floor(n / 2), n - 4, n - 1].filter((i) => i >= 0 && i < n))) {
        for (const bad of [NaN, Infinity, -Infinity, fromBits(0xffffffff)]) {
          const y = x.slice();
          y[at] = bad;
          if (at + 1 < n) y[n - 1] = NaN; // a later one must not win
          assert.is(await p.findNonFinite(y), at, `n = ${n}: ${bad} at ${at}`);
        }
      }
    }
  });

  test('bad input is rejected with the argument named', async () => {
    const x = new Float32Array(4), out = new Float32Array(4);
    const o: TiesMergeOptions = { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 1 };
    const ties = (patch: Partial<{ models: Float32Array[]; weights: Float32Array; thr: Int32Array; tieBudget: Float64Array; base: Float32Array; out: Float32Array; o: unknown }>) =>
      p.tiesMerge(patch.models ?? [x, x], patch.weights ?? new Float32Array(2), patch.thr ?? new Int32Array(2), patch.tieBudget ?? new Float64Array(2),
        patch.base, patch.out ?? out, ('o' in patch ? patch.o : o) as TiesMergeOptions);

    await rejects(() => p.absHistogram([1, 2] as unknown as Float32Array, new Uint32Array(LEVEL0_BINS), 0), 'INVALID_TYPE', ['x']);
    await rejects(() => p.absHistogram(x, new Uint32Array(LEVEL1_BINS), 0), 'INVALID_TYPE', ['hist', '65536']);
    await rejects(() => p.absHistogram(x, new Uint32Array(LEVEL1_BINS + 1), 1, 3), 'INVALID_TYPE', ['hist', '32768']);
    await rejects(() => p.absHistogram(x, new Uint32Array(2 * LEVEL1_BINS), 1, 65535), 'INVALID_OPTION', ['prefix', '65534']);
    await rejects(() => p.absHistogram(x, new Uint32Array(LEVEL0_BINS), 2 as 0), 'INVALID_OPTION', ['level']);
    await rejects(() => p.absHistogram(x, new Uint32Array(LEVEL1_BINS), 1, 65536), 'INVALID_OPTION', ['prefix']);
    await rejects(() => p.absHistogram(x, new Uint32Array(LEVEL0_BINS), 0, 0, new Float32Array(3)), 'SHAPE_MISMATCH', ['base']);
    await rejects(() => p.absHistograms([x, new Float32Array(3)], undefined, []), 'SHAPE_MISMATCH', ['models[1]']);
    await rejects(() => p.absHistograms([x], undefined, [{ model: 1, hist: new Uint32Array(LEVEL0_BINS), level: 0, prefix: 0 }]), 'INVALID_OPTION', ['requests[0].model']);
    await rejects(() => p.absHistograms([x], undefined, [{ model: 0, hist: new Uint32Array(LEVEL1_BINS + 5), level: 1, prefix: 0 }]), 'INVALID_TYPE', ['requests[0].hist', '32768']);
    await rejects(() => p.absHistogram(x, new Uint32Array(LEVEL1_BINS), 1, 1.5), 'INVALID_OPTION', ['prefix']);

    await rejects(() => ties({ models: [] }), 'INVALID_TYPE', ['models']);
    await rejects(() => ties({ models: [x, new Float32Array(5)] }), 'SHAPE_MISMATCH', ['models[1]', '4']);
    await rejects(() => ties({ weights: new Float32Array(3) }), 'SHAPE_MISMATCH', ['weights']);
    await rejects(() => ties({ weights: new Float32Array([1, NaN]) }), 'NON_FINITE', ['weights']);
    await rejects(() => ties({ thr: new Int32Array(1) }), 'INVALID_TYPE', ['thr']);
    await rejects(() => ties({ thr: new Int32Array([0, -2]) }), 'INVALID_OPTION', ['thr[1]']);
    await rejects(() => ties({ tieBudget: new Float64Array([1.5, 0]) }), 'INVALID_OPTION', ['tieBudget[0]']);
    await rejects(() => ties({ tieBudget: new Float64Array([0, -1]) }), 'INVALID_OPTION', ['tieBudget[1]']);
    await rejects(() => ties({ tieBudget: new Float64Array(1) }), 'INVALID_TYPE', ['tieBudget']);
    await rejects(() => ties({ base: new Float32Array(3) }), 'SHAPE_MISMATCH', ['base']);
    await rejects(() => ties({ o: { ...o, vote: 'avg' } }), 'INVALID_OPTION', ['vote', "'sum'"]);
    await rejects(() => ties({ o: { ...o, merge: 'median' } }), 'INVALID_OPTION', ['merge', "'normalize'"]);
    await rejects(() => ties({ o: { ...o, output: 'both' } }), 'INVALID_OPTION', ['output']);
    await rejects(() => ties({ o: { ...o, zeroSign: 0 } }), 'INVALID_OPTION', ['zeroSign']);
    await rejects(() => ties({ o: { ...o, lambda: NaN } }), 'INVALID_OPTION', ['lambda']);
    await rejects(() => ties({ o: { ...o, counts: 1 } }), 'INVALID_OPTION', ['counts']);
    await rejects(() => ties({ o: null }), 'INVALID_OPTION', ['options']);

    await rejects(() => p.dropAndRescale(x, 0, 1, 0.5, 2, new Float32Array(3)), 'SHAPE_MISMATCH', ['out']);
    await rejects(() => p.dropAndRescale(x, -1, 1, 0.5, 2, out), 'INVALID_OPTION', ['offset']);
    await rejects(() => p.dropAndRescale(x, 2 ** 53 - 2, 1, 0.5, 2, out), 'INVALID_OPTION', ['offset']);
    await rejects(() => p.dropAndRescale(x, 0, 2 ** 32, 0.5, 2, out), 'INVALID_OPTION', ['key']);
    await rejects(() => p.dropAndRescale(x, 0, 1, 1.5, 2, out), 'INVALID_OPTION', ['p']);
    await rejects(() => p.dropAndRescale(x, 0, 1, NaN, 2, out), 'INVALID_OPTION', ['p']);
    await rejects(() => p.dropAndRescale(x, 0, 1, 0.5, Infinity, out), 'INVALID_OPTION', ['scale']);

    await rejects(() => p.findNonFinite(new Float64Array(3) as unknown as Float32Array), 'INVALID_TYPE', ['x']);
  });

  test.run();
}

/** The reference itself, checked by hand: run once. */
export function mergePrimitivesReference(h: Harness) {
  const test = suite(`mergePrimitives reference [${h.backend}]`);

  test("fmix32 matches murmur3's published values; absBits orders magnitudes", () => {
    // MurmurHash3_x86_32 of the empty input with seed s is fmix32(s ^ 0) (no blocks, no tail,
    // h ^= len = 0), and SMHasher's verification values give "" / seed 1 → 0x514E28B7 and
    // "" / seed 0xffffffff → 0x81F16F39, "" / seed 0 → 0.
    assert.is(R.fmix32(1), 0x514e28b7);
    assert.is(R.fmix32(0xffffffff), 0x81f16f39);
    assert.is(R.fmix32(0), 0);
    // 1.0 = 0x3f800000, -2.0 = 0xc0000000 → |.| = 0x40000000, -0 → 0, smallest subnormal → 1.
    assert.is(absBits(1), 0x3f800000);
    assert.is(absBits(-2), 0x40000000);
    assert.is(absBits(-0), 0);
    assert.is(absBits(1.401298464324817e-45), 1);
    assert.is(fromBits(0x3fc00000), 1.5);
  });

  test('uniform24 splits a 53-bit index into 32-bit halves', () => {
    // i = 2^32 + 1, key 1: lo = 1, hi = 1, fmix32(lo ^ key) = fmix32(0) = 0, so the draw is
    // fmix32(0 + 1 + 0x9e3779b9) >>> 8 = fmix32(0x9e3779ba) >>> 8; i = 1, key 1: fmix32(0x9e3779b9) >>> 8.
    assert.is(R.uniform24(1, 2 ** 32 + 1), R.fmix32(0x9e3779ba) >>> 8);
    assert.is(R.uniform24(1, 1), R.fmix32(0x9e3779b9) >>> 8);
    assert.ok(R.uniform24(7, 2 ** 32) !== R.uniform24(7, 0), 'the high half enters the draw');
  });

  test('dropAndRescale: p = 1 keeps all with rescale, p = 0 drops all; sums before scaling', () => {
    const x = new Float32Array([1, -2, 0.5]);
    const out = new Float32Array(3);
    // Σ|x| = 1 + 2 + 0.5 = 3.5; everything kept, out = 2x.
    assert.equal(R.dropAndRescale(x, 0, 5, 1, 2, out), [3.5, 3.5]);
    assert.equal(Array.from(out), [2, -4, 1]);
    assert.equal(R.dropAndRescale(x, 0, 5, 0, 2, out), [3.5, 0]);
    assert.equal(Array.from(out), [0, 0, 0]);
  });

  test('tiesMerge on 3 models × 4 entries, worked by hand', () => {
    const d0 = new Float32Array([0.5, -1.0, 0.25, 2.0]);
    const d1 = new Float32Array([-0.75, -0.5, 0.5, -1.0]);
    const d2 = new Float32Array([1.0, 0.25, -0.25, -0.5]);
    const models = [d0, d1, d2];
    // Trim: model 0 keeps |δ| > 0.5 → entries 1, 3. Model 1 keeps |δ| > 0.5 (entries 0, 3) and one
    // tie at 0.5 (entries 1 and 2 tie; the budget of 1 goes to the lowest index, 1). Model 2 keeps
    // |δ| > 0.25 → entries 0, 3.
    const thr = new Int32Array([absBits(0.5), absBits(0.5), absBits(0.25)]);
    const weights = new Float32Array([1, 0.5, 2]);
    // D = w·kept:  D0 = [0, -1, 0, 2]   D1 = [-0.375, -0.25, 0, -0.5]   D2 = [2, 0, 0, -1]
    const run = (o: Partial<TiesMergeOptions>, base?: Float32Array) => {
      const out = new Float32Array(4);
      const budget = new Float64Array([0, 1, 0]);
      R.tiesMerge(models, weights, thr, budget, base, out, { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 1, ...o });
      assert.equal(Array.from(budget), [0, 0, 0], 'the one tie consumed');
      return Array.from(out);
    };
    // Vote 'sum': e0 0 - 0.375 + 2 = 1.625 → +; e1 -1 - 0.25 + 0 = -1.25 → -; e2 0 → zeroSign;
    // e3 2 - 0.5 - 1 = 0.5 → +.
    assert.equal(run({ output: 'sign' }), [1, -1, 1, 1]);
    assert.equal(run({ output: 'sign', zeroSign: -1 }), [1, -1, -1, 1]);
    // Agreeing (zeros never agree): e0 {D2 = 2}; e1 {D0 = -1, D1 = -0.25}; e2 {}; e3 {D0 = 2}.
    // 'sum': 2, -1.25, 0, 2.   'mean' (÷ count): 2/1, -1.25/2 = -0.625, 0/max(1, 0) = 0, 2/1.
    assert.equal(run({ merge: 'sum' }), [2, -1.25, 0, 2]);
    assert.equal(run({ merge: 'mean' }), [2, -0.625, 0, 2]);
    // 'normalize' (÷ Σ agreeing w): 2/2 = 1, -1.25/(1 + 0.5) = -5/6 (in float32), 0/(0 → 1) = 0, 2/1 = 2.
    assert.equal(run({ merge: 'normalize' }), [1, Math.fround(-1.25 / 1.5), 0, 2]);
    // 'max' (largest |D| among agreeing): 2, -1, 0, 2.
    assert.equal(run({ merge: 'max' }), [2, -1, 0, 2]);
    // Vote 'count': e0 0 - 1 + 1 = 0 → zeroSign; e1 -1 - 1 = -2 → -; e2 0 → zeroSign; e3 1 - 1 - 1 = -1 → -.
    // Agreeing with zeroSign +1: e0 {D2 = 2}, e1 {-1, -0.25}, e3 {D1 = -0.5, D2 = -1}: means 2, -0.625, 0, -0.75.
    assert.equal(run({ vote: 'count' }), [2, -0.625, 0, -0.75]);
    // zeroSign -1: e0 agreeing {D1 = -0.375} → -0.375.
    assert.equal(run({ vote: 'count', zeroSign: -1 }), [-0.375, -0.625, 0, -0.75]);
    // Vote 'none': every kept entry. 'sum': 1.625, -1.25, 0, 0.5; 'normalize' ÷ Σw = 3.5:
    // 1.625/3.5, -1.25/3.5, 0, 0.5/3.5; 'mean' ÷ non-zero count: 1.625/2, -1.25/2, 0, 0.5/3.
    assert.equal(run({ vote: 'none', merge: 'sum' }), [1.625, -1.25, 0, 0.5]);
    assert.equal(run({ vote: 'none', merge: 'normalize' }), [Math.fround(1.625 / 3.5), Math.fround(-1.25 / 3.5), 0, Math.fround(0.5 / 3.5)]);
    assert.equal(run({ vote: 'none', merge: 'mean' }), [0.8125, -0.625, 0, Math.fround(0.5 / 3)]);
    // base + λ·mix with base [10, 20, 30, 40], λ = 0.5, 'mean': 10 + 1, 20 - 0.3125, 30, 40 + 1.
    assert.equal(run({ lambda: 0.5 }, new Float32Array([10, 20, 30, 40])), [11, 19.6875, 30, 41]);
  });

  test('tiesMerge returns the counts for every output; subtractBase forms δ = x − base; output none writes nothing', () => {
    const d = [[0.5, -1.0, 0.25, 2.0], [-0.75, -0.5, 0.5, -1.0], [1.0, 0.25, -0.25, -0.5]];
    const base = [10, 20, 30, 40];
    const thr = new Int32Array([absBits(0.5), absBits(0.5), absBits(0.25)]);
    const weights = new Float32Array([1, 0.5, 2]);
    const run = (models: number[][], o: Partial<TiesMergeOptions>, out = new Float32Array(4)) => {
      const counts = R.tiesMerge(models.map((m) => new Float32Array(m)), weights, thr, new Float64Array([0, 1, 0]), new Float32Array(base), out,
        { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 0.5, ...o });
      return { ...counts, out: Array.from(out) };
    };
    // The same D as the hand-worked case above: D0 = [0, -1, 0, 2], D1 = [-0.375, -0.25, 0, -0.5],
    // D2 = [2, 0, 0, -1]. Vote 'sum' totals 1.625, -1.25, 0, 0.5: two > 0, one < 0 → votes 1; the
    // zero total (entry 2) has every D 0, so nothing is undecided. Vote 'count' totals 0, -2, 0, -1
    // → votes -2; entry 0 (signs 0, -1, +1) is undecided under either zero sign (D2 = 2 agrees
    // with +1, D1 = -0.375 with -1), entry 2 is not. Vote 'none' counts nothing.
    for (const output of ['merged', 'sign', 'none'] as const) {
      assert.equal({ ...run(d, { output }), out: [] }, { votes: 1, undecided: 0, out: [] }, `sum, ${output}`);
      for (const zeroSign of [1, -1] as const) {
        assert.equal({ ...run(d, { vote: 'count', output, zeroSign }), out: [] }, { votes: -2, undecided: 1, out: [] }, `count, ${output}, ${zeroSign}`);
      }
      assert.equal({ ...run(d, { vote: 'none', output }), out: [] }, { votes: 0, undecided: 0, out: [] }, `none, ${output}`);
      assert.equal({ ...run(d, { vote: 'count', output, counts: false }), out: [] }, { votes: 0, undecided: 0, out: [] }, `counts: false, ${output}`);
    }
    // x = δ + base exactly (10.5, 19, 30.25, 42, ...): subtractBase gives back δ, so the merged
    // values are the hand-worked ones: base + 0.5·mean = 11, 19.6875, 30, 41.
    const x = d.map((row) => row.map((v, i) => v + base[i]!));
    assert.equal(run(x, { subtractBase: true }), { votes: 1, undecided: 0, out: [11, 19.6875, 30, 41] });
    // Without subtractBase the same x are task vectors themselves: every |x| ≥ 10 is kept, all positive.
    assert.is(run(x, { output: 'none' }).votes, 4);
    // Output 'none': the counts only, out untouched.
    assert.equal(run(d, { output: 'none' }, new Float32Array([7, 7, 7, 7])), { votes: 1, undecided: 0, out: [7, 7, 7, 7] });
  });

  test('tiesMerge: undecided entries are those whose merged value may change with the zero sign', () => {
    // Two models, keep all, weights 1: (1, -1) total 0 → undecided; (0, 0) nothing agrees under
    // either sign → not; (2, -1) and (-3, 1) are decided; (Inf, -Inf) total NaN with values of both
    // signs → undecided; (NaN, -1) total NaN: with zero sign +1 nothing agrees (NaN never does), so
    // not undecided, although under -1 the value would be -1 (the NaN exception of TiesMergeCounts).
    const m0 = new Float32Array([1, 0, 2, -3, Infinity, NaN]);
    const m1 = new Float32Array([-1, 0, -1, 1, -Infinity, -1]);
    const merged = (zeroSign: 1 | -1) => {
      const out = new Float32Array(6);
      const counts = R.tiesMerge([m0, m1], new Float32Array([1, 1]), new Int32Array([-1, -1]), new Float64Array(2), undefined, out,
        { vote: 'sum', merge: 'mean', output: 'merged', zeroSign, lambda: 1 });
      return { ...counts, out: Array.from(out) };
    };
    // Means of the agreeing values: +1 → 1, 0, 2, -3, Inf, 0;  -1 → -1, 0, 2, -3, -Inf, -1.
    assert.equal(merged(1), { votes: 0, undecided: 2, out: [1, 0, 2, -3, Infinity, 0] });
    assert.equal(merged(-1), { votes: 0, undecided: 3, out: [-1, 0, 2, -3, -Infinity, -1] });
  });

  test("tiesMerge: the paper's convention thr = kthBits - 1 keeps every entry tied with the k-th", () => {
    // |δ| = [3, 1, 2, 2, 1]; k = 2 → k-th largest magnitude 2 (tied at entries 2, 3): keep 3, 2, 2.
    const d = new Float32Array([3, -1, 2, -2, 1]);
    const out = new Float32Array(5);
    R.tiesMerge([d], new Float32Array([1]), new Int32Array([absBits(2) - 1]), new Float64Array(1), undefined, out,
      { vote: 'none', merge: 'sum', output: 'merged', zeroSign: 1, lambda: 1 });
    assert.equal(Array.from(out), [3, 0, 2, -2, 0]);
  });

  test.run();
}
