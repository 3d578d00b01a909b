// DARE's drop and rescale (Yu et al. 2024, §3): keep each entry with probability p, scale the
// survivors. The draw for flat index i is a counter-based hash (murmur3's fmix32) of (key, i), so a
// mask depends on neither backend, chunking nor thread order: kept iff uniform24(key, i) < p·2^24.
// Also returns per-workgroup partial sums (Σ|x|, Σ|kept x|) for mergekit's L1-norm-matching
// rescale, each a double-float (hi + lo, about 44 significant bits) so that they agree with the
// reference's float64 sums to ~1e-12; the host adds them in float64.
// `scale` is a float64 in the reference: it arrives as scaleHi + scaleLo, and v · scale is formed
// exactly (Dekker's product) before its one rounding to float32.
// These error-free transformations hold only if every operation is rounded as written: compilers
// that simplify or fuse float arithmetic (lavapipe's did: the low words came out 0) cannot see
// through `opaque`.

struct Params {
  n: u32,
  key: u32,
  offsetLo: u32, // flat index of entry 0 in the tensor, low and high 32 bits (indices are 53-bit)
  offsetHi: u32,
  cut: u32,      // ceil(p·2^24): for an integer u, u < p·2^24 iff u < cut
  scaleHi: f32,  // f32(scale)
  scaleLo: f32,  // f32(scale - scaleHi)
  gridX: u32,    // workgroups per row of the 2-D dispatch grid
  groups: u32,   // workgroups that hold entries (the grid may have more)
  zero: u32,     // always 0, unknown to the compiler: see opaque()
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// Per workgroup: Σ|x| as (hi, lo), then Σ|kept x| as (hi, lo).
@group(0) @binding(3) var<storage, read_write> partial: array<vec4f>;

const ITEMS: u32 = 16u; // entries per invocation: a workgroup covers 4096 entries

var<workgroup> sums: array<vec4f, 256>;

fn fmix32(h0: u32) -> u32 {
  var h = h0;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h;
}

// A rounded float32 the compiler can neither fuse with nor cancel against later arithmetic.
fn opaque(v: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(v) | params.zero);
}

// a + b as an unevaluated pair (rounded sum, exact error): Knuth's TwoSum.
fn twoSum(a: f32, b: f32) -> vec2f {
  let s = opaque(a + b);
  let bb = opaque(s - a);
  return vec2f(s, opaque(a - opaque(s - bb)) + opaque(b - bb));
}

fn isFinite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Double-float addition of (hi, lo) pairs. An infinite or NaN sum is kept as it is (hi, 0), as
// float64 would (the error terms would turn ∞ into NaN).
fn addDF(x: vec2f, y: vec2f) -> vec2f {
  let s = twoSum(x.x, y.x);
  if (!isFinite(s.x)) {
    return vec2f(s.x, 0.0);
  }
  let e = opaque(s.y + opaque(x.y + y.y));
  let hi = opaque(s.x + e);
  return vec2f(hi, e - opaque(hi - s.x));
}

// The upper 12 significant bits of a, and the rest: both halves' products are exact in f32.
fn split(a: f32) -> vec2f {
  let hi = bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
  return vec2f(hi, opaque(a - hi));
}

// f32(v · (scaleHi + scaleLo)) from the exact product v · scaleHi = p + err (Dekker).
fn scaled(v: f32) -> f32 {
  let p = opaque(v * params.scaleHi);
  if (!isFinite(p)) {
    return p;
  }
  let a = split(v);
  let b = split(params.scaleHi);
  let err = opaque(opaque(opaque(opaque(a.x * b.x) - p) + opaque(a.x * b.y)) + opaque(a.y * b.x)) + opaque(a.y * b.y);
  return p + opaque(err + opaque(v * params.scaleLo));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let group = wg.y * params.gridX + wg.x;
  var sumAbs = vec2f(0.0, 0.0);
  var sumKept = vec2f(0.0, 0.0);
  for (var k = 0u; k < ITEMS; k++) {
    // Consecutive invocations take consecutive entries.
    let i = group * 256u * ITEMS + k * 256u + li;
    if (i < params.n) {
      let v = x[i];
      // 64-bit flat index: carry into the high word when the low word wraps inside this chunk.
      let lo = params.offsetLo + i;
      let hi = params.offsetHi + select(0u, 1u, lo < params.offsetLo);
      let u = fmix32(fmix32(lo ^ params.key) + hi + 0x9e3779b9u) >> 8u;
      let kept = u < params.cut;
      sumAbs = addDF(sumAbs, vec2f(abs(v), 0.0));
      if (kept) {
        sumKept = addDF(sumKept, vec2f(abs(v), 0.0));
      }
      out[i] = select(0.0, scaled(v), kept);
    }
  }
  sums[li] = vec4f(sumAbs, sumKept);
  workgroupBarrier();
  for (var half = 128u; half > 0u; half >>= 1u) {
    if (li < half) {
      let a = sums[li];
      let b = sums[li + half];
      sums[li] = vec4f(addDF(a.xy, b.xy), addDF(a.zw, b.zw));
    }
    workgroupBarrier();
  }
  if (li == 0u && group < params.groups) {
    partial[group] = sums[0];
  }
}
