// mk.bipartiteSoftMatching on every backend: the same plan as the js reference on inputs with
// distinct scores, the same tie rule on exact ties, merge/unmerge/wavg/source through the plan,
// and bad input. (The reference itself is checked by hand in bipartite-soft-matching.ts.)
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference, TokenMergePlan, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, randomTensor, rejects } from '../util.ts';

// [B, N, C, r, classToken, distillToken]: sizes 1, odd, not multiples of 4 or of the 64-row
// GPU tile, ViT-B/16 (197 × 768, r = 16) and a batch of 8 of it, ViT-L/14@336 (577 × 1024).
const CASES: Array<[number, number, number, number, boolean, boolean]> = [
  [1, 2, 3, 1, false, false], [1, 3, 1, 1, false, false], [1, 7, 5, 2, false, false], [2, 9, 4, 3, true, false],
  [1, 17, 33, 8, true, true], [3, 130, 67, 40, false, true], [1, 129, 16, 64, true, false],
  [1, 197, 768, 16, true, false], [8, 197, 64, 16, true, false], [1, 577, 1024, 64, true, false],
  [2, 64, 8, 100, false, false], [1, 300, 16, 150, false, false],
];

const x3 = (b: number, n: number, d: number, seed: number): Tensor => randomTensor([b, n, d], seed);

/**
 * The smallest gap, in the reference's float64-accurate scores, that decides the plan: each
 * source's best vs second-best match, and consecutive best scores within the top r + 1 (all of
 * them without a class token, since then the kept tokens come out in score order). Below ~1e-6
 * float32 rounding may legitimately reorder choices: such a case does not test "distinct scores".
 */
function decidingGap(metric: Tensor, r: number, classToken: boolean, distillToken: boolean): number {
  const [B, N, C] = metric.shape as [number, number, number];
  const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
  let gap = Infinity;
  for (let t = 0; t < B; t++) {
    const m = metric.data.subarray(t * N * C, (t + 1) * N * C);
    const sim = reference.cosineSimilarity(m, m, 1, N, N, C);
    const best: Array<[number, number]> = [];
    for (let i = classToken ? 1 : 0; i < nA; i++) {
      let s1 = -Infinity, s2 = -Infinity;
      for (let j = distillToken ? 1 : 0; j < nB; j++) {
        const s = sim[(2 * i) * N + 2 * j + 1]!;
        if (s > s1) { s2 = s1; s1 = s; } else if (s > s2) s2 = s;
      }
      best.push([s1, s1 - s2]);
    }
    best.sort((a, b) => b[0] - a[0]);
    const decided = classToken ? Math.min(best.length, r + 1) : best.length;
    for (let k = 0; k < decided; k++) {
      if (k < r && Number.isFinite(best[k]![1])) gap = Math.min(gap, best[k]![1]);
      if (k > 0) gap = Math.min(gap, best[k - 1]![0] - best[k]![0]);
    }
  }
  return gap;
}

