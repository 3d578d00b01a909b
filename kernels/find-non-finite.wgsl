// The first NaN or ±Infinity of a tensor (a check before merging: model merging, mergekit's
// inputs). An entry is non-finite iff its exponent bits are all ones; the lowest such index wins.

struct Params {
  n: u32,
  gridX: u32, // workgroups per row of the 2-D dispatch grid
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// The float bits, read as integers: no float load may canonicalise a NaN or flush a subnormal.
@group(0) @binding(1) var<storage, read> x: array<u32>;
// One word, 0xffffffff on entry: the lowest non-finite index found.
@group(0) @binding(2) var<storage, read_write> first: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i < params.n && (x[i] & 0x7f800000u) == 0x7f800000u) {
    atomicMin(&first[0], i);
  }
}
