// The output groups of a ToMe plan on the device (src/token-merging/groups.ts builds them on the
// host): a counting sort of each item's tokens by (output row, token). Invocations [0, B·N) place
// one token each: its slot is the number of tokens of its item that sort before it. Invocations
// [B·N, B·N + B·M] write the offsets: row R of item b starts after the tokens with a lower row.
// ToMe drops no token, so every item has N members. O(N) per invocation, no atomics.

struct Params {
  batch: u32,
  tokens: u32, // N
  rows: u32,   // M = N − r
  gridX: u32,  // workgroups per row of the 2-D dispatch grid
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> rowOf: array<i32>;
// offsets [B·M + 1], then members [B·N] (flat token indices b·N + t), as merge-groups.wgsl reads them.
@group(0) @binding(2) var<storage, read_write> groups: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = (wg.y * params.gridX + wg.x) * 256u + li;
  let n = params.tokens;
  let members = params.batch * n;
  let offsets = params.batch * params.rows + 1u;
  if (g < members) {
    let first = (g / n) * n;
    let t = g - first;
    let row = rowOf[g];
    var pos = 0u;
    for (var u = 0u; u < n; u++) {
      let ru = rowOf[first + u];
      if (ru < row || (ru == row && u < t)) {
        pos++;
      }
    }
    groups[offsets + first + pos] = g;
  } else if (g < members + offsets) {
    let h = g - members;
    if (h == offsets - 1u) {
      groups[h] = members;
      return;
    }
    let item = h / params.rows;
    let row = i32(h % params.rows);
    var start = item * n;
    for (var u = 0u; u < n; u++) {
      if (rowOf[item * n + u] < row) {
        start++;
      }
    }
    groups[h] = start;
  }
}
