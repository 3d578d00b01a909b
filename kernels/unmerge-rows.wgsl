// ToMe's unmerge (Bolya et al. 2023; tomesd's unmerge after attention/MLP), as ungroupRows in
// assembly/merge-groups.ts: token t of item b gets row rowOf[b·N + t] of y [B, M, D], or zeros
// where that is -1 (a token a variant dropped). One invocation per output value.

struct Params {
  total: u32, // B · N · D
  n: u32,
  m: u32,
  dim: u32,
  gridX: u32, // workgroups per row of the 2-D dispatch grid
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> rowOf: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i >= params.total) {
    return;
  }
  let token = i / params.dim;
  let d = i % params.dim;
  let row = rowOf[token];
  var v = 0.0;
  if (row >= 0) {
    v = y[((token / params.n) * params.m + u32(row)) * params.dim + d];
  }
  out[i] = v;
}
