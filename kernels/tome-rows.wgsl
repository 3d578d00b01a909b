// ToMe's output order (Bolya et al. 2023, §3; tome/merge.py's cat[unm, dst]) on the device: the
// output row of every token, from the ranks of tome-rank.wgsl, as outputRows in
// src/reference/bipartite-soft-matching.ts: the r best-ranked A tokens land in their B match's
// row, the other A tokens first (by rank, or by position with a class token), then the B tokens;
// with a distillation token cat[unm[:1], dst[:1], unm[1:], dst[1:]]. Needs r ≥ 1.

struct Params {
  total: u32,  // B · N
  tokens: u32, // N
  nA: u32,
  r: u32,
  classToken: u32,
  distillToken: u32,
  gridX: u32,  // workgroups per row of the 2-D dispatch grid
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> matches: array<u32>; // [B·|A|] score bits, then [B·|A|] B indices
@group(0) @binding(2) var<storage, read> rank: array<u32>;
@group(0) @binding(3) var<storage, read_write> rowOf: array<i32>;

fn dstRow(j: u32) -> u32 {
  if (params.distillToken == 1u && j == 0u) {
    return 1u;
  }
  return params.nA - params.r + j;
}

fn unmRow(k: u32) -> u32 {
  if (params.distillToken == 1u && k > 0u) {
    return k + 1u;
  }
  return k;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = (wg.y * params.gridX + wg.x) * 256u + li;
  if (g >= params.total) {
    return;
  }
  let item = g / params.tokens;
  let t = g % params.tokens;
  let a0 = item * params.nA;
  var row = 0u;
  if (t % 2u == 1u) {
    row = dstRow(t / 2u);
  } else {
    let i = t / 2u;
    let k = rank[a0 + i];
    if (k < params.r) {
      row = dstRow(matches[params.total / params.tokens * params.nA + a0 + i]);
    } else if (params.classToken == 1u) {
      // Kept A tokens in position order: this one's place among them.
      var u = 0u;
      for (var j = 0u; j < i; j++) {
        if (rank[a0 + j] >= params.r) {
          u++;
        }
      }
      row = unmRow(u);
    } else {
      row = unmRow(k - params.r);
    }
  }
  rowOf[g] = i32(row);
}
