// Batched cosine similarity: out[t, i, j] = â[t, i] · b̂[t, j] with x̂ = (x / peak) · rnorm, the
// factors from row-inv-norm.wgsl.
// Stage 2 of cosine similarity (ToMe, Bolya et al. 2023, §3). A 16×16 workgroup computes a
// 64×64 output tile, each invocation a 4×4 block held in registers; 64×16 slices of A and B
// are staged in workgroup memory (8 KiB, under the 16 KiB default). Rows are normalised as
// they are staged, so the dot products never overflow.

struct Params {
  m: u32,
  n: u32,
  c: u32,
  batchOffset: u32, // first batch item of this dispatch (batches beyond 65535 are split)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> factorsA: array<vec2f>; // (peak, rnorm) per row of a
@group(0) @binding(4) var<storage, read> factorsB: array<vec2f>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> tileA: array<array<f32, 64>, 16>; // [k][row]
var<workgroup> tileB: array<array<f32, 64>, 16>; // [k][col]

fn normalized(v: f32, f: vec2f) -> f32 {
  return select(0.0, (v / f.x) * f.y, f.x > 0.0);
}

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let t = wg.z + params.batchOffset;
  let rowBase = wg.y * TILE;
  let colBase = wg.x * TILE;
  let aOff = t * params.m;
  let bOff = t * params.n;

  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < params.c; k0 += TK) {
    // Stage: 1024 values of each tile, 4 per invocation, consecutive invocations read
    // consecutive k so the loads are contiguous.
    for (var q = 0u; q < 4u; q++) {
      let idx = li + q * 256u;
      let r = idx / TK;
      let k = idx % TK;
      let gk = k0 + k;
      let ga = rowBase + r;
      var va = 0.0;
      if (ga < params.m && gk < params.c) {
        va = normalized(a[(aOff + ga) * params.c + gk], factorsA[aOff + ga]);
      }
      tileA[k][r] = va;
      let gb = colBase + r;
      var vb = 0.0;
      if (gb < params.n && gk < params.c) {
        vb = normalized(b[(bOff + gb) * params.c + gk], factorsB[bOff + gb]);
      }
      tileB[k][r] = vb;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var ra: array<f32, 4>;
      var rb: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ra[i] = tileA[k][lid.y * 4u + i];
        rb[i] = tileB[k][lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    let gi = rowBase + lid.y * 4u + i;
    if (gi >= params.m) {
      break;
    }
    for (var j = 0u; j < 4u; j++) {
      let gj = colBase + lid.x * 4u + j;
      if (gj < params.n) {
        out[(t * params.m + gi) * params.n + gj] = acc[i][j];
      }
    }
  }
}
