// ToMe's bipartite split (Bolya et al. 2023, §3, step 1) on the device: the even tokens of
// metric [B, N, C] go to A [B, ceil(N/2), C], the odd ones to B [B, floor(N/2), C], so a metric
// that lives on the GPU is matched without a trip to the host. One invocation per value.

struct Params {
  total: u32,  // B · N · C
  tokens: u32, // N
  c: u32,
  gridX: u32,  // workgroups per row of the 2-D dispatch grid
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> metric: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i >= params.total) {
    return;
  }
  let row = i / params.c;
  let k = i % params.c;
  let item = row / params.tokens;
  let token = row % params.tokens;
  let nA = (params.tokens + 1u) / 2u;
  let nB = params.tokens / 2u;
  if (token % 2u == 0u) {
    a[(item * nA + token / 2u) * params.c + k] = metric[i];
  } else {
    b[(item * nB + token / 2u) * params.c + k] = metric[i];
  }
}
