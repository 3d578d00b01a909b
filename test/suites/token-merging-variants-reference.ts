// The references of ToMe's variants (tomesd random 2-D, kth, random, DToMe threshold and
// batch-level, PiToMe), checked against hand-worked cases. Every expected index and value is
// worked out in the comments from the published method, never computed by the code under test.
// Trick used throughout (as in bipartite-soft-matching.ts): x_t = 2^t, so a 'sum' output row is
// the bitmask of the tokens merged into it. Cosines: (3,4)·(0,1) → 4/5 = .8, (1,1)·(1,0) → 1/√2.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose } from '../util.ts';
import { pitomeMargin, reference } from 'merge-kernels';

const {
  bipartiteSoftMatchingRandom2d, random2dSets, kthBipartiteSoftMatching, randomBipartiteSoftMatching, randomSets,
  thresholdSoftMatching, batchLevelSoftMatching, batchLevelMerge, pitomeSoftMatching, pitomeEnergy, mergeTokens, unmergeTokens,
} = reference;

const f32 = (...rows: number[][]) => new Float32Array(rows.flat());
const list = (a: ArrayLike<number>) => Array.from(a);
/** x_t = 2^t for t = 0…n-1 (per batch item), one channel. */
const bits = (n: number, batch = 1) => new Float32Array(Array.from({ length: batch * n }, (_, i) => 2 ** (i % n)));
/** y = output row numbers 0…m-1 (per batch item): unmerge then shows the row each token went to. */
const rows = (m: number, batch = 1) => new Float32Array(Array.from({ length: batch * m }, (_, i) => i % m));

// tomesd, w = 4, h = 3 (N = 12), sx = sy = 2, noRand: floor(3/2) = 1 row of cells, floor(4/2) = 2
// columns of cells; destinations are the cells' top-left tokens t0 and t2 (B0 = t0 (1,0),
// B1 = t2 (0,1)); row 2 (t8…t11) lies past the cells, so it is all sources. A, in raster order:
//   A0 t1 (3,4):  B0 .6,  B1 .8   → B1, .8        A5 t7 (4,3):   B0 .8,  B1 .6   → B0, .8
//   A1 t3 (12,5): B0 12/13 ≈ .923 → B0, .923      A6 t8 (5,12):  B1 12/13        → B1, .923
//   A2 t4 (1,0):  B0 1            → B0, 1         A7 t9 (1,1):   B0 = B1 = 1/√2  → B0 (lowest), .707
//   A3 t5 (-1,0): B0 -1, B1 0     → B1, 0         A8 t10 (-3,-4): B0 -.6, B1 -.8 → B0, -.6
//   A4 t6 (0,1):  B1 1            → B1, 1         A9 t11 (15,8): B0 15/17 ≈ .882 → B0, .882
// Stable descending order (equal scores: lower A first): A2, A4 (1), A1, A6 (.923), A9 (.882),
// A0, A5 (.8), A7 (.707), A3 (0), A8 (-.6).
const GRID = f32([1, 0], [3, 4], [0, 1], [12, 5], [1, 0], [-1, 0], [0, 1], [4, 3], [5, 12], [1, 1], [-3, -4], [15, 8]);

