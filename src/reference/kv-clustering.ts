// Plain TypeScript reference for KV-cache clustering: Chelsea's chunked soft matching ("Efficient
// Long-Context LLM Inference via KV Cache Clustering", 2025, as its abstract and its ToMe lineage
// define it; the paper's body is not public), the eviction baselines it is measured against
// (StreamingLLM's sinks + recent window, uniform stride, score-based eviction as in NVIDIA's
// kvpress) and proportional attention over the merged cache: softmax(q·kᵀ/√D + log size)·V.
// Written for clarity: it is the `js` backend and the oracle the other backends are tested against.
//
// Choices where the method leaves one (each keeps attention over the merged cache closest to the
// full cache, or makes the result canonical):
// - Budget per chunk: keep = ceil(len · ratio), with a 1e-9 slack so that a product that is an
//   integer in exact arithmetic (0.7 · 10) does not round up; at least 1. The budget M is the same
//   for every head: sinks + recent + Σ keep over the chunks.
// - A round: the chunk's live slots, in position order, alternate into A (0th, 2nd, …) and B (1st,
//   3rd, …); every A slot's best B is the highest cosine similarity of their (size-weighted mean)
//   keys, the LOWEST B index on ties; the min(slots − keep, |A|) best A slots merge (a stable
//   descending sort: the lower A first on equal scores). Rounds repeat until `keep` slots remain.
// - A merged slot is represented by its destination B slot's token (ToMe merges A into B): the
//   live slots stay in position order round after round, and `position` is that token's.
// - Keys and values are size-weighted means, accumulated in float64 and rounded once to float32.
// - A zero key has similarity 0 with everything (cosineSimilarity's rule), never NaN.

/** One chunk of the middle of the cache: tokens [start, start + length), `keep` slots after merging. */
export interface KvChunk {
  start: number;
  length: number;
  keep: number;
}

/** Where every token of a T-token cache goes: sinks, chunks, recent window; M slots in all. */
export interface KvLayout {
  tokens: number;
  sinkTokens: number;
  recentTokens: number;
  chunks: KvChunk[];
  /** Slots per head after compression: sinks + recent + Σ keep. */
  slots: number;
}

/** The slots a chunk of `length` tokens keeps at `ratio`: ceil(length · ratio), at least 1. */
export function chunkKeep(length: number, ratio: number): number {
  return Math.max(1, Math.ceil(length * ratio - 1e-9));
}

/** Cuts [sinkTokens, T − recentTokens) into chunks of `chunkSize` (the last may be shorter). */
export function kvLayout(tokens: number, sinkTokens: number, recentTokens: number, chunkSize: number, ratio: number): KvLayout {
  const chunks: KvChunk[] = [];
  const end = tokens - recentTokens;
  let slots = sinkTokens + recentTokens;
  for (let start = sinkTokens; start < end; start += chunkSize) {
    const length = Math.min(chunkSize, end - start);
    const keep = chunkKeep(length, ratio);
    chunks.push({ start, length, keep });
    slots += keep;
  }
  return { tokens, sinkTokens, recentTokens, chunks, slots };
}

/** A compressed cache: M slots per head. */
export interface KvCluster {
  /** [H, M, D] */
  keys: Float32Array;
  /** [H, M, Dv] */
  values: Float32Array;
  /** [H, M]: how many original tokens (their input sizes summed) each slot holds. */
  size: Float32Array;
  /** [H, M]: the position of each slot's representative token, ascending. */
  position: Int32Array;
  /** [H, T]: the slot each token went to, -1 for an evicted token. */
  assignment: Int32Array;
}

/** The shape of a cache: H heads, T tokens, key width D, value width Dv. */
export interface KvShape {
  heads: number;
  tokens: number;
  keyDim: number;
  valueDim: number;
}

/**
 * Chunked soft matching within one chunk of one head: `keySum` [n, D] and `valueSum` [n, Dv]
 * hold size · key and size · value (float64), `size` [n]. Merges rounds of bipartite soft
 * matching until `keep` slots remain; updates the sums of the destinations in place and returns,
 * for every token of the chunk, the chunk-local token whose slot it ended in, and the live
 * (representative) tokens in position order.
 */
