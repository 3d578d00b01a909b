// Proportional grouped-query attention over a (compressed) KV cache:
// out = softmax(q·kᵀ/√D + log size)·V (ToMe §3; Chelsea's attention over merged slots).
// One workgroup per (query, query head): keys in tiles of 64, one logit per thread, an online
// softmax (running max and sum, the accumulator rescaled when the max grows), the values of a tile
// accumulated dimension-parallel (each thread owns up to 4 value dimensions). Query head h reads
// KV head h / (Hq / Hkv). Causal: key j at position[kv, j] (or j) is visible when ≤ queryStart + i.

struct Params {
  queryHeads: u32,
  kvHeads: u32,
  queries: u32,
  tk: u32,
  d: u32,
  dv: u32,
  causal: u32,
  hasPosition: u32,
  hasLogSize: u32,
  queryStart: i32,
  scale: f32,
  queryOffset: u32, // the first query of this dispatch (dispatches split at maxComputeWorkgroupsPerDimension)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<f32>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read> logSize: array<f32>;
@group(0) @binding(5) var<storage, read> position: array<i32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const TILE: u32 = 64u;
const NEG: f32 = -3.0e38; // "masked": below any logit

var<workgroup> w: array<f32, TILE>;
var<workgroup> tileMax: array<f32, TILE>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg.x + params.queryOffset;
  let h = wg.y;
  let kv = h / (params.queryHeads / params.kvHeads);
  let d = params.d;
  let dv = params.dv;
  let tk = params.tk;
  let qo = (h * params.queries + i) * d;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var runMax = NEG;
  var runSum = 0.0;
  for (var base = 0u; base < tk; base += TILE) {
    let j = base + lid;
    var logit = NEG;
    if (j < tk) {
      let p = select(i32(j), position[kv * tk + j], params.hasPosition == 1u);
      if (params.causal == 0u || p <= params.queryStart + i32(i)) {
        var dot = 0.0;
        for (var e = 0u; e < d; e++) { dot += q[qo + e] * keys[(kv * tk + j) * d + e]; }
        logit = dot * params.scale;
        if (params.hasLogSize == 1u) { logit += logSize[kv * tk + j]; }
      }
    }
    tileMax[lid] = logit;
    workgroupBarrier();
    for (var stride = TILE / 2u; stride > 0u; stride /= 2u) {
      if (lid < stride) { tileMax[lid] = max(tileMax[lid], tileMax[lid + stride]); }
      workgroupBarrier();
    }
    let newMax = max(runMax, tileMax[0]);
    w[lid] = select(0.0, exp(logit - newMax), logit > NEG);
    workgroupBarrier();
    // Every thread keeps the same running sum (the tile's weights summed in the same order).
    let rescale = select(0.0, exp(runMax - newMax), runMax > NEG);
    var tileSum = 0.0;
    for (var k = 0u; k < TILE; k++) { tileSum += w[k]; }
    runSum = runSum * rescale + tileSum;
    runMax = newMax;
    for (var c = 0u; c < 4u; c++) {
      let e = lid + c * TILE;
      if (e < dv) {
        var a = acc[c] * rescale;
        for (var k = 0u; k < TILE; k++) {
          if (base + k < tk) { a += w[k] * values[(kv * tk + base + k) * dv + e]; }
        }
        acc[c] = a;
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let e = lid + c * TILE;
    if (e < dv) {
      // A query that sees no key gets zeros.
      out[(h * params.queries + i) * dv + e] = select(0.0, acc[c] / runSum, runSum > 0.0);
    }
  }
}
