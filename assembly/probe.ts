// Machine-limit probe for bench/: the f32 FLOP rate a WASM SIMD microkernel reaches.
// Eight independent multiply-add chains (8 × f32x4 × 2 flops = 64 flops per iteration) hide
// the add latency, so the loop runs at the core's SIMD throughput, not its latency.

/** Runs `iters` iterations and returns a value that depends on every lane (so nothing is elided). */
export function simdFlopProbe(iters: i32, seed: f32): f32 {
  const m = f32x4.splat(0.999999);
  const d = f32x4.splat(seed * 1e-7);
  let a0 = f32x4.splat(seed), a1 = f32x4.splat(seed + 1), a2 = f32x4.splat(seed + 2), a3 = f32x4.splat(seed + 3);
  let a4 = f32x4.splat(seed + 4), a5 = f32x4.splat(seed + 5), a6 = f32x4.splat(seed + 6), a7 = f32x4.splat(seed + 7);
  for (let i = 0; i < iters; i++) {
    a0 = f32x4.add(f32x4.mul(a0, m), d); a1 = f32x4.add(f32x4.mul(a1, m), d);
    a2 = f32x4.add(f32x4.mul(a2, m), d); a3 = f32x4.add(f32x4.mul(a3, m), d);
    a4 = f32x4.add(f32x4.mul(a4, m), d); a5 = f32x4.add(f32x4.mul(a5, m), d);
    a6 = f32x4.add(f32x4.mul(a6, m), d); a7 = f32x4.add(f32x4.mul(a7, m), d);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}

/** Copies `bytes` bytes from `src` to `dst` with memory.copy: the bandwidth probe's inner step. */
export function copyBytes(dst: usize, src: usize, bytes: usize): void {
  memory.copy(dst, src, bytes);
}