export function chunkedSoftMatching(
  keySum: Float64Array, valueSum: Float64Array, size: Float64Array, n: number, d: number, dv: number, keep: number,
): { owner: Int32Array; live: number[] } {
  const into = new Int32Array(n).fill(-1);
  let live = Array.from({ length: n }, (_, i) => i);
  while (live.length > keep) {
    const a = live.filter((_, i) => i % 2 === 0);
    const b = live.filter((_, i) => i % 2 === 1);
    const r = Math.min(live.length - keep, a.length);
    const score = new Float64Array(a.length);
    const best = new Int32Array(a.length);
    for (let i = 0; i < a.length; i++) {
      let top = -Infinity, topJ = 0;
      for (let j = 0; j < b.length; j++) {
        const s = cosine(keySum, a[i]!, b[j]!, d);
        if (s > top) { top = s; topJ = j; } // strictly greater: the lowest B index wins a tie
      }
      score[i] = top;
      best[i] = topJ;
    }
    // Stable descending order of the scores: equal scores keep the lower A first.
    const order = Array.from({ length: a.length }, (_, i) => i).sort((i, j) => (score[j]! - score[i]!) || i - j);
    const merged = new Set<number>();
    for (const i of order.slice(0, r)) {
      const src = a[i]!, dst = b[best[i]!]!;
      for (let k = 0; k < d; k++) keySum[dst * d + k] += keySum[src * d + k]!;
      for (let k = 0; k < dv; k++) valueSum[dst * dv + k] += valueSum[src * dv + k]!;
      size[dst] += size[src]!;
      into[src] = dst;
      merged.add(src);
    }
    live = live.filter((s) => !merged.has(s));
  }
  const owner = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let o = i;
    while (into[o]! >= 0) o = into[o]!;
    owner[i] = o;
  }
  return { owner, live };
}

/** Cosine similarity of rows i and j of `x` (row width d), in float64; 0 when either is zero. */
function cosine(x: Float64Array, i: number, j: number, d: number): number {
  let dot = 0, ni = 0, nj = 0;
  for (let k = 0; k < d; k++) {
    const u = x[i * d + k]!, v = x[j * d + k]!;
    dot += u * v; ni += u * u; nj += v * v;
  }
  const denom = Math.sqrt(ni) * Math.sqrt(nj);
  return denom > 0 ? dot / denom : 0;
}

/**
 * Chelsea's clustering of a whole cache: `keys` [H, T, D], `values` [H, T, Dv], `size` [H, T]
 * (default ones). Sinks and recent tokens stay single slots; each chunk of the middle is merged
 * by chunkedSoftMatching down to its `keep` slots; every head independently, to the same M.
 */
export function clusterKV(keys: Float32Array, values: Float32Array, size: Float32Array | undefined, shape: KvShape, layout: KvLayout): KvCluster {
  const { heads, tokens, keyDim: d, valueDim: dv } = shape;
  const m = layout.slots;
  const out: KvCluster = {
    keys: new Float32Array(heads * m * d), values: new Float32Array(heads * m * dv), size: new Float32Array(heads * m),
    position: new Int32Array(heads * m), assignment: new Int32Array(heads * tokens),
  };
  for (let h = 0; h < heads; h++) {
    let slot = 0;
    /** Appends a slot made of the tokens of `members` (absolute positions), represented by `rep`. */
    const single = (t: number) => {
      const o = h * m + slot;
      out.keys.set(keys.subarray((h * tokens + t) * d, (h * tokens + t + 1) * d), o * d);
      out.values.set(values.subarray((h * tokens + t) * dv, (h * tokens + t + 1) * dv), o * dv);
      out.size[o] = size ? size[h * tokens + t]! : 1;
      out.position[o] = t;
      out.assignment[h * tokens + t] = slot++;
    };
    for (let t = 0; t < layout.sinkTokens; t++) single(t);
    for (const { start, length: n, keep } of layout.chunks) {
      const keySum = new Float64Array(n * d), valueSum = new Float64Array(n * dv), sz = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const t = h * tokens + start + i;
        const s = size ? size[t]! : 1;
        sz[i] = s;
        for (let k = 0; k < d; k++) keySum[i * d + k] = s * keys[t * d + k]!;
        for (let k = 0; k < dv; k++) valueSum[i * dv + k] = s * values[t * dv + k]!;
      }
      const { owner, live } = chunkedSoftMatching(keySum, valueSum, sz, n, d, dv, keep);
      const slotOf = new Int32Array(n);
      for (const i of live) {
        const o = h * m + slot;
        for (let k = 0; k < d; k++) out.keys[o * d + k] = keySum[i * d + k]! / sz[i]!;
        for (let k = 0; k < dv; k++) out.values[o * dv + k] = valueSum[i * dv + k]! / sz[i]!;
        out.size[o] = sz[i]!;
        out.position[o] = start + i;
        slotOf[i] = slot++;
      }
      for (let i = 0; i < n; i++) out.assignment[h * tokens + start + i] = slotOf[owner[i]!]!;
    }
    for (let t = tokens - layout.recentTokens; t < tokens; t++) single(t);
  }
  return out;
}

