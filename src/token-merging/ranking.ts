// ToMe's ranking and output order (Bolya et al. 2023, §3 steps 4–5; tome/merge.py) as production
// code, apart from the oracle in src/reference/bipartite-soft-matching.ts, which the suites hold
// it to. Same rules — a stable descending sort of the best scores (equal scores: the lower A
// index first), the r best edges merge, the output is cat[unm, dst] (with a distillation token
// cat[unm[:1], dst[:1], unm[1:], dst[1:]]) — computed the way the GPU does (tome-rank.wgsl,
// tome-rows.wgsl): each A token's rank, then every token's output row from the ranks.
import type { MergePlan } from '../reference/bipartite-soft-matching.ts';

/**
 * The plan of ToMe's matching from each A token's best match (`score`, `index` [B, |A|]; masked
 * rows score -∞). r ≥ 0 is already clamped; r = 0 keeps every token in place.
 */
export function planFromMatches(
  batch: number, tokens: number, r: number, classToken: boolean, distillToken: boolean,
  score: Float32Array, index: Int32Array,
): Required<Pick<MergePlan, 'outputRow'>> & MergePlan {
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2), unmLen = nA - r;
  const unmergedIdx = new Int32Array(batch * unmLen);
  const srcIdx = new Int32Array(batch * r), dstIdx = new Int32Array(batch * r);
  const outputRow = new Int32Array(batch * tokens);
  const order = new Int32Array(nA);
  const dstRow = (j: number) => (distillToken && j === 0 ? 1 : unmLen + j);
  const unmRow = (k: number) => (distillToken && k > 0 ? k + 1 : k);
  for (let t = 0; t < batch; t++) {
    const rows = outputRow.subarray(t * tokens, (t + 1) * tokens);
    if (r === 0) {
      for (let i = 0; i < nA; i++) unmergedIdx[t * nA + i] = i;
      for (let tok = 0; tok < tokens; tok++) rows[tok] = tok;
      continue;
    }
    const s = score.subarray(t * nA, (t + 1) * nA);
    for (let i = 0; i < nA; i++) order[i] = i;
    order.sort((i, j) => (s[i] === s[j] ? i - j : s[i]! > s[j]! ? -1 : 1));
    // order[k] is the A token of rank k: the first r are sources, in rank order.
    for (let k = 0; k < r; k++) {
      const i = order[k]!, j = index[t * nA + i]!;
      srcIdx[t * r + k] = i;
      dstIdx[t * r + k] = j;
      rows[2 * i] = dstRow(j);
    }
    if (classToken) {
      // The kept A tokens in position order: mark the sources, then walk the positions.
      for (let k = 0; k < r; k++) rows[2 * order[k]!] = -1 - rows[2 * order[k]!]!;
      let u = 0;
      for (let i = 0; i < nA; i++) {
        if (rows[2 * i]! < 0) { rows[2 * i] = -1 - rows[2 * i]!; continue; }
        unmergedIdx[t * unmLen + u] = i;
        rows[2 * i] = unmRow(u++);
      }
    } else {
      for (let k = r; k < nA; k++) {
        unmergedIdx[t * unmLen + k - r] = order[k]!;
        rows[2 * order[k]!] = unmRow(k - r);
      }
    }
    for (let j = 0; j < nB; j++) rows[2 * j + 1] = dstRow(j);
  }
  return { batch, tokens, r, classToken, distillToken, unmergedIdx, srcIdx, dstIdx, outputRow };
}
