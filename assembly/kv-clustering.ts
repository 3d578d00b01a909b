// KV-cache clustering (Chelsea, "Efficient Long-Context LLM Inference via KV Cache Clustering",
// 2025): chunked soft matching of every head's cache, and proportional attention over the result.
// Semantics, tie rules and choices: src/reference/kv-clustering.ts (the oracle). Here the sums are
// float32 (the reference's float64), the similarity is the fused normalise + 2×4-blocked f32x4
// dot-product kernel of cosine-similarity.ts, and merges and attention are f32x4 row updates.
import { l2NormalizeRows, rowDots } from "./cosine-similarity";
import { dotRow } from "./simd";

/** dst[0..n) += src[0..n) (f32x4). */
// @ts-ignore: decorator
@inline function addRow(dst: usize, src: usize, n: i32): void {
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const o = <usize>k << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; k < n; k++) {
    const o = <usize>k << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}

/** dst[0..n) = src[0..n) · s (f32x4). */
// @ts-ignore: decorator
@inline function scaleRow(dst: usize, src: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const o = <usize>k << 2;
    v128.store(dst + o, f32x4.mul(v128.load(src + o), vs));
  }
  for (; k < n; k++) {
    const o = <usize>k << 2;
    store<f32>(dst + o, load<f32>(src + o) * s);
  }
}

/** dst[0..n) = src[0..n) / s (f32x4; a division, not a product with 1/s, so that it rounds as one quotient). */
// @ts-ignore: decorator
@inline function divideRow(dst: usize, src: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const o = <usize>k << 2;
    v128.store(dst + o, f32x4.div(v128.load(src + o), vs));
  }
  for (; k < n; k++) {
    const o = <usize>k << 2;
    store<f32>(dst + o, load<f32>(src + o) / s);
  }
}

/** dst[0..n) += src[0..n) · s (f32x4). */
// @ts-ignore: decorator
@inline function axpyRow(dst: usize, src: usize, n: i32, s: f32): void {
  const vs = f32x4.splat(s);
  let k = 0;
  for (; k + 4 <= n; k += 4) {
    const o = <usize>k << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), f32x4.mul(v128.load(src + o), vs)));
  }
  for (; k < n; k++) {
    const o = <usize>k << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o) * s);
  }
}

/**
 * Chunked soft matching of one chunk of `n` tokens, in place: `keySum` [n, d], `valueSum` [n, dv]
 * hold size·key and size·value, `size` [n]. Rounds of bipartite soft matching until `keep` live
 * slots remain. `live` [n] (i32) receives the live chunk-local tokens in position order and the
 * count is returned; `into` [n] (i32) the token each merged slot went into (-1: live).
 * Scratch: `a` and `b` [⌈n/2⌉, d], `scores` [⌈n/2⌉ · ⌊n/2⌋], `best` (i32), `bestScore`, `order` (i32) [⌈n/2⌉].
 */
function matchChunk(
  keySum: usize, valueSum: usize, size: usize, n: i32, d: i32, dv: i32, keep: i32,
  live: usize, into: usize, a: usize, b: usize, scores: usize, best: usize, bestScore: usize, order: usize,
): i32 {
  const rowBytes = <usize>d << 2, vBytes = <usize>dv << 2;
  for (let i = 0; i < n; i++) {
    store<i32>(live + (<usize>i << 2), i);
    store<i32>(into + (<usize>i << 2), -1);
  }
  let count = n;
  while (count > keep) {
    const nA = (count + 1) >> 1, nB = count >> 1;
    // The even live slots are A, the odd ones B: normalised copies of their key sums.
    for (let i = 0; i < count; i++) {
      const s = <usize>load<i32>(live + (<usize>i << 2));
      const dst = (i & 1) == 0 ? a + <usize>(i >> 1) * rowBytes : b + <usize>(i >> 1) * rowBytes;
      memory.copy(dst, keySum + s * rowBytes, rowBytes);
    }
    l2NormalizeRows(a, nA, d);
    l2NormalizeRows(b, nB, d);
    rowDots(a, b, scores, nA, nB, d);
    for (let i = 0; i < nA; i++) {
      const row = scores + (<usize>i * <usize>nB << 2);
      let top = load<f32>(row), topJ = 0;
      for (let j = 1; j < nB; j++) {
        const s = load<f32>(row + (<usize>j << 2));
        if (s > top) { top = s; topJ = j; } // strictly greater: the lowest B index wins a tie
      }
      store<f32>(bestScore + (<usize>i << 2), top);
      store<i32>(best + (<usize>i << 2), topJ);
      // Insertion into the descending order; equal scores keep the lower A first (stable).
      let k = i;
      while (k > 0 && load<f32>(bestScore + (<usize>load<i32>(order + (<usize>(k - 1) << 2)) << 2)) < top) {
        store<i32>(order + (<usize>k << 2), load<i32>(order + (<usize>(k - 1) << 2)));
        k--;
      }
      store<i32>(order + (<usize>k << 2), i);
    }
    const r = min(count - keep, nA);
    for (let k = 0; k < r; k++) {
      const i = load<i32>(order + (<usize>k << 2));
      const src = <usize>load<i32>(live + (<usize>(2 * i) << 2));
      const dst = <usize>load<i32>(live + (<usize>(2 * load<i32>(best + (<usize>i << 2)) + 1) << 2));
      addRow(keySum + dst * rowBytes, keySum + src * rowBytes, d);
      addRow(valueSum + dst * vBytes, valueSum + src * vBytes, dv);
      store<f32>(size + (dst << 2), load<f32>(size + (dst << 2)) + load<f32>(size + (src << 2)));
      store<i32>(into + (src << 2), <i32>dst);
    }
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const s = load<i32>(live + (<usize>i << 2));
      if (load<i32>(into + (<usize>s << 2)) < 0) store<i32>(live + (<usize>(kept++) << 2), s);
    }
    count = kept;
  }
  return count;
}

