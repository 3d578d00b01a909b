// The streaming interpolation methods (INTERPOLATION_METHODS) fed chunk by chunk through the
// in-memory driver equal the whole-tensor references for every chunk size, and reject bad
// parameters with a MergeKernelsError naming the parameter. These methods are plain TypeScript
// over the chunks and never call the backend, so the suite runs once per runtime (REFERENCE_SUITES).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose, rejects, rng } from '../util.ts';
import { INTERPOLATION_METHODS, SELECTION_METHODS, mergeTensor, reference, type MethodContext, type ParamValue, type TensorParams } from 'merge-kernels';

const R = reference.modelInterpolation;

/** Shapes: one element, odd, a multiple of 4 plus 1, 2-D (rows of 29) and 3-D. */
const SHAPES: number[][] = [[1], [37], [4097], [13, 29], [3, 5, 7]];
const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** Chunk sizes 1, 7, 1000 and the whole tensor (row-wise methods round them up to whole rows). */
const chunkSizes = (n: number) => [1, 7, 1000, Math.max(1, n)];
/**
 * Within 1e-6 relative: the streaming and whole-tensor code accumulate in float64 in the same
 * order, except Karcher, which iterates on the Gram matrix instead of on the tensor.
 */
const TOL = { rtol: 1e-6, atol: 1e-7 };

interface Case {
  method: string;
  global: Record<string, ParamValue>;
  models: Record<string, ParamValue>[];
  /** Builds the inputs for a tensor of `n` values. */
  inputs(n: number, seed: number): { base: Float32Array | undefined; models: Float32Array[] };
  reference(base: Float32Array | undefined, models: Float32Array[], shape: number[]): Float32Array;
}

function uniform(n: number, next: () => number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * next());
}

/** `count` independent random tensors, and a base when `withBase`. */
function independent(count: number, withBase: boolean) {
  return (n: number, seed: number) => {
    const next = rng(seed);
    return { base: withBase ? uniform(n, next) : undefined, models: Array.from({ length: count }, () => uniform(n, next)) };
  };
}

/** Fine-tunes of one base sharing a direction, so the offsets' cosines are near ½ rather than 0. */
function fineTunes(count: number) {
  return (n: number, seed: number) => {
    const next = rng(seed);
    const base = uniform(n, next), shared = uniform(n, next, -0.1, 0.1);
    return { base, models: Array.from({ length: count }, () => base.map((b, i) => b + shared[i]! + 0.1 * (2 * next() - 1))) };
  };
}

/** Fine-tunes that leave about half the entries of the base untouched, some shared (RAM's unique and overlapping entries). */
function sparseTuned(count: number) {
  return (n: number, seed: number) => {
    const next = rng(seed);
    const base = uniform(n, next);
    return { base, models: Array.from({ length: count }, () => base.map((b) => (next() < 0.5 ? b : b + 0.2 * (2 * next() - 1)))) };
  };
}

/** Two nearly parallel tensors (slerp's lerp branch on the whole tensor). */
function nearlyParallel(n: number, seed: number) {
  const next = rng(seed);
  const v0 = uniform(n, next);
  return { base: v0, models: [v0.map((v) => v * 1.5 + 1e-3 * (2 * next() - 1))] };
}

// mergekit's added methods, written out step by step as their Python does (whole tensor,
// float64): the streamed methods must agree with these for every chunk size.

