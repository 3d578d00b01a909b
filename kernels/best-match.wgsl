// Best match per A token for bipartite soft matching (ToMe, Bolya et al. 2023, §3, step 3):
// bestScore[t, i] = max_j â[t, i] · b̂[t, j] and bestIdx[t, i] = the lowest j attaining it.
// Fused with the similarity: a 16×16 workgroup owns 64 rows of A, walks all of B in 64-column
// tiles (lib/tile-dot.wgsl), keeps a running best per row in registers, then reduces across its
// 16 column-threads. No |A| × |B| matrix is stored. For few A rows, B is split into
// `splits` contiguous column ranges (workgroup x): each writes its partial best to its own slice
// of `out`, and best-match-reduce.wgsl keeps the first strict maximum across slices, i.e. the
// lowest index — the same result as one range.
// Masked entries and empty rows use the sentinel -2 (below any cosine); the host maps it to -∞.

struct Params {
  nA: u32,
  nB: u32,
  c: u32,
  batchOffset: u32,
  maskFirstA: u32, // 1: A row 0 is never a source (class token)
  maskFirstB: u32, // 1: B row 0 is never a destination (distillation token)
  total: u32,      // batch · nA: where the indices start in a slice of `out`
  splitTiles: u32, // 64-column tiles of B per split
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> factorsA: array<vec2f>; // (s, rnorm) per row of a: â = (a · s) · rnorm
@group(0) @binding(4) var<storage, read> factorsB: array<vec2f>;
// Slice s (of 2·total words): [0, total) best scores as f32 bits, [total, 2·total) best indices.
// (Scores are bitcast rather than indices: a small integer's bits read as f32 are subnormal and
// may be flushed.)
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

const NONE: f32 = -2.0;

//!include tile-dot.wgsl

var<workgroup> partScore: array<array<f32, 16>, 64>; // [row][column-thread]
var<workgroup> partIdx: array<array<u32, 16>, 64>;

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(local_invocation_index) li: u32,
) {
  let t = wg.z + params.batchOffset;
  let rowBase = wg.y * TILE;
  let aOff = t * params.nA;
  let bOff = t * params.nB;

  var best: array<f32, 4>;
  var bestJ: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    best[i] = NONE;
    bestJ[i] = 0u;
  }

  let colStart = wg.x * params.splitTiles * TILE;
  let colEnd = min(params.nB, colStart + params.splitTiles * TILE);
  for (var colBase = colStart; colBase < colEnd; colBase += TILE) {
    let acc = tileDot(rowBase, colBase, params.nA, params.nB, params.c, aOff, bOff, lid, li);
    // This thread sees its columns in increasing order: strictly greater keeps the lowest index.
    for (var j = 0u; j < 4u; j++) {
      let gj = colBase + lid.x * 4u + j;
      let valid = gj < params.nB && !(params.maskFirstB == 1u && gj == 0u);
      for (var i = 0u; i < 4u; i++) {
        if (valid && acc[i][j] > best[i]) {
          best[i] = acc[i][j];
          bestJ[i] = gj;
        }
      }
    }
  }

  for (var i = 0u; i < 4u; i++) {
    partScore[lid.y * 4u + i][lid.x] = best[i];
    partIdx[lid.y * 4u + i][lid.x] = bestJ[i];
  }
  workgroupBarrier();
  if (lid.x == 0u) {
    for (var i = 0u; i < 4u; i++) {
      let row = lid.y * 4u + i;
      let gi = rowBase + row;
      if (gi >= params.nA) {
        break;
      }
      var s = NONE;
      var j = 0u;
      for (var x = 0u; x < 16u; x++) {
        let ps = partScore[row][x];
        let pj = partIdx[row][x];
        if (ps > s || (ps == s && ps > NONE && pj < j)) {
          s = ps;
          j = pj;
        }
      }
      if (params.maskFirstA == 1u && gi == 0u) {
        s = NONE;
        j = 0u;
      }
      let slice = wg.x * 2u * params.total;
      out[slice + aOff + gi] = bitcast<u32>(s);
      out[slice + params.total + aOff + gi] = j;
    }
  }
}
