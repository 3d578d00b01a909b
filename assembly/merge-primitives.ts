// The streaming model-merging primitives: TIES (Yadav et al. 2023, §3: trim, elect sign,
// disjoint merge) fused into one pass, the radix-select histogram that finds TIES' top-k
// magnitude, DARE's drop and rescale (Yu et al. 2024, §3) with a counter-based RNG, and a scan for
// non-finite values. The semantics are src/reference/merge-primitives.ts; these kernels equal it
// bit for bit: every float32 operation happens in the reference's order (models summed t = 0..T-1,
// no reassociation), and the products with float64 scales (lambda, DARE's 1/p) are taken in
// float64 and rounded once, as the reference does.

const ABS_BITS: i32 = 0x7fffffff;
const EXP_BITS: i32 = 0x7f800000;

/** tiesFast's base and λ as constants: any (read at run time), none and λ = 1, subtracted and λ = 1. */
const IO_ANY = 0;
const IO_PLAIN = 1;
const IO_SUBTRACT = 2;
const VOTE_SUM = 0;
const VOTE_COUNT = 1;
const VOTE_NONE = 2;
const MERGE_SUM = 0;
const MERGE_MEAN = 1;
const MERGE_NORMALIZE = 2;
const MERGE_MAX = 3;
const OUTPUT_SIGN = 1;
const OUTPUT_NONE = 2;
/** A flag in tiesMerge's `output`: the models are fine-tuned weights, to subtract the base from. */
const OUTPUT_SUBTRACT_BASE = 4;
/** A flag in tiesMerge's `output`: count votes and undecided entries. */
const OUTPUT_COUNT = 8;

/** f32(1e-8): the largest float32 below 1e-8, so `|w| <= NORMALIZE_EPS` in float32 is `|w| < 1e-8` in float64. */
const NORMALIZE_EPS: f32 = 9.99999993922529e-9;

// @ts-ignore: decorator
@inline function bump(hist: usize, bin: i32): void {
  const p = hist + (<usize>bin << 2);
  store<u32>(p, load<u32>(p) + 1);
}

/**
 * Adds the radix-select histogram of |x| (n floats) into `hist` (u32 bins). Level 0: bin =
 * absBits >>> 15 (65536 bins). Level 1: bin = absBits − (prefix << 15) (span · 32768 bins), for
 * entries whose level-0 bin lies in [prefix, prefix + span): the low 15 bits of `span`
 * consecutive level-0 bins, side by side.
 */
export function absHistogram(x: usize, n: i32, hist: usize, level: i32, prefix: i32, span: i32): void {
  const absMask = i32x4.splat(ABS_BITS);
  let i = 0;
  if (level == 0) {
    for (; i + 4 <= n; i += 4) {
      const bins = i32x4.shr_u(v128.and(v128.load(x + (<usize>i << 2)), absMask), 15);
      bump(hist, i32x4.extract_lane(bins, 0));
      bump(hist, i32x4.extract_lane(bins, 1));
      bump(hist, i32x4.extract_lane(bins, 2));
      bump(hist, i32x4.extract_lane(bins, 3));
    }
    for (; i < n; i++) bump(hist, (load<i32>(x + (<usize>i << 2)) & ABS_BITS) >>> 15);
    return;
  }
  // Level 1: most entries lie outside the prefix bins, so test four at a time and skip. An
  // unsigned a − start < span·2^15 is "inside the window".
  const start = prefix << 15;
  const size = span << 15;
  const startV = i32x4.splat(start);
  // Biased by 2^31 so that the signed lane compare acts as an unsigned one.
  const limitV = i32x4.splat(size ^ 0x80000000);
  const bias = i32x4.splat(0x80000000);
  for (; i + 4 <= n; i += 4) {
    const a = i32x4.sub(v128.and(v128.load(x + (<usize>i << 2)), absMask), startV);
    const hit = i32x4.lt_s(v128.xor(a, bias), limitV);
    if (!v128.any_true(hit)) continue;
    if (i32x4.extract_lane(hit, 0)) bump(hist, i32x4.extract_lane(a, 0));
    if (i32x4.extract_lane(hit, 1)) bump(hist, i32x4.extract_lane(a, 1));
    if (i32x4.extract_lane(hit, 2)) bump(hist, i32x4.extract_lane(a, 2));
    if (i32x4.extract_lane(hit, 3)) bump(hist, i32x4.extract_lane(a, 3));
  }
  for (; i < n; i++) {
    const a = (load<i32>(x + (<usize>i << 2)) & ABS_BITS) - start;
    if (<u32>a < <u32>size) bump(hist, a);
  }
}

/**
 * x[i] = x[i] - base[i] over n floats, in place: task vectors δ = f32(x − base) formed in wasm
 * memory, where the next kernel reads them while they are still in cache.
 */
export function subtractInPlace(x: usize, base: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    v128.store(x + off, f32x4.sub(v128.load(x + off), v128.load(base + off)));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(x + off, load<f32>(x + off) - load<f32>(base + off));
  }
}

/** Math.sign in float32, NaN for NaN: the vote 'count' term. */
// @ts-ignore: decorator
@inline function signOf(v: f32): f32 {
  return v > 0 ? 1 : v < 0 ? -1 : v != v ? NaN : 0;
}

/** Math.sign on four lanes, NaN for NaN. */
// @ts-ignore: decorator
@inline function signOf4(d: v128, zero: v128, one: v128, minusOne: v128, nan: v128): v128 {
  const s = v128.or(v128.and(f32x4.gt(d, zero), one), v128.and(f32x4.lt(d, zero), minusOne));
  return v128.or(s, v128.and(f32x4.ne(d, d), nan));
}

/** f32(lambda · m) with lambda a float64: the product rounded once, like the reference. */
// @ts-ignore: decorator
@inline function scaleScalar(m: f32, lambda: f64): f32 {
  return <f32>(lambda * <f64>m);
}

/** f32(s · v) lane-wise for a float64 `s` (splatted in s2): two float64 products, each rounded once to float32. */
// @ts-ignore: decorator
@inline function scaleF64(v: v128, s2: v128): v128 {
  const lo = f64x2.mul(f64x2.promote_low_f32x4(v), s2);
  const hi = f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3)), s2);
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** Whether any model still has tie budget (only then can an entry equal to thr be kept). */
function anyBudgetLeft(budget: usize, T: i32): bool {
  for (let t = 0; t < T; t++) if (load<f64>(budget + (<usize>t << 3)) > 0) return true;
  return false;
}

