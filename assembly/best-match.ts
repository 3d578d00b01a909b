// Best match per A token for bipartite soft matching (ToMe, Bolya et al. 2023, §3, step 3):
// for each row of A, the highest cosine similarity over the rows of B and the lowest B index
// that attains it. Fused with the similarity so that only a block of BLOCK × nB scores exists
// at a time, never the whole |A| × |B| matrix.
import { l2NormalizeRows, rowDots } from "./cosine-similarity";

const BLOCK = 16;

/**
 * `a` [batch, nA, c] and `b` [batch, nB, c] (normalised in place); `scratch` holds BLOCK × nB
 * floats. Writes `bestScore` [batch, nA] (f32) and `bestIdx` [batch, nA] (i32).
 * maskFirstA: row 0 of A is never a source (ToMe's class token): its score is -inf, index 0.
 * maskFirstB: row 0 of B is never a destination (the distillation token).
 */
export function bestMatch(
  a: usize, b: usize, scratch: usize, bestScore: usize, bestIdx: usize,
  batch: i32, nA: i32, nB: i32, c: i32, maskFirstA: bool, maskFirstB: bool,
): void {
  l2NormalizeRows(a, batch * nA, c);
  l2NormalizeRows(b, batch * nB, c);
  const rowBytes = <usize>c << 2;
  for (let t = 0; t < batch; t++) {
    const at = a + <usize>t * <usize>nA * rowBytes;
    const bt = b + <usize>t * <usize>nB * rowBytes;
    for (let i0 = 0; i0 < nA; i0 += BLOCK) {
      const rows = min(BLOCK, nA - i0);
      rowDots(at + <usize>i0 * rowBytes, bt, scratch, rows, nB, c);
      for (let r = 0; r < rows; r++) {
        const i = i0 + r;
        const scores = scratch + (<usize>r * <usize>nB << 2);
        let best = -Infinity as f32;
        let bestJ = 0;
        if (!(maskFirstA && i == 0)) {
          // Strictly greater: the lowest B index wins a tie.
          for (let j = maskFirstB ? 1 : 0; j < nB; j++) {
            const s = load<f32>(scores + (<usize>j << 2));
            if (s > best) { best = s; bestJ = j; }
          }
        }
        const o = (<usize>t * <usize>nA + <usize>i) << 2;
        store<f32>(bestScore + o, best);
        store<i32>(bestIdx + o, bestJ);
      }
    }
  }
}

/**
 * ToMe's split, then bestMatch: `metric` [batch, tokens, c]; even tokens (set A) are copied to `a`
 * [batch, ⌈tokens/2⌉, c] and odd tokens (set B) to `b` [batch, ⌊tokens/2⌋, c] inside wasm memory,
 * so the host copies the metric in once and allocates nothing per call.
 */
export function bestMatchEvenOdd(
  metric: usize, a: usize, b: usize, scratch: usize, bestScore: usize, bestIdx: usize,
  batch: i32, tokens: i32, c: i32, maskFirstA: bool, maskFirstB: bool,
): void {
  const nA = (tokens + 1) >> 1, nB = tokens >> 1;
  const rowBytes = <usize>c << 2;
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < tokens; i++) {
      const src = metric + (<usize>t * <usize>tokens + <usize>i) * rowBytes;
      const dst = (i & 1) == 0
        ? a + (<usize>t * <usize>nA + <usize>(i >> 1)) * rowBytes
        : b + (<usize>t * <usize>nB + <usize>(i >> 1)) * rowBytes;
      memory.copy(dst, src, rowBytes);
    }
  }
  bestMatch(a, b, scratch, bestScore, bestIdx, batch, nA, nB, c, maskFirstA, maskFirstB);
}