/** Which tokens an eviction method keeps: per head, M positions in ascending order. */
export type KeptTokens = (head: number) => number[];

/** StreamingLLM (Xiao et al. 2024): the sinks and the most recent M − sinks tokens. */
export function streamingKept(layout: KvLayout): KeptTokens {
  const { tokens, sinkTokens, slots } = layout;
  const kept = [...Array.from({ length: sinkTokens }, (_, i) => i), ...Array.from({ length: slots - sinkTokens }, (_, i) => tokens - (slots - sinkTokens) + i)];
  return () => kept;
}

/**
 * Uniform stride: the sinks, the recent window, and from the middle the token at the centre of
 * each of k equal segments (k = M − sinks − recent): position s + floor((j + ½) · L / k).
 */
export function strideKept(layout: KvLayout): KeptTokens {
  const { tokens, sinkTokens: s, recentTokens: w, slots } = layout;
  const middle = tokens - s - w, k = slots - s - w;
  const kept: number[] = Array.from({ length: s }, (_, i) => i);
  for (let j = 0; j < k; j++) kept.push(s + Math.floor(((j + 0.5) * middle) / k));
  for (let t = tokens - w; t < tokens; t++) kept.push(t);
  return () => kept;
}

/**
 * Score-based eviction (the kvpress interface): the sinks, the recent window, and the k middle
 * tokens of highest score per head (the lower position first on equal scores).
 */
export function scoresKept(layout: KvLayout, scores: Float32Array): KeptTokens {
  const { tokens, sinkTokens: s, recentTokens: w, slots } = layout;
  const k = slots - s - w;
  return (h) => {
    const middle = Array.from({ length: tokens - s - w }, (_, i) => s + i);
    middle.sort((i, j) => (scores[h * tokens + j]! - scores[h * tokens + i]!) || i - j);
    const top = middle.slice(0, k).sort((i, j) => i - j);
    return [...Array.from({ length: s }, (_, i) => i), ...top, ...Array.from({ length: w }, (_, i) => tokens - w + i)];
  };
}

/** Builds the compressed cache of an eviction: kept tokens copied with their sizes; the rest assigned -1. */
export function evict(keys: Float32Array, values: Float32Array, size: Float32Array | undefined, shape: KvShape, slots: number, kept: KeptTokens): KvCluster {
  const { heads, tokens, keyDim: d, valueDim: dv } = shape;
  const out: KvCluster = {
    keys: new Float32Array(heads * slots * d), values: new Float32Array(heads * slots * dv), size: new Float32Array(heads * slots),
    position: new Int32Array(heads * slots), assignment: new Int32Array(heads * tokens).fill(-1),
  };
  for (let h = 0; h < heads; h++) {
    kept(h).forEach((t, slot) => {
      const o = h * slots + slot, i = h * tokens + t;
      out.keys.set(keys.subarray(i * d, (i + 1) * d), o * d);
      out.values.set(values.subarray(i * dv, (i + 1) * dv), o * dv);
      out.size[o] = size ? size[i]! : 1;
      out.position[o] = t;
      out.assignment[i] = slot;
    });
  }
  return out;
}

/** The shape of an attention call: Hq query heads over Hkv key/value heads (grouped-query when Hq > Hkv). */
export interface AttentionShape {
  queryHeads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  keyDim: number;
  valueDim: number;
}

