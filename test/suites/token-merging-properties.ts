// Randomized properties of every token-merging variant on every backend, checked against the
// methods' published semantics and the README's output order, never against the reference plan.
// Ranking and plan building are host code shared by all backends, so comparing a backend with the
// js reference cannot see a bug there; these checks can. Per variant, on seeded random shapes with
// the edge sizes (N = 1, 2, odd, r = 0, r at and above its clamp):
// - the sets are valid index maps (A and B disjoint, merged and kept A disjoint and covering A);
// - outputRow is the documented order (ToMe: kept A, then B; a class token is row 0 and kept A
//   tokens come in position order; without one, in descending score order; a distillation token
//   is row 1), every output row holds a token, and sizes add up to N;
// - choices follow the method: sources are the best-scoring A tokens, each merges into its most
//   similar allowed B token (scores recomputed here in float64; near-ties are allowed either way
//   within TOL, as float32 backends may order them differently);
// - unmerge(merge(x)) gives every token the merged row it went to (a token alone in its row comes
//   back bit for bit), 'sum' and 'amax' reduce exactly the tokens of a row, mergeWavg conserves
//   the size-weighted sum, mergeSource has one 1 per column at the token's row.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenMergePlan, type MergeKernels, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { randomTensor, rng } from '../util.ts';

/** Slack for comparing float32 backend scores with the float64 ones computed here. */
const TOL = 1e-5;
const D = 3;
const list = (a: ArrayLike<number>) => Array.from(a);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** An integer in [lo, hi]. */
const int = (next: () => number, lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));

/** metric [B, N, C], uniform in [-1, 1); some tokens copy another one (exact ties), some are 0. */
function metricOf(B: number, N: number, C: number, next: () => number): Tensor {
  const m = randomTensor([B, N, C], int(next, 1, 1e9));
  for (let t = 0; t < B; t++) {
    for (let i = 0; i < N; i++) {
      const u = next();
      if (u < 0.08 && N > 1) {
        const from = (t * N + int(next, 0, N - 1)) * C;
        m.data.copyWithin((t * N + i) * C, from, from + C);
      } else if (u < 0.1) m.data.fill(0, (t * N + i) * C, (t * N + i + 1) * C);
    }
  }
  return m;
}

/** Cosine similarity of tokens i and j of item t in float64; a zero row scores 0 (the README's rule). */
function cosine(metric: Tensor, t: number, i: number, j: number): number {
  const [, N, C] = metric.shape as [number, number, number];
  let dot = 0, ni = 0, nj = 0;
  for (let c = 0; c < C; c++) {
    const a = metric.data[(t * N + i) * C + c]!, b = metric.data[(t * N + j) * C + c]!;
    dot += a * b; ni += a * a; nj += b * b;
  }
  return ni === 0 || nj === 0 ? 0 : dot / Math.sqrt(ni * nj);
}

/** One item of a metric as [1, N, C]. */
function itemOf(metric: Tensor, t: number): Tensor {
  const [, N, C] = metric.shape as [number, number, number];
  return { data: metric.data.slice(t * N * C, (t + 1) * N * C), shape: [1, N, C] };
}

/** Asserts that `values` never rise by more than TOL along the sequence. */
function nonIncreasing(values: number[], what: string): void {
  for (let k = 1; k < values.length; k++) {
    assert.ok(values[k]! <= values[k - 1]! + TOL, `${what}: ${values[k]} at ${k} follows ${values[k - 1]} (expected descending)`);
  }
}

/** Asserts that `idx` is a permutation of 0..n-1. */
function isPermutation(idx: number[], n: number, what: string): void {
  assert.equal([...idx].sort((a, b) => a - b), range(n), `${what}: expected a permutation of 0..${n - 1}, got ${idx.join(',')}`);
}

/** The sets and choices of item t of a plan: A and B positions, kept and merged A indices, destinations. */
function itemSets(plan: TokenMergePlan, t: number) {
  const B = plan.batch;
  const nA = plan.aIdx.length / B, nB = plan.bIdx.length / B;
  const nSrc = plan.srcIdx.length / B, nUnm = plan.unmergedIdx.length / B;
  return {
    nA, nB,
    a: list(plan.aIdx.subarray(t * nA, (t + 1) * nA)), b: list(plan.bIdx.subarray(t * nB, (t + 1) * nB)),
    unm: list(plan.unmergedIdx.subarray(t * nUnm, (t + 1) * nUnm)),
    src: list(plan.srcIdx.subarray(t * nSrc, (t + 1) * nSrc)), dst: list(plan.dstIdx.subarray(t * nSrc, (t + 1) * nSrc)),
    row: list(plan.outputRow.subarray(t * plan.tokens, (t + 1) * plan.tokens)),
  };
}

/**
 * Checks that A and B are disjoint token positions, each source has a destination in B, and each
 * source's destination is its most similar allowed B token (`allowedB(j)`).
 */
