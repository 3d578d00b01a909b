// Machine-limit probe for bench/: the f32 FLOP rate a WASM SIMD microkernel reaches.
// The shape of a dot-product kernel: eight accumulators, each adding a product that does not
// depend on it (8 × f32x4 × 2 flops = 64 flops per iteration). Only the add is on a chain, and
// eight chains cover its latency, so the loop runs at the core's SIMD throughput. (Chains of
// a = a·m + d put the multiply on the chain too and measured ~10% lower on a Xeon here.)

/** Runs `iters` iterations and returns a value that depends on every lane (so nothing is elided). */
export function simdFlopProbe(iters: i32, seed: f32): f32 {
  const x0 = f32x4.splat(seed), x1 = f32x4.splat(seed + 1), y0 = f32x4.splat(0.5), y1 = f32x4.splat(0.25);
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (let i = 0; i < iters; i++) {
    a0 = f32x4.add(a0, f32x4.mul(x0, y0)); a1 = f32x4.add(a1, f32x4.mul(x0, y1));
    a2 = f32x4.add(a2, f32x4.mul(x1, y0)); a3 = f32x4.add(a3, f32x4.mul(x1, y1));
    a4 = f32x4.add(a4, f32x4.mul(x0, x1)); a5 = f32x4.add(a5, f32x4.mul(y0, y1));
    a6 = f32x4.add(a6, f32x4.mul(x0, x0)); a7 = f32x4.add(a7, f32x4.mul(y1, y1));
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}

/** Copies `bytes` bytes from `src` to `dst` with memory.copy: the bandwidth probe's inner step. */
export function copyBytes(dst: usize, src: usize, bytes: usize): void {
  memory.copy(dst, src, bytes);
}

/**
 * out[i] = a[i] + b[i] + c[i] over n floats (n a multiple of 4), f32x4: the stream floor of a pass
 * that reads three arrays and writes one (TIES' fused pass on three task vectors), with one
 * instruction of work per input.
 */
export function streamProbe(a: usize, b: usize, c: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.add(f32x4.add(v128.load(a + off), v128.load(b + off)), v128.load(c + off)));
  }
}
