// Householder QR and the application of Q for the SVD (src/reference/svd.ts householderQR and
// applyQ; LAPACK's sgeqr2 / sorm2r), batched: one item per workgroup row z / x. Step j of the
// QR is three dispatches: `reflector` makes H_j = I − τ_j·v_j·v_jᵀ from column j of x (writing
// β on the diagonal, v_j to refl row j), `reflectW` forms w = v_jᵀ·x[:, c0:], `reflectUpdate`
// subtracts τ_j·v_j·wᵀ. Applying Q to u (x = u, c0 = 0) runs the last two for j = n−1 … 0.
// Sums are tree reductions (error ~ log₂ of the length, not the length, in float32).

struct Params {
  m: u32,      // rows of x
  cols: u32,   // columns of x
  nr: u32,     // reflectors per item (rows of refl)
  j: u32,      // this step's reflector
  c0: u32,     // first column of x to update
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;     // [batch, m, cols]
@group(0) @binding(2) var<storage, read_write> refl: array<f32>;  // [batch, nr, m]: v_j, zero above j, 1 at j
@group(0) @binding(3) var<storage, read_write> tau: array<f32>;   // [batch, nr]
@group(0) @binding(4) var<storage, read_write> w: array<f32>;     // [batch, cols]

var<workgroup> red: array<f32, 256>;

fn reduce256(li: u32, value: f32) -> f32 {
  workgroupBarrier(); // every thread has read the previous reduction's result
  red[li] = value;
  for (var half = 128u; half > 0u; half = half >> 1u) {
    workgroupBarrier();
    if (li < half) { red[li] = red[li] + red[li + half]; }
  }
  return workgroupUniformLoad(&red[0]);
}

@compute @workgroup_size(256)
fn reflector(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.x;
  let m = params.m;
  let n = params.cols;
  let j = params.j;
  let base = b * m * n;
  let rrow = (b * params.nr + j) * m;
  var s = 0.0;
  for (var i = j + 1u + li; i < m; i += 256u) { let v = x[base + i * n + j]; s += v * v; }
  let tail = reduce256(li, s);
  let alpha = x[base + j * n + j];
  if (tail == 0.0) {
    // Already triangular in this column: H_j = I.
    for (var i = li; i < m; i += 256u) { refl[rrow + i] = select(0.0, 1.0, i == j); }
    if (li == 0u) { tau[b * params.nr + j] = 0.0; }
    return;
  }
  let norm = sqrt(alpha * alpha + tail);
  let beta = select(norm, -norm, alpha >= 0.0);
  let scale = 1.0 / (alpha - beta);
  var vv = 0.0;
  for (var i = li; i < m; i += 256u) {
    var v = 0.0;
    if (i == j) { v = 1.0; }
    if (i > j) { v = x[base + i * n + j] * scale; x[base + i * n + j] = 0.0; vv += v * v; }
    refl[rrow + i] = v;
  }
  // τ = 2/‖v‖² from the stored v, so that H_j is orthogonal for the v actually used.
  let norm2 = 1.0 + reduce256(li, vv);
  if (li == 0u) {
    x[base + j * n + j] = beta;
    tau[b * params.nr + j] = 2.0 / norm2;
  }
}

var<workgroup> part: array<f32, 256>;

// w[b, c] = Σ_{i ≥ j} v_j[i]·x[b, i, c] for c0 ≤ c < cols: 16 columns × 16 row slices per workgroup.
@compute @workgroup_size(16, 16)
fn reflectW(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let m = params.m;
  let cols = params.cols;
  let j = params.j;
  let c = params.c0 + wg.x * 16u + lid.x;
  let rrow = (b * params.nr + j) * m;
  var s = 0.0;
  if (c < cols) {
    for (var i = j + lid.y; i < m; i += 16u) { s += refl[rrow + i] * x[(b * m + i) * cols + c]; }
  }
  part[lid.y * 16u + lid.x] = s;
  for (var half = 8u; half > 0u; half = half >> 1u) {
    workgroupBarrier();
    if (lid.y < half) { part[lid.y * 16u + lid.x] += part[(lid.y + half) * 16u + lid.x]; }
  }
  workgroupBarrier();
  if (lid.y == 0u && c < cols) { w[b * cols + c] = part[lid.x]; }
}

// x[b, i, c] −= τ_j·v_j[i]·w[b, c] for i ≥ j, c ≥ c0.
@compute @workgroup_size(16, 16)
fn reflectUpdate(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let m = params.m;
  let cols = params.cols;
  let j = params.j;
  let c = params.c0 + wg.x * 16u + lid.x;
  let i = j + wg.y * 16u + lid.y;
  if (c >= cols || i >= m) { return; }
  let t = tau[b * params.nr + j] * refl[(b * params.nr + j) * m + i];
  let at = (b * m + i) * cols + c;
  x[at] = x[at] - t * w[b * cols + c];
}