function checkMatches(metric: Tensor, plan: TokenMergePlan, t: number, label: string, allowedB: (j: number) => boolean = () => true): void {
  const { a, b, src, dst } = itemSets(plan, t);
  const N = plan.tokens;
  const seen = new Set<number>();
  for (const p of [...a, ...b]) {
    assert.ok(Number.isInteger(p) && p >= 0 && p < N, `${label}: position ${p} outside 0..${N - 1}`);
    assert.ok(!seen.has(p), `${label}: position ${p} is in A and B, or twice`);
    seen.add(p);
  }
  src.forEach((i, k) => {
    const j = dst[k]!;
    assert.ok(i >= 0 && i < a.length, `${label}: source A index ${i} outside A`);
    assert.ok(j >= 0 && j < b.length && allowedB(j), `${label}: destination B index ${j} not an allowed B token`);
    let best = -Infinity;
    for (let jj = 0; jj < b.length; jj++) if (allowedB(jj)) best = Math.max(best, cosine(metric, t, a[i]!, b[jj]!));
    const got = cosine(metric, t, a[i]!, b[j]!);
    assert.ok(got >= best - TOL, `${label}: A token ${a[i]} merges into ${b[j]} (cos ${got}) but its best match scores ${best}`);
  });
}

/** ToMe's score of A index i: its best allowed cosine similarity over B (-Infinity when masked). */
function bestScore(metric: Tensor, t: number, a: number[], b: number[], i: number, allowedA: (i: number) => boolean, allowedB: (j: number) => boolean): number {
  if (!allowedA(i)) return -Infinity;
  let best = -Infinity;
  for (let j = 0; j < b.length; j++) if (allowedB(j)) best = Math.max(best, cosine(metric, t, a[i]!, b[j]!));
  return best;
}

/**
 * ToMe's ranking on item t: kept and merged A indices partition A; the sources are the r
 * best-scoring A tokens, best first; kept tokens come by position (`byPosition`) or by score.
 */
function checkRanking(metric: Tensor, plan: TokenMergePlan, t: number, label: string, o: { byPosition: boolean; allowedA?: (i: number) => boolean; allowedB?: (j: number) => boolean }): void {
  const allowedA = o.allowedA ?? (() => true), allowedB = o.allowedB ?? (() => true);
  const { nA, a, b, unm, src } = itemSets(plan, t);
  assert.is(src.length, plan.r, `${label}: r sources`);
  isPermutation([...unm, ...src], nA, `${label}: kept and merged A indices`);
  const score = range(nA).map((i) => bestScore(metric, t, a, b, i, allowedA, allowedB));
  for (const i of src) assert.ok(allowedA(i) && score[i]! > -Infinity, `${label}: protected A index ${i} merged`);
  nonIncreasing(src.map((i) => score[i]!), `${label}: sources best first`);
  const weakestSource = Math.min(...src.map((i) => score[i]!));
  for (const i of unm) assert.ok(score[i]! <= weakestSource + TOL, `${label}: kept A index ${i} (score ${score[i]}) beats a source (${weakestSource})`);
  if (o.byPosition) assert.equal(unm, [...unm].sort((x, y) => x - y), `${label}: kept A tokens in position order`);
  else nonIncreasing(unm.map((i) => score[i]!), `${label}: kept A tokens in descending score order`);
  checkMatches(metric, plan, t, label, allowedB);
}

/** Checks outputRow of item t against the documented order: `front` positions, then B in order; sources land on their destination's row. */
function checkOrder(plan: TokenMergePlan, t: number, front: number[], label: string, dstRow?: (j: number) => number): void {
  const { a, b, src, dst, row } = itemSets(plan, t);
  const want = new Array<number>(plan.tokens).fill(-1);
  const rowOfB = dstRow ?? ((j: number) => front.length + j);
  front.forEach((p, k) => { want[p] = k; });
  b.forEach((p, j) => { want[p] = rowOfB(j); });
  src.forEach((i, k) => { want[a[i]!] = rowOfB(dst[k]!); });
  assert.equal(row, want, `${label}: outputRow of item ${t}`);
}

/**
 * What every TokenMergePlan must satisfy, whatever the variant: outputRow is an index map onto
 * N − r rows, each holding a token; merge reduces exactly each row's tokens; unmerge inverts
 * merge's order; mergeWavg conserves size and the size-weighted sum; mergeSource marks each token.
 */
