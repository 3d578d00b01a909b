// mk.mergeTensors and the TIES building blocks on the backend under test, against the whole-tensor
// reference (itself checked by hand in model-merging-reference.ts), over shapes (1, odd, 4097, 2-D,
// 3-D) and chunk sizes: the streamed result must not depend on how a tensor is cut.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose, randomTensor, rejects, rng } from '../util.ts';
import { METHODS, mergeModels, readSafetensors, reference, writeSafetensors, type MethodContext, type Tensor } from 'merge-kernels';

const R = reference.modelMerging;
type GtaOptions = reference.modelMerging.GtaOptions;

// Float32 throughout, and the same operation order as the reference; the only differences are the
// rounding of a DARE survivor divided by p versus multiplied by 1/p (≤ 1 ulp), so 1e-6 relative
// (plus 1e-6 absolute for results that cancel to near 0) is ample.
const TOL = { rtol: 1e-6, atol: 1e-6 };

interface Kind { sparsifier: GtaOptions['sparsifier']; vote: GtaOptions['vote']; normalize: boolean; rescale: boolean }
/** mergekit's defaults table, written out independently of the registry. */
const GTA: Record<string, Kind> = {
  task_arithmetic: { sparsifier: 'none', vote: 'none', normalize: false, rescale: false },
  ties: { sparsifier: 'magnitude', vote: 'sum', normalize: true, rescale: false },
  dare_ties: { sparsifier: 'random', vote: 'sum', normalize: false, rescale: true },
  dare_linear: { sparsifier: 'random', vote: 'none', normalize: false, rescale: true },
  breadcrumbs: { sparsifier: 'magnitude_outliers', vote: 'none', normalize: false, rescale: false },
  breadcrumbs_ties: { sparsifier: 'magnitude_outliers', vote: 'sum', normalize: false, rescale: false },
  della: { sparsifier: 'della_magprune', vote: 'sum', normalize: true, rescale: true },
  della_linear: { sparsifier: 'della_magprune', vote: 'none', normalize: false, rescale: true },
};

/** Per-model parameters of three models: varied weights and densities (one at 1: untouched). */
const MODEL_PARAMS = [
  { weight: 0.6, density: 0.3, gamma: 0.05, epsilon: 0.1 },
  { weight: 1.3, density: 0.55, gamma: 0.01, epsilon: 0.2 },
  { weight: 0.9, density: 1, gamma: 0.01, epsilon: 0.1 },
];

/** A base and three fine-tuned tensors; some entries quantised so that exact magnitude ties occur. */
function inputs(shape: number[], seed: number): { base: Tensor; models: Tensor[] } {
  const base = randomTensor(shape, seed);
  const models = [1, 2, 3].map((t) => {
    const m = randomTensor(shape, seed * 10 + t);
    const next = rng(seed * 100 + t);
    for (let i = 0; i < m.data.length; i++) {
      // A quarter of the task vectors take values in {±0.25, ±0.5} (ties), some exactly 0.
      if (next() < 0.25) m.data[i] = base.data[i]! + Math.round((next() - 0.5) * 4) / 4;
    }
    return m;
  });
  return { base, models };
}

const SHAPES = [[1], [5], [13, 7], [3, 4, 5], [4097]];
const chunkSizes = (n: number) => (n > 1000 ? [1000, n] : [1, 7, 1000, n]);
// On webgpu every chunk is several submits and readbacks (~10 ms each on software Vulkan): chunks
// of 1 would dominate the run, so that backend starts at 7 (still many chunks per tensor).
const gpuChunkSizes = (n: number) => chunkSizes(n).filter((s) => s > 1);

