// KV-cache clustering (Chelsea, "Efficient Long-Context LLM Inference via KV Cache Clustering",
// 2025): chunked soft matching, every (chunk, head) in one workgroup, all rounds in one dispatch.
// Semantics and tie rules: src/reference/kv-clustering.ts. A round: the live slots alternate into
// A and B; each A thread finds its best B by cosine of the key sums (strictly greater: the lowest
// B wins a tie); its rank among the A scores (descending, lower A first on ties) decides whether
// it is among the r that merge; the merges add sums dimension-parallel, in ascending A order.
// Workgroup x = nChunks copies the sinks and the recent window of head y.

struct Params {
  tokens: u32,
  d: u32,
  dv: u32,
  slots: u32,      // M
  nChunks: u32,
  sinks: u32,
  recent: u32,
  hasSize: u32,
  maxLen: u32,     // the longest chunk (scratch rows per (head, chunk))
  valuesAt: u32,   // offsets into `out` (words): values [H, M, dv], sizes [H, M], positions [H, M], assignment [H, T]
  sizeAt: u32,
  positionAt: u32,
  assignmentAt: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys: array<f32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read> sizes: array<f32>;
@group(0) @binding(4) var<storage, read> chunks: array<vec4u>; // (start, length, keep, first output slot)
@group(0) @binding(5) var<storage, read_write> sums: array<f32>; // per (head, chunk): maxLen rows of d key sums then maxLen rows of dv value sums
// Keys [H, M, d] at 0, then values, sizes (f32 bits), positions and assignment (i32 bits): integers
// are stored as u32 words, never as f32 (a small integer's bits read as f32 are subnormal and may be flushed).
@group(0) @binding(6) var<storage, read_write> out: array<u32>;

const WG: u32 = 64u;
const MAX_CHUNK: u32 = 256u;
const HALF: u32 = 128u;

var<workgroup> live: array<u32, MAX_CHUNK>;
var<workgroup> into: array<i32, MAX_CHUNK>;
var<workgroup> size: array<f32, MAX_CHUNK>;
var<workgroup> invNorm: array<f32, MAX_CHUNK>; // by live index
var<workgroup> slotOf: array<u32, MAX_CHUNK>;
var<workgroup> bestScore: array<f32, HALF>;
var<workgroup> bestIdx: array<u32, HALF>;
var<workgroup> merged: array<u32, HALF>; // 1: A index merges this round
var<workgroup> count: u32;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let d = params.d;
  let dv = params.dv;
  let T = params.tokens;
  let M = params.slots;
  if (wg.x == params.nChunks) {
    // The protected tokens: single slots, copied.
    let w = params.recent;
    let s = params.sinks;
    for (var i = lid; i < s + w; i += WG) {
      let t = select(T - w + (i - s), i, i < s);
      let o = select(M - w + (i - s), i, i < s);
      for (var e = 0u; e < d; e++) { out[(h * M + o) * d + e] = bitcast<u32>(keys[(h * T + t) * d + e]); }
      for (var e = 0u; e < dv; e++) { out[params.valuesAt + (h * M + o) * dv + e] = bitcast<u32>(values[(h * T + t) * dv + e]); }
      out[params.sizeAt + h * M + o] = bitcast<u32>(select(1.0, sizes[h * T + t], params.hasSize == 1u));
      out[params.positionAt + h * M + o] = t;
      out[params.assignmentAt + h * T + t] = o;
    }
    return;
  }
  let chunk = chunks[wg.x];
  let start = chunk.x;
  let n = chunk.y;
  let keep = chunk.z;
  let firstSlot = chunk.w;
  let ks = (h * params.nChunks + wg.x) * params.maxLen * (d + dv); // this chunk's key sums
  let vs = ks + params.maxLen * d;                                  // and value sums
  for (var i = lid; i < n; i += WG) {
    let t = h * T + start + i;
    let s = select(1.0, sizes[t], params.hasSize == 1u);
    size[i] = s;
    live[i] = i;
    into[i] = -1;
    for (var e = 0u; e < d; e++) { sums[ks + i * d + e] = s * keys[t * d + e]; }
    for (var e = 0u; e < dv; e++) { sums[vs + i * dv + e] = s * values[t * dv + e]; }
  }
  if (lid == 0u) { count = n; }
  storageBarrier();
  var live_n = workgroupUniformLoad(&count);
  loop {
    if (live_n <= keep) { break; }
    let nA = (live_n + 1u) / 2u;
    let nB = live_n / 2u;
    let r = min(live_n - keep, nA);
    // 1/‖key sum‖ of every live slot (0 for a zero row: similarity 0 with everything).
    for (var i = lid; i < live_n; i += WG) {
      let row = ks + live[i] * d;
      var ss = 0.0;
      for (var e = 0u; e < d; e++) { let v = sums[row + e]; ss += v * v; }
      invNorm[i] = select(0.0, inverseSqrt(ss), ss > 0.0);
    }
    workgroupBarrier();
    // Each A slot's best B (A = live 0, 2, 4, …; B = live 1, 3, …).
    for (var ia = lid; ia < nA; ia += WG) {
      let ra = ks + live[2u * ia] * d;
      var top = -4.0;
      var topJ = 0u;
      for (var jb = 0u; jb < nB; jb++) {
        let rb = ks + live[2u * jb + 1u] * d;
        var dot = 0.0;
        for (var e = 0u; e < d; e++) { dot += sums[ra + e] * sums[rb + e]; }
        let s = dot * invNorm[2u * ia] * invNorm[2u * jb + 1u];
        if (s > top) { top = s; topJ = jb; }
      }
      bestScore[ia] = top;
      bestIdx[ia] = topJ;
    }
    workgroupBarrier();
    // Rank among the A scores: descending, the lower A first on equal scores.
    for (var ia = lid; ia < nA; ia += WG) {
      let mine = bestScore[ia];
      var rank = 0u;
      for (var j = 0u; j < nA; j++) {
        let other = bestScore[j];
        if (other > mine || (other == mine && j < ia)) { rank++; }
      }
      merged[ia] = select(0u, 1u, rank < r);
    }
    workgroupBarrier();
    // Merges, dimension-parallel: every destination adds its sources in ascending A order.
    for (var e = lid; e < d + dv; e += WG) {
      for (var ia = 0u; ia < nA; ia++) {
        if (merged[ia] == 0u) { continue; }
        let src = live[2u * ia];
        let dst = live[2u * bestIdx[ia] + 1u];
        if (e < d) {
          sums[ks + dst * d + e] += sums[ks + src * d + e];
        } else {
          sums[vs + dst * dv + (e - d)] += sums[vs + src * dv + (e - d)];
        }
      }
    }
    // Every thread is done reading this round's live list before thread 0 compacts it.
    workgroupBarrier();
    if (lid == 0u) {
      for (var ia = 0u; ia < nA; ia++) {
        if (merged[ia] == 0u) { continue; }
        let src = live[2u * ia];
        let dst = live[2u * bestIdx[ia] + 1u];
        size[dst] += size[src];
        into[src] = i32(dst);
      }
      var kept = 0u;
      for (var i = 0u; i < live_n; i++) {
        let s = live[i];
        if (into[s] < 0) { live[kept] = s; kept++; }
      }
      count = kept;
    }
    storageBarrier();
    live_n = workgroupUniformLoad(&count);
  }
  // The live slots, in position order, are this chunk's output slots.
  for (var k = lid; k < live_n; k += WG) {
    let i = live[k];
    let o = h * M + firstSlot + k;
    let s = size[i];
    for (var e = 0u; e < d; e++) { out[o * d + e] = bitcast<u32>(sums[ks + i * d + e] / s); }
    for (var e = 0u; e < dv; e++) { out[params.valuesAt + o * dv + e] = bitcast<u32>(sums[vs + i * dv + e] / s); }
    out[params.sizeAt + o] = bitcast<u32>(s);
    out[params.positionAt + o] = start + i;
    slotOf[i] = firstSlot + k;
  }
  workgroupBarrier();
  for (var i = lid; i < n; i += WG) {
    var o = i;
    while (into[o] >= 0) { o = u32(into[o]); }
    out[params.assignmentAt + h * T + start + i] = slotOf[o];
  }
}
