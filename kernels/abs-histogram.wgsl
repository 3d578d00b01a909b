// Radix-select histogram of |x| over its float bits, for TIES' trim (Yadav et al. 2023, §3: keep
// the top-k magnitudes). Two passes find the exact k-th largest |x| in linear time, no sort:
// level 0 counts absBits >> 15 into 65536 bins, level 1 counts absBits & 0x7fff into 32768 bins
// for the entries of one level-0 bin (`prefix`).
// Neither histogram fits in workgroup memory (16 KiB guaranteed), so bins are global atomics,
// accumulated onto the caller's counts. Level 1 rejects most entries before any atomic.

struct Params {
  n: u32,
  level: u32,
  prefix: u32,
  gridX: u32, // workgroups per row of the 2-D dispatch grid
}

@group(0) @binding(0) var<uniform> params: Params;
// The float bits, read as integers: a subnormal's bits must survive, and f32 loads may flush them.
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i >= params.n) {
    return;
  }
  let a = x[i] & 0x7fffffffu;
  if (params.level == 0u) {
    atomicAdd(&hist[a >> 15u], 1u);
  } else if ((a >> 15u) == params.prefix) {
    atomicAdd(&hist[a & 0x7fffu], 1u);
  }
}
