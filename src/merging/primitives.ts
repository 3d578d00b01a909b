// mk.primitives: the streaming building blocks of every model-merging method, on the context's
// backend, for users who write their own methods (and for the tests of each backend). Arguments
// are checked here, once; the semantics are those of src/reference/merge-primitives.ts.
import type { Backend } from '../backends.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import { float32, integer, oneOf, onlyKeys, options as checkOptions } from '../validate.ts';
import { LEVEL0_BINS, LEVEL1_BINS, type HistogramRequest, type TiesMergeCounts, type TiesMergeOptions } from '../reference/merge-primitives.ts';

export type { HistogramRequest, TiesMergeCounts, TiesMergeOptions };

const VOTES = ['sum', 'count', 'none'] as const;
const MERGES = ['sum', 'mean', 'normalize', 'max'] as const;
const OUTPUTS = ['merged', 'sign', 'none'] as const;

/** A histogram argument: a Uint32Array of the level's bins (level 1: span × 32768) and a level-0 bin as prefix (level 1: the first of span bins). */
function checkHistogram(at: string, hist: unknown, level: unknown, prefix: unknown): void {
  if (level !== 0 && level !== 1) throw new MergeKernelsError('INVALID_OPTION', `${at}level: expected 0 or 1, got ${describe(level)}`, `${at}level`);
  const ok = hist instanceof Uint32Array && (level === 0 ? hist.length === LEVEL0_BINS : hist.length > 0 && hist.length % LEVEL1_BINS === 0);
  if (!ok) {
    const expected = level === 0 ? `${LEVEL0_BINS} bins` : `${LEVEL1_BINS} bins (or a multiple, for consecutive level-0 bins)`;
    throw new MergeKernelsError('INVALID_TYPE', `${at}hist: expected a Uint32Array of ${expected} for level ${level}, got ${describe(hist)}${hist instanceof Uint32Array ? ` of ${hist.length}` : ''}`, `${at}hist`);
  }
  const span = level === 0 ? 1 : (hist as Uint32Array).length / LEVEL1_BINS;
  integer(`${at}prefix`, prefix, 0, LEVEL0_BINS - span);
}

export class MergePrimitives {
  readonly #backend: () => Backend;

  /** @internal via mk.primitives */
  constructor(backend: () => Backend) {
    this.#backend = backend;
  }

  /**
   * Accumulates the radix-select histogram of |x| into `hist`: level 0 has 65536 bins (the top
   * 16 bits of |x|'s float bits; bins ≥ 0xff00 count ±Inf/NaN), level 1 has 32768 bins (the low
   * 15 bits) for the entries whose level-0 bin is `prefix` (span × 32768 bins for the span
   * consecutive level-0 bins from `prefix`). With `base` (the length of x), the
   * histogram is that of the task vector |f32(x − base)|.
   */
  async absHistogram(x: Float32Array, hist: Uint32Array, level: 0 | 1, prefix = 0, base?: Float32Array): Promise<void> {
    const backend = this.#backend();
    float32('x', x);
    if (base !== undefined) float32('base', base, x.length);
    checkHistogram('', hist, level, prefix);
    await backend.absHistograms([x], base, [{ model: 0, hist, level, prefix }]);
  }

  /**
   * Several absHistogram requests over one chunk of T models at once (a backend reads the chunk
   * once): request r counts |models[r.model]| (|f32(models[r.model] − base)| with `base`) into r.hist.
   */
  async absHistograms(models: Float32Array[], base: Float32Array | undefined, requests: HistogramRequest[]): Promise<void> {
    const backend = this.#backend();
    if (!Array.isArray(models) || models.length === 0) throw new MergeKernelsError('INVALID_TYPE', `models: expected a non-empty array of Float32Array, got ${describe(models)}`, 'models');
    models.forEach((m, t) => float32(`models[${t}]`, m, models[0]!.length));
    if (base !== undefined) float32('base', base, models[0]!.length);
    if (!Array.isArray(requests)) throw new MergeKernelsError('INVALID_TYPE', `requests: expected an array of { model, hist, level, prefix }, got ${describe(requests)}`, 'requests');
    const checked = requests.map((r, i) => {
      if (r === null || typeof r !== 'object') throw new MergeKernelsError('INVALID_TYPE', `requests[${i}]: expected { model, hist, level, prefix }, got ${describe(r)}`, `requests[${i}]`);
      onlyKeys(`requests[${i}]`, r, ['model', 'hist', 'level', 'prefix']);
      integer(`requests[${i}].model`, r.model, 0, models.length - 1);
      checkHistogram(`requests[${i}].`, r.hist, r.level, r.prefix);
      return { model: r.model, hist: r.hist, level: r.level, prefix: r.prefix };
    });
    await backend.absHistograms(models, base, checked);
  }