/**
 * Entry i, scalar, exactly as the reference: used where a tie might consume budget (the order of
 * consumption is the index order) and for the tail. `d` holds T floats of scratch. Adds the sign
 * of the vote total and whether the entry is undecided to `counts` (i32 votes, undecided).
 */
function tiesEntry(
  models: usize, T: i32, weights: usize, thr: usize, budget: usize, base: usize, out: usize, i: i32,
  vote: i32, merge: i32, output: i32, zeroSign: f32, lambda: f64, d: usize, counts: usize,
): void {
  const off = <usize>i << 2;
  let total: f32 = 0;
  for (let t = 0; t < T; t++) {
    const v = load<f32>(<usize>load<u32>(models + (<usize>t << 2)) + off);
    const a = reinterpret<i32>(v) & ABS_BITS;
    const th = load<i32>(thr + (<usize>t << 2));
    let keep = a > th;
    if (!keep && a == th) {
      const b = budget + (<usize>t << 3);
      const left = load<f64>(b);
      if (left > 0) { keep = true; store<f64>(b, left - 1); }
    }
    const dt: f32 = keep ? load<f32>(weights + (<usize>t << 2)) * v : 0;
    store<f32>(d + (<usize>t << 2), dt);
    if (vote == VOTE_SUM) total += dt;
    else if (vote == VOTE_COUNT) total += signOf(dt);
  }
  let sign: f32 = 0;
  if (vote != VOTE_NONE) {
    sign = total > 0 ? 1 : total < 0 ? -1 : zeroSign;
    store<i32>(counts, load<i32>(counts) + (total > 0 ? 1 : total < 0 ? -1 : 0));
    if (!(total > 0 || total < 0)) {
      let agrees = false;
      for (let t = 0; t < T; t++) if (load<f32>(d + (<usize>t << 2)) * zeroSign > 0) agrees = true;
      if (agrees) store<i32>(counts, load<i32>(counts, 4) + 1, 4);
    }
  }
  if (output == OUTPUT_NONE) return;
  if (output == OUTPUT_SIGN) { store<f32>(out + off, sign); return; }
  let sum: f32 = 0, wsum: f32 = 0, peak: f32 = 0;
  let count = 0;
  for (let t = 0; t < T; t++) {
    const v = load<f32>(d + (<usize>t << 2));
    // For sign ±1, sign(v) == sign  ⇔  v·sign > 0 (false for zeros and NaN).
    if (vote != VOTE_NONE && !(v * sign > 0)) continue;
    sum += v;
    wsum += load<f32>(weights + (<usize>t << 2));
    if (v != 0) count++;
    if (abs(v) > abs(peak)) peak = v;
  }
  let mix: f32 = sum;
  if (merge == MERGE_MEAN) mix = sum / <f32>max(1, count);
  else if (merge == MERGE_NORMALIZE) {
    const zero = vote == VOTE_NONE ? abs(wsum) <= NORMALIZE_EPS : wsum == 0;
    mix = sum / (zero ? <f32>1 : wsum);
  } else if (merge == MERGE_MAX) mix = peak;
  const b: f32 = base ? load<f32>(base + off) : 0;
  store<f32>(out + off, b + scaleScalar(mix, lambda));
}

