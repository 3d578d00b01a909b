// ToMe's edge ranking (Bolya et al. 2023, §3, step 4: sort the edges by score) on the device, for
// a plan that never leaves it: rank[i] = the position of A token i in a stable descending sort of
// its item's best scores — #{j : s_j > s_i, or s_j = s_i and j < i} — the reference's
// descendingOrder, tie rule included. O(|A|²) comparisons per item, no sort: exact and simple,
// and cheap next to the match (|A|·|B|·C). Masked rows carry the sentinel -2, below any cosine.

struct Params {
  total: u32, // B · |A|
  nA: u32,
  gridX: u32, // workgroups per row of the 2-D dispatch grid
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// best-match.wgsl's result: [total] best scores as f32 bits, then [total] best B indices.
@group(0) @binding(1) var<storage, read> matches: array<u32>;
@group(0) @binding(2) var<storage, read_write> rank: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = (wg.y * params.gridX + wg.x) * 256u + li;
  if (g >= params.total) {
    return;
  }
  let first = (g / params.nA) * params.nA;
  let i = g - first;
  let s = bitcast<f32>(matches[g]);
  var before = 0u;
  for (var j = 0u; j < params.nA; j++) {
    let sj = bitcast<f32>(matches[first + j]);
    if (sj > s || (sj == s && j < i)) {
      before++;
    }
  }
  rank[g] = before;
}