  /**
   * One fused pass of TIES' trim, elect sign and disjoint merge over a chunk of task vectors
   * (`models[t]` = δ_t, all the same length as `out`; with `options.subtractBase`, fine-tuned
   * tensors from which `base` is subtracted). `tieBudget` is updated in place. Returns, for every
   * output, `votes` (entries whose vote total is > 0 minus those < 0: the sign of its sum over a
   * whole vector is the TIES paper's majority sign) and `undecided` (entries whose total is 0 or
   * NaN while some value agrees with zeroSign: those whose merged value may depend on zeroSign);
   * both 0 without a vote or with `options.counts: false` (which lets a backend skip counting).
   */
  async tiesMerge(
    models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array,
    base: Float32Array | undefined, out: Float32Array, options: TiesMergeOptions,
  ): Promise<TiesMergeCounts> {
    const backend = this.#backend();
    float32('out', out);
    if (!Array.isArray(models) || models.length === 0) throw new MergeKernelsError('INVALID_TYPE', `models: expected a non-empty array of Float32Array, got ${describe(models)}`, 'models');
    models.forEach((m, t) => float32(`models[${t}]`, m, out.length));
    const T = models.length;
    float32('weights', weights, T);
    for (let t = 0; t < T; t++) {
      if (!Number.isFinite(weights[t])) throw new MergeKernelsError('NON_FINITE', `weights: expected finite values, got ${weights[t]} at ${t}`, 'weights');
    }
    if (!(thr instanceof Int32Array) || thr.length !== T) throw new MergeKernelsError('INVALID_TYPE', `thr: expected an Int32Array of ${T} thresholds (one per model), got ${describe(thr)}`, 'thr');
    if (!(tieBudget instanceof Float64Array) || tieBudget.length !== T) throw new MergeKernelsError('INVALID_TYPE', `tieBudget: expected a Float64Array of ${T} counts (one per model), got ${describe(tieBudget)}`, 'tieBudget');
    for (let t = 0; t < T; t++) {
      integer(`thr[${t}]`, thr[t], -1, 0x7fffffff);
      integer(`tieBudget[${t}]`, tieBudget[t], 0, Number.MAX_SAFE_INTEGER);
    }
    if (base !== undefined) float32('base', base, out.length);
    checkOptions('options', options, ['vote', 'zeroSign', 'merge', 'lambda', 'output', 'subtractBase', 'counts'], true);
    const o: TiesMergeOptions = {
      vote: oneOf('vote', options.vote, VOTES),
      zeroSign: options.zeroSign === -1 ? -1 : options.zeroSign === 1 ? 1 : (() => { throw new MergeKernelsError('INVALID_OPTION', `zeroSign: expected 1 or -1, got ${describe(options.zeroSign)}`, 'zeroSign'); })(),
      merge: oneOf('merge', options.merge, MERGES),
      lambda: options.lambda,
      output: oneOf('output', options.output ?? 'merged', OUTPUTS),
      subtractBase: options.subtractBase ?? false,
      counts: options.counts ?? true,
    };
    if (typeof o.subtractBase !== 'boolean') throw new MergeKernelsError('INVALID_OPTION', `subtractBase: expected a boolean, got ${describe(o.subtractBase)}`, 'subtractBase');
    if (typeof o.counts !== 'boolean') throw new MergeKernelsError('INVALID_OPTION', `counts: expected a boolean, got ${describe(o.counts)}`, 'counts');
    if (typeof o.lambda !== 'number' || !Number.isFinite(o.lambda)) throw new MergeKernelsError('INVALID_OPTION', `lambda: expected a finite number, got ${describe(o.lambda)}`, 'lambda');
    return backend.tiesMerge(models, weights, thr, tieBudget, base, out, o);
  }

  /**
   * DARE's drop with a counter-based RNG: keeps x[i] with probability `p` (decided by
   * `(key, offset + i)` alone), writes kept values × `scale` into `out`, and returns
   * [Σ|x|, Σ|kept x|] for L1-norm-matching rescale.
   */
  async dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array): Promise<[number, number]> {
    const backend = this.#backend();
    float32('x', x);
    float32('out', out, x.length);
    integer('offset', offset, 0, Number.MAX_SAFE_INTEGER - x.length);
    integer('key', key, 0, 0xffffffff);
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new MergeKernelsError('INVALID_OPTION', `p: expected a keep probability in [0, 1], got ${describe(p)}`, 'p');
    if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new MergeKernelsError('INVALID_OPTION', `scale: expected a finite number, got ${describe(scale)}`, 'scale');
    return backend.dropAndRescale(x, offset, key, p, scale, out);
  }

  /** The index of the first NaN or ±Infinity in `x`, or -1. */
  async findNonFinite(x: Float32Array): Promise<number> {
    const backend = this.#backend();
    float32('x', x);
    return backend.findNonFinite(x);
  }
}