/** Lane sum of four i32. */
// @ts-ignore: decorator
@inline function laneSum(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

/** One model's D on four lanes: f32(w · x) where |x| > thr (compared as bits), else +0. */
// @ts-ignore: decorator
@inline function trim4(unit: bool, x: v128, th: v128, w: v128, absMask: v128): v128 {
  // Unit weights: f32(1 · x) = x (a NaN's payload aside, and no output carries a D's NaN).
  // Masked after the product, so that a dropped entry is +0 whatever the weight's sign.
  return v128.and(unit ? x : f32x4.mul(x, w), i32x4.gt_s(v128.and(x, absMask), th));
}

/** One model's term of the vote total: D itself ('sum') or its sign ('count'). */
// @ts-ignore: decorator
@inline function voteTerm4(vote: i32, d: v128, one: v128, minusOne: v128, nan: v128): v128 {
  if (vote == VOTE_SUM) return d;
  return signOf4(d, f32x4.splat(0), one, minusOne, nan);
}

/**
 * Lanes where y agrees with the zero sign (y > 0 for +1, y < 0 for -1; never ±0 or NaN). y is D
 * with its sign bit flipped in the lanes whose elected sign is not the zero sign, so this is
 * "D agrees with the elected sign" in every lane.
 */
// @ts-ignore: decorator
@inline function agreeFlipped(zsNeg: bool, y: v128): v128 {
  return zsNeg ? f32x4.lt(y, f32x4.splat(0)) : f32x4.gt(y, f32x4.splat(0));
}

/** The flipped merge's accumulator after one more model (see tiesFast). */
// @ts-ignore: decorator
@inline function accumulateFlipped(merge: i32, zsNeg: bool, acc: v128, a: v128, s: v128, w: v128): v128 {
  if (merge == MERGE_MEAN) return i32x4.add(acc, a);
  if (merge == MERGE_NORMALIZE) return f32x4.add(acc, v128.and(w, a));
  // Agreeing entries share a sign, so the largest magnitude is the max (+) or min (−); equal
  // magnitudes are equal values, so "the first on ties" needs nothing. Non-agreeing s are +0.
  if (merge == MERGE_MAX) return zsNeg ? f32x4.pmin(acc, s) : f32x4.pmax(acc, s);
  return acc;
}

/** The merge without a vote: every kept entry counts, sums start at +0 as in the reference. */
// @ts-ignore: decorator
@inline function mergeAll(T: i32, merge: i32, d0: v128, d1: v128, d2: v128, d3: v128, oneI: v128, div: v128): v128 {
  const zero = f32x4.splat(0);
  let sum = f32x4.add(zero, d0);
  // 'mean': count of non-zero D (NaN counts); 'max': the D of largest magnitude, first on ties.
  let acc = merge == MERGE_MEAN ? f32x4.ne(d0, zero) : merge == MERGE_MAX ? v128.and(d0, f32x4.gt(f32x4.abs(d0), zero)) : zero;
  if (T > 1) { sum = f32x4.add(sum, d1); acc = accumulateAll(merge, acc, d1); }
  if (T > 2) { sum = f32x4.add(sum, d2); acc = accumulateAll(merge, acc, d2); }
  if (T > 3) { sum = f32x4.add(sum, d3); acc = accumulateAll(merge, acc, d3); }
  if (merge == MERGE_MEAN) return f32x4.div(sum, f32x4.convert_i32x4_s(i32x4.max_s(i32x4.neg(acc), oneI)));
  // Σw over every model is one divisor per call (1 where |Σw| < 1e-8).
  if (merge == MERGE_NORMALIZE) return f32x4.div(sum, div);
  if (merge == MERGE_MAX) return acc;
  return sum;
}

/** mergeAll's accumulator after one more model. */
// @ts-ignore: decorator
@inline function accumulateAll(merge: i32, acc: v128, d: v128): v128 {
  if (merge == MERGE_MEAN) return i32x4.add(acc, f32x4.ne(d, f32x4.splat(0)));
  if (merge == MERGE_MAX) return v128.bitselect(d, acc, f32x4.gt(f32x4.abs(d), f32x4.abs(acc)));
  return acc;
}

/**
 * The hot path: T = 1..4 models and no tie budget left, so keeping an entry is |x| > thr alone.
 * `T, vote, merge, output`, the zero sign's sign `zsNeg`, `unit` (every weight exactly 1) and `io`
 * (base and λ, see IO_ANY) are constants at each call site, so the options fold away and each
 * model's four entries stay in registers. With `subtract`, δ = f32(x − base) is formed here from
 * the fine-tuned models. Results equal the reference bit for bit, signed zeros included.
 */
// @ts-ignore: decorator
@inline function tiesFast(T: i32, vote: i32, merge: i32, output: i32, zsNeg: bool, unit: bool, io: i32, a: FastArgs): void {
  const models = a.models, weights = a.weights, thr = a.thr, budget = a.budget, base = a.base, out = a.out, scratch = a.scratch;
  const start = a.start, n = a.n, zeroSign = a.zeroSign, subtract = a.subtract, lambda = a.lambda;
  // Constants go through memory: V8 would otherwise rebuild each v128.const or splat in every
  // iteration (a few instructions each); loaded once, they stay in registers (or are spilled and
  // reloaded, one load).
  v128.store(scratch, i32x4.splat(ABS_BITS));
  v128.store(scratch, i32x4.splat(0x80000000), 16);
  v128.store(scratch, f32x4.splat(1), 32);
  v128.store(scratch, f32x4.splat(-1), 48);
  v128.store(scratch, f32x4.splat(NaN), 64);
  v128.store(scratch, f32x4.splat(zeroSign), 80);
  v128.store(scratch, i32x4.splat(1), 96);
  for (let t = 0; t < T; t++) {
    v128.store(scratch + 128 + (<usize>t << 4), i32x4.splat(load<i32>(thr + (<usize>t << 2))));
    v128.store(scratch + 192 + (<usize>t << 4), f32x4.splat(load<f32>(weights + (<usize>t << 2))));
  }
  const zero = f32x4.splat(0);
  const absMask = v128.load(scratch), signBit = v128.load(scratch, 16);
  const one = v128.load(scratch, 32), minusOne = v128.load(scratch, 48), nan = v128.load(scratch, 64);
  const zs = v128.load(scratch, 80), oneI = v128.load(scratch, 96);
  const th0 = v128.load(scratch, 128);
  const th1 = T > 1 ? v128.load(scratch, 144) : zero;
  const th2 = T > 2 ? v128.load(scratch, 160) : zero;
  const th3 = T > 3 ? v128.load(scratch, 176) : zero;
  const w0 = v128.load(scratch, 192);
  const w1 = T > 1 ? v128.load(scratch, 208) : zero;
  const w2 = T > 2 ? v128.load(scratch, 224) : zero;
  const w3 = T > 3 ? v128.load(scratch, 240) : zero;
  const p0 = <usize>load<u32>(models);
  const p1 = T > 1 ? <usize>load<u32>(models, 4) : 0;
  const p2 = T > 2 ? <usize>load<u32>(models, 8) : 0;
  const p3 = T > 3 ? <usize>load<u32>(models, 12) : 0;
  const lambdaF32 = <f32>lambda;
  const lambdaMode = io != IO_ANY ? 0 : lambda == 1 ? 0 : <f64>lambdaF32 == lambda ? 1 : 2;
  const lambda4 = f32x4.splat(lambdaF32);
  const lambda2 = f64x2.splat(lambda);
  // Without a vote, 'normalize' divides by Σw over all models (in order, from 0): one divisor.
  let div = one;
  if (vote == VOTE_NONE && merge == MERGE_NORMALIZE) {
    let wsum: f32 = 0;
    for (let t = 0; t < T; t++) wsum += load<f32>(weights + (<usize>t << 2));
    div = f32x4.splat(abs(wsum) <= NORMALIZE_EPS ? 1 : wsum);
  }
  // out = base + λ·mix, and without a base the reference still adds 0, which turns a −0 into +0.
  // With a vote and 'sum', 'mean' or 'max', mix is +0 or non-zero (agreeing values share a sign and
  // a mean of c of them is at least the smallest), so only λ ≠ 1 needs that addition.
  const addBase = io == IO_SUBTRACT || (io == IO_ANY && (base != 0 || lambdaMode != 0)) || vote == VOTE_NONE || merge == MERGE_NORMALIZE;
  // Counting costs five operations per four entries, so only when asked (output 'none' is for the
  // counts); a loop-invariant branch, no slower when counting than a loop that always counts.
  const count = vote != VOTE_NONE && (output == OUTPUT_NONE || a.count);
  // Entries whose total is > 0, < 0, and where nothing agrees with the elected sign, as -1 per lane.
  let gtCount = i32x4.splat(0), ltCount = i32x4.splat(0), noneCount = i32x4.splat(0);
  let i = start;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const b = io == IO_SUBTRACT ? v128.load(base + off) : io == IO_PLAIN ? zero : base ? v128.load(base + off) : zero;
    const sub = io == IO_SUBTRACT || (io == IO_ANY && subtract);
    let x0 = v128.load(p0 + off);
    if (sub) x0 = f32x4.sub(x0, b);
    const d0 = trim4(unit, x0, th0, w0, absMask);
    let d1 = zero, d2 = zero, d3 = zero;
    if (T > 1) {
      let x = v128.load(p1 + off);
      if (sub) x = f32x4.sub(x, b);
      d1 = trim4(unit, x, th1, w1, absMask);
    }
    if (T > 2) {
      let x = v128.load(p2 + off);
      if (sub) x = f32x4.sub(x, b);
      d2 = trim4(unit, x, th2, w2, absMask);
    }
    if (T > 3) {
      let x = v128.load(p3 + off);
      if (sub) x = f32x4.sub(x, b);
      d3 = trim4(unit, x, th3, w3, absMask);
    }
    let mix = zero;
    if (vote == VOTE_NONE) {
      mix = mergeAll(T, merge, d0, d1, d2, d3, oneI, div);
    } else {
      // The total's first term needs no 0 + in front: only its comparisons with 0 are used.
      let total = voteTerm4(vote, d0, one, minusOne, nan);
      if (T > 1) total = f32x4.add(total, voteTerm4(vote, d1, one, minusOne, nan));
      if (T > 2) total = f32x4.add(total, voteTerm4(vote, d2, one, minusOne, nan));
      if (T > 3) total = f32x4.add(total, voteTerm4(vote, d3, one, minusOne, nan));
      const gt = f32x4.gt(total, zero), lt = f32x4.lt(total, zero);
      // The elected sign is never materialised: D's sign bit is flipped in the lanes whose elected
      // sign is not the zero sign (`other`), after which agreeing with the elected sign is one
      // comparison with 0 in every lane (agreeFlipped).
      const other = zsNeg ? gt : lt;
      const flip = v128.and(other, signBit);
      if (count) {
        gtCount = i32x4.add(gtCount, gt);
        ltCount = i32x4.add(ltCount, lt);
      }
      if (output != 0) {
        if (count) {
          // Lanes where nothing agrees (an elected sign ≠ the zero sign always has agreeing values).
          let any = agreeFlipped(zsNeg, v128.xor(d0, flip));
          if (T > 1) any = v128.or(any, agreeFlipped(zsNeg, v128.xor(d1, flip)));
          if (T > 2) any = v128.or(any, agreeFlipped(zsNeg, v128.xor(d2, flip)));
          if (T > 3) any = v128.or(any, agreeFlipped(zsNeg, v128.xor(d3, flip)));
          noneCount = i32x4.add(noneCount, i32x4.eq(any, zero));
        }
        if (output == OUTPUT_SIGN) v128.store(out + off, v128.xor(zs, flip));
        continue;
      }
      const y0 = v128.xor(d0, flip);
      const a0 = agreeFlipped(zsNeg, y0);
      // A disagreeing model adds +0: the same as skipping it, because every agreeing y is non-zero.
      let sum = v128.and(y0, a0);
      // 'mean': -count (a true mask is -1); 'normalize': Σw; 'max': the agreeing y of largest magnitude.
      let acc = merge == MERGE_MEAN ? a0 : merge == MERGE_NORMALIZE ? v128.and(w0, a0) : sum;
      if (T > 1) {
        const y = v128.xor(d1, flip), ag = agreeFlipped(zsNeg, y), sy = v128.and(y, ag);
        sum = f32x4.add(sum, sy);
        acc = accumulateFlipped(merge, zsNeg, acc, ag, sy, w1);
      }
      if (T > 2) {
        const y = v128.xor(d2, flip), ag = agreeFlipped(zsNeg, y), sy = v128.and(y, ag);
        sum = f32x4.add(sum, sy);
        acc = accumulateFlipped(merge, zsNeg, acc, ag, sy, w2);
      }
      if (T > 3) {
        const y = v128.xor(d3, flip), ag = agreeFlipped(zsNeg, y), sy = v128.and(y, ag);
        sum = f32x4.add(sum, sy);
        acc = accumulateFlipped(merge, zsNeg, acc, ag, sy, w3);
      }
      // A sum of agreeing values is never 0 (one sign, no cancellation): 0 means none agree.
      if (count) noneCount = i32x4.add(noneCount, f32x4.eq(sum, zero));
      // Flip back. Negating is exact in IEEE arithmetic (−a / b = −(a / b)), and lanes where nothing
      // agrees are zero-sign lanes, never flipped, so they come out +0 as in the reference.
      if (merge == MERGE_MEAN) {
        // y / −max(1, count), flipped back by the complement: one instruction fewer than y / max(1, count).
        const q = f32x4.div(sum, f32x4.convert_i32x4_s(i32x4.min_s(acc, i32x4.splat(-1))));
        mix = v128.xor(q, v128.andnot(signBit, other));
      } else if (merge == MERGE_NORMALIZE) {
        mix = v128.xor(f32x4.div(sum, v128.bitselect(one, acc, f32x4.eq(acc, zero))), flip);
      } else if (merge == MERGE_MAX) {
        mix = v128.xor(acc, flip);
      } else {
        mix = v128.xor(sum, flip);
      }
    }
    if (lambdaMode == 1) mix = f32x4.mul(mix, lambda4);
    else if (lambdaMode == 2) mix = scaleF64(mix, lambda2);
    if (addBase) mix = f32x4.add(b, mix);
    v128.store(out + off, mix);
  }
  if (count) addCounts(a.counts, i - start, gtCount, ltCount, noneCount);
  for (; i < n; i++) {
    if (subtract) subtractTail(models, T, base, i);
    tiesEntry(models, T, weights, thr, budget, base, out, i, vote, merge, output, zeroSign, lambda, scratch + 256, a.counts);
  }
}

