// The streaming primitives every model-merging method is built from, in plain TypeScript. The
// wasm (assembly/merge-primitives.ts) and WebGPU (kernels/*.wgsl) kernels must equal these:
// bit-exactly for the histogram, the masks and the elected signs, within 1e-6 relative (float32
// rounding) for merged values. All arithmetic is float32 (Math.fround after every operation).
//
// Methods call them chunk by chunk (src/merging/): a chunk is a contiguous slice of one tensor,
// `offset` its first flat index in the tensor, so results do not depend on the chunk size.
//
// TIES (Yadav et al. 2023, §3): trim = keep the top-k entries by magnitude, elect = the sign of
// the (weighted) sum or count, disjoint merge = combine only entries agreeing with that sign.
// DARE (Yu et al. 2024, §3): drop each entry with probability 1 − p, rescale the survivors.

const f = Math.fround;
const bitsView = new DataView(new ArrayBuffer(4));

/** The IEEE-754 bits of |v| (sign cleared), as an integer in [0, 0x7fffffff]. Order-preserving for |v|. */
export function absBits(v: number): number {
  bitsView.setFloat32(0, v, true);
  return bitsView.getUint32(0, true) & 0x7fffffff;
}

/** The float32 whose bits are `bits`. */
export function fromBits(bits: number): number {
  bitsView.setUint32(0, bits >>> 0, true);
  return bitsView.getFloat32(0, true);
}

/** Level-0 histogram: 65536 bins over the top 16 bits of |v|'s bits. Bins ≥ NON_FINITE_BIN hold ±Inf and NaN. */
export const LEVEL0_BINS = 65536;
/** Level-1 histogram: 32768 bins over the low 15 bits, for the entries of one level-0 bin (a multiple of it for several consecutive bins). */
export const LEVEL1_BINS = 32768;
/** The first level-0 bin of non-finite values (0x7f800000 >>> 15). */
export const NON_FINITE_BIN = 0xff00;

/**
 * Radix-select histogram of |x| over its float bits, accumulated into `hist`.
 * Level 0: `hist[absBits >>> 15]++` for every entry. Level 1: for the entries whose
 * `absBits >>> 15 === prefix`, `hist[absBits & 0x7fff]++`. Two passes give the exact k-th
 * largest magnitude in linear time (selectThreshold). A level-1 `hist` of span·32768 bins counts
 * the span consecutive level-0 bins from `prefix` side by side (`hist[absBits − prefix·32768]++`),
 * so that one pass can cover the bins where the k-th magnitude is expected. With `base`, the
 * histogram is that of the task vector |f32(x − base)|.
 */
export function absHistogram(x: Float32Array, hist: Uint32Array, level: 0 | 1, prefix: number, base?: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const a = absBits(base ? f(x[i]! - base[i]!) : x[i]!);
    if (level === 0) hist[a >>> 15]!++;
    else if (a >>> 15 >= prefix && (a >>> 15) - prefix < hist.length / LEVEL1_BINS) hist[a - prefix * LEVEL1_BINS]!++;
  }
}

/** One histogram to accumulate over a chunk of several models: which model, into which histogram, at which level. */
export interface HistogramRequest {
  model: number;
  hist: Uint32Array;
  level: 0 | 1;
  /** The level-0 bin whose entries a level-1 histogram counts (ignored at level 0). */
  prefix: number;
}

/**
 * Several histograms over one chunk of T models in one call (one read of the chunk when a backend
 * fuses them): for each request, absHistogram of models[r.model] (minus `base` when given).
 */
export function absHistograms(models: Float32Array[], base: Float32Array | undefined, requests: readonly HistogramRequest[]): void {
  for (const r of requests) absHistogram(models[r.model]!, r.hist, r.level, r.prefix, base);
}

/** Where the k-th largest magnitude lies after a level-0 pass: its bin, and how many entries lie in higher bins. */
export function selectBin(hist0: Uint32Array, k: number): { bin: number; above: number } {
  let above = 0;
  for (let bin = LEVEL0_BINS - 1; bin >= 0; bin--) {
    const c = hist0[bin]!;
    if (above + c >= k) return { bin, above };
    above += c;
  }
  throw new RangeError(`selectBin: k = ${k} exceeds the ${above} counted entries`);
}

/**
 * The exact k-th largest magnitude (1 ≤ k ≤ n) from both levels: `kthBits` (absBits of that
 * value), `above` (entries strictly larger) and `ties` (entries equal to it, ≥ 1).
 */
