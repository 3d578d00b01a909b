// DARE's drop and rescale (Yu et al. 2024, §3): keep each entry with probability p, scale the
// survivors. The draw for flat index i is a counter-based hash (murmur3's fmix32) of (key, i), so a
// mask depends on neither backend, chunking nor thread order: kept iff uniform24(key, i) < p·2^24.
// Also returns per-workgroup partial sums (Σ|x|, Σ|kept x|) for mergekit's L1-norm-matching
// rescale; the host adds them in float64.

struct Params {
  n: u32,
  key: u32,
  offsetLo: u32, // flat index of entry 0 in the tensor, low and high 32 bits (indices are 53-bit)
  offsetHi: u32,
  cut: u32,      // ceil(p·2^24): for an integer u, u < p·2^24 iff u < cut
  scale: f32,
  gridX: u32,    // workgroups per row of the 2-D dispatch grid
  groups: u32,   // workgroups that hold entries (the grid may have more)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec2f>; // per workgroup: (Σ|x|, Σ|kept x|)

var<workgroup> sums: array<vec2f, 256>;

fn fmix32(h0: u32) -> u32 {
  var h = h0;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let group = wg.y * params.gridX + wg.x;
  let i = group * 256u + li;
  var s = vec2f(0.0, 0.0);
  if (i < params.n) {
    let v = x[i];
    // 64-bit flat index: carry into the high word when the low word wraps inside this chunk.
    let lo = params.offsetLo + i;
    let hi = params.offsetHi + select(0u, 1u, lo < params.offsetLo);
    let u = fmix32(fmix32(lo ^ params.key) + hi + 0x9e3779b9u) >> 8u;
    let kept = u < params.cut;
    s = vec2f(abs(v), select(0.0, abs(v), kept));
    out[i] = select(0.0, v * params.scale, kept);
  }
  sums[li] = s;
  workgroupBarrier();
  for (var half = 128u; half > 0u; half >>= 1u) {
    if (li < half) {
      sums[li] += sums[li + half];
    }
    workgroupBarrier();
  }
  if (li == 0u && group < params.groups) {
    partial[group] = sums[0];
  }
}