/** δ = f32(x − base) in place for entry i of every model: the fast path's scalar tail. */
function subtractTail(models: usize, T: i32, base: usize, i: i32): void {
  const off = <usize>i << 2;
  for (let t = 0; t < T; t++) {
    const p = <usize>load<u32>(models + (<usize>t << 2)) + off;
    store<f32>(p, load<f32>(p) - load<f32>(base + off));
  }
}

/** Whether tiesFast has a variant for these options (others take tiesGeneric). */
function fastVariant(T: i32, vote: i32, output: i32): bool {
  if (T < 1 || T > 4) return false;
  // Without a vote only the merged output means anything; one model is almost always a trim.
  if (vote == VOTE_NONE) return output == 0;
  // Vote 'count' (mk.electSign and disjointMerge on request) takes tiesGeneric: fewer loops in the module.
  return vote == VOTE_SUM && T > 1;
}

/** Whether every weight is exactly 1 (then D = kept x, no multiply). */
function unitWeights(weights: usize, T: i32): bool {
  for (let t = 0; t < T; t++) if (load<f32>(weights + (<usize>t << 2)) != 1) return false;
  return true;
}

/**
 * The loops for T models, one call site per variant (a nested dispatch would make the compiler
 * build the whole cross product before pruning it). Unit-weight loops only where they are common
 * (a trim or a plain sum without a vote, the TIES paper's mean and its vote count), and loops with
 * the base and λ folded in (`io`) only for the paper's, to bound the module's size.
 */