export function selectThreshold(hist0: Uint32Array, hist1: Uint32Array, k: number): { kthBits: number; above: number; ties: number } {
  const { bin, above: aboveBin } = selectBin(hist0, k);
  let above = aboveBin;
  for (let low = LEVEL1_BINS - 1; low >= 0; low--) {
    const c = hist1[low]!;
    if (above + c >= k) return { kthBits: (bin << 15) | low, above, ties: c };
    above += c;
  }
  throw new RangeError(`selectThreshold: level-1 histogram of bin ${bin} does not hold the k-th entry (k = ${k})`);
}

export interface TiesMergeOptions {
  /** Sign election: 'sum' = sign of Σ w·δ (TIES), 'count' = sign of Σ sign(w·δ), 'none' = no election (every kept entry counts). */
  vote: 'sum' | 'count' | 'none';
  /** The elected sign where the vote total is exactly 0: +1 in mergekit (`>= 0`); the TIES paper's code uses the sign of Σ of all elected signs (a statistic of the whole vector). */
  zeroSign: 1 | -1;
  /**
   * Disjoint merge of the agreeing entries D = w·δ:
   * 'sum' Σ D; 'mean' Σ D / max(1, #non-zero agreeing) (the TIES paper);
   * 'normalize' Σ D / Σ w over agreeing entries (mergekit; a zero divisor becomes 1, and without a vote Σ w over all models, |Σ w| < 1e-8 → 1);
   * 'max' the agreeing D of largest magnitude (first model on ties), i.e. elected sign × max |D| (the TIES paper code's 'max').
   */
  merge: 'sum' | 'mean' | 'normalize' | 'max';
  /** Scale of the merged task vector: out = base + lambda · mix. */
  lambda: number;
  /** 'merged' writes base + lambda·mix; 'sign' writes the elected sign (±1) instead, for mk.electSign; 'none' writes nothing (only the returned vote count is wanted). */
  output: 'merged' | 'sign' | 'none';
  /**
   * Whether `models` are fine-tuned tensors rather than task vectors: then δ_t = f32(models[t] − base)
   * (models[t] itself without a base), so callers need not form the task vectors. Default false.
   */
  subtractBase?: boolean;
  /** Whether to count votes and undecided entries (TiesMergeCounts). Default true; with false both are 0 and a backend may skip the counting. */
  counts?: boolean;
}

/** What one tiesMerge call counted over its entries (both 0 without a vote). */
export interface TiesMergeCounts {
  /**
   * Entries whose vote total is > 0 minus those whose total is < 0: the sign of its sum over a
   * whole vector is the TIES paper's majority sign (the paper's zero sign).
   */
  votes: number;
  /**
   * Entries whose vote total is 0 or NaN (so zeroSign elected them) while some D_t agrees with
   * zeroSign: the entries whose merged value may depend on zeroSign. Without a NaN among the D_t
   * these are exactly such entries: a total of exactly 0 with a non-zero D_t has D_t of both signs,
   * so some agree whichever sign is elected, and a total of ±Inf + ∓Inf likewise; where nothing
   * agrees with zeroSign every D_t is 0 and the merged value is base + λ·0 under either sign.
   * (With a NaN D_t the total is NaN and an entry whose other values all disagree with zeroSign
   * may still change with it; finite task vectors and weights never give a NaN D_t.) Elected
   * signs (output 'sign') depend on zeroSign wherever the total is 0 or NaN.
   */
  undecided: number;
}

/**
 * One fused pass of trim + elect sign + disjoint merge over a chunk of T task vectors.
 *
 * Trim: entry i of model t is kept iff absBits(δ_t[i]) > thr[t], or equals thr[t] while
 * tieBudget[t] > 0 — each such tie consumes one unit, in increasing index order, so exactly
 * `above + budget` entries survive a tensor streamed in order (mergekit's exact-k convention with
 * ties resolved to the lowest indices). thr[t] = -1 keeps everything; thr[t] = kthBits - 1 with
 * budget 0 keeps every entry ≥ the k-th magnitude (the TIES paper's convention). `tieBudget` is
 * updated in place so the next chunk continues where this one stopped.
 *
 * Then with D_t = f32(w_t · kept_t): elected sign s from the vote, agreeing = sign(D_t) == s
 * (zeros never agree), and out[i] = f32(base[i] + lambda · mix) per `o.merge` (base 0 when absent).
 * Sums run over t = 0..T-1 in order, in float32.
 *
 * Returns the vote count and the undecided entries (TiesMergeCounts), for every output. A caller
 * that needs the paper's zero sign (the majority over a whole vector) can guess it, merge, and
 * redo only the chunks with undecided entries if the guess was wrong.
 */
