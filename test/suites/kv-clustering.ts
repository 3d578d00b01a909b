// KV-cache clustering and proportional attention on every backend: hand-worked caches, the
// properties every compressed cache must have (sizes sum to T, each slot the size-weighted mean
// of its tokens, sinks and recent tokens single), the js reference on many shapes, the eviction
// baselines by hand, attention by hand and by its identities, and bad input.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceTensor, reference, type KvClusterResult, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, randomTensor, rejects } from '../util.ts';

const list = (a: ArrayLike<number>) => Array.from(a);
const t = (data: number[], shape: number[]): Tensor => ({ data: new Float32Array(data), shape });

// Merged keys and values are float32 means of ≤ 64 float32 values (wasm sums in float32, the
// reference in float64): a few ulps of the largest term, so 1e-5 relative (and absolute, for
// means near zero of terms of magnitude ~1) leaves a wide margin and still catches a wrong member.
const TOL = { rtol: 1e-5, atol: 1e-5 };

/** Checks what every compressed cache must satisfy, from its assignment alone (no reference). */
function checkProperties(r: KvClusterResult, keys: Tensor, values: Tensor, o: { sinkTokens: number; recentTokens: number; size?: Tensor }, m: number): void {
  const [H, T, D] = keys.shape as [number, number, number];
  const Dv = values.shape[2]!;
  assert.equal(r.keys.shape, [H, m, D]);
  assert.equal(r.values.shape, [H, m, Dv]);
  assert.equal(r.size.shape, [H, m]);
  assert.equal(r.position.shape, [H, m]);
  assert.equal(r.assignment.shape, [H, T]);
  for (let h = 0; h < H; h++) {
    const size = new Float64Array(m), ks = new Float64Array(m * D), vs = new Float64Array(m * Dv);
    let total = 0;
    for (let i = 0; i < T; i++) {
      const slot = r.assignment.data[h * T + i]!;
      assert.ok(slot >= 0 && slot < m, `head ${h} token ${i}: slot ${slot} outside [0, ${m})`);
      const s = o.size ? o.size.data[h * T + i]! : 1;
      total += s;
      size[slot] += s;
      for (let k = 0; k < D; k++) ks[slot * D + k] += s * keys.data[(h * T + i) * D + k]!;
      for (let k = 0; k < Dv; k++) vs[slot * Dv + k] += s * values.data[(h * T + i) * Dv + k]!;
    }
    allClose(r.size.data.subarray(h * m, (h + 1) * m), size, { rtol: 1e-6 }, `head ${h} sizes`);
    let sum = 0;
    for (let j = 0; j < m; j++) sum += r.size.data[h * m + j]!;
    assert.ok(Math.abs(sum - total) <= 1e-6 * total, `head ${h}: sizes sum to ${sum}, expected ${total}`);
    allClose(r.keys.data.subarray(h * m * D, (h + 1) * m * D), ks.map((v, i) => v / size[Math.floor(i / D)]!), TOL, `head ${h} keys = size-weighted means`);
    allClose(r.values.data.subarray(h * m * Dv, (h + 1) * m * Dv), vs.map((v, i) => v / size[Math.floor(i / Dv)]!), TOL, `head ${h} values = size-weighted means`);
    for (let j = 1; j < m; j++) assert.ok(r.position.data[h * m + j]! > r.position.data[h * m + j - 1]!, `head ${h}: positions ascending at slot ${j}`);
    for (let j = 0; j < m; j++) {
      const p = r.position.data[h * m + j]!;
      assert.is(r.assignment.data[h * T + p], j, `head ${h}: slot ${j}'s representative token ${p} belongs to it`);
    }
    // Sinks and recent tokens: their own slot each, first and last.
    for (let i = 0; i < o.sinkTokens; i++) assert.is(r.assignment.data[h * T + i], i, `head ${h}: sink ${i} unmerged`);
    for (let i = 0; i < o.recentTokens; i++) assert.is(r.assignment.data[h * T + T - 1 - i], m - 1 - i, `head ${h}: recent token ${T - 1 - i} unmerged`);
  }
}

/** M by hand: sinks + recent + Σ ceil(len · ratio) over the chunks of the middle. */
function budget(T: number, s: number, w: number, c: number, ratio: number): number {
  let m = s + w;
  for (let start = s; start < T - w; start += c) m += Math.max(1, Math.ceil(Math.min(c, T - w - start) * ratio - 1e-9));
  return m;
}

