// The streaming model-merging primitives: TIES (Yadav et al. 2023, §3: trim, elect sign,
// disjoint merge) fused into one pass, the radix-select histogram that finds TIES' top-k
// magnitude, DARE's drop and rescale (Yu et al. 2024, §3) with a counter-based RNG, and a scan for
// non-finite values. The semantics are src/reference/merge-primitives.ts; these kernels equal it
// bit for bit: every float32 operation happens in the reference's order (models summed t = 0..T-1,
// no reassociation), and the products with float64 scales (lambda, DARE's 1/p) are taken in
// float64 and rounded once, as the reference does.

const ABS_BITS: i32 = 0x7fffffff;
const EXP_BITS: i32 = 0x7f800000;

const VOTE_SUM = 0;
const VOTE_COUNT = 1;
const VOTE_NONE = 2;
const MERGE_SUM = 0;
const MERGE_MEAN = 1;
const MERGE_NORMALIZE = 2;
const MERGE_MAX = 3;
const OUTPUT_SIGN = 1;

/** f32(1e-8): the largest float32 below 1e-8, so `|w| <= NORMALIZE_EPS` in float32 is `|w| < 1e-8` in float64. */
const NORMALIZE_EPS: f32 = 9.99999993922529e-9;

// @ts-ignore: decorator
@inline function bump(hist: usize, bin: i32): void {
  const p = hist + (<usize>bin << 2);
  store<u32>(p, load<u32>(p) + 1);
}

/**
 * Adds the radix-select histogram of |x| (n floats) into `hist` (u32 bins). Level 0: bin =
 * absBits >>> 15 (65536 bins). Level 1: bin = absBits & 0x7fff (32768 bins), for entries whose
 * level-0 bin is `prefix`.
 */
export function absHistogram(x: usize, n: i32, hist: usize, level: i32, prefix: i32): void {
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
  // Level 1: most entries lie outside the prefix bin, so test four at a time and skip.
  const want = i32x4.splat(prefix);
  for (; i + 4 <= n; i += 4) {
    const a = v128.and(v128.load(x + (<usize>i << 2)), absMask);
    const hit = i32x4.eq(i32x4.shr_u(a, 15), want);
    if (!v128.any_true(hit)) continue;
    if (i32x4.extract_lane(hit, 0)) bump(hist, i32x4.extract_lane(a, 0) & 0x7fff);
    if (i32x4.extract_lane(hit, 1)) bump(hist, i32x4.extract_lane(a, 1) & 0x7fff);
    if (i32x4.extract_lane(hit, 2)) bump(hist, i32x4.extract_lane(a, 2) & 0x7fff);
    if (i32x4.extract_lane(hit, 3)) bump(hist, i32x4.extract_lane(a, 3) & 0x7fff);
  }
  for (; i < n; i++) {
    const a = load<i32>(x + (<usize>i << 2)) & ABS_BITS;
    if ((a >>> 15) == prefix) bump(hist, a & 0x7fff);
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
 * consumption is the index order) and for the tail. `d` holds T floats of scratch.
 */
function tiesEntry(
  models: usize, T: i32, weights: usize, thr: usize, budget: usize, base: usize, out: usize, i: i32,
  vote: i32, merge: i32, output: i32, zeroSign: f32, lambda: f64, d: usize,
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
  if (vote != VOTE_NONE) sign = total > 0 ? 1 : total < 0 ? -1 : zeroSign;
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

/**
 * TIES' fused trim + elect + disjoint merge over n entries of T models. `models` is a table of T
 * u32 pointers; weights f32[T], thr i32[T], budget f64[T] (updated in place), base 0 when absent;
 * vote 0 sum / 1 count / 2 none; merge 0 sum / 1 mean / 2 normalize / 3 max; output 0 merged /
 * 1 sign. `scratch` holds T·68 bytes.
 *
 * Eight entries at a time in f32x4: D of every model (trim × weight) and the vote first, then the
 * disjoint merge over the stored D. A group with an entry equal to a threshold whose model still
 * has budget goes through the scalar path instead, so budget is consumed in index order.
 */
export function tiesMerge(
  models: usize, T: i32, weights: usize, thr: usize, budget: usize, base: usize, out: usize, n: i32,
  vote: i32, merge: i32, output: i32, zeroSign: f32, lambda: f64, scratch: usize,
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
      for (let k = 0; k < 8; k++) tiesEntry(models, T, weights, thr, budget, base, out, i + k, vote, merge, output, zeroSign, lambda, ds);
      budgetLeft = anyBudgetLeft(budget, T);
      continue;
    }
    let sign0 = zero, sign1 = zero;
    if (vote != VOTE_NONE) {
      sign0 = v128.bitselect(one, v128.bitselect(minusOne, zs, f32x4.lt(total0, zero)), f32x4.gt(total0, zero));
      sign1 = v128.bitselect(one, v128.bitselect(minusOne, zs, f32x4.lt(total1, zero)), f32x4.gt(total1, zero));
    }
    if (output == OUTPUT_SIGN) {
      v128.store(out + off, sign0);
      v128.store(out + off, sign1, 16);
      continue;
    }

    // Disjoint merge. A disagreeing entry adds +0 instead of being skipped: the same, because a
    // float32 sum that starts at +0 is never -0.
    let sum0 = zero, sum1 = zero, acc0 = zero, acc1 = zero; // acc: Σw ('normalize'), -count ('mean') or peak ('max')
    for (let t = 0; t < T; t++) {
      const dt = dv + (<usize>t << 5);
      const d0 = v128.load(dt), d1 = v128.load(dt, 16);
      let agree0 = allOnes, agree1 = allOnes;
      if (vote != VOTE_NONE) {
        agree0 = f32x4.gt(f32x4.mul(d0, sign0), zero);
        agree1 = f32x4.gt(f32x4.mul(d1, sign1), zero);
      }
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
  for (; i < n; i++) tiesEntry(models, T, weights, thr, budget, base, out, i, vote, merge, output, zeroSign, lambda, ds);
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