// @ts-ignore: decorator
@inline function tiesFastFor(T: i32, vote: i32, merge: i32, output: i32, zsNeg: bool, unit: bool, io: i32, a: FastArgs): void {
  if (vote == VOTE_NONE || T == 1) {
    if (merge == MERGE_SUM) {
      return unit ? tiesFast(T, VOTE_NONE, MERGE_SUM, 0, false, true, IO_ANY, a) : tiesFast(T, VOTE_NONE, MERGE_SUM, 0, false, false, IO_ANY, a);
    }
    if (merge == MERGE_NORMALIZE) return tiesFast(T, VOTE_NONE, MERGE_NORMALIZE, 0, false, false, IO_ANY, a);
    if (merge == MERGE_MEAN) return tiesFast(T, VOTE_NONE, MERGE_MEAN, 0, false, false, IO_ANY, a);
    return tiesFast(T, VOTE_NONE, MERGE_MAX, 0, false, false, IO_ANY, a);
  }
  if (output == OUTPUT_NONE) {
    if (unit) {
      if (io == IO_PLAIN) return tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_NONE, false, true, IO_PLAIN, a);
      if (io == IO_SUBTRACT) return tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_NONE, false, true, IO_SUBTRACT, a);
      return tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_NONE, false, true, IO_ANY, a);
    }
    if (io == IO_PLAIN) return tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_NONE, false, false, IO_PLAIN, a);
    if (io == IO_SUBTRACT) return tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_NONE, false, false, IO_SUBTRACT, a);
    return tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_NONE, false, false, IO_ANY, a);
  }
  if (output == OUTPUT_SIGN) {
    return zsNeg ? tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_SIGN, true, false, IO_ANY, a) : tiesFast(T, VOTE_SUM, MERGE_SUM, OUTPUT_SIGN, false, false, IO_ANY, a);
  }
  if (merge == MERGE_MEAN && unit) {
    if (zsNeg) {
      if (io == IO_PLAIN) return tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, true, true, IO_PLAIN, a);
      if (io == IO_SUBTRACT) return tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, true, true, IO_SUBTRACT, a);
      return tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, true, true, IO_ANY, a);
    }
    if (io == IO_PLAIN) return tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, false, true, IO_PLAIN, a);
    if (io == IO_SUBTRACT) return tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, false, true, IO_SUBTRACT, a);
    return tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, false, true, IO_ANY, a);
  }
  if (merge == MERGE_MEAN) {
    return zsNeg ? tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, true, false, IO_ANY, a) : tiesFast(T, VOTE_SUM, MERGE_MEAN, 0, false, false, IO_ANY, a);
  }
  if (merge == MERGE_NORMALIZE) {
    return zsNeg ? tiesFast(T, VOTE_SUM, MERGE_NORMALIZE, 0, true, false, IO_ANY, a) : tiesFast(T, VOTE_SUM, MERGE_NORMALIZE, 0, false, false, IO_ANY, a);
  }
  if (merge == MERGE_MAX) {
    return zsNeg ? tiesFast(T, VOTE_SUM, MERGE_MAX, 0, true, false, IO_ANY, a) : tiesFast(T, VOTE_SUM, MERGE_MAX, 0, false, false, IO_ANY, a);
  }
  return zsNeg ? tiesFast(T, VOTE_SUM, MERGE_SUM, 0, true, false, IO_ANY, a) : tiesFast(T, VOTE_SUM, MERGE_SUM, 0, false, false, IO_ANY, a);
}

function tiesFast1(vote: i32, merge: i32, output: i32, zsNeg: bool, unit: bool, io: i32, a: FastArgs): void {
  return tiesFastFor(1, vote, merge, output, zsNeg, unit, io, a);
}

function tiesFast2(vote: i32, merge: i32, output: i32, zsNeg: bool, unit: bool, io: i32, a: FastArgs): void {
  return tiesFastFor(2, vote, merge, output, zsNeg, unit, io, a);
}

function tiesFast3(vote: i32, merge: i32, output: i32, zsNeg: bool, unit: bool, io: i32, a: FastArgs): void {
  return tiesFastFor(3, vote, merge, output, zsNeg, unit, io, a);
}

function tiesFast4(vote: i32, merge: i32, output: i32, zsNeg: bool, unit: bool, io: i32, a: FastArgs): void {
  return tiesFastFor(4, vote, merge, output, zsNeg, unit, io, a);
}

/** tiesFast's arguments other than those that pick its loop, in scratch memory. */
@unmanaged class FastArgs {
  models: usize;
  weights: usize;
  thr: usize;
  budget: usize;
  base: usize;
  out: usize;
  /** The loop's own scratch: 256 bytes of constants, then T floats for tiesEntry. */
  scratch: usize;
  start: i32;
  n: i32;
  zeroSign: f32;
  subtract: bool;
  /** Whether counts are wanted. */
  count: bool;
  lambda: f64;
  /** i32 vote count and undecided entries, added to. */
  counts: usize;
}

/** tiesFast for these options, with unit weights, the zero sign's sign and the base and λ as constants too. */
function tiesFastDispatch(
  T: i32, vote: i32, merge: i32, output: i32,
  models: usize, weights: usize, thr: usize, budget: usize, base: usize, subtract: bool, out: usize, start: i32, n: i32,
  zeroSign: f32, lambda: f64, scratch: usize, count: bool, counts: usize,
): void {
  const a = changetype<FastArgs>(scratch);
  a.models = models; a.weights = weights; a.thr = thr; a.budget = budget; a.base = base; a.out = out;
  a.scratch = scratch + 64; a.start = start; a.n = n; a.zeroSign = zeroSign; a.subtract = subtract;
  a.count = count; a.lambda = lambda; a.counts = counts;
  const unit = unitWeights(weights, T);
  const zsNeg = zeroSign < 0;
  const io = lambda != 1 ? IO_ANY : base == 0 ? IO_PLAIN : subtract ? IO_SUBTRACT : IO_ANY;
  if (T == 1) tiesFast1(vote, merge, output, zsNeg, unit, io, a);
  else if (T == 2) tiesFast2(vote, merge, output, zsNeg, unit, io, a);
  else if (T == 3) tiesFast3(vote, merge, output, zsNeg, unit, io, a);
  else tiesFast4(vote, merge, output, zsNeg, unit, io, a);
}

