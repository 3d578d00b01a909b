// Normalisation factors of each row of x [rows, cols], stage 1 of cosine similarity (ToMe,
// Bolya et al. 2023, §3): factors[r] = (peak, rnorm) with peak = max |x_r| and
// rnorm = 1 / ||x_r / peak||, so x_r / ||x_r|| = (x_r / peak) * rnorm. Keeping the two apart
// means no factor is ever subnormal (GPUs may flush those to zero) and no finite f32 row
// overflows its sum of squares. A zero row gets peak 0, which the consumer maps to 0.

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
  var sum = 0.0;
  for (var k = 0u; k < params.cols; k++) {
    let v = x[base + k] / peak;
    sum += v * v;
  }
  factors[row] = vec2f(peak, inverseSqrt(sum));
}
