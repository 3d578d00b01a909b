// ToMe's merge, merge_wavg and merge_source (Bolya et al. 2023, §3; tome/merge.py) over a plan's
// output groups, as assembly/merge-groups.ts: one workgroup per output row, its invocations across
// the row's features. The reference sums in float64; WGSL has no f64, so sums are carried as an
// unevaluated pair (hi, lo) of float32 — the product w·x split exactly by Dekker's TwoProduct
// (not fma: SPIR-V lets a driver evaluate fma unfused, and software Vulkan does), each addition
// by TwoSum — and the quotient corrected once: within an ulp of the reference, and exact for the
// common rows (one token: a copy). Dekker's split overflows for |w·x| near the float32 maximum.

struct Params {
  rows: u32,    // output rows over the batch, B · (N − r)
  dim: u32,
  mode: u32,    // 0 mean, 1 sum, 2 amax, 3 wavg, 4 source (the identity: one-hot rows of width N)
  hasSize: u32, // wavg: 1 when sizes are given, else every token counts 1
  tokens: u32,  // N
  gridX: u32,   // workgroups per row of the 2-D dispatch grid
  zero: u32,    // always 0, unknown to the compiler: see opaque()
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> size: array<f32>;
// offsets [rows + 1], then the members (flat token indices b·N + t, ascending within a row).
@group(0) @binding(3) var<storage, read> groups: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> outSize: array<f32>;

const MEAN: u32 = 0u;
const AMAX: u32 = 2u;
const WAVG: u32 = 3u;
const SOURCE: u32 = 4u;

// A rounded float32 the compiler cannot fuse or reassociate across (TwoSum depends on it).
fn opaque(v: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(v) | params.zero);
}

// (hi, lo) + v: TwoSum of hi and v, the rounding error folded into lo.
fn add2(acc: vec2f, v: f32) -> vec2f {
  let s = opaque(acc.x + v);
  let bv = opaque(s - acc.x);
  let err = opaque(acc.x - opaque(s - bv)) + opaque(v - bv);
  return vec2f(s, acc.y + err);
}

// Veltkamp's split of a into hi + lo, each with at most 12 significant bits.
fn split(a: f32) -> vec2f {
  let c = opaque(4097.0 * a);
  let hi = opaque(c - opaque(c - a));
  return vec2f(hi, opaque(a - hi));
}

// a·b = p + e exactly (Dekker's TwoProduct): returns (p, e).
fn twoProduct(a: f32, b: f32) -> vec2f {
  let p = opaque(a * b);
  let sa = split(a);
  let sb = split(b);
  let e = opaque(opaque(opaque(opaque(sa.x * sb.x) - p) + opaque(sa.x * sb.y)) + opaque(sa.y * sb.x)) + opaque(sa.y * sb.y);
  // Near the float32 maximum the split overflows: keep the rounded product alone there.
  return vec2f(p, select(0.0, e, isFinite(e)));
}

// (hi + lo) / den, with the rounding of the first quotient corrected by its exact residual.
fn quotient(acc: vec2f, den: f32) -> f32 {
  let q = opaque(opaque(acc.x + acc.y) / den);
  if (!isFinite(q)) {
    return q; // a zero or infinite total size: ±∞ or NaN, as the reference's quotient
  }
  let qd = twoProduct(q, den);
  let residual = opaque(opaque(opaque(acc.x - qd.x) - qd.y) + acc.y);
  return q + residual / den;
}

fn isFinite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn weight(m: u32) -> f32 {
  if (params.mode == WAVG && params.hasSize == 1u) {
    return size[m];
  }
  return 1.0;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.y * params.gridX + wg.x;
  if (row >= params.rows) {
    return;
  }
  let first = groups[row];
  let end = groups[row + 1u];
  let members = params.rows + 1u;
  let dim = params.dim;
  if (params.mode == SOURCE) {
    for (var d = li; d < dim; d += 64u) {
      var v = 0.0;
      for (var k = first; k < end; k++) {
        if (groups[members + k] % params.tokens == d) {
          v = 1.0;
        }
      }
      out[row * dim + d] = v;
    }
    return;
  }
  if (end == first) {
    // No token lands here (a variant's dropped slot): 0, size 0.
    for (var d = li; d < dim; d += 64u) {
      out[row * dim + d] = 0.0;
    }
    if (li == 0u && params.mode == WAVG) {
      outSize[row] = 0.0;
    }
    return;
  }
  var den = vec2f(0.0);
  for (var k = first; k < end; k++) {
    den = add2(den, weight(groups[members + k]));
  }
  let m0 = groups[members + first];
  let w0 = weight(m0);
  // A lone token is its own output: (x·w)/w is exactly x for a finite non-zero w.
  let lone = end - first == 1u && (params.mode != WAVG || (w0 != 0.0 && isFinite(w0)));
  for (var d = li; d < dim; d += 64u) {
    if (lone) {
      out[row * dim + d] = x[m0 * dim + d];
      continue;
    }
    if (params.mode == AMAX) {
      var peak = x[m0 * dim + d];
      for (var k = first + 1u; k < end; k++) {
        peak = max(peak, x[groups[members + k] * dim + d]);
      }
      out[row * dim + d] = peak;
      continue;
    }
    var acc = vec2f(0.0);
    for (var k = first; k < end; k++) {
      let m = groups[members + k];
      let w = weight(m);
      let v = x[m * dim + d];
      let p = twoProduct(w, v);
      acc = add2(acc, p.x);
      acc.y += p.y;
    }
    var div = 1.0;
    if (params.mode == MEAN) {
      div = f32(end - first);
    } else if (params.mode == WAVG) {
      div = den.x + den.y;
    }
    out[row * dim + d] = quotient(acc, div);
  }
  if (li == 0u && params.mode == WAVG) {
    outSize[row] = den.x + den.y;
  }
}
