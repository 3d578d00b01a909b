// The 64×64 tile of normalised dot products shared by cosine-similarity.wgsl and best-match.wgsl
// (pasted in by scripts/build.mjs where a kernel says `//!include tile-dot.wgsl`). A 16×16
// workgroup computes the tile, each invocation a 4×4 block held in registers; 64×16 slices of A
// and B are staged in workgroup memory (8 KiB, under the 16 KiB default). Rows are normalised as
// they are staged, so the dot products never overflow. The including kernel declares the
// bindings `a`, `b` and `factorsA`, `factorsB` (per-row (peak, rnorm) from row-inv-norm.wgsl).

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> tileA: array<array<f32, 64>, 16>; // [k][row]
var<workgroup> tileB: array<array<f32, 64>, 16>; // [k][col]

fn normalized(v: f32, f: vec2f) -> f32 {
  return select(0.0, (v / f.x) * f.y, f.x > 0.0);
}

// acc[i][j] = â[aOff + rowBase + 4·lid.y + i] · b̂[bOff + colBase + 4·lid.x + j] (0 outside
// rows × cols). Contains barriers: call it in uniform control flow.
fn tileDot(rowBase: u32, colBase: u32, rows: u32, cols: u32, c: u32, aOff: u32, bOff: u32, lid: vec3u, li: u32) -> array<array<f32, 4>, 4> {
  // Zeroed explicitly: a declaration inside a loop was seen to keep the previous iteration's
  // values on SwiftShader, although WGSL zero-initialises it.
  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      acc[i][j] = 0.0;
    }
  }
  for (var k0 = 0u; k0 < c; k0 += TK) {
    // Stage: 1024 values of each tile, 4 per invocation; consecutive invocations read
    // consecutive k so the loads are contiguous.
    for (var q = 0u; q < 4u; q++) {
      let idx = li + q * 256u;
      let r = idx / TK;
      let k = idx % TK;
      let gk = k0 + k;
      let ga = rowBase + r;
      var va = 0.0;
      if (ga < rows && gk < c) {
        va = normalized(a[(aOff + ga) * c + gk], factorsA[aOff + ga]);
      }
      tileA[k][r] = va;
      let gb = colBase + r;
      var vb = 0.0;
      if (gb < cols && gk < c) {
        vb = normalized(b[(bOff + gb) * c + gk], factorsB[bOff + gb]);
      }
      tileB[k][r] = vb;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var ra: array<f32, 4>;
      var rb: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ra[i] = tileA[k][lid.y * 4u + i];
        rb[i] = tileB[k][lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(ra[i], rb[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  return acc;
}