/**
 * Causal masking: query i sits at position `queryStart + i`; key j at `keyPosition[h, j]`
 * (default j) and is visible when its position is not after the query's.
 */
export interface CausalMask {
  queryStart: number;
  keyPosition: Int32Array | undefined;
}

/**
 * Proportional attention (ToMe §3, and Chelsea's attention over merged slots):
 * out = softmax(q·kᵀ/√D + log size)·V per query head; query head h reads key/value head
 * floor(h / (Hq / Hkv)) (grouped-query attention, as repeat_interleave of the KV heads).
 * `size` absent: every slot has size 1 (plain attention). Accumulated in float64.
 */
export function attention(
  q: Float32Array, keys: Float32Array, values: Float32Array, size: Float32Array | undefined, shape: AttentionShape, causal?: CausalMask,
): Float32Array {
  const { queryHeads, kvHeads, queries, keys: tk, keyDim: d, valueDim: dv } = shape;
  const group = queryHeads / kvHeads;
  const scale = 1 / Math.sqrt(d);
  const out = new Float32Array(queryHeads * queries * dv);
  const logit = new Float64Array(tk);
  const acc = new Float64Array(dv);
  for (let h = 0; h < queryHeads; h++) {
    const kv = Math.floor(h / group);
    for (let i = 0; i < queries; i++) {
      const qo = (h * queries + i) * d;
      let max = -Infinity;
      for (let j = 0; j < tk; j++) {
        const visible = !causal || (causal.keyPosition ? causal.keyPosition[kv * tk + j]! : j) <= causal.queryStart + i;
        if (!visible) { logit[j] = -Infinity; continue; }
        let dot = 0;
        for (let k = 0; k < d; k++) dot += q[qo + k]! * keys[(kv * tk + j) * d + k]!;
        logit[j] = dot * scale + (size ? Math.log(size[kv * tk + j]!) : 0);
        if (logit[j]! > max) max = logit[j]!;
      }
      acc.fill(0);
      let total = 0;
      if (max > -Infinity) {
        for (let j = 0; j < tk; j++) {
          const w = Math.exp(logit[j]! - max);
          if (w === 0) continue;
          total += w;
          for (let k = 0; k < dv; k++) acc[k] += w * values[(kv * tk + j) * dv + k]!;
        }
      }
      // A query that sees no key (causal, before every slot) gets zeros.
      for (let k = 0; k < dv; k++) out[(h * queries + i) * dv + k] = total > 0 ? acc[k]! / total : 0;
    }
  }
  return out;
}

/**
 * Merge-on-evict (kvpress's MergingPress; CaM, Zhang et al. 2024): the tokens scoresKept keeps
 * survive with their keys unchanged (so rotary positions stay valid); every evicted token folds
 * its value into its most key-similar survivor of the same head (cosine; the lowest position on
 * ties): the survivor's value becomes the size-weighted mean of its own and the folded values and
 * its size their sum, so that proportional attention weighs the survivor as all of them.
 */
export function mergeOnEvict(keys: Float32Array, values: Float32Array, size: Float32Array | undefined, shape: KvShape, slots: number, kept: KeptTokens): KvCluster {
  const { heads, tokens, keyDim: d, valueDim: dv } = shape;
  const out = evict(keys, values, size, shape, slots, kept);
  for (let h = 0; h < heads; h++) {
    const survivors = kept(h);
    const valueSum = new Float64Array(slots * dv), sz = new Float64Array(slots);
    for (let j = 0; j < slots; j++) {
      const t = h * tokens + survivors[j]!, s = size ? size[t]! : 1;
      sz[j] = s;
      for (let k = 0; k < dv; k++) valueSum[j * dv + k] = s * values[t * dv + k]!;
    }
    const keyRows = new Float64Array(keys.subarray(h * tokens * d, (h + 1) * tokens * d));
    for (let t = 0; t < tokens; t++) {
      if (out.assignment[h * tokens + t]! >= 0) continue;
      let best = -Infinity, bestJ = 0;
      for (let j = 0; j < slots; j++) {
        const s = cosine(keyRows, t, survivors[j]!, d);
        if (s > best) { best = s; bestJ = j; }
      }
      const i = h * tokens + t, s = size ? size[i]! : 1;
      sz[bestJ] += s;
      for (let k = 0; k < dv; k++) valueSum[bestJ * dv + k] += s * values[i * dv + k]!;
      out.assignment[i] = bestJ;
    }
    for (let j = 0; j < slots; j++) {
      out.size[h * slots + j] = sz[j]!;
      for (let k = 0; k < dv; k++) out.values[(h * slots + j) * dv + k] = valueSum[j * dv + k]! / sz[j]!;
    }
  }
  return out;
}

