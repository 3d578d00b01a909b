// The generalized task-arithmetic family, streamed: task_arithmetic (Ilharco et al. 2023), ties
// (Yadav et al. 2023, §3), dare_ties / dare_linear (Yu et al. 2024, §3), breadcrumbs /
// breadcrumbs_ties (Davari & Belilovsky 2023, §3), della / della_linear (Deep et al. 2024, §3),
// as mergekit's `generalized_task_arithmetic.py` composes them. The whole-tensor oracle, and what
// 'paper' and 'mergekit' semantics mean, is src/reference/model-merging.ts (GtaOptions).
//
// Per tensor: observation passes as needed (two histogram passes for exact top-k thresholds; one
// for L1-rescale sums; one for the paper's zero-sign majority where the driver cannot revisit its
// output), then one apply pass that sparsifies each chunk and runs the fused elect + disjoint-merge
// kernel. In memory (mergeTensors) the paper's zero sign is guessed instead: the apply pass counts
// the votes and the entries the guess decided, and only chunks with such entries are applied again
// if the guess was wrong. Magnitude trims (ties)
// are fused into that kernel as (threshold, tie budget), and then the kernels also form the task
// vectors x − base themselves (every pass reads each chunk once, in one backend call); other
// sparsifiers write the kept values first and the kernel runs with threshold −1. Memory: a few
// chunk-sized scratch arrays per model, 256 KiB of histogram per trimmed model.
import { MergeKernelsError } from '../../errors.ts';
import {
  breadcrumbsCounts, dellaLayout, dellaProbability, keeps, mergeRule, modelStreamKey, rescaleRule,
  type GtaOptions, type RescaleRule, type Sparsifier,
} from '../../reference/model-merging.ts';
import { Params } from '../params.ts';
import { TrimSet, exactPlan, scratch, taskVectors, trimArrays, trimPlan, type TrimPlan } from '../streaming.ts';
import type { Chunk, MergeMethod, MethodContext, MethodSpec, TensorDriver, TensorInfo, TensorMerge, TensorParams } from '../types.ts';
import type { TiesMergeOptions } from '../../reference/merge-primitives.ts';

const f = Math.fround;

interface Kind {
  name: string;
  vote: 'sum' | 'none';
  sparsifier: Sparsifier;
  normalize: boolean;
  rescale: boolean;
}

/** mergekit's table (merge_methods/registry.py): vote, sparsifier, default normalize, default rescale. */
const KINDS: Kind[] = [
  { name: 'task_arithmetic', vote: 'none', sparsifier: 'none', normalize: false, rescale: false },
  { name: 'ties', vote: 'sum', sparsifier: 'magnitude', normalize: true, rescale: false },
  { name: 'dare_ties', vote: 'sum', sparsifier: 'random', normalize: false, rescale: true },
  { name: 'dare_linear', vote: 'none', sparsifier: 'random', normalize: false, rescale: true },
  { name: 'breadcrumbs', vote: 'none', sparsifier: 'magnitude_outliers', normalize: false, rescale: false },
  { name: 'breadcrumbs_ties', vote: 'sum', sparsifier: 'magnitude_outliers', normalize: false, rescale: false },
  { name: 'della', vote: 'sum', sparsifier: 'della_magprune', normalize: true, rescale: true },
  { name: 'della_linear', vote: 'none', sparsifier: 'della_magprune', normalize: false, rescale: true },
];

const SEMANTICS = ['paper', 'mergekit'] as const;
const SCOPES = ['tensor', 'model'] as const;

/**
 * Reads and checks one tensor's parameters into the reference's GtaOptions (plus TIES' scope).
 * Global: normalize, rescale, lambda, int8_mask (mergekit's mask dtype: accepted, no effect here),
 * semantics ('mergekit' default, so a mergekit config gives mergekit's model; 'paper' for the TIES,
 * DARE and DELLA papers' code),
 * scope (ties only). Per model: weight (default 1; mergekit requires it), density, gamma, epsilon.
 */
