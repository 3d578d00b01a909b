// SCE (FuseChat, Wan et al. 2024, §3: Select, Calculate, Erase), streamed; as mergekit's
// `merge_methods/sce.py`. Oracle: `sce` in src/reference/model-merging.ts.
//
// Passes: with 0 < select_topk < 1, two histogram passes over the per-entry variance across task
// vectors (its exact top-k threshold; the count of non-zero variances), then one pass for each
// model's Σ (selected δ)², which gives the weights; apply selects, elects the sign of Σ δ (fused
// kernel, +1 on a zero sum) and merges Σ η·δ / max(Σ η, 1e-6) over agreeing models.
import { exactPlan, scratch, taskVectors, trimArrays, TrimSet } from '../streaming.ts';
import { sceWeightsFromSums, varianceOverModels } from '../../reference/model-merging.ts';
import { Params } from '../params.ts';
import type { Chunk, MergeMethod, MethodContext, MethodSpec, TensorInfo, TensorMerge, TensorParams } from '../types.ts';

const f = Math.fround;

type Step = 'var0' | 'var1' | 'weights';

class SceTensor implements TensorMerge {
  readonly passes: number;
  readonly rowAlign = 1;
  readonly #steps: Step[];
  readonly #topk: number;
  readonly #trims: TrimSet | undefined;
  #nonzero = 0;
  readonly #sums: number[];
  #weights: number[] | undefined;
  readonly #budgets = new Map<string, Float64Array>();
  readonly #deltas: Float32Array[] = [];
  readonly #tmp: Float32Array[] = [];

  constructor(readonly ctx: MethodContext, readonly info: TensorInfo, params: TensorParams) {
    const p = new Params(params);
    p.boolean('int8_mask'); // mergekit's mask dtype: no effect on the values
    this.#topk = p.range('select_topk', 0, 1);
    const select = this.#topk > 0 && this.#topk < 1;
    this.#trims = select ? new TrimSet(ctx.backend, [true]) : undefined;
    this.#steps = select ? ['var0', 'var1', 'weights'] : ['weights'];
    this.passes = this.#steps.length;
    this.#sums = Array.from({ length: ctx.models }, () => 0);
  }

  async observe(pass: number, chunk: Chunk): Promise<void> {
    const step = this.#steps[pass]!;
    const deltas = await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, pass === 0);
    if (step === 'var0') {
      const variance = varianceOverModels(deltas);
      for (let i = 0; i < variance.length; i++) if (variance[i] !== 0) this.#nonzero++;
      await this.#trims!.observe0(0, variance);
    } else if (step === 'var1') {
      this.#trims!.setPlans([{ vector: 0, plan: exactPlan(this.info.numel, Math.floor(this.#nonzero * this.#topk)) }]);
      await this.#trims!.observe1(0, varianceOverModels(deltas));
    } else {
      const selected = await this.#select(deltas, step);
      for (let t = 0; t < selected.length; t++) {
        let s = this.#sums[t]!;
        for (const v of selected[t]!) s += v * v;
        this.#sums[t] = s;
      }
    }
  }

  /** The task vectors with the unselected entries zeroed (the same entries for every model). */
  async #select(deltas: Float32Array[], step: string): Promise<Float32Array[]> {
    if (this.#topk >= 1) return deltas;
    if (this.#topk <= 0) { for (const d of deltas) d.fill(0); return deltas; }
    const variance = varianceOverModels(deltas);
    const kept = scratch(this.#tmp, 1, variance.length)[0]!;
    let budget = this.#budgets.get(step);
    if (!budget) this.#budgets.set(step, (budget = trimArrays(this.#trims!.trims()).budget));
    const { thr } = trimArrays(this.#trims!.trims());
    await this.ctx.backend.tiesMerge([variance], new Float32Array([1]), thr, budget, undefined, kept, { vote: 'none', zeroSign: 1, merge: 'sum', lambda: 1, output: 'merged' });
    // A selected variance is never 0: k ≤ the count of non-zero variances.
    for (const d of deltas) for (let i = 0; i < d.length; i++) if (kept[i] === 0) d[i] = 0;
    return deltas;
  }

  async apply(chunk: Chunk, out: Float32Array): Promise<void> {
    const deltas = await this.#select(await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, false), 'apply');
    this.#weights ??= sceWeightsFromSums(this.#sums, this.info.numel);
    const T = deltas.length;
    const signs = scratch(this.#tmp, 2, chunk.length)[1]!;
    await this.ctx.backend.tiesMerge(deltas, new Float32Array(T).fill(1), new Int32Array(T).fill(-1), new Float64Array(T), undefined, signs, { vote: 'sum', zeroSign: 1, merge: 'sum', lambda: 1, output: 'sign', counts: false });
    const base = chunk.base!;
    for (let i = 0; i < out.length; i++) {
      let num = 0, den = 0;
      for (let t = 0; t < T; t++) {
        const d = deltas[t]![i]!;
        if (Math.sign(d) !== signs[i]) continue;
        num = f(num + f(d * this.#weights[t]!));
        den = f(den + this.#weights[t]!);
      }
      out[i] = f(base[i]! + f(num / Math.max(den, f(1e-6))));
    }
  }
}

export const SCE: MethodSpec = {
  name: 'sce',
  needsBase: true,
  globalParams: { select_topk: 1, int8_mask: false },
  modelParams: {},
  create: (ctx: MethodContext): MergeMethod => ({
    name: 'sce',
    needsBase: true,
    modelPasses: 0,
    observeModel: async () => {},
    tensor: (info: TensorInfo, params: TensorParams) => new SceTensor(ctx, info, params),
  }),
};
