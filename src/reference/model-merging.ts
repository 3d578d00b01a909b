// Whole-tensor references of the task-vector merge methods, written for clarity (sorting is fine
// here): the oracle that the streaming methods in src/merging/methods/ are tested against.
//
// Papers and the code they were read from:
// - TIES-Merging (Yadav et al. 2023, §3; prateeky2806/ties-merging, src/utils/merge_utils.py):
//   trim, elect sign, disjoint merge.
// - Task arithmetic (Ilharco et al. 2023, §2): base + λ·Σ τ.
// - DARE (Yu et al. 2024, §3): drop each entry with probability 1 − p, rescale by 1/p.
// - Model Breadcrumbs (Davari & Belilovsky 2023, §3): drop the largest γ and the smallest entries.
// - DELLA (Deep et al. 2024, §3 MagPrune): keep probabilities ranked by magnitude, d ± ε, ÷ p_i.
// - mergekit (arcee-ai/mergekit: merge_methods/generalized_task_arithmetic.py, sparsify.py,
//   merge_methods/sce.py): the generalized task-arithmetic pipeline and its defaults.
// - SCE (FuseChat, Wan et al. 2024, §3): select by variance, calculate weights, erase by sign.
// - TALL masks / consensus merging ("Localizing Task Information for Improved Model Merging and
//   Compression", Wang et al. 2024, §3–4; nik-dim/tall_masks, src/utils/tallmask_utils.py).
//
// Arithmetic is float32 (Math.fround after every operation), whatever the file dtype; mergekit
// computes in the config `dtype` (often bfloat16 or float16), so its results differ from ours by
// that dtype's rounding. Sums over models run t = 0 … T−1 in order, as in the streaming kernels.
// Ties between equal magnitudes are broken by index: a lower flat index ranks as larger (our
// definition; torch's sorts are unstable there, so mergekit's choice is undefined).
import { streamKey, uniform24 } from './merge-primitives.ts';

const f = Math.fround;

/**
 * How many entries a top-k trim keeps and what happens at the threshold:
 * - 'mergekit': exactly k = floor(density·n) entries (density ≥ 1 keeps all); among entries equal
 *   to the k-th magnitude the lowest indices are kept. (mergekit asserts k > 0; we keep none.)
 * - 'paper': the TIES code's `topk_values_mask`: every entry with |x| ≥ the (floor(density·n)+1)-th
 *   largest magnitude, i.e. floor(d·n) + 1 entries plus ties. Density 0 keeps the entries equal to
 *   the largest magnitude. Density 1 keeps all (torch's `kthvalue(0)` raises there).
 */
export type TrimConvention = 'mergekit' | 'paper';

/** Indices of `x` ordered by magnitude, largest first; equal magnitudes in increasing index order. */
export function magnitudeOrder(x: Float32Array): number[] {
  const order = Array.from(x, (_, i) => i);
  order.sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
  return order;
}

/** TIES' trim: the top-`density` fraction of `x` by magnitude, the rest set to 0 (see TrimConvention). */
export function trimTopK(x: Float32Array, density: number, convention: TrimConvention): Float32Array {
  const n = x.length;
  const m = Math.floor(density * n);
  if (density >= 1 || m >= n) return x.slice();
  const out = new Float32Array(n);
  const order = magnitudeOrder(x);
  if (convention === 'mergekit') {
    for (let r = 0; r < m; r++) out[order[r]!] = x[order[r]!]!;
  } else {
    const kth = Math.abs(x[order[m]!]!); // the (m+1)-th largest magnitude
    for (let i = 0; i < n; i++) if (Math.abs(x[i]!) >= kth) out[i] = x[i]!;
  }
  return out;
}

/** The rule for an entry whose vote total is exactly 0. */
export type ZeroSignRule = 'mergekit' | 'paper';

/**
 * TIES' sign election over D_t = f32(w_t · δ_t) (weights rounded to float32, like mergekit's tensor of weights): per entry the sign of Σ_t D_t ('sum') or of
 * Σ_t sign(D_t) ('count'). A zero total elects +1 under 'mergekit' (`>= 0`); under 'paper' it
 * elects the sign of Σ over all entries of the elected signs (`resolve_zero_signs(…, "majority")`
 * in the TIES code). Where that is 0 too, the paper's code leaves the sign 0 and its disjoint merge
 * then selects the negative entries (`where(sign > 0, T > 0, T < 0)`); we elect −1, which selects
 * the same entries (only its 'max' merge differs: it multiplies by the 0 sign).
 */