/**
 * The whole cache: `keys` [H, T, d], `values` [H, T, dv], `size` [H, T] (0: ones). `chunks` holds
 * (start, length, keep) triples, `nChunks` of them, covering [sinks, T − recent); M = `slots`.
 * Writes `outKeys` [H, M, d], `outValues` [H, M, dv], `outSize` [H, M], `outPosition` [H, M] (i32),
 * `assignment` [H, T] (i32). `scratch` holds at least maxLen·(2d + dv + 2) + maxLen²/4 + 4·maxLen
 * floats, maxLen the longest chunk.
 */
export function clusterKV(
  keys: usize, values: usize, size: usize, heads: i32, tokens: i32, d: i32, dv: i32,
  sinks: i32, recent: i32, chunks: usize, nChunks: i32, slots: i32,
  outKeys: usize, outValues: usize, outSize: usize, outPosition: usize, assignment: usize, scratch: usize, maxLen: i32,
): void {
  const rowBytes = <usize>d << 2, vBytes = <usize>dv << 2;
  const half = (maxLen + 1) >> 1;
  const keySum = scratch;
  const valueSum = keySum + <usize>maxLen * rowBytes;
  const sz = valueSum + <usize>maxLen * vBytes;
  const live = sz + (<usize>maxLen << 2);
  const into = live + (<usize>maxLen << 2);
  const slotOf = into + (<usize>maxLen << 2);
  const a = slotOf + (<usize>maxLen << 2);
  const b = a + <usize>half * rowBytes;
  const scores = b + <usize>half * rowBytes;
  const best = scores + (<usize>half * <usize>half << 2);
  const bestScore = best + (<usize>half << 2);
  const order = bestScore + (<usize>half << 2);
  for (let h = 0; h < heads; h++) {
    const hk = keys + <usize>h * <usize>tokens * rowBytes;
    const hv = values + <usize>h * <usize>tokens * vBytes;
    const hs = size + (<usize>h * <usize>tokens << 2);
    const ok = outKeys + <usize>h * <usize>slots * rowBytes;
    const ov = outValues + <usize>h * <usize>slots * vBytes;
    const os = outSize + (<usize>h * <usize>slots << 2);
    const op = outPosition + (<usize>h * <usize>slots << 2);
    const ha = assignment + (<usize>h * <usize>tokens << 2);
    let slot = 0;
    // Sinks, then the recent window below, are copied as single slots.
    for (let t = 0; t < tokens; t++) {
      if (t == sinks) t = tokens - recent;
      if (t >= tokens) break;
      const o = tokens - t <= recent ? slots - (tokens - t) : slot++;
      memory.copy(ok + <usize>o * rowBytes, hk + <usize>t * rowBytes, rowBytes);
      memory.copy(ov + <usize>o * vBytes, hv + <usize>t * vBytes, vBytes);
      store<f32>(os + (<usize>o << 2), size != 0 ? load<f32>(hs + (<usize>t << 2)) : 1);
      store<i32>(op + (<usize>o << 2), t);
      store<i32>(ha + (<usize>t << 2), o);
    }
    for (let c = 0; c < nChunks; c++) {
      const start = load<i32>(chunks + (<usize>(3 * c) << 2));
      const n = load<i32>(chunks + (<usize>(3 * c + 1) << 2));
      const keep = load<i32>(chunks + (<usize>(3 * c + 2) << 2));
      if (size == 0) {
        // Unit sizes: the sums start as the rows themselves, two block copies.
        memory.copy(keySum, hk + <usize>start * rowBytes, <usize>n * rowBytes);
        memory.copy(valueSum, hv + <usize>start * vBytes, <usize>n * vBytes);
        for (let i = 0; i < n; i++) store<f32>(sz + (<usize>i << 2), 1);
      } else {
        for (let i = 0; i < n; i++) {
          const t = <usize>(start + i);
          const s = load<f32>(hs + (t << 2));
          store<f32>(sz + (<usize>i << 2), s);
          scaleRow(keySum + <usize>i * rowBytes, hk + t * rowBytes, d, s);
          scaleRow(valueSum + <usize>i * vBytes, hv + t * vBytes, dv, s);
        }
      }
      const count = matchChunk(keySum, valueSum, sz, n, d, dv, keep, live, into, a, b, scores, best, bestScore, order);
      for (let k = 0; k < count; k++) {
        const i = <usize>load<i32>(live + (<usize>k << 2));
        const s = load<f32>(sz + (i << 2));
        divideRow(ok + <usize>slot * rowBytes, keySum + i * rowBytes, d, s);
        divideRow(ov + <usize>slot * vBytes, valueSum + i * vBytes, dv, s);
        store<f32>(os + (<usize>slot << 2), s);
        store<i32>(op + (<usize>slot << 2), start + <i32>i);
        store<i32>(slotOf + (i << 2), slot++);
      }
      for (let i = 0; i < n; i++) {
        let o = i;
        while (load<i32>(into + (<usize>o << 2)) >= 0) o = load<i32>(into + (<usize>o << 2));
        store<i32>(ha + (<usize>(start + i) << 2), load<i32>(slotOf + (<usize>o << 2)));
      }
    }
  }
}

