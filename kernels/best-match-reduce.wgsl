// Second step of best-match.wgsl when B was split across workgroups: per A row, the first strict
// maximum over the splits' partial bests (splits cover increasing column ranges, so this is the
// lowest index on equal scores, as in one pass). Same slice layout as best-match.wgsl.

struct Params {
  total: u32,  // batch · nA
  splits: u32,
  rowsX: u32,  // rows covered by one row of the dispatch grid (x workgroups · 256)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partial: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.y * params.rowsX + gid.x;
  if (i >= params.total) {
    return;
  }
  var best = bitcast<f32>(partial[i]);
  var bestJ = partial[params.total + i];
  for (var s = 1u; s < params.splits; s++) {
    let score = bitcast<f32>(partial[s * 2u * params.total + i]);
    if (score > best) {
      best = score;
      bestJ = partial[s * 2u * params.total + params.total + i];
    }
  }
  out[i] = bitcast<u32>(best);
  out[params.total + i] = bestJ;
}