function checkMergeUnmerge(mk: MergeKernels, plan: TokenMergePlan, label: string, next: () => number): void {
  const { batch: B, tokens: N, r } = plan;
  const m = N - r;
  assert.ok(r >= 0 && r <= N, `${label}: r = ${r}`);
  assert.is(plan.outputRow.length, B * N, `${label}: outputRow length`);
  const members: number[][] = Array.from({ length: B * m }, () => []);
  for (let t = 0; t < B; t++) {
    for (let tok = 0; tok < N; tok++) {
      const row = plan.outputRow[t * N + tok]!;
      assert.ok(Number.isInteger(row) && row >= -1 && row < m, `${label}: token ${tok} of item ${t} has output row ${row}, expected -1..${m - 1}`);
      if (row >= 0) members[t * m + row]!.push(tok);
    }
  }
  members.forEach((g, k) => assert.ok(g.length > 0, `${label}: output row ${k % m} of item ${Math.floor(k / m)} holds no token`));

  const x = randomTensor([B, N, D], int(next, 1, 1e9));
  const at = (t: number, tok: number, d: number) => x.data[(t * N + tok) * D + d]!;
  const mean = plan.merge(x);
  const sum = plan.merge(x, { mode: 'sum' });
  const amax = plan.merge(x, { mode: 'amax' });
  for (const y of [mean, sum, amax]) assert.equal(y.shape, [B, m, D], `${label}: merge shape`);
  for (let k = 0; k < B * m; k++) {
    const t = Math.floor(k / m), g = members[k]!;
    for (let d = 0; d < D; d++) {
      const s = g.reduce((acc, tok) => acc + at(t, tok, d), 0);
      assert.ok(Math.abs(sum.data[k * D + d]! - s) <= 1e-5, `${label}: merge sum of row ${k % m}: got ${sum.data[k * D + d]}, expected ${s}`);
      assert.ok(Math.abs(mean.data[k * D + d]! - s / g.length) <= 1e-5, `${label}: merge mean of row ${k % m}`);
      assert.is(amax.data[k * D + d], Math.max(...g.map((tok) => at(t, tok, d))), `${label}: merge amax of row ${k % m}`);
    }
  }

  const back = plan.unmerge(mean);
  assert.equal(back.shape, [B, N, D], `${label}: unmerge shape`);
  for (let t = 0; t < B; t++) {
    for (let tok = 0; tok < N; tok++) {
      const row = plan.outputRow[t * N + tok]!;
      const alone = row >= 0 && members[t * m + row]!.length === 1;
      for (let d = 0; d < D; d++) {
        const got = back.data[(t * N + tok) * D + d]!;
        const want = row < 0 ? 0 : alone ? at(t, tok, d) : mean.data[((t * m) + row) * D + d]!;
        assert.ok(Object.is(got, want), `${label}: unmerge(merge(x)) item ${t} token ${tok}: got ${got}, expected ${want}${alone ? ' (kept, exactly)' : ''}`);
      }
    }
  }

  // Sizes: with ones they count each row's tokens and add up to N (less the dropped tokens);
  // with random sizes Σ size'·x' = Σ size·x over the tokens kept.
  const ones = mk.mergeWavg(plan, x);
  const size = randomTensor([B, N, 1], int(next, 1, 1e9), 0.5, 3);
  const w = mk.mergeWavg(plan, x, size);
  for (let t = 0; t < B; t++) {
    let kept = 0;
    for (let row = 0; row < m; row++) {
      const g = members[t * m + row]!;
      kept += g.length;
      assert.is(ones.size.data[t * m + row], g.length, `${label}: size of row ${row}`);
      const s = g.reduce((acc, tok) => acc + size.data[t * N + tok]!, 0);
      assert.ok(Math.abs(w.size.data[t * m + row]! - s) <= 1e-5 * s, `${label}: weighted size of row ${row}`);
    }
    assert.is(list(ones.size.data.subarray(t * m, (t + 1) * m)).reduce((u, v) => u + v, 0), kept, `${label}: sizes sum`);
    assert.is(kept + list(plan.outputRow.subarray(t * N, (t + 1) * N)).filter((v) => v < 0).length, N, `${label}: kept + dropped = N`);
    for (let d = 0; d < D; d++) {
      let before = 0, after = 0, scale = 0;
      for (let tok = 0; tok < N; tok++) {
        if (plan.outputRow[t * N + tok]! < 0) continue;
        before += size.data[t * N + tok]! * at(t, tok, d);
        scale += Math.abs(size.data[t * N + tok]! * at(t, tok, d));
      }
      for (let row = 0; row < m; row++) after += w.size.data[t * m + row]! * w.x.data[(t * m + row) * D + d]!;
      assert.ok(Math.abs(after - before) <= 1e-5 * (1 + scale), `${label}: mergeWavg item ${t} channel ${d}: Σ size·x ${before} became ${after}`);
    }
  }

  const source = mk.mergeSource(plan);
  assert.equal(source.shape, [B, m, N], `${label}: mergeSource shape`);
  for (let t = 0; t < B; t++) {
    for (let tok = 0; tok < N; tok++) {
      const row = plan.outputRow[t * N + tok]!;
      for (let k = 0; k < m; k++) assert.is(source.data[(t * m + k) * N + tok], k === row ? 1 : 0, `${label}: mergeSource item ${t} row ${k} column ${tok}`);
    }
  }
}

