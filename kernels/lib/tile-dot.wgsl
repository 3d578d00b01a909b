// The 64×64 tile of normalised dot products shared by cosine-similarity.wgsl and best-match.wgsl
// (pasted in by scripts/build.mjs where a kernel says `//!include tile-dot.wgsl`). A 16×16
// workgroup computes the tile, each invocation a 4×4 block held in registers; 64×16 slices of A
// and B are staged in workgroup memory (8 KiB, under the 16 KiB default). Rows are normalised as
// they are staged, so the dot products never overflow. The including kernel declares the
// bindings `a`, `b` and `factorsA`, `factorsB` (per-row (s, rnorm) from row-inv-norm.wgsl: x̂ = (x · s) · rnorm).

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> tileA: array<array<f32, 64>, 16>; // [k][row]
var<workgroup> tileB: array<array<f32, 64>, 16>; // [k][col]

// (v · s) · rnorm, in that order. s is a power of two, so the low 23 bits of its pattern are 0 at
// run time; OR-ing them into the product keeps it intact while hiding it from the compiler, which
// would otherwise reassociate to v · (s · rnorm) — subnormal, hence 0, for rows near the f32
// maximum (seen on an H100's Vulkan driver: NaN for a row peaking at 3e38).
fn normalized(v: f32, f: vec2f) -> f32 {
  let scaled = bitcast<f32>(bitcast<u32>(v * f.x) | (bitcast<u32>(f.x) & 0x7fffffu));
  return select(0.0, scaled * f.y, f.x > 0.0);
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
