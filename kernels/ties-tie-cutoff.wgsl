// TIES trim (Yadav et al. 2023, §3), stage 2 of 3: turns a model's tie budget into an index
// cutoff. The ties of rank < budget (in index order) are kept, so they are exactly the ties before
// the index of the tie of rank `budget`: stage 3 then keeps a tie iff its index < cutoff, with no
// ranks at all. One workgroup per model with a budget scans the tile counts of stage 1 to the
// tile holding that tie, then scans the tile's entries. It also reports how much budget the
// block consumed, so the next block continues where this one stopped.

struct Params {
  n: u32,
  numBudgeted: u32,
  numTiles: u32,
  gridX: u32,
  hasBase: u32, // 1: the models are fine-tuned tensors, δ = f32(model − base)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> models: array<u32>;     // [T][n] float bits
@group(0) @binding(2) var<storage, read> budgeted: array<vec4u>; // (model t, thr, budget, 0)
@group(0) @binding(3) var<storage, read> counts: array<u32>;     // [numBudgeted][numTiles]
// Per model: (weight bits, thr, cutoff, consumed); this stage writes cutoff and consumed.
@group(0) @binding(4) var<storage, read_write> modelInfo: array<vec4u>;
@group(0) @binding(5) var<storage, read> base: array<u32>; // [n], unused unless hasBase

//!include task-vector.wgsl
//!include abs-task-bits.wgsl

const ITEMS: u32 = 16u; // as in ties-tie-count.wgsl: a tile is 4096 entries

var<workgroup> scan: array<u32, 256>;
var<workgroup> hitTile: u32;  // 1 + the tile holding the tie of rank `budget`, or 0
var<workgroup> hitRank: u32;  // that tie's rank among the tile's ties
var<workgroup> cutoffAt: u32;

// Inclusive prefix sum of v over the workgroup (Hillis–Steele). Leaves the total in scan[255].
fn inclusiveScan(li: u32, v: u32) -> u32 {
  scan[li] = v;
  workgroupBarrier();
  for (var offset = 1u; offset < 256u; offset <<= 1u) {
    var add = 0u;
    if (li >= offset) {
      add = scan[li - offset];
    }
    workgroupBarrier();
    scan[li] += add;
    workgroupBarrier();
  }
  return scan[li];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = wg.x;
  let m = budgeted[j];
  let budget = m.z;
  if (li == 0u) {
    hitTile = 0u;
    cutoffAt = params.n;
  }
  var before = 0u; // ties in the tiles already scanned
  var hit = 0u;
  for (var first = 0u; first < params.numTiles; first += 256u) {
    let tile = first + li;
    var c = 0u;
    if (tile < params.numTiles) {
      c = counts[j * params.numTiles + tile];
    }
    let upTo = before + inclusiveScan(li, c);
    // The tie of rank `budget` lies in this tile iff the ties before it are ≤ budget < ties up to it.
    if (c > 0u && upTo - c <= budget && budget < upTo) {
      hitTile = tile + 1u;
      hitRank = budget - (upTo - c);
    }
    before += scan[255];
    hit = workgroupUniformLoad(&hitTile);
    if (hit != 0u) {
      break;
    }
  }
  if (hit != 0u) {
    let tile = hit - 1u;
    let rank = hitRank;
    var seen = 0u;
    for (var k = 0u; k < ITEMS; k++) {
      let i = tile * 256u * ITEMS + k * 256u + li;
      var isTie = 0u;
      if (i < params.n && absTaskBits(m.x, i) == m.y) {
        isTie = 1u;
      }
      let upTo = seen + inclusiveScan(li, isTie);
      if (isTie == 1u && upTo - 1u == rank) {
        cutoffAt = i;
      }
      seen += scan[255];
      workgroupBarrier();
    }
  }
  let cutoff = workgroupUniformLoad(&cutoffAt);
  if (li == 0u) {
    // Found: the budget is used up. Not found: every tie was kept, `before` of them.
    modelInfo[m.x].z = cutoff;
    modelInfo[m.x].w = select(before, budget, hit != 0u);
  }
}