export default function (h: Harness) {
  const test = suite(`token-merging variants reference [${h.backend}]`);

  test('random 2-D (tomesd), noRand: destinations, raster sets, ranking, output, dense unmerge', () => {
    const sets = random2dSets(4, 3, 2, 2, true, 0);
    assert.equal(list(sets.dst), [0, 2]);
    assert.equal(list(sets.src), [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // r = 4: A2 → B0, A4 → B1, A1 → B0, A6 → B1. Kept, in edge order: A9, A0, A5, A7, A3, A8.
    const p = bipartiteSoftMatchingRandom2d(GRID, 1, 12, 2, { w: 4, h: 3, sx: 2, sy: 2, r: 4, noRand: true });
    assert.is(p.r, 4);
    assert.equal(list(p.srcIdx), [2, 4, 1, 6]);
    assert.equal(list(p.dstIdx), [0, 1, 0, 1]);
    assert.equal(list(p.unmergedIdx), [9, 0, 5, 7, 3, 8]);
    // Output [t11, t1, t7, t9, t5, t10, t0+t4+t3, t2+t6+t8].
    assert.equal(list(mergeTokens(p, bits(12), 1, 'sum')), [2048, 2, 128, 512, 32, 1024, 1 + 16 + 8, 4 + 64 + 256]);
    // Unmerge puts every token back at its ORIGINAL position with the row it went into:
    // t0 → 6, t1 → 1, t2 → 7, t3 → 6, t4 → 6, t5 → 4, t6 → 7, t7 → 2, t8 → 7, t9 → 3, t10 → 5, t11 → 0.
    assert.equal(list(unmergeTokens(p, rows(8), 1)), [6, 1, 7, 6, 6, 4, 7, 2, 7, 3, 5, 0]);
    // Mean: row B0 = (t0 + t4 + t3) / 3 with x_t = t → (0 + 4 + 3) / 3.
    const xs = new Float32Array(Array.from({ length: 12 }, (_, t) => t));
    allClose(mergeTokens(p, xs, 1, 'mean').subarray(6), [7 / 3, (2 + 6 + 8) / 3], { atol: 1e-6 }, 'mean');
    // r = 20 is clamped to the 10 sources: everything merges. B0 gets t0, t3, t4, t7, t9, t10, t11;
    // B1 gets t2, t1, t5, t6, t8.
    const all = bipartiteSoftMatchingRandom2d(GRID, 1, 12, 2, { w: 4, h: 3, sx: 2, sy: 2, r: 20, noRand: true });
    assert.is(all.r, 10);
    assert.equal(list(mergeTokens(all, bits(12), 1, 'sum')), [1 + 8 + 16 + 128 + 512 + 1024 + 2048, 4 + 2 + 32 + 64 + 256]);
    // r = 0 is the identity.
    const none = bipartiteSoftMatchingRandom2d(GRID, 1, 12, 2, { w: 4, h: 3, sx: 2, sy: 2, r: 0 });
    assert.equal(list(mergeTokens(none, bits(12), 1, 'sum')), list(bits(12)));
  });

  test('random 2-D (tomesd), random offsets: one destination per cell, seeded, shared by the batch', () => {
    // w = 5, h = 5, sx = 2, sy = 2: cells cover rows 0–3 and columns 0–3 (4 cells); row 4 and
    // column 4 are sources. Every cell holds exactly one destination, anywhere in it.
    const layouts = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const { src, dst } = random2dSets(5, 5, 2, 2, false, seed);
      assert.is(dst.length, 4);
      assert.is(src.length, 21);
      const cells = list(dst).map((p) => `${Math.floor(Math.floor(p / 5) / 2)},${Math.floor((p % 5) / 2)}`).sort();
      assert.equal(cells, ['0,0', '0,1', '1,0', '1,1'], `seed ${seed}: one destination per cell`);
      assert.equal(list(dst), [...list(dst)].sort((a, b) => a - b), `seed ${seed}: raster order`);
      for (const p of dst) assert.ok(p % 5 < 4 && Math.floor(p / 5) < 4, `seed ${seed}: destination ${p} inside the cells`);
      assert.equal(list(random2dSets(5, 5, 2, 2, false, seed).dst), list(dst), 'same seed, same destinations');
      layouts.add(list(dst).join());
    }
    // 4 cells × 4 offsets = 256 layouts; 40 seeds must not all give the same few.
    assert.ok(layouts.size > 20, `only ${layouts.size} distinct layouts from 40 seeds`);
    // The batch shares the layout (tomesd draws one rand_idx for the whole batch).
    const metric = new Float32Array(2 * 25 * 3).map((_, i) => Math.sin(i));
    const p = bipartiteSoftMatchingRandom2d(metric, 2, 25, 3, { w: 5, h: 5, sx: 2, sy: 2, r: 3, seed: 11 });
    assert.equal(list(p.bIdx!.subarray(0, 4)), list(p.bIdx!.subarray(4, 8)));
    assert.equal(list(p.bIdx!.subarray(0, 4)), list(random2dSets(5, 5, 2, 2, false, 11).dst));
  });

  test('kth (ToMe): groups of k, first k - 1 merge into the best last token, tail dropped', () => {
    // N = 7, k = 3: groups (t0 t1 t2), (t3 t4 t5); t6 is dropped. A = t0, t1, t3, t4; B = t2, t5.
    // B0 = t2 (1,0), B1 = t5 (0,1). t0 (3,4) → B1 (.8 > .6); t1 (1,1) → tie → B0;
    // t3 (4,3) → B0 (.8); t4 (-1,0) → B1 (0 > -1).
    const metric = f32([3, 4], [1, 1], [1, 0], [4, 3], [-1, 0], [0, 1], [1, 0]);
    const p = kthBipartiteSoftMatching(metric, 1, 7, 2, 3);
    assert.is(p.r, 5); // 7 - 7 // 3
    assert.equal(list(p.dstIdx), [1, 0, 0, 1]);
    // Output [t2 + t1 + t3, t5 + t0 + t4].
    assert.equal(list(mergeTokens(p, bits(7), 1, 'sum')), [4 + 2 + 8, 32 + 1 + 16]);
    allClose(mergeTokens(p, bits(7), 1, 'mean'), [14 / 3, 49 / 3], { atol: 1e-5 }, 'mean');
    // Unmerge with y = [10, 20]: t0 → 20, t1 → 10, t2 → 10, t3 → 10, t4 → 20, t5 → 20, t6 (dropped) → 0.
    assert.equal(list(unmergeTokens(p, new Float32Array([10, 20]), 1)), [20, 10, 10, 10, 20, 20, 0]);
    // k = 1 is the identity.
    assert.equal(list(mergeTokens(kthBipartiteSoftMatching(metric, 1, 7, 2, 1), bits(7), 1, 'sum')), list(bits(7)));
  });

  test('random (ToMe): r tokens of a seeded permutation merge into their best match among the rest', () => {
    // Tokens come in identical pairs: t0 = t1 = e1, t2 = t3 = e2, t4 = t5 = e3 (different pairs
    // are orthogonal). Whatever the permutation: with r = 1 the A token merges into its twin
    // (cosine 1, everything else 0); output = B in permutation order, the twin's row = both.
    const metric = f32([1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]);
    for (let seed = 0; seed < 10; seed++) {
      const { aIdx, bIdx } = randomSets(1, 6, 1, seed);
      const perm = [...list(aIdx), ...list(bIdx)];
      assert.equal([...perm].sort(), [0, 1, 2, 3, 4, 5], `seed ${seed}: a permutation`);
      const p = randomBipartiteSoftMatching(metric, 1, 6, 3, 1, seed);
      assert.is(p.r, 1);
      const a = aIdx[0]!, twin = a ^ 1;
      const want = list(bIdx).map((t) => (t === twin ? 2 ** t + 2 ** a : 2 ** t));
      assert.equal(list(mergeTokens(p, bits(6), 1, 'sum')), want, `seed ${seed}`);
    }
    // r = 2 with both twins of a pair in A: both score 0 against every B and take the FIRST B in
    // permutation order (lowest B index on ties).
    let found = false;
    for (let seed = 0; seed < 200 && !found; seed++) {
      const { aIdx, bIdx } = randomSets(1, 6, 2, seed);
      if ((aIdx[0]! ^ 1) !== aIdx[1]) continue;
      found = true;
      const p = randomBipartiteSoftMatching(metric, 1, 6, 3, 2, seed);
      assert.equal(list(p.dstIdx), [0, 0]);
      const want = list(bIdx).map((t, j) => (j === 0 ? 2 ** t + 2 ** aIdx[0]! + 2 ** aIdx[1]! : 2 ** t));
      assert.equal(list(mergeTokens(p, bits(6), 1, 'sum')), want);
    }
    assert.ok(found, 'some seed puts a twin pair in A');
    // r is clamped to N - 1 (one B token must remain): everything sums into it.
    const all = randomBipartiteSoftMatching(metric, 1, 6, 3, 10, 3);
    assert.is(all.r, 5);
    assert.equal(list(mergeTokens(all, bits(6), 1, 'sum')), [63]);
    // Each batch item has its own permutation, and every token is equally likely in A:
    // N = 4, r = 1, 4000 seeds → each token about 1000 times.
    const counts = [0, 0, 0, 0];
    for (let seed = 0; seed < 4000; seed++) counts[randomSets(1, 4, 1, seed).aIdx[0]!]++;
    for (const c of counts) assert.ok(c > 850 && c < 1150, `A counts ${counts}`);
    const two = randomSets(2, 8, 3, 5);
    assert.not.equal(list(two.aIdx.subarray(0, 3)), list(two.aIdx.subarray(3, 6)), 'items differ');
  });

  // ToMe's BASIC case (bipartite-soft-matching.ts), N = 6: A0 → B1 .707, A1 → B0 .894, A2 → B2 1.
  const BASIC = f32([1, 0, 0], [0, 1, 0], [0, 2, 1], [1, 1, 0], [0, 0, 1], [0, 0, 2]);
  // Opposed pairs: A0 (1,0,0) B0 (-1,0,0); A1 (0,1,0) B1 (0,-1,0); A2 (0,0,1) B2 (0,0,-1). Best scores:
  // A0: B1 0 (B0 -1), A1: B0 0, A2: B0 0 — no score above a positive threshold.
  const OPPOSED = f32([1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]);

  test('threshold (DToMe): r per item = #(best > threshold), capped; unequal lengths', () => {
    // BASIC, threshold .8: .894 and 1 are above → r = 2 → ToMe's r = 2 plan: A2 → B2, A1 → B0.
    const [p] = thresholdSoftMatching(BASIC, 1, 6, 3, { threshold: 0.8 });
    assert.is(p!.r, 2);
    assert.equal(list(p!.srcIdx), [2, 1]);
    assert.equal(list(p!.dstIdx), [2, 0]);
    assert.equal(list(mergeTokens(p!, bits(6), 1, 'sum')), [1, 6, 8, 48]); // [t0, t1+t2, t3, t4+t5]
    // Threshold .95: only 1 → r = 1. Threshold .7: all three (.707 > .7) → r = 3 = 6 // 2.
    assert.is(thresholdSoftMatching(BASIC, 1, 6, 3, { threshold: 0.95 })[0]!.r, 1);
    assert.is(thresholdSoftMatching(BASIC, 1, 6, 3, { threshold: 0.7 })[0]!.r, 3);
    // Strictly above: a threshold equal to the score 1 does not count it.
    assert.is(thresholdSoftMatching(BASIC, 1, 6, 3, { threshold: 1 })[0]!.r, 0);
    // maxR caps: threshold .7 would give 3, maxR = 1 gives 1.
    assert.is(thresholdSoftMatching(BASIC, 1, 6, 3, { threshold: 0.7, maxR: 1 })[0]!.r, 1);
    // Class token: A0's score is -∞ and never counts; .894 and 1 → r = 2 ≤ (6 - 1) // 2.
    const c = thresholdSoftMatching(BASIC, 1, 6, 3, { threshold: 0.5, classToken: true })[0]!;
    assert.is(c.r, 2);
    assert.equal(list(c.unmergedIdx), [0]);
    // A batch of [BASIC, OPPOSED] at .8: item 0 merges 2, item 1 nothing (its best scores are 0).
    const both = thresholdSoftMatching(new Float32Array([...BASIC, ...OPPOSED]), 2, 6, 3, { threshold: 0.8 });
    assert.equal(both.map((q) => q.r), [2, 0]);
    assert.equal(list(mergeTokens(both[1]!, bits(6), 1, 'sum')), list(bits(6)), 'item 1 unchanged');
    assert.equal(list(unmergeTokens(both[0]!, rows(4), 1)), [0, 1, 1, 2, 3, 3]);
  });

  test('batch-level (DyMU): global top r·B, cat[A, B] slots, zeroed merged slots, padding mask', () => {
    // Item 0 = BASIC: scores A0 .707 (B1), A1 .894 (B0), A2 1 (B2).
    // Item 1: t0 (1,0,0) t1 (1,0,0) t2 (0,1,0) t3 (0,3,4) t4 (0,0,1) t5 (0,4,3):
    //   A0: B0 1 → B0, 1.  A1: B1 .6, B2 .8 → B2, .8.  A2: B1 .8, B2 .6 → B1, .8.
    // Flattened (item·3 + A): [.707, .894, 1, 1, .8, .8] → order 2, 3, 1, 4, 5, 0.
    const ITEM1 = f32([1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 3, 4], [0, 0, 1], [0, 4, 3]);
    const metric = new Float32Array([...BASIC, ...ITEM1]);
    // r = 1, B = 2 → the top 2 edges: item 0 A2 → B2, item 1 A0 → B0. The first unmerged edge
    // scores 2/√5: that is the batch threshold.
    const p = batchLevelSoftMatching(metric, 2, 6, 3, { r: 1 });
    assert.equal(list(p.merged), [1, 1]);
    assert.equal(list(p.srcIdx), [2, 3]);
    assert.equal(list(p.dstIdx), [2, 0]);
    assert.is(p.batchThreshold, Math.fround(2 / Math.sqrt(5)));
    // r = 2 → 4 edges: flat 2, 3, 1, 4 → item 0 merges A2, A1; item 1 A0, A1. Next edge: .8.
    const q = batchLevelSoftMatching(metric, 2, 6, 3, { r: 2 });
    assert.equal(list(q.merged), [2, 2]);
    assert.is(q.batchThreshold, Math.fround(0.8));
    // Threshold .85 instead: 1, 1, .894 are above → item 0 merges 2, item 1 merges 1 (unequal).
    const t = batchLevelSoftMatching(metric, 2, 6, 3, { r: 1, threshold: 0.85 });
    assert.equal(list(t.merged), [2, 1]);
    assert.is(t.batchThreshold, undefined);
    // Slots per item: [A0, A1, A2, B0, B1, B2] = [t0, t2, t4, t1, t3, t5]; merged A slots zero.
    // Item 0 (A1 → B0, A2 → B2): [t0, 0, 0, t1+t2, t3, t5+t4] = [1, 0, 0, 6, 8, 48], mask [0,1,1,0,0,0].
    // Item 1 (A0 → B0):          [0, t2, t4, t1+t0, t3, t5]  = [0, 4, 16, 3, 8, 32], mask [1,0,0,0,0,0].
    assert.equal(list(batchLevelMerge(t, bits(6, 2), 1, 'sum')), [1, 0, 0, 6, 8, 48, 0, 4, 16, 3, 8, 32]);
    assert.equal(list(t.paddingMask), [0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    // 'mean' counts the destination: item 0 slot B0 = (2 + 4) / 2; empty slots stay 0 in every mode.
    assert.equal(list(batchLevelMerge(t, bits(6, 2), 1, 'mean').subarray(0, 6)), [1, 0, 0, 3, 8, 24]);
    assert.equal(list(batchLevelMerge(t, bits(6, 2), 1, 'amax').subarray(0, 6)), [1, 0, 0, 4, 8, 32]);
    // Unmerge (slot numbers as y): item 0 t0 → 0, t1 → 3, t2 → 3, t3 → 4, t4 → 5, t5 → 5;
    // item 1 t0 → 3, t1 → 3, t2 → 1, t3 → 4, t4 → 2, t5 → 5.
    assert.equal(list(reference.ungroupRows(t.outputRow, 2, 6, 6, rows(6, 2), 1)), [0, 3, 3, 4, 5, 5, 3, 3, 1, 4, 2, 5]);
    // maxR = 1 with threshold .85: each item keeps only its own best (item 0 A2, item 1 A0).
    const m = batchLevelSoftMatching(metric, 2, 6, 3, { r: 1, threshold: 0.85, maxR: 1 });
    assert.equal(list(m.merged), [1, 1]);
    assert.equal(list(m.srcIdx), [2, 3]);
    // Class token: A0 of each item is -∞ → [-∞, .894, 1, -∞, .8, .8]: the top 2 are both item 0's.
    const c = batchLevelSoftMatching(metric, 2, 6, 3, { r: 1, classToken: true });
    assert.equal(list(c.merged), [2, 0]);
    assert.equal(list(c.srcIdx), [2, 1]);
    // maxR = 0 leaves no finite score: nothing merges (DyMU would merge -∞ rows); threshold max(-∞, 0) = 0.
    const z = batchLevelSoftMatching(metric, 2, 6, 3, { r: 3, maxR: 0 });
    assert.equal(list(z.merged), [0, 0]);
    assert.is(z.batchThreshold, 0);
    // r = 0: the identity, in the original order, no padding.
    const n = batchLevelSoftMatching(metric, 2, 6, 3, { r: 0 });
    assert.equal(list(batchLevelMerge(n, bits(6, 2), 1, 'sum')), list(bits(6, 2)));
    assert.equal(list(n.paddingMask), new Array(12).fill(0));
  });

  // PiToMe, T = 5 tokens: t0 = t1 = (1,0,0), t2 = (0,1,0), t3 = (0,0,1), t4 = (1,1,0).
  // Cosines: t0·t1 1, t0·t4 = t1·t4 = t2·t4 = 1/√2 ≈ .707, all other pairs 0, self 1.
  // Margin 0: ELU(s) = s for s ≥ 0, so energy = mean of the row:
  //   t0 = t1: (1 + 1 + 0 + 0 + .707)/5 ≈ .541   t2: (0 + 0 + 1 + 0 + .707)/5 ≈ .341
  //   t3: 1/5 = .2                              t4: (.707·3 + 0 + 1)/5 ≈ .624
  // Descending (equal energies: lower index first): t4, t0, t1, t2, t3.
  const PI = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]];

  test('PiToMe: energy, alternating A/B by energy, every A into its best B, [cls, protected, B]', () => {
    // r = 2: merge set t4, t0, t1, t2 → A = [t4, t1], B = [t0, t2]; protected [t3].
    // t4: t0 .707 = t2 .707 → tie → B0 = t0. t1: t0 1 → B0. Output [t3, t0+t4+t1, t2].
    const p = pitomeSoftMatching(f32(...PI), 1, 5, 3, { r: 2, margin: 0 });
    assert.is(p.r, 2);
    assert.equal(list(p.aIdx!), [4, 1]);
    assert.equal(list(p.bIdx!), [0, 2]);
    assert.equal(list(p.dstIdx), [0, 0]);
    assert.equal(list(mergeTokens(p, bits(5), 1, 'sum')), [8, 1 + 16 + 2, 4]);
    assert.equal(list(unmergeTokens(p, rows(3), 1)), [1, 1, 2, 0, 1]);
    // With a class token c = (5,5,5) in front (left out of the energy): the same choices shifted
    // by one; output [c, t3, t0+t4+t1, t2] → bits [1, 16, 2 + 32 + 4, 8].
    const withCls = f32([5, 5, 5], ...PI);
    const c = pitomeSoftMatching(withCls, 1, 6, 3, { r: 2, margin: 0, classToken: true });
    assert.equal(list(mergeTokens(c, bits(6), 1, 'sum')), [1, 16, 38, 8]);
    // ratio 0.75 → r = floor(5 − 3.75) = 1: A = [t4], B = [t0]; protected t1, t2, t3 by energy.
    // Output [c, t1, t2, t3, t0 + t4] (positions + 1) → [1, 4, 8, 16, 2 + 32].
    const q = pitomeSoftMatching(withCls, 1, 6, 3, { ratio: 0.75, margin: 0, classToken: true });
    assert.is(q.r, 1);
    assert.equal(list(mergeTokens(q, bits(6), 1, 'sum')), [1, 4, 8, 16, 34]);
    // ratio 0.6 → r = floor(5 − 3) = 2 (as r = 2 above); ratio 1 → nothing; r = 10 → 5 // 2 = 2.
    assert.is(pitomeSoftMatching(withCls, 1, 6, 3, { ratio: 0.6, margin: 0, classToken: true }).r, 2);
    assert.is(pitomeSoftMatching(withCls, 1, 6, 3, { ratio: 1, margin: 0, classToken: true }).r, 0);
    assert.is(pitomeSoftMatching(f32(...PI), 1, 5, 3, { r: 10, margin: 0 }).r, 2);
  });

  test('PiToMe use_bsm_pitome: A/B alternate over all tokens by energy, then ToMe ranking', () => {
    // Order t4, t0, t1, t2, t3 → A = [t4, t1, t3], B = [t0, t2].
    // A0 t4: t0 .707 = t2 .707 → B0, .707. A1 t1: t0 1 → B0, 1. A2 t3: 0, 0 → B0, 0.
    // Edges A1, A0, A2. r = 1: t1 → t0; kept [t4, t3] in edge order. Output [t4, t3, t0+t1, t2].
    const p = pitomeSoftMatching(f32(...PI), 1, 5, 3, { r: 1, margin: 0, useBsm: true });
    assert.equal(list(p.srcIdx), [1]);
    assert.equal(list(p.unmergedIdx), [0, 2]);
    assert.equal(list(mergeTokens(p, bits(5), 1, 'sum')), [16, 8, 3, 4]);
    // r = 2: t1 → t0, t4 → t0; kept [t3]. Output [t3, t0+t1+t4, t2].
    const q = pitomeSoftMatching(f32(...PI), 1, 5, 3, { r: 2, margin: 0, useBsm: true });
    assert.equal(list(mergeTokens(q, bits(5), 1, 'sum')), [8, 19, 4]);
  });

  test('PiToMe energy: ELU(sim − margin) averaged over every token, itself included', () => {
    // The similarities of PI written out; margin .5: ELU(1 − .5) = .5, ELU(1/√2 − .5) = 1/√2 − .5,
    // ELU(0 − .5) = e^(−.5) − 1.
    const s = Math.SQRT1_2;
    const sim = f32(
      [1, 1, 0, 0, s], [1, 1, 0, 0, s], [0, 0, 1, 0, s], [0, 0, 0, 1, 0], [s, s, s, 0, 1]);
    const neg = Math.expm1(-0.5), pos = Math.fround(s) - 0.5;
    const want = [
      (0.5 + 0.5 + 2 * neg + pos) / 5, (0.5 + 0.5 + 2 * neg + pos) / 5,
      (3 * neg + 0.5 + pos) / 5, (4 * neg + 0.5) / 5, (3 * pos + neg + 0.5) / 5,
    ];
    allClose(pitomeEnergy(sim, 1, 5, 0.5), want, { atol: 1e-12 }, 'energy');
    // Per-layer margins as PiToMe's ViT patch sets them: 0.9 − 0.9·l/L; other patches differ.
    assert.is(pitomeMargin(0, 12), 0.9);
    allClose([pitomeMargin(6, 12), pitomeMargin(11, 12)], [0.45, 0.9 - 0.9 * 11 / 12], { atol: 1e-15 });
    assert.is(pitomeMargin(3, 12, 0.75), 0.75 - 0.75 * 0.25);  // DeiT/MAE
    assert.is(pitomeMargin(6, 12, 0.9, 0.25), 0.9 - 0.125);    // BERT
  });

  test.run();
}