/** multislerp.py's steps: unit directions, weighted mean, tangent projection, exponential map, mean norm. */
function multislerpSteps(models: Float32Array[], weights: number[], base: Float32Array | undefined, normalize = true, eps = 1e-8): Float64Array {
  const N = models.length, n = models[0]!.length;
  if (N === 1) return Float64Array.from(models[0]!);
  const t = models.map((x) => Float64Array.from(x, (v, i) => (base ? Math.fround(v - base[i]!) : v)));
  const sum = weights.reduce((a, b) => a + b, 0);
  const w = normalize ? weights.map((x) => x / sum) : weights;
  const norm = (v: Float64Array) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  const norms = t.map(norm);
  const units = t.map((v, m) => v.map((x) => x / (norms[m]! + eps)));
  const mean = new Float64Array(n);
  units.forEach((u, m) => u.forEach((x, i) => { mean[i] += w[m]! * x; }));
  const meanNorm = norm(mean);
  const out = new Float64Array(n);
  if (meanNorm < eps) {
    if (N !== 2) throw new Error('zero mean');
    for (let i = 0; i < n; i++) out[i] = w[0]! * t[0]![i]! + w[1]! * t[1]![i]! + (base ? base[i]! : 0);
    return out;
  }
  const mhat = mean.map((x) => x / meanNorm);
  const tangent = new Float64Array(n);
  units.forEach((u, m) => {
    const dot = u.reduce((a, x, i) => a + x * mhat[i]!, 0);
    u.forEach((x, i) => { tangent[i] += w[m]! * (x - dot * mhat[i]!); });
  });
  const tn = norm(tangent) + eps;
  const avgNorm = norms.reduce((a, x, m) => a + x * w[m]!, 0);
  for (let i = 0; i < n; i++) out[i] = (mhat[i]! * Math.cos(tn) + tangent[i]! * (Math.sin(tn) / tn)) * avgNorm + (base ? base[i]! : 0);
  return out;
}

/** nearswap.py: w = clamp(t / clamp(|a − b|, 1e-6), 0, 1), w·b + (1 − w)·a. */
function nearswapSteps(t: number, a: Float32Array, b: Float32Array): Float64Array {
  return Float64Array.from(a, (x, i) => {
    const w = Math.min(1, Math.max(0, t / Math.max(Math.abs(x - b[i]!), 1e-6)));
    return w * b[i]! + (1 - w) * x;
  });
}

/** ram.py: masks |δ| > ε, counts, unique and overlap terms; RAM+ scales a model's unique entries by λ_m. */
function ramSteps(base: Float32Array, models: Float32Array[], epsilon = 1e-5, plus?: { r: number; alpha: number }): Float64Array {
  const tv = models.map((x) => Float64Array.from(x, (v, i) => Math.fround(v - base[i]!)));
  const nonzero = tv.map((d) => Array.from(d, (x) => Math.abs(x) > epsilon));
  const counts = Array.from(base, (_, i) => nonzero.filter((z) => z[i]).length);
  const lambda = tv.map((_, m) => {
    if (!plus) return 1;
    const shared = counts.filter((c, i) => nonzero[m]![i] && c > 1).length;
    const unique = counts.filter((c, i) => nonzero[m]![i] && c === 1).length;
    return 1 + plus.r * Math.min(plus.alpha, Math.max(0, shared / Math.max(unique, epsilon)));
  });
  return Float64Array.from(base, (b, i) => {
    let merged = 0;
    tv.forEach((d, m) => {
      const z = nonzero[m]![i] ? d[i]! : 0;
      merged += (counts[i] === 1 ? z * lambda[m]! : 0) + (counts[i]! > 1 ? z / counts[i]! : 0);
    });
    return b + merged;
  });
}

/** arcee_fusion.py: |δ|·KL(softmax(x)+1e-8 ‖ softmax(base)+1e-8) per last-dimension row; keep δ where ≥ median + 1.5·IQR. */
function arceeFusionSteps(base: Float32Array, x: Float32Array, shape: number[]): Float64Array {
  const row = Math.max(1, shape[shape.length - 1] ?? 1);
  const softmax = (v: Float32Array) => { const e = Array.from(v, (y) => Math.exp(y)); const s = e.reduce((a, y) => a + y, 0); return e.map((y) => y / s + 1e-8); };
  const importance = new Float32Array(base.length);
  for (let start = 0; start < base.length; start += row) {
    const p = softmax(x.subarray(start, start + row)), q = softmax(base.subarray(start, start + row));
    const kl = p.reduce((a, pi, j) => a + pi * Math.log(pi / q[j]!), 0);
    for (let j = 0; j < row; j++) importance[start + j] = Math.abs(Math.fround(x[start + j]! - base[start + j]!)) * kl;
  }
  const sorted = Float32Array.from(importance).sort();
  const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))]!;
  // In float32, as torch computes it.
  const threshold = Math.fround(at(0.5) + Math.fround(1.5 * Math.fround(at(0.75) - at(0.25))));
  return Float64Array.from(base, (b, i) => (importance[i]! >= threshold ? x[i]! : b));
}

