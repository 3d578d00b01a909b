// Building blocks the streaming methods share: task vectors of a chunk with the non-finite check,
// exact top-k magnitude thresholds from two histogram passes over the chunks, and trims expressed
// as the fused kernel's (threshold, tie budget) pairs.
import type { Backend } from '../backends.ts';
import { MergeKernelsError } from '../errors.ts';
import { LEVEL0_BINS, LEVEL1_BINS, NON_FINITE_BIN, selectBin, selectThreshold, type HistogramRequest } from '../reference/merge-primitives.ts';
import type { TrimConvention } from '../reference/model-merging.ts';
import type { Chunk } from './types.ts';

const f = Math.fround;

/** Keeps every entry (the fused kernel's "no trim"). */
export const KEEP_ALL = -1;
/** Keeps no entry: every finite magnitude's bits are below it. */
export const KEEP_NONE = 0x7fffffff;

/** A trim as the fused kernel applies it: keep |x| bits > thr, or = thr while the budget lasts. */
export interface Trim {
  thr: number;
  budget: number;
}

/**
 * The task vectors δ_t = f32(x_t − base) of a chunk, written into `out` (reused scratch).
 * With `check`, NaN/±Infinity in the base, a model, or δ (float32 overflow) throws NON_FINITE
 * naming the model and the tensor.
 */
export async function taskVectors(backend: Backend, tensor: string, chunk: Chunk, out: Float32Array[], check: boolean): Promise<Float32Array[]> {
  const n = chunk.length;
  if (check && chunk.base) await checkFinite(backend, tensor, 'base', chunk.base, chunk.offset);
  const deltas = chunk.models.map((x, t) => {
    if (!out[t] || out[t]!.length < n) out[t] = new Float32Array(n);
    const d = out[t]!.subarray(0, n);
    const b = chunk.base;
    if (b) for (let i = 0; i < n; i++) d[i] = f(x[i]! - b[i]!);
    else d.set(x);
    return d;
  });
  if (check) {
    for (let t = 0; t < deltas.length; t++) {
      const at = await backend.findNonFinite(deltas[t]!);
      if (at < 0) continue;
      const x = chunk.models[t]![at]!;
      if (!Number.isFinite(x)) throw nonFinite(tensor, `models[${t}]`, x, chunk.offset + at);
      throw new MergeKernelsError('NON_FINITE', `models[${t}]: tensor ${JSON.stringify(tensor)} minus the base overflows float32 at flat index ${chunk.offset + at} (${x} − ${chunk.base![at]})`, `models[${t}]`);
    }
  }
  return deltas;
}

async function checkFinite(backend: Backend, tensor: string, what: string, x: Float32Array, offset: number): Promise<void> {
  const at = await backend.findNonFinite(x);
  if (at >= 0) throw nonFinite(tensor, what, x[at]!, offset + at);
}

function nonFinite(tensor: string, what: string, value: number, index: number): MergeKernelsError {
  return new MergeKernelsError('NON_FINITE', `${what}: tensor ${JSON.stringify(tensor)} has ${value} at flat index ${index}; expected finite values`, what);
}

/** Scratch arrays of at least `n` entries, one per slot, reused across chunks. */
export function scratch(pool: Float32Array[], slots: number, n: number): Float32Array[] {
  for (let s = 0; s < slots; s++) if (!pool[s] || pool[s]!.length < n) pool[s] = new Float32Array(n);
  return pool.slice(0, slots).map((a) => a.subarray(0, n));
}

/** Level-0 bins on either side of the predicted one that a speculative level-1 window counts. */
const WINDOW_BELOW = 2;
const WINDOW_SPAN = 5;

/**
 * Exact k-th largest magnitudes of several vectors streamed in chunks (radix select over the float
 * bits): `observe0` every chunk of the vectors that `needs`, then `select` the (vector, k) requests
 * (1 ≤ k ≤ the vector's length), `observe1` every chunk again, then `result`.
 *
 * Or in one pass (observe0All): after the first chunk, `speculate` predicts each request's level-0
 * bin from that chunk and counts level 1 over a window of bins around it from then on; when the
 * whole pass is seen, `resolve` finds every k-th magnitude inside its window (the usual case for a
 * tensor whose chunks look alike) and the second pass is not needed, or gives up (exactly as if it
 * never speculated: `select` and `observe1` follow).
 */
export class MagnitudeSelect {
  readonly #hist0: Uint32Array[];
  readonly #hist1: Map<number, Uint32Array>[];
  #requests: ReadonlyArray<{ vector: number; k: number }> = [];
  #bins: number[] = [];
  #windows: Array<{ vector: number; prefix: number; hist: Uint32Array }> | undefined;

  constructor(readonly backend: Backend, readonly needs: readonly boolean[]) {
    this.#hist0 = needs.map((need) => new Uint32Array(need ? LEVEL0_BINS : 0));
    this.#hist1 = needs.map(() => new Map());
  }

