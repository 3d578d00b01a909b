// The task vector δ = f32(x − base) of one entry, as float bits, rounded exactly as the reference
// rounds it (src/reference/merge-primitives.ts) even on a device that flushes subnormals (WGSL
// allows it; SwiftShader does): the trim compares δ's bits, so a flushed δ would change the
// histogram and the kept set. (Pasted in by scripts/build.mjs at `//!include task-vector.wgsl`.)
//
// The f32 subtraction is correctly rounded whenever both operands and the result are normal
// (or the result is ±Inf/NaN). Otherwise (an operand ±0 or subnormal, or a subnormal result) both
// operands are scaled by 2^64, built from their bits so that nothing is flushed on the way: the
// difference is then normal or exactly 0, rounded once as the unscaled one would be, and scaled
// back through its bits (a normal result by exponent arithmetic; a subnormal one, which is exact,
// by its integer count of 2^-149).

// v · 2^64 from v's bits (exponent field ≤ 127 + 64, so it stays finite).
fn taskVectorScaledUp(v: u32) -> f32 {
  let e = (v >> 23u) & 0xffu;
  if (e == 0u) {
    // ±m · 2^-149 · 2^64: m < 2^23 converts exactly, the product is normal.
    let mag = f32(v & 0x7fffffu) * 0x1p-85f;
    return select(mag, -mag, (v >> 31u) == 1u);
  }
  return bitcast<f32>(v + (64u << 23u));
}

fn taskVectorBits(x: u32, b: u32) -> u32 {
  let d = bitcast<u32>(bitcast<f32>(x) - bitcast<f32>(b));
  if ((x & 0x7f800000u) != 0u && (b & 0x7f800000u) != 0u && (d & 0x7f800000u) != 0u) {
    return d;
  }
  if (x == b) {
    return 0u;
  }
  let ex = (x >> 23u) & 0xffu;
  let eb = (b >> 23u) & 0xffu;
  // One operand is ±0 or subnormal, the other at least 2: the tiny one is under half an ulp.
  if (max(ex, eb) > 127u) {
    return select(x, b ^ 0x80000000u, eb > ex);
  }
  let ds = taskVectorScaledUp(x) - taskVectorScaledUp(b);
  let dsBits = bitcast<u32>(ds);
  if (((dsBits >> 23u) & 0xffu) >= 65u) {
    return dsBits - (64u << 23u); // |δ| ≥ 2^-126: normal
  }
  // |δ| < 2^-126: a subnormal (or 0), exact; its bits are its count of 2^-149.
  return (dsBits & 0x80000000u) | u32(abs(ds) * 0x1p85f);
}
