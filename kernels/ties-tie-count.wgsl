// TIES trim (Yadav et al. 2023, §3), stage 1 of 3 when a tie budget is left: exactly k entries
// survive, and entries equal to the k-th magnitude are kept in increasing index order until the
// budget runs out. A parallel pass needs each tie's rank, so this stage counts the tie candidates
// (absBits == thr) of every model with a budget in every tile of 4096 entries.

struct Params {
  n: u32,           // entries per model in this block
  numBudgeted: u32, // models with a tie budget
  numTiles: u32,    // ceil(n / 4096)
  gridX: u32,       // workgroups per row of the 2-D dispatch grid
  hasBase: u32,     // 1: the models are fine-tuned tensors, δ = f32(model − base)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> models: array<u32>;   // [T][n] float bits
@group(0) @binding(2) var<storage, read> budgeted: array<vec4u>; // (model t, thr, budget, 0)
@group(0) @binding(3) var<storage, read_write> counts: array<u32>; // [numBudgeted][numTiles]
@group(0) @binding(4) var<storage, read> base: array<u32>;         // [n], unused unless hasBase

//!include task-vector.wgsl
//!include abs-task-bits.wgsl

const ITEMS: u32 = 16u; // entries per invocation; a tile is 256 · ITEMS = 4096 entries

var<workgroup> tileCount: atomic<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let tile = wg.y * params.gridX + wg.x;
  for (var j = 0u; j < params.numBudgeted; j++) {
    let m = budgeted[j];
    var c = 0u;
    for (var k = 0u; k < ITEMS; k++) {
      // Consecutive invocations read consecutive entries.
      let i = tile * 256u * ITEMS + k * 256u + li;
      if (i < params.n && absTaskBits(m.x, i) == m.y) {
        c++;
      }
    }
    if (li == 0u) {
      atomicStore(&tileCount, 0u);
    }
    workgroupBarrier();
    if (c > 0u) {
      atomicAdd(&tileCount, c);
    }
    workgroupBarrier();
    if (li == 0u && tile < params.numTiles) {
      counts[j * params.numTiles + tile] = atomicLoad(&tileCount);
    }
    workgroupBarrier();
  }
}