  async observe0(vector: number, x: Float32Array): Promise<void> {
    if (this.needs[vector]) await this.backend.absHistograms([x], undefined, [{ model: 0, hist: this.#hist0[vector]!, level: 0, prefix: 0 }]);
  }

  /** observe0 of one chunk of every vector at once (and the speculative windows), δ = models − base (models without a base): one backend call. */
  async observe0All(models: Float32Array[], base: Float32Array | undefined): Promise<void> {
    const requests: HistogramRequest[] = [];
    this.needs.forEach((need, t) => { if (need) requests.push({ model: t, hist: this.#hist0[t]!, level: 0, prefix: 0 }); });
    for (const w of this.#windows ?? []) requests.push({ model: w.vector, hist: w.hist, level: 1, prefix: w.prefix });
    await this.backend.absHistograms(models, base, requests);
  }

  /**
   * After observe0All of the first chunk only: predicts each request's level-0 bin from that
   * chunk (its share of the k-th entry of `n`) and counts level 1 over a window of bins around it,
   * starting with that same chunk.
   */
  async speculate(requests: ReadonlyArray<{ vector: number; k: number }>, n: number, models: Float32Array[], base: Float32Array | undefined): Promise<void> {
    this.#requests = requests;
    const seen = models[0]!.length;
    this.#windows = requests.map((r) => {
      const k = Math.min(seen, Math.max(1, Math.round((r.k * seen) / n)));
      const prefix = Math.min(LEVEL0_BINS - WINDOW_SPAN, Math.max(0, selectBin(this.#hist0[r.vector]!, k).bin - WINDOW_BELOW));
      return { vector: r.vector, prefix, hist: new Uint32Array(WINDOW_SPAN * LEVEL1_BINS) };
    });
    await this.backend.absHistograms(models, base, this.#windows.map((w) => ({ model: w.vector, hist: w.hist, level: 1, prefix: w.prefix })));
  }

  /** After the whole first pass: true when every k-th magnitude's bin lies in its window (result() is then ready). */
  resolve(): boolean {
    const windows = this.#windows;
    this.#windows = undefined;
    if (!windows) return false;
    const bins = this.#requests.map((r) => selectBin(this.#hist0[r.vector]!, r.k).bin);
    if (bins.some((bin, i) => bin < windows[i]!.prefix || bin >= windows[i]!.prefix + WINDOW_SPAN)) {
      this.#requests = [];
      return false;
    }
    this.#bins = bins;
    bins.forEach((bin, i) => {
      const w = windows[i]!, at = (bin - w.prefix) * LEVEL1_BINS;
      this.#hist1[w.vector]!.set(bin, w.hist.subarray(at, at + LEVEL1_BINS));
    });
    return true;
  }

  /** How many NaN/±Infinity entries vector `vector`'s level-0 histogram has counted (its bins from NON_FINITE_BIN on). */
  nonFinite(vector: number): number {
    let count = 0;
    const h = this.#hist0[vector]!;
    for (let bin = NON_FINITE_BIN; bin < h.length; bin++) count += h[bin]!;
    return count;
  }

  /** Fixes the requests (after every observe0) and prepares the level-1 histograms they need. */
  select(requests: ReadonlyArray<{ vector: number; k: number }>): void {
    this.#requests = requests;
    this.#bins = requests.map((r) => selectBin(this.#hist0[r.vector]!, r.k).bin);
    requests.forEach((r, i) => {
      if (!this.#hist1[r.vector]!.has(this.#bins[i]!)) this.#hist1[r.vector]!.set(this.#bins[i]!, new Uint32Array(LEVEL1_BINS));
    });
  }

  async observe1(vector: number, x: Float32Array): Promise<void> {
    const requests: HistogramRequest[] = [];
    for (const [bin, hist] of this.#hist1[vector]!) requests.push({ model: 0, hist, level: 1, prefix: bin });
    await this.backend.absHistograms([x], undefined, requests);
  }

  /** observe1 of one chunk of every vector at once, δ = models − base (models without a base): one backend call. */
  async observe1All(models: Float32Array[], base: Float32Array | undefined): Promise<void> {
    const requests: HistogramRequest[] = [];
    this.#hist1.forEach((bins, t) => { for (const [bin, hist] of bins) requests.push({ model: t, hist, level: 1, prefix: bin }); });
    await this.backend.absHistograms(models, base, requests);
  }

  /** Per request: the k-th largest magnitude's bits, how many are strictly larger, and how many equal it. */
  result(): Array<{ kthBits: number; above: number; ties: number }> {
    return this.#requests.map((r, i) => selectThreshold(this.#hist0[r.vector]!, this.#hist1[r.vector]!.get(this.#bins[i]!)!, r.k));
  }
}

/**
 * How a top-k trim of a vector of `n` entries at `density` is expressed: 'all', 'none', or a
 * request for the k-th largest magnitude with `k`, then `trim(...)` from the selection.
 */
export type TrimPlan = { kind: 'all' } | { kind: 'none' } | { kind: 'select'; k: number; convention: TrimConvention };

export function trimPlan(n: number, density: number, convention: TrimConvention): TrimPlan {
  const m = Math.floor(density * n);
  if (density >= 1 || m >= n) return { kind: 'all' };
  if (convention === 'mergekit') return m === 0 ? { kind: 'none' } : { kind: 'select', k: m, convention };
  return { kind: 'select', k: m + 1, convention }; // the paper keeps ≥ the (m+1)-th largest
}

/** Top-k with exactly `k` kept (ties to the lowest indices) as a fused-kernel trim; k = 0 keeps none, k ≥ n all. */
export function exactPlan(n: number, k: number): TrimPlan {
  return k <= 0 ? { kind: 'none' } : k >= n ? { kind: 'all' } : { kind: 'select', k, convention: 'mergekit' };
}

/** The fused kernel's (thr, budget) for a plan, given the selection result of its request. */
export function trimOf(plan: TrimPlan, sel?: { kthBits: number; above: number }): Trim {
  if (plan.kind === 'all') return { thr: KEEP_ALL, budget: 0 };
  if (plan.kind === 'none') return { thr: KEEP_NONE, budget: 0 };
  if (plan.convention === 'mergekit') return { thr: sel!.kthBits, budget: plan.k - sel!.above };
  return { thr: sel!.kthBits - 1, budget: 0 };
}

/**
 * Several top-k trims over streamed vectors (slots: which vector, which plan), resolved to the fused
 * kernel's (thr, budget) pairs after two histogram passes. Plans may be fixed after pass 0 (a
 * model-wide trim learns its length there).
 */
export class TrimSet {
  readonly #select: MagnitudeSelect;
  #slots: ReadonlyArray<{ vector: number; plan: TrimPlan }> | undefined;
  #trims: Trim[] | undefined;
  #requests: Array<{ vector: number; k: number }> | undefined;
  #resolved = false;

  constructor(backend: Backend, needs: readonly boolean[], slots?: ReadonlyArray<{ vector: number; plan: TrimPlan }>) {
    this.#select = new MagnitudeSelect(backend, needs);
    this.#slots = slots;
  }

  /** Whether any slot needs the two histogram passes. */
  get needsPasses(): boolean {
    return this.#select.needs.some(Boolean);
  }

  setPlans(slots: ReadonlyArray<{ vector: number; plan: TrimPlan }>): void {
    this.#slots = slots;
  }

  observe0(vector: number, x: Float32Array): Promise<void> {
    return this.#select.observe0(vector, x);
  }

  async observe1(vector: number, x: Float32Array): Promise<void> {
    if (!this.#select.needs[vector]) return;
    this.#selectOnce();
    await this.#select.observe1(vector, x);
  }

  /**
   * observe0 of a chunk of every vector (δ = models − base), in one backend call, for the chunks
   * [offset, offset + length) of vectors of `n` entries streamed in order. Speculates on the
   * level-1 bins from the first chunk on; `needsLevel1` says after the last chunk whether
   * observe1 must still follow.
   */
  async observe0All(models: Float32Array[], base: Float32Array | undefined, offset: number, n: number): Promise<void> {
    await this.#select.observe0All(models, base);
    if (offset === 0 && this.#slots) {
      const requests = this.#slots.flatMap((s) => (s.plan.kind === 'select' ? [{ vector: s.vector, k: s.plan.k }] : []));
      if (requests.length > 0) await this.#select.speculate(requests, n, models, base);
    }
    if (offset + (models[0]?.length ?? 0) >= n && this.#select.resolve()) {
      this.#requests = this.#slots!.flatMap((s) => (s.plan.kind === 'select' ? [{ vector: s.vector, k: s.plan.k }] : []));
      this.#resolved = true;
    }
  }

  /** Whether the thresholds still need the level-1 pass (false once observe0All's speculation found them all). */
  get needsLevel1(): boolean {
    return !this.#resolved;
  }

  /** observe1 of a chunk of every vector (δ = models − base), in one backend call. */
  async observe1All(models: Float32Array[], base: Float32Array | undefined): Promise<void> {
    this.#selectOnce();
    await this.#select.observe1All(models, base);
  }

  /** Whether a level-0 histogram has counted a NaN or ±Infinity (in any vector that needs one). */
  sawNonFinite(): boolean {
    return this.#select.needs.some((need, t) => need && this.#select.nonFinite(t) > 0);
  }

  #selectOnce(): void {
    if (this.#requests !== undefined) return;
    this.#requests = this.#slots!.flatMap((s) => (s.plan.kind === 'select' ? [{ vector: s.vector, k: s.plan.k }] : []));
    this.#select.select(this.#requests);
  }

  /** The trims, one per slot. */
  trims(): Trim[] {
    if (!this.#trims) {
      const selected = this.#requests ? this.#select.result() : [];
      let r = 0;
      this.#trims = this.#slots!.map((s) => trimOf(s.plan, s.plan.kind === 'select' ? selected[r++] : undefined));
    }
    return this.#trims;
  }
}

/** The (thr, budget) arrays of some trims, budgets fresh (each pass over a tensor starts them anew). */
export function trimArrays(trims: readonly Trim[]): { thr: Int32Array; budget: Float64Array } {
  return { thr: Int32Array.from(trims, (t) => t.thr), budget: Float64Array.from(trims, (t) => t.budget) };
}