export function electSign(deltas: readonly Float32Array[], weights: readonly number[], method: 'sum' | 'count', zero: ZeroSignRule): Float32Array {
  const n = deltas[0]?.length ?? 0;
  const totals = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let total = 0;
    for (let t = 0; t < deltas.length; t++) {
      const d = f(f(weights[t]!) * deltas[t]![i]!);
      total = f(total + (method === 'sum' ? d : Math.sign(d)));
    }
    totals[i] = total;
  }
  let zeroSign = 1;
  if (zero === 'paper') {
    let majority = 0;
    for (let i = 0; i < n; i++) majority += Math.sign(totals[i]!);
    zeroSign = majority > 0 ? 1 : -1;
  }
  return totals.map((v) => (v > 0 ? 1 : v < 0 ? -1 : zeroSign));
}

/**
 * How the values that agree with the elected sign are combined (D_t = f32(w_t · δ_t)):
 * 'mean' Σ D / max(1, #non-zero agreeing) (the TIES paper's disjoint mean); 'normalize' Σ D / Σ w over
 * agreeing models (mergekit; a zero divisor becomes 1; without signs Σ w over all, |Σ w| < 1e-8 → 1);
 * 'sum' Σ D; 'max' the agreeing D of largest magnitude (the first model on ties).
 */
export type DisjointMergeRule = 'mean' | 'normalize' | 'sum' | 'max';

/** TIES' disjoint merge: combines the entries agreeing with `signs` (every entry when `signs` is undefined). */
export function disjointMerge(deltas: readonly Float32Array[], weights: readonly number[], signs: Float32Array | undefined, merge: DisjointMergeRule): Float32Array {
  const n = deltas[0]?.length ?? 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0, wsum = 0, count = 0, peak = 0;
    for (let t = 0; t < deltas.length; t++) {
      const w = f(weights[t]!);
      const d = f(w * deltas[t]![i]!);
      // Zeros never agree with a sign (mergekit: sign(0) ≠ ±1; the paper: T > 0 or T < 0).
      if (signs && Math.sign(d) !== signs[i]) continue;
      sum = f(sum + d);
      wsum = f(wsum + w);
      if (d !== 0) count++;
      if (Math.abs(d) > Math.abs(peak)) peak = d;
    }
    if (merge === 'sum') out[i] = sum;
    else if (merge === 'mean') out[i] = f(sum / Math.max(1, count));
    else if (merge === 'max') out[i] = peak;
    else {
      const divisor = signs ? (wsum === 0 ? 1 : wsum) : (Math.abs(wsum) < 1e-8 ? 1 : wsum);
      out[i] = f(sum / divisor);
    }
  }
  return out;
}

/**
 * Rescaling of a sparsified task vector: 'none'; 'density' divides kept entries by their keep
 * probability (the DARE and DELLA papers); 'l1' multiplies the kept entries by Σ|x| / Σ|kept|
 * (mergekit since 2025, `rescaled_masked_tensor`; skipped when either sum is below 1e-7). The L1
 * sums are taken in float64 here (mergekit: in the work dtype), the factor rounded to float32.
 */
export type RescaleRule = 'none' | 'density' | 'l1';

/** mergekit's L1-norm matching: `kept` times Σ|x| / Σ|kept|, unless either sum is below 1e-7. */
export function l1Rescale(x: Float32Array, kept: Float32Array): Float32Array {
  let before = 0, after = 0;
  for (let i = 0; i < x.length; i++) { before += Math.abs(x[i]!); after += Math.abs(kept[i]!); }
  if (before < 1e-7 || after < 1e-7) return kept;
  const factor = f(before / after);
  return kept.map((v) => f(v * factor));
}

/**
 * The random stream of model `modelIndex`'s copy of tensor `name` (DARE, DELLA): the seed, the
 * tensor name and the model's index in the config, so that two models never share a mask.
 */
export function modelStreamKey(seed: number, name: string, modelIndex: number): number {
  return streamKey(seed, `${name}\u0000${modelIndex}`);
}

/** Whether DARE keeps entry `i` at keep probability `p`: a counter-based draw, the same on every backend and chunking. */
export function keeps(key: number, i: number, p: number): boolean {
  return uniform24(key, i) < f(p) * 16777216;
}