/**
 * TIES' fused trim + elect + disjoint merge over n entries of T models. `models` is a table of T
 * u32 pointers; weights f32[T], thr i32[T], budget f64[T] (updated in place), base 0 when absent;
 * vote 0 sum / 1 count / 2 none; merge 0 sum / 1 mean / 2 normalize / 3 max; output 0 merged /
 * 1 sign / 2 none (nothing written), plus OUTPUT_SUBTRACT_BASE when the models hold fine-tuned
 * weights x and the task vectors are δ = f32(x − base) (the model slices may be overwritten with
 * δ), plus OUTPUT_COUNT to count. `scratch` holds 320 + T·68 bytes. With OUTPUT_COUNT, writes to
 * `counts` (i32[2]) the number of entries whose vote total is > 0 minus those whose total is < 0,
 * and the undecided entries (total 0 or NaN, some D agreeing with zeroSign); see the reference.
 *
 * With no tie budget left and 1–4 models, tiesFast; otherwise tiesGeneric, which hands over to
 * tiesFast as soon as the budget runs out.
 */
export function tiesMerge(
  models: usize, T: i32, weights: usize, thr: usize, budget: usize, base: usize, out: usize, n: i32,
  vote: i32, merge: i32, output: i32, zeroSign: f32, lambda: f64, scratch: usize, counts: usize,
): void {
  const subtract = (output & OUTPUT_SUBTRACT_BASE) != 0 && base != 0;
  const count = (output & OUTPUT_COUNT) != 0;
  output &= ~(OUTPUT_SUBTRACT_BASE | OUTPUT_COUNT);
  store<i32>(counts, 0);
  store<i32>(counts, 0, 4);
  if (fastVariant(T, vote, output) && !anyBudgetLeft(budget, T)) {
    tiesFastDispatch(T, vote, merge, output, models, weights, thr, budget, base, subtract, out, 0, n, zeroSign, lambda, scratch, count, counts);
    return;
  }
  if (subtract) {
    for (let t = 0; t < T; t++) subtractInPlace(<usize>load<u32>(models + (<usize>t << 2)), base, n);
  }
  tiesGeneric(models, T, weights, thr, budget, base, out, n, vote, merge, output, zeroSign, lambda, scratch, count, counts);
}

/**
 * Any T, ties with budget left: eight entries at a time in f32x4, D of every model (trim ×
 * weight) and the vote first, then the disjoint merge over the stored D. A group with an entry
 * equal to a threshold whose model still has budget goes through the scalar path instead, so
 * budget is consumed in index order.
 */