const CASES: Case[] = [
  { method: 'linear', global: {}, models: [{ weight: 0.5 }, { weight: 1.5 }, { weight: -0.25 }], inputs: independent(3, false),
    reference: (_b, m) => R.linear(m, [0.5, 1.5, -0.25]) },
  { method: 'linear', global: { normalize: false }, models: [{ weight: 0.5 }, { weight: 0.7 }], inputs: independent(2, false),
    reference: (_b, m) => R.linear(m, [0.5, 0.7], false) },
  { method: 'slerp', global: { t: 0.3 }, models: [{}], inputs: independent(1, true),
    reference: (b, m) => R.slerp(0.3, b!, m[0]!) },
  { method: 'slerp', global: { t: 0.8 }, models: [{}], inputs: nearlyParallel,
    reference: (b, m) => R.slerp(0.8, b!, m[0]!) },
  ...[false, true].flatMap((withBase) => [
    { flatten: true, rowWise: false }, { flatten: false, rowWise: false }, { flatten: false, rowWise: true },
  ].map(({ flatten, rowWise }): Case => ({
    method: 'nuslerp', global: { nuslerp_flatten: flatten, nuslerp_row_wise: rowWise }, models: [{ weight: 1 }, { weight: 2 }],
    inputs: independent(2, withBase),
    reference: (b, m, shape) => R.nuslerp(2 / 3, m[0]!, m[1]!, shape, { flatten, rowWise, base: b }),
  }))),
  { method: 'model_stock', global: {}, models: [{}, {}, {}], inputs: fineTunes(3),
    reference: (b, m, shape) => R.modelStock(b!, m, shape) },
  { method: 'model_stock', global: { filter_wise: true }, models: [{}, {}], inputs: fineTunes(2),
    reference: (b, m, shape) => R.modelStock(b!, m, shape, true) },
  { method: 'karcher', global: {}, models: [{}, {}, {}], inputs: independent(3, false),
    reference: (_b, m) => R.karcher(m) },
  { method: 'karcher', global: { max_iter: 50, tol: 1e-9 }, models: [{}, {}], inputs: fineTunes(2),
    reference: (_b, m) => R.karcher(m, 50, 1e-9) },
  { method: 'metrics_weighted', global: {}, models: [{ metric: 0.9 }, { metric: 0.5 }, { metric: 0.7 }], inputs: independent(3, false),
    reference: (_b, m) => R.metricsWeightedAverage(m, [0.9, 0.5, 0.7], 'metric', 1) },
  { method: 'metrics_weighted', global: { weight_by: 'step', penalty: 2 }, models: [{ step: 100 }, { step: 400 }], inputs: independent(2, false),
    reference: (_b, m) => R.metricsWeightedAverage(m, [100, 400], 'step', 2) },
  { method: 'multislerp', global: {}, models: [{ weight: 1 }, { weight: 2 }, { weight: 0.5 }], inputs: independent(3, false),
    reference: (_b, m) => Float32Array.from(multislerpSteps(m, [1, 2, 0.5], undefined)) },
  { method: 'multislerp', global: { normalize_weights: false }, models: [{ weight: 0.3 }, { weight: 0.4 }], inputs: fineTunes(2),
    reference: (b, m) => Float32Array.from(multislerpSteps(m, [0.3, 0.4], b, false)) },
  { method: 'nearswap', global: { t: 0.2 }, models: [{}], inputs: independent(1, true),
    reference: (b, m) => Float32Array.from(nearswapSteps(0.2, b!, m[0]!)) },
  { method: 'ram', global: {}, models: [{}, {}, {}], inputs: sparseTuned(3),
    reference: (b, m) => Float32Array.from(ramSteps(b!, m)) },
  { method: 'ramplus_tl', global: {}, models: [{}, {}, {}], inputs: sparseTuned(3),
    reference: (b, m) => Float32Array.from(ramSteps(b!, m, 1e-5, { r: 0.1, alpha: 0.2 })) },
  { method: 'ramplus_tl', global: { r: 0.5, alpha: 3, epsilon: 0.05 }, models: [{}, {}], inputs: sparseTuned(2),
    reference: (b, m) => Float32Array.from(ramSteps(b!, m, 0.05, { r: 0.5, alpha: 3 })) },
  { method: 'arcee_fusion', global: {}, models: [{}], inputs: independent(1, true),
    reference: (b, m, shape) => Float32Array.from(arceeFusionSteps(b!, m[0]!, shape)) },
];

