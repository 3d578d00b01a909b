// ToMe's merge, merge_wavg, merge_source and unmerge (Bolya et al. 2023, §3; tome/merge.py) over a
// plan's output groups: each output row reduces the tokens that land in it (offsets/members, built
// once per plan by src/token-merging/groups.ts). The semantics are mergeTokens / mergeWavg /
// ungroupRows in src/reference/bipartite-soft-matching.ts, bit for bit: sums in float64 (a
// float32 product w·x is exact there) over the members in ascending token order, one rounding.

const MODE_MEAN = 0;
const MODE_SUM = 1;
const MODE_AMAX = 2;
const MODE_WAVG = 3;
/** mergeSource without a source: the identity, one-hot rows of width N (x is not read). */
const MODE_SOURCE = 4;

// @ts-ignore: decorator
@inline function f32x2At(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

/**
 * out[row] (dim floats) for every row < rows: the reduction of x's rows members[offsets[row] ..
 * offsets[row + 1]) by `mode`; with MODE_WAVG also outSize[row] = Σ size. `acc`: dim float64 of
 * scratch. A row no token lands in is 0 (and size 0). `tokens`: N, for MODE_SOURCE.
 */
export function mergeGroups(x: usize, dim: i32, offsets: usize, members: usize, rows: i32, mode: i32, size: usize, out: usize, outSize: usize, acc: usize, tokens: i32): void {
  const rowBytes = <usize>dim << 2;
  for (let row = 0; row < rows; row++) {
    const first = load<i32>(offsets + (<usize>row << 2));
    const end = load<i32>(offsets + (<usize>(row + 1) << 2));
    const o = out + <usize>row * rowBytes;
    if (mode == MODE_SOURCE) {
      memory.fill(o, 0, rowBytes);
      for (let k = first; k < end; k++) store<f32>(o + (<usize>(load<i32>(members + (<usize>k << 2)) % tokens) << 2), 1);
      continue;
    }
    if (end == first) {
      memory.fill(o, 0, rowBytes);
      if (mode == MODE_WAVG) store<f32>(outSize + (<usize>row << 2), 0);
      continue;
    }
    const m0 = load<i32>(members + (<usize>first << 2));
    const w0: f32 = mode == MODE_WAVG && size != 0 ? load<f32>(size + (<usize>m0 << 2)) : 1;
    if (end - first == 1 && (mode != MODE_WAVG || (w0 != 0 && isFinite(w0)))) {
      // A token nothing merged into is its own output: (x·w)/w is exactly x for a finite non-zero w.
      memory.copy(o, x + <usize>m0 * rowBytes, rowBytes);
      if (mode == MODE_WAVG) store<f32>(outSize + (<usize>row << 2), w0);
      continue;
    }
    let den: f64 = 0;
    for (let k = first; k < end; k++) {
      const m = load<i32>(members + (<usize>k << 2));
      const src = x + <usize>m * rowBytes;
      const w: f64 = mode == MODE_WAVG && size != 0 ? <f64>load<f32>(size + (<usize>m << 2)) : 1;
      den += w;
      const wv = f64x2.splat(w);
      let d = 0;
      if (k == first) {
        // Initialise with the first member (as 0 + w·x, or max(-∞, x)): no separate fill pass.
        if (mode == MODE_AMAX) {
          for (; d + 2 <= dim; d += 2) v128.store(acc + (<usize>d << 3), f32x2At(src + (<usize>d << 2)));
          for (; d < dim; d++) store<f64>(acc + (<usize>d << 3), <f64>load<f32>(src + (<usize>d << 2)));
        } else {
          const zero = f64x2.splat(0);
          for (; d + 2 <= dim; d += 2) v128.store(acc + (<usize>d << 3), f64x2.add(zero, f64x2.mul(wv, f32x2At(src + (<usize>d << 2)))));
          for (; d < dim; d++) store<f64>(acc + (<usize>d << 3), 0 + w * <f64>load<f32>(src + (<usize>d << 2)));
        }
        continue;
      }
      if (mode == MODE_AMAX) {
        for (; d + 2 <= dim; d += 2) {
          const a = acc + (<usize>d << 3);
          v128.store(a, f64x2.max(v128.load(a), f32x2At(src + (<usize>d << 2))));
        }
        for (; d < dim; d++) {
          const a = acc + (<usize>d << 3);
          store<f64>(a, Math.max(load<f64>(a), <f64>load<f32>(src + (<usize>d << 2))));
        }
      } else {
        for (; d + 2 <= dim; d += 2) {
          const a = acc + (<usize>d << 3);
          v128.store(a, f64x2.add(v128.load(a), f64x2.mul(wv, f32x2At(src + (<usize>d << 2)))));
        }
        for (; d < dim; d++) {
          const a = acc + (<usize>d << 3);
          store<f64>(a, load<f64>(a) + w * <f64>load<f32>(src + (<usize>d << 2)));
        }
      }
    }
    const div: f64 = mode == MODE_MEAN ? <f64>(end - first) : mode == MODE_WAVG ? den : 1;
    for (let d = 0; d < dim; d++) store<f32>(o + (<usize>d << 2), <f32>(load<f64>(acc + (<usize>d << 3)) / div));
    if (mode == MODE_WAVG) store<f32>(outSize + (<usize>row << 2), <f32>den);
  }
}

/**
 * ToMe's unmerge: out [batch, n, dim] where token t of item b gets row rowOf[b·n + t] of
 * y [batch, m, dim], or zeros where that is -1 (a token a variant dropped).
 */
export function ungroupRows(rowOf: usize, batch: i32, n: i32, m: i32, y: usize, dim: i32, out: usize): void {
  const rowBytes = <usize>dim << 2;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < n; t++) {
      const i = b * n + t;
      const row = load<i32>(rowOf + (<usize>i << 2));
      const o = out + <usize>i * rowBytes;
      if (row < 0) memory.fill(o, 0, rowBytes);
      else memory.copy(o, y + <usize>(b * m + row) * rowBytes, rowBytes);
    }
  }
}
