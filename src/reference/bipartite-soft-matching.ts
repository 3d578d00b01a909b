// Plain TypeScript reference for ToMe's bipartite soft matching: Bolya et al., "Token Merging:
// Your ViT but Faster", ICLR 2023, §3, with the exact semantics of facebookresearch/ToMe
// tome/merge.py (bipartite_soft_matching, merge_wavg, merge_source) and tome/utils.py (parse_r),
// as set out in METHODS.md. Written for clarity: it is the oracle other backends are tested against.
//
// Deliberate differences from PyTorch:
// - Ties have one canonical answer: the best match is the LOWEST B index, and edges are ranked by
//   a STABLE descending sort (lower A index first). torch's max/argsort may order ties otherwise.
// - A zero metric row has similarity 0 with everything (cosineSimilarity's rule). ToMe normalises
//   without an epsilon, so there that row becomes NaN and its ranking is meaningless.
// - Merged values are accumulated in float64 and rounded once to float32 (torch sums in float32).
// Inputs are not validated here; that happens once, at the API boundary.

import { cosineSimilarity } from './cosine-similarity.ts';

/**
 * Which tokens merge where: the result of bipartite soft matching. In ToMe A = even tokens and
 * B = odd tokens; the variants (token-merging-variants.ts) pick other sets and say so in `aIdx`,
 * `bIdx` and `outputRow`.
 */
export interface MergePlan {
  batch: number;
  /** N, the number of tokens before merging. */
  tokens: number;
  /** Tokens removed per batch item (the output has N - r). For ToMe: the requested r after clamping; 0 means merge and unmerge are the identity. */
  r: number;
  classToken: boolean;
  distillToken: boolean;
  /** [batch, |A| - r]: A indices kept, in output order (edge order, or ascending with a class token). With r = 0: every A index, ascending. */
  unmergedIdx: Int32Array;
  /** [batch, r]: A indices merged away, best-matching first. */
  srcIdx: Int32Array;
  /** [batch, r]: the B index each source merges into. */
  dstIdx: Int32Array;
  /** [batch, |A|]: the token position of each A index; absent = the even tokens. */
  aIdx?: Int32Array;
  /** [batch, |B|]: the token position of each B index; absent = the odd tokens. */
  bIdx?: Int32Array;
  /** [batch, N]: the output row each token lands in, -1 for a token merge drops; absent = ToMe's order (outputRows). */
  outputRow?: Int32Array;
}

export interface MatchOptions {
  /** Tokens to remove per batch item (a non-negative integer; clamped as ToMe does). */
  r: number;
  /** Token 0 is a class token: never merged. */
  classToken?: boolean;
  /** Token 1 is a distillation token: never merged into. */
  distillToken?: boolean;
}

export type MergeMode = 'mean' | 'sum' | 'amax';

/** ToMe's clamp: at most half of the unprotected tokens are removed; r <= 0 means "do nothing". */
export function effectiveR(r: number, tokens: number, classToken: boolean, distillToken: boolean): number {
  const protectedTokens = (classToken ? 1 : 0) + (distillToken ? 1 : 0);
  return Math.max(0, Math.min(r, Math.floor((tokens - protectedTokens) / 2)));
}

/**
 * Each A token's best B token: `a` [batch, nA, c] against `b` [batch, nB, c] by cosine
 * similarity. Masked pairs score -Infinity: with maskFirstA the class token (A[0]) is never a
 * source, with maskFirstB the distillation token (B[0]) never a destination. Ties go to the
 * lowest B index. This is the step the wasm and webgpu backends implement.
 */
export function bestMatch(
  a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number,
  maskFirstA: boolean, maskFirstB: boolean,
): { score: Float32Array; index: Int32Array } {
  const scores = cosineSimilarity(a, b, batch, nA, nB, c); // [batch, nA, nB]
  const score = new Float32Array(batch * nA);
  const index = new Int32Array(batch * nA);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < nA; i++) {
      let best = -Infinity, bestJ = 0;
      for (let j = 0; j < nB; j++) {
        const masked = (maskFirstA && i === 0) || (maskFirstB && j === 0);
        const s = masked ? -Infinity : scores[(t * nA + i) * nB + j]!;
        if (j === 0 || s > best) { best = s; bestJ = j; }
      }
      score[t * nA + i] = best;
      index[t * nA + i] = bestJ;
    }
  }
  return { score, index };
}

/** Indices of `values` by value, descending; equal values keep the lower index first (a stable sort). */
export function descendingOrder(values: ArrayLike<number>): number[] {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((i, j) => (values[i] === values[j] ? i - j : values[i]! > values[j]! ? -1 : 1));
}

/**
 * Turns every A token's best match into a plan: the r strongest edges merge. Shared by every
 * backend, so the ranking (and its tie rule) is the same everywhere.
 */