/** The backend is never used by these methods (see the file header). */
const context = (models: number): MethodContext => ({ models, seed: 0, backend: undefined as unknown as MethodContext['backend'] });

function create(method: string, models: number) {
  const spec = INTERPOLATION_METHODS[method] ?? SELECTION_METHODS[method];
  assert.ok(spec, `INTERPOLATION_METHODS or SELECTION_METHODS has ${method}`);
  return spec!.create(context(models));
}

async function merge(method: string, shape: number[], params: TensorParams, base: Float32Array | undefined, models: Float32Array[], chunkSize: number) {
  return mergeTensor(create(method, models.length), { name: 'w', shape, numel: numel(shape) }, params, base, models, chunkSize);
}

export default function (h: Harness) {
  const test = suite('model interpolation and selection methods (host code over chunks: run once)');

  test('the registry: mergekit names, base requirements, parameters and their defaults', () => {
    assert.equal(Object.keys(INTERPOLATION_METHODS).sort(), ['karcher', 'linear', 'metrics_weighted', 'model_stock', 'multislerp', 'nuslerp', 'slerp']);
    for (const [name, spec] of Object.entries(INTERPOLATION_METHODS)) assert.is(spec.name, name);
    assert.equal(Object.entries(INTERPOLATION_METHODS).filter(([, s]) => s.needsBase).map(([n]) => n).sort(), ['model_stock', 'slerp']);
    assert.equal(INTERPOLATION_METHODS.linear!.globalParams, { normalize: true });
    assert.equal(INTERPOLATION_METHODS.nuslerp!.globalParams, { nuslerp_flatten: true, nuslerp_row_wise: false });
    assert.equal(INTERPOLATION_METHODS.model_stock!.globalParams, { filter_wise: false });
    assert.equal(INTERPOLATION_METHODS.karcher!.globalParams, { max_iter: 10, tol: 1e-5 });
    assert.ok(Number.isNaN(INTERPOLATION_METHODS.slerp!.globalParams.t), 'slerp t is required (NaN default)');
    // mergekit's added methods: names, base, defaults as in its merge_methods/*.py signatures.
    assert.equal(INTERPOLATION_METHODS.multislerp!.globalParams, { normalize_weights: true, eps: 1e-8 });
    assert.ok(Number.isNaN(INTERPOLATION_METHODS.multislerp!.modelParams.weight), 'multislerp weight is required');
    assert.ok(!INTERPOLATION_METHODS.multislerp!.needsBase && INTERPOLATION_METHODS.multislerp!.optionalBase, 'multislerp: optional base');
    assert.equal(Object.keys(SELECTION_METHODS).sort(), ['arcee_fusion', 'nearswap', 'ram', 'ramplus_tl']);
    for (const [name, spec] of Object.entries(SELECTION_METHODS)) assert.ok(spec.name === name && spec.needsBase, `${name}: needs a base`);
    assert.ok(Number.isNaN(SELECTION_METHODS.nearswap!.globalParams.t), 'nearswap t is required');
    assert.equal(SELECTION_METHODS.ram!.globalParams, { epsilon: 1e-5 });
    assert.equal(SELECTION_METHODS.ramplus_tl!.globalParams, { r: 0.1, alpha: 0.2, epsilon: 1e-5 });
    assert.equal(SELECTION_METHODS.arcee_fusion!.globalParams, {});
  });

  test('passes and row alignment: one observation pass at most, whole rows only for row-wise variants', () => {
    const info = { name: 'w', shape: [13, 29], numel: 377 };
    const plan = (method: string, models: number, global: Record<string, ParamValue>, per: Record<string, ParamValue> = {}) =>
      create(method, models).tensor(info, { global, models: Array.from({ length: models }, () => per) });
    const shape = (p: { passes: number; rowAlign: number }) => [p.passes, p.rowAlign];
    assert.equal(shape(plan('linear', 2, {}, { weight: 1 })), [0, 1]);
    assert.equal(shape(plan('slerp', 1, { t: 0.5 })), [1, 1]);
    assert.equal(shape(plan('nuslerp', 2, {}, { weight: 1 })), [1, 1]);
    assert.equal(shape(plan('nuslerp', 2, { nuslerp_flatten: false }, { weight: 1 })), [0, 29]);
    assert.equal(shape(plan('nuslerp', 2, { nuslerp_flatten: false, nuslerp_row_wise: true }, { weight: 1 })), [1, 1]);
    assert.equal(shape(plan('model_stock', 2, {})), [1, 1]);
    assert.equal(shape(plan('model_stock', 2, { filter_wise: true })), [0, 29]);
    assert.equal(shape(plan('karcher', 3, {})), [1, 1]);
    assert.equal(shape(plan('metrics_weighted', 2, {}, { metric: 1 })), [0, 1]);
    assert.equal(shape(plan('multislerp', 2, {}, { weight: 1 })), [1, 1]);
    assert.equal(shape(plan('nearswap', 1, { t: 0.1 })), [0, 1]);
    assert.equal(shape(plan('ram', 2, {})), [0, 1]);
    assert.equal(shape(plan('ramplus_tl', 2, {})), [1, 1]);
    assert.equal(shape(plan('arcee_fusion', 1, {})), [2, 29]);
  });

  CASES.forEach((c, index) => {
    test(`${c.method} ${JSON.stringify(c.global)}: streamed = whole-tensor reference for chunk sizes 1, 7, 1000, whole`, async () => {
      for (const shape of SHAPES) {
        const n = numel(shape);
        const { base, models } = c.inputs(n, 1000 * index + n);
        const want = c.reference(base, models, shape);
        for (const chunk of chunkSizes(n)) {
          const got = await merge(c.method, shape, { global: c.global, models: c.models }, base, models, chunk);
          allClose(got, want, TOL, `${c.method} [${shape}] chunk ${chunk}`);
        }
      }
    });
  });

  test('empty tensors and a 1-element tensor', async () => {
    const e = new Float32Array(0);
    assert.is((await merge('slerp', [0], { global: { t: 0.5 }, models: [{}] }, e, [e], 7)).length, 0);
    assert.is((await merge('nuslerp', [4, 0], { global: { nuslerp_flatten: false }, models: [{ weight: 1 }, { weight: 1 }] }, undefined, [e, e], 7)).length, 0);
    assert.is((await merge('model_stock', [0, 3], { global: { filter_wise: true }, models: [{}, {}] }, e, [e, e], 7)).length, 0);
    assert.is((await merge('karcher', [0], { global: {}, models: [{}, {}] }, undefined, [e, e], 7)).length, 0);
    // One element, slerp at t = 0.4: always (anti)parallel → lerp 0.6·2 + 0.4·5 = 3.2.
    allClose(await merge('slerp', [1], { global: { t: 0.4 }, models: [{}] }, new Float32Array([2]), [new Float32Array([5])], 1), [3.2], TOL, 'slerp 1 element');
    for (const [method, global, models] of [['nearswap', { t: 0.1 }, 1], ['ram', {}, 2], ['ramplus_tl', {}, 2], ['arcee_fusion', {}, 1]] as const) {
      assert.is((await merge(method, [0, 3], { global, models: Array.from({ length: models }, () => ({})) }, e, Array.from({ length: models }, () => e), 7)).length, 0, method);
    }
    assert.is((await merge('multislerp', [0], { global: {}, models: [{ weight: 1 }, { weight: 1 }] }, undefined, [e, e], 7)).length, 0);
    // multislerp of one model is that model (mergekit returns it as it is, base or not).
    assert.equal(Array.from(await merge('multislerp', [2], { global: {}, models: [{ weight: 3 }] }, new Float32Array([1, 1]), [new Float32Array([3, -4])], 1)), [3, -4]);
    // Karcher of one model is that model.
    assert.equal(Array.from(await merge('karcher', [2], { global: {}, models: [{}] }, undefined, [new Float32Array([3, -4])], 1)), [3, -4]);
  });

  test('bad parameters: MergeKernelsError naming the parameter', async () => {
    const x = new Float32Array([1, 2, 3]), y = new Float32Array([3, 1, 2]), z = new Float32Array([0, 1, 0]);
    const run = (method: string, global: Record<string, ParamValue>, models: Record<string, ParamValue>[], base: Float32Array | undefined, inputs: Float32Array[]) =>
      () => merge(method, [3], { global, models }, base, inputs, 2);
    await rejects(run('slerp', { t: 1.5 }, [{}], x, [y]), 'INVALID_OPTION', ['t:', '[0, 1]', '1.5']);
    await rejects(run('slerp', { t: -0.1 }, [{}], x, [y]), 'INVALID_OPTION', ['t:']);
    await rejects(run('slerp', {}, [{}], x, [y]), 'INVALID_OPTION', ['t: required']);
    await rejects(run('slerp', { t: '0.5' }, [{}], x, [y]), 'INVALID_OPTION', ['t:', 'finite number']);
    await rejects(run('linear', {}, [{ weight: 1 }, {}], undefined, [x, y]), 'INVALID_OPTION', ['weight: required for model 1']);
    await rejects(run('linear', {}, [{ weight: 1 }, { weight: -1 }], undefined, [x, y]), 'INVALID_OPTION', ['weight:', 'sum to 0', 'normalize']);
    await rejects(run('linear', { normalize: 'yes' }, [{ weight: 1 }, { weight: 1 }], undefined, [x, y]), 'INVALID_OPTION', ['normalize:']);
    await rejects(run('nuslerp', { nuslerp_flatten: 1 }, [{ weight: 1 }, { weight: 1 }], undefined, [x, y]), 'INVALID_OPTION', ['nuslerp_flatten:']);
    await rejects(run('nuslerp', {}, [{ weight: 1 }, { weight: Infinity }], undefined, [x, y]), 'INVALID_OPTION', ['weight:', 'model 1']);
    await rejects(() => create('nuslerp', 3), 'INVALID_OPTION', ['models:', 'exactly two']);
    await rejects(() => create('slerp', 2), 'INVALID_OPTION', ['models:']);
    await rejects(() => create('model_stock', 1), 'INVALID_OPTION', ['models:', 'two or more']);
    await rejects(run('karcher', { max_iter: 2.5 }, [{}, {}], undefined, [x, y]), 'INVALID_OPTION', ['max_iter:']);
    await rejects(run('karcher', { tol: -1 }, [{}, {}], undefined, [x, y]), 'INVALID_OPTION', ['tol:']);
    await rejects(run('metrics_weighted', {}, [{ metric: 0.5 }, { metric: 0 }], undefined, [x, y]), 'INVALID_OPTION', ['metric:', 'model 1', '> 0']);
    await rejects(run('metrics_weighted', { weight_by: 'step' }, [{ step: 10 }, { metric: 1 }], undefined, [x, y]), 'INVALID_OPTION', ['step: required for model 1']);
    await rejects(run('metrics_weighted', { penalty: -1 }, [{ metric: 1 }, { metric: 2 }], undefined, [x, y]), 'INVALID_OPTION', ['penalty:']);
    await rejects(run('metrics_weighted', { weight_by: 'loss' }, [{ metric: 1 }, { metric: 2 }], undefined, [x, y]), 'INVALID_OPTION', ['weight_by:']);
    // mergekit's added methods.
    await rejects(run('nearswap', {}, [{}], x, [y]), 'INVALID_OPTION', ['t: required']);
    await rejects(() => create('nearswap', 2), 'INVALID_OPTION', ['models:', 'exactly one']);
    await rejects(() => create('arcee_fusion', 2), 'INVALID_OPTION', ['models:', 'exactly one']);
    await rejects(run('multislerp', {}, [{ weight: 1 }, {}], undefined, [x, y]), 'INVALID_OPTION', ['weight: required for model 1']);
    await rejects(run('multislerp', {}, [{ weight: 1 }, { weight: -1 }], undefined, [x, y]), 'INVALID_OPTION', ['weight:', 'sum to 0', 'normalize_weights']);
    await rejects(run('multislerp', { eps: -1 }, [{ weight: 1 }, { weight: 1 }], undefined, [x, y]), 'INVALID_OPTION', ['eps:']);
    // Three directions whose weighted mean is 0 (x, −x and a zero vector): mergekit's ValueError, ours names the weights.
    await rejects(run('multislerp', {}, [{ weight: 1 }, { weight: 1 }, { weight: 1 }], undefined, [x, x.map((v) => -v), new Float32Array(3)]), 'INVALID_OPTION', ['weight:', 'zero', '"w"']);
    await rejects(run('ram', { epsilon: -1 }, [{}, {}], x, [y, z]), 'INVALID_OPTION', ['epsilon:']);
    await rejects(run('ramplus_tl', { epsilon: 0 }, [{}, {}], x, [y, z]), 'INVALID_OPTION', ['epsilon:', '> 0']);
    await rejects(run('ramplus_tl', { alpha: -0.5 }, [{}, {}], x, [y, z]), 'INVALID_OPTION', ['alpha:']);
    await rejects(run('ram', {}, [{}, {}], undefined, [y, z]), 'SHAPE_MISMATCH', ['base:']);
    await rejects(run('arcee_fusion', {}, [{}], undefined, [y]), 'SHAPE_MISMATCH', ['base:']);
    // The inputs: a missing base, NaN where a norm is needed.
    await rejects(run('slerp', { t: 0.5 }, [{}], undefined, [y]), 'SHAPE_MISMATCH', ['base:']);
    await rejects(run('model_stock', {}, [{}, {}], undefined, [y, z]), 'SHAPE_MISMATCH', ['base:']);
    const withNaN = new Float32Array([1, NaN, 3]);
    await rejects(run('slerp', { t: 0.5 }, [{}], x, [withNaN]), 'NON_FINITE', ['"w"']);
    await rejects(run('nuslerp', {}, [{ weight: 1 }, { weight: 1 }], undefined, [x, withNaN]), 'NON_FINITE');
    await rejects(run('model_stock', {}, [{}, {}], x, [y, withNaN]), 'NON_FINITE');
    await rejects(run('karcher', {}, [{}, {}], undefined, [withNaN, y]), 'NON_FINITE');
    await rejects(run('multislerp', {}, [{ weight: 1 }, { weight: 1 }], undefined, [withNaN, y]), 'NON_FINITE');
    await rejects(run('ram', {}, [{}, {}], x, [y, withNaN]), 'NON_FINITE');
    await rejects(run('arcee_fusion', {}, [{}], x, [withNaN]), 'NON_FINITE');
  });

  test.run();
}