function readOptions(kind: Kind, params: TensorParams): GtaOptions & { scope: 'tensor' | 'model' } {
  const p = new Params(params);
  const semantics = p.oneOf('semantics', SEMANTICS);
  const scope = kind.sparsifier === 'magnitude' ? p.oneOf('scope', SCOPES) : 'tensor';
  p.boolean('int8_mask');
  const o = {
    sparsifier: kind.sparsifier, vote: kind.vote, semantics, scope,
    normalize: p.boolean('normalize'), rescale: p.boolean('rescale'), lambda: p.number('lambda'),
    models: params.models.map((_, t) => ({
      weight: p.number('weight', t),
      density: kind.sparsifier === 'none' ? 1 : p.range('density', 0, 1, t),
      gamma: kind.sparsifier === 'magnitude_outliers' ? p.range('gamma', 0, 1, t) : 0,
      epsilon: kind.sparsifier === 'della_magprune' ? p.range('epsilon', 0, 1, t) : 0,
    })),
  };
  if (o.rescale && semantics === 'paper' && (kind.sparsifier === 'magnitude' || kind.sparsifier === 'magnitude_outliers')) {
    throw p.error('rescale', undefined, `the ${kind.sparsifier === 'magnitude' ? 'TIES' : 'Breadcrumbs'} paper defines no rescale; use semantics 'mergekit' for its L1-norm matching`);
  }
  if (scope === 'model' && o.rescale) {
    throw p.error('scope', undefined, `'model' trims the whole model at once; rescale (a per-tensor L1 factor) cannot be combined with it`);
  }
  if (kind.sparsifier === 'della_magprune') {
    o.models.forEach((m, t) => {
      // mergekit's della_magprune: keep probabilities d ± ε must lie in (0, 1) (density 0 and 1 are exempt).
      if (m.density > 0 && m.density < 1 && !(m.density - m.epsilon > 0 && m.density + m.epsilon < 1)) {
        throw p.error('epsilon', t, `expected density ± epsilon inside (0, 1), got density ${m.density} and epsilon ${m.epsilon}`);
      }
    });
  }
  return o;
}

type Step = 'hist0' | 'hist1' | 'l1' | 'signs';

/** Per-model trims of a magnitude sparsifier: ties one slot per model; breadcrumbs two (top n − n_bottom, top n_top). */
function trimSlots(o: GtaOptions, n: number): Array<{ vector: number; plan: TrimPlan }> {
  if (o.sparsifier === 'magnitude') return o.models.map((m, t) => ({ vector: t, plan: trimPlan(n, m.density, o.semantics) }));
  return o.models.flatMap((m, t) => {
    if (m.density >= 1) return [{ vector: t, plan: { kind: 'all' as const } }, { vector: t, plan: { kind: 'none' as const } }];
    const [top, bottom] = breadcrumbsCounts(n, m.density, m.gamma);
    return [{ vector: t, plan: exactPlan(n, n - bottom) }, { vector: t, plan: exactPlan(n, top) }];
  });
}

/** State of a TIES merge whose trim and zero sign span the whole model (scope 'model'). */
class ModelScope {
  trims: TrimSet | undefined;
  planned = false;
  n = 0;
  densities: number[] | undefined;
  majority = 0;
  /** Budgets of the merge phase: consumed across tensors in the runner's order. */
  budgets: Float64Array | undefined;
  signBudgets: Float64Array | undefined;
}

class GtaMethod implements MergeMethod {
  readonly name: string;
  readonly needsBase = true;
  readonly modelPasses: number;
  readonly #scope: ModelScope | undefined;
  readonly #scratch: Float32Array[] = [];
  readonly #totals: Float32Array[] = [];

  constructor(readonly kind: Kind, readonly ctx: MethodContext) {
    this.name = kind.name;
    const g = ctx.global;
    const modelScoped = kind.sparsifier === 'magnitude' && g?.scope === 'model';
    this.#scope = modelScoped ? new ModelScope() : undefined;
    this.modelPasses = modelScoped ? ((g?.semantics ?? 'mergekit') === 'paper' ? 3 : 2) : 0;
  }