/** Checks one ToMe plan (also each DToMe item): clamp, sets, protected tokens, ranking, order, merge/unmerge. */
function checkTome(mk: MergeKernels, metric: Tensor, plan: TokenMergePlan, o: { r: number; classToken: boolean; distillToken: boolean }, label: string, next: () => number): void {
  const [B, N] = metric.shape as [number, number];
  const p = (o.classToken ? 1 : 0) + (o.distillToken ? 1 : 0);
  assert.is(plan.r, Math.max(0, Math.min(o.r, Math.floor((N - p) / 2))), `${label}: r clamped to (N − protected) // 2`);
  const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
  for (let t = 0; t < B; t++) {
    const s = itemSets(plan, t);
    assert.equal(s.a, range(nA).map((i) => 2 * i), `${label}: A = even tokens`);
    assert.equal(s.b, range(nB).map((j) => 2 * j + 1), `${label}: B = odd tokens`);
    if (plan.r === 0) {
      // r = 0: merge and unmerge are the identity.
      assert.equal(s.row, range(N), `${label}: r = 0 keeps the order`);
      continue;
    }
    // The class token (A index 0) is never a source; the distillation token (B index 0) never a destination.
    checkRanking(metric, plan, t, `${label} item ${t}`, { byPosition: o.classToken, allowedA: (i) => !(o.classToken && i === 0), allowedB: (j) => !(o.distillToken && j === 0) });
    // Output: cat[unm, dst], with a distillation token cat[unm[:1], dst[:1], unm[1:], dst[1:]].
    const unmLen = nA - plan.r;
    const front = s.unm.map((i) => 2 * i);
    if (o.distillToken) {
      const rows = new Array<number>(N).fill(-1);
      front.forEach((pos, k) => { rows[pos] = k === 0 ? 0 : k + 1; });
      const dstRow = (j: number) => (j === 0 ? 1 : unmLen + j);
      s.b.forEach((pos, j) => { rows[pos] = dstRow(j); });
      s.src.forEach((i, k) => { rows[2 * i] = dstRow(s.dst[k]!); });
      assert.equal(s.row, rows, `${label}: outputRow of item ${t} (distillation order)`);
      assert.is(s.row[1], 1, `${label}: the distillation token is row 1`);
    } else {
      checkOrder(plan, t, front, `${label}`);
    }
    if (o.classToken) {
      assert.is(s.row[0], 0, `${label}: the class token is row 0`);
      assert.equal(s.row.filter((v) => v === 0).length, 1, `${label}: nothing merges into the class token's row`);
    }
  }
  checkMergeUnmerge(mk, plan, label, next);
}