export default function (h: Harness) {
  const test = suite(`model merging [${h.backend}]`);

  for (const [method, kind] of Object.entries(GTA)) {
    test(`mergeTensors('${method}') equals the reference on every shape and chunk size, both semantics`, async () => {
      for (const [s, shape] of SHAPES.entries()) {
        const { base, models } = inputs(shape, 11 + s);
        for (const semantics of ['paper', 'mergekit'] as const) {
          const modelParameters = MODEL_PARAMS.map((m) => ({
            weight: m.weight,
            ...(kind.sparsifier !== 'none' ? { density: m.density } : {}),
            ...(kind.sparsifier === 'magnitude_outliers' ? { gamma: m.gamma } : {}),
            ...(kind.sparsifier === 'della_magprune' ? { epsilon: m.epsilon } : {}),
          }));
          const want = R.generalizedTaskArithmetic(base.data, models.map((m) => m.data), shape, 'blk.0.w', 42, {
            ...kind, lambda: 0.8, semantics, models: MODEL_PARAMS,
          });
          for (const chunkSize of (h.backend === 'webgpu' ? gpuChunkSizes : chunkSizes)(base.data.length)) {
            const got = await h.mk.mergeTensors(method, { base, models, parameters: { semantics, lambda: 0.8 }, modelParameters, seed: 42, name: 'blk.0.w', chunkSize });
            assert.equal(got.shape, shape);
            allClose(got.data, want, TOL, `${method} ${semantics} [${shape}] chunk ${chunkSize}`);
          }
        }
      }
    });
  }

  test('ties: one histogram pass when the first chunk predicts the threshold, two when it does not; the same result', async () => {
    // Pass 0 predicts each k-th magnitude's level-0 bin from the first chunk. Alike chunks: the
    // prediction holds. First chunk 1000× smaller than the rest: it misses, and the level-1 pass runs.
    const n = 3001, shape = [n];
    const { base, models } = inputs(shape, 21);
    const skewed = models.map((m) => ({ data: Float32Array.from(m.data, (v, i) => (i < 500 ? base.data[i]! + (v - base.data[i]!) * 1e-3 : v)), shape }));
    const densities = [0.2, 0.5, 0.9];
    const modelParameters = densities.map((density) => ({ density }));
    for (const [what, ms] of [['alike chunks', models], ['skewed first chunk', skewed]] as const) {
      for (const semantics of ['paper', 'mergekit'] as const) {
        const want = R.generalizedTaskArithmetic(base.data, ms.map((m) => m.data), shape, '', 0, {
          sparsifier: 'magnitude', vote: 'sum', normalize: true, rescale: false, lambda: 1, semantics,
          models: densities.map((density) => ({ weight: 1, density, gamma: 0, epsilon: 0 })),
        });
        for (const chunkSize of [500, 1024, n]) {
          const got = await h.mk.mergeTensors('ties', { base, models: [...ms], parameters: { semantics }, modelParameters, chunkSize });
          allClose(got.data, want, TOL, `${what}, ${semantics}, chunk ${chunkSize}`);
        }
      }
    }
  });

  test("ties, paper semantics: a wrongly guessed zero sign is corrected where entries were undecided, whatever the chunking", async () => {
    // mergeTensors guesses the paper's zero sign from the votes counted so far (none yet: -1) and
    // applies the chunks with undecided entries again once the whole tensor's majority is known.
    // Base 0.5; task vectors: 16 cancellations (1, -1, 0) first (total 0: undecided), then 48
    // entries (0.25, 0.5, 0.75) (total 1.5 > 0), one more cancellation at 40. The majority is +48,
    // so the zero sign is +1: a cancellation merges to the mean of its positive value, 0.5 + 1 =
    // 1.5 (not 0.5 - 1 under the first guess); the others to 0.5 + mean(0.25, 0.5, 0.75) = 1.
    // Negated task vectors: majority -48, zero sign -1, guessed right from the start: -0.5 and 0.
    const n = 64, shape = [n];
    const cancels = (i: number) => i < 16 || i === 40;
    const delta = (t: number, i: number) => (cancels(i) ? [1, -1, 0][t]! : [0.25, 0.5, 0.75][t]!);
    const base = { data: new Float32Array(n).fill(0.5), shape };
    for (const sign of [1, -1]) {
      const models = [0, 1, 2].map((t) => ({ data: Float32Array.from({ length: n }, (_, i) => 0.5 + sign * delta(t, i)), shape }));
      const byHand = Float32Array.from({ length: n }, (_, i) => (cancels(i) ? 0.5 + sign : 0.5 + sign * 0.5));
      const want = R.generalizedTaskArithmetic(base.data, models.map((m) => m.data), shape, '', 0, {
        sparsifier: 'magnitude', vote: 'sum', normalize: true, rescale: false, lambda: 1, semantics: 'paper',
        models: [0, 1, 2].map(() => ({ weight: 1, density: 1, gamma: 0, epsilon: 0 })),
      });
      allClose(want, byHand, { rtol: 0, atol: 0 }, `reference, sign ${sign}`);
      // Density 1 keeps everything (no histogram pass); 0.9 trims (the fused kernel forms δ itself).
      for (const density of [1, 0.9]) {
        const wantTrimmed = density === 1 ? want : R.generalizedTaskArithmetic(base.data, models.map((m) => m.data), shape, '', 0, {
          sparsifier: 'magnitude', vote: 'sum', normalize: true, rescale: false, lambda: 1, semantics: 'paper',
          models: [0, 1, 2].map(() => ({ weight: 1, density, gamma: 0, epsilon: 0 })),
        });
        // Chunks of 1 and 7 put undecided entries in chunks of their own or split the first run of
        // them; 16 ends a chunk where the run ends; 64 is one chunk (all of it applied again).
        for (const chunkSize of h.backend === 'webgpu' ? [7, 16, 64] : [1, 7, 16, 64]) {
          const got = await h.mk.mergeTensors('ties', { base, models, parameters: { semantics: 'paper' }, modelParameters: [0, 1, 2].map(() => ({ density })), chunkSize });
          allClose(got.data, wantTrimmed, TOL, `sign ${sign}, density ${density}, chunk ${chunkSize}`);
        }
      }
    }
  });

  test('ties: mergekit rescale (L1 matching) and scope model on one tensor equal the reference', async () => {
    const shape = [13, 7];
    const { base, models } = inputs(shape, 5);
    const densities = [0.3, 0.55, 1];
    const o = (semantics: 'paper' | 'mergekit', rescale: boolean): GtaOptions => ({
      sparsifier: 'magnitude', vote: 'sum', normalize: true, rescale, lambda: 1, semantics,
      models: densities.map((density) => ({ weight: 1, density, gamma: 0, epsilon: 0 })),
    });
    const modelParameters = densities.map((density) => ({ density }));
    for (const chunkSize of [1, 7, 91]) {
      const l1 = await h.mk.mergeTensors('ties', { base, models, parameters: { semantics: 'mergekit', rescale: true }, modelParameters, chunkSize });
      allClose(l1.data, R.generalizedTaskArithmetic(base.data, models.map((m) => m.data), shape, '', 0, o('mergekit', true)), TOL, `rescale chunk ${chunkSize}`);
      for (const semantics of ['paper', 'mergekit'] as const) {
        const scoped = await h.mk.mergeTensors('ties', { base, models, parameters: { semantics, scope: 'model' }, modelParameters, chunkSize });
        const [want] = R.generalizedTaskArithmeticModel([{ base: base.data, models: models.map((m) => m.data) }], o(semantics, false));
        allClose(scoped.data, want!, TOL, `scope model ${semantics} chunk ${chunkSize}`);
      }
    }
  });

  test('ties scope model over several tensors: the runner protocol (model passes, then tensor by tensor)', async () => {
    // The file runner's protocol, driven here over in-memory tensors, with the context's checked
    // primitives (mk.primitives has the Backend's merge-primitive signatures) as the backend.
    const shapes = [[5], [3, 4], [1], [9]];
    const tensors = shapes.map((shape, s) => ({ name: `t${s}`, shape, numel: shape.reduce((a, b) => a * b, 1), ...inputs(shape, 50 + s) }));
    const densities = [0.3, 0.6];
    for (const semantics of ['paper', 'mergekit'] as const) {
      const want = R.generalizedTaskArithmeticModel(tensors.map((x) => ({ base: x.base.data, models: x.models.slice(0, 2).map((m) => m.data) })), {
        sparsifier: 'magnitude', vote: 'sum', normalize: true, rescale: false, lambda: 1, semantics,
        models: densities.map((density) => ({ weight: 1, density, gamma: 0, epsilon: 0 })),
      });
      for (const size of [1, 7, 100]) {
        const params = { global: { ...METHODS.ties!.globalParams, semantics, scope: 'model' }, models: densities.map((density) => ({ weight: 1, density })) };
        const ctx: MethodContext = { models: 2, seed: 0, backend: h.mk.primitives as unknown as MethodContext['backend'], global: params.global };
        const method = METHODS.ties!.create(ctx);
        assert.is(method.modelPasses, semantics === 'paper' ? 3 : 2);
        const chunks = function* (x: (typeof tensors)[number]) {
          for (let offset = 0; offset < x.numel; offset += size) {
            const end = Math.min(x.numel, offset + size);
            yield { offset, length: end - offset, base: x.base.data.subarray(offset, end), models: x.models.slice(0, 2).map((m) => m.data.subarray(offset, end)) };
          }
        };
        for (let pass = 0; pass < method.modelPasses; pass++) for (const x of tensors) for (const c of chunks(x)) await method.observeModel(pass, x, params, c);
        for (const [s, x] of tensors.entries()) {
          const plan = method.tensor(x, params);
          assert.is(plan.passes, 0);
          const out = new Float32Array(x.numel);
          for (const c of chunks(x)) await plan.apply(c, out.subarray(c.offset, c.offset + c.length));
          allClose(out, want[s]!, TOL, `${semantics} tensor ${x.name} chunk ${size}`);
        }
      }
    }
  });

  test('DARE: the same seed and name give the same masks; another seed or name does not', async () => {
    const shape = [4097];
    const { base, models } = inputs(shape, 9);
    const run = (seed: number, name: string, chunkSize: number) => h.mk.mergeTensors('dare_linear', { base, models, parameters: { density: 0.5 }, seed, name, chunkSize });
    const a = await run(1, 'x', 4097);
    assert.equal(Array.from((await run(1, 'x', 1000)).data), Array.from(a.data));
    const differs = (b: Tensor) => b.data.some((v, i) => v !== a.data[i]);
    assert.ok(differs(await run(2, 'x', 4097)), 'another seed changes the masks');
    assert.ok(differs(await run(1, 'y', 4097)), 'another tensor name changes the masks');
  });

  test('sce and consensus equal the reference on every shape and chunk size', async () => {
    for (const [s, shape] of SHAPES.entries()) {
      const { base, models } = inputs(shape, 31 + s);
      const data = models.map((m) => m.data);
      for (const chunkSize of (h.backend === 'webgpu' ? gpuChunkSizes : chunkSizes)(base.data.length)) {
        for (const topk of [1, 0.3, 0]) {
          const got = await h.mk.mergeTensors('sce', { base, models, parameters: { select_topk: topk }, chunkSize });
          allClose(got.data, R.sce(base.data, data, topk), TOL, `sce ${topk} [${shape}] chunk ${chunkSize}`);
        }
        for (const k of [0, 2]) {
          const got = await h.mk.mergeTensors('consensus', {
            base, models, parameters: { k, lambda: 0.7 }, chunkSize,
            modelParameters: [{ density: 0.4, tall_mask_lambda: 0.3 }, { density: 1 }, { density: 0.8, tall_mask_lambda: 0.6 }],
          });
          allClose(got.data, R.consensus(base.data, data, [0.4, 1, 0.8], [0.3, 0.4, 0.6], k, 0.7), TOL, `consensus k ${k} [${shape}] chunk ${chunkSize}`);
        }
      }
    }
  });

  test('a single model, an empty tensor and a scalar', async () => {
    const base = { data: new Float32Array([1, 2, 3]), shape: [3] };
    const one = [{ data: new Float32Array([2, 2, 1]), shape: [3] }];
    // ties (density 1): the single task is its own mean (paper) or ÷ its own weight (mergekit): base + δ = the model.
    for (const semantics of ['paper', 'mergekit']) assert.equal(Array.from((await h.mk.mergeTensors('ties', { base, models: one, parameters: { semantics } })).data), [2, 2, 1], semantics);
    const empty = { data: new Float32Array(0), shape: [0, 4] };
    for (const method of Object.keys(GTA).concat('sce', 'consensus')) {
      const got = await h.mk.mergeTensors(method, { base: empty, models: [empty, empty], parameters: method === 'sce' ? { select_topk: 0.5 } : method === 'consensus' || method === 'task_arithmetic' ? {} : { density: 0.5 } });
      assert.equal(got.shape, [0, 4]);
      assert.is(got.data.length, 0);
    }
    const scalar = await h.mk.mergeTensors('della', { base: { data: new Float32Array([1]), shape: [] }, models: [{ data: new Float32Array([3]), shape: [] }], parameters: { density: 1 } });
    assert.equal(Array.from(scalar.data), [3]);
  });

  test('trimTopK, electSign, disjointMerge equal the reference (ties included)', async () => {
    for (const shape of [[1], [6], [4097]]) {
      const { models } = inputs(shape, 77);
      // Task vectors rounded to quarters: many exact magnitude ties and zero totals.
      const deltas = models.map((m) => ({ data: m.data.map((v) => Math.round(v * 4) / 4), shape }));
      const data = deltas.map((d) => d.data);
      for (const convention of ['paper', 'mergekit'] as const) {
        for (const density of [0, 0.2, 0.5, 1]) {
          const got = await h.mk.trimTopK(deltas[0]!, { density, convention });
          assert.equal(Array.from(got.data), Array.from(R.trimTopK(data[0]!, density, convention)), `trimTopK ${convention} ${density} [${shape}]`);
        }
      }
      const weights = [0.5, 1, 2];
      for (const method of ['sum', 'count'] as const) {
        for (const zeroSign of ['paper', 'mergekit'] as const) {
          const signs = await h.mk.electSign(deltas, { method, zeroSign, weights });
          const want = R.electSign(data, weights, method, zeroSign);
          assert.equal(Array.from(signs.data), Array.from(want), `electSign ${method} ${zeroSign}`);
          for (const merge of ['mean', 'normalize', 'sum', 'max'] as const) {
            const got = await h.mk.disjointMerge(deltas, { method, merge, zeroSign, weights });
            allClose(got.data, R.disjointMerge(data, weights, want, merge), TOL, `disjointMerge ${method} ${zeroSign} ${merge}`);
          }
        }
      }
      const all = await h.mk.disjointMerge(deltas, { method: 'none', merge: 'mean' });
      allClose(all.data, R.disjointMerge(data, [1, 1, 1], undefined, 'mean'), TOL, 'disjointMerge none');
    }
  });

  test("without semantics a config and mergeTensors give mergekit's TIES (trim, zero vote, normalize by weights), worked by hand", async () => {
    // base 1; weights a = 1, b = 0.5; density 0.5 of n = 6.
    //   δa = [1, -4, -0.5, -3, 0, 0], δb = [-2, -4, 0, 0, 3, 0.25]
    // mergekit: keep exactly int(0.5·6) = 3 per model: a → [1, -4, 0, -3, 0, 0], b → [-2, -4, 0, 0, 3, 0]
    //   D = w·δ: a [1, -4, 0, -3, 0, 0], b [-1, -2, 0, 0, 1.5, 0]; totals [0, -6, 0, -3, 1.5, 0]
    //   signs [+ (zero total), −, +, −, +, +]; Σ agreeing D / Σ agreeing w (0 → 1):
    //   e0: a alone 1/1 = 1; e1: -6/1.5 = -4; e2: 0; e3: -3/1 = -3; e4: 1.5/0.5 = 3; e5: 0
    //   → base + mix = [2, -3, 1, -2, 4, 1]
    // paper: keep |δ| ≥ the 4th largest: a → [1, -4, -0.5, -3, 0, 0] (4th = 0.5), b → all but 0s (4th = 0.25)
    //   D: a [1, -4, -0.5, -3, 0, 0], b [-1, -2, 0, 0, 1.5, 0.125]; totals [0, -6, -0.5, -3, 1.5, 0.125]
    //   the zero total takes sign(Σ signs) = sign(-1 - 1 - 1 + 1 + 1) = −; mean over agreeing non-zero:
    //   e0: b alone -1; e1: -6/2 = -3; e2: -0.5; e3: -3; e4: 1.5; e5: 0.125
    //   → [0, -2, 0.5, -2, 2.5, 1.125]
    const mergekit = [2, -3, 1, -2, 4, 1], paper = [0, -2, 0.5, -2, 2.5, 1.125];
    const shape = [6];
    const base = { data: new Float32Array(6).fill(1), shape };
    const a = { data: new Float32Array([2, -3, 0.5, -2, 1, 1]), shape };
    const b = { data: new Float32Array([-1, -3, 1, 1, 4, 1.25]), shape };
    const modelParameters = [{ weight: 1, density: 0.5 }, { weight: 0.5, density: 0.5 }];
    assert.equal(Array.from((await h.mk.mergeTensors('ties', { base, models: [a, b], modelParameters })).data), mergekit, 'mergeTensors, no semantics');
    assert.equal(Array.from((await h.mk.mergeTensors('ties', { base, models: [a, b], modelParameters, parameters: { semantics: 'paper' } })).data), paper, 'mergeTensors, paper');
    const file = (x: Tensor) => writeSafetensors([{ name: 'model.layers.0.w', dtype: 'F32', shape, data: new Uint8Array(x.data.slice().buffer) }]);
    const inputs = { base: file(base), a: file(a), b: file(b) };
    const yaml = (extra: string) => `merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: { weight: 1, density: 0.5 }\n  - model: b\n    parameters: { weight: 0.5, density: 0.5 }\n${extra}`;
    for (const [extra, want] of [['', mergekit], ['parameters: { semantics: paper }\n', paper]] as const) {
      const result = await mergeModels({ config: yaml(extra), inputs, methods: METHODS, backend: h.mk });
      const out = readSafetensors(new Uint8Array(await result.blob!.arrayBuffer())).tensors.get('model.layers.0.w')!;
      assert.equal(Array.from(new Float32Array(out.bytes.slice().buffer)), want, `mergeModels, ${extra || 'no semantics'}`);
    }
    // The TIES steps on their own default to mergekit's conventions too.
    const da = { data: new Float32Array([1, -4, -0.5, -3, 0, 0]), shape };
    const db = { data: new Float32Array([-2, -4, 0, 0, 3, 0.25]), shape };
    assert.equal(Array.from((await h.mk.trimTopK(da, { density: 0.5 })).data), [1, -4, 0, -3, 0, 0], 'trimTopK: exactly 3');
    // Totals over D = w·δ (weights 1, 0.5): [0, -6, -0.5, -3, 1.5, 0.125]: the zero total elects +.
    assert.equal(Array.from((await h.mk.electSign([da, db], { weights: [1, 0.5] })).data), [1, -1, -1, -1, 1, 1], 'electSign: + on a zero total');
    assert.equal(Array.from((await h.mk.disjointMerge([da, db], { weights: [1, 0.5] })).data), [1, -3, -0.5, -3, 1.5, 0.125], 'disjointMerge: + on a zero total');
  });

  test("mergekit's nearswap, multislerp, ram, ramplus_tl and arcee_fusion, worked by hand, through mergeTensors and a YAML config", async () => {
    const t = (...v: number[]) => ({ data: new Float32Array(v), shape: [v.length] });
    const cases: Array<{ method: string; parameters?: Record<string, number | boolean>; weights?: number[]; base: Tensor; models: Tensor[]; want: number[] }> = [
      // nearswap, t = 0.1: |a − b| = [0.05, 1, 0.2, 0, 0.5] → w = min(1, 0.1 / max(|a − b|, 1e-6)) = [1, 0.1, 0.5, 1, 0.2];
      // w·b + (1 − w)·a = [0.05, 0.1, -0.1, 1, 0.2·5.5 + 0.8·5 = 5.1].
      { method: 'nearswap', parameters: { t: 0.1 }, base: t(0, 0, 0, 1, 5), models: [t(0.05, 1, -0.2, 1, 5.5)], want: [0.05, 0.1, -0.1, 1, 5.1] },
      // multislerp, weights 1, 1 (normalized ½, ½), task vectors a0 = [3, 4, 0] (‖a0‖ = 5), a1 = [0, 0, 2] (‖a1‖ = 2):
      //   m = ½[0.6, 0.8, 0] + ½[0, 0, 1] = [0.3, 0.4, 0.5], ‖m‖ = √0.5; mean norm ½·5 + ½·2 = 3.5
      //   → base + 3.5·m/√0.5 = base + √2·[1.05, 1.4, 1.75], base = [1, -1, 2].
      { method: 'multislerp', weights: [1, 1], base: t(1, -1, 2), models: [t(4, 3, 2), t(1, -1, 4)], want: [1 + 1.05 * Math.SQRT2, -1 + 1.4 * Math.SQRT2, 2 + 1.75 * Math.SQRT2] },
      // Without a base the models themselves: the same directions and norms → the same offset.
      { method: 'multislerp', weights: [2, 2], base: undefined as unknown as Tensor, models: [t(3, 4, 0), t(0, 0, 2)], want: [1.05 * Math.SQRT2, 1.4 * Math.SQRT2, 1.75 * Math.SQRT2] },
      // Weights 3, 1 (¾, ¼): m = ¾[0.6, 0.8, 0] + ¼[0, 0, 1] = [0.45, 0.6, 0.25], ‖m‖ = √0.625; mean norm ¾·5 + ¼·2 = 4.25.
      { method: 'multislerp', weights: [3, 1], base: t(1, -1, 2), models: [t(4, 3, 2), t(1, -1, 4)], want: [0.45, 0.6, 0.25].map((v, i) => [1, -1, 2][i]! + (4.25 / Math.sqrt(0.625)) * v) },
      // Antipodal task vectors with equal weights: m = 0, two models → mergekit's linear fallback ½a0 + ½a1 = 0 → the base.
      { method: 'multislerp', weights: [1, 1], base: t(1, 2), models: [t(4, 6), t(-2, -2)], want: [1, 2] },
      // ram, ε = 1e-5, base 1: δA = [1, 2, 0, ~1e-6 (below ε), 3], δB = [3, 0, 0, 0, -1]; counts [2, 1, 0, 0, 2]
      //   → base + [(1 + 3)/2, 2, 0, 0, (3 − 1)/2] = [3, 3, 1, 1, 2].
      { method: 'ram', base: t(1, 1, 1, 1, 1), models: [t(2, 3, 1, 1.000001, 4), t(4, 1, 1, 1, 0)], want: [3, 3, 1, 1, 2] },
      // ramplus_tl: A has 2 shared entries, 1 unique: ρ_A = 2; B has no unique entry (its λ is unused).
      //   r 0.1, α 0.2 (defaults): λ_A = 1 + 0.1·min(2, 0.2) = 1.02 → the unique entry 1 + 2·1.02 = 3.04.
      { method: 'ramplus_tl', base: t(1, 1, 1, 1, 1), models: [t(2, 3, 1, 1.000001, 4), t(4, 1, 1, 1, 0)], want: [3, 3.04, 1, 1, 2] },
      //   r 0.5, α 1: λ_A = 1.5 → 1 + 3 = 4;  r 0.5, α 5: λ_A = 1 + 0.5·2 = 2 → 1 + 4 = 5.
      { method: 'ramplus_tl', parameters: { r: 0.5, alpha: 1 }, base: t(1, 1, 1, 1, 1), models: [t(2, 3, 1, 1.000001, 4), t(4, 1, 1, 1, 0)], want: [3, 4, 1, 1, 2] },
      { method: 'ramplus_tl', parameters: { r: 0.5, alpha: 5 }, base: t(1, 1, 1, 1, 1), models: [t(2, 3, 1, 1.000001, 4), t(4, 1, 1, 1, 0)], want: [3, 5, 1, 1, 2] },
      // arcee_fusion, one row: importance = |δ|·KL with one KL > 0 for the row, so the order is |δ|'s:
      //   |δ| = [0, .25, .25, .5, .25, 0, 5, .25], sorted [0, 0, .25, .25, .25, .25, .5, 5]; n − 1 = 7:
      //   median = sorted[3] = .25, q1 = sorted[1] = 0, q3 = sorted[5] = .25 → threshold (.25 + 1.5·.25)·KL;
      //   only the 5 reaches it: base + δ there, the base elsewhere.
      { method: 'arcee_fusion', base: t(0, 1, 2, 3, 4, 5, 6, 7), models: [t(0, 1.25, 1.75, 3.5, 4.25, 5, 11, 6.75)], want: [0, 1, 2, 3, 4, 5, 11, 7] },
      // Two rows: row 0 shifted by a constant (same softmax: KL = 0, importance 0), row 1 changed in one entry.
      //   Importances: seven 0s and one > 0 → median = q1 = q3 = 0, threshold 0, and 0 ≥ 0 keeps every δ: the model.
      { method: 'arcee_fusion', base: { data: new Float32Array(8), shape: [2, 4] }, models: [{ data: new Float32Array([1, 1, 1, 1, 2, 0, 0, 0]), shape: [2, 4] }], want: [1, 1, 1, 1, 2, 0, 0, 0] },
    ];
    for (const c of cases) {
      const what = `${c.method} ${JSON.stringify(c.parameters ?? {})}${c.base ? '' : ' no base'}`;
      const modelParameters = c.weights?.map((weight) => ({ weight }));
      for (const chunkSize of [1, 3, 1000]) {
        const got = await h.mk.mergeTensors(c.method, { base: c.base, models: c.models, parameters: c.parameters, modelParameters, chunkSize });
        allClose(got.data, c.want, TOL, `mergeTensors ${what} chunk ${chunkSize}`);
      }
      const name = 'model.layers.0.w';
      const file = (x: Tensor) => writeSafetensors([{ name, dtype: 'F32', shape: x.shape, data: new Uint8Array(x.data.slice().buffer) }]);
      const inputs: Record<string, Uint8Array> = Object.fromEntries(c.models.map((m, i) => [`m${i}`, file(m)]));
      if (c.base) inputs.base = file(c.base);
      const models = c.models.map((_, i) => `  - model: m${i}\n` + (c.weights ? `    parameters: { weight: ${c.weights[i]} }\n` : '')).join('');
      const config = `merge_method: ${c.method}\n${c.base ? 'base_model: base\n' : ''}models:\n${models}` +
        (c.parameters ? `parameters:\n${Object.entries(c.parameters).map(([k, v]) => `  ${k}: ${v}\n`).join('')}` : '') + 'dtype: float32\n';
      const result = await mergeModels({ config, inputs, methods: METHODS, backend: h.mk });
      const out = readSafetensors(new Uint8Array(await result.blob!.arrayBuffer())).tensors.get(name)!;
      allClose(new Float32Array(out.bytes.slice().buffer), c.want, TOL, `YAML ${what}`);
    }
    // ram's ε: the entry changed by 1e-6 stays the base's exactly (not 1 + 1e-6), and with ε = 0 it counts.
    const base = t(1, 1, 1, 1, 1), models = [t(2, 3, 1, 1.000001, 4), t(4, 1, 1, 1, 0)];
    assert.is((await h.mk.mergeTensors('ram', { base, models })).data[3], 1);
    assert.is((await h.mk.mergeTensors('ram', { base, models, parameters: { epsilon: 0 } })).data[3], Math.fround(1.000001));
  });

  test('bad input: a MergeKernelsError naming the argument', async () => {
    const shape = [4];
    const { base, models } = inputs(shape, 3);
    await rejects(() => h.mk.mergeTensors('tie', { base, models }), 'INVALID_OPTION', ['method', 'ties']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, parameters: { densty: 0.5 } }), 'INVALID_OPTION', ['parameters.densty', 'density']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, modelParameters: [{}, { gamma: 0.1 }, {}] }), 'INVALID_OPTION', ['modelParameters[1].gamma']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, modelParameters: [{}] }), 'INVALID_OPTION', ['modelParameters', '3']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, parameters: { density: 1.5 } }), 'INVALID_OPTION', ['density', '[0, 1]']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, parameters: { density: '0.5' as unknown as number } }), 'INVALID_OPTION', ['parameters.density', 'number']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, parameters: { semantics: 'torch' } }), 'INVALID_OPTION', ['semantics', 'paper']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, parameters: { rescale: true, semantics: 'paper' } }), 'INVALID_OPTION', ['rescale', 'mergekit']);
    // task_arithmetic sparsifies nothing, so a density there is an error rather than silently ignored.
    await rejects(() => h.mk.mergeTensors('task_arithmetic', { base, models, parameters: { density: 0.5 } }), 'INVALID_OPTION', ['density']);
    await rejects(() => h.mk.mergeTensors('della', { base, models, parameters: { density: 0.9, epsilon: 0.15 } }), 'INVALID_OPTION', ['epsilon', '(0, 1)']);
    await rejects(() => h.mk.mergeTensors('ties', { models }), 'INVALID_OPTION', ['base']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models: [] }), 'INVALID_TYPE', ['models']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models: [models[0]!, { data: new Float32Array(5), shape: [5] }] }), 'SHAPE_MISMATCH', ['models[1]', '[4]']);
    await rejects(() => h.mk.mergeTensors('ties', { base: { data: new Float32Array(2), shape: [2] }, models }), 'SHAPE_MISMATCH', ['base']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, seed: -1 }), 'INVALID_OPTION', ['seed']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, chunkSize: 0 }), 'INVALID_OPTION', ['chunkSize']);
    await rejects(() => h.mk.mergeTensors('ties', { base, models, bogus: 1 } as never), 'INVALID_OPTION', ['bogus']);
    const nan = { data: new Float32Array([0, 1, NaN, 2]), shape };
    await rejects(() => h.mk.mergeTensors('dare_ties', { base, models: [models[0]!, nan], name: 'layers.3.mlp' }), 'NON_FINITE', ['models[1]', 'layers.3.mlp', 'index 2']);
    await rejects(() => h.mk.mergeTensors('task_arithmetic', { base: nan, models }), 'NON_FINITE', ['base']);
    const huge = { data: new Float32Array([3e38, 0, 0, 0]), shape };
    await rejects(() => h.mk.mergeTensors('ties', { base: { data: new Float32Array([-3e38, 0, 0, 0]), shape }, models: [huge] }), 'NON_FINITE', ['models[0]', 'overflows']);
    // With a trim, ties finds non-finite task vectors through its level-0 histograms (the kernels
    // form x − base themselves); the error still names the input, the tensor and the index, in any chunk.
    for (const semantics of ['paper', 'mergekit']) {
      const parameters = { density: 0.5, semantics };
      await rejects(() => h.mk.mergeTensors('ties', { base, models: [models[0]!, nan], parameters, name: 'layers.4.attn', chunkSize: 3 }), 'NON_FINITE', ['models[1]', 'layers.4.attn', 'index 2']);
      await rejects(() => h.mk.mergeTensors('ties', { base: nan, models, parameters }), 'NON_FINITE', ['base', 'index 2']);
      await rejects(() => h.mk.mergeTensors('ties', { base: { data: new Float32Array([0, 0, 0, -3e38]), shape }, models: [{ data: new Float32Array([1, 2, 3, 3e38]), shape }], parameters, chunkSize: 2 }), 'NON_FINITE', ['models[0]', 'overflows', 'index 3']);
    }
    await rejects(() => h.mk.trimTopK(models[0]!, { density: -0.1 }), 'INVALID_OPTION', ['density']);
    await rejects(() => h.mk.trimTopK(models[0]!, { density: 0.5, convention: 'torch' as never }), 'INVALID_OPTION', ['convention']);
    await rejects(() => h.mk.electSign(models, { weights: [1, 2] }), 'INVALID_OPTION', ['weights', '3']);
    await rejects(() => h.mk.disjointMerge(models, { merge: 'median' as never }), 'INVALID_OPTION', ['merge']);
  });


  // TSV-Merge (Gargiulo et al. 2025), worked by hand. TSV's SVDs run on this backend: 1e-4 covers webgpu's.
  const TSV_TOL = { rtol: 1e-4, atol: 1e-4 };
  test('tsv: task vectors with orthogonal singular bases merge as task arithmetic (default k = 1/T); other tensors take the mean', async () => {
    // 4×4, T = 2, k = 1/2 → two triplets each. τ₁ = 2·e₁e₁ᵀ + e₂e₂ᵀ, τ₂ = 3·e₃e₄ᵀ + 0.5·e₄e₃ᵀ: the
    // concatenated bases [e₁ e₂ e₃ e₄] are orthonormal, so the polar step leaves them and TSV = τ₁ + τ₂.
    const shape = [4, 4];
    const base = Array.from({ length: 16 }, (_, i) => 0.1 * i - 0.7);
    const t1 = new Array<number>(16).fill(0), t2 = new Array<number>(16).fill(0);
    t1[0] = 2; t1[5] = 1; t2[2 * 4 + 3] = 3; t2[3 * 4 + 2] = 0.5;
    const tensor = (v: number[]) => ({ data: new Float32Array(v), shape });
    const models = [tensor(base.map((b, i) => b + t1[i]!)), tensor(base.map((b, i) => b + t2[i]!))];
    for (const lambda of [1, 0.5]) {
      for (const chunkSize of [1, 5, 16]) {
        const got = await h.mk.mergeTensors('tsv', { base: tensor(base), models, parameters: { lambda }, chunkSize });
        allClose(got.data, base.map((b, i) => b + lambda * (t1[i]! + t2[i]!)), TSV_TOL, `λ ${lambda}, chunks of ${chunkSize}`);
      }
    }
    // A 1-D tensor: θ₀ + λ·mean(τ) (the paper's code averages what is not a matrix).
    const b1 = { data: new Float32Array([1, 2, 3]), shape: [3] };
    const got = await h.mk.mergeTensors('tsv', { base: b1, models: [{ data: new Float32Array([2, 2, 3]), shape: [3] }, { data: new Float32Array([1, 4, 0]), shape: [3] }], parameters: { lambda: 2 } });
    allClose(got.data, [1 + 2 * 0.5, 2 + 2 * 1, 3 + 2 * -1.5], { atol: 1e-6 }, 'mean of the task vectors');
  });

  test('tsv: overlapping bases are decorrelated by the polar step (u at 0° and 60° → −15° and 75°), from YAML too', async () => {
    // 2×2, T = 2, k = 1/2 → one triplet each: τ₁ = 2·u₁v₁ᵀ, τ₂ = 1·u₂v₂ᵀ, u₁ = (1, 0), u₂ = (cos 60°, sin 60°),
    // v₁ = e₁, v₂ = e₂. [v₁ v₂] = I stays; U = [u₁ u₂] has UᵀU = [[1, ½], [½, 1]], and its polar factor
    // U(UᵀU)^(-1/2) turns the two unit vectors symmetrically apart to −15° and 75°. So TSV's task vector is
    // 2·(cos 15°, −sin 15°)e₁ᵀ + (sin 15°, cos 15°)e₂ᵀ, where task arithmetic gives [[2, ½], [0, sin 60°]].
    const c15 = Math.cos(Math.PI / 12), s15 = Math.sin(Math.PI / 12);
    const shape = [2, 2];
    const base = [0.5, -1, 0.25, 2];
    const tau1 = [2, 0, 0, 0], tau2 = [0, 0.5, 0, Math.sqrt(3) / 2];
    const want = [2 * c15, s15, -2 * s15, c15];
    const tensor = (v: number[]) => ({ data: new Float32Array(v), shape });
    const models = [tensor(base.map((b, i) => b + tau1[i]!)), tensor(base.map((b, i) => b + tau2[i]!))];
    for (const chunkSize of [1, 3, 4]) {
      const got = await h.mk.mergeTensors('tsv', { base: tensor(base), models, chunkSize });
      allClose(got.data, base.map((b, i) => b + want[i]!), TSV_TOL, `chunks of ${chunkSize}`);
    }
    const file = (v: Float32Array) => writeSafetensors([
      { name: 'model.layers.0.w', dtype: 'F32', shape, data: new Uint8Array(v.slice().buffer) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([v[0]!, v[3]!]).buffer) },
    ]);
    const yaml = 'merge_method: tsv\nbase_model: base\nmodels:\n  - model: a\n  - model: b\nparameters:\n  k: 0.5\n  lambda: 0.5\n';
    const result = await mergeModels({ config: yaml, inputs: { base: file(new Float32Array(base)), a: file(models[0]!.data), b: file(models[1]!.data) }, methods: METHODS, backend: h.mk });
    const out = readSafetensors(new Uint8Array(await result.blob!.arrayBuffer())).tensors;
    const w = out.get('model.layers.0.w')!, norm = out.get('model.norm.weight')!;
    allClose(new Float32Array(w.bytes.slice().buffer), base.map((b, i) => b + 0.5 * want[i]!), TSV_TOL, 'YAML: the matrix');
    // The norm: base (0.5, 2), task vectors (2, 0) and (0, sin 60°): 0.5 + ½·1, 2 + ½·(sin 60°)/2.
    allClose(new Float32Array(norm.bytes.slice().buffer), [1, 2 + Math.sqrt(3) / 8], { atol: 1e-6 }, 'YAML: the norm, mean task vector');
    await rejects(() => h.mk.mergeTensors('tsv', { base: tensor(base), models, parameters: { k: 1.5 } }), 'INVALID_OPTION', ['k']);
    await rejects(() => h.mk.mergeTensors('tsv', { models }), 'INVALID_OPTION', ['base']);
  });

  test.run();
}