export default function (h: Harness) {
  const test = suite(`bipartiteSoftMatching [${h.backend}]`);

  test('selects the same tokens as the js reference (distinct scores); plumbing: merges/unmerges through the plan', async () => {
    let seed = 300;
    for (const [B, N, C, r, classToken, distillToken] of CASES) {
      const metric = randomTensor([B, N, C], seed++);
      const plan = await h.mk.bipartiteSoftMatching(metric, { r, classToken, distillToken });
      const want = reference.bipartiteSoftMatching(metric.data, B, N, C, { r, classToken, distillToken });
      const label = `B=${B} N=${N} C=${C} r=${r}${classToken ? ' cls' : ''}${distillToken ? ' dist' : ''}`;
      const gap = decidingGap(metric, r, classToken, distillToken);
      assert.ok(gap > 1e-6, `${label}: the case has near-tied deciding scores (gap ${gap}); pick another seed`);
      assert.is(plan.r, want.r, `${label}: effective r`);
      assert.equal(Array.from(plan.srcIdx), Array.from(want.srcIdx), `${label}: srcIdx`);
      assert.equal(Array.from(plan.dstIdx), Array.from(want.dstIdx), `${label}: dstIdx`);
      assert.equal(Array.from(plan.unmergedIdx), Array.from(want.unmergedIdx), `${label}: unmergedIdx`);
      const x = x3(B, N, 5, seed++);
      if (!h.checks('merge')) continue;
      for (const mode of ['mean', 'sum', 'amax'] as const) {
        const merged = plan.merge(x, { mode });
        assert.equal(merged.shape, [B, N - want.r, 5]);
        allClose(merged.data, reference.mergeTokens(want, x.data, 5, mode), { rtol: 1e-5, atol: 1e-6 }, `${label}: merge ${mode}`);
      }
      const y = plan.merge(x);
      const back = plan.unmerge(y);
      assert.equal(back.shape, [B, N, 5]);
      allClose(back.data, reference.unmergeTokens(want, y.data, 5), { atol: 0 }, `${label}: unmerge`);
    }
  });

  test('exact ties resolve the same on every backend: lowest B index, then lower A index first', async () => {
    // Tokens 0..5 = A0 B0 A1 B1 A2 B2. B0 and B1 are the same vector, A0 and A1 are the same
    // vector closest to it: both A0 and A1 tie on their best score and on their best B.
    const u = [1, 0.1, 0], v = [0, 1, 0], w = [0.2, 0.3, 1];
    const metric = { data: new Float32Array([...u, ...u, ...u, ...u, ...w, ...v]), shape: [1, 6, 3] };
    const plan = await h.mk.bipartiteSoftMatching(metric, { r: 2 });
    // A0 and A1 score 1 against B0 and B1; the lowest B index (0) wins, the lower A index ranks first.
    assert.equal(Array.from(plan.srcIdx), [0, 1]);
    assert.equal(Array.from(plan.dstIdx), [0, 0]);
    assert.equal(Array.from(plan.unmergedIdx), [2]);
  });

  test('an exact tie between B tokens far apart (in different 64-column tiles) goes to the lowest index', async () => {
    // 300 tokens: B has 150 (3 tiles of 64, which the GPU may give to different workgroups).
    // B10, B70 and B130 are the same unit vector e0, and so is A0: A0 scores exactly 1 against
    // all three, and every other pair of these random vectors scores less.
    const C = 8, N = 300;
    const metric = randomTensor([1, N, C], 77);
    const e0 = [1, 0, 0, 0, 0, 0, 0, 0];
    for (const token of [0, 2 * 10 + 1, 2 * 70 + 1, 2 * 130 + 1]) metric.data.set(e0, token * C);
    const plan = await h.mk.bipartiteSoftMatching(metric, { r: 1 });
    assert.equal(Array.from(plan.srcIdx), [0]);
    assert.equal(Array.from(plan.dstIdx), [10]);
  });

  test('r is clamped as ToMe clamps it and the plan says so; r = 0 is the identity', async () => {
    const metric = randomTensor([2, 11, 6], 9);
    const plan = await h.mk.bipartiteSoftMatching(metric, { r: 50, classToken: true });
    assert.instance(plan, TokenMergePlan);
    assert.is(plan.requestedR, 50);
    assert.is(plan.r, 5); // (11 - 1) / 2
    const none = await h.mk.bipartiteSoftMatching(metric, { r: 0 });
    assert.is(none.r, 0);
    const x = x3(2, 11, 3, 1);
    assert.equal(Array.from(none.merge(x).data), Array.from(x.data));
  });

  if (h.checks('mergeWavg')) test('plumbing: mergeWavg and mergeSource through the context', async () => {
    const metric = randomTensor([2, 10, 4], 21);
    const plan = await h.mk.bipartiteSoftMatching(metric, { r: 3 });
    const x = x3(2, 10, 3, 22);
    const size = randomTensor([2, 10, 1], 23, 1, 3);
    const got = h.mk.mergeWavg(plan, x, size);
    const want = reference.mergeWavg(plan, x.data, 3, size.data);
    assert.equal(got.x.shape, [2, 7, 3]);
    assert.equal(got.size.shape, [2, 7, 1]);
    allClose(got.x.data, want.x, { atol: 0 });
    allClose(got.size.data, want.size, { atol: 0 });
    const source = h.mk.mergeSource(plan);
    assert.equal(source.shape, [2, 7, 10]);
    // Every original token is held by exactly one merged token.
    for (let t = 0; t < 2; t++) for (let j = 0; j < 10; j++) {
      let holders = 0;
      for (let i = 0; i < 7; i++) holders += source.data[(t * 7 + i) * 10 + j]!;
      assert.is(holders, 1, `token ${j} of item ${t}`);
    }
  });

  if (h.checks('mergeWavg')) test('plumbing: mergeWavg into `out` writes the same values as a fresh call, overwrites stale data, and checks the arrays', async () => {
    const x = x3(2, 10, 3, 41);
    const size = randomTensor([2, 10, 1], 42, 1, 3);
    const out = { x: { data: new Float32Array(2 * 7 * 3).fill(NaN), shape: [2, 7, 3] }, size: { data: new Float32Array(2 * 7).fill(NaN), shape: [2, 7, 1] } };
    for (const seed of [43, 44]) {
      const plan = await h.mk.bipartiteSoftMatching(randomTensor([2, 10, 4], seed), { r: 3, classToken: true });
      const fresh = h.mk.mergeWavg(plan, x, size);
      const got = h.mk.mergeWavg(plan, x, size, out);
      assert.ok(got === out, 'returns the caller\'s out');
      assert.equal(Array.from(out.x.data), Array.from(fresh.x.data), `x, plan ${seed}`);
      assert.equal(Array.from(out.size.data), Array.from(fresh.size.data), `size, plan ${seed}`);
    }
    const plan = await h.mk.bipartiteSoftMatching(randomTensor([2, 10, 4], 45), { r: 3 });
    await rejects(() => h.mk.mergeWavg(plan, x, size, { x: { data: new Float32Array(2 * 8 * 3), shape: [2, 8, 3] }, size: out.size }), 'SHAPE_MISMATCH', ['out.x', '[2, 7, 3]']);
    await rejects(() => h.mk.mergeWavg(plan, x, size, { x: out.x, size: { data: size.data.subarray(0, 14), shape: [2, 7, 1] } }), 'INVALID_OPTION', ['out', 'share memory']);
    await rejects(() => h.mk.mergeWavg(plan, x, size, { x: out.x, size: out.size, sizes: out.size } as never), 'INVALID_OPTION', ['sizes', "did you mean 'size'"]);
  });

  test('bad input: r negative or fractional, wrong rank, NaN, x/size/mode that do not fit the plan', async () => {
    const metric = randomTensor([1, 8, 4], 5);
    await rejects(() => h.mk.bipartiteSoftMatching(metric, { r: -1 }), 'INVALID_OPTION', ['r', 'non-negative integer', '-1']);
    await rejects(() => h.mk.bipartiteSoftMatching(metric, { r: 1.5 }), 'INVALID_OPTION', ['r', '1.5']);
    await rejects(() => h.mk.bipartiteSoftMatching(metric, {} as never), 'INVALID_OPTION', ['r']);
    await rejects(() => h.mk.bipartiteSoftMatching(metric, { r: 1, classToken: 1 as never }), 'INVALID_OPTION', ['classToken', 'boolean']);
    await rejects(() => h.mk.bipartiteSoftMatching(randomTensor([8, 4], 1), { r: 1 }), 'INVALID_SHAPE', ['metric', 'rank 3']);
    const nan = randomTensor([1, 8, 4], 6);
    nan.data[13] = NaN;
    await rejects(() => h.mk.bipartiteSoftMatching(nan, { r: 1 }), 'NON_FINITE', ['metric', 'index 13']);
    const plan = await h.mk.bipartiteSoftMatching(metric, { r: 2 });
    await rejects(() => plan.merge(x3(2, 8, 3, 1)), 'SHAPE_MISMATCH', ['x', '[1, 8, D]']);
    await rejects(() => plan.merge(x3(1, 7, 3, 1)), 'SHAPE_MISMATCH', ['x']);
    await rejects(() => plan.merge(x3(1, 8, 3, 1), { mode: 'max' as never }), 'INVALID_OPTION', ['mode', "'amax'"]);
    await rejects(() => plan.unmerge(x3(1, 8, 3, 1)), 'SHAPE_MISMATCH', ['y', '[1, 6, D]']);
    await rejects(() => h.mk.mergeWavg(plan, x3(1, 8, 3, 1), randomTensor([1, 8, 2], 1)), 'SHAPE_MISMATCH', ['size', '[1, 8, 1]']);
    await rejects(() => h.mk.mergeWavg({} as never, x3(1, 8, 3, 1)), 'INVALID_TYPE', ['plan']);
  });

  test.run();
}