/** DARE's drop and rescale of one task vector: keeps each entry with probability `p` (p ≥ 1 returns `x` unchanged). */
export function dareDrop(x: Float32Array, p: number, key: number, rescale: RescaleRule): Float32Array {
  if (p >= 1) return x.slice();
  const kept = x.map((v, i) => (keeps(key, i, p) ? v : 0));
  if (rescale === 'density') return p > 0 ? kept.map((v) => f(v / p)) : kept;
  if (rescale === 'l1') return l1Rescale(x, kept);
  return kept;
}

/** Model Breadcrumbs' counts: [n_top, n_bottom] entries removed at the large and the small end. */
export function breadcrumbsCounts(n: number, density: number, gamma: number): [number, number] {
  const target = Math.floor(density * n);
  let top = Math.floor(gamma * n);
  let bottom = n - target - top;
  if (bottom < 0) { top += bottom; bottom = 0; } // keep the target density: remove fewer outliers
  return [top, bottom];
}

/**
 * Model Breadcrumbs' mask (mergekit's `magnitude_outliers`): removes the `n_top` largest and the
 * `n_bottom` smallest magnitudes and keeps the rest (density ≥ 1 returns `x` unchanged, as mergekit).
 * mergekit keeps `sorted[n_bot:-n_top]`, which is empty when n_top = int(γ·n) = 0 (e.g. a 64-entry
 * bias at γ = 0.01): a bug that zeroes the whole tensor. We keep sorted[n_bot : n − n_top] instead.
 */
export function breadcrumbs(x: Float32Array, density: number, gamma: number): Float32Array {
  if (density >= 1) return x.slice();
  const n = x.length;
  const [top, bottom] = breadcrumbsCounts(n, density, gamma);
  const order = magnitudeOrder(x);
  const out = new Float32Array(n);
  for (let r = top; r < n - bottom; r++) out[order[r]!] = x[order[r]!]!;
  return out;
}

/**
 * DELLA's keep probability of an entry of magnitude rank `rank` (1 = smallest) among `length`
 * entries: (d − ε) + 2ε·(rank − 1)/(length − 1), rounded to float32 (mergekit's `della_magprune`).
 * A 1-entry row gets d (mergekit divides 0 by 0 there).
 */
export function dellaProbability(rank: number, length: number, density: number, epsilon: number): number {
  const norm = length > 1 ? (rank - 1) / (length - 1) : 0.5;
  return f(density - epsilon + norm * 2 * epsilon);
}

/**
 * The rows DELLA ranks within, as mergekit does: along dimension 1 (the last dimension of a 2-D
 * tensor; a 1-D tensor or a scalar is one row). Returns [rows per block, row length, stride]: the
 * tensor is blocks of shape[1]·inner entries, each holding `inner` rows of stride `inner`.
 */
export function dellaLayout(shape: readonly number[]): { block: number; length: number; inner: number } {
  if (shape.length < 2) {
    const n = shape.reduce((a, b) => a * b, 1);
    return { block: Math.max(1, n), length: n, inner: 1 };
  }
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  return { block: Math.max(1, shape[1]! * inner), length: shape[1]!, inner };
}

/** DELLA's MagPrune of one task vector: density ≥ 1 returns `x`, density ≤ 0 zeros; else ranks per row (see dellaLayout). */
export function dellaMagprune(x: Float32Array, shape: readonly number[], density: number, epsilon: number, key: number, rescale: RescaleRule): Float32Array {
  if (density >= 1) return x.slice();
  const out = new Float32Array(x.length);
  if (density <= 0) return out;
  const { block, length, inner } = dellaLayout(shape);
  for (let start = 0; start < x.length; start += block) {
    for (let j = 0; j < inner; j++) {
      const row = Array.from({ length }, (_, r) => start + j + r * inner);
      // Ascending magnitude; equal magnitudes: the higher index ranks lower (the mirror of magnitudeOrder).
      const ascending = [...row].sort((a, b) => Math.abs(x[a]!) - Math.abs(x[b]!) || b - a);
      ascending.forEach((i, r) => {
        const p = dellaProbability(r + 1, length, density, epsilon);
        if (keeps(key, i, p)) out[i] = rescale === 'density' ? f(x[i]! / p) : x[i]!;
      });
    }
  }
  return rescale === 'l1' ? l1Rescale(x, out) : out;
}

export type Sparsifier = 'none' | 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';

/** One model's parameters in the generalized task-arithmetic pipeline (mergekit's names). */
export interface TaskParams {
  weight: number;
  density: number;
  /** Breadcrumbs: the fraction of largest magnitudes removed. */
  gamma: number;
  /** DELLA: the half-width of the keep probabilities around the density. */
  epsilon: number;
}

