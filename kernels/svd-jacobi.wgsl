// One-sided Jacobi on the SVD's n × n core (src/reference/svd.ts jacobiSweeps): one dispatch
// per round of the round-robin order (the circle method), one workgroup per pair of rows (the
// pairs of a round are disjoint, so the workgroups never touch the same row), batch items in y.
// The pair's dot products are summed as double-floats (error-free products by fma, two-sum
// additions): a plain float32 sum stalls the sweeps near 1e-5; where a driver reassociates the
// error terms away the sums degrade to float32 tree sums, still within the webgpu bound.

struct Params {
  n: u32,
  round: u32,
  players: u32,  // n rounded up to even
  tol: f32,      // rotate when |x_p·x_q| > tol·‖x_p‖‖x_q‖
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;     // coreInit: the QR's output [batch, m, n]
@group(0) @binding(2) var<storage, read_write> core: array<f32>;  // [batch, n, n]: rows of R, rotated
@group(0) @binding(3) var<storage, read_write> v: array<f32>;     // [batch, n, n]: the rotations (rows = columns of V)
@group(0) @binding(4) var<storage, read_write> rotations: array<atomic<u32>>; // [0]: rotations made since cleared

// core = the rows of R (upper triangle of a's first n rows), v = I. params.round holds m here.
@compute @workgroup_size(16, 16)
fn coreInit(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let n = params.n;
  let m = params.round;
  let b = wg.z;
  let i = wg.y * 16u + lid.y;
  let c = wg.x * 16u + lid.x;
  if (i >= n || c >= n) { return; }
  core[(b * n + i) * n + c] = select(0.0, a[(b * m + i) * n + c], c >= i);
  v[(b * n + i) * n + c] = select(0.0, 1.0, c == i);
}

// Double-float (hi, lo) arithmetic.
fn twoSum(x: f32, y: f32) -> vec2f {
  let s = x + y;
  let yv = s - x;
  return vec2f(s, (x - (s - yv)) + (y - yv));
}
fn dfAdd(p: vec2f, q: vec2f) -> vec2f {
  let s = twoSum(p.x, q.x);
  let t = s.y + p.y + q.y;
  return twoSum(s.x, t);
}
fn dfProd(x: f32, y: f32) -> vec2f {
  let p = x * y;
  return vec2f(p, fma(x, y, -p));
}

const WG = 64u;
var<workgroup> sums: array<vec2f, 192>; // α, β, γ partials per thread

@compute @workgroup_size(64)
fn jacobiRound(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let n = params.n;
  let last = params.players - 1u;
  let t = wg.x;
  let b = wg.y;
  var i = (params.round + t) % last;
  var j = (params.round + last - t) % last;
  if (t == 0u) { i = params.round % last; j = last; }
  if (i >= n || j >= n) { return; }
  let p = (b * n + min(i, j)) * n;
  let q = (b * n + max(i, j)) * n;
  var app = vec2f(0.0);
  var aqq = vec2f(0.0);
  var apq = vec2f(0.0);
  for (var c = li; c < n; c += WG) {
    let xp = core[p + c];
    let xq = core[q + c];
    app = dfAdd(app, dfProd(xp, xp));
    aqq = dfAdd(aqq, dfProd(xq, xq));
    apq = dfAdd(apq, dfProd(xp, xq));
  }
  sums[li] = app;
  sums[WG + li] = aqq;
  sums[2u * WG + li] = apq;
  for (var half = WG / 2u; half > 0u; half = half >> 1u) {
    workgroupBarrier();
    if (li < half) {
      sums[li] = dfAdd(sums[li], sums[li + half]);
      sums[WG + li] = dfAdd(sums[WG + li], sums[WG + li + half]);
      sums[2u * WG + li] = dfAdd(sums[2u * WG + li], sums[2u * WG + li + half]);
    }
  }
  workgroupBarrier();
  let alpha = sums[0];
  let beta = sums[WG];
  let gamma = sums[2u * WG];
  workgroupBarrier();
  let g = gamma.x + gamma.y;
  let al = alpha.x + alpha.y;
  let be = beta.x + beta.y;
  if (!(abs(g) > params.tol * sqrt(al) * sqrt(be))) { return; }
  // Rutishauser's rotation; β − α from the double-floats (equal norms cancel).
  let zeta = ((beta.x - alpha.x) + (beta.y - alpha.y)) / (2.0 * g);
  let tt = select(-1.0, 1.0, zeta >= 0.0) / (abs(zeta) + sqrt(1.0 + zeta * zeta));
  let cs = 1.0 / sqrt(1.0 + tt * tt);
  let sn = cs * tt;
  for (var c = li; c < n; c += WG) {
    let xp = core[p + c];
    let xq = core[q + c];
    core[p + c] = fma(cs, xp, -sn * xq);
    core[q + c] = fma(sn, xp, cs * xq);
    let vp = v[p + c];
    let vq = v[q + c];
    v[p + c] = fma(cs, vp, -sn * vq);
    v[q + c] = fma(sn, vp, cs * vq);
  }
  if (li == 0u) { atomicAdd(&rotations[0], 1u); }
}
