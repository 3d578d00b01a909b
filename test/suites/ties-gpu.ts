// TIES on a GPU-first backend: mk.mergeTensors('ties') writes each input to the GPU once per
// merge (the histogram passes and the merge pass of a chunk share one upload; task vectors, the
// level-1 windows and the vote counts are formed in the kernels), counted with mk.gpuCounters on
// the backends that have them; and the task vectors the kernels form are the reference's
// f32(x − base) bit for bit, subnormals included (a device may flush subnormals in arithmetic).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference, type HistogramRequest } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, rng, skip } from '../util.ts';

const R = reference.mergePrimitives;

/** A base and T fine-tuned models x_t = base + δ_t, δ_t small, many entries shared (every fine-tune moves them). */
function inputs(n: number, T: number, seed: number): { base: Float32Array; models: Float32Array[] } {
  const next = rng(seed);
  const base = Float32Array.from({ length: n }, () => 0.04 * (next() - 0.5));
  const models = Array.from({ length: T }, () => Float32Array.from(base, (b) => b + (next() < 0.05 ? 1e-2 : 1e-3) * (next() - 0.5)));
  return { base, models };
}

/**
 * Pairs (x, base) whose task vector f32(x − base) is subnormal, or has a ±0 or subnormal operand:
 * neighbours of a tiny normal base (δ a few multiples of 2^-149), subnormal x or base against 0,
 * each other, a large value or a tiny normal one, and ordinary pairs in between.
 */
function tinyPairs(n: number, seed: number): { x: Float32Array; base: Float32Array } {
  const next = rng(seed);
  const x = new Float32Array(n), base = new Float32Array(n);
  const bits = (b: number) => R.fromBits(b >>> 0);
  const sign = () => (next() < 0.5 ? 0x80000000 : 0);
  const sub = () => sign() | Math.floor(next() * 0x7fffff + 1);
  for (let i = 0; i < n; i++) {
    const e = 1 + Math.floor(next() * 8); // tiny normals: exponent fields 1..8
    const b0 = sign() | (e << 23) | Math.floor(next() * 0x7fffff);
    switch (i % 8) {
      case 0: base[i] = bits(b0); x[i] = bits(b0 + 1 + Math.floor(next() * 40)); break; // δ a few ulps: subnormal
      case 1: x[i] = bits(sub()); base[i] = next() < 0.5 ? 0 : -0; break;
      case 2: x[i] = next() < 0.5 ? 0 : -0; base[i] = bits(sub()); break;
      case 3: x[i] = bits(sub()); base[i] = bits(sub()); break;                   // may cross into the normals
      case 4: x[i] = (next() < 0.5 ? 3 : -1e30) * (1 + next()); base[i] = bits(sub()); break;
      case 5: x[i] = bits(sub()); base[i] = bits(sign() | (27 << 23) | Math.floor(next() * 0x7fffff)); break;
      case 6: base[i] = bits(b0); x[i] = bits(b0 ^ (1 << Math.floor(next() * 23))); break; // same exponent, one bit off
      default: base[i] = next() - 0.5; x[i] = next() - 0.5;
    }
  }
  // Entries 0, 8, 16, … of the first quarter share one subnormal δ (ties for the trim below).
  for (let i = 0; i < n / 4; i += 8) { base[i] = bits(5 << 23); x[i] = bits((5 << 23) + 3); }
  return { x, base };
}

export default function (h: Harness) {
  const test = suite(`TIES on the GPU [${h.backend}]`);

  test('mergeTensors(ties) writes each input to the GPU once, whatever the passes and chunks, and equals the reference', async () => {
    if (h.mk.gpuCounters === undefined) return skip(h.print, 'TIES upload counts', `the ${h.backend} backend has no GPU counters`);
    const T = 3, n = 40_000, bytes = n * 4;
    const { base, models } = inputs(n, T, 9);
    const shape = [n];
    for (const semantics of ['paper', 'mergekit'] as const) {
      for (const chunkSize of [1 << 20, 16_384]) {
        const opts = { base: { data: base, shape }, models: models.map((data) => ({ data, shape })), parameters: { density: 0.2, semantics }, chunkSize };
        const before = h.mk.gpuCounters!;
        const got = await h.mk.mergeTensors('ties', opts);
        const after = h.mk.gpuCounters!;
        const want = await h.ref.mergeTensors('ties', opts);
        const what = `${semantics}, chunks of ${Math.min(chunkSize, n)}`;
        allClose(got.data, want.data, { rtol: 1e-6, atol: 1e-9 }, what);
        const uploaded = after.uploadBytes - before.uploadBytes;
        h.print(`  ties ${what}: ${after.uploads - before.uploads} uploads, ${uploaded} bytes (inputs ${(T + 1) * bytes}), ${after.submits - before.submits} submits, ${after.readbacks - before.readbacks} readbacks`);
        // Each of the T models and the base once; beyond that only small parameter tables
        // (thresholds, weights, histogram requests), far below one more copy of any input.
        assert.ok(uploaded >= (T + 1) * bytes, `${what}: ${uploaded} bytes uploaded, less than the inputs' ${(T + 1) * bytes}`);
        assert.ok(uploaded < (T + 1) * bytes + bytes / 8, `${what}: ${uploaded} bytes uploaded for inputs of ${(T + 1) * bytes}: some input went up more than once`);
      }
    }
  });

  test('histograms and tie counts of f32(x − base) equal the reference bit for bit where δ or an operand is subnormal or ±0', async () => {
    const n = 4096 + 37;
    const { x, base } = tinyPairs(n, 77);
    const delta = Float32Array.from(x, (v, i) => v - base[i]!);
    const requests = (): HistogramRequest[] => [
      { model: 0, hist: new Uint32Array(R.LEVEL0_BINS), level: 0, prefix: 0 },
      { model: 0, hist: new Uint32Array(2 * R.LEVEL1_BINS), level: 1, prefix: 0 },   // δ below 65536 · 2^-149
      { model: 0, hist: new Uint32Array(3 * R.LEVEL1_BINS), level: 1, prefix: R.absBits(delta[3]!) >>> 15 },
      { model: 0, hist: new Uint32Array(R.LEVEL1_BINS), level: 1, prefix: R.absBits(delta[5]!) >>> 15 },
    ];
    const got = requests(), want = requests();
    await h.mk.primitives.absHistograms([x], base, got);
    R.absHistograms([x], base, want);
    got.forEach((r, k) => {
      for (let b = 0; b < r.hist.length; b++) {
        if (r.hist[b] !== want[k]!.hist[b]) assert.unreachable(`request ${k} (level ${r.level}, prefix ${r.prefix}): bin ${b} counts ${r.hist[b]}, expected ${want[k]!.hist[b]}`);
      }
    });
    // The trim's ties: |δ| equal to the shared subnormal 3 · 2^-145 (δ of entry 0), each spending one unit of a budget that outlasts them.
    const thr = new Int32Array([R.absBits(delta[0]!)]);
    const budget = new Float64Array([2 ** 40]), wantBudget = budget.slice();
    const o = { vote: 'none', zeroSign: 1, merge: 'sum', lambda: 1, output: 'none', counts: false } as const;
    await h.mk.primitives.tiesMerge([x], new Float32Array([1]), thr, budget, base, new Float32Array(n), { ...o, subtractBase: true });
    R.tiesMerge([x], new Float32Array([1]), thr, wantBudget, base, new Float32Array(n), { ...o, subtractBase: true });
    assert.ok(wantBudget[0]! < 2 ** 40 - n / 40, 'the reference sees the ties');
    assert.is(budget[0], wantBudget[0], 'tie budget left');
  });

  test.run();
}