/**
 * The generalized task-arithmetic pipeline, resolved. `semantics` picks between the papers and
 * mergekit where they differ:
 * - trim convention (magnitude): 'paper' keeps ≥ the (floor(d·n)+1)-th magnitude, 'mergekit' exactly floor(d·n);
 * - zero elected sign: 'paper' the majority of elected signs over the vector, 'mergekit' +1;
 * - normalize with a vote: 'paper' the disjoint mean over agreeing non-zero entries, 'mergekit' ÷ Σ agreeing weights;
 * - rescale: 'paper' ÷ keep probability (DARE, DELLA; the magnitude sparsifiers have none), 'mergekit' L1-norm matching.
 */
export interface GtaOptions {
  sparsifier: Sparsifier;
  vote: 'sum' | 'count' | 'none';
  normalize: boolean;
  rescale: boolean;
  lambda: number;
  semantics: 'paper' | 'mergekit';
  models: TaskParams[];
}

/** The rescale rule `o` implies. */
export function rescaleRule(o: Pick<GtaOptions, 'rescale' | 'semantics'>): RescaleRule {
  return !o.rescale ? 'none' : o.semantics === 'paper' ? 'density' : 'l1';
}

/** The disjoint-merge rule `o` implies. */
export function mergeRule(o: Pick<GtaOptions, 'normalize' | 'semantics' | 'vote'>): DisjointMergeRule {
  if (!o.normalize) return 'sum';
  return o.vote !== 'none' && o.semantics === 'paper' ? 'mean' : 'normalize';
}

/** One model's sparsified task vector (`δ` of tensor `name`, model `t`). */
export function sparsify(delta: Float32Array, shape: readonly number[], name: string, seed: number, t: number, o: GtaOptions): Float32Array {
  const p = o.models[t]!;
  const rule = rescaleRule(o);
  const key = modelStreamKey(seed, name, t);
  switch (o.sparsifier) {
    case 'none': return delta.slice();
    case 'random': return dareDrop(delta, p.density, key, rule);
    case 'della_magprune': return dellaMagprune(delta, shape, p.density, p.epsilon, key, rule);
    case 'magnitude': {
      const kept = trimTopK(delta, p.density, o.semantics);
      return rule === 'l1' && p.density < 1 ? l1Rescale(delta, kept) : kept;
    }
    case 'magnitude_outliers': {
      const kept = breadcrumbs(delta, p.density, p.gamma);
      return rule === 'l1' && p.density < 1 ? l1Rescale(delta, kept) : kept;
    }
  }
}

/**
 * mergekit's generalized task arithmetic on one tensor (task_arithmetic, ties, dare_ties,
 * dare_linear, breadcrumbs, breadcrumbs_ties, della, della_linear): δ_t = x_t − base, sparsify,
 * weight, optional sign vote, disjoint merge (÷ per `normalize`), × λ, + base.
 */
export function generalizedTaskArithmetic(
  base: Float32Array, models: readonly Float32Array[], shape: readonly number[], name: string, seed: number, o: GtaOptions,
): Float32Array {
  const deltas = models.map((x, t) => sparsify(x.map((v, i) => f(v - base[i]!)), shape, name, seed, t, o));
  const weights = o.models.map((p) => p.weight);
  const signs = o.vote === 'none' ? undefined : electSign(deltas, weights, o.vote, o.semantics);
  const mix = disjointMerge(deltas, weights, signs, mergeRule(o));
  return base.map((b, i) => f(b + f(o.lambda * mix[i]!)));
}

/**
 * TIES with `scope: 'model'` (the paper's global trim): the trim threshold and the zero-sign
 * majority are taken over all tensors of the model at once, as if concatenated in the given order.
 * Only the magnitude sparsifier (no randomness, no shapes) can be scoped to the model.
 */
export function generalizedTaskArithmeticModel(
  tensors: ReadonlyArray<{ base: Float32Array; models: readonly Float32Array[] }>, o: GtaOptions,
): Float32Array[] {
  const concat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const base = concat(tensors.map((x) => x.base));
  const models = o.models.map((_, t) => concat(tensors.map((x) => x.models[t]!)));
  const merged = generalizedTaskArithmetic(base, models, [base.length], '', 0, o);
  let at = 0;
  return tensors.map((x) => merged.slice(at, (at += x.base.length)));
}

