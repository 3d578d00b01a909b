// Normalisation factors of each row of x [rows, cols], stage 1 of cosine similarity (ToMe,
// Bolya et al. 2023, §3): factors[r] = (s, rnorm) where s = 2^(1-e) scales the row's peak
// magnitude (binary exponent e) into [2, 4) and rnorm = 1 / ||x_r · s||, so that
// x_r / ||x_r|| = (x_r · s) · rnorm. s is a power of two in [2^-126, 2^127]: a normal float, the
// scaling exact, no division (NVIDIA's f32 division goes through a reciprocal that flushes to 0
// for divisors above 2^126), and no finite row overflows its sum of squares (each scaled |x| < 4).
// The consumer must not let the compiler fold s · rnorm into one (possibly subnormal) factor: see
// lib/tile-dot.wgsl. A zero row gets (0, 0), which the consumer maps to 0.

struct Params {
  rows: u32,
  cols: u32,
  rowsPerDispatchX: u32, // workgroups along x × workgroup size: flattens a 2-D dispatch
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> factors: array<vec2f>;

override WORKGROUP_SIZE: u32 = 64;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x + gid.y * params.rowsPerDispatchX;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;
  var peak = 0.0;
  for (var k = 0u; k < params.cols; k++) {
    peak = max(peak, abs(x[base + k]));
  }
  if (peak == 0.0) {
    factors[row] = vec2f(0.0, 0.0);
    return;
  }
  // e = the peak's binary exponent (a subnormal peak counts as 2^-126).
  let e = max(i32((bitcast<u32>(peak) >> 23u) & 0xffu) - 127, -126);
  let scale = bitcast<f32>(u32(128 - e) << 23u); // 2^(1-e), built from its bits
  var sum = 0.0;
  for (var k = 0u; k < params.cols; k++) {
    let v = x[base + k] * scale;
    sum += v * v;
  }
  factors[row] = vec2f(scale, inverseSqrt(sum));
}
