// The ToMe bipartite-soft-matching reference (the oracle), checked against hand-worked cases.
// Every expected index and value below is worked out by hand in the comments, never computed by
// the code under test. Tokens: A = even (t0, t2, …), B = odd (t1, t3, …); "Ai" is A index i
// (token 2i), "Bj" is B index j (token 2j+1). Cosines: orthogonal 0, 45° 1/√2 ≈ .707, identical 1.
// A trick used throughout: x_t = 2^t, so a 'sum' output is the bitmask of the tokens merged into it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose, rng } from '../util.ts';
import { reference } from 'merge-kernels';

const { bipartiteSoftMatching, mergeSource, mergeTokens, mergeWavg, parseR, unmergeTokens } = reference;
type MergePlan = reference.MergePlan;

const f32 = (...rows: number[][]) => new Float32Array(rows.flat());
const list = (a: ArrayLike<number>) => Array.from(a);
/** x_t = 2^t for t = 0…n-1, one channel. */
const bits = (n: number) => new Float32Array(Array.from({ length: n }, (_, t) => 2 ** t));
/** x_t = (t, 10 - t), two channels. */
const pairs = (n: number) => new Float32Array(Array.from({ length: n }, (_, t) => [t, 10 - t]).flat());

function planIs(p: MergePlan, r: number, unm: number[], src: number[], dst: number[], what: string) {
  assert.is(p.r, r, `${what}: r`);
  assert.equal(list(p.unmergedIdx), unm, `${what}: unmergedIdx`);
  assert.equal(list(p.srcIdx), src, `${what}: srcIdx`);
  assert.equal(list(p.dstIdx), dst, `${what}: dstIdx`);
}

// N = 6, C = 3. A0 = t0, A1 = t2, A2 = t4; B0 = t1, B1 = t3, B2 = t5.
//   A0 (1,0,0): B0 (0,1,0) 0,   B1 (1,1,0) 1/√2 ≈ .707,     B2 (0,0,2) 0    → B1, .707
//   A1 (0,2,1): B0 2/√5 ≈ .894, B1 2/(√5·√2) ≈ .632,        B2 1/√5 ≈ .447  → B0, .894
//   A2 (0,0,1): B0 0,           B1 0,                       B2 1            → B2, 1
// Edge order (descending best score): A2, A1, A0.
const BASIC = f32([1, 0, 0], [0, 1, 0], [0, 2, 1], [1, 1, 0], [0, 0, 1], [0, 0, 2]);

// N = 7 (odd), C = 3: A0 = t0 (class token), A1 = t2, A2 = t4, A3 = t6; B0 = t1, B1 = t3, B2 = t5.
//   A0 (1,0,0): B0 (1,0,0) 1,      B1 (0,1,1) 0,              B2 (0,0,1) 0  → B0, 1 (or -∞ as class token)
//   A1 (0,1,0): B0 0,              B1 1/√2 ≈ .707,            B2 0          → B1, .707
//   A2 (2,1,0): B0 2/√5 ≈ .894,    B1 1/(√5·√2) ≈ .316,       B2 0          → B0, .894
//   A3 (0,0,1): B0 0,              B1 1/√2 ≈ .707,            B2 1          → B2, 1
const CLS = f32([1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1], [2, 1, 0], [0, 0, 1], [0, 0, 1]);

// N = 6, C = 3: t0 = class token (A0), t1 = distillation token (B0).
//   A0 (1,0,0): B0 (0,1,0) 0, B1 (0,1,1) 0,                   B2 (0,0,1) 0
//   A1 (0,1,0): B0 1,         B1 1/√2 ≈ .707,                 B2 0
//   A2 (1,0,2): B0 0,         B1 2/(√5·√2) ≈ .632,            B2 2/√5 ≈ .894
const DIST = f32([1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 1], [1, 0, 2], [0, 0, 1]);