/**
 * Proportional grouped-query attention: `q` [Hq, Tq, d], `keys` [Hkv, Tk, d], `values` [Hkv, Tk, dv],
 * `logSize` [Hkv, Tk] (0: none) → `out` [Hq, Tq, dv]. Causal when `causal`: key j (at
 * `keyPosition` [Hkv, Tk] i32, or j when 0) is visible to query i when at most queryStart + i.
 * `logits` is scratch of Tk floats.
 */
export function attention(
  q: usize, keys: usize, values: usize, logSize: usize, out: usize, logits: usize,
  queryHeads: i32, kvHeads: i32, queries: i32, tk: i32, d: i32, dv: i32,
  causal: bool, keyPosition: usize, queryStart: i32,
): void {
  const group = queryHeads / kvHeads;
  const scale = <f32>(1.0 / Math.sqrt(<f64>d));
  const rowBytes = <usize>d << 2, vBytes = <usize>dv << 2;
  for (let h = 0; h < queryHeads; h++) {
    const kv = h / group;
    const hk = keys + <usize>kv * <usize>tk * rowBytes;
    const hv = values + <usize>kv * <usize>tk * vBytes;
    for (let i = 0; i < queries; i++) {
      const qi = q + (<usize>h * <usize>queries + <usize>i) * rowBytes;
      const oi = out + (<usize>h * <usize>queries + <usize>i) * vBytes;
      let max = -Infinity as f32;
      for (let j = 0; j < tk; j++) {
        let l = -Infinity as f32;
        const p = keyPosition != 0 ? load<i32>(keyPosition + ((<usize>kv * <usize>tk + <usize>j) << 2)) : j;
        if (!causal || p <= queryStart + i) {
          l = dotRow(qi, hk + <usize>j * rowBytes, d) * scale;
          if (logSize != 0) l += load<f32>(logSize + ((<usize>kv * <usize>tk + <usize>j) << 2));
        }
        store<f32>(logits + (<usize>j << 2), l);
        if (l > max) max = l;
      }
      memory.fill(oi, 0, vBytes);
      if (max == -Infinity) continue; // a query that sees no key gets zeros
      let total: f64 = 0;
      for (let j = 0; j < tk; j++) {
        const w = Mathf.exp(load<f32>(logits + (<usize>j << 2)) - max);
        if (w == 0) continue;
        total += w;
        axpyRow(oi, hv + <usize>j * vBytes, dv, w);
      }
      scaleRow(oi, oi, dv, <f32>(1.0 / total));
    }
  }
}