function tiesGeneric(
  models: usize, T: i32, weights: usize, thr: usize, budget: usize, base: usize, out: usize, n: i32,
  vote: i32, merge: i32, output: i32, zeroSign: f32, lambda: f64, scratch: usize, count: bool, counts: usize,
): void {
  // Scratch: D per model (two v128), splatted weights, splatted thresholds, T floats for tiesEntry.
  const dv = scratch;
  const wv = scratch + (<usize>T << 5);
  const thv = scratch + <usize>T * 48;
  const ds = scratch + (<usize>T << 6);
  for (let t = 0; t < T; t++) {
    v128.store(wv + (<usize>t << 4), f32x4.splat(load<f32>(weights + (<usize>t << 2))));
    v128.store(thv + (<usize>t << 4), i32x4.splat(load<i32>(thr + (<usize>t << 2))));
  }
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  const minusOne = f32x4.splat(-1);
  const nan = f32x4.splat(NaN);
  const allOnes = i32x4.splat(-1);
  const oneI = i32x4.splat(1);
  const absMask = i32x4.splat(ABS_BITS);
  const zs = f32x4.splat(zeroSign);
  const eps = f32x4.splat(NORMALIZE_EPS);
  const lambdaF32 = <f32>lambda;
  // A float32 lambda makes the float64 product exact before its one rounding: a float32 multiply.
  const lambdaMode = lambda == 1 ? 0 : <f64>lambdaF32 == lambda ? 1 : 2;
  const lambda4 = f32x4.splat(lambdaF32);
  const lambda2 = f64x2.splat(lambda);
  let budgetLeft = anyBudgetLeft(budget, T);
  count = count && vote != VOTE_NONE;
  // Entries whose total is > 0, < 0, and where nothing agrees with the elected sign, as -1 per
  // lane, over `counted` entries (tiesEntry counts the others itself).
  let gtCount = i32x4.splat(0), ltCount = i32x4.splat(0), noneCount = i32x4.splat(0);
  let counted = 0;

  // Eight entries (two vectors, h = 0 and 1) per step: the per-model loads of pointers, weights
  // and thresholds and the option branches are paid once per eight entries.
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const off = <usize>i << 2;
    let total0 = zero, total1 = zero;
    let tie = v128.splat<i32>(0);
    for (let t = 0; t < T; t++) {
      const tv = <usize>t << 4;
      const src = <usize>load<u32>(models + (<usize>t << 2)) + off;
      const th = v128.load(thv + tv);
      const w = v128.load(wv + tv);
      const v0 = v128.load(src), v1 = v128.load(src, 16);
      const a0 = v128.and(v0, absMask), a1 = v128.and(v1, absMask);
      const d0 = v128.and(f32x4.mul(v0, w), i32x4.gt_s(a0, th));
      const d1 = v128.and(f32x4.mul(v1, w), i32x4.gt_s(a1, th));
      if (budgetLeft && load<f64>(budget + (<usize>t << 3)) > 0) tie = v128.or(tie, v128.or(i32x4.eq(a0, th), i32x4.eq(a1, th)));
      const dt = dv + (<usize>t << 5);
      v128.store(dt, d0);
      v128.store(dt, d1, 16);
      if (vote == VOTE_SUM) {
        total0 = f32x4.add(total0, d0);
        total1 = f32x4.add(total1, d1);
      } else if (vote == VOTE_COUNT) {
        total0 = f32x4.add(total0, signOf4(d0, zero, one, minusOne, nan));
        total1 = f32x4.add(total1, signOf4(d1, zero, one, minusOne, nan));
      }
    }
    if (budgetLeft && v128.any_true(tie)) {
      for (let k = 0; k < 8; k++) tiesEntry(models, T, weights, thr, budget, base, out, i + k, vote, merge, output, zeroSign, lambda, ds, counts);
      budgetLeft = anyBudgetLeft(budget, T);
      if (!budgetLeft && fastVariant(T, vote, output)) {
        addCounts(counts, counted, gtCount, ltCount, noneCount);
        tiesFastDispatch(T, vote, merge, output, models, weights, thr, budget, base, false, out, i + 8, n, zeroSign, lambda, scratch, count, counts);
        return;
      }
      continue;
    }
    let sign0 = zero, sign1 = zero;
    if (vote != VOTE_NONE) {
      const gt0 = f32x4.gt(total0, zero), lt0 = f32x4.lt(total0, zero);
      const gt1 = f32x4.gt(total1, zero), lt1 = f32x4.lt(total1, zero);
      if (count) {
        gtCount = i32x4.add(gtCount, i32x4.add(gt0, gt1));
        ltCount = i32x4.add(ltCount, i32x4.add(lt0, lt1));
        counted += 8;
      }
      sign0 = v128.bitselect(one, v128.bitselect(minusOne, zs, lt0), gt0);
      sign1 = v128.bitselect(one, v128.bitselect(minusOne, zs, lt1), gt1);
    }
    if (output == OUTPUT_SIGN) {
      v128.store(out + off, sign0);
      v128.store(out + off, sign1, 16);
    }
    if (output != 0 && !count) continue;

    // Disjoint merge. A disagreeing entry adds +0 instead of being skipped: the same, because a
    // float32 sum that starts at +0 is never -0.
    let sum0 = zero, sum1 = zero, acc0 = zero, acc1 = zero; // acc: Σw ('normalize'), -count ('mean') or peak ('max')
    let any0 = zero, any1 = zero; // lanes where some D agrees
    for (let t = 0; t < T; t++) {
      const dt = dv + (<usize>t << 5);
      const d0 = v128.load(dt), d1 = v128.load(dt, 16);
      let agree0 = allOnes, agree1 = allOnes;
      if (vote != VOTE_NONE) {
        agree0 = f32x4.gt(f32x4.mul(d0, sign0), zero);
        agree1 = f32x4.gt(f32x4.mul(d1, sign1), zero);
      }
      if (count) {
        any0 = v128.or(any0, agree0);
        any1 = v128.or(any1, agree1);
      }
      if (output != 0) continue;
      sum0 = f32x4.add(sum0, v128.and(d0, agree0));
      sum1 = f32x4.add(sum1, v128.and(d1, agree1));
      if (merge == MERGE_MEAN) {
        acc0 = i32x4.add(acc0, v128.and(agree0, f32x4.ne(d0, zero)));
        acc1 = i32x4.add(acc1, v128.and(agree1, f32x4.ne(d1, zero)));
      } else if (merge == MERGE_NORMALIZE) {
        const w = v128.load(wv + (<usize>t << 4));
        acc0 = f32x4.add(acc0, v128.and(w, agree0));
        acc1 = f32x4.add(acc1, v128.and(w, agree1));
      } else if (merge == MERGE_MAX) {
        acc0 = v128.bitselect(d0, acc0, v128.and(agree0, f32x4.gt(f32x4.abs(d0), f32x4.abs(acc0))));
        acc1 = v128.bitselect(d1, acc1, v128.and(agree1, f32x4.gt(f32x4.abs(d1), f32x4.abs(acc1))));
      }
    }
    if (count) noneCount = i32x4.add(noneCount, i32x4.add(i32x4.eq(any0, zero), i32x4.eq(any1, zero)));
    if (output != 0) continue;
    let mix0 = sum0, mix1 = sum1;
    if (merge == MERGE_MEAN) {
      // acc holds -count (a true mask is -1).
      mix0 = f32x4.div(sum0, f32x4.convert_i32x4_s(i32x4.max_s(i32x4.neg(acc0), oneI)));
      mix1 = f32x4.div(sum1, f32x4.convert_i32x4_s(i32x4.max_s(i32x4.neg(acc1), oneI)));
    } else if (merge == MERGE_NORMALIZE) {
      const bad0 = vote == VOTE_NONE ? f32x4.le(f32x4.abs(acc0), eps) : f32x4.eq(acc0, zero);
      const bad1 = vote == VOTE_NONE ? f32x4.le(f32x4.abs(acc1), eps) : f32x4.eq(acc1, zero);
      mix0 = f32x4.div(sum0, v128.bitselect(one, acc0, bad0));
      mix1 = f32x4.div(sum1, v128.bitselect(one, acc1, bad1));
    } else if (merge == MERGE_MAX) {
      mix0 = acc0;
      mix1 = acc1;
    }
    if (lambdaMode == 1) {
      mix0 = f32x4.mul(mix0, lambda4);
      mix1 = f32x4.mul(mix1, lambda4);
    } else if (lambdaMode == 2) {
      mix0 = scaleF64(mix0, lambda2);
      mix1 = scaleF64(mix1, lambda2);
    }
    // base + scaled, with base 0 when absent (0 + -0 = +0, as in the reference).
    let b0 = zero, b1 = zero;
    if (base) {
      b0 = v128.load(base + off);
      b1 = v128.load(base + off, 16);
    }
    v128.store(out + off, f32x4.add(b0, mix0));
    v128.store(out + off, f32x4.add(b1, mix1), 16);
  }
  addCounts(counts, counted, gtCount, ltCount, noneCount);
  for (; i < n; i++) tiesEntry(models, T, weights, thr, budget, base, out, i, vote, merge, output, zeroSign, lambda, ds, counts);
}

/**
 * Adds to `counts` (i32 votes, undecided) what the lane counters saw over `entries` entries: the
 * masks of totals > 0 and < 0 and of entries where nothing agrees (each -1 per lane); the rest are
 * the undecided entries.
 */
function addCounts(counts: usize, entries: i32, gtCount: v128, ltCount: v128, noneCount: v128): void {
  const gts = -laneSum(gtCount), lts = -laneSum(ltCount), nones = -laneSum(noneCount);
  store<i32>(counts, load<i32>(counts) + gts - lts);
  store<i32>(counts, load<i32>(counts, 4) + entries - gts - lts - nones, 4);
}