  async observeModel(pass: number, tensor: TensorInfo, params: TensorParams, chunk: Chunk): Promise<void> {
    const scope = this.#scope;
    if (!scope) return;
    const o = readOptions(this.kind, params);
    this.#checkScope(o);
    const deltas = await taskVectors(this.ctx.backend, tensor.name, chunk, this.#scratch, pass === 0);
    const densities = o.models.map((m) => m.density);
    if (!scope.densities) scope.densities = densities;
    if (densities.some((d, t) => d !== scope.densities![t])) {
      throw new MergeKernelsError('INVALID_OPTION', `density: scope 'model' trims the whole model at once, so each model needs one density for every tensor; tensor ${JSON.stringify(tensor.name)} has ${densities.join(', ')}, an earlier tensor ${scope.densities.join(', ')}`, 'density');
    }
    scope.trims ??= new TrimSet(this.ctx.backend, densities.map((d) => d < 1));
    if (pass === 0) {
      scope.n += chunk.length;
      for (let t = 0; t < deltas.length; t++) await scope.trims.observe0(t, deltas[t]!);
    } else if (pass === 1) {
      if (!scope.planned) { scope.trims.setPlans(trimSlots(o, scope.n)); scope.planned = true; }
      for (let t = 0; t < deltas.length; t++) await scope.trims.observe1(t, deltas[t]!);
    } else {
      const trims = scope.trims.trims();
      scope.signBudgets ??= trimArrays(trims).budget;
      const unused = scratch(this.#totals, 1, chunk.length)[0]!;
      scope.majority += await voteCount(this.ctx, deltas, undefined, o, Int32Array.from(trims, (t) => t.thr), scope.signBudgets, unused);
    }
  }

  tensor(info: TensorInfo, params: TensorParams, driver?: TensorDriver): TensorMerge {
    const o = readOptions(this.kind, params);
    this.#checkScope(o);
    return new GtaTensor(this.ctx, info, o, this.#scope, driver?.revisit === true);
  }

  /** The model passes were planned from MethodContext.global: every tensor must agree with it. */
  #checkScope(o: GtaOptions & { scope: 'tensor' | 'model' }): void {
    if (o.scope === 'model' && !this.#scope) {
      throw new MergeKernelsError('INVALID_OPTION', `scope: 'model' needs the model passes, but this ${this.name} merge was created without the global parameters (MethodContext.global) that request them`, 'scope');
    }
    if (this.#scope && (o.scope !== 'model' || o.semantics !== (this.ctx.global?.semantics ?? 'mergekit'))) {
      throw new MergeKernelsError('INVALID_OPTION', `scope: a ${this.name} merge with scope 'model' needs the same scope and semantics for every tensor, got scope '${o.scope}' and semantics '${o.semantics}'`, 'scope');
    }
  }
}

/**
 * Σ over a chunk of sign(Σ_t D_t): the paper's zero-sign majority, from the kernel's vote count
 * (nothing written to `unused`). With `base`, `inputs` are the models and the kernel subtracts it.
 */
async function voteCount(ctx: MethodContext, inputs: Float32Array[], base: Float32Array | undefined, o: GtaOptions, thr: Int32Array, budget: Float64Array, unused: Float32Array): Promise<number> {
  const weights = Float32Array.from(o.models, (m) => m.weight);
  const { votes } = await ctx.backend.tiesMerge(inputs, weights, thr, budget, base, unused, { vote: 'sum', zeroSign: 1, merge: 'sum', lambda: 1, output: 'none', subtractBase: base !== undefined });
  return votes;
}

class GtaTensor implements TensorMerge {
  readonly rowAlign: number;
  readonly #steps: Step[];
  readonly #rule: RescaleRule;
  readonly #trims: TrimSet | undefined;
  readonly #keys: number[];
  readonly #weights: Float32Array;
  /** Whether model t's magnitude trim runs inside the fused kernel (no rescale to apply first). */
  readonly #fused: boolean;
  readonly #deltas: Float32Array[] = [];
  readonly #kept: Float32Array[] = [];
  readonly #tmp: Float32Array[] = [];
  readonly #l1 = { before: [] as number[], after: [] as number[] };
  #factors: number[] | undefined;
  /** The paper's vote count: from the 'signs' pass, or summed during the apply pass when guessing. */
  #majority = 0;
  readonly #budgets = new Map<string, Float64Array>();
  /**
   * Whether the paper's zero sign is guessed during the apply pass rather than counted first: only
   * where the driver can revisit chunks, and where applying a chunk again gives the same inputs
   * (not breadcrumbs' exact-k bands, whose tie budgets are spent in order).
   */
  readonly #guess: boolean;
  /** Applied chunks with undecided entries, and the zero sign each was applied with. */
  readonly #undecided: Array<{ offset: number; zeroSign: 1 | -1 }> = [];
  #revisiting = false;

  constructor(
    readonly ctx: MethodContext, readonly info: TensorInfo, readonly o: GtaOptions & { scope: 'tensor' | 'model' },
    readonly scope: ModelScope | undefined, revisit: boolean,
  ) {
    const T = ctx.models;
    this.#rule = rescaleRule(o);
    this.#keys = Array.from({ length: T }, (_, t) => modelStreamKey(ctx.seed, info.name, t));
    this.#weights = Float32Array.from(o.models, (m) => m.weight);
    const sparsified = o.models.some((m) => m.density < 1);
    const magnitude = o.sparsifier === 'magnitude' || o.sparsifier === 'magnitude_outliers';
    this.#fused = o.sparsifier === 'magnitude' && this.#rule !== 'l1';
    this.rowAlign = o.sparsifier === 'della_magprune' ? dellaLayout(info.shape).block : 1;
    const steps: Step[] = [];
    if (magnitude && o.scope === 'tensor') {
      const slots = trimSlots(o, info.numel);
      const needs = Array.from({ length: T }, (_, t) => slots.some((s) => s.vector === t && s.plan.kind === 'select'));
      // A fused trim counts every model's task vector in pass 0: their non-finite bins are the finiteness check.
      const histograms = needs.some(Boolean);
      this.#trims = new TrimSet(ctx.backend, this.#fused && histograms ? needs.map(() => true) : needs, slots);
      if (histograms) steps.push('hist0', 'hist1');
    } else if (magnitude) {
      this.#trims = scope!.trims ?? new TrimSet(ctx.backend, o.models.map(() => false), trimSlots(o, 0));
    }
    if (this.#rule === 'l1' && sparsified) steps.push('l1');
    const paperZeroSign = o.vote !== 'none' && o.semantics === 'paper' && o.scope === 'tensor';
    this.#guess = paperZeroSign && revisit && o.sparsifier !== 'magnitude_outliers';
    if (paperZeroSign && !this.#guess) steps.push('signs');
    this.#steps = steps;
    if (this.#rule !== 'l1') this.#factors = o.models.map(() => 1);
  }

  /** The observation passes left to plan: the level-1 pass drops out when pass 0's speculation found every threshold. */
  get passes(): number {
    return this.#steps.length;
  }

  /** Fresh tie budgets for one pass over the tensor (scope 'model': the merge phase's running budgets). */
  #budget(step: string): Float64Array {
    if (step === 'apply' && this.scope) return (this.scope.budgets ??= trimArrays(this.#trims!.trims()).budget);
    let b = this.#budgets.get(step);
    if (!b) this.#budgets.set(step, (b = trimArrays(this.#trims?.trims() ?? []).budget));
    return b;
  }

  /**
   * Whether this step lets the kernels form the task vectors (a fused trim): only where finiteness
   * is checked anyway, by the level-0 histograms of pass 0 or by an earlier pass.
   */
  #direct(step: Step | 'apply', pass: number): boolean {
    if (!this.#fused) return false;
    if (step === 'hist0') return true;
    return step === 'apply' ? this.passes > 0 || this.scope !== undefined : pass > 0;
  }

  async #observeDirect(step: Step, chunk: Chunk): Promise<void> {
    const trims = this.#trims!;
    if (step === 'hist0') {
      await trims.observe0All([...chunk.models], chunk.base, chunk.offset, this.info.numel);
      if (!trims.needsLevel1) this.#steps.splice(this.#steps.indexOf('hist1'), 1);
      if (trims.sawNonFinite()) {
        // The full check names the input and the index where it throws.
        await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, true);
        throw new MergeKernelsError('NON_FINITE', `models: tensor ${JSON.stringify(this.info.name)} has a non-finite task vector entry in [${chunk.offset}, ${chunk.offset + chunk.length})`, 'models');
      }
    } else if (step === 'hist1') {
      await trims.observe1All([...chunk.models], chunk.base);
    } else {
      const unused = scratch(this.#tmp, 1, chunk.length)[0]!;
      this.#majority += await voteCount(this.ctx, [...chunk.models], chunk.base, this.o, this.#thresholds(), this.#fusedBudget(step), unused);
    }
  }

  async observe(pass: number, chunk: Chunk): Promise<void> {
    const step = this.#steps[pass]!;
    if (this.#direct(step, pass)) return this.#observeDirect(step, chunk);
    const deltas = await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, pass === 0);
    if (step === 'hist0') {
      for (let t = 0; t < deltas.length; t++) await this.#trims!.observe0(t, deltas[t]!);
    } else if (step === 'hist1') {
      for (let t = 0; t < deltas.length; t++) await this.#trims!.observe1(t, deltas[t]!);
    } else if (step === 'l1') {
      const kept = await this.#sparsify(deltas, chunk.offset, step, true);
      for (let t = 0; t < deltas.length; t++) {
        const d = deltas[t]!, k = kept[t]!;
        let before = this.#l1.before[t] ?? 0, after = this.#l1.after[t] ?? 0;
        // Summed in index order in float64, as the reference does over the whole tensor.
        for (let i = 0; i < d.length; i++) { before += Math.abs(d[i]!); after += Math.abs(k[i]!); }
        this.#l1.before[t] = before;
        this.#l1.after[t] = after;
      }
    } else {
      const inputs = await this.#sparsify(deltas, chunk.offset, step, false);
      const unused = scratch(this.#tmp, 1, chunk.length)[0]!;
      this.#majority += await voteCount(this.ctx, inputs, undefined, this.o, this.#thresholds(), this.#fusedBudget(step), unused);
    }
  }

  async apply(chunk: Chunk, out: Float32Array): Promise<void> {
    // The paper's zero sign: the sign of the vote count, ≤ 0 → -1. Guessed from the chunks applied
    // so far (right more often than a fixed sign), final once revisiting.
    const majority = this.scope ? this.scope.majority : this.#majority;
    const zeroSign = this.o.semantics === 'paper' && majority <= 0 ? -1 : 1;
    const counting = this.#guess && !this.#revisiting;
    const options: TiesMergeOptions = {
      vote: this.o.vote, zeroSign, merge: mergeRule(this.o), lambda: this.o.lambda, output: 'merged', counts: counting,
    };
    let counts;
    if (this.#direct('apply', 0)) {
      counts = await this.ctx.backend.tiesMerge([...chunk.models], this.#weights, this.#thresholds(), this.#fusedBudget('apply'), chunk.base, out, { ...options, subtractBase: true });
    } else {
      const deltas = await taskVectors(this.ctx.backend, this.info.name, chunk, this.#deltas, this.passes === 0);
      const inputs = await this.#sparsify(deltas, chunk.offset, 'apply', false);
      counts = await this.ctx.backend.tiesMerge(inputs, this.#weights, this.#thresholds(), this.#fusedBudget('apply'), chunk.base, out, options);
    }
    if (!counting) return;
    this.#majority += counts.votes;
    if (counts.undecided > 0) this.#undecided.push({ offset: chunk.offset, zeroSign });
  }

  /** The chunks applied under the wrong guess that had undecided entries (their merged values may change). */
  revisit(): number[] {
    if (!this.#guess) return [];
    this.#revisiting = true;
    const zeroSign = this.#majority <= 0 ? -1 : 1;
    return this.#undecided.filter((c) => c.zeroSign !== zeroSign).map((c) => c.offset);
  }

  /** Thresholds of the fused kernel: the magnitude trims when fused, else keep all (already sparsified). */
  #thresholds(): Int32Array {
    return this.#fused ? Int32Array.from(this.#trims!.trims(), (t) => t.thr) : new Int32Array(this.ctx.models).fill(-1);
  }

  /** Tie budgets of the fused kernel: the trims' when fused, else none (every threshold is -1). */
  #fusedBudget(step: string): Float64Array {
    return this.#fused ? this.#budget(step) : new Float64Array(this.ctx.models);
  }

  /** mergekit's L1 factors Σ|δ| / Σ|kept| per model (1 where either sum is below 1e-7), once the l1 pass is done. */
  #factor(t: number): number {
    this.#factors ??= this.o.models.map((_, u) => {
      const before = this.#l1.before[u] ?? 0, after = this.#l1.after[u] ?? 0;
      return before < 1e-7 || after < 1e-7 ? 1 : f(before / after);
    });
    return this.#factors[t]!;
  }

  /**
   * Each model's kept (and rescaled) values of a chunk. Fused magnitude trims return δ itself.
   * `raw`: the l1 pass, which needs the kept values before the L1 factor is known.
   */
  async #sparsify(deltas: Float32Array[], offset: number, step: string, raw: boolean): Promise<Float32Array[]> {
    const o = this.o;
    if (o.sparsifier === 'none' || this.#fused) return deltas;
    const n = deltas[0]?.length ?? 0;
    const kept = scratch(this.#kept, deltas.length, n);
    for (let t = 0; t < deltas.length; t++) {
      const m = o.models[t]!;
      const d = deltas[t]!, k = kept[t]!;
      if (m.density >= 1) { k.set(d); continue; }
      const scale = raw || this.#rule !== 'l1' ? 1 : this.#factor(t);
      if (o.sparsifier === 'random') {
        const s = this.#rule === 'density' ? (m.density > 0 ? 1 / m.density : 1) : scale;
        await this.ctx.backend.dropAndRescale(d, offset, this.#keys[t]!, m.density, s, k);
      } else if (o.sparsifier === 'della_magprune') {
        this.#magprune(d, offset, t, k, scale);
      } else {
        await this.#trim(d, t, step, k, scale);
      }
    }
    return kept;
  }

  /** A magnitude trim (ties with L1 rescale) or breadcrumbs' band (top n−n_bottom minus top n_top), times `scale`. */
  async #trim(d: Float32Array, t: number, step: string, out: Float32Array, scale: number): Promise<void> {
    const trims = this.#trims!.trims();
    const budget = this.#budget(step);
    const one = new Float32Array([1]);
    const run = async (slot: number, into: Float32Array, lambda: number) => {
      const b = new Float64Array([budget[slot]!]);
      await this.ctx.backend.tiesMerge([d], one, new Int32Array([trims[slot]!.thr]), b, undefined, into, { vote: 'none', zeroSign: 1, merge: 'sum', lambda, output: 'merged' });
      budget[slot] = b[0]!;
    };
    if (this.o.sparsifier === 'magnitude') return run(t, out, scale);
    const band = 2 * t;
    await run(band, out, 1);
    const top = scratch(this.#tmp, 1, d.length)[0]!;
    await run(band + 1, top, 1);
    // Entries in the top n_top are in both trims with the same value: the difference is exactly 0.
    for (let i = 0; i < d.length; i++) out[i] = scale === 1 ? out[i]! - top[i]! : f(f(out[i]! - top[i]!) * scale);
  }

  /** DELLA's MagPrune over the whole rows of a chunk (rowAlign makes chunks hold whole blocks). */
  #magprune(d: Float32Array, offset: number, t: number, out: Float32Array, scale: number): void {
    const m = this.o.models[t]!;
    out.fill(0);
    if (m.density <= 0) return;
    const { block, length, inner } = dellaLayout(this.info.shape);
    // Ascending |δ|, equal magnitudes: the later entry first (as the reference). Rows shorter than
    // 2^22 sort numeric keys |δ|bits·L + (L − 1 − r) natively (exact below 2^53); longer ones use a comparator.
    const keys = length < 2 ** 22 ? new Float64Array(length) : undefined;
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    const row = new Array<number>(length);
    for (let start = 0; start < d.length; start += block) {
      for (let j = 0; j < inner; j++) {
        if (keys) {
          for (let r = 0; r < length; r++) keys[r] = (bits[start + j + r * inner]! & 0x7fffffff) * length + (length - 1 - r);
          keys.sort();
          for (let q = 0; q < length; q++) row[q] = start + j + (length - 1 - (keys[q]! % length)) * inner;
        } else {
          for (let r = 0; r < length; r++) row[r] = start + j + r * inner;
          row.sort((a, b) => Math.abs(d[a]!) - Math.abs(d[b]!) || b - a);
        }
        for (let r = 0; r < length; r++) {
          const i = row[r]!;
          const p = dellaProbability(r + 1, length, m.density, m.epsilon);
          if (!keeps(this.#keys[t]!, offset + i, p)) continue;
          out[i] = this.#rule === 'density' ? f(d[i]! / p) : scale === 1 ? d[i]! : f(d[i]! * scale);
        }
      }
    }
  }
}

/** The MethodSpecs of the family, by mergekit name. */
export const TASK_ARITHMETIC_METHODS: Record<string, MethodSpec> = Object.fromEntries(KINDS.map((kind) => [kind.name, {
  name: kind.name,
  needsBase: true,
  globalParams: {
    normalize: kind.normalize, rescale: kind.rescale, lambda: 1, int8_mask: false, semantics: 'mergekit',
    ...(kind.sparsifier === 'magnitude' ? { scope: 'tensor' } : {}),
  },
  modelParams: {
    // task_arithmetic sparsifies nothing: a density there would be silently ignored, so it is not a parameter.
    weight: 1,
    ...(kind.sparsifier !== 'none' ? { density: 1 } : {}),
    ...(kind.sparsifier === 'magnitude_outliers' ? { gamma: 0.01 } : {}),
    ...(kind.sparsifier === 'della_magprune' ? { epsilon: 0.15 } : {}),
  },
  create: (ctx: MethodContext) => new GtaMethod(kind, ctx),
} satisfies MethodSpec]));
