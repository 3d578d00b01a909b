// The interpolation methods' references (the oracle), checked against hand-worked cases. Every
// expected value is worked out in the comments from the published rule, never computed by the
// code under test. Useful values: √½ = 0.70710678, sin(π/8) = 0.38268343, cos(π/8) = 0.92387953.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose, rng } from '../util.ts';
import { reference } from 'merge-kernels';

const { addCompensated, linear, slerp, nuslerp, nuslerpT, modelStock, modelStockRatio, karcher, metricsWeights, metricsWeightedAverage } = reference.modelInterpolation;

const f32 = (...v: number[]) => new Float32Array(v);
const list = (a: ArrayLike<number>) => Array.from(a);
const H = Math.SQRT1_2;
/** float32 results of float64 arithmetic: one rounding, so 1e-7 relative. */
const TOL = { rtol: 1e-7, atol: 1e-7 };

export default function (h: Harness) {
  const test = suite(`model interpolation reference [${h.backend}]`);

  test('linear: Σ w·x, divided by Σ w when normalize (default)', () => {
    // x1 = (1, 2, 3), x2 = (3, 6, 9), w = (1, 3): Σ w·x = (1 + 9, 2 + 18, 3 + 27) = (10, 20, 30); Σ w = 4.
    const x1 = f32(1, 2, 3), x2 = f32(3, 6, 9);
    assert.equal(list(linear([x1, x2], [1, 3])), [2.5, 5, 7.5]);
    assert.equal(list(linear([x1, x2], [1, 3], false)), [10, 20, 30]);
    // Negative weights extrapolate: w = (2, −1) on x = 1 and 4: (2 − 4) / (2 − 1) = −2.
    assert.equal(list(linear([f32(1), f32(4)], [2, -1])), [-2]);
    // One model, one element: 0.3·5 / 0.3 = 5.
    allClose(linear([f32(5)], [0.3]), [5], TOL, 'one model');
  });

  test('slerp: orthogonal vectors follow the arc; t = 0 and 1 give the endpoints exactly', () => {
    // cos = 0 → θ = π/2, sin θ = 1; t = 0.5: s0 = s1 = sin(π/4) = √½ → (v0 + v1)/√2.
    allClose(slerp(0.5, f32(1, 0), f32(0, 1)), [H, H], TOL, 'unit, t = 0.5');
    // v0 = (2, 0), v1 = (0, 3), t = 1/3: s0 = sin(π/2 − π/6) = √3/2, s1 = sin(π/6) = ½ → (2·√3/2, 3·½).
    allClose(slerp(1 / 3, f32(2, 0), f32(0, 3)), [Math.sqrt(3), 1.5], TOL, 't = 1/3');
    // t = 0: s0 = sin θ / sin θ = 1, s1 = sin 0 = 0; t = 1: s0 = sin 0 = 0, s1 = 1.
    const v0 = f32(1.5, -2, 0.25), v1 = f32(-1, 0.5, 3);
    assert.equal(list(slerp(0, v0, v1)), list(v0));
    assert.equal(list(slerp(1, v0, v1)), list(v1));
  });

  test('slerp: |cos| > 0.9995 interpolates linearly (parallel, antiparallel, one element)', () => {
    // v1 = (1, 0.01): cos = 1/√1.0001 = 0.99995 > 0.9995 → lerp: (1, 0.005). The arc would give
    // x = 2·sin(0.005)/sin(0.01) ≈ 1.000025, so the branch is visible at this tolerance.
    allClose(slerp(0.5, f32(1, 0), f32(1, 0.01)), [1, 0.005], TOL, 'near-parallel');
    // cos = 0.999 ≤ 0.9995 → the arc: with φ = acos(0.999), t = ½: s0 = s1 = sin(φ/2)/sin φ = 1/(2·cos(φ/2)),
    // cos(φ/2) = √((1 + 0.999)/2) = √0.9995; v1 = (0.999, √(1 − 0.999²)).
    const sinPhi = Math.sqrt(1 - 0.999 * 0.999), s = 1 / (2 * Math.sqrt(0.9995));
    allClose(slerp(0.5, f32(1, 0), f32(0.999, sinPhi)), [s * (1 + 0.999), s * sinPhi], { rtol: 1e-6, atol: 1e-7 }, 'just below the threshold');
    // Antiparallel (1, 2) and (−2, −4): cos = −1, |cos| > 0.9995 → lerp at t = ¼: 0.75·(1, 2) + 0.25·(−2, −4).
    allClose(slerp(0.25, f32(1, 2), f32(-2, -4)), [0.25, 0.5], TOL, 'antiparallel');
    // A 1-element tensor is always (anti)parallel: 0.6·2 + 0.4·5 = 3.2 and 0.6·2 − 0.4·5 = −0.8.
    allClose(slerp(0.4, f32(2), f32(5)), [3.2], TOL, '1 element');
    allClose(slerp(0.4, f32(2), f32(-5)), [-0.8], TOL, '1 element, opposite sign');
  });

  test('slerp: a zero vector is not normalised (mergekit), so cos = 0 and θ = π/2', () => {
    // v0 = 0, v1 = (3, 4): cos = 0 / (1·5) = 0 → s1 = sin(π/4) = √½ at t = ½ → (3√½, 4√½), not ½·v1.
    allClose(slerp(0.5, f32(0, 0), f32(3, 4)), [3 * H, 4 * H], TOL, 'zero base');
    assert.equal(list(slerp(0.5, f32(0, 0), f32(0, 0))), [0, 0]);
  });

  test('nuslerp: t = w1/(w0 + w1), 0.5 when the weights cancel; flattened arc', () => {
    assert.is(nuslerpT(1, 3), 0.75);
    assert.is(nuslerpT(2, 2), 0.5);
    assert.is(nuslerpT(0.5, -0.5), 0.5); // |Σw| = 0 < 1e-6
    // Orthogonal at t = ½: (√½, √½); parallel (cos = 1 → sin θ = 0 < 1e-8) → lerp.
    allClose(nuslerp(0.5, f32(1, 0), f32(0, 1), [2]), [H, H], TOL, 'orthogonal');
    allClose(nuslerp(0.25, f32(2, 4), f32(1, 2), [2]), [1.75, 3.5], TOL, 'parallel → lerp');
    // Antiparallel: cos = −1 → θ = π, sin π ≈ 1.2e-16 < 1e-8 → lerp: 0.5·(1, 0) + 0.5·(−3, 0).
    allClose(nuslerp(0.5, f32(1, 0), f32(-3, 0), [2]), [-1, 0], TOL, 'antiparallel → lerp');
  });

  test('nuslerp: antiparallel up to rounding interpolates linearly, not along a ~1e7-times amplified arc', () => {
    // v1 = −3·v0 (rounded to float32): θ is π within rounding, so lerp: 0.7·v0 + 0.3·v1 = 0.7·v0 − 0.9·v0 = −0.2·v0.
    // With plain float64 sums about one case in five passes |sin θ| < 1e-8 and is multiplied by 1/sin θ.
    // The sums behind cos are compensated: 1 + ten times 1e-16 keeps 1 in acc[0] (as plain float64
    // would, 1 + 1e-16 = 1) and the lost 10 × 1e-16 = 1e-15 in acc[1].
    const acc = new Float64Array(2);
    addCompensated(acc, 0, 1);
    for (let i = 0; i < 10; i++) addCompensated(acc, 0, 1e-16);
    assert.is(acc[0], 1);
    allClose([acc[1]!], [1e-15], { rtol: 1e-9, atol: 0 }, 'compensated sum');
    for (let seed = 1; seed <= 20; seed++) {
      const next = rng(seed), n = 30 + seed;
      const v0 = Float32Array.from({ length: n }, () => 2 * next() - 1);
      const v1 = v0.map((x) => -3 * x);
      allClose(nuslerp(0.3, v0, v1, [n]), v0.map((x) => -0.2 * x), { rtol: 1e-6, atol: 1e-7 }, `seed ${seed}`);
    }
  });

  test('nuslerp: per row (last dimension) and per first-dimension vector (row_wise)', () => {
    // v0 = [[1, 0], [1, 0]], v1 = [[0, 1], [1, 0]], t = ½.
    const v0 = f32(1, 0, 1, 0), v1 = f32(0, 1, 1, 0);
    // Rows: row 0 orthogonal → (√½, √½); row 1 parallel → lerp (1, 0).
    allClose(nuslerp(0.5, v0, v1, [2, 2], { flatten: false }), [H, H, 1, 0], TOL, 'rows');
    // First dimension (columns here): col 0 = v0 (1, 1), v1 (0, 1): cos = 1/√2, θ = π/4,
    // s = sin(π/8)/sin(π/4) = 1/(2 cos(π/8)) → s·(1, 2). Col 1 = v0 (0, 0), v1 (1, 0): the zero norm is
    // clamped to 1e-7 so cos = 0, θ = π/2, s = sin(π/4) = √½ → √½·(1, 0). Out [[s, √½], [2s, 0]].
    const s = 1 / (2 * Math.cos(Math.PI / 8));
    allClose(nuslerp(0.5, v0, v1, [2, 2], { flatten: false, rowWise: true }), [s, H, 2 * s, 0], TOL, 'first dimension');
    // Flattened: cos = (0 + 0 + 1 + 0)/(√2·√2) = ½ → θ = π/3, s = sin(π/6)/sin(π/3) = 1/√3 → (v0 + v1)/√3.
    const r3 = 1 / Math.sqrt(3);
    allClose(nuslerp(0.5, v0, v1, [2, 2]), [r3, r3, 2 * r3, 0], TOL, 'flattened');
    // row_wise on a 1-D tensor: one vector, as flattened.
    allClose(nuslerp(0.5, f32(1, 0), f32(0, 1), [2], { flatten: false, rowWise: true }), [H, H], TOL, '1-D row_wise');
  });

  test('nuslerp with a base interpolates task vectors and adds the base back', () => {
    // base (1, 1); δ0 = (2, 1) − base = (1, 0), δ1 = (1, 2) − base = (0, 1) → base + √½·(1, 1).
    allClose(nuslerp(0.5, f32(2, 1), f32(1, 2), [2], { base: f32(1, 1) }), [1 + H, 1 + H], TOL, 'task vectors');
  });

  test('model_stock: t = N·c/(1 + (N − 1)·c) from the offsets, w0 + t·mean offset', () => {
    // base (1, 1); offsets (1, 0) and (1, 1): c = 1/√2; t = 2c/(1 + c) = √2/(1 + √½) = 2(√2 − 1);
    // mean offset (1, ½) → (1 + t, 1 + t/2).
    const t = 2 * (Math.SQRT2 - 1);
    allClose(modelStock(f32(1, 1), [f32(2, 1), f32(2, 2)], [2]), [1 + t, 1 + t / 2], TOL, 'two models at 45°');
    // Orthogonal offsets: c = 0 → t = 0 → the base.
    assert.equal(list(modelStock(f32(1, 2), [f32(2, 2), f32(1, 3)], [2])), [1, 2]);
    // Identical offsets: c = 1 → t = N/N = 1 → the mean of the models.
    assert.equal(list(modelStock(f32(0, 0), [f32(1, 2), f32(1, 2), f32(1, 2)], [2])), [1, 2]);
    // Three models, offsets (1, 0, 0), (0, 1, 0), (1, 1, 0): cosines 0, √½, √½ → c = √2/3;
    // t = 3c/(1 + 2c) = √2/(1 + 2√2/3) = 3√2/(3 + 2√2); mean offset (⅔, ⅔, 0).
    const t3 = (3 * Math.SQRT2) / (3 + 2 * Math.SQRT2);
    allClose(modelStock(f32(0, 0, 0), [f32(1, 0, 0), f32(0, 1, 0), f32(1, 1, 0)], [3]), [t3 * 2 / 3, t3 * 2 / 3, 0], TOL, 'three models');
    // 1 element: offsets 2 and 4 are parallel → t = 1 → mean (3 + 5)/2 = 4.
    assert.equal(list(modelStock(f32(1), [f32(3), f32(5)], [1])), [4]);
  });

  test('model_stock: filter_wise takes one t per row', () => {
    // base 0; w1 = [[1, 0], [1, 0]], w2 = [[0, 1], [1, 0]]. Row 0 orthogonal → t = 0 → (0, 0);
    // row 1 parallel → t = 1 → mean (1, 0). Whole tensor: c = 1/(√2·√2) = ½ → t = 1/(3/2) = ⅔,
    // mean offset (½, ½, 1, 0) → (⅓, ⅓, ⅔, 0).
    const base = f32(0, 0, 0, 0), w1 = f32(1, 0, 1, 0), w2 = f32(0, 1, 1, 0);
    assert.equal(list(modelStock(base, [w1, w2], [2, 2], true)), [0, 0, 1, 0]);
    allClose(modelStock(base, [w1, w2], [2, 2]), [1 / 3, 1 / 3, 2 / 3, 0], TOL, 'whole tensor');
  });

  test('model_stock: zero offsets give the base; cancelling offsets (the pole of t) give the base', () => {
    // Zero offsets: the norm product is clamped to 1e-6, so c = 0 and t = 0.
    assert.equal(list(modelStock(f32(1, 2), [f32(1, 2), f32(1, 2)], [2])), [1, 2]);
    // Offsets (1, 2) and (−1, −2): c = −1 → 1 + (N − 1)c = 0. mergekit divides by zero (NaN);
    // we define t = 0 there.
    assert.equal(list(modelStock(f32(0, 0), [f32(1, 2), f32(-1, -2)], [2])), [0, 0]);
    // The ratio itself: Gram [[1, 0], [0, 1]] → c = 0 → t = 0; [[4, 4], [4, 4]] → c = 1 → t = 1;
    // obtuse c = −½ with N = 2: t = −1/(1 − ½) = −2 (the formula's extrapolation, as mergekit).
    assert.is(modelStockRatio(2, new Float64Array([1, 0, 0, 1])), 0);
    assert.is(modelStockRatio(2, new Float64Array([4, 4, 4, 4])), 1);
    assert.is(modelStockRatio(2, new Float64Array([1, -0.5, -0.5, 1])), -2);
  });

  test('karcher: two unit vectors → the normalised midpoint, scaled by the mean norm', () => {
    // Directions (1, 0), (0, 1): the mean direction is (√½, √½) and T = 0 there; mean norm 1.
    allClose(karcher([f32(1, 0), f32(0, 1)]), [H, H], TOL, 'unit');
    // Norms 2 and 4: the same direction, scaled by (2 + 4)/2 = 3.
    allClose(karcher([f32(2, 0), f32(0, 4)]), [3 * H, 3 * H], TOL, 'norms 2 and 4');
  });

  test('karcher: the Riemannian mean differs from the normalised arithmetic mean', () => {
    // Directions at 0°, 0° and 90° on the circle: the Karcher mean minimises Σ θ_i², i.e. the mean
    // angle 30°; one geodesic step from the start reaches it (on a circle the log map is the angle).
    const xs = [f32(1, 0), f32(1, 0), f32(0, 1)];
    allClose(karcher(xs), [Math.cos(Math.PI / 6), 0.5], { rtol: 1e-6, atol: 1e-7 }, 'mean angle 30°');
    // max_iter 0 keeps the start: the normalised arithmetic mean (2, 1)/√5 (26.6°).
    allClose(karcher(xs, 0), [2 / Math.sqrt(5), 1 / Math.sqrt(5)], TOL, 'max_iter 0');
  });

  test('karcher: zero vectors, one model, one element', () => {
    // (0, 0) has no direction but counts in the scale: (0 + 1 + 1)/3 = ⅔ along (√½, √½).
    allClose(karcher([f32(0, 0), f32(1, 0), f32(0, 1)]), [(2 / 3) * H, (2 / 3) * H], TOL, 'a zero model');
    assert.equal(list(karcher([f32(0, 0), f32(0, 0)])), [0, 0]);
    assert.equal(list(karcher([f32(3, -4)])), [3, -4]);
    // 1 element, same sign: direction (1), scale (2 + 3)/2.
    assert.equal(list(karcher([f32(2), f32(3)])), [2.5]);
  });

  test('metrics-weighted averaging: w ∝ metric^(−p) or step^p, normalised', () => {
    // Losses 1 and 2, p = 1: ∝ (1, ½) → (⅔, ⅓); p = 2: ∝ (1, ¼) → (0.8, 0.2); p = 0: uniform.
    allClose(metricsWeights([1, 2], 'metric', 1), [2 / 3, 1 / 3], TOL, 'p = 1');
    allClose(metricsWeights([1, 2], 'metric', 2), [0.8, 0.2], TOL, 'p = 2');
    allClose(metricsWeights([0.3, 0.7, 5], 'metric', 0), [1 / 3, 1 / 3, 1 / 3], TOL, 'p = 0');
    // Steps 100 and 300, p = 2: ∝ (10⁴, 9·10⁴) → (0.1, 0.9).
    allClose(metricsWeights([100, 300], 'step', 2), [0.1, 0.9], TOL, 'steps');
    // p = 1000 on losses 1 and 1.01: w2 = 1/(1 + 1.01^1000) without overflow.
    allClose(metricsWeights([1, 1.01], 'metric', 1000), [1 - 1 / (1 + 1.01 ** 1000), 1 / (1 + 1.01 ** 1000)], { rtol: 1e-9, atol: 0 }, 'large p');
    // (0, 3) with loss 1 and (3, 0) with loss 2, p = 1: ⅔·(0, 3) + ⅓·(3, 0) = (1, 2).
    allClose(metricsWeightedAverage([f32(0, 3), f32(3, 0)], [1, 2], 'metric', 1), [1, 2], TOL, 'average');
  });

  test('empty tensors merge to empty tensors', () => {
    const e = new Float32Array(0);
    assert.is(linear([e, e], [1, 1]).length, 0);
    assert.is(slerp(0.5, e, e).length, 0);
    assert.is(nuslerp(0.5, e, e, [0, 3], { flatten: false }).length, 0);
    assert.is(modelStock(e, [e, e], [3, 0], true).length, 0);
    assert.is(karcher([e, e]).length, 0);
  });

  test.run();
}