export function planFromMatches(
  batch: number, tokens: number, r: number, classToken: boolean, distillToken: boolean,
  score: Float32Array, index: Int32Array,
): MergePlan {
  const nA = Math.ceil(tokens / 2);
  const plan: MergePlan = {
    batch, tokens, r, classToken, distillToken,
    unmergedIdx: new Int32Array(batch * (nA - r)),
    srcIdx: new Int32Array(batch * r),
    dstIdx: new Int32Array(batch * r),
  };
  if (r === 0) {
    // Identity: nothing is merged and the output keeps the original token order.
    for (let t = 0; t < batch; t++) for (let i = 0; i < nA; i++) plan.unmergedIdx[t * nA + i] = i;
    return plan;
  }
  for (let t = 0; t < batch; t++) {
    const edge = descendingOrder(score.subarray(t * nA, (t + 1) * nA));
    // The r strongest edges merge; the rest stay. With a class token the kept tokens are sorted so
    // that the class token (A index 0, never a source) comes first in the output.
    const unm = edge.slice(r);
    if (classToken) unm.sort((i, j) => i - j);
    plan.unmergedIdx.set(unm, t * (nA - r));
    for (let k = 0; k < r; k++) {
      plan.srcIdx[t * r + k] = edge[k]!;
      plan.dstIdx[t * r + k] = index[t * nA + edge[k]!]!;
    }
  }
  return plan;
}

/**
 * Plans the merge of the `r` most similar (A, B) token pairs of `metric` [batch, tokens, channels].
 * Each A token proposes its most similar B token (cosine similarity); the r strongest proposals merge.
 */
export function bipartiteSoftMatching(
  metric: Float32Array, batch: number, tokens: number, channels: number, opts: MatchOptions,
): MergePlan {
  const classToken = opts.classToken ?? false;
  const distillToken = opts.distillToken ?? false;
  const r = effectiveR(opts.r, tokens, classToken, distillToken);
  if (r === 0) return planFromMatches(batch, tokens, 0, classToken, distillToken, new Float32Array(0), new Int32Array(0));
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  const a = gatherRows(metric, batch, tokens, channels, 0); // even tokens
  const b = gatherRows(metric, batch, tokens, channels, 1); // odd tokens
  const { score, index } = bestMatch(a, b, batch, nA, nB, channels, classToken, distillToken);
  return planFromMatches(batch, tokens, r, classToken, distillToken, score, index);
}

/**
 * Merges `x` [batch, N, dim] by `plan` → [batch, N - r, dim]: the unmerged A tokens (in
 * unmergedIdx order), then every B token in order, each reduced with the sources merged into it.
 * 'mean' counts the destination itself: (dst + Σ src) / (1 + k), as scatter_reduce(include_self).
 * With a distillation token the order is [unm[0], dst[0], unm[1:], dst[1:]].
 */
export function mergeTokens(plan: MergePlan, x: Float32Array, dim: number, mode: MergeMode, into?: Float32Array): Float32Array {
  const { offsets, members } = outputGroups(plan);
  const out = into ?? new Float32Array((offsets.length - 1) * dim);
  const acc = new Float64Array(dim);
  for (let row = 0; row + 1 < offsets.length; row++) {
    const first = offsets[row]!, end = offsets[row + 1]!;
    if (end === first) {
      out.fill(0, row * dim, (row + 1) * dim); // no token lands here (a variant's dropped slot): 0
      continue;
    }
    if (end - first === 1) {
      // A token nothing merged into is its own output, in every mode.
      const from = members[first]! * dim;
      out.set(x.subarray(from, from + dim), row * dim);
      continue;
    }
    acc.fill(mode === 'amax' ? -Infinity : 0);
    for (let k = first; k < end; k++) {
      const from = members[k]! * dim;
      if (mode === 'amax') for (let d = 0; d < dim; d++) acc[d] = Math.max(acc[d]!, x[from + d]!);
      else for (let d = 0; d < dim; d++) acc[d] += x[from + d]!;
    }
    const count = mode === 'mean' ? end - first : 1;
    for (let d = 0; d < dim; d++) out[row * dim + d] = acc[d]! / count;
  }
  return out;
}

/**
 * The inverse of mergeTokens' order: `y` [batch, N - r, dim] → [batch, N, dim], where every token
 * gets the row it went into (a source gets its destination's row). Unlike ToMe's unmerge this is
 * also right with a distillation token (tomesd does the same: positions, not the distill bug).
 */
export function unmergeTokens(plan: MergePlan, y: Float32Array, dim: number, into?: Float32Array): Float32Array {
  return ungroupRows(outputRows(plan), plan.batch, plan.tokens, plan.tokens - plan.r, y, dim, into);
}

