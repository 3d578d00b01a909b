// The model-merging reference (the oracle) against hand-worked cases of each published method.
// Every expected value is worked out in the comments from the method's definition, never computed
// by the code under test. Notation: δ_t = model t − base; "|x|-order" = magnitudes largest first,
// equal magnitudes by increasing index.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose } from '../util.ts';
import { reference } from 'merge-kernels';

const R = reference.modelMerging;
const P = reference.mergePrimitives;
type GtaOptions = reference.modelMerging.GtaOptions;

const v = (...xs: number[]) => new Float32Array(xs);
const list = (a: ArrayLike<number>) => Array.from(a);
const f = Math.fround;

/** GTA options with per-model parameters filled in (weight 1, density 1, gamma 0.01, epsilon 0.15 unless given). */
function gta(o: Partial<GtaOptions> & { sparsifier: GtaOptions['sparsifier'] }, models: Array<Partial<GtaOptions['models'][number]>>): GtaOptions {
  return {
    vote: 'none', normalize: false, rescale: false, lambda: 1, semantics: 'paper', ...o,
    models: models.map((m) => ({ weight: 1, density: 1, gamma: 0.01, epsilon: 0.15, ...m })),
  };
}

export default function (h: Harness) {
  const test = suite(`model-merging reference [${h.backend}]`);

  test('trimTopK: exact ties at the threshold in both conventions', () => {
    // x = [3, -1, 2, -2, 2, 0.5]; |x|-order: i0 (3), i2 (2), i3 (2), i4 (2), i1 (1), i5 (0.5).
    const x = v(3, -1, 2, -2, 2, 0.5);
    // density 0.5: m = floor(0.5·6) = 3.
    // mergekit: exactly 3 kept; of the three 2s only i2 and i3 (lowest indices) fit after i0.
    assert.equal(list(R.trimTopK(x, 0.5, 'mergekit')), [3, 0, 2, -2, 0, 0]);
    // paper: keep |x| ≥ the (m+1) = 4th largest magnitude = 2 → i0, i2, i3, i4 (m + 1 = 4 entries).
    assert.equal(list(R.trimTopK(x, 0.5, 'paper')), [3, 0, 2, -2, 2, 0]);
    // density 1/3: m = 2. mergekit keeps i0, i2. paper: 3rd largest is 2 → every 2 survives: m + 1 plus one tie.
    assert.equal(list(R.trimTopK(x, 1 / 3, 'mergekit')), [3, 0, 2, 0, 0, 0]);
    assert.equal(list(R.trimTopK(x, 1 / 3, 'paper')), [3, 0, 2, -2, 2, 0]);
  });

  test('trimTopK: density 0 and 1, a 1-element and an empty tensor', () => {
    const x = v(1, -3, 3, 2);
    // density 0: mergekit keeps floor(0) = 0 entries; the paper keeps |x| ≥ the 1st largest (3): both 3s.
    assert.equal(list(R.trimTopK(x, 0, 'mergekit')), [0, 0, 0, 0]);
    assert.equal(list(R.trimTopK(x, 0, 'paper')), [0, -3, 3, 0]);
    // density 1 keeps everything in both (the paper's kthvalue(0) would raise).
    assert.equal(list(R.trimTopK(x, 1, 'mergekit')), [1, -3, 3, 2]);
    assert.equal(list(R.trimTopK(x, 1, 'paper')), [1, -3, 3, 2]);
    // n = 1, density 0.5: m = 0 → mergekit none; paper keeps ≥ the largest → the entry itself.
    assert.equal(list(R.trimTopK(v(5), 0.5, 'mergekit')), [0]);
    assert.equal(list(R.trimTopK(v(5), 0.5, 'paper')), [5]);
    assert.equal(list(R.trimTopK(v(), 0.5, 'paper')), []);
  });

  test('electSign: sum and count, weights, a zero total under both rules', () => {
    // totals: [1-1, -1+1, 2+1, 0-3] = [0, 0, 3, -3].
    const a = [v(1, -1, 2, 0), v(-1, 1, 1, -3)];
    // mergekit: a zero total elects +1.
    assert.equal(list(R.electSign(a, [1, 1], 'sum', 'mergekit')), [1, 1, 1, -1]);
    // paper: zero totals take sign(Σ of the elected signs) = sign(0 + 0 + 1 - 1) = 0 → we elect −1.
    assert.equal(list(R.electSign(a, [1, 1], 'sum', 'paper')), [-1, -1, 1, -1]);
    // totals [0, 3, 4]: the majority is +1 + 1 = 2 > 0 → the zero total elects +1.
    assert.equal(list(R.electSign([v(1, 2, 3), v(-1, 1, 1)], [1, 1], 'sum', 'paper')), [1, 1, 1]);
    // Three tasks: entry 0 = (1, 2, -1), entry 1 = (-5, 1, 1).
    const b = [v(1, -5), v(2, 1), v(-1, 1)];
    // sum: 1+2-1 = 2 → +1; -5+1+1 = -3 → -1. count: (+1+1-1) = 1 → +1; (-1+1+1) = 1 → +1.
    assert.equal(list(R.electSign(b, [1, 1, 1], 'sum', 'mergekit')), [1, -1]);
    assert.equal(list(R.electSign(b, [1, 1, 1], 'count', 'mergekit')), [1, 1]);
    // Weights: 1·1 + 3·(-1) = -2 → -1 (unweighted the total would be 0).
    assert.equal(list(R.electSign([v(1), v(-1)], [1, 3], 'sum', 'mergekit')), [-1]);
  });

  test('disjointMerge: mean (paper), normalize (mergekit), sum, max', () => {
    // δ = [[1, -2, 3], [3, 2, -1], [0, 4, -1]], unit weights: totals [4, 4, 1] → signs [+, +, +].
    const d = [v(1, -2, 3), v(3, 2, -1), v(0, 4, -1)];
    const s1 = R.electSign(d, [1, 1, 1], 'sum', 'mergekit');
    // mean over agreeing non-zero entries: (1+3)/2 = 2 (the 0 of model 2 is not counted); (2+4)/2 = 3; 3/1 = 3.
    assert.equal(list(R.disjointMerge(d, [1, 1, 1], s1, 'mean')), [2, 3, 3]);
    // Weights [1, 2, 1]: D = [[1, -2, 3], [6, 4, -2], [0, 4, -1]]; totals [7, 6, 0] → signs [+, +, +] (mergekit: 0 → +).
    const w = [1, 2, 1];
    const s2 = R.electSign(d, w, 'sum', 'mergekit');
    assert.equal(list(s2), [1, 1, 1]);
    // normalize: Σ agreeing D / Σ agreeing w: (1+6)/(1+2) = 7/3; (4+4)/(2+1) = 8/3; 3/1 = 3.
    allClose(R.disjointMerge(d, w, s2, 'normalize'), [7 / 3, 8 / 3, 3], { rtol: 1e-7 });
    // sum: 7, 8, 3. max: the agreeing D of largest magnitude: 6; 4 (models 1 and 2 tie: the first); 3.
    assert.equal(list(R.disjointMerge(d, w, s2, 'sum')), [7, 8, 3]);
    assert.equal(list(R.disjointMerge(d, w, s2, 'max')), [6, 4, 3]);
    // Without signs every entry counts: sum = [1+6+0, -2+4+4, 3-2-1] = [7, 6, 0].
    assert.equal(list(R.disjointMerge(d, w, undefined, 'sum')), [7, 6, 0]);
  });

  test('TIES: hand-worked merge, paper vs mergekit semantics', () => {
    // base 0; δ0 = [1, -2, 3, 0.5, 0, -1], δ1 = [-1, 1, 1, -3, 0, 2]; density 0.5 (m = 3).
    const base = new Float32Array(6);
    const m = [v(1, -2, 3, 0.5, 0, -1), v(-1, 1, 1, -3, 0, 2)];
    // paper trim: keep ≥ the 4th largest magnitude. δ0 magnitudes 3,2,1,1,0.5,0 → 1 → [1,-2,3,0,0,-1];
    // δ1 magnitudes 3,2,1,1,1,0 → 1 → [-1,1,1,-3,0,2]. Totals [0,-1,4,-3,0,1]; the zero totals
    // (entries 0 and 4) take sign(Σ signs) = sign(0-1+1-1+0+1) = 0 → −1.
    // Disjoint mean: e0 (−) → -1; e1 (−) → -2; e2 (+) → (3+1)/2 = 2; e3 → -3; e4 → nothing → 0; e5 → 2.
    const paper = gta({ sparsifier: 'magnitude', vote: 'sum', normalize: true }, [{ density: 0.5 }, { density: 0.5 }]);
    assert.equal(list(R.generalizedTaskArithmetic(base, m, [6], 't', 0, paper)), [-1, -2, 2, -3, 0, 2]);
    // mergekit trim: exactly 3. δ0 |x|-order i2 (3), i1 (2), i0 (1), i5 (1) → [1,-2,3,0,0,0];
    // δ1: i3 (3), i5 (2), i0 (1), i1, i2 → [-1,0,0,-3,0,2]. Totals [0,-2,3,-3,0,2]; zeros elect +.
    // normalize = Σ agreeing D / Σ agreeing w: e0 (+) → 1/1; e1 → -2; e2 → 3; e3 → -3; e4 → nothing: 0/1; e5 → 2.
    const mk = { ...paper, semantics: 'mergekit' as const };
    assert.equal(list(R.generalizedTaskArithmetic(base, m, [6], 't', 0, mk)), [1, -2, 3, -3, 0, 2]);
  });

  test('TIES: a single task, weights, all-zero task vectors', () => {
    // One task δ = [2, -4], weight 0.5: D = [1, -2]. mergekit's normalize divides by the agreeing
    // weight (0.5) → [2, -4]; the paper's mean divides by the count (1) → [1, -2]. λ = 1, base [10, 10].
    const base = v(10, 10);
    const one = [v(12, 6)];
    const o = gta({ sparsifier: 'magnitude', vote: 'sum', normalize: true }, [{ weight: 0.5 }]);
    assert.equal(list(R.generalizedTaskArithmetic(base, one, [2], 't', 0, { ...o, semantics: 'mergekit' })), [12, 6]);
    assert.equal(list(R.generalizedTaskArithmetic(base, one, [2], 't', 0, o)), [11, 8]);
    // Models equal to the base: every δ is 0, every total 0, nothing agrees → the base itself.
    const same = [v(10, 10), v(10, 10)];
    for (const semantics of ['paper', 'mergekit'] as const) {
      assert.equal(list(R.generalizedTaskArithmetic(base, same, [2], 't', 0, { ...o, semantics, models: [o.models[0]!, o.models[0]!] })), [10, 10]);
    }
  });

  test('task arithmetic: weights, λ, normalize', () => {
    // base [1, 1]; δ0 = [1, -1] (w 1), δ1 = [2, 2] (w 0.5): Σ w·δ = [1+1, -1+1] = [2, 0].
    const base = v(1, 1);
    const m = [v(2, 0), v(3, 3)];
    // λ 0.5: base + 0.5·[2, 0] = [2, 1].
    assert.equal(list(R.generalizedTaskArithmetic(base, m, [2], 't', 0, gta({ sparsifier: 'none', lambda: 0.5 }, [{}, { weight: 0.5 }]))), [2, 1]);
    // normalize: [2, 0] / Σw (1.5) = [4/3, 0]; × 0.5 → [2/3, 0]; + base → [5/3, 1].
    allClose(R.generalizedTaskArithmetic(base, m, [2], 't', 0, gta({ sparsifier: 'none', lambda: 0.5, normalize: true }, [{}, { weight: 0.5 }])), [5 / 3, 1], { rtol: 1e-7 });
  });

  test('TIES scope model: the trim and the zero-sign majority span every tensor', () => {
    // Two tensors A, B (2 entries each), base 0, density 0.5. Over the model (4 entries) m = 2, so
    // each model keeps ≥ its 3rd largest magnitude:
    //   model 0: A = [4, 1], B = [-2, 3]: magnitudes 4, 3, 2, 1 → ≥ 2 → A = [4, 0], B = [-2, 3]
    //   model 1: A = [1, -5], B = [1.5, 2]: magnitudes 5, 2, 1.5, 1 → ≥ 1.5 → A = [0, -5], B = [1.5, 2]
    // Totals A = [4, -5], B = [-0.5, 5] → signs [+, -], [-, +] → means A = [4, -5], B = [-2, (3+2)/2 = 2.5].
    const tensors = [
      { base: v(0, 0), models: [v(4, 1), v(1, -5)] },
      { base: v(0, 0), models: [v(-2, 3), v(1.5, 2)] },
    ];
    const o = gta({ sparsifier: 'magnitude', vote: 'sum', normalize: true }, [{ density: 0.5 }, { density: 0.5 }]);
    const [a, b] = R.generalizedTaskArithmeticModel(tensors, o);
    assert.equal(list(a!), [4, -5]);
    assert.equal(list(b!), [-2, 2.5]);
    // Per tensor (m = 1, keep ≥ the 2nd largest), model 1 keeps A = [1, -5], so A0 = (4 + 1)/2 = 2.5.
    assert.equal(list(R.generalizedTaskArithmetic(tensors[0]!.base, tensors[0]!.models, [2], 'A', 0, o)), [2.5, -5]);
  });

  test('DARE: keep fraction close to p over 1e5 entries; both rescale rules; keys per model', () => {
    const n = 100000;
    const x = new Float32Array(n).fill(1);
    const key = R.modelStreamKey(7, 'layer.weight', 0);
    const dropped = R.dareDrop(x, 0.3, key, 'none');
    const kept = dropped.reduce((a, b) => a + b, 0);
    // Binomial(1e5, 0.3): σ = √(1e5·0.3·0.7) ≈ 145 entries; allow ±7σ ≈ ±1000.
    assert.ok(Math.abs(kept - 30000) < 1000, `kept ${kept} of ${n}, expected ≈ 30000`);
    // 'density' divides survivors by p: 1/0.3; mergekit's L1 matching scales them by Σ|x|/Σ|kept| = n/kept.
    const byDensity = R.dareDrop(x, 0.3, key, 'density');
    const byL1 = R.dareDrop(x, 0.3, key, 'l1');
    for (let i = 0; i < n; i++) {
      if (dropped[i] === 0) { assert.is(byDensity[i], 0); assert.is(byL1[i], 0); continue; }
      assert.is(byDensity[i], f(1 / 0.3));
      assert.is(byL1[i], f(n / kept));
    }
    // The key holds the model index: model 1's mask is a different draw (overlap ≈ p² = 9%, not 30%).
    const other = R.dareDrop(x, 0.3, R.modelStreamKey(7, 'layer.weight', 1), 'none');
    let both = 0;
    for (let i = 0; i < n; i++) if (dropped[i] && other[i]) both++;
    assert.ok(Math.abs(both - 9000) < 700, `overlap ${both}, expected ≈ 9000`);
    // The mask is the counter-based draw: keep i iff uniform24(key, i) < p·2^24.
    for (let i = 0; i < 50; i++) assert.is(dropped[i] === 1, P.uniform24(key, i) < f(0.3) * 2 ** 24);
    // p = 1 keeps all unscaled; p = 0 drops all (no division by 0).
    assert.equal(list(R.dareDrop(v(1, -2), 1, key, 'density')), [1, -2]);
    assert.equal(list(R.dareDrop(v(1, -2), 0, key, 'density')), [0, 0]);
    // L1 matching is skipped when a sum is below 1e-7: all-zero input stays 0.
    assert.equal(list(R.dareDrop(v(0, 0, 0), 0.5, key, 'l1')), [0, 0, 0]);
  });

  test('breadcrumbs: outliers and small values removed; γ·n < 1 keeps the tensor (mergekit empties it)', () => {
    // |x| = 1..10 in scrambled positions; x[i] = ±(value).
    const x = v(7, -2, 10, 4, -9, 1, 6, -3, 8, 5);
    // density 0.5, γ 0.1: target 5, n_top = 1, n_bottom = 10 − 5 − 1 = 4 → keep magnitudes 5..9.
    assert.equal(list(R.breadcrumbs(x, 0.5, 0.1)), [7, 0, 0, 0, -9, 0, 6, 0, 8, 5]);
    // γ 0.05: n_top = int(0.5) = 0 → n_bottom = 5 → keep magnitudes 6..10. mergekit's
    // sorted[5:-0] is empty and would zero the whole tensor.
    assert.equal(list(R.breadcrumbs(x, 0.5, 0.05)), [7, 0, 10, 0, -9, 0, 6, 0, 8, 0]);
    // density 0.95, γ 0.2: target 9, n_top 2, n_bottom = 10 − 9 − 2 = −1 → n_top 1, n_bottom 0: drop only the 10.
    assert.equal(list(R.breadcrumbs(x, 0.95, 0.2)), [7, -2, 0, 4, -9, 1, 6, -3, 8, 5]);
    assert.equal(R.breadcrumbsCounts(64, 0.9, 0.01), [0, 7]);
    // density 1 returns the tensor (mergekit too, whatever γ).
    assert.equal(list(R.breadcrumbs(x, 1, 0.1)), list(x));
    // Ties: |x| = [2, 2, 2, 1], density 0.5, γ 0.25: n_top 1, n_bottom 1 → |x|-order i0, i1, i2, i3 → keep i1, i2.
    assert.equal(list(R.breadcrumbs(v(2, -2, 2, 1), 0.5, 0.25)), [0, -2, 2, 0]);
  });

  test('DELLA: rank-based keep probabilities d ± ε, ÷ p_i, rows along dimension 1', () => {
    // Row of 5, d = 0.5, ε = 0.2: p = 0.3 + 0.4·(rank − 1)/4 → 0.3, 0.4, 0.5, 0.6, 0.7.
    [0.3, 0.4, 0.5, 0.6, 0.7].forEach((p, r) => assert.is(R.dellaProbability(r + 1, 5, 0.5, 0.2), f(p)));
    // One-entry rows get the density itself.
    assert.is(R.dellaProbability(1, 1, 0.5, 0.2), f(0.5));
    // 4000 rows of 5 with |x| = column + 1 (sign alternating): column c has rank c + 1.
    const rows = 4000, cols = 5;
    const x = new Float32Array(rows * cols).map((_, i) => ((i % cols) + 1) * (i % 2 ? -1 : 1));
    const key = R.modelStreamKey(3, 'w', 0);
    const out = R.dellaMagprune(x, [rows, cols], 0.5, 0.2, key, 'density');
    for (let c = 0; c < cols; c++) {
      const p = f(0.3 + 0.1 * c);
      let kept = 0;
      for (let r = 0; r < rows; r++) {
        const i = r * cols + c;
        if (out[i] === 0) continue;
        kept++;
        assert.is(out[i], f(x[i]! / p)); // rescaled by its own keep probability
      }
      // σ = √(4000·p(1−p)) ≤ 32: allow ±200.
      assert.ok(Math.abs(kept - 4000 * p) < 200, `column ${c}: kept ${kept}, expected ≈ ${4000 * p}`);
    }
    // A 3-D tensor [2, 3, 2] ranks along dimension 1 (stride 2): fiber (0, :, 0) = indices 0, 2, 4.
    assert.equal(R.dellaLayout([2, 3, 2]), { block: 6, length: 3, inner: 2 });
    assert.equal(R.dellaLayout([7]), { block: 7, length: 7, inner: 1 });
    // density 0 → zeros, density 1 → unchanged.
    assert.equal(list(R.dellaMagprune(v(1, 2), [2], 0, 0.1, key, 'density')), [0, 0]);
    assert.equal(list(R.dellaMagprune(v(1, 2), [2], 1, 0.1, key, 'density')), [1, 2]);
  });

  test('DARE TIES and DELLA pipelines at density 1 reduce to TIES without trimming', () => {
    // density 1: no drop, no rescale. δ0 = [1, -2], δ1 = [-3, 1] → totals [-2, -1] → signs [-, -].
    // dare_ties (normalize false): sum of agreeing = [-3, -2]. della (normalize, paper): mean = [-3, -2].
    const base = v(0, 0);
    const m = [v(1, -2), v(-3, 1)];
    assert.equal(list(R.generalizedTaskArithmetic(base, m, [2], 't', 0, gta({ sparsifier: 'random', vote: 'sum', rescale: true }, [{}, {}]))), [-3, -2]);
    assert.equal(list(R.generalizedTaskArithmetic(base, m, [2], 't', 0, gta({ sparsifier: 'della_magprune', vote: 'sum', normalize: true, rescale: true }, [{}, {}]))), [-3, -2]);
  });

  test('SCE: select by variance, weights mean δ², erase by the sign of Σ δ', () => {
    // base 0; δ0 = [1, 2, 0, -1], δ1 = [1, -2, 4, 1].
    const base = new Float32Array(4);
    const m = [v(1, 2, 0, -1), v(1, -2, 4, 1)];
    // No selection: signs of Σ = [2, 0, 4, 0] → all + (0 → +). Weights: mean δ0² = (1+4+0+1)/4 = 1.5,
    // mean δ1² = (1+4+16+1)/4 = 5.5 → η = [1.5/7, 5.5/7] = [3/14, 11/14].
    // e0: both 1 agree → (3/14 + 11/14)/1 = 1; e1: only δ0's 2 → 2·η0/η0 = 2; e2: δ1's 4 → 4; e3: δ1's 1 → 1.
    allClose(R.sce(base, m, 1), [1, 2, 4, 1], { rtol: 1e-6 });
    // select_topk 0.5: variances (population) [0, 4, 4, 1]; 3 non-zero → k = floor(1.5) = 1; the tie
    // between e1 and e2 goes to e1. Selected δ0 = [0, 2, 0, 0], δ1 = [0, -2, 0, 0]; Σ = 0 → +;
    // weights 1 and 1 → ½, ½; e1 = 2·½ / ½ = 2.
    allClose(R.sce(base, m, 0.5), [0, 2, 0, 0], { rtol: 1e-6 });
    // A single task has zero variance everywhere: k = 0, nothing selected → the base.
    assert.equal(list(R.sce(v(1, 2), [v(3, 5)], 0.5)), [1, 2]);
    // select_topk 0 selects nothing; weights fall back to uniform; result the base.
    assert.equal(list(R.sce(v(1, 2), [v(3, 5), v(0, 0)], 0)), [1, 2]);
  });

  test('consensus / TALL masks: k agreeing masks keep an entry', () => {
    // base 0; δ0 = [1, -2, 3, 0.5, 0, -1], δ1 = [-1, 1, 1, -3, 0, 2]; τ = δ0 + δ1 = [0, -1, 4, -2.5, 0, 1];
    // λ_t = 0.4: mask_t = |δ_t| > 0.4·|τ − δ_t| (τ − δ_0 = δ_1 and vice versa):
    //   e0: 1 > 0.4 ✓, 1 > 0.4 ✓ → 2     e1: 2 > 0.4 ✓, 1 > 0.8 ✓ → 2     e2: 3 > 0.4 ✓, 1 > 1.2 ✗ → 1
    //   e3: 0.5 > 1.2 ✗, 3 > 0.2 ✓ → 1   e4: 0 > 0 ✗ twice → 0              e5: 1 > 0.8 ✓, 2 > 0.4 ✓ → 2
    const base = new Float32Array(6);
    const m = [v(1, -2, 3, 0.5, 0, -1), v(-1, 1, 1, -3, 0, 2)];
    const run = (k: number, lambda = 1) => list(R.consensus(base, m, [1, 1], [0.4, 0.4], k, lambda));
    assert.equal(run(2), [0, -1, 0, 0, 0, 1]);
    assert.equal(run(1), [0, -1, 4, -2.5, 0, 1]);
    assert.equal(run(0), [0, -1, 4, -2.5, 0, 1]); // k = 0 keeps all: task arithmetic
    assert.equal(run(3), [0, 0, 0, 0, 0, 0]);
    assert.equal(run(1, 0.5), [0, -0.5, 2, -1.25, 0, 0.5]);
    // With density 0.5 (TIES-code trim, keep ≥ the 4th largest): τ = [0, -1, 4, -3, 0, 1] (δ0's 0.5 trimmed),
    // while masks still use the untrimmed δ: e3: 0.5 > 0.4·|−3 − 0.5| = 1.4 ✗, 3 > 0.4·|−3 + 3| = 0 ✓ → 1.
    assert.equal(list(R.consensus(base, m, [0.5, 0.5], [0.4, 0.4], 1, 1)), [0, -1, 4, -3, 0, 1]);
  });

  test.run();
}