export default function (h: Harness) {
  const test = suite(`kv-clustering [${h.backend}]`);

  // One head, T = 6, D = 2, a sink and a recent token around one chunk of 4 (tokens 1–4).
  // A = tokens 1, 3; B = tokens 2, 4. cos(k1, k2) = 3/√10 ≈ 0.949 > cos(k1, k4) = 1/√17 ≈ 0.243;
  // cos(k3, k4) = 4/√17 ≈ 0.970 > cos(k3, k2) = 1/√10 ≈ 0.316. keep = ceil(4 · 0.5) = 2 = 4 − 2:
  // both A tokens merge, 1 → 2 and 3 → 4.
  const keys6 = t([5, 5, 1, 0, 3, 1, 0, 1, 1, 4, 7, 7], [1, 6, 2]);
  const values6 = t([10, 20, 30, 40, 50, 60], [1, 6, 1]);

  test('hand-worked: one round, two pairs merge into their B tokens', async () => {
    const r = await h.mk.clusterKV(keys6, values6, { chunkSize: 4, ratio: 0.5, sinkTokens: 1, recentTokens: 1 });
    assert.equal(list(r.assignment.data), [0, 1, 1, 2, 2, 3]);
    assert.equal(list(r.position.data), [0, 2, 4, 5]);
    assert.equal(list(r.size.data), [1, 2, 2, 1]);
    allClose(r.keys.data, [5, 5, 2, 0.5, 0.5, 2.5, 7, 7], TOL, 'keys');
    allClose(r.values.data, [10, 25, 45, 60], TOL, 'values');
  });

  test('hand-worked: input sizes weight the means and add', async () => {
    // Token 1 stands for 3 tokens: slot {1, 2} = (3·(1,0) + (3,1)) / 4 = (1.5, 0.25), value (3·20 + 30)/4 = 22.5.
    const size = t([1, 3, 1, 1, 1, 1], [1, 6]);
    const r = await h.mk.clusterKV(keys6, values6, { chunkSize: 4, ratio: 0.5, sinkTokens: 1, recentTokens: 1, size });
    assert.equal(list(r.size.data), [1, 4, 2, 1]);
    allClose(r.keys.data, [5, 5, 1.5, 0.25, 0.5, 2.5, 7, 7], TOL, 'keys');
    allClose(r.values.data, [10, 22.5, 45, 60], TOL, 'values');
  });

  test('hand-worked: a second round merges the two slots into the later one', async () => {
    // keep = ceil(4 · 0.25) = 1: round 1 as above, then A = slot {1,2}, B = slot {3,4}: one slot of all four.
    const r = await h.mk.clusterKV(keys6, values6, { chunkSize: 4, ratio: 0.25, sinkTokens: 1, recentTokens: 1 });
    assert.equal(list(r.assignment.data), [0, 1, 1, 1, 1, 2]);
    assert.equal(list(r.position.data), [0, 4, 5]);
    assert.equal(list(r.size.data), [1, 4, 1]);
    allClose(r.keys.data, [5, 5, 1.25, 1.5, 7, 7], TOL, 'keys');
    allClose(r.values.data, [10, 35, 60], TOL, 'values');
  });

  test('hand-worked: only the best-scoring A slots merge when fewer merges are needed', async () => {
    // A chunk of 5 (no sinks or recent), keep = ceil(5 · 0.6) = 3, r = 2 of |A| = 3.
    // (5 · 0.6 is 3.0000000000000004 in float64: the budget's slack keeps it 3.)
    // A = tokens 0, 2, 4; B = 1, 3. k0 = (1,0): cos with k1 = (1,0) is 1, with k3 = (0.6,0.8) 0.6 → k1 at 1;
    // k2 = (0,1): 0 and 0.8 → k3 at 0.8; k4 = (1,1): 1/√2 ≈ 0.707 and 1.4/√2 ≈ 0.990 → k3 at 0.990.
    // Ranking: k0 (1.0), k4 (0.990), k2 (0.8): tokens 0 and 4 merge, 0 → 1 and 4 → 3.
    const keys = t([1, 0, 1, 0, 0, 1, 0.6, 0.8, 1, 1], [1, 5, 2]);
    const values = t([1, 2, 3, 4, 5], [1, 5, 1]);
    const r = await h.mk.clusterKV(keys, values, { chunkSize: 8, ratio: 0.6 });
    assert.equal(list(r.assignment.data), [0, 0, 1, 2, 2]);
    assert.equal(list(r.position.data), [1, 2, 3]);
    allClose(r.values.data, [1.5, 3, 4.5], TOL, 'values');
    allClose(r.keys.data, [1, 0, 0, 1, 0.8, 0.9], TOL, 'keys');
  });

  test('properties and the js reference over edge shapes', async () => {
    // [H, T, D, Dv, chunkSize, ratio, sinks, recent]
    const cases: Array<[number, number, number, number, number, number, number, number]> = [
      [1, 8, 4, 4, 4, 0.5, 4, 4],     // T = sinks + recent: nothing to merge
      [2, 37, 5, 3, 8, 0.25, 2, 3],   // last chunk shorter (32 = 4 · 8, then 0: exact) — see next
      [2, 40, 5, 3, 8, 0.25, 2, 3],   // middle 35: four chunks of 8 and one of 3
      [1, 20, 7, 9, 2, 0.5, 1, 1],    // chunks of 2
      [3, 51, 6, 6, 7, 0.3, 0, 0],    // odd chunk, no protected tokens
      [1, 64, 16, 8, 64, 0.125, 0, 0],// one chunk, three rounds
      [2, 33, 3, 1, 5, 1, 2, 2],      // ratio 1: identity
      [2, 70, 12, 12, 16, 0.2, 4, 8],
      [1, 3, 4, 2, 4, 0.5, 0, 0],     // T smaller than one chunk
      [1, 530, 9, 4, 256, 0.1, 3, 7], // the largest chunk a WebGPU workgroup holds (256), and a short last one
    ];
    let seed = 1;
    for (const [H, T, D, Dv, chunkSize, ratio, sinkTokens, recentTokens] of cases) {
      const what = `[${H}, ${T}, ${D}|${Dv}] chunk ${chunkSize} ratio ${ratio} sinks ${sinkTokens} recent ${recentTokens}`;
      const keys = randomTensor([H, T, D], seed++), values = randomTensor([H, T, Dv], seed++);
      const size = randomTensor([H, T], seed++, 1, 4);
      for (const withSize of [false, true]) {
        const o = { chunkSize, ratio, sinkTokens, recentTokens, ...(withSize ? { size } : {}) };
        const r = await h.mk.clusterKV(keys, values, o);
        const m = budget(T, sinkTokens, recentTokens, chunkSize, ratio);
        try {
          checkProperties(r, keys, values, o, m);
          if (ratio === 1) assert.equal(list(r.assignment.data), Array.from({ length: H * T }, (_, i) => i % T), 'ratio 1 merges nothing');
          if (h.backend !== 'js') {
            const want = await h.ref.clusterKV(keys, values, o);
            assert.equal(list(r.assignment.data), list(want.assignment.data), 'assignment as the reference');
            allClose(r.values.data, want.values.data, TOL, 'values as the reference');
            allClose(r.keys.data, want.keys.data, TOL, 'keys as the reference');
          }
        } catch (e) {
          throw new Error(`${what}${withSize ? ' with sizes' : ''}: ${(e as Error).message}`);
        }
      }
    }
  });

  test('the reference on structured caches (drifting, rotary) at the benchmark chunk size', async () => {
    for (const kind of ['drifting', 'rotary', 'clusters'] as const) {
      const c = reference.kvQuality.syntheticCache(kind, 2, 300, 20, 12, 1, 5);
      const keys = { data: c.keys, shape: [2, 300, 20] }, values = { data: c.values, shape: [2, 300, 12] };
      const o = { chunkSize: 64, ratio: 0.25, sinkTokens: 4, recentTokens: 16 };
      const r = await h.mk.clusterKV(keys, values, o);
      checkProperties(r, keys, values, o, budget(300, 4, 16, 64, 0.25));
      if (h.backend !== 'js') {
        const want = await h.ref.clusterKV(keys, values, o);
        assert.equal(list(r.assignment.data), list(want.assignment.data), `${kind}: assignment as the reference`);
        allClose(r.values.data, want.values.data, TOL, `${kind}: values as the reference`);
      }
    }
  });

  test('chunks over 256 tokens: TOO_LARGE on webgpu (one workgroup holds a chunk), computed elsewhere', async () => {
    const keys = randomTensor([1, 300, 4], 7), values = randomTensor([1, 300, 2], 8);
    const o = { chunkSize: 300, ratio: 0.5 };
    if (h.backend === 'webgpu') {
      await rejects(() => h.mk.clusterKV(keys, values, o), 'TOO_LARGE', ['chunkSize', '256']);
    } else {
      checkProperties(await h.mk.clusterKV(keys, values, o), keys, values, { sinkTokens: 0, recentTokens: 0 }, 150);
    }
  });

  test('eviction baselines by hand: streaming, stride, scores at the same budget', async () => {
    // T = 10, one sink, two recent; middle = tokens 1–7 in chunks [1, 5) keep 2 and [5, 8) keep ceil(1.5) = 2: M = 7.
    const keys = randomTensor([2, 10, 3], 3), values = randomTensor([2, 10, 2], 4);
    const o = { chunkSize: 4, ratio: 0.5, sinkTokens: 1, recentTokens: 2 };
    const streaming = await h.mk.clusterKV(keys, values, { ...o, method: 'streaming' });
    assert.equal(list(streaming.position.data), [0, 4, 5, 6, 7, 8, 9, 0, 4, 5, 6, 7, 8, 9]);
    // Stride: k = 4 of L = 7 middle tokens at 1 + floor((j + ½)·7/4) = 1, 3, 5, 7.
    const stride = await h.mk.clusterKV(keys, values, { ...o, method: 'stride' });
    assert.equal(list(stride.position.data), [0, 1, 3, 5, 7, 8, 9, 0, 1, 3, 5, 7, 8, 9]);
    assert.equal(list(stride.assignment.data.subarray(0, 10)), [0, 1, -1, 2, -1, 3, -1, 4, 5, 6]);
    // Scores: head 0 prefers tokens 2, 3, 6, 7 (ties at 0.5 between 3 and 5: the lower position wins); head 1 tokens 1–4.
    const scores = t([9, 0, 1, 0.5, 0, 0.5, 1, 1, 9, 9, /* head 1 */ 0, 4, 3, 2, 1, 0, 0, 0, 0, 0], [2, 10]);
    const byScore = await h.mk.clusterKV(keys, values, { ...o, method: 'scores', scores });
    assert.equal(list(byScore.position.data), [0, 2, 3, 6, 7, 8, 9, 0, 1, 2, 3, 4, 8, 9]);
    for (const r of [streaming, stride, byScore]) {
      assert.equal(list(r.size.data), Array(14).fill(1));
      for (let hd = 0; hd < 2; hd++) for (let j = 0; j < 7; j++) {
        const p = r.position.data[hd * 7 + j]!;
        allClose(r.keys.data.subarray((hd * 7 + j) * 3, (hd * 7 + j + 1) * 3), keys.data.subarray((hd * 10 + p) * 3, (hd * 10 + p + 1) * 3), {}, 'kept keys copied');
      }
    }
  });

  test('merge-on-evict by hand: survivors keep their keys, evicted values fold into the most key-similar survivor', async () => {
    // T = 5, keep ceil(5 · 0.6) = 3: scores keep tokens 0, 2, 4. Token 1 = (0.2, 1): cosines 0.196 (k0),
    // 0.981 (k2), −0.196 (k4) → token 2's slot; token 3 = (−1, −0.1): −0.995, −0.0995, 0.995 → token 4's slot.
    const keys = t([1, 0, 0.2, 1, 0, 1, -1, -0.1, -1, 0], [1, 5, 2]);
    const values = t([10, 20, 30, 40, 50], [1, 5, 1]);
    const r = await h.mk.clusterKV(keys, values, { chunkSize: 5, ratio: 0.6, method: 'mergeOnEvict', scores: t([5, 1, 4, 0, 3], [1, 5]) });
    assert.equal(list(r.assignment.data), [0, 1, 1, 2, 2]);
    assert.equal(list(r.position.data), [0, 2, 4]);
    assert.equal(list(r.size.data), [1, 2, 2]);
    allClose(r.keys.data, [1, 0, 0, 1, -1, 0], {}, 'keys kept');
    allClose(r.values.data, [10, 25, 45], TOL, 'values folded');
  });

  test('KVMerger by hand: runs of similar adjacent keys, merged into their pivots with Gaussian weights', async () => {
    // Adjacent cosines 1, 0, 1, 0, 1; k = ceil(6 · 0.5) = 3 runs: cuts at the two zero gaps → {0,1} {2,3} {4,5}.
    // Pivots by score: 1, 2, and 4 (a tie with 5: the lower position). Run {0,1}: ‖k1 − k0‖² = 1, σ² = 1/2,
    // w0 = e^−1, w1 = 1. Run {2,3}: ‖k2 − k3‖² = 4, σ² = 2, w3 = e^−1. Run {4,5}: equal keys, weights 1.
    const keys = t([1, 0, 2, 0, 0, 1, 0, 3, -1, 0, -1, 0], [1, 6, 2]);
    const values = t([10, 20, 30, 40, 50, 60], [1, 6, 1]);
    const r = await h.mk.clusterKV(keys, values, { chunkSize: 6, ratio: 0.5, method: 'kvMerger', scores: t([0, 1, 5, 2, 3, 3], [1, 6]) });
    const e = Math.exp(-1), n = 1 + e;
    assert.equal(list(r.assignment.data), [0, 0, 1, 1, 2, 2]);
    assert.equal(list(r.position.data), [1, 2, 4]);
    assert.equal(list(r.size.data), [2, 2, 2]);
    allClose(r.keys.data, [(e + 2) / n, 0, 0, (1 + 3 * e) / n, -1, 0], TOL, 'keys');
    allClose(r.values.data, [(10 * e + 20) / n, (30 + 40 * e) / n, 55], TOL, 'values');
  });

  test('MiniCache by hand: SLERP of the two layers\' directions, each layer\'s norm, the farthest-apart tokens retained', async () => {
    // Token 0: a = (2, 0), b = (0, 3): θ = π/2, t = 0.5 → e = (sin(π/4), sin(π/4)) = (1/√2, 1/√2); restored 2e and 3e.
    // Token 1: a = (1, 0), b = (2, 0): parallel, e = (1, 0). Token 2: a = (1, 0), b = (-1, 0): θ = π, the
    // farthest apart: retained with retain = 1/3 (ceil(3 · 1/3) = 1 token), both states unchanged.
    const a = t([2, 0, 1, 0, 1, 0], [1, 3, 2]), b = t([0, 3, 2, 0, -1, 0], [1, 3, 2]);
    const r = await h.mk.miniCache(a, b, { t: 0.5, retain: 1 / 3 });
    const s = Math.SQRT1_2;
    assert.equal(list(r.retained.data), [0, 0, 1]);
    allClose(r.normA.data, [2, 1, 1], { atol: 1e-7 }, 'normA');
    allClose(r.normB.data, [3, 2, 1], { atol: 1e-7 }, 'normB');
    allClose(r.direction.data, [s, s, 1, 0, 0, 0], { atol: 1e-7 }, 'direction');
    allClose(r.restoredA.data, [2 * s, 2 * s, 1, 0, 1, 0], { atol: 1e-6 }, 'restoredA');
    allClose(r.restoredB.data, [3 * s, 3 * s, 2, 0, -1, 0], { atol: 1e-6 }, 'restoredB');
    // t = 0.6 (the default) leans to the later layer: at θ = π/2, e = (sin(0.4·π/2), sin(0.6·π/2)).
    const d = await h.mk.miniCache(t([2, 0], [1, 1, 2]), t([0, 3], [1, 1, 2]), { retain: 0 });
    allClose(d.direction.data, [Math.sin(0.2 * Math.PI), Math.sin(0.3 * Math.PI)], { atol: 1e-6 }, 'default t');
    await rejects(() => h.mk.miniCache(a, t([1, 2], [1, 1, 2])), 'SHAPE_MISMATCH', ['b']);
    await rejects(() => h.mk.miniCache(a, b, { t: 1.5 }), 'INVALID_OPTION', ['t']);
    await rejects(() => h.mk.miniCache(a, b, { retain: -0.1 }), 'INVALID_OPTION', ['retain']);
  });

  test('attention by hand: softmax of q·k/√D, log(size) added', async () => {
    // D = 4, q = (2, 0, 0, 0), keys (1,0,0,0) and (0,0,0,0): logits 1 and 0 → weights e/(e+1), 1/(e+1).
    const q = t([2, 0, 0, 0], [1, 1, 4]);
    const keys = t([1, 0, 0, 0, 0, 0, 0, 0], [1, 2, 4]);
    const values = t([1, 0, 0, 1], [1, 2, 2]);
    const e = Math.E;
    const plain = await h.mk.attention(q, keys, values);
    assert.equal(plain.shape, [1, 1, 2]);
    allClose(plain.data, [e / (e + 1), 1 / (e + 1)], { atol: 1e-6 });
    // Sizes 1 and 3: logits 1 and log 3 → weights e/(e+3), 3/(e+3).
    const sized = await h.mk.attention(q, keys, values, { size: t([1, 3], [1, 2]) });
    allClose(sized.data, [e / (e + 3), 3 / (e + 3)], { atol: 1e-6 });
  });

  test('attention: a slot of size n equals n copies of its token; grouped-query equals repeated KV heads', async () => {
    const q = randomTensor([4, 3, 8], 11), keys = randomTensor([2, 5, 8], 12), values = randomTensor([2, 5, 6], 13);
    const size = t([1, 2, 3, 1, 1, 2, 1, 1, 3, 1], [2, 5]);
    // Expand each token into `size` copies (then sizes are all 1).
    const rep = (x: Tensor, width: number) => {
      const out: number[] = [];
      for (let hd = 0; hd < 2; hd++) for (let j = 0; j < 5; j++) for (let c = 0; c < size.data[hd * 5 + j]!; c++) out.push(...x.data.subarray((hd * 5 + j) * width, (hd * 5 + j + 1) * width));
      return out;
    };
    // Both heads expand to 8 tokens.
    const sized = await h.mk.attention(q, keys, values, { size });
    const copies = await h.mk.attention(q, t(rep(keys, 8), [2, 8, 8]), t(rep(values, 6), [2, 8, 6]));
    allClose(sized.data, copies.data, { atol: 1e-5 }, 'size n = n copies');
    // Grouped-query: KV head k serves query heads 2k and 2k + 1; repeat_interleave the KV heads.
    const r2 = (x: Tensor, width: number) => t([0, 0, 1, 1].flatMap((kv) => list(x.data.subarray(kv * 5 * width, (kv + 1) * 5 * width))), [4, 5, width]);
    const full = await h.mk.attention(q, r2(keys, 8), r2(values, 6), { size: t([0, 0, 1, 1].flatMap((kv) => list(size.data.subarray(kv * 5, kv * 5 + 5))), [4, 5]) });
    allClose(sized.data, full.data, { atol: 1e-6 }, 'grouped-query');
    if (h.backend !== 'js') allClose(sized.data, (await h.ref.attention(q, keys, values, { size })).data, { rtol: 1e-5, atol: 1e-6 }, 'as the reference');
  });

  test('attention: causal masks later keys (query i at Tk − Tq + i, or at given positions)', async () => {
    const q = randomTensor([1, 3, 5], 21), keys = randomTensor([1, 6, 5], 22), values = randomTensor([1, 6, 4], 23);
    const causal = await h.mk.attention(q, keys, values, { causal: true });
    for (let i = 0; i < 3; i++) {
      const n = 6 - 3 + i + 1; // keys 0 … 3 + i
      const one = await h.mk.attention(t(list(q.data.subarray(i * 5, i * 5 + 5)), [1, 1, 5]), t(list(keys.data.subarray(0, n * 5)), [1, n, 5]), t(list(values.data.subarray(0, n * 4)), [1, n, 4]));
      allClose(causal.data.subarray(i * 4, i * 4 + 4), one.data, { atol: 1e-6 }, `query ${i}`);
    }
    // Positions of a compressed cache: keys at 0, 2, 9, 10, 11, 12; the queries default to 10, 11, 12
    // (after the last key) and see 4, 5, 6 keys: the same as above.
    const position = { data: new Int32Array([0, 2, 9, 10, 11, 12]), shape: [1, 6] };
    allClose((await h.mk.attention(q, keys, values, { causal: true, position })).data, causal.data, { atol: 1e-6 }, 'positions');
    // queryStart 2: query 0 sees keys at 0 and 2 only.
    const early = await h.mk.attention(q, keys, values, { causal: true, position, queryStart: 2 });
    const two = await h.mk.attention(t(list(q.data.subarray(0, 5)), [1, 1, 5]), t(list(keys.data.subarray(0, 10)), [1, 2, 5]), t(list(values.data.subarray(0, 8)), [1, 2, 4]));
    allClose(early.data.subarray(0, 4), two.data, { atol: 1e-6 }, 'queryStart');
    if (h.backend !== 'js') allClose(early.data, (await h.ref.attention(q, keys, values, { causal: true, position, queryStart: 2 })).data, { rtol: 1e-5, atol: 1e-6 }, 'as the reference');
  });

  test('online: appended in pieces, equals offline clusterKV when the middle is a multiple of chunkSize', async () => {
    // T = 4 sinks + 5 chunks of 16 + 12 recent = 96, appended in uneven pieces (1, 3, 17, 30, 0, 45).
    const H = 2, D = 6, Dv = 5, T = 96;
    const c = reference.kvQuality.syntheticCache('drifting', H, T, D, Dv, 1, 9);
    const keys = { data: c.keys, shape: [H, T, D] }, values = { data: c.values, shape: [H, T, Dv] };
    const o = { chunkSize: 16, ratio: 0.25, sinkTokens: 4, recentTokens: 12 };
    const online = h.mk.kvCompressor({ ...o, heads: H, keyDim: D, valueDim: Dv });
    const piece = (x: Float32Array, w: number, from: number, to: number) => t(
      Array.from({ length: H }, (_, hd) => list(x.subarray((hd * T + from) * w, (hd * T + to) * w))).flat(), [H, to - from, w]);
    let at = 0;
    for (const n of [1, 3, 17, 30, 0, 45]) {
      await online.append(piece(c.keys, D, at, at + n), piece(c.values, Dv, at, at + n));
      at += n;
      const s = online.state();
      const S = s.size.shape[1]!;
      for (let hd = 0; hd < H; hd++) {
        let sum = 0;
        for (let j = 0; j < S; j++) sum += s.size.data[hd * S + j]!;
        assert.is(sum, at, `after ${at} tokens: head ${hd}'s sizes sum to the tokens`);
        for (let j = 1; j < S; j++) assert.ok(s.position.data[hd * S + j]! > s.position.data[hd * S + j - 1]!, 'positions ascending');
      }
    }
    assert.is(online.tokens, T);
    const offline = await h.mk.clusterKV(keys, values, o);
    const s = online.state();
    assert.equal(s.keys.shape, offline.keys.shape);
    assert.equal(list(s.position.data), list(offline.position.data));
    allClose(s.size.data, offline.size.data, {}, 'sizes');
    allClose(s.keys.data, offline.keys.data, TOL, 'keys');
    allClose(s.values.data, offline.values.data, TOL, 'values');
    // Five more tokens: the middle is no longer a multiple of 16; they wait unmerged.
    await online.append(piece(c.keys, D, 0, 5), piece(c.values, Dv, 0, 5));
    assert.is(online.state().size.shape[1], offline.size.shape[1]! + 5);
    await rejects(() => online.append(randomTensor([H, 2, D + 1], 1), randomTensor([H, 2, Dv], 2)), 'SHAPE_MISMATCH', ['keys']);
    await rejects(() => online.append(randomTensor([H, 2, D], 1), randomTensor([H, 3, Dv], 2)), 'SHAPE_MISMATCH', ['values']);
    assert.throws(() => h.mk.kvCompressor({ ...o, heads: 0, keyDim: D, valueDim: Dv }), /heads/);
  });

  test('device tensors: a resident cache gives the same clusters and attention as host tensors', async () => {
    const c = reference.kvQuality.syntheticCache('drifting', 2, 150, 12, 8, 4, 13);
    const keys = t(list(c.keys), [2, 150, 12]), values = t(list(c.values), [2, 150, 8]);
    const dk = h.mk.upload(keys), dv = h.mk.upload(values);
    try {
      const o = { chunkSize: 32, ratio: 0.25, sinkTokens: 2, recentTokens: 10 };
      const host = await h.mk.clusterKV(keys, values, o);
      const device = await h.mk.clusterKV(dk, dv, o);
      assert.equal(list(device.assignment.data), list(host.assignment.data));
      // Device inputs: the merged keys and values stay on the device.
      assert.ok(device.keys instanceof DeviceTensor && device.values instanceof DeviceTensor, 'merged keys and values are device tensors');
      assert.equal([...device.keys.shape], host.keys.shape);
      allClose((await device.keys.read()).data, host.keys.data, {}, 'keys');
      allClose((await device.values.read()).data, host.values.data, {}, 'values');
      const qc = t(list(c.queries), [2, 4, 12]);
      allClose((await h.mk.attention(qc, device.keys, device.values, { size: device.size })).data, (await h.mk.attention(qc, host.keys, host.values, { size: host.size })).data, {}, 'attention over the resident compressed cache');
      device.keys.dispose();
      device.values.dispose();
      const mixed = await h.mk.clusterKV(keys, dv, { ...o, method: 'stride' });
      assert.equal(list(mixed.position.data), list((await h.mk.clusterKV(keys, values, { ...o, method: 'stride' })).position.data));
      const q = t(list(c.queries), [2, 4, 12]);
      allClose((await h.mk.attention(q, dk, dv, { causal: true })).data, (await h.mk.attention(q, keys, values, { causal: true })).data, {}, 'attention');
      await rejects(async () => h.mk.clusterKV(h.ref.upload(keys), dv, o), 'WRONG_DEVICE', ['keys']);
    } finally {
      dk.dispose();
      dv.dispose();
    }
  });

  test('bad input: MergeKernelsError naming the argument', async () => {
    const keys = randomTensor([2, 10, 4], 1), values = randomTensor([2, 10, 3], 2);
    const o = { chunkSize: 4, ratio: 0.5, sinkTokens: 2, recentTokens: 2 };
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, sinkTokens: 6, recentTokens: 5 }), 'INVALID_OPTION', ['sinkTokens + recentTokens', 'T = 10']);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, chunkSize: 1 }), 'INVALID_OPTION', ['chunkSize']);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, chunkSize: 2.5 }), 'INVALID_OPTION', ['chunkSize']);
    for (const ratio of [0, -0.5, 1.5, NaN]) await rejects(() => h.mk.clusterKV(keys, values, { ...o, ratio }), 'INVALID_OPTION', ['ratio']);
    await rejects(() => h.mk.clusterKV(keys, randomTensor([3, 10, 3], 3), o), 'SHAPE_MISMATCH', ['values', '[2, 10, Dv]']);
    await rejects(() => h.mk.clusterKV(keys, randomTensor([2, 9, 3], 3), o), 'SHAPE_MISMATCH', ['values']);
    const nan = randomTensor([2, 10, 4], 1);
    nan.data[13] = NaN;
    await rejects(() => h.mk.clusterKV(nan, values, o), 'NON_FINITE', ['keys', '13']);
    const inf = randomTensor([2, 10, 3], 2);
    inf.data[7] = Infinity;
    await rejects(() => h.mk.clusterKV(keys, inf, o), 'NON_FINITE', ['values', 'Infinity', 'index 7']);
    await rejects(() => h.mk.clusterKV(keys, inf, { ...o, method: 'stride' }), 'NON_FINITE', ['values']);
    const q = randomTensor([2, 2, 4], 5), nanQ = randomTensor([2, 2, 4], 5);
    nanQ.data[3] = NaN;
    await rejects(() => h.mk.attention(nanQ, keys, values), 'NON_FINITE', ['q', 'index 3']);
    await rejects(() => h.mk.attention(q, nan, values), 'NON_FINITE', ['keys', 'index 13']);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, chunksize: 4 } as never), 'INVALID_OPTION', ['chunksize', "did you mean 'chunkSize'"]);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, size: t(Array(20).fill(0), [2, 10]) }), 'INVALID_OPTION', ['size', 'positive']);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, size: t(Array(10).fill(1), [1, 10]) }), 'SHAPE_MISMATCH', ['size']);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, method: 'evict' as never }), 'INVALID_OPTION', ['method']);
    for (const method of ['scores', 'mergeOnEvict', 'kvMerger'] as const) await rejects(() => h.mk.clusterKV(keys, values, { ...o, method }), 'INVALID_OPTION', ['scores', method]);
    await rejects(() => h.mk.clusterKV(keys, values, { ...o, method: 'stride', scores: t(Array(20).fill(1), [2, 10]) }), 'INVALID_OPTION', ['scores']);
    await rejects(() => h.mk.clusterKV(keys, values, undefined as never), 'INVALID_OPTION', ['options']);
    await rejects(() => h.mk.clusterKV({ data: [1], shape: [1, 1, 1] } as never, values, o), 'INVALID_TYPE', ['keys']);
    await rejects(() => h.mk.attention(randomTensor([3, 2, 4], 5), keys, values), 'SHAPE_MISMATCH', ['q', 'multiple']);
    await rejects(() => h.mk.attention(randomTensor([2, 2, 5], 5), keys, values), 'SHAPE_MISMATCH', ['q', 'D = 4']);
    await rejects(() => h.mk.attention(randomTensor([2, 2, 4], 5), keys, values, { position: { data: new Int32Array(20), shape: [2, 10] } }), 'INVALID_OPTION', ['position', 'causal']);
    await rejects(() => h.mk.attention(randomTensor([2, 2, 4], 5), keys, values, { causal: true, position: { data: new Int32Array(3), shape: [1, 3] } }), 'SHAPE_MISMATCH', ['position']);
    await rejects(() => h.mk.attention(randomTensor([2, 2, 4], 5), keys, values, { scale: 1 } as never), 'INVALID_OPTION', ['scale']);
  });

  test.run();
}
