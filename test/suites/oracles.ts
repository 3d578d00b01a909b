// Independent checks of oracle pieces that every backend shares and nothing else checked: the
// FNV-1a and stream-key hashes behind every random mask (against published vectors and a BigInt
// reimplementation written here), dropAndRescale at keep probabilities other than 0 and 1, the
// rescale rule, and the DARE, DELLA and Breadcrumbs pipelines at density < 1 with their masks
// written out by hand. Run once, in the js pass.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose } from '../util.ts';

const P = reference.mergePrimitives;
const R = reference.modelMerging;
const f = Math.fround;
const list = (a: ArrayLike<number>) => Array.from(a);
const v = (...xs: number[]) => new Float32Array(xs);

// ---------------------------------------------------------------------------------------------
// The generator, reimplemented from its definition in BigInt (no Math.imul, no >>> tricks).

const U32 = (1n << 32n) - 1n;

/** FNV-1a 32 (Fowler, Noll, Vo): h = 2166136261; per byte h = (h xor byte) · 16777619 mod 2^32. */
function fnv1a(text: string): bigint {
  let h = 2166136261n;
  for (const byte of new TextEncoder().encode(text)) h = ((h ^ BigInt(byte)) * 16777619n) & U32;
  return h;
}

/** murmur3's fmix32: h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13; h *= 0xc2b2ae35; h ^= h >> 16 (mod 2^32). */
function fmix(h: bigint): bigint {
  h &= U32;
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & U32;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & U32;
  return h ^ (h >> 16n);
}

/** The documented stream key: fmix32(seed xor fmix32(fnv1a32(name))). */
const key = (seed: number, name: string) => fmix(BigInt(seed) ^ fmix(fnv1a(name)));

/** The documented draw for flat index i: lo, hi = the 32-bit halves of i; fmix32(fmix32(lo xor key) + hi + 0x9e3779b9) >> 8. */
function draw(k: bigint, i: number): number {
  const lo = BigInt(i) & U32, hi = BigInt(i) >> 32n;
  return Number(fmix((fmix(lo ^ k) + hi + 0x9e3779b9n) & U32) >> 8n);
}

