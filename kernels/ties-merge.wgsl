// TIES merging (Yadav et al. 2023, §3), stage 3 of 3, fused per entry: trim (keep |δ_t| above the
// model's threshold, and ties before the model's cutoff index from stages 1–2), elect the sign
// (of Σ D_t or Σ sign(D_t), D_t = w_t·δ_t), then the disjoint merge of the agreeing D_t, and
// out = base + λ·mix. Sums run over t in order in float32, as in the reference.
// D_t and λ·mix pass through `opaque` so that no compiler contracts them into an FMA with the
// following addition: the reference rounds after every operation, and a vote total that is
// exactly 0 there must be exactly 0 here.
// Trim compares integer bits, so it is exact for every input. WGSL lets a device flush subnormals
// (SwiftShader does): a product D_t below 2^-126 in magnitude may then count as 0 in the vote and
// the merge, where the reference keeps its sign.

struct Params {
  n: u32,        // entries per model in this block
  T: u32,        // models
  vote: u32,     // 0 sum, 1 count, 2 none
  merge: u32,    // 0 sum, 1 mean, 2 normalize, 3 max
  output: u32,   // 0 merged, 1 sign, 2 none (only the counts)
  zeroSign: f32, // the elected sign where the vote total is 0
  lambda: f32,
  hasBase: u32,
  gridX: u32,    // workgroups per row of the 2-D dispatch grid
  zero: u32,     // always 0, unknown to the compiler: see opaque()
  subtract: u32, // 1: δ_t = f32(model_t − base)
  counting: u32, // 1: add the counts to tally
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> models: array<u32>;      // [T][n] float bits
@group(0) @binding(2) var<storage, read> base: array<u32>;        // [n] float bits, unused unless hasBase or subtract
@group(0) @binding(3) var<storage, read> modelInfo: array<vec4u>; // per model: (weight bits, thr, tie cutoff, -)
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// (votes > 0, votes < 0, undecided, -) over the whole dispatch, zeroed by the host.
@group(0) @binding(5) var<storage, read_write> tally: array<atomic<u32>, 4>;

var<workgroup> groupTally: array<atomic<u32>, 3>;

//!include task-vector.wgsl

// Model entry x (float bits) at i, or δ = f32(x − base[i]) when the base is subtracted (a branch,
// not select(), which would evaluate both).
fn taskVectorOf(x: u32, i: u32) -> u32 {
  if (params.subtract == 1u) {
    return taskVectorBits(x, base[i]);
  }
  return x;
}

// The largest float32 below 1e-8: |Σw| < 1e-8 (a float64 comparison in the reference) iff |Σw| ≤ this.
const BELOW_1E_8: u32 = 0x322bcc77u;

// A rounded float32 the compiler cannot fuse into a later addition.
fn opaque(v: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(v) | params.zero);
}

fn signOf(v: f32) -> f32 {
  return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0);
}

// D_t = w_t · δ_t if entry i of model t survives the trim, else 0.
fn trimmed(t: u32, i: u32) -> f32 {
  let info = modelInfo[t];
  let x = models[t * params.n + i];
  let bits = taskVectorOf(x, i);
  let a = bitcast<i32>(bits & 0x7fffffffu);
  let thr = bitcast<i32>(info.y);
  let keep = a > thr || (a == thr && i < info.z);
  return select(0.0, opaque(bitcast<f32>(info.x) * bitcast<f32>(bits)), keep);
}

// Two entry points: without counting no barrier at all (a barrier makes SwiftShader run every
// invocation as a coroutine, several times slower even where it is never reached).
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i < params.n) {
    entry(i);
  }
}

@compute @workgroup_size(256)
fn mainCounting(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * params.gridX + wg.x) * 256u + li;
  if (i < params.n) {
    entry(i);
  }
  workgroupBarrier();
  {
    if (li == 0u) {
      for (var k = 0u; k < 3u; k++) {
        let c = atomicLoad(&groupTally[k]);
        if (c > 0u) {
          atomicAdd(&tally[k], c);
        }
      }
    }
  }
}

fn entry(i: u32) {
  // Elect.
  var sign = 0.0;
  if (params.vote != 2u) {
    var total = 0.0;
    var agrees = false; // some D_t has the sign zeroSign would elect
    for (var t = 0u; t < params.T; t++) {
      let d = trimmed(t, i);
      if (params.vote == 0u) {
        total += d;
      } else {
        total += signOf(d);
      }
      agrees = agrees || signOf(d) == params.zeroSign;
    }
    sign = select(select(params.zeroSign, -1.0, total < 0.0), 1.0, total > 0.0);
    if (params.counting == 1u) {
      if (total > 0.0) {
        atomicAdd(&groupTally[0], 1u);
      } else if (total < 0.0) {
        atomicAdd(&groupTally[1], 1u);
      } else if (agrees) {
        atomicAdd(&groupTally[2], 1u); // 0 or NaN: zeroSign elected it
      }
    }
  }
  if (params.output == 2u) {
    return;
  }
  if (params.output == 1u) {
    out[i] = sign;
    return;
  }
  // Disjoint merge.
  var sum = 0.0;
  var wsum = 0.0;
  var count = 0u;
  var peak = 0.0;
  for (var t = 0u; t < params.T; t++) {
    let d = trimmed(t, i);
    if (params.vote != 2u && signOf(d) != sign) {
      continue;
    }
    sum += d;
    wsum += bitcast<f32>(modelInfo[t].x);
    if (d != 0.0) {
      count++;
    }
    if (abs(d) > abs(peak)) {
      peak = d;
    }
  }
  var mix = sum;
  if (params.merge == 1u) {
    mix = sum / f32(max(1u, count));
  } else if (params.merge == 2u) {
    var div = wsum;
    let degenerate = select(div == 0.0, abs(div) <= bitcast<f32>(BELOW_1E_8), params.vote == 2u);
    if (degenerate) {
      div = 1.0;
    }
    mix = sum / div;
  } else if (params.merge == 3u) {
    mix = peak;
  }
  var b = 0.0;
  if (params.hasBase == 1u) {
    b = bitcast<f32>(base[i]);
  }
  out[i] = b + opaque(params.lambda * mix);
}
