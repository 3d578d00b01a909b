// The randomized SVD's products (Halko, Martinsson & Tropp 2011, Alg. 4.4): out = A·X or Aᵀ·X per
// batch item, A [m, n], X [inner, l] → out [rows, l] (rows, inner = m, n or n, m). One 16 × 16
// output tile per workgroup, the inner dimension in shared 16 × 16 tiles. `eye` writes [I; 0].

struct Params {
  m: u32,
  n: u32,
  l: u32,
  transposeA: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> tileA: array<f32, 256>;
var<workgroup> tileX: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.z;
  let m = params.m;
  let n = params.n;
  let l = params.l;
  let tr = params.transposeA != 0u;
  let rows = select(m, n, tr);
  let inner = select(n, m, tr);
  let row = wg.y * 16u + lid.y;
  let col = wg.x * 16u + lid.x;
  let aBase = b * m * n;
  let xBase = b * inner * l;
  var acc = 0.0;
  for (var k0 = 0u; k0 < inner; k0 += 16u) {
    // tileA[r][t] = op(A)[row0 + r, k0 + t]; tileX[t][c] = X[k0 + t, col0 + c].
    let ar = wg.y * 16u + lid.y;
    let at = k0 + lid.x;
    var av = 0.0;
    if (ar < rows && at < inner) {
      if (tr) { av = a[aBase + at * n + ar]; } else { av = a[aBase + ar * n + at]; }
    }
    tileA[lid.y * 16u + lid.x] = av;
    let xt = k0 + lid.y;
    var xv = 0.0;
    if (xt < inner && col < l) { xv = x[xBase + xt * l + col]; }
    tileX[lid.y * 16u + lid.x] = xv;
    workgroupBarrier();
    for (var t = 0u; t < 16u; t++) { acc = fma(tileA[lid.y * 16u + t], tileX[t * 16u + lid.x], acc); }
    workgroupBarrier();
  }
  if (row < rows && col < l) { out[b * rows * l + row * l + col] = acc; }
}

// out [batch, m, l] = [I; 0] (params.m rows, params.l columns).
@compute @workgroup_size(16, 16)
fn eye(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * 16u + lid.y;
  let col = wg.x * 16u + lid.x;
  if (row < params.m && col < params.l) { out[(wg.z * params.m + row) * params.l + col] = select(0.0, 1.0, row == col); }
}