/**
 * KVMerger (Wang et al. 2024, "Model Tells You Where to Merge"), at a fixed budget: merging sets
 * are runs of consecutive middle tokens whose adjacent key cosine similarity exceeds a threshold;
 * the threshold is set per head so that the middle keeps exactly its k = M − sinks − recent runs
 * (the k − 1 least similar adjacent pairs are the cuts; the earlier pair first on equal
 * similarity). Each run merges into its pivot, the token of highest accumulated attention
 * (`scores`; the lower position on ties), with Gaussian-kernel weights
 * w_i = size_i · exp(−‖k_p − k_i‖² / 2σ²), σ² the run's mean ‖k_p − k_i‖² (so the pivot weighs
 * most and the weights adapt to the run's spread; σ is not given by the paper's abstract).
 * Keys and values are the w-weighted means; the slot's size is the run's size (for log(size)).
 */
export function kvMerger(keys: Float32Array, values: Float32Array, size: Float32Array | undefined, shape: KvShape, layout: KvLayout, scores: Float32Array): KvCluster {
  const { heads, tokens, keyDim: d, valueDim: dv } = shape;
  const { sinkTokens: s, recentTokens: w, slots } = layout;
  const k = slots - s - w, middle = tokens - s - w;
  const out: KvCluster = {
    keys: new Float32Array(heads * slots * d), values: new Float32Array(heads * slots * dv), size: new Float32Array(heads * slots),
    position: new Int32Array(heads * slots), assignment: new Int32Array(heads * tokens),
  };
  for (let h = 0; h < heads; h++) {
    const rows = new Float64Array(keys.subarray(h * tokens * d, (h + 1) * tokens * d));
    // Gap g lies between middle tokens s + g and s + g + 1.
    const gaps = Array.from({ length: Math.max(0, middle - 1) }, (_, g) => g);
    const similarity = gaps.map((g) => cosine(rows, s + g, s + g + 1, d));
    const cuts = new Set([...gaps].sort((a, b) => (similarity[a]! - similarity[b]!) || a - b).slice(0, Math.max(0, k - 1)));
    const runs: Array<[number, number]> = [];
    let from = s;
    for (let g = 0; g < middle; g++) {
      if (g === middle - 1 || cuts.has(g)) { runs.push([from, s + g + 1]); from = s + g + 1; }
    }
    let slot = 0;
    const emit = (members: number[], pivot: number) => {
      let dist2 = 0;
      for (const t of members) {
        let e = 0;
        for (let c = 0; c < d; c++) e += (rows[pivot * d + c]! - rows[t * d + c]!) ** 2;
        dist2 += e;
      }
      const sigma2 = dist2 / members.length;
      const ks = new Float64Array(d), vs = new Float64Array(dv);
      let total = 0, tokensIn = 0;
      for (const t of members) {
        const i = h * tokens + t, sz = size ? size[i]! : 1;
        let e = 0;
        for (let c = 0; c < d; c++) e += (rows[pivot * d + c]! - rows[t * d + c]!) ** 2;
        const weight = sz * (sigma2 > 0 ? Math.exp(-e / (2 * sigma2)) : 1);
        total += weight;
        tokensIn += sz;
        for (let c = 0; c < d; c++) ks[c] += weight * keys[i * d + c]!;
        for (let c = 0; c < dv; c++) vs[c] += weight * values[i * dv + c]!;
        out.assignment[i] = slot;
      }
      const o = h * slots + slot++;
      for (let c = 0; c < d; c++) out.keys[o * d + c] = ks[c]! / total;
      for (let c = 0; c < dv; c++) out.values[o * dv + c] = vs[c]! / total;
      out.size[o] = tokensIn;
      out.position[o] = pivot;
    };
    for (let t = 0; t < s; t++) emit([t], t);
    for (const [a, b] of runs) {
      let pivot = a;
      for (let t = a + 1; t < b; t++) if (scores[h * tokens + t]! > scores[h * tokens + pivot]!) pivot = t;
      emit(Array.from({ length: b - a }, (_, i) => a + i), pivot);
    }
    for (let t = tokens - w; t < tokens; t++) emit([t], t);
  }
  return out;
}

