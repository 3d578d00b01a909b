// The model-merging primitives at the sizes where a GPU implementation splits its work: around
// the 256-entry workgroup and the 4096-entry tie-count tile, a tie budget that runs out at every
// position around those boundaries or beyond the 256th tile, and chunks larger than a 128 MiB
// storage binding (split into blocks). Runs on every backend; the 128 MiB case on webgpu only.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { init, reference, type TiesMergeOptions } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, rng, skip } from '../util.ts';

const R = reference.mergePrimitives;

// Around the workgroup (256) and the tie tile (4096 = 16 workgroups' worth).
const SIZES = [255, 256, 257, 4095, 4096, 4097, 8191, 12289];

/** Values in (-1, 1) on a grid of 1/16: many exact ties in magnitude. */
function gridValues(n: number, seed: number): Float32Array {
  const next = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.round((next() * 2 - 1) * 16) / 16;
  return x;
}

function firstDifference(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) assert.unreachable(`${what}: first difference at ${i}: got ${got[i]}, expected ${want[i]}`);
  }
}

const KEEP_ALL: TiesMergeOptions = { vote: 'none', merge: 'sum', output: 'merged', zeroSign: 1, lambda: 1 };

export default function (h: Harness) {
  const test = suite(`mergePrimitives at GPU block sizes [${h.backend}]`);
  const p = h.mk.primitives;

  test('histogram, findNonFinite and dropAndRescale equal the reference around workgroup and tile sizes', async () => {
    for (const n of SIZES) {
      const x = gridValues(n, n);
      for (let i = 0; i < n; i += 7) x[i] = Math.fround(x[i]! * 1e-3 + 1e-7);
      const h0 = new Uint32Array(R.LEVEL0_BINS), w0 = new Uint32Array(R.LEVEL0_BINS);
      await p.absHistogram(x, h0, 0);
      R.absHistogram(x, w0, 0, 0);
      firstDifference(h0, w0, `level 0, n = ${n}`);
      const prefix = R.absBits(x[n - 1]!) >>> 15;
      const h1 = new Uint32Array(R.LEVEL1_BINS), w1 = new Uint32Array(R.LEVEL1_BINS);
      await p.absHistogram(x, h1, 1, prefix);
      R.absHistogram(x, w1, 1, prefix);
      firstDifference(h1, w1, `level 1, n = ${n}`);

      for (const at of [n - 1, 256, 4096].filter((i) => i < n)) {
        const y = x.slice();
        y[at] = -Infinity;
        assert.is(await p.findNonFinite(y), at, `n = ${n}: -Infinity at ${at}`);
      }

      // The flat index crosses 2^32 inside a workgroup (not at its start).
      const offset = 2 ** 32 - 200, key = 0x9e3779b9;
      const out = new Float32Array(n), want = new Float32Array(n);
      const nonZero = x.map((v) => v + 2); // never 0, so a zero output means "dropped"
      const [sa, sk] = await p.dropAndRescale(nonZero, offset, key, 0.4, 2.5, out);
      const [wa, wk] = R.dropAndRescale(nonZero, offset, key, 0.4, 2.5, want);
      for (let i = 0; i < n; i++) {
        if ((out[i] !== 0) !== (R.uniform24(key, offset + i) < Math.fround(0.4) * 16777216)) assert.unreachable(`n = ${n}: mask differs at ${i}`);
      }
      allClose(out, want, { rtol: 1e-7 }, `n = ${n}: rescaled values`);
      assert.ok(Math.abs(sa - wa) <= 1e-9 * wa && Math.abs(sk - wk) <= 1e-9 * wk, `n = ${n}: sums ${sa}, ${sk} vs ${wa}, ${wk}`);
    }
  });

  test('a tie budget that runs out at every position around workgroup and tile boundaries', async () => {
    // Every entry ties with the threshold (|v| = 0.5), so tie rank = index: with vote 'none',
    // merge 'sum', weight 1 and lambda 1, out[i] = v[i] for i < budget, else 0, and the budget left
    // is max(0, budget - n).
    const n = 3 * 4096 + 5;
    const x = new Float32Array(n).map((_, i) => (i % 3 ? 0.5 : -0.5));
    for (const b of [1, 255, 256, 257, 4095, 4096, 4097, 8192, n - 1, n, n + 1, 2 ** 40]) {
      const out = new Float32Array(n).fill(NaN);
      const budget = new Float64Array([b]);
      await p.tiesMerge([x], new Float32Array([1]), new Int32Array([R.absBits(0.5)]), budget, undefined, out, KEEP_ALL);
      firstDifference(out, Array.from(x, (v, i) => (i < b ? v : 0)), `budget ${b}`);
      assert.is(budget[0], Math.max(0, b - n), `budget ${b}: left`);
    }
  });

  test('tiesMerge equals the reference around workgroup and tile sizes, budgets ending mid-tile', async () => {
    const o: TiesMergeOptions = { vote: 'count', merge: 'mean', output: 'merged', zeroSign: -1, lambda: 0.75 };
    for (const n of SIZES) {
      const models = [gridValues(n, 10 * n), gridValues(n, 10 * n + 1), gridValues(n, 10 * n + 2)];
      const thr = new Int32Array([R.absBits(0.25), R.absBits(0.5), -1]);
      // About n/32 ties per model: the budgets end part-way, in different tiles.
      const tieBudget = new Float64Array([Math.floor(n / 50), Math.floor(n / 40) + 1, 3]);
      const base = gridValues(n, 7);
      const weights = new Float32Array([0.5, 1.25, 0.75]);
      const want = new Float32Array(n), wantBudget = tieBudget.slice();
      R.tiesMerge(models, weights, thr, wantBudget, base, want, o);
      const out = new Float32Array(n), budget = tieBudget.slice();
      await p.tiesMerge(models, weights, thr, budget, base, out, o);
      allClose(out, want, { rtol: 1e-6, atol: 2e-6 }, `n = ${n}`);
      firstDifference(budget, wantBudget, `n = ${n}: budgets left`);
    }
  });

  test('tiesMerge: a tie budget that runs out beyond the 256th tile of 4096 entries', async () => {
    // 300 tiles; ties (|v| = 0.5) at every 3rd entry, about 1365 per tile, so budget 1366·270 + 17
    // ends around tile 270 for model 0; model 1 keeps all of its ties (budget larger than its count).
    const n = 300 * 4096 + 11;
    const models = [gridValues(n, 1), gridValues(n, 2)];
    for (let i = 0; i < n; i++) {
      if (Math.abs(models[0]![i]!) === 0.5) models[0]![i] = 0.4375;
      if (i % 3 === 0) models[0]![i] = i % 2 ? 0.5 : -0.5;
    }
    const thr = new Int32Array([R.absBits(0.5), R.absBits(0.5)]);
    const tieBudget = new Float64Array([1366 * 270 + 17, n]);
    const weights = new Float32Array([1, 1]);
    const o: TiesMergeOptions = { vote: 'sum', merge: 'sum', output: 'merged', zeroSign: 1, lambda: 1 };
    const want = new Float32Array(n), wantBudget = tieBudget.slice();
    R.tiesMerge(models, weights, thr, wantBudget, undefined, want, o);
    assert.is(wantBudget[0], 0, 'model 0 uses up its budget');
    assert.ok(wantBudget[1]! > 0, 'model 1 keeps every tie');
    const out = new Float32Array(n), budget = tieBudget.slice();
    await p.tiesMerge(models, weights, thr, budget, undefined, out, o);
    allClose(out, want, { rtol: 1e-6, atol: 2e-6 }, 'merged values');
    firstDifference(budget, wantBudget, 'budgets left');
  });

  test('chunks larger than a 128 MiB storage binding are split into blocks', async () => {
    if (h.backend !== 'webgpu') return skip(h.print, 'chunks over a 128 MiB binding', `exercises WebGPU block splitting; this pass tests the ${h.backend} backend`);
    // A device with the default limits: 128 MiB per storage binding, whatever the adapter offers.
    const adapter = await h.gpu!.requestAdapter();
    const device = await adapter!.requestDevice();
    const mk = await init({ backend: 'webgpu', device });
    try {
      assert.is(mk.gpuLimits!.maxStorageBufferBindingSize, 128 * 1024 * 1024, 'default binding limit');
      const n = 2 ** 25 + 4099; // 128 MiB + 16 KiB of float32
      const x = gridValues(n, 5);
      for (let i = 0; i < n; i += 1001) x[i] = Math.fround(x[i]! * 1e-5);

      const hist = new Uint32Array(R.LEVEL0_BINS), want = new Uint32Array(R.LEVEL0_BINS);
      await mk.primitives.absHistogram(x, hist, 0);
      R.absHistogram(x, want, 0, 0);
      firstDifference(hist, want, 'level-0 histogram');

      assert.is(await mk.primitives.findNonFinite(x), -1, 'all finite');
      x[n - 1] = Infinity;
      x[2 ** 25 + 10] = NaN;
      assert.is(await mk.primitives.findNonFinite(x), 2 ** 25 + 10, 'the NaN in the second block');
      x[n - 1] = 0.25;
      x[2 ** 25 + 10] = 0.25;

      // Flat indices cross 2^32 in the second block.
      const offset = 2 ** 32 - 2 ** 25 + 5;
      const out = new Float32Array(n), ref = new Float32Array(n);
      const [sa, sk] = await mk.primitives.dropAndRescale(x, offset, 77, 0.5, 2, out);
      const [wa, wk] = R.dropAndRescale(x, offset, 77, 0.5, 2, ref);
      firstDifference(out, ref, 'dropAndRescale');
      assert.ok(Math.abs(sa - wa) <= 1e-9 * wa && Math.abs(sk - wk) <= 1e-9 * wk, `sums ${sa}, ${sk} vs ${wa}, ${wk}`);

      // tiesMerge splits T = 1 model into blocks of 2^24 entries (2 words per entry: the model, and
      // out with room after it), so half of x takes 2 blocks; the tie budget runs out in the second.
      const half = x.subarray(0, 2 ** 24 + 4099), halfOut = out.subarray(0, half.length), halfRef = ref.subarray(0, half.length);
      let ties = 0;
      for (let i = 0; i < half.length; i++) if (Math.abs(half[i]!) === 0.5) ties++;
      const budget = new Float64Array([Math.floor(ties * 0.7)]), wantBudget = budget.slice();
      const o: TiesMergeOptions = { vote: 'sum', merge: 'mean', output: 'merged', zeroSign: 1, lambda: 0.5 };
      await mk.primitives.tiesMerge([half], new Float32Array([1]), new Int32Array([R.absBits(0.5)]), budget, undefined, halfOut, o);
      R.tiesMerge([half], new Float32Array([1]), new Int32Array([R.absBits(0.5)]), wantBudget, undefined, halfRef, o);
      allClose(halfOut, halfRef, { rtol: 1e-6, atol: 2e-6 }, 'tiesMerge');
      firstDifference(budget, wantBudget, 'tiesMerge: budget left');
    } finally {
      mk.dispose();
      device.destroy();
    }
  });

  test.run();
}
