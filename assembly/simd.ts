// Shared f32x4 helpers for every kernel in assembly/.

/** Horizontal sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) +
         f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Dot product of two f32 rows of length n, SIMD over the contiguous dimension. */
// @ts-ignore: decorator
@inline export function dotRow(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    const o = <usize>k << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; k + 4 <= n; k += 4) {
    const o = <usize>k << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; k < n; k++) {
    const o = <usize>k << 2;
    s += load<f32>(a + o) * load<f32>(b + o);
  }
  return s;
}
