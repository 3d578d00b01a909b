// ToMe's variants on every backend: the same plan as the js reference on inputs whose deciding
// scores are distinct (checked first, as in token-merging.ts), merge/unmerge round trips, and bad
// input. The references themselves are checked by hand in token-merging-variants-reference.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference, TokenMergePlan, ThresholdMergePlan, BatchLevelMergePlan, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, randomTensor, rejects } from '../util.ts';

const list = (a: ArrayLike<number>) => Array.from(a);
const D = 4;

/** Cosine similarities of item t's tokens, [N, N] (the reference's, float32). */
function simOf(metric: Tensor, t: number): Float32Array {
  const [, N, C] = metric.shape as [number, number, number];
  const m = metric.data.subarray(t * N * C, (t + 1) * N * C);
  return reference.cosineSimilarity(m, m, 1, N, N, C);
}

/** Smallest gap between consecutive distinct-rank values (finite ones), i.e. what decides a ranking. */
function rankGap(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => b - a);
  let gap = Infinity;
  for (let k = 1; k < v.length; k++) gap = Math.min(gap, v[k - 1]! - v[k]!);
  return gap;
}

/** For each A position: [best score over bPos, best − second best]. */
function bestTwo(sim: Float32Array, N: number, aPos: number[], bPos: number[]): Array<[number, number]> {
  return aPos.map((a) => {
    let s1 = -Infinity, s2 = -Infinity;
    for (const b of bPos) {
      const s = sim[a * N + b]!;
      if (s > s1) { s2 = s1; s1 = s; } else if (s > s2) s2 = s;
    }
    return [s1, s1 - s2];
  });
}

/**
 * A conservative deciding gap for a plan's sets: every A's best vs second-best match and, when
 * A is ranked, every gap between consecutive best scores. Below ~1e-6 float32 rounding may
 * legitimately change choices: such a case does not test "distinct scores".
 */
function matchGap(metric: Tensor, plan: { aIdx: Int32Array; bIdx: Int32Array; batch: number }, ranked: boolean): number {
  const [B, N] = metric.shape as [number, number];
  const nA = B > 0 ? plan.aIdx.length / B : 0, nB = B > 0 ? plan.bIdx.length / B : 0;
  let gap = Infinity;
  for (let t = 0; t < B; t++) {
    const sim = simOf(metric, t);
    const best = bestTwo(sim, N, list(plan.aIdx.subarray(t * nA, (t + 1) * nA)), list(plan.bIdx.subarray(t * nB, (t + 1) * nB)));
    for (const [, g] of best) if (Number.isFinite(g)) gap = Math.min(gap, g);
    if (ranked) gap = Math.min(gap, rankGap(best.map(([s]) => s)));
  }
  return gap;
}

/** PiToMe's gap: consecutive energies (they order the tokens) plus the matching's. */
function pitomeGap(metric: Tensor, margin: number, classToken: boolean, plan: TokenMergePlan, ranked: boolean): number {
  const [B, N, C] = metric.shape as [number, number, number];
  const off = classToken ? 1 : 0, T = N - off;
  let gap = matchGap(metric, plan, ranked);
  for (let t = 0; t < B; t++) {
    const rows = metric.data.subarray((t * N + off) * C, (t + 1) * N * C);
    const energy = reference.pitomeEnergy(reference.cosineSimilarity(rows, rows, 1, T, T, C), 1, T, margin);
    gap = Math.min(gap, rankGap(list(energy)));
  }
  return gap;
}

/**
 * merge then unmerge: a token alone in its row comes back exactly; a token merged with others
 * comes back as the mean of its group; a dropped token as zeros. Every output row holds a token.
 */