/**
 * The general unmerge: `y` [batch, m, dim] → [batch, n, dim], token t of item b getting row
 * rowOf[b·n + t] of y, or zeros where that is -1 (a token merge dropped).
 */
export function ungroupRows(rowOf: Int32Array, batch: number, n: number, m: number, y: Float32Array, dim: number, into?: Float32Array): Float32Array {
  const out = into ?? new Float32Array(batch * n * dim);
  for (let t = 0; t < batch; t++) {
    for (let tok = 0; tok < n; tok++) {
      const row = rowOf[t * n + tok]!;
      if (row < 0) {
        out.fill(0, (t * n + tok) * dim, (t * n + tok + 1) * dim);
        continue;
      }
      const from = (t * m + row) * dim;
      out.set(y.subarray(from, from + dim), (t * n + tok) * dim);
    }
  }
  return out;
}

/**
 * Size-weighted average merge (ToMe's merge_wavg): x' = merge(x·size, 'sum') / merge(size, 'sum').
 * `size` [batch, N] is how many original tokens each token stands for (ones if absent).
 * Returns x' [batch, N - r, dim] and the merged sizes [batch, N - r].
 */
export function mergeWavg(
  plan: MergePlan, x: Float32Array, dim: number, size?: Float32Array, into?: { x: Float32Array; size: Float32Array },
): { x: Float32Array; size: Float32Array } {
  const { offsets, members } = outputGroups(plan);
  const rows = offsets.length - 1;
  // `into`: the caller's output arrays (rows·dim and rows values), reused across calls.
  const out = into?.x ?? new Float32Array(rows * dim), outSize = into?.size ?? new Float32Array(rows);
  const acc = new Float64Array(dim); // x·size is exact in float64
  for (let row = 0; row < rows; row++) {
    const first = offsets[row]!, end = offsets[row + 1]!;
    if (end === first) {
      // No token lands here (a variant's dropped slot): 0.
      out.fill(0, row * dim, (row + 1) * dim);
      outSize[row] = 0;
      continue;
    }
    const w1 = size ? size[members[first]!]! : 1;
    if (end - first === 1 && w1 !== 0 && Number.isFinite(w1)) {
      // A lone token: (x·w)/w is exactly x for a finite non-zero float32 w (the product is exact in float64).
      const from = members[first]! * dim;
      out.set(x.subarray(from, from + dim), row * dim);
      outSize[row] = w1;
      continue;
    }
    acc.fill(0);
    let den = 0;
    for (let k = first; k < end; k++) {
      const w = size ? size[members[k]!]! : 1, from = members[k]! * dim;
      den += w;
      for (let d = 0; d < dim; d++) acc[d] += w * x[from + d]!;
    }
    for (let d = 0; d < dim; d++) out[row * dim + d] = acc[d]! / den;
    outSize[row] = den;
  }
  return { x: out, size: outSize };
}

/**
 * Source tracking (ToMe's merge_source): which original tokens each merged token covers.
 * `source` [batch, N, n0] is 0/1 (the identity [batch, N, N] if absent) → [batch, N - r, n0].
 */
export function mergeSource(plan: MergePlan, source?: Float32Array, n0?: number): Float32Array {
  const { batch, tokens: n } = plan;
  if (source === undefined) {
    n0 = n;
    source = new Float32Array(batch * n * n);
    for (let t = 0; t < batch; t++) for (let i = 0; i < n; i++) source[(t * n + i) * n + i] = 1;
  }
  n0 ??= batch * n > 0 ? source.length / (batch * n) : 0;
  return mergeTokens(plan, source, n0, 'amax');
}

/**
 * ToMe's per-layer schedule (parse_r). A number r → [r] * layers. A 2-element array is the
 * (r, inflect) pair (Python's tuple): min = int(r·(1 - inflect)), max = 2r - min, then `layers`
 * values int(min + step·i) with step = (max - min)/(layers - 1). Any other array is a per-layer
 * list (Python's list), padded with zeros to `layers` and never truncated, as in ToMe.
 * ToMe divides by zero for (r, inflect) with one layer; here that gives [min].
 */
export function parseR(r: number | [number, number] | number[], layers: number): number[] {
  if (typeof r === 'number') return Array.from({ length: layers }, () => r);
  if (r.length !== 2) return r.length < layers ? [...r, ...new Array<number>(layers - r.length).fill(0)] : [...r];
  const [base, inflect] = r as [number, number];
  const min = Math.trunc(base * (1 - inflect)); // Python int(): toward zero
  const max = 2 * base - min;
  const step = layers > 1 ? (max - min) / (layers - 1) : 0;
  return Array.from({ length: layers }, (_, i) => Math.trunc(min + step * i));
}