/** murmur3's 32-bit finaliser on four lanes. */
// @ts-ignore: decorator
@inline function fmix32x4(h: v128): v128 {
  h = v128.xor(h, i32x4.shr_u(h, 16));
  h = i32x4.mul(h, i32x4.splat(<i32>0x85ebca6b));
  h = v128.xor(h, i32x4.shr_u(h, 13));
  h = i32x4.mul(h, i32x4.splat(<i32>0xc2b2ae35));
  return v128.xor(h, i32x4.shr_u(h, 16));
}

// @ts-ignore: decorator
@inline function fmix32(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  return h ^ (h >>> 16);
}

const GOLDEN: u32 = 0x9e3779b9;

/**
 * DARE's drop over n entries whose flat indices start at offHi·2^32 + offLo: keeps x[i] iff
 * uniform24(key, index) < cut (cut = ceil(f32(p)·2^24), the same test on integers), writes kept
 * values times `scale` (float64) into `out`, and writes [Σ|x|, Σ|kept x|] (float64) to `sums`.
 * The chunk may straddle a multiple of 2^32: a lane whose low half wrapped carries into the high half.
 */
export function dropAndRescale(x: usize, n: i32, offLo: u32, offHi: u32, key: u32, cut: i32, scale: f64, out: usize, sums: usize): void {
  const keyV = i32x4.splat(<i32>key);
  const offLoV = i32x4.splat(<i32>offLo);
  const hiGolden = i32x4.splat(<i32>(offHi + GOLDEN));
  const cutV = i32x4.splat(cut);
  const scaleF32 = <f32>scale;
  const scaleMode = scale == 1 ? 0 : <f64>scaleF32 == scale ? 1 : 2;
  const scale4 = f32x4.splat(scaleF32);
  const scale2 = f64x2.splat(scale);
  // Four partial float64 sums per statistic (lanes 0,1 and 2,3).
  let absLo = f64x2.splat(0), absHi = f64x2.splat(0), keptLo = f64x2.splat(0), keptHi = f64x2.splat(0);
  let lo = i32x4.add(offLoV, i32x4(0, 1, 2, 3));
  const four = i32x4.splat(4);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    const carry = i32x4.lt_u(lo, offLoV); // -1 where offLo + i wrapped past 2^32
    const h = fmix32x4(i32x4.sub(i32x4.add(fmix32x4(v128.xor(lo, keyV)), hiGolden), carry));
    const keep = i32x4.lt_s(i32x4.shr_u(h, 8), cutV);
    const v = v128.load(x + off);
    const av = f32x4.abs(v);
    const ak = v128.and(av, keep);
    absLo = f64x2.add(absLo, f64x2.promote_low_f32x4(av));
    absHi = f64x2.add(absHi, f64x2.promote_low_f32x4(v128.shuffle<f32>(av, av, 2, 3, 2, 3)));
    keptLo = f64x2.add(keptLo, f64x2.promote_low_f32x4(ak));
    keptHi = f64x2.add(keptHi, f64x2.promote_low_f32x4(v128.shuffle<f32>(ak, ak, 2, 3, 2, 3)));
    let s = v;
    if (scaleMode == 1) s = f32x4.mul(v, scale4);
    else if (scaleMode == 2) s = scaleF64(v, scale2);
    v128.store(out + off, v128.and(s, keep));
    lo = i32x4.add(lo, four);
  }
  const a2 = f64x2.add(absLo, absHi), k2 = f64x2.add(keptLo, keptHi);
  let sumAbs = f64x2.extract_lane(a2, 0) + f64x2.extract_lane(a2, 1);
  let sumKept = f64x2.extract_lane(k2, 0) + f64x2.extract_lane(k2, 1);
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const l = offLo + <u32>i;
    const hi = offHi + (l < offLo ? 1 : 0);
    const u = fmix32(fmix32(l ^ key) + hi + GOLDEN) >>> 8;
    const v = load<f32>(x + off);
    sumAbs += <f64>abs(v);
    if (<i32>u < cut) {
      sumKept += <f64>abs(v);
      store<f32>(out + off, <f32>(scale * <f64>v));
    } else {
      store<f32>(out + off, 0);
    }
  }
  store<f64>(sums, sumAbs);
  store<f64>(sums, sumKept, 8);
}

/** The index of the first NaN or ±Inf among n floats, or -1: exponent bits all ones. */
export function findNonFinite(x: usize, n: i32): i32 {
  const e = i32x4.splat(EXP_BITS);
  let i = 0;
  // Sixteen at a time; on a hit, the scalar loop below finds the exact index from there.
  for (; i + 16 <= n; i += 16) {
    const p = x + (<usize>i << 2);
    const m0 = i32x4.eq(v128.and(v128.load(p), e), e);
    const m1 = i32x4.eq(v128.and(v128.load(p, 16), e), e);
    const m2 = i32x4.eq(v128.and(v128.load(p, 32), e), e);
    const m3 = i32x4.eq(v128.and(v128.load(p, 48), e), e);
    if (v128.any_true(v128.or(v128.or(m0, m1), v128.or(m2, m3)))) break;
  }
  for (; i < n; i++) if ((load<i32>(x + (<usize>i << 2)) & EXP_BITS) == EXP_BITS) return i;
  return -1;
}

/**
 * bfloat16 → float32 for the file runner (a bfloat16 is the top half of a float32): `n` entries
 * from `src` (u16) to `dst` (f32). Returns the index of the first NaN or ±Infinity (every
 * exponent bit set), or -1, so that decoding and the finiteness check are one pass.
 */
export function bf16ToF32(src: usize, dst: usize, n: i32): i32 {
  const e = i16x8.splat(0x7f80);
  let first = -1;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    const p = dst + (<usize>i << 2);
    v128.store(p, i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(p, i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
    if (first < 0 && v128.any_true(i16x8.eq(v128.and(h, e), e))) first = i;
  }
  for (let j = i; j < n; j++) {
    const h = <u32>load<u16>(src + (<usize>j << 1));
    store<u32>(dst + (<usize>j << 2), h << 16);
    if (first < 0 && (h & 0x7f80) == 0x7f80) first = j;
  }
  // A hit in a block of 8: the exact entry.
  if (first >= 0) for (let j = first; j < n; j++) if ((<u32>load<u16>(src + (<usize>j << 1)) & 0x7f80) == 0x7f80) return j;
  return -1;
}
