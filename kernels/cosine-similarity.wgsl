// Batched cosine similarity: out[t, i, j] = â[t, i] · b̂[t, j] with x̂ = (x · s) · rnorm, the
// factors from row-inv-norm.wgsl.
// Stage 2 of cosine similarity (ToMe, Bolya et al. 2023, §3): one 64×64 output tile per
// workgroup (lib/tile-dot.wgsl).

struct Params {
  m: u32,
  n: u32,
  c: u32,
  batchOffset: u32, // first batch item of this dispatch (batches beyond 65535 are split)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> factorsA: array<vec2f>; // (s, rnorm) per row of a: â = (a · s) · rnorm
@group(0) @binding(4) var<storage, read> factorsB: array<vec2f>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

//!include tile-dot.wgsl

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

  let acc = tileDot(rowBase, colBase, params.m, params.n, params.c, aOff, bOff, lid, li);
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