/** Rows parity, parity + 2, … of each batch item of x [batch, tokens, c]: A (parity 0) or B (parity 1). */
export function gatherRows(x: Float32Array, batch: number, tokens: number, c: number, parity: 0 | 1): Float32Array {
  const rows = Math.floor((tokens + 1 - parity) / 2);
  const out = new Float32Array(batch * rows * c);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < rows; i++) {
      const from = (t * tokens + 2 * i + parity) * c;
      out.set(x.subarray(from, from + c), (t * rows + i) * c);
    }
  }
  return out;
}

/**
 * For every token of every batch item, the row of merge's output it lands in: [batch, N].
 * merge and unmerge both read this one map, so they cannot disagree about the order.
 */
export function outputRows(plan: MergePlan): Int32Array {
  if (plan.outputRow) return plan.outputRow;
  const { batch, tokens: n, r, distillToken } = plan;
  const rowOf = new Int32Array(batch * n);
  if (r === 0) {
    for (let t = 0; t < batch; t++) for (let tok = 0; tok < n; tok++) rowOf[t * n + tok] = tok;
    return rowOf;
  }
  const nA = Math.ceil(n / 2), nB = Math.floor(n / 2), unmLen = nA - r;
  // Output = cat[unm, dst]; with a distillation token cat[unm[:1], dst[:1], unm[1:], dst[1:]],
  // which moves only unm[0..] and dst[0]: dst[j >= 1] is at unmLen + j either way.
  const unmRow = (k: number) => (distillToken && k > 0 ? k + 1 : k);
  const dstRow = (j: number) => (distillToken && j === 0 ? 1 : unmLen + j);
  for (let t = 0; t < batch; t++) {
    const row = rowOf.subarray(t * n, (t + 1) * n);
    for (let k = 0; k < unmLen; k++) row[2 * plan.unmergedIdx[t * unmLen + k]!] = unmRow(k);
    for (let j = 0; j < nB; j++) row[2 * j + 1] = dstRow(j);
    // A source lands where its destination lands.
    for (let k = 0; k < r; k++) row[2 * plan.srcIdx[t * r + k]!] = dstRow(plan.dstIdx[t * r + k]!);
  }
  return rowOf;
}

/**
 * The tokens of every output row, as offsets into a list of members ([batch·m + 1] and the
 * members as flat token indices t·N + token, ascending within a row; tokens whose row is -1 are
 * dropped). merge and merge_wavg reduce each row's members; rows of one member (most of them)
 * are plain copies, and a row no token lands in stays 0.
 */
function outputGroups(plan: MergePlan): { offsets: Int32Array; members: Int32Array } {
  const { batch, tokens: n, r } = plan;
  const m = n - r;
  const rowOf = outputRows(plan);
  const offsets = new Int32Array(batch * m + 1);
  for (let t = 0; t < batch; t++) {
    for (let tok = 0; tok < n; tok++) if (rowOf[t * n + tok]! >= 0) offsets[t * m + rowOf[t * n + tok]! + 1]++;
  }
  for (let row = 0; row < batch * m; row++) offsets[row + 1] += offsets[row]!;
  const next = offsets.slice(0, batch * m);
  const members = new Int32Array(offsets[batch * m]!);
  for (let t = 0; t < batch; t++) {
    for (let tok = 0; tok < n; tok++) if (rowOf[t * n + tok]! >= 0) members[next[t * m + rowOf[t * n + tok]!]!++] = t * n + tok;
  }
  return { offsets, members };
}

/**
 * The general merge, in float64: `x` [batch, n, dim] → [batch, m, dim], reducing the tokens of
 * each item that share a row of rowOf [batch, n] (-1: dropped). 'mean' divides by the group's
 * size (the destination counts itself); a row no token lands in is 0 in every mode.
 */
export function groupRows(rowOf: Int32Array, batch: number, n: number, m: number, x: ArrayLike<number>, dim: number, mode: MergeMode): Float64Array {
  const out = new Float64Array(batch * m * dim).fill(mode === 'amax' ? -Infinity : 0);
  const count = new Int32Array(batch * m);
  for (let t = 0; t < batch; t++) {
    for (let tok = 0; tok < n; tok++) {
      const row = rowOf[t * n + tok]!;
      if (row < 0) continue;
      const o = t * m + row;
      count[o]++;
      for (let d = 0; d < dim; d++) {
        const v = x[(t * n + tok) * dim + d]!;
        out[o * dim + d] = mode === 'amax' ? Math.max(out[o * dim + d]!, v) : out[o * dim + d]! + v;
      }
    }
  }
  for (let i = 0; i < out.length; i++) {
    const k = count[Math.floor(i / dim)]!;
    if (k === 0) out[i] = 0;
    else if (mode === 'mean') out[i] = out[i]! / k;
  }
  return out;
}