function roundTrip(plan: TokenMergePlan, label: string, seed: number) {
  const { batch: B, tokens: N, r } = plan;
  const m = N - r;
  const x = randomTensor([B, N, D], seed);
  const back = plan.unmerge(plan.merge(x, { mode: 'mean' }));
  assert.equal(back.shape, [B, N, D]);
  for (let t = 0; t < B; t++) {
    const groups = new Map<number, number[]>();
    for (let tok = 0; tok < N; tok++) {
      const row = plan.outputRow[t * N + tok]!;
      if (!groups.has(row)) groups.set(row, []);
      groups.get(row)!.push(tok);
    }
    for (let row = 0; row < m; row++) assert.ok(groups.has(row), `${label}: output row ${row} of item ${t} holds no token`);
    for (const [row, toks] of groups) {
      for (let d = 0; d < D; d++) {
        let mean = 0;
        for (const tok of toks) mean += x.data[(t * N + tok) * D + d]! / toks.length;
        for (const tok of toks) {
          const got = back.data[(t * N + tok) * D + d]!;
          const want = row < 0 ? 0 : toks.length === 1 ? x.data[(t * N + tok) * D + d]! : mean;
          assert.ok(Math.abs(got - want) <= 1e-6, `${label}: unmerge(merge(x)) at item ${t} token ${tok}: got ${got}, expected ${want}`);
        }
      }
    }
  }
}

/** The plan equals the reference's: sets, choices, output order, merged values. */
function samePlan(got: TokenMergePlan, want: reference.MergePlan, label: string, checkMerge: boolean) {
  assert.is(got.r, want.r, `${label}: r`);
  assert.equal(list(got.srcIdx), list(want.srcIdx), `${label}: srcIdx`);
  assert.equal(list(got.dstIdx), list(want.dstIdx), `${label}: dstIdx`);
  assert.equal(list(got.unmergedIdx), list(want.unmergedIdx), `${label}: unmergedIdx`);
  if (want.aIdx) assert.equal(list(got.aIdx), list(want.aIdx), `${label}: aIdx`);
  if (want.bIdx) assert.equal(list(got.bIdx), list(want.bIdx), `${label}: bIdx`);
  assert.equal(list(got.outputRow), list(reference.outputRows(want)), `${label}: outputRow`);
  if (!checkMerge) return; // plan.merge is host code: a plumbing check, run in the js pass only
  const x = randomTensor([got.batch, got.tokens, D], 77);
  for (const mode of ['mean', 'sum', 'amax'] as const) {
    allClose(got.merge(x, { mode }).data, reference.mergeTokens(want, x.data, D, mode), { rtol: 1e-5, atol: 1e-6 }, `${label}: merge ${mode}`);
  }
}

