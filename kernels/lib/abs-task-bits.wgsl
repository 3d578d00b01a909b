// |δ_t[i]|'s bits for the TIES tie stages (ties-tie-count.wgsl, ties-tie-cutoff.wgsl), pasted in
// by scripts/build.mjs where a kernel says `//!include abs-task-bits.wgsl`. The including kernel
// declares `params` (with `n` and `hasBase`), `models` ([T][n] float bits) and `base` ([n] bits),
// and includes task-vector.wgsl first.

// Model entry x (float bits) at i, or δ = f32(x − base[i]) when the base is subtracted (a branch,
// not select(), which would evaluate both).
fn taskVectorOf(x: u32, i: u32) -> u32 {
  if (params.hasBase == 1u) {
    return taskVectorBits(x, base[i]);
  }
  return x;
}

// |δ_t[i]|'s bits.
fn absTaskBits(t: u32, i: u32) -> u32 {
  let x = models[t * params.n + i];
  return taskVectorOf(x, i) & 0x7fffffffu;
}