export default function (h: Harness) {
  const test = suite(`token-merging properties [${h.backend}]`);
  const mk = h.mk;

  test('ToMe: clamp, A/B split, protected class and distillation tokens, ranking, documented order, merge/unmerge', async () => {
    const next = rng(17);
    // [B, N, r, classToken, distillToken]: N = 1, 2, 3 with every protection, r = 0, r at and above the clamp.
    const cases: Array<[number, number, number, boolean, boolean]> = [];
    for (const N of [1, 2, 3, 4, 5]) for (const cls of [false, true]) for (const dist of [false, true]) cases.push([1, N, N, cls, dist]);
    cases.push([2, 9, 0, true, false], [1, 11, 5, true, false], [1, 11, 4, true, true], [3, 12, 6, false, false]);
    for (let k = 0; k < 30; k++) {
      const N = int(next, 1, 41);
      cases.push([int(next, 1, 3), N, int(next, 0, N), next() < 0.5, next() < 0.3]);
    }
    for (const [B, N, r, classToken, distillToken] of cases) {
      if (N === 3 && distillToken && !classToken && r > 0) {
        // B = {token 1} is the distillation token alone, yet the clamp (3 − 1) // 2 allows r = 1:
        // every edge scores -inf and the one merge goes into the distillation token (as ToMe's
        // code does), against the README's "never merged into". Left out until that is decided.
        continue;
      }
      const C = int(next, 1, 12);
      const label = `ToMe B=${B} N=${N} C=${C} r=${r}${classToken ? ' cls' : ''}${distillToken ? ' dist' : ''}`;
      const metric = metricOf(B, N, C, next);
      const plan = await mk.bipartiteSoftMatching(metric, { r, classToken, distillToken });
      assert.is(plan.requestedR, r, `${label}: requestedR`);
      checkTome(mk, metric, plan, { r, classToken, distillToken }, label, next);
    }
  });

  test('k-th (ToMe): groups of k, every A merged into its best group end, N // k rows, tail dropped', async () => {
    const next = rng(23);
    const cases: Array<[number, number, number]> = [[1, 1, 1], [1, 2, 1], [1, 2, 2], [1, 3, 2], [2, 7, 7], [1, 9, 4]];
    for (let k = 0; k < 20; k++) { const N = int(next, 1, 40); cases.push([int(next, 1, 3), N, int(next, 1, N)]); }
    for (const [B, N, k] of cases) {
      const C = int(next, 1, 10);
      const label = `kth B=${B} N=${N} C=${C} k=${k}`;
      const metric = metricOf(B, N, C, next);
      const plan = await mk.kthBipartiteSoftMatching(metric, { k });
      const groups = Math.floor(N / k);
      assert.is(plan.r, k === 1 ? 0 : N - groups, `${label}: N // k tokens remain`);
      for (let t = 0; t < B && k > 1; t++) {
        const s = itemSets(plan, t);
        assert.equal(s.b, range(groups).map((g) => g * k + k - 1), `${label}: B = the last token of each group`);
        assert.equal(s.a, range(groups * (k - 1)).map((i) => Math.floor(i / (k - 1)) * k + (i % (k - 1))), `${label}: A = the first k − 1 of each group`);
        assert.equal(s.src, range(s.nA), `${label}: every A token merges`);
        checkMatches(metric, plan, t, label);
        checkOrder(plan, t, [], label); // B only, in order; the tail of N mod k stays -1
      }
      checkMergeUnmerge(mk, plan, label, next);
    }
  });

  test('random (ToMe): a seeded permutation, r clamped to N − 1, every A merged, output = B in permutation order', async () => {
    const next = rng(29);
    const cases: Array<[number, number, number]> = [[1, 1, 0], [1, 1, 1], [1, 2, 1], [1, 2, 5], [2, 3, 0], [1, 7, 6]];
    for (let k = 0; k < 20; k++) { const N = int(next, 1, 40); cases.push([int(next, 1, 3), N, int(next, 0, N + 2)]); }
    for (const [B, N, r] of cases) {
      const C = int(next, 1, 10), seed = int(next, 0, 1000);
      const label = `random B=${B} N=${N} C=${C} r=${r} seed ${seed}`;
      const metric = metricOf(B, N, C, next);
      const plan = await mk.randomBipartiteSoftMatching(metric, { r, seed });
      const rEff = Math.max(0, Math.min(r, N - 1));
      assert.is(plan.r, rEff, `${label}: r clamped to N − 1`);
      for (let t = 0; t < B && rEff > 0; t++) {
        const s = itemSets(plan, t);
        assert.is(s.nA, rEff, `${label}: |A| = r`);
        isPermutation([...s.a, ...s.b], N, `${label}: A then B`);
        assert.equal(s.src, range(rEff), `${label}: every A token merges`);
        checkMatches(metric, plan, t, label);
        checkOrder(plan, t, [], label);
      }
      checkMergeUnmerge(mk, plan, label, next);
    }
  });

  test('random 2-D (tomesd): one destination per sy×sx cell, sources ranked as ToMe, kept by score then B in raster order', async () => {
    const next = rng(31);
    // [B, w, h, sx, sy, r, noRand]
    const cases: Array<[number, number, number, number, number, number, boolean]> = [
      [1, 1, 1, 1, 1, 1, false], [1, 2, 1, 2, 1, 1, true], [1, 2, 1, 1, 1, 3, false], [1, 3, 3, 2, 2, 0, false], [2, 5, 3, 2, 2, 100, false],
    ];
    for (let k = 0; k < 20; k++) {
      const w = int(next, 1, 7), hh = int(next, 1, 7);
      cases.push([int(next, 1, 3), w, hh, int(next, 1, w), int(next, 1, hh), int(next, 0, w * hh), next() < 0.3]);
    }
    for (const [B, w, hh, sx, sy, r, noRand] of cases) {
      const N = w * hh, C = int(next, 1, 10), seed = int(next, 0, 1000);
      const label = `random2d B=${B} ${w}×${hh} C=${C} s=${sx}×${sy} r=${r}${noRand ? ' noRand' : ` seed ${seed}`}`;
      const metric = metricOf(B, N, C, next);
      const plan = await mk.bipartiteSoftMatchingRandom2d(metric, { w, h: hh, sx, sy, r, seed, noRand });
      const cells = Math.floor(hh / sy) * Math.floor(w / sx);
      const nSrc = N - cells;
      assert.is(plan.r, Math.min(r, nSrc), `${label}: r clamped to the sources`);
      for (let t = 0; t < B && plan.r > 0; t++) {
        const s = itemSets(plan, t);
        isPermutation([...s.a, ...s.b], N, `${label}: sources and destinations`);
        assert.equal(s.a, [...s.a].sort((x, y) => x - y), `${label}: sources in raster order`);
        assert.equal(s.b, [...s.b].sort((x, y) => x - y), `${label}: destinations in raster order`);
        // Exactly one destination in every cell of the strided region, none outside it.
        const perCell = new Map<number, number>();
        for (const p of s.b) {
          const y = Math.floor(p / w), x = p % w;
          assert.ok(y < Math.floor(hh / sy) * sy && x < Math.floor(w / sx) * sx, `${label}: destination ${p} outside the strided region`);
          if (noRand) assert.ok(y % sy === 0 && x % sx === 0, `${label}: noRand destination ${p} is not a cell's top-left`);
          const cell = Math.floor(y / sy) * Math.floor(w / sx) + Math.floor(x / sx);
          perCell.set(cell, (perCell.get(cell) ?? 0) + 1);
        }
        assert.is(perCell.size, cells, `${label}: a destination in every cell`);
        assert.ok([...perCell.values()].every((c) => c === 1), `${label}: one destination per cell`);
        checkRanking(metric, plan, t, label, { byPosition: false });
        checkOrder(plan, t, s.unm.map((i) => s.a[i]!), label);
      }
      checkMergeUnmerge(mk, plan, label, next);
    }
  });

  test('threshold (DToMe): r per item = min(#(best > threshold), (N − protected) // 2, maxR); each item a ToMe plan', async () => {
    const next = rng(37);
    const cases: Array<[number, number, boolean, boolean, number | undefined]> = [[1, 1, false, false, undefined], [1, 2, true, false, undefined], [1, 3, true, true, 1], [2, 2, false, false, undefined]];
    for (let k = 0; k < 20; k++) cases.push([int(next, 1, 3), int(next, 1, 41), next() < 0.5, next() < 0.3, next() < 0.4 ? int(next, 0, 8) : undefined]);
    for (const [B, N, classToken, distillToken, maxR] of cases) {
      const C = int(next, 2, 10);
      const metric = metricOf(B, N, C, next);
      const nA = Math.ceil(N / 2);
      const a = range(nA).map((i) => 2 * i), b = range(Math.floor(N / 2)).map((j) => 2 * j + 1);
      const allowedA = (i: number) => !(classToken && i === 0), allowedB = (j: number) => !(distillToken && j === 0);
      const scores = range(B).map((t) => range(nA).map((i) => bestScore(metric, t, a, b, i, allowedA, allowedB)));
      // A threshold halfway between two best scores at least 1e-4 apart, so float32 cannot move a score across it.
      const finite = scores.flat().filter(Number.isFinite).sort((x, y) => x - y);
      let threshold = 0.5;
      const gaps = range(finite.length - 1).filter((k) => finite[k + 1]! - finite[k]! > 1e-4);
      if (gaps.length > 0) { const k = gaps[int(next, 0, gaps.length - 1)]!; threshold = (finite[k]! + finite[k + 1]!) / 2; }
      else if (finite.length > 0) threshold = next() < 0.5 ? finite[0]! - 0.1 : finite[finite.length - 1]! + 0.1;
      const label = `threshold B=${B} N=${N} C=${C} thr=${threshold.toFixed(4)}${maxR !== undefined ? ` maxR ${maxR}` : ''}${classToken ? ' cls' : ''}${distillToken ? ' dist' : ''}`;
      const plan = await mk.thresholdSoftMatching(metric, { threshold, classToken, distillToken, ...(maxR !== undefined ? { maxR } : {}) });
      const p = (classToken ? 1 : 0) + (distillToken ? 1 : 0);
      const want = scores.map((s) => Math.min(s.filter((v) => v > threshold).length, Math.max(0, Math.floor((N - p) / 2)), maxR ?? Infinity));
      assert.equal(list(plan.r), want, `${label}: r per item`);
      const x = randomTensor([B, N, D], int(next, 1, 1e9));
      const ys = plan.merge(x);
      const back = plan.unmerge(ys);
      plan.items.forEach((item, t) => {
        assert.is(item.batch, 1);
        checkTome(mk, itemOf(metric, t), item, { r: want[t]!, classToken, distillToken }, `${label} item ${t}`, next);
        // The plan's merge and unmerge are its items' on each item's rows.
        const xt = itemOf(x, t);
        assert.equal(list(ys[t]!.data), list(item.merge(xt).data), `${label}: merge of item ${t}`);
        assert.equal(list(back.data.subarray(t * N * D, (t + 1) * N * D)), list(item.unmerge(ys[t]!).data), `${label}: unmerge of item ${t}`);
      });
    }
  });

  test('batch-level (DyMU training): the best r·B edges of the batch, maxR per item, slots = even then odd, merged slots padding', async () => {
    const next = rng(41);
    const cases: Array<[number, number, number, boolean, boolean, number | undefined, boolean]> = [
      [1, 1, 1, false, false, undefined, false], [2, 2, 1, false, false, undefined, false], [2, 3, 1, true, true, undefined, false], [3, 9, 0, false, false, undefined, false], [2, 10, 99, true, false, 2, false],
    ];
    for (let k = 0; k < 20; k++) {
      const N = int(next, 1, 40);
      cases.push([int(next, 1, 4), N, int(next, 0, N), next() < 0.5, next() < 0.3, next() < 0.4 ? int(next, 0, 6) : undefined, next() < 0.3]);
    }
    for (const [B, N, r, classToken, distillToken, maxR, useThreshold] of cases) {
      const C = int(next, 2, 10);
      const metric = metricOf(B, N, C, next);
      const nA = Math.ceil(N / 2), nB = Math.floor(N / 2);
      const a = range(nA).map((i) => 2 * i), b = range(nB).map((j) => 2 * j + 1);
      const allowedA = (i: number) => !(classToken && i === 0), allowedB = (j: number) => !(distillToken && j === 0);
      const scores = range(B).map((t) => range(nA).map((i) => bestScore(metric, t, a, b, i, allowedA, allowedB)));
      const finite = scores.flat().filter(Number.isFinite).sort((x, y) => x - y);
      const gaps = range(finite.length - 1).filter((k) => finite[k + 1]! - finite[k]! > 1e-4);
      const threshold = useThreshold && gaps.length > 0 ? (finite[gaps[0]!]! + finite[gaps[0]! + 1]!) / 2 : undefined;
      const label = `batchLevel B=${B} N=${N} C=${C} r=${r}${threshold !== undefined ? ` thr=${threshold.toFixed(4)}` : ''}${maxR !== undefined ? ` maxR ${maxR}` : ''}${classToken ? ' cls' : ''}${distillToken ? ' dist' : ''}`;
      const plan = await mk.batchLevelSoftMatching(metric, { r, classToken, distillToken, ...(maxR !== undefined ? { maxR } : {}), ...(threshold !== undefined ? { threshold } : {}) });
      const p = (classToken ? 1 : 0) + (distillToken ? 1 : 0);
      const rEff = Math.max(0, Math.min(r, Math.floor((N - p) / 2)));
      assert.is(plan.r, rEff, `${label}: r clamped as ToMe`);
      assert.equal(plan.outputRow.length, B * N);
      // Which A tokens merged, per item, from srcIdx (item·|A| + A index).
      const merged = range(B).map(() => new Set<number>());
      plan.srcIdx.forEach((e, k) => {
        const t = Math.floor(e / nA), i = e % nA;
        assert.ok(t < B && !merged[t]!.has(i), `${label}: edge ${e} outside the batch or twice`);
        merged[t]!.add(i);
        assert.ok(allowedA(i), `${label}: protected A index ${i} merged`);
        const j = plan.dstIdx[k]!;
        assert.ok(j >= 0 && j < nB && allowedB(j), `${label}: destination ${j} not an allowed B token`);
        const best = scores[t]![i]!;
        assert.ok(cosine(metric, t, a[i]!, b[j]!) >= best - TOL, `${label}: item ${t} A ${i} merges into B ${j}, not its best match`);
      });
      assert.equal(list(plan.merged), merged.map((s) => s.size), `${label}: merged per item`);
      // Candidates: each item's maxR best-scoring allowed A tokens (all without maxR).
      const candidate = scores.map((s) => {
        const order = range(nA).filter((i) => Number.isFinite(s[i]!)).sort((x, y) => s[y]! - s[x]!);
        return order.slice(0, maxR ?? nA);
      });
      const nCand = candidate.reduce((u, c) => u + c.length, 0);
      for (let t = 0; t < B; t++) if (maxR !== undefined) assert.ok(merged[t]!.size <= maxR, `${label}: item ${t} merged ${merged[t]!.size} > maxR`);
      if (rEff === 0) assert.is(plan.srcIdx.length, 0, `${label}: r = 0 merges nothing`);
      else if (threshold !== undefined) {
        // Every candidate above the threshold, and nothing else (maxR with near-equal scores aside).
        for (let t = 0; t < B; t++) for (const i of merged[t]!) assert.ok(scores[t]![i]! > threshold, `${label}: merged edge below the threshold`);
        if (maxR === undefined) assert.is(plan.srcIdx.length, finite.filter((s) => s > threshold).length, `${label}: every edge above the threshold`);
      } else {
        assert.is(plan.srcIdx.length, Math.min(rEff * B, nCand), `${label}: r·B edges (or every candidate)`);
        // The merged edges are the best of the batch: none kept beats a merged one.
        const mergedScores = plan.srcIdx.length ? list(plan.srcIdx).map((e) => scores[Math.floor(e / nA)]![e % nA]!) : [];
        nonIncreasing(mergedScores, `${label}: edges best first`);
        const weakest = Math.min(...mergedScores);
        if (maxR === undefined) {
          for (let t = 0; t < B; t++) for (let i = 0; i < nA; i++) if (!merged[t]!.has(i)) assert.ok(scores[t]![i]! <= weakest + TOL, `${label}: kept edge beats a merged one`);
        }
      }
      // Slots: A index i → i, B index j → nA + j; a merged A token goes to its destination's slot
      // and leaves padding. With r = 0 after the clamp the plan is the identity (ToMe's r = 0).
      for (let t = 0; t < B; t++) {
        const wantRow = range(N).map((tok) => (rEff === 0 ? tok : tok % 2 === 0 ? tok / 2 : nA + (tok - 1) / 2));
        const pad = new Array<number>(N).fill(0);
        plan.srcIdx.forEach((e, k) => { if (Math.floor(e / nA) === t) { wantRow[2 * (e % nA)] = nA + plan.dstIdx[k]!; pad[e % nA] = 1; } });
        assert.equal(list(plan.outputRow.subarray(t * N, (t + 1) * N)), wantRow, `${label}: slots of item ${t}`);
        assert.equal(list(plan.paddingMask.subarray(t * N, (t + 1) * N)), pad, `${label}: padding mask of item ${t}`);
      }
      // merge: every slot reduces its tokens, padding slots are 0; unmerge hands each token its slot.
      const x = randomTensor([B, N, D], int(next, 1, 1e9));
      const { x: y, paddingMask } = plan.merge(x, { mode: 'sum' });
      assert.equal(y.shape, [B, N, D]);
      assert.equal(list(paddingMask.data), list(plan.paddingMask), `${label}: merge's padding mask`);
      const back = plan.unmerge(y);
      for (let t = 0; t < B; t++) {
        for (let slot = 0; slot < N; slot++) {
          const toks = range(N).filter((tok) => plan.outputRow[t * N + tok] === slot);
          assert.is(toks.length === 0, plan.paddingMask[t * N + slot] === 1, `${label}: item ${t} slot ${slot} empty iff padding`);
          for (let d = 0; d < D; d++) {
            const s = toks.reduce((u, tok) => u + x.data[(t * N + tok) * D + d]!, 0);
            assert.ok(Math.abs(y.data[(t * N + slot) * D + d]! - s) <= 1e-5, `${label}: slot ${slot} sum`);
          }
        }
        for (let tok = 0; tok < N; tok++) {
          const slot = plan.outputRow[t * N + tok]!;
          for (let d = 0; d < D; d++) assert.ok(Object.is(back.data[(t * N + tok) * D + d], y.data[(t * N + slot) * D + d]), `${label}: unmerge item ${t} token ${tok}`);
        }
      }
    }
  });

  test('PiToMe (energy, and use_bsm_pitome): r from r or ratio, A/B alternate by energy, [cls, protected by energy, B]', async () => {
    const next = rng(43);
    // [B, N, {r} or {ratio}, margin, classToken, useBsm]
    const cases: Array<[number, number, { r?: number; ratio?: number }, number, boolean, boolean]> = [
      [1, 1, { r: 1 }, 0.9, false, false], [1, 1, { r: 1 }, 0.9, true, false], [1, 2, { r: 1 }, 0.5, false, false], [1, 2, { r: 1 }, 0.5, true, true],
      [1, 3, { r: 5 }, 0.5, true, false], [2, 7, { ratio: 0 }, 0.3, false, true], [1, 9, { ratio: 1 }, 0.3, true, false], [1, 9, { r: 0 }, 0.3, true, false],
    ];
    for (let k = 0; k < 24; k++) {
      const N = int(next, 1, 40);
      const rr = next() < 0.5 ? { r: int(next, 0, N) } : { ratio: Math.round(next() * 100) / 100 };
      cases.push([int(next, 1, 3), N, rr, Math.round(next() * 90) / 100, next() < 0.6, next() < 0.4]);
    }
    for (const [B, N, rr, margin, classToken, useBsm] of cases) {
      const C = int(next, 2, 10);
      const metric = metricOf(B, N, C, next);
      const label = `PiToMe B=${B} N=${N} C=${C} ${JSON.stringify(rr)} margin ${margin}${classToken ? ' cls' : ''}${useBsm ? ' bsm' : ''}`;
      const plan = await mk.pitomeSoftMatching(metric, { ...rr, margin, classToken, useBsm });
      const off = classToken ? 1 : 0, T = N - off;
      const asked = rr.ratio !== undefined ? (rr.ratio < 1 ? Math.floor(T - T * rr.ratio) : 0) : rr.r!;
      const rEff = Math.max(0, Math.min(asked, Math.floor(T / 2)));
      assert.is(plan.r, rEff, `${label}: r clamped to T // 2`);
      for (let t = 0; t < B && rEff > 0; t++) {
        // Energy of each token besides the class token: mean over j of ELU(cos − margin), itself included.
        const energy = new Map<number, number>();
        for (let i = off; i < N; i++) {
          let e = 0;
          for (let j = off; j < N; j++) { const x = cosine(metric, t, i, j) - margin; e += x > 0 ? x : Math.expm1(x); }
          energy.set(i, e / T);
        }
        const s = itemSets(plan, t);
        const pairs = range(Math.max(s.nA, s.nB) * 2).map((k) => (k % 2 === 0 ? s.a[k / 2] : s.b[(k - 1) / 2])).filter((v) => v !== undefined) as number[];
        // A and B alternate down the energy order: a0 ≥ b0 ≥ a1 ≥ b1 ≥ ….
        nonIncreasing(pairs.map((pos) => energy.get(pos)!), `${label}: A and B alternate by energy`);
        assert.ok(!pairs.includes(0) || !classToken, `${label}: the class token in A or B`);
        if (useBsm) {
          isPermutation([...s.a, ...s.b].map((pos) => pos - off), T, `${label}: A and B cover the tokens`);
          checkRanking(metric, plan, t, label, { byPosition: false });
          checkOrder(plan, t, [...(classToken ? [0] : []), ...s.unm.map((i) => s.a[i]!)], label);
        } else {
          assert.is(s.nA, rEff, `${label}: |A| = r`);
          assert.is(s.nB, rEff, `${label}: |B| = r`);
          assert.equal(s.src, range(rEff), `${label}: every A token merges`);
          const inSets = new Set(pairs);
          const protectedTokens = range(N).filter((pos) => pos >= off && !inSets.has(pos));
          const lowest = Math.min(...pairs.map((pos) => energy.get(pos)!));
          for (const pos of protectedTokens) assert.ok(energy.get(pos)! <= lowest + TOL, `${label}: protected token ${pos} has more energy than a merged one`);
          // Protected tokens in descending energy: read their order off the output rows.
          const byRow = [...protectedTokens].sort((x, y) => s.row[x]! - s.row[y]!);
          nonIncreasing(byRow.map((pos) => energy.get(pos)!), `${label}: protected tokens by descending energy`);
          checkMatches(metric, plan, t, label);
          checkOrder(plan, t, [...(classToken ? [0] : []), ...byRow], label);
        }
        if (classToken) assert.is(s.row[0], 0, `${label}: the class token is row 0`);
      }
      checkMergeUnmerge(mk, plan, label, next);
    }
  });

  test.run();
}