/** Population variance over models of each entry, in float32: mean = Σ/T, var = Σ (x − mean)² / T. */
export function varianceOverModels(deltas: readonly Float32Array[]): Float32Array {
  const T = deltas.length;
  const n = deltas[0]?.length ?? 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let t = 0; t < T; t++) sum = f(sum + deltas[t]![i]!);
    const mean = f(sum / T);
    let sq = 0;
    for (let t = 0; t < T; t++) { const d = f(deltas[t]![i]! - mean); sq = f(sq + f(d * d)); }
    out[i] = f(sq / T);
  }
  return out;
}

/** SCE's weights from the (selected) task vectors: mean(δ_t²) normalised to sum 1 (uniform 1/T when that sum is below 1e-6). */
export function sceWeights(deltas: readonly Float32Array[], n: number): number[] {
  return sceWeightsFromSums(deltas.map((d) => { let s = 0; for (const v of d) s += v * v; return s; }), n);
}

/** SCE's weights from each model's Σ δ² (float64, in index order) over `n` entries. */
export function sceWeightsFromSums(sums: readonly number[], n: number): number[] {
  const means = sums.map((s) => (n > 0 ? s / n : 0));
  const total = means.reduce((a, b) => a + b, 0);
  if (Math.abs(total) < 1e-6) return means.map(() => f(1 / sums.length));
  return means.map((m) => f(m / total));
}

/**
 * SCE (FuseChat §3; mergekit `sce`): Select the top `selectTopk` fraction of entries by variance
 * across task vectors (of those with non-zero variance: k = floor(#nonzero · selectTopk), ties to the
 * lowest index; the same mask for every model), Calculate weights η_t = mean(δ_t²) / Σ, Erase the
 * entries whose sign disagrees with the sign of Σ_t δ_t (+1 on a zero sum), and merge
 * Σ_t η_t·δ_t / max(Σ_t η_t over agreeing, 1e-6). The paper and mergekit agree here.
 */
export function sce(base: Float32Array, models: readonly Float32Array[], selectTopk: number): Float32Array {
  const n = base.length;
  let deltas = models.map((x) => x.map((v, i) => f(v - base[i]!)));
  if (selectTopk < 1) {
    const mask = new Uint8Array(n);
    if (selectTopk > 0) {
      const variance = varianceOverModels(deltas);
      let nonzero = 0;
      for (const v of variance) if (v !== 0) nonzero++;
      const k = Math.floor(nonzero * selectTopk);
      const order = magnitudeOrder(variance);
      for (let r = 0; r < k; r++) mask[order[r]!] = 1;
    }
    deltas = deltas.map((d) => d.map((v, i) => (mask[i] ? v : 0)));
  }
  const signs = electSign(deltas, deltas.map(() => 1), 'sum', 'mergekit');
  const weights = sceWeights(deltas, n);
  return base.map((b, i) => {
    let num = 0, den = 0;
    for (let t = 0; t < deltas.length; t++) {
      const d = deltas[t]![i]!;
      if (Math.sign(d) !== signs[i]) continue;
      num = f(num + f(d * weights[t]!));
      den = f(den + weights[t]!);
    }
    return f(b + f(num / Math.max(den, f(1e-6))));
  });
}

/**
 * Consensus merging with TALL masks (Wang et al. 2024, §4): the multi-task vector τ = Σ_t trim(δ_t)
 * (task arithmetic; per-model density with the TIES code's trim convention), each task's TALL mask
 * m_t = |δ_t| > λ_t·|τ − δ_t| (the paper: |θ_0 − θ_t| > λ_t·|θ_MTL − θ_t|, with the untrimmed δ_t),
 * and the consensus mask keeps the entries where at least `k` masks are set (k = 2 removes
 * "catastrophic" and "selfish" weights; 0 keeps all). Result: base + lambda · τ ⊙ [Σ m_t ≥ k].
 */
export function consensus(
  base: Float32Array, models: readonly Float32Array[], densities: readonly number[], tallLambdas: readonly number[], k: number, lambda: number,
): Float32Array {
  const deltas = models.map((x) => x.map((v, i) => f(v - base[i]!)));
  const trimmed = deltas.map((d, t) => trimTopK(d, densities[t]!, 'paper'));
  return base.map((b, i) => {
    let tau = 0;
    for (let t = 0; t < trimmed.length; t++) tau = f(tau + trimmed[t]![i]!);
    let agree = 0;
    for (let t = 0; t < deltas.length; t++) {
      const d = deltas[t]![i]!;
      if (Math.abs(d) > f(tallLambdas[t]! * Math.abs(f(tau - d)))) agree++;
    }
    return f(b + f(lambda * (agree >= k ? tau : 0)));
  });
}