/** MiniCache's merge of one tensor (keys or values) across two adjacent layers. */
export interface MiniCacheMerge {
  /** [H, T, D]: the shared unit direction of each token (zero for a retained token). */
  direction: Float32Array;
  /** [H, T]: ‖x‖ in the earlier layer, and in the later one. */
  normA: Float32Array;
  normB: Float32Array;
  /** [H, T]: 1 for a token kept unmerged (its two layers' states stay as they are), else 0. */
  retained: Int32Array;
  /** [H, T, D]: each layer's cache as restored from the merge (norm · direction, or the original when retained). */
  restoredA: Float32Array;
  restoredB: Float32Array;
}

/**
 * MiniCache (Liu et al. 2024): the states of a token in two adjacent layers, a (layer l − 1) and
 * b (layer l), become one shared direction SLERP(â, b̂, t) plus each layer's norm; the
 * `retain` · T tokens per head whose two states are farthest apart in angle stay unmerged (the
 * paper's retention tokens; the lower position first on equal angles). When â and b̂ are
 * (anti)parallel to within sin θ < 1e-6 the direction is the normalised linear blend. A zero
 * state has norm 0 (its restored state is zero whatever the direction).
 */
export function miniCache(a: Float32Array, b: Float32Array, heads: number, tokens: number, d: number, t: number, retain: number): MiniCacheMerge {
  const out: MiniCacheMerge = {
    direction: new Float32Array(heads * tokens * d), normA: new Float32Array(heads * tokens), normB: new Float32Array(heads * tokens),
    retained: new Int32Array(heads * tokens), restoredA: a.slice(), restoredB: b.slice(),
  };
  const keepCount = Math.min(tokens, Math.ceil(tokens * retain - 1e-9));
  for (let h = 0; h < heads; h++) {
    const angle = new Float64Array(tokens);
    for (let i = 0; i < tokens; i++) {
      const o = (h * tokens + i) * d;
      let na = 0, nb = 0, dot = 0;
      for (let k = 0; k < d; k++) { na += a[o + k]! ** 2; nb += b[o + k]! ** 2; dot += a[o + k]! * b[o + k]!; }
      na = Math.sqrt(na); nb = Math.sqrt(nb);
      out.normA[h * tokens + i] = na;
      out.normB[h * tokens + i] = nb;
      angle[i] = na > 0 && nb > 0 ? Math.acos(Math.max(-1, Math.min(1, dot / (na * nb)))) : 0;
    }
    const order = Array.from({ length: tokens }, (_, i) => i).sort((i, j) => (angle[j]! - angle[i]!) || i - j);
    for (const i of order.slice(0, keepCount)) out.retained[h * tokens + i] = 1;
    for (let i = 0; i < tokens; i++) {
      if (out.retained[h * tokens + i]) continue;
      const o = (h * tokens + i) * d, na = out.normA[h * tokens + i]!, nb = out.normB[h * tokens + i]!;
      const theta = angle[i]!, sin = Math.sin(theta);
      const e = new Float64Array(d);
      for (let k = 0; k < d; k++) {
        const ua = na > 0 ? a[o + k]! / na : 0, ub = nb > 0 ? b[o + k]! / nb : 0;
        e[k] = sin < 1e-6 ? (1 - t) * ua + t * ub : (Math.sin((1 - t) * theta) * ua + Math.sin(t * theta) * ub) / sin;
      }
      let ne = 0;
      for (let k = 0; k < d; k++) ne += e[k]! ** 2;
      ne = Math.sqrt(ne);
      for (let k = 0; k < d; k++) {
        const u = ne > 0 ? e[k]! / ne : 0;
        out.direction[o + k] = u;
        out.restoredA[o + k] = na * u;
        out.restoredB[o + k] = nb * u;
      }
    }
  }
  return out;
}