export default function (h: Harness) {
  const test = suite(`oracles [${h.backend}]`);

  test('fnv1a32: the published FNV-1a 32-bit vectors, and a BigInt FNV-1a on UTF-8 names', () => {
    // From the FNV reference test suite (Landon Curt Noll's fnv_test vectors for FNV-1a 32).
    assert.is(P.fnv1a32(''), 0x811c9dc5);
    assert.is(P.fnv1a32('a'), 0xe40c292c);
    assert.is(P.fnv1a32('b'), 0xe70c2de5);
    assert.is(P.fnv1a32('foobar'), 0xbf9cf968);
    // Multi-byte UTF-8, a NUL byte (as in the per-model stream names), a long tensor name.
    for (const s of ['é', 'λ·δ', 'w\u00000', 'model.layers.31.mlp.down_proj.weight\u000012']) {
      assert.is(P.fnv1a32(s), Number(fnv1a(s)), `fnv1a32(${JSON.stringify(s)})`);
    }
  });

  test('streamKey and modelStreamKey equal fmix32(seed xor fmix32(fnv1a32(name))) in BigInt', () => {
    for (const [seed, name] of [[0, ''], [1, 'w'], [0xffffffff, 'model.embed_tokens.weight'], [12345, 'λ'], [7, 'x']] as Array<[number, string]>) {
      assert.is(P.streamKey(seed, name), Number(key(seed, name)), `streamKey(${seed}, ${JSON.stringify(name)})`);
      // A model's stream: the name, a NUL, the model's index in the config.
      for (const t of [0, 1, 10]) assert.is(R.modelStreamKey(seed, name, t), Number(key(seed, `${name}\u0000${t}`)), `modelStreamKey(${seed}, ${JSON.stringify(name)}, ${t})`);
    }
    // Two values worked through: key(1, "w\0" + "0") = 0x9e8bd854, key(1, "w\0" + "1") = 0xfb81ec46 (used below).
    assert.is(R.modelStreamKey(1, 'w', 0), 0x9e8bd854);
    assert.is(R.modelStreamKey(1, 'w', 1), 0xfb81ec46);
  });

  test('dropAndRescale at p = 0.5 and 0.3: keeps exactly the draws below p·2^24, scaled exactly; dropped entries 0', async () => {
    const k = key(7, 'x'); // 0x2c183aa7
    // Draws of indices 0..7 of that stream (the BigInt draw above):
    //   6025118, 11807868, 10363262, 10664418, 8538604, 15101139, 6421829, 3419361
    // p = 0.5: cut = f(0.5)·2^24 = 8388608 → kept 0, 6, 7.
    // p = 0.3: cut = f(0.3)·2^24 = 5033165 (f(0.3) = 10066330 / 2^25) → kept 7 only.
    const draws = [6025118, 11807868, 10363262, 10664418, 8538604, 15101139, 6421829, 3419361];
    assert.equal(draws.map((_, i) => draw(k, i)), draws);
    const x = v(1, -2, 3, -4, 0.5, -0.25, 6, -7);
    for (const [p, keptIdx] of [[0.5, [0, 6, 7]], [0.3, [7]]] as Array<[number, number[]]>) {
      // DARE's rescale for keep probability p: 1/p (the paper's 1/(1 − drop rate)).
      const scale = 1 / p;
      const out = new Float32Array(8).fill(NaN);
      const sums = P.dropAndRescale(x, 0, Number(k), p, scale, out);
      const want = list(x).map((value, i) => (keptIdx.includes(i) ? f(value * scale) : 0));
      assert.equal(list(out), want, `p = ${p}`);
      // Σ|x| = 1 + 2 + 3 + 4 + 0.5 + 0.25 + 6 + 7 = 23.75; Σ|kept| before scaling: p 0.5: 1 + 6 + 7 = 14; p 0.3: 7.
      assert.equal(sums, [23.75, p === 0.5 ? 14 : 7], `p = ${p}: sums`);
    }
    // With p = 0.5 and scale 2 the kept values double exactly: [2, 0, 0, 0, 0, 0, 12, -14].
    const out = new Float32Array(8);
    P.dropAndRescale(x, 0, Number(k), 0.5, 2, out);
    assert.equal(list(out), [2, 0, 0, 0, 0, 0, 12, -14]);
    // An offset moves the stream: entries 0..3 at offset 2^32 − 2 are draws 2^32 − 2 … 2^32 + 1,
    // 11369686, 8661302, 7661695, 6080625 (the high half enters at 2^32) → p = 0.5 keeps 2 and 3.
    assert.equal([2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1].map((i) => draw(k, i)), [11369686, 8661302, 7661695, 6080625]);
    const o4 = new Float32Array(4);
    P.dropAndRescale(v(1, 2, 3, 4), 2 ** 32 - 2, Number(k), 0.5, 2, o4);
    assert.equal(list(o4), [0, 0, 6, 8]);
    // On this context's backend too (the js pass: the reference itself, through the public API).
    const sums = await h.mk.primitives.dropAndRescale(x, 0, Number(k), 0.3, 1 / 0.3, out);
    assert.equal(list(out), [0, 0, 0, 0, 0, 0, 0, f(-7 / 0.3)]);
    assert.equal(sums, [23.75, 7]);
  });

  test('rescaleRule: no rescale → none; the papers divide by the keep probability; mergekit matches the L1 norm', () => {
    assert.is(R.rescaleRule({ rescale: false, semantics: 'paper' }), 'none');
    assert.is(R.rescaleRule({ rescale: false, semantics: 'mergekit' }), 'none');
    assert.is(R.rescaleRule({ rescale: true, semantics: 'paper' }), 'density');
    assert.is(R.rescaleRule({ rescale: true, semantics: 'mergekit' }), 'l1');
  });

  test('dare_linear at densities 0.5 and 0.75 (seed 1, tensor "w"): masks written out, both rescale rules', async () => {
    // Keys: model 0 = key(1, "w\0" + "0") = 0x9e8bd854, model 1 = key(1, "w\0" + "1") = 0xfb81ec46.
    // Draws of entries 0..7 (the BigInt draw):
    //   model 0: 11811118, 2686504, 1710478, 14459704, 3558805, 8891066, 13272830, 4812276
    //   model 1: 11822884, 7941295, 6972781, 13604135, 7581477, 3512519, 3655175, 7689669
    // DARE keeps an entry with probability = density: draw < f(density)·2^24.
    //   model 0, density 0.5:  cut 8388608  → mask [0, 1, 1, 0, 1, 0, 0, 1]
    //   model 1, density 0.75: cut 12582912 → mask [1, 1, 1, 0, 1, 1, 1, 1]
    const mask0 = [0, 1, 1, 0, 1, 0, 0, 1], mask1 = [1, 1, 1, 0, 1, 1, 1, 1];
    assert.equal(range8().map((i) => (draw(key(1, 'w\u00000'), i) < f(0.5) * 2 ** 24 ? 1 : 0)), mask0);
    assert.equal(range8().map((i) => (draw(key(1, 'w\u00001'), i) < f(0.75) * 2 ** 24 ? 1 : 0)), mask1);
    const base = v(0.5, -1, 2, 0, 1, -0.5, 0.25, 3);
    const d0 = [1, 2, -1, 0.5, -2, 1.5, 0.25, -0.75];                   // δ0, weight 1
    const d1 = [-0.375, 0.75, 0.75, 1.5, 0.375, -0.75, -0.1875, 0.375]; // δ1, weight 0.5 (multiples of 0.75: δ/0.75 is exact)
    const models = [v(...d0.map((d, i) => base[i]! + d)), v(...d1.map((d, i) => base[i]! + d))];
    // Paper rescale (÷ density), no vote, no normalize, λ = 1: result = base + Σ w·mask·δ/density.
    //   model 0: mask0·δ0/0.5  = [0, 4, -2, 0, -4, 0, 0, -1.5]
    //   model 1: mask1·δ1/0.75 = [-0.5, 1, 1, 0, 0.5, -1, -0.25, 0.5], × 0.5 = [-0.25, 0.5, 0.5, 0, 0.25, -0.5, -0.125, 0.25]
    //   mix = [-0.25, 4.5, -1.5, 0, -3.75, -0.5, -0.125, -1.25]
    //   base + mix = [0.25, 3.5, 0.5, 0, -2.75, -1, 0.125, 1.75]
    const paper = [0.25, 3.5, 0.5, 0, -2.75, -1, 0.125, 1.75];
    const modelParameters = [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.75 }];
    const got = await h.mk.mergeTensors('dare_linear', { base: { data: base, shape: [8] }, models: models.map((data) => ({ data, shape: [8] })), modelParameters, parameters: { semantics: 'paper' }, seed: 1, name: 'w' });
    assert.equal(list(got.data), paper, 'mergeTensors dare_linear, paper');
    const gta = (semantics: 'paper' | 'mergekit') => R.generalizedTaskArithmetic(base, models, [8], 'w', 1, {
      sparsifier: 'random', vote: 'none', normalize: false, rescale: true, lambda: 1, semantics,
      models: modelParameters.map((m) => ({ ...m, gamma: 0, epsilon: 0 })),
    });
    assert.equal(list(gta('paper')), paper, 'reference dare_linear, paper');
    // mergekit: kept entries × Σ|δ| / Σ|kept δ|.
    //   model 0: Σ|δ0| = 1 + 2 + 1 + 0.5 + 2 + 1.5 + 0.25 + 0.75 = 9, kept 2 + 1 + 2 + 0.75 = 5.75 → × 9/5.75
    //   model 1: Σ|δ1| = 5.0625, kept (all but 1.5) = 3.5625 → × 5.0625/3.5625
    const a0 = f(9 / 5.75), a1 = f(5.0625 / 3.5625);
    const mergekit = range8().map((i) => f(base[i]! + f(f(mask0[i]! * f(d0[i]! * a0)) + f(0.5 * f(mask1[i]! * f(d1[i]! * a1))))));
    const gotL1 = await h.mk.mergeTensors('dare_linear', { base: { data: base, shape: [8] }, models: models.map((data) => ({ data, shape: [8] })), modelParameters, parameters: { semantics: 'mergekit' }, seed: 1, name: 'w' });
    allClose(gotL1.data, mergekit, { rtol: 1e-6 }, 'mergeTensors dare_linear, mergekit');
    allClose(gta('mergekit'), mergekit, { rtol: 1e-6 }, 'reference dare_linear, mergekit');
  });

  test('della_linear at density 0.5, ε 0.2 (seed 2, tensor "d"): probabilities by magnitude rank, masks written out, ÷ p_i', async () => {
    // One row of 5 (a 1-D tensor): p by magnitude rank (1 = smallest) = (d − ε) + 2ε·(rank − 1)/4
    //   = 0.3, 0.4, 0.5, 0.6, 0.7; cuts f(p)·2^24 = 5033165, 6710886.5, 8388608, 10066330, 11744051.
    // model 0: δ0 = [0.5, -4, 2, 1, -3] → ranks [1, 5, 3, 2, 4] → p [0.3, 0.7, 0.5, 0.4, 0.6]
    //   draws (key(2, "d\0" + "0")): 4654968, 6097083, 11986979, 15698001, 6014120
    //   keep?  4654968 < 5033165 yes; 6097083 < 11744051 yes; 11986979 < 8388608 no;
    //          15698001 < 6710886.5 no; 6014120 < 10066330 yes → mask [1, 1, 0, 0, 1]
    // model 1: δ1 = [-2, 1, 0.25, 3, -4] → ranks [3, 2, 1, 4, 5] → p [0.5, 0.4, 0.3, 0.6, 0.7]
    //   draws (key(2, "d\0" + "1")): 11447579, 8856071, 6025575, 712747, 14253794
    //   keep?  no (≥ 8388608); no (≥ 6710886.5); no (≥ 5033165); yes (< 10066330); no (≥ 11744051) → mask [0, 0, 0, 1, 0]
    const mask0 = [1, 1, 0, 0, 1], mask1 = [0, 0, 0, 1, 0];
    const p0 = [0.3, 0.7, 0.5, 0.4, 0.6], p1 = [0.5, 0.4, 0.3, 0.6, 0.7];
    assert.equal([0, 1, 2, 3, 4].map((i) => (draw(key(2, 'd\u00000'), i) < f(p0[i]!) * 2 ** 24 ? 1 : 0)), mask0);
    assert.equal([0, 1, 2, 3, 4].map((i) => (draw(key(2, 'd\u00001'), i) < f(p1[i]!) * 2 ** 24 ? 1 : 0)), mask1);
    const d0 = [0.5, -4, 2, 1, -3], d1 = [-2, 1, 0.25, 3, -4];
    // Base 0, weights 1, no vote, no normalize: result = Σ mask·δ/p = [0.5/0.3, -4/0.7, 0, 3/0.6, -3/0.6]
    //   ≈ [1.6667, -5.7143, 0, 5, -5].
    const want = [f(0.5 / f(0.3)), f(-4 / f(0.7)), 0, f(3 / f(0.6)), f(-3 / f(0.6))];
    const base = new Float32Array(5);
    const models = [v(...d0), v(...d1)];
    const got = await h.mk.mergeTensors('della_linear', { base: { data: base, shape: [5] }, models: models.map((data) => ({ data, shape: [5] })), parameters: { density: 0.5, epsilon: 0.2, semantics: 'paper' }, modelParameters: [{ weight: 1 }, { weight: 1 }], seed: 2, name: 'd' });
    allClose(got.data, want, { rtol: 1e-6 }, 'mergeTensors della_linear');
    const ref = R.generalizedTaskArithmetic(base, models, [5], 'd', 2, {
      sparsifier: 'della_magprune', vote: 'none', normalize: false, rescale: true, lambda: 1, semantics: 'paper',
      models: [0, 1].map(() => ({ weight: 1, density: 0.5, gamma: 0, epsilon: 0.2 })),
    });
    allClose(ref, want, { rtol: 1e-6 }, 'reference della_linear');
  });

  test('breadcrumbs at density 0.5, γ 0.1: the largest and the smallest magnitudes removed, weights, base', async () => {
    // n = 10: n_top = int(0.1·10) = 1, n_bottom = 10 − int(0.5·10) − 1 = 4 → keep magnitude ranks 2..6 (largest first).
    // model 0: δ0 = [7, -2, 10, 4, -9, 1, 6, -3, 8, 5]: remove 10; remove 1, 2, 3, 4 → keep 9, 8, 7, 6, 5
    //   kept0 = [7, 0, 0, 0, -9, 0, 6, 0, 8, 5]
    // model 1: δ1 = [-1, 3, -5, 7, -9, 2, 4, -6, 8, -10]: remove 10; remove 1, 2, 3, 4 → keep 9, 8, 7, 6, 5
    //   kept1 = [0, 0, -5, 7, -9, 0, 0, -6, 8, 0]
    // base 1, weights 1 and 0.5, no vote, no normalize: 1 + kept0 + 0.5·kept1
    //   = [8, 1, -1.5, 4.5, -12.5, 1, 7, -2, 13, 6]
    const d0 = [7, -2, 10, 4, -9, 1, 6, -3, 8, 5], d1 = [-1, 3, -5, 7, -9, 2, 4, -6, 8, -10];
    const base = new Float32Array(10).fill(1);
    const models = [v(...d0.map((d) => d + 1)), v(...d1.map((d) => d + 1))];
    const want = [8, 1, -1.5, 4.5, -12.5, 1, 7, -2, 13, 6];
    const got = await h.mk.mergeTensors('breadcrumbs', { base: { data: base, shape: [10] }, models: models.map((data) => ({ data, shape: [10] })), parameters: { density: 0.5, gamma: 0.1 }, modelParameters: [{ weight: 1 }, { weight: 0.5 }] });
    assert.equal(list(got.data), want, 'mergeTensors breadcrumbs');
    const ref = R.generalizedTaskArithmetic(base, models, [10], '', 0, {
      sparsifier: 'magnitude_outliers', vote: 'none', normalize: false, rescale: false, lambda: 1, semantics: 'paper',
      models: [1, 0.5].map((weight) => ({ weight, density: 0.5, gamma: 0.1, epsilon: 0 })),
    });
    assert.equal(list(ref), want, 'reference breadcrumbs');
  });

  test.run();
}

function range8(): number[] {
  return [0, 1, 2, 3, 4, 5, 6, 7];
}