export function tiesMerge(
  models: Float32Array[], weights: Float32Array, thr: Int32Array, tieBudget: Float64Array,
  base: Float32Array | undefined, out: Float32Array, o: TiesMergeOptions,
): TiesMergeCounts {
  const T = models.length;
  const n = out.length;
  // One weight, threshold and budget per model, exactly: the kernels rely on it.
  if (weights.length !== T || thr.length !== T || tieBudget.length !== T) {
    throw new RangeError(`tiesMerge: ${T} models but ${weights.length} weights, ${thr.length} thresholds, ${tieBudget.length} tie budgets`);
  }
  const d = new Float32Array(T);
  const subtract = o.subtractBase === true && base !== undefined;
  let votes = 0, undecided = 0;
  for (let i = 0; i < n; i++) {
    // Trim, weight.
    for (let t = 0; t < T; t++) {
      const v = subtract ? f(models[t]![i]! - base[i]!) : models[t]![i]!;
      const a = absBits(v);
      let keep = a > thr[t]!;
      if (!keep && a === thr[t]! && tieBudget[t]! > 0) { keep = true; tieBudget[t]!--; }
      d[t] = keep ? f(weights[t]! * v) : 0;
    }
    // Elect.
    let sign = 0;
    if (o.vote !== 'none') {
      let total = 0;
      for (let t = 0; t < T; t++) total = f(total + (o.vote === 'sum' ? d[t]! : Math.sign(d[t]!)));
      sign = total > 0 ? 1 : total < 0 ? -1 : o.zeroSign;
      votes += total > 0 ? 1 : total < 0 ? -1 : 0;
      if (!(total > 0 || total < 0) && d.some((v) => Math.sign(v) === o.zeroSign)) undecided++;
    }
    if (o.output === 'none') continue;
    if (o.output === 'sign') { out[i] = sign; continue; }
    // Disjoint merge.
    let sum = 0, wsum = 0, count = 0, peak = 0;
    for (let t = 0; t < T; t++) {
      const v = d[t]!;
      const agrees = o.vote === 'none' ? true : Math.sign(v) === sign;
      if (!agrees) continue;
      sum = f(sum + v);
      wsum = f(wsum + weights[t]!);
      if (v !== 0) count++;
      if (Math.abs(v) > Math.abs(peak)) peak = v;
    }
    let mix: number;
    switch (o.merge) {
      case 'sum': mix = sum; break;
      case 'mean': mix = f(sum / Math.max(1, count)); break;
      case 'normalize': {
        let div = wsum;
        if (o.vote === 'none' ? Math.abs(div) < 1e-8 : div === 0) div = 1;
        mix = f(sum / div);
        break;
      }
      case 'max': mix = peak; break;
    }
    out[i] = f((base ? base[i]! : 0) + f(o.lambda * mix));
  }
  return o.counts === false ? { votes: 0, undecided: 0 } : { votes, undecided };
}

/** murmur3's 32-bit finaliser: a bijective mix of a u32. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

/** The random stream of one (seed, tensor name): same seed and name → same masks everywhere. */
export function streamKey(seed: number, name: string): number {
  return fmix32((seed >>> 0) ^ fmix32(fnv1a32(name)));
}

/**
 * A counter-based uniform draw for flat index `i` (0 ≤ i < 2^53) of a stream: 24 random bits as an
 * integer in [0, 2^24). An entry is kept with probability p iff `uniform24(key, i) < p · 2^24`
 * (exact in float32 and float64 alike), so masks do not depend on backend, chunking or threads.
 */
export function uniform24(key: number, i: number): number {
  const lo = i % 4294967296, hi = Math.floor(i / 4294967296);
  const h = fmix32(((fmix32((lo ^ key) >>> 0) + hi + 0x9e3779b9) >>> 0));
  return h >>> 8;
}

/**
 * DARE's drop: keeps x[i] iff uniform24(key, offset + i) < p · 2^24 and writes kept values times
 * `scale` (1/p for the paper's rescale, 1 without rescale or for L1 matching, whose factor is known
 * only once the whole tensor was seen). Returns [Σ|x|, Σ|kept x|] (before scaling, float64) for
 * mergekit's L1-norm-matching rescale.
 */
export function dropAndRescale(x: Float32Array, offset: number, key: number, p: number, scale: number, out: Float32Array): [number, number] {
  const cut = f(p) * 16777216;
  let sumAbs = 0, sumKept = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    sumAbs += Math.abs(v);
    if (uniform24(key, offset + i) < cut) {
      sumKept += Math.abs(v);
      out[i] = f(v * scale);
    } else {
      out[i] = 0;
    }
  }
  return [sumAbs, sumKept];
}

/** The flat index of the first NaN or ±Infinity in `x`, or -1. */
export function findNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