export default function (h: Harness) {
  const test = suite(`token-merging variants [${h.backend}]`);

  test('random 2-D (tomesd): same plan as the reference; round trip to the original positions', async () => {
    // [B, w, h, C, sx, sy, r, noRand, seed]: 1 token, odd sizes, strides that do not divide,
    // 14×14 × 768 (a ViT-B/16 grid), a batch.
    const CASES: Array<[number, number, number, number, number, number, number, boolean, number]> = [
      [1, 1, 1, 3, 1, 1, 1, false, 0], [1, 5, 3, 7, 2, 2, 4, false, 1], [1, 5, 3, 7, 2, 2, 4, true, 0],
      [2, 8, 8, 16, 2, 2, 20, false, 3], [3, 9, 7, 33, 3, 2, 30, true, 0], [1, 14, 14, 768, 2, 2, 50, false, 9],
      [1, 4, 4, 5, 2, 2, 100, false, 4],
    ];
    let seed = 500;
    for (const [B, w, hh, C, sx, sy, r, noRand, s] of CASES) {
      const metric = randomTensor([B, w * hh, C], seed++);
      const label = `B=${B} ${w}×${hh} C=${C} s=${sx}×${sy} r=${r}${noRand ? ' noRand' : ` seed ${s}`}`;
      const opts = { w, h: hh, sx, sy, r, noRand, seed: s };
      const want = reference.bipartiteSoftMatchingRandom2d(metric.data, B, w * hh, C, opts);
      const gap = matchGap(metric, { aIdx: want.aIdx!, bIdx: want.bIdx!, batch: B }, true);
      assert.ok(gap > 1e-6, `${label}: near-tied deciding scores (gap ${gap}); pick another seed`);
      const plan = await h.mk.bipartiteSoftMatchingRandom2d(metric, opts);
      assert.is(plan.method, 'random2d');
      samePlan(plan, want, label, h.checks('merge'));
      roundTrip(plan, label, seed++);
    }
  });

  test('kth (ToMe): same plan as the reference; round trip', async () => {
    const CASES: Array<[number, number, number, number]> = [[1, 1, 3, 1], [1, 2, 3, 2], [1, 7, 5, 3], [2, 9, 4, 2], [1, 197, 768, 4], [5, 40, 16, 2], [1, 65, 9, 65]];
    let seed = 600;
    for (const [B, N, C, k] of CASES) {
      const metric = randomTensor([B, N, C], seed++);
      const label = `B=${B} N=${N} C=${C} k=${k}`;
      const want = reference.kthBipartiteSoftMatching(metric.data, B, N, C, k);
      if (k > 1) {
        const gap = matchGap(metric, { aIdx: want.aIdx!, bIdx: want.bIdx!, batch: B }, false);
        assert.ok(gap > 1e-6, `${label}: near-tied deciding scores (gap ${gap}); pick another seed`);
      }
      const plan = await h.mk.kthBipartiteSoftMatching(metric, { k });
      samePlan(plan, want, label, h.checks('merge'));
      assert.is(plan.r, N - Math.floor(N / k), `${label}: N // k tokens remain`);
      roundTrip(plan, label, seed++);
    }
  });

  test('random (ToMe): same seeded split and plan as the reference; round trip', async () => {
    const CASES: Array<[number, number, number, number, number]> = [[1, 1, 3, 1, 0], [1, 2, 3, 1, 5], [1, 7, 5, 3, 1], [3, 130, 67, 40, 2], [1, 197, 768, 16, 3], [4, 33, 8, 40, 4]];
    let seed = 700;
    for (const [B, N, C, r, s] of CASES) {
      const metric = randomTensor([B, N, C], seed++);
      const label = `B=${B} N=${N} C=${C} r=${r} seed ${s}`;
      const want = reference.randomBipartiteSoftMatching(metric.data, B, N, C, r, s);
      if (want.r > 0) {
        const gap = matchGap(metric, { aIdx: want.aIdx!, bIdx: want.bIdx!, batch: B }, false);
        assert.ok(gap > 1e-6, `${label}: near-tied deciding scores (gap ${gap}); pick another seed`);
      }
      const plan = await h.mk.randomBipartiteSoftMatching(metric, { r, seed: s });
      samePlan(plan, want, label, h.checks('merge'));
      assert.is(plan.requestedR, r);
      roundTrip(plan, label, seed++);
    }
  });

  test('PiToMe (energy, and use_bsm_pitome): same plan as the reference; round trip', async () => {
    // The metric has a shared direction with a per-token weight, so energies spread widely (with
    // plain random vectors 196 energies sit within ~1e-2 and their gaps fall below float32 noise).
    const structured = (B: number, N: number, C: number, seed: number): Tensor => {
      const x = randomTensor([B, N, C], seed);
      const w = randomTensor([B, N, 1], seed + 1, 0, 3);
      for (let i = 0; i < B * N; i++) for (let c = 0; c < C; c++) if (c % 3 === 0) x.data[i * C + c]! += w.data[i]!;
      return x;
    };
    // [B, N, C, r or ratio, margin, classToken, useBsm]
    const CASES: Array<[number, number, number, { r?: number; ratio?: number }, number, boolean, boolean]> = [
      [1, 1, 3, { r: 1 }, 0.9, false, false], [1, 2, 5, { r: 1 }, 0.5, true, false], [1, 7, 5, { r: 3 }, 0.5, false, false],
      [2, 9, 6, { ratio: 0.6 }, 0.3, true, false], [1, 197, 768, { ratio: 0.9 }, 0.45, true, false],
      [3, 65, 16, { r: 20 }, 0.9, true, true], [1, 101, 96, { r: 16 }, 0.75, true, true], [4, 33, 8, { r: 40 }, 0, false, false],
    ];
    let seed = 800;
    for (const [B, N, C, rr, margin, classToken, useBsm] of CASES) {
      const metric = structured(B, N, C, seed);
      seed += 2;
      const label = `B=${B} N=${N} C=${C} ${JSON.stringify(rr)} margin ${margin}${classToken ? ' cls' : ''}${useBsm ? ' bsm' : ''}`;
      const opts = { ...rr, margin, classToken, useBsm };
      const want = reference.pitomeSoftMatching(metric.data, B, N, C, opts);
      const plan = await h.mk.pitomeSoftMatching(metric, opts);
      if (want.r > 0) {
        const gap = pitomeGap(metric, margin, classToken, plan, useBsm);
        assert.ok(gap > 1e-6, `${label}: near-tied deciding scores (gap ${gap}); pick another seed`);
      }
      assert.is(plan.method, useBsm ? 'pitome-bsm' : 'pitome');
      samePlan(plan, want, label, h.checks('merge'));
      roundTrip(plan, label, seed++);
    }
  });

  test('threshold (DToMe): same r per item and plans as the reference; one tensor per item', async () => {
    // [B, N, C, threshold, maxR, classToken]
    const CASES: Array<[number, number, number, number, number | undefined, boolean]> = [
      [1, 1, 3, 0, undefined, false], [1, 7, 5, 0.5, undefined, false], [4, 33, 6, 0.8, undefined, true],
      [1, 197, 768, 0.08, undefined, true], [3, 130, 16, 0.6, 20, false],
    ];
    let seed = 900;
    for (const [B, N, C, threshold, maxR, classToken] of CASES) {
      const metric = randomTensor([B, N, C], seed++);
      const label = `B=${B} N=${N} C=${C} threshold ${threshold}${maxR !== undefined ? ` maxR ${maxR}` : ''}${classToken ? ' cls' : ''}`;
      const opts = { threshold, classToken, ...(maxR !== undefined ? { maxR } : {}) };
      const want = reference.thresholdSoftMatching(metric.data, B, N, C, opts);
      // Premise: no best score within 1e-6 of the threshold, and distinct ranked scores.
      const even = { aIdx: Int32Array.from({ length: B * Math.ceil(N / 2) }, (_, i) => 2 * (i % Math.ceil(N / 2))), bIdx: Int32Array.from({ length: B * Math.floor(N / 2) }, (_, i) => 2 * (i % Math.floor(N / 2)) + 1), batch: B };
      if (N > 1) {
        const gap = matchGap(metric, even, true);
        assert.ok(gap > 1e-6, `${label}: near-tied deciding scores (gap ${gap}); pick another seed`);
        for (let t = 0; t < B; t++) {
          for (const [s] of bestTwo(simOf(metric, t), N, list(even.aIdx.subarray(0, Math.ceil(N / 2))), list(even.bIdx.subarray(0, Math.floor(N / 2))))) {
            assert.ok(Math.abs(s - threshold) > 1e-6, `${label}: a best score at the threshold`);
          }
        }
      }
      const plan = await h.mk.thresholdSoftMatching(metric, opts);
      assert.instance(plan, ThresholdMergePlan);
      assert.equal(list(plan.r), want.map((p) => p.r), `${label}: r per item`);
      plan.items.forEach((p, t) => samePlan(p, want[t]!, `${label} item ${t}`, h.checks('merge')));
      const x = randomTensor([B, N, D], seed++);
      const ys = plan.merge(x);
      assert.equal(ys.map((y) => y.shape), want.map((p) => [1, N - p.r, D]), `${label}: shapes`);
      const back = plan.unmerge(ys);
      assert.equal(back.shape, [B, N, D]);
      if (h.checks('unmerge')) want.forEach((p, t) => {
        const y = reference.mergeTokens(p, x.data.subarray(t * N * D, (t + 1) * N * D), D, 'mean');
        allClose(back.data.subarray(t * N * D, (t + 1) * N * D), reference.unmergeTokens(p, y, D), { rtol: 1e-5, atol: 1e-6 }, `${label}: unmerge item ${t}`);
      });
      plan.items.forEach((p, t) => roundTrip(p, `${label} item ${t}`, seed + t));
    }
    // Unequal lengths in one batch, hand-checked shape: item 0 all tokens identical (every best
    // score 1), item 1 opposed pairs (every best score ≤ 0): r = [3, 0] at threshold .5.
    const same = new Float32Array(6 * 3).fill(1);
    const opposed = new Float32Array([1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 1, 0, 0, -1]);
    const plan = await h.mk.thresholdSoftMatching({ data: new Float32Array([...same, ...opposed]), shape: [2, 6, 3] }, { threshold: 0.5 });
    assert.equal(list(plan.r), [3, 0]);
    assert.equal(plan.merge(randomTensor([2, 6, 2], 1)).map((y) => y.shape), [[1, 3, 2], [1, 6, 2]]);
  });

  test('batch-level (DyMU): same global choice as the reference; fixed shapes, padding mask, unmerge', async () => {
    // [B, N, C, r, threshold, maxR, classToken]
    const CASES: Array<[number, number, number, number, number | undefined, number | undefined, boolean]> = [
      [1, 1, 3, 1, undefined, undefined, false], [1, 7, 5, 2, undefined, undefined, false], [4, 33, 6, 5, undefined, undefined, true],
      [6, 41, 24, 8, undefined, undefined, true], [3, 130, 16, 30, undefined, 12, false], [2, 197, 768, 16, 0.09, undefined, true],
    ];
    let seed = 1000;
    for (const [B, N, C, r, threshold, maxR, classToken] of CASES) {
      const metric = randomTensor([B, N, C], seed++);
      const label = `B=${B} N=${N} C=${C} r=${r}${threshold !== undefined ? ` threshold ${threshold}` : ''}${maxR !== undefined ? ` maxR ${maxR}` : ''}${classToken ? ' cls' : ''}`;
      const opts = { r, classToken, ...(threshold !== undefined ? { threshold } : {}), ...(maxR !== undefined ? { maxR } : {}) };
      const want = reference.batchLevelSoftMatching(metric.data, B, N, C, opts);
      if (want.srcIdx.length > 0) {
        // Premise: the cut of the flattened ranking (and each item's maxR cut) is clear, and
        // every merged token's best match beats its second best. The order among merged edges
        // does not change the output, so srcIdx is compared as a set.
        const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
        const aPos = list(Int32Array.from({ length: nA }, (_, i) => 2 * i)), bPos = list(Int32Array.from({ length: nB }, (_, i) => 2 * i + 1));
        const flat: number[] = [];
        const sims = Array.from({ length: B }, (_, t) => simOf(metric, t));
        let gap = Infinity;
        for (let t = 0; t < B; t++) {
          const best = bestTwo(sims[t]!, N, aPos, bPos).map(([s], i) => (classToken && i === 0 ? -Infinity : s));
          const own = [...best].sort((a, b) => b - a);
          const kept = maxR !== undefined ? own.slice(0, maxR) : own;
          if (maxR !== undefined && maxR < own.length && Number.isFinite(own[maxR]!)) gap = Math.min(gap, own[maxR - 1]! - own[maxR]!);
          flat.push(...best.map((s) => (kept.includes(s) ? s : -Infinity)));
        }
        const sorted = flat.filter(Number.isFinite).sort((a, b) => b - a);
        const rb = want.srcIdx.length;
        if (rb < sorted.length) gap = Math.min(gap, sorted[rb - 1]! - sorted[rb]!);
        if (threshold !== undefined) for (const s of sorted) gap = Math.min(gap, Math.abs(s - threshold));
        for (const e of want.srcIdx) {
          const t = Math.floor(e / nA), i = e % nA;
          gap = Math.min(gap, bestTwo(sims[t]!, N, [aPos[i]!], bPos)[0]![1]);
        }
        assert.ok(gap > 1e-6, `${label}: near-tied deciding scores (gap ${gap}); pick another seed`);
      }
      const plan = await h.mk.batchLevelSoftMatching(metric, opts);
      assert.instance(plan, BatchLevelMergePlan);
      assert.equal(list(plan.merged), list(want.merged), `${label}: merged per item`);
      const edges = (p: { srcIdx: Int32Array; dstIdx: Int32Array }) => list(p.srcIdx).map((e, k) => `${e}→${p.dstIdx[k]}`).sort();
      assert.equal(edges(plan), edges(want), `${label}: merged edges`);
      assert.equal(list(plan.paddingMask), list(want.paddingMask), `${label}: paddingMask`);
      assert.equal(list(plan.outputRow), list(want.outputRow), `${label}: outputRow`);
      assert.is(plan.batchThreshold === undefined, want.batchThreshold === undefined, `${label}: batchThreshold given`);
      if (want.batchThreshold !== undefined) allClose([plan.batchThreshold!], [want.batchThreshold], { atol: 1e-6 }, `${label}: batchThreshold`);
      const x = randomTensor([B, N, D], seed++);
      const merged = plan.merge(x, { mode: 'sum' });
      assert.equal(merged.x.shape, [B, N, D]);
      assert.equal(merged.paddingMask.shape, [B, N]);
      if (h.checks('merge')) allClose(merged.x.data, reference.batchLevelMerge(want, x.data, D, 'sum'), { rtol: 1e-5, atol: 1e-6 }, `${label}: merge`);
      // Padded slots are zero; unmerge sends every token back to its position.
      for (let i = 0; i < B * N; i++) if (merged.paddingMask.data[i] === 1) for (let d = 0; d < D; d++) assert.is(merged.x.data[i * D + d], 0);
      const back = plan.unmerge(merged.x);
      assert.equal(back.shape, [B, N, D]);
      let total = 0;
      for (const m of plan.merged) total += m;
      assert.is(total, plan.srcIdx.length);
      if (threshold === undefined) assert.ok(total <= plan.r * B, `${label}: at most r·B merges`);
    }
  });

  test('bad input: negative r, w·h ≠ N, stride 0 or too large, NaN metric or threshold, k, seed, ratio, margin', async () => {
    const metric = randomTensor([1, 12, 4], 5);
    const g = { w: 4, h: 3, sx: 2, sy: 2, r: 2 };
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(metric, { ...g, r: -1 }), 'INVALID_OPTION', ['r', 'non-negative integer']);
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(metric, { ...g, w: 5 }), 'INVALID_OPTION', ['w', 'N = 12', 'w·h = 15']);
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(metric, { ...g, sx: 0 }), 'INVALID_OPTION', ['sx', '[1, 4]']);
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(metric, { ...g, sy: 4 }), 'INVALID_OPTION', ['sy', '[1, 3]']);
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(metric, { ...g, seed: -1 }), 'INVALID_OPTION', ['seed']);
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(metric, { ...g, noRand: 1 as never }), 'INVALID_OPTION', ['noRand', 'boolean']);
    const nan = randomTensor([1, 12, 4], 6);
    nan.data[7] = NaN;
    await rejects(() => h.mk.bipartiteSoftMatchingRandom2d(nan, g), 'NON_FINITE', ['metric', 'index 7']);
    await rejects(() => h.mk.kthBipartiteSoftMatching(metric, { k: 0 }), 'INVALID_OPTION', ['k']);
    await rejects(() => h.mk.kthBipartiteSoftMatching(metric, { k: 13 }), 'INVALID_OPTION', ['k', '[1, 12]']);
    await rejects(() => h.mk.kthBipartiteSoftMatching(nan, { k: 2 }), 'NON_FINITE', ['metric']);
    await rejects(() => h.mk.randomBipartiteSoftMatching(metric, { r: -2 }), 'INVALID_OPTION', ['r']);
    await rejects(() => h.mk.randomBipartiteSoftMatching(metric, { r: 2, seed: 2 ** 32 }), 'INVALID_OPTION', ['seed']);
    await rejects(() => h.mk.thresholdSoftMatching(metric, { threshold: NaN }), 'INVALID_OPTION', ['threshold', 'finite']);
    await rejects(() => h.mk.thresholdSoftMatching(metric, { threshold: 0.5, maxR: -1 }), 'INVALID_OPTION', ['maxR']);
    await rejects(() => h.mk.thresholdSoftMatching(nan, { threshold: 0.5 }), 'NON_FINITE', ['metric']);
    await rejects(() => h.mk.batchLevelSoftMatching(metric, { r: -1 }), 'INVALID_OPTION', ['r']);
    await rejects(() => h.mk.batchLevelSoftMatching(metric, { r: 1, threshold: NaN }), 'INVALID_OPTION', ['threshold']);
    await rejects(() => h.mk.pitomeSoftMatching(metric, { r: -1, margin: 0.5 }), 'INVALID_OPTION', ['r']);
    await rejects(() => h.mk.pitomeSoftMatching(metric, { margin: 0.5 }), 'INVALID_OPTION', ['r', 'ratio', 'neither']);
    await rejects(() => h.mk.pitomeSoftMatching(metric, { r: 1, ratio: 0.5, margin: 0.5 }), 'INVALID_OPTION', ['both']);
    await rejects(() => h.mk.pitomeSoftMatching(metric, { ratio: 1.5, margin: 0.5 }), 'INVALID_OPTION', ['ratio', '[0, 1]']);
    await rejects(() => h.mk.pitomeSoftMatching(metric, { r: 1, margin: NaN }), 'INVALID_OPTION', ['margin']);
    await rejects(() => h.mk.pitomeSoftMatching(randomTensor([12, 4], 1), { r: 1, margin: 0 }), 'INVALID_SHAPE', ['metric', 'rank 3']);
    // Tensors that do not fit the plans.
    const t = await h.mk.thresholdSoftMatching(metric, { threshold: -2 });
    await rejects(() => t.merge(randomTensor([2, 12, 3], 1)), 'SHAPE_MISMATCH', ['x', '[1, 12, D]']);
    await rejects(() => t.unmerge([]), 'INVALID_TYPE', ['ys', '1 tensors']);
    await rejects(() => t.unmerge([randomTensor([1, 12, 3], 1)]), 'SHAPE_MISMATCH', ['ys[0]', `[1, ${12 - t.r[0]!}, D]`]);
    const b = await h.mk.batchLevelSoftMatching(metric, { r: 2 });
    await rejects(() => b.merge(randomTensor([1, 11, 3], 1)), 'SHAPE_MISMATCH', ['x']);
    await rejects(() => b.merge(randomTensor([1, 12, 3], 1), { mode: 'max' as never }), 'INVALID_OPTION', ['mode']);
    await rejects(() => b.unmerge(randomTensor([1, 10, 3], 1)), 'SHAPE_MISMATCH', ['y']);
    const k = await h.mk.kthBipartiteSoftMatching(metric, { k: 5 });
    await rejects(() => k.unmerge(randomTensor([1, 3, 3], 1)), 'SHAPE_MISMATCH', ['y', '[1, 2, D]']);
  });

  if (h.checks('mergeWavg')) test('plumbing: plans from the variants work with mergeWavg and mergeSource', async () => {
    const metric = randomTensor([2, 12, 4], 31);
    const plan = await h.mk.bipartiteSoftMatchingRandom2d(metric, { w: 4, h: 3, sx: 2, sy: 2, r: 5, seed: 2 });
    assert.instance(plan, TokenMergePlan);
    const source = h.mk.mergeSource(plan);
    assert.equal(source.shape, [2, 7, 12]);
    // Every original token is held by exactly one merged token; sizes count them.
    const sizes = h.mk.mergeWavg(plan, randomTensor([2, 12, 3], 32)).size;
    for (let t = 0; t < 2; t++) {
      for (let j = 0; j < 12; j++) {
        let holders = 0;
        for (let i = 0; i < 7; i++) holders += source.data[(t * 7 + i) * 12 + j]!;
        assert.is(holders, 1, `token ${j} of item ${t}`);
      }
      for (let i = 0; i < 7; i++) {
        let count = 0;
        for (let j = 0; j < 12; j++) count += source.data[(t * 7 + i) * 12 + j]!;
        assert.is(sizes.data[t * 7 + i], count, `size of row ${i}`);
      }
    }
  });

  test.run();
}
