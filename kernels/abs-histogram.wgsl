// Radix-select histograms of |δ| over its float bits, for TIES' trim (Yadav et al. 2023, §3: keep
// the top-k magnitudes). Two levels find the exact k-th largest |δ| in linear time, no sort:
// level 0 counts absBits >> 15 into 65536 bins, level 1 counts absBits & 0x7fff into 32768 bins
// per level-0 bin, for `span` consecutive level-0 bins from `prefix` side by side.
// One dispatch serves every request of a call (any model, either level, any span) and reads each
// entry once: δ = f32(model − base) is formed here when a base is bound (hasBase), so the host
// never forms task vectors. Neither histogram fits in workgroup memory (16 KiB guaranteed), so
// bins are global atomics in one buffer, each request at its own offset; level 1 rejects most
// entries before any atomic.

struct Params {
  n: u32,           // entries per model in this block
  numRequests: u32,
  hasBase: u32,     // 1: count |f32(model − base)|
  gridX: u32,       // workgroups per row of the 2-D dispatch grid
}

@group(0) @binding(0) var<uniform> params: Params;
// The float bits, read as integers: a subnormal's bits must survive, and f32 loads may flush them.
@group(0) @binding(1) var<storage, read> models: array<u32>;   // [T][n]
@group(0) @binding(2) var<storage, read> base: array<u32>;     // [n], unused unless hasBase
// Per request, two vec4u: (model, level, first counted bits = prefix << 15, bins) and (offset of its bins, -, -, -).
@group(0) @binding(3) var<storage, read> requests: array<vec4u>;
@group(0) @binding(4) var<storage, read_write> hist: array<atomic<u32>>;

//!include task-vector.wgsl

// Model entry x (float bits) at i, or δ = f32(x − base[i]) when the base is subtracted (a branch,
// not select(), which would evaluate both).
fn taskVectorOf(x: u32, i: u32) -> u32 {
  if (params.hasBase == 1u) {
    return taskVectorBits(x, base[i]);
  }
  return x;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i >= params.n) {
    return;
  }
  var model = 0xffffffffu;
  var a = 0u;
  for (var r = 0u; r < params.numRequests; r++) {
    let q = requests[2u * r];
    if (q.x != model) {
      model = q.x;
      let x = models[model * params.n + i];
      a = taskVectorOf(x, i) & 0x7fffffffu;
    }
    let at = requests[2u * r + 1u].x;
    if (q.y == 0u) {
      atomicAdd(&hist[at + (a >> 15u)], 1u);
    } else {
      let low = a - q.z; // wraps below the first counted bin: rejected with those above the last
      if (low < q.w) {
        atomicAdd(&hist[at + low], 1u);
      }
    }
  }
}
