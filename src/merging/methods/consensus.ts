// Consensus merging with TALL masks ("Localizing Task Information for Improved Model Merging and
// Compression", Wang et al. 2024, §3–4; nik-dim/tall_masks), streamed. Oracle: `consensus` in
// src/reference/model-merging.ts. Not a mergekit method; parameter names follow the paper's code:
// per model `density` (its top-k magnitude filter, TIES-code convention) and `tall_mask_lambda`
// (λ_t; the paper picks it per task from {0.2, …, 0.6} on validation data, we default to 0.4);
// global `k` (the least number of agreeing TALL masks, `prun_thre_k`, default 2) and `lambda`.
//
// Passes: two histogram passes when a density is below 1; apply computes τ = Σ trim(δ_t) with the
// fused kernel (no vote, sum), then the masks and the consensus per entry.
import { scratch, taskVectors, trimArrays, trimPlan, TrimSet } from '../streaming.ts';
import { Params } from '../params.ts';
import type { Chunk, MergeMethod, MethodContext, MethodSpec, TensorInfo, TensorMerge, TensorParams } from '../types.ts';

const f = Math.fround;

class ConsensusTensor implements TensorMerge {
  readonly passes: number;
  readonly rowAlign = 1;
  readonly #trims: TrimSet;
  readonly #lambdas: number[];
  readonly #k: number;
  readonly #lambda: number;
  #budget: Float64Array | undefined;
  readonly #deltas: Float32Array[] = [];
  readonly #tmp: Float32Array[] = [];

  constructor(readonly ctx: MethodContext, readonly info: TensorInfo, params: TensorParams) {
    const p = new Params(params);
    this.#k = p.integer('k', 0, Number.MAX_SAFE_INTEGER);
    this.#lambda = p.number('lambda');
    const T = ctx.models;
    const densities = Array.from({ length: T }, (_, t) => p.range('density', 0, 1, t));
    this.#lambdas = Array.from({ length: T }, (_, t) => p.range('tall_mask_lambda', 0, Number.MAX_VALUE, t));
    const slots = densities.map((d, t) => ({ vector: t, plan: trimPlan(info.numel, d, 'paper') }));
    this.#trims = new TrimSet(ctx.backend, slots.map((s) => s.plan.kind === 'select'), slots);
    this.passes = this.#trims.needsPasses ? 2 : 0;
  }

  async observe(pass: number, chunk: Chunk): Promise<void> {
    const deltas = await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, pass === 0);
    for (let t = 0; t < deltas.length; t++) await (pass === 0 ? this.#trims.observe0(t, deltas[t]!) : this.#trims.observe1(t, deltas[t]!));
  }

  async apply(chunk: Chunk, out: Float32Array): Promise<void> {
    const deltas = await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, this.passes === 0);
    const T = deltas.length;
    const { thr, budget } = trimArrays(this.#trims.trims());
    this.#budget ??= budget;
    const tau = scratch(this.#tmp, 1, chunk.length)[0]!;
    await this.ctx.backend.tiesMerge(deltas, new Float32Array(T).fill(1), thr, this.#budget, undefined, tau, { vote: 'none', zeroSign: 1, merge: 'sum', lambda: 1, output: 'merged' });
    const base = chunk.base!;
    for (let i = 0; i < out.length; i++) {
      let agree = 0;
      for (let t = 0; t < T; t++) {
        const d = deltas[t]![i]!;
        // TALL mask: task t's change outweighs λ_t times what the merged vector gets wrong for it.
        if (Math.abs(d) > f(this.#lambdas[t]! * Math.abs(f(tau[i]! - d)))) agree++;
      }
      out[i] = f(base[i]! + f(this.#lambda * (agree >= this.#k ? tau[i]! : 0)));
    }
  }
}

export const CONSENSUS: MethodSpec = {
  name: 'consensus',
  needsBase: true,
  globalParams: { k: 2, lambda: 1 },
  modelParams: { density: 1, tall_mask_lambda: 0.4 },
  create: (ctx: MethodContext): MergeMethod => ({
    name: 'consensus',
    needsBase: true,
    modelPasses: 0,
    observeModel: async () => {},
    tensor: (info: TensorInfo, params: TensorParams) => new ConsensusTensor(ctx, info, params),
  }),
};