// N = 5 (odd), C = 2: A0 = t0 (1,0), A1 = t2 (0,1), A2 = t4 (-1,0); B0 = t1 (1,1), B1 = t3 (-1,1).
//   A0: B0 1/√2, B1 -1/√2 → B0
//   A1: B0 1/√2, B1  1/√2 → tie → B0, the lowest B index
//   A2: B0 -1/√2, B1 1/√2 → B1
// Every best score is dot 1 / (1·√2), computed identically, so all three tie: edge order A0, A1, A2.
const TIES = f32([1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0]);

export default function (h: Harness) {
  const test = suite(`bipartiteSoftMatching reference [${h.backend}]`);

  test('basic r = 1 and r = 2: choices, edge order, output [unmerged A…, every B]', () => {
    // r = 1: A2 → B2. Kept A in edge order (no class token, so not sorted): A1, A0.
    const p1 = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 1 });
    planIs(p1, 1, [1, 0], [2], [2], 'r=1');
    // Output [t2, t0, t1, t3, t4+t5] → bitmasks [4, 1, 2, 8, 16+32].
    assert.equal(list(mergeTokens(p1, bits(6), 1, 'sum')), [4, 1, 2, 8, 48]);
    // r = 2: A2 → B2, then A1 → B0; kept: A0. Output [t0, t1+t2, t3, t4+t5].
    const p2 = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 2 });
    planIs(p2, 2, [0], [2, 1], [2, 0], 'r=2');
    assert.equal(list(mergeTokens(p2, bits(6), 1, 'sum')), [1, 6, 8, 48]);
    assert.is(p2.classToken, false);
    assert.is(p2.distillToken, false);
    assert.is(p2.batch, 1);
    assert.is(p2.tokens, 6);
  });

  test("modes 'sum', 'mean' (counts the destination itself) and 'amax'", () => {
    // BASIC with r = 2 groups {t0}, {t1, t2}, {t3}, {t4, t5}; x_t = (t, 10 - t).
    const p = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 2 });
    const x = pairs(6);
    assert.equal(list(mergeTokens(p, x, 2, 'sum')), [0, 10, 1 + 2, 9 + 8, 3, 7, 4 + 5, 6 + 5]);
    assert.equal(list(mergeTokens(p, x, 2, 'mean')), [0, 10, 1.5, 8.5, 3, 7, 4.5, 5.5]);
    // Elementwise: max(1, 2) = 2 from t2, max(9, 8) = 9 from t1.
    assert.equal(list(mergeTokens(p, x, 2, 'amax')), [0, 10, 2, 9, 3, 7, 5, 6]);
    // Two sources into one destination (TIES, r = 2: t0 and t2 into t1), x_t = 2^t:
    // mean = (dst 2 + 1 + 4) / 3 = 7/3; leaving the destination out would give (1 + 4)/2 = 2.5.
    const q = bipartiteSoftMatching(TIES, 1, 5, 2, { r: 2 });
    allClose(mergeTokens(q, bits(5), 1, 'mean'), [16, 7 / 3, 8], { atol: 1e-6 }, 'mean of three');
    assert.equal(list(mergeTokens(q, bits(5), 1, 'amax')), [16, 4, 8]);
  });

  test('class token: token 0 never a source, kept tokens sorted ascending, r clamped', () => {
    // With the class token, A0's row is -∞: best scores [-∞, .707, .894, 1] → edge A3, A2, A1, A0.
    // r = 2: A3 → B2, A2 → B0. Kept in edge order A1, A0, sorted → A0, A1.
    const p = bipartiteSoftMatching(CLS, 1, 7, 3, { r: 2, classToken: true });
    planIs(p, 2, [0, 1], [3, 2], [2, 0], 'cls r=2');
    // Output [t0, t2, t1+t4, t3, t5+t6] → [1, 4, 2+16, 8, 32+64].
    assert.equal(list(mergeTokens(p, bits(7), 1, 'sum')), [1, 4, 18, 8, 96]);
    // r = 10 is clamped to (7 - 1) // 2 = 3: A3 → B2, A2 → B0, A1 → B1; kept A0.
    const q = bipartiteSoftMatching(CLS, 1, 7, 3, { r: 10, classToken: true });
    planIs(q, 3, [0], [3, 2, 1], [2, 0, 1], 'cls r=10');
    assert.equal(list(mergeTokens(q, bits(7), 1, 'sum')), [1, 18, 12, 96]); // [t0, t1+t4, t3+t2, t5+t6]
    // Without the class token, A0 → B0 scores 1 and ties A3 → B2 (also exactly 1): A0 goes first.
    // Edge A0, A3, A2, A1; r = 2 merges t0 into t1. Kept A2, A1 stay in edge order (unsorted).
    const u = bipartiteSoftMatching(CLS, 1, 7, 3, { r: 2 });
    planIs(u, 2, [2, 1], [0, 3], [0, 2], 'no cls r=2');
    assert.equal(list(mergeTokens(u, bits(7), 1, 'sum')), [16, 4, 3, 8, 96]); // [t4, t2, t0+t1, t3, t5+t6]
    // Without a class token the cap is 7 // 2 = 3.
    assert.is(bipartiteSoftMatching(CLS, 1, 7, 3, { r: 9 }).r, 3);
  });

  test('distill token: B0 never a destination; output [unm[0], dst[0], unm[1:], dst[1:]]', () => {
    // Class + distill: A0's row and B0's column are -∞. A1 → B1 (.707; B0's 1 is masked),
    // A2 → B2 (.894). Edge A2, A1, A0. Cap: (6 - 2) // 2 = 2.
    const p1 = bipartiteSoftMatching(DIST, 1, 6, 3, { r: 1, classToken: true, distillToken: true });
    planIs(p1, 1, [0, 1], [2], [2], 'cls+dist r=1');
    // [unm[0] = t0, dst[0] = t1, unm[1] = t2, dst[1] = t3, dst[2] = t4+t5]
    assert.equal(list(mergeTokens(p1, bits(6), 1, 'sum')), [1, 2, 4, 8, 48]);
    const p2 = bipartiteSoftMatching(DIST, 1, 6, 3, { r: 5, classToken: true, distillToken: true });
    planIs(p2, 2, [0], [2, 1], [2, 1], 'cls+dist r=5');
    assert.equal(list(mergeTokens(p2, bits(6), 1, 'sum')), [1, 2, 12, 48]); // [t0, t1, t2+t3, t4+t5]
    // Class token only: A1 now takes B0 (score 1, the best), so t2 merges into t1.
    const c = bipartiteSoftMatching(DIST, 1, 6, 3, { r: 2, classToken: true });
    planIs(c, 2, [0], [1, 2], [0, 2], 'cls only r=2');
    assert.equal(list(mergeTokens(c, bits(6), 1, 'sum')), [1, 6, 8, 48]); // [t0, t1+t2, t3, t4+t5]
    // Distill token only: A0's scores are B1 0, B2 0 (B0 masked) → B1, 0. Edge A2, A1, A0;
    // r = 1 keeps A1, A0 in edge order (unsorted), and unm[0] = t2 comes before the distill token.
    const d = bipartiteSoftMatching(DIST, 1, 6, 3, { r: 1, distillToken: true });
    planIs(d, 1, [1, 0], [2], [2], 'dist only r=1');
    assert.equal(list(mergeTokens(d, bits(6), 1, 'sum')), [4, 2, 1, 8, 48]); // [t2, t1, t0, t3, t4+t5]
    // unmerge follows the reordering (ToMe's own unmerge does not): with y = output row numbers,
    // token t gets the row it went into.
    const rows = (n: number) => new Float32Array(Array.from({ length: n }, (_, i) => i));
    assert.equal(list(unmergeTokens(p1, rows(5), 1)), [0, 1, 2, 3, 4, 4]);
    assert.equal(list(unmergeTokens(p2, rows(4), 1)), [0, 1, 2, 2, 3, 3]);
    assert.equal(list(unmergeTokens(d, rows(5), 1)), [2, 1, 0, 3, 4, 4]);
  });

  test('r = 0, negative r, and r clamped to 0 are the identity', () => {
    for (const [metric, n, c, opts] of [
      [BASIC, 6, 3, { r: 0 }],
      [BASIC, 6, 3, { r: -3 }],
      [f32([1, 0], [0, 1]), 2, 2, { r: 1, classToken: true }], // (2 - 1) // 2 = 0
      [f32([1, 0]), 1, 2, { r: 1 }],                             // 1 // 2 = 0
    ] as const) {
      const p = bipartiteSoftMatching(metric, 1, n, c, opts);
      const nA = Math.ceil(n / 2);
      // r = 0: nothing merged; unmergedIdx lists every A index ascending.
      planIs(p, 0, Array.from({ length: nA }, (_, i) => i), [], [], `n=${n} r=${opts.r}`);
      const x = pairs(n);
      for (const mode of ['sum', 'mean', 'amax'] as const) assert.equal(list(mergeTokens(p, x, 2, mode)), list(x), mode);
      assert.equal(list(unmergeTokens(p, x, 2)), list(x), 'unmerge');
      const w = mergeWavg(p, x, 2, new Float32Array(n).fill(3));
      assert.equal(list(w.x), list(x), 'wavg x');
      assert.equal(list(w.size), new Array(n).fill(3), 'wavg size');
      // The identity source: row i has its 1 in column i.
      const s = mergeSource(p);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.is(s[i * n + j], i === j ? 1 : 0);
    }
    // An empty batch plans and merges nothing.
    const e = bipartiteSoftMatching(new Float32Array(0), 0, 6, 3, { r: 2 });
    assert.is(e.r, 2);
    assert.is(mergeTokens(e, new Float32Array(0), 4, 'mean').length, 0);
  });

  test('ties: equal best scores → lower A index first; equal matches → lowest B index; N odd', () => {
    // TIES: all three best scores are 1/√2; A1 matches B0 and B1 equally and takes B0.
    // r = 5 is clamped to 5 // 2 = 2: the first two edges, A0 → B0 and A1 → B0. Kept: A2.
    const p = bipartiteSoftMatching(TIES, 1, 5, 2, { r: 5 });
    planIs(p, 2, [2], [0, 1], [0, 0], 'r=5');
    assert.equal(list(mergeTokens(p, bits(5), 1, 'sum')), [16, 7, 8]); // [t4, t0+t1+t2, t3]
    // r = 1: only A0 → B0; kept A1, A2 in edge (= index) order.
    const q = bipartiteSoftMatching(TIES, 1, 5, 2, { r: 1 });
    planIs(q, 1, [1, 2], [0], [0], 'r=1');
    assert.equal(list(mergeTokens(q, bits(5), 1, 'sum')), [4, 16, 3, 8]); // [t2, t4, t0+t1, t3]
  });

  test('batch > 1: each item makes its own choices', () => {
    // N = 4, C = 2. Item 0: t0 (1,0), t1 (1,0), t2 (0,1), t3 (1,1).
    //   A0: B0 1, B1 .707 → B0, 1.   A1: B0 0, B1 .707 → B1, .707.   Edge A0, A1 → t0 into t1.
    // Item 1: t0 (1,0), t1 (0,1), t2 (1,1), t3 (1,1).
    //   A0: B0 0, B1 .707 → B1, .707. A1: B0 .707, B1 1 → B1, 1.     Edge A1, A0 → t2 into t3.
    const metric = f32([1, 0], [1, 0], [0, 1], [1, 1], /* item 1 */ [1, 0], [0, 1], [1, 1], [1, 1]);
    const p = bipartiteSoftMatching(metric, 2, 4, 2, { r: 1 });
    planIs(p, 1, [1, 0], [0, 1], [0, 1], 'batch');
    const x = new Float32Array([1, 2, 4, 8, 1, 2, 4, 8]);
    // Item 0: [t2, t0+t1, t3] = [4, 3, 8]; item 1: [t0, t1, t2+t3] = [1, 2, 12].
    assert.equal(list(mergeTokens(p, x, 1, 'sum')), [4, 3, 8, 1, 2, 12]);
    assert.equal(list(unmergeTokens(p, new Float32Array([0, 1, 2, 0, 1, 2]), 1)), [1, 1, 0, 2, 0, 1, 2, 2]);
  });

  test('unmerge(merge(x)) gives every token the row it was merged into', () => {
    // y = output row numbers, so unmerge returns each token's row.
    // BASIC r = 1: rows [t2, t0, t1, t3, t4+t5] → t0 row 1, t1 row 2, t2 row 0, t3 row 3, t4, t5 row 4.
    const p1 = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 1 });
    assert.equal(list(unmergeTokens(p1, new Float32Array([0, 1, 2, 3, 4]), 1)), [1, 2, 0, 3, 4, 4]);
    // BASIC r = 2, x_t = (t, 10 - t), mean: rows (0,10), (1.5,8.5) for t1, t2, (3,7), (4.5,5.5) for t4, t5.
    const p2 = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 2 });
    const y = mergeTokens(p2, pairs(6), 2, 'mean');
    assert.equal(list(unmergeTokens(p2, y, 2)), [0, 10, 1.5, 8.5, 1.5, 8.5, 3, 7, 4.5, 5.5, 4.5, 5.5]);
    // CLS r = 2 with the class token: rows [t0, t2, t1+t4, t3, t5+t6].
    const p3 = bipartiteSoftMatching(CLS, 1, 7, 3, { r: 2, classToken: true });
    assert.equal(list(unmergeTokens(p3, new Float32Array([0, 1, 2, 3, 4]), 1)), [0, 2, 1, 3, 2, 4, 4]);
  });

  test('mergeWavg: size-weighted mean and summed sizes', () => {
    // BASIC r = 2 groups {t0}, {t1, t2}, {t3}, {t4, t5}; x_t = (t, 10 - t); t2 stands for 3 tokens.
    const p = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 2 });
    const w = mergeWavg(p, pairs(6), 2, new Float32Array([1, 1, 3, 1, 1, 1]));
    // Sizes [1, 1+3, 1, 1+1]; group {t1, t2}: ((1·1 + 2·3)/4, (9·1 + 8·3)/4) = (1.75, 8.25).
    assert.equal(list(w.size), [1, 4, 1, 2]);
    assert.equal(list(w.x), [0, 10, 1.75, 8.25, 3, 7, 4.5, 5.5]);
    // Without sizes every token counts 1: a plain mean.
    const v = mergeWavg(p, pairs(6), 2);
    assert.equal(list(v.size), [1, 2, 1, 2]);
    assert.equal(list(v.x), [0, 10, 1.5, 8.5, 3, 7, 4.5, 5.5]);
  });

  test('mergeWavg: a lone token keeps its value exactly; a zero size gives NaN, as ToMe computes 0/0', () => {
    // BASIC r = 2 groups {t0}, {t1, t2}, {t3}, {t4, t5}. t0 = (0.3, 0.7) with size 0.1: ToMe computes
    // (x·0.1)/0.1, which is x again (the product is exact in float64). t3 has size 0: (x·0)/0 = NaN.
    const p = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 2 });
    const x = pairs(6);
    x[0] = 0.3; x[1] = 0.7;
    const w = mergeWavg(p, x, 2, new Float32Array([0.1, 1, 1, 0, 1, 1]));
    assert.equal(list(w.x.subarray(0, 2)), [Math.fround(0.3), Math.fround(0.7)]);
    assert.ok(Number.isNaN(w.x[4]!) && Number.isNaN(w.x[5]!), `t3 with size 0: expected NaN, got ${w.x[4]}, ${w.x[5]}`);
    // {t1, t2} sizes 1 + 1: ((1 + 2)/2, (9 + 8)/2); {t4, t5}: (4.5, 5.5).
    assert.equal(list(w.x.subarray(2, 4)), [1.5, 8.5]);
    assert.equal(list(w.x.subarray(6, 8)), [4.5, 5.5]);
    assert.equal(list(w.size), [Math.fround(0.1), 2, 0, 2]);
  });

  test('mergeSource: one-hot columns, chained through two merges', () => {
    // BASIC r = 2: rows {t0}, {t1, t2}, {t3}, {t4, t5}.
    const p = bipartiteSoftMatching(BASIC, 1, 6, 3, { r: 2 });
    const s1 = mergeSource(p);
    assert.equal(list(s1), [
      1, 0, 0, 0, 0, 0,
      0, 1, 1, 0, 0, 0,
      0, 0, 0, 1, 0, 0,
      0, 0, 0, 0, 1, 1,
    ]);
    // A second merge of those 4 tokens with batch item 0 of the test above (A0 → B0, kept A1):
    // output [row 2, row 0 + row 1, row 3].
    const q = bipartiteSoftMatching(f32([1, 0], [1, 0], [0, 1], [1, 1]), 1, 4, 2, { r: 1 });
    assert.equal(list(mergeSource(q, s1, 6)), [
      0, 0, 0, 1, 0, 0,
      1, 1, 1, 0, 0, 0,
      0, 0, 0, 0, 1, 1,
    ]);
    assert.equal(list(mergeSource(q, s1)), list(mergeSource(q, s1, 6)), 'n0 inferred');
  });

  test('a zero metric row has similarity 0 (PyTorch: NaN)', () => {
    // t0 = (0,0) is A0: similarity 0 with B0 (1,0) and B1 (0,1) → B0, 0. A1 = t2 (1,0): B0 1 → B0, 1.
    // Edge A1, A0: t2 merges into t1. (ToMe normalises without an epsilon: A0 would be NaN there.)
    const p = bipartiteSoftMatching(f32([0, 0], [1, 0], [1, 0], [0, 1]), 1, 4, 2, { r: 1 });
    planIs(p, 1, [0], [1], [0], 'zero row');
  });

  test('parseR: number, (r, inflect) pair, list padded with zeros', () => {
    assert.equal(parseR(8, 4), [8, 8, 8, 8]);
    assert.equal(parseR(8, 0), []);
    // (8, 0.5): min = int(8·0.5) = 4, max = 16 - 4 = 12, step = 8/3 ≈ 2.667:
    // int(4), int(6.67), int(9.33), int(12) = [4, 6, 9, 12].
    assert.equal(parseR([8, 0.5], 4), [4, 6, 9, 12]);
    // (8, -0.5): min = int(12) = 12, max = 4, step = -8/3: 12, int(9.33), int(6.67), 4.
    assert.equal(parseR([8, -0.5], 4), [12, 9, 6, 4]);
    // (8, 0.25): min = int(6) = 6, max = 10, step = 4/3: 6, int(7.33), int(8.67), 10.
    assert.equal(parseR([8, 0.25], 4), [6, 7, 8, 10]);
    // (16, 1): min = 0, max = 32, step = 8.
    assert.equal(parseR([16, 1], 5), [0, 8, 16, 24, 32]);
    assert.equal(parseR([8, 0], 3), [8, 8, 8]);
    // int() truncates toward zero: (3, 1.5) → min = int(-1.5) = -1 (not -2), max = 7, step = 8.
    assert.equal(parseR([3, 1.5], 2), [-1, 7]);
    // One layer: ToMe divides by zero; here the formula's first value, min = int(8·0.5) = 4.
    assert.equal(parseR([8, 0.5], 1), [4]);
    // Lists: padded with zeros to the layer count; a longer list is returned whole, as in ToMe.
    assert.equal(parseR([5, 3, 1], 5), [5, 3, 1, 0, 0]);
    assert.equal(parseR([5, 3, 1, 2], 2), [5, 3, 1, 2]);
    assert.equal(parseR([7], 3), [7, 0, 0]);
    assert.equal(parseR([], 2), [0, 0]);
  });

  test('random metrics: a partition of the tokens, N - r outputs, sums kept, one-hot sources', () => {
    const next = rng(42);
    for (let trial = 0; trial < 150; trial++) {
      const batch = 1 + Math.floor(next() * 3);
      const n = Math.floor(next() * 18);
      const c = 1 + Math.floor(next() * 5);
      const classToken = next() < 0.5, distillToken = next() < 0.3;
      const rReq = Math.floor(next() * (n + 2)) - 1;
      const metric = new Float32Array(batch * n * c).map(() => next() * 2 - 1);
      const p = bipartiteSoftMatching(metric, batch, n, c, { r: rReq, classToken, distillToken });
      const what = `trial ${trial}: B=${batch} N=${n} C=${c} r=${rReq} cls=${classToken} dist=${distillToken}`;
      const prot = Number(classToken) + Number(distillToken);
      assert.is(p.r, Math.max(0, Math.min(rReq, Math.floor((n - prot) / 2))), what);
      const r = p.r, nA = Math.ceil(n / 2), nB = Math.floor(n / 2), unmLen = nA - r;
      assert.is(p.unmergedIdx.length, batch * unmLen, what);
      for (let t = 0; t < batch; t++) {
        const unm = list(p.unmergedIdx.subarray(t * unmLen, (t + 1) * unmLen));
        const src = list(p.srcIdx.subarray(t * r, (t + 1) * r));
        const dst = list(p.dstIdx.subarray(t * r, (t + 1) * r));
        // Every token exactly once across kept A (2i), merged A (2i) and all of B (2j + 1).
        const seen = new Array(n).fill(0);
        for (const i of [...unm, ...src]) seen[2 * i]++;
        for (let j = 0; j < nB; j++) seen[2 * j + 1]++;
        assert.equal(seen, new Array(n).fill(1), `${what}: partition`);
        for (const j of dst) assert.ok(j >= 0 && j < nB, `${what}: dst in B`);
        if (r > 0 && classToken) {
          assert.ok(!src.includes(0), `${what}: class token merged`);
          assert.equal(unm, [...unm].sort((i, j) => i - j), `${what}: unm sorted`);
        }
        if (r > 0 && distillToken && nB > 1) assert.ok(!dst.includes(0), `${what}: merged into the distill token`);
      }
      // Integer x keeps float sums exact: 'sum' must preserve each item's channel totals.
      const dim = 2;
      const x = new Float32Array(batch * n * dim).map(() => Math.floor(next() * 9) - 4);
      const y = mergeTokens(p, x, dim, 'sum');
      assert.is(y.length, batch * (n - r) * dim, `${what}: output length`);
      for (let t = 0; t < batch; t++) for (let d = 0; d < dim; d++) {
        let before = 0, after = 0;
        for (let i = 0; i < n; i++) before += x[(t * n + i) * dim + d]!;
        for (let i = 0; i < n - r; i++) after += y[(t * (n - r) + i) * dim + d]!;
        assert.is(after, before, `${what}: sum kept`);
      }
      // Sources: each original token in exactly one output row — the row unmerge sends it to —
      // and the merged sizes are the rows' token counts.
      const s = mergeSource(p);
      const rowIds = new Float32Array(batch * (n - r)).map((_, i) => i % (n - r));
      const back = unmergeTokens(p, rowIds, 1);
      const size = mergeWavg(p, x, dim).size;
      for (let t = 0; t < batch; t++) {
        for (let row = 0; row < n - r; row++) {
          let count = 0;
          for (let tok = 0; tok < n; tok++) {
            const v = s[(t * (n - r) + row) * n + tok]!;
            assert.is(v, back[t * n + tok] === row ? 1 : 0, `${what}: source [${t}, ${row}, ${tok}]`);
            count += v;
          }
          assert.is(size[t * (n - r) + row], count, `${what}: size of row ${row}`);
        }
      }
    }
  });

  test.run();
}
