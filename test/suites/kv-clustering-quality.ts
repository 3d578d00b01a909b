// The measure of KV-cache clustering: attention over the compressed cache against the full one,
// for many queries, on structured synthetic caches (keys around a few cluster centres; a smoothly
// drifting sequence; the drifting one under rotary position embedding) and on unstructured random
// keys, at 2×, 4× and 8× compression of the middle, against uniform-stride and StreamingLLM
// eviction at the same slot budget. Prints the table; run once (the reference).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference, type KvClusterResult } from 'merge-kernels';
import type { Harness } from '../harness.ts';

const H = 2, T = 1024, D = 64, QUERIES = 32;
const PLAN = { chunkSize: 64, sinkTokens: 4, recentTokens: 60 }; // middle 960 = 15 chunks
const KINDS = ['clusters', 'drifting', 'rotary'] as const;

export default function (h: Harness) {
  const test = suite('kv-clustering quality [reference]');
  const { syntheticCache, kvQuality } = reference.kvQuality;
  type Cache = ReturnType<typeof syntheticCache>;
  const asCluster = (r: KvClusterResult) => ({ keys: r.keys.data, values: r.values.data, size: r.size.data, position: r.position.data, assignment: r.assignment.data });

  async function measure(c: Cache, factor: number) {
    const keys = { data: c.keys, shape: [H, T, D] }, values = { data: c.values, shape: [H, T, D] };
    const o = { ...PLAN, ratio: 1 / factor };
    const merged = await h.mk.clusterKV(keys, values, o);
    const stride = await h.mk.clusterKV(keys, values, { ...o, method: 'stride' });
    const streaming = await h.mk.clusterKV(keys, values, { ...o, method: 'streaming' });
    const m = merged.size.shape[1]!;
    return {
      m,
      merged: kvQuality(c, asCluster(merged), m),
      noBias: kvQuality(c, asCluster(merged), m, { useSize: false }),
      stride: kvQuality(c, asCluster(stride), m),
      streaming: kvQuality(c, asCluster(streaming), m),
    };
  }

  const row = (kind: string, factor: number, q: Awaited<ReturnType<typeof measure>>) =>
    `${kind.padEnd(8)} ${factor}× M=${String(q.m).padStart(3)}/${T}  merge ${q.merged.relativeError.toFixed(3)} (top-8 ${q.merged.recall.toFixed(2)})` +
    `  no log(size) ${q.noBias.relativeError.toFixed(3)}  stride ${q.stride.relativeError.toFixed(3)} (${q.stride.recall.toFixed(2)})` +
    `  streaming ${q.streaming.relativeError.toFixed(3)} (${q.streaming.recall.toFixed(2)})`;

  test('the measure: an uncompressed cache (ratio 1) has error 0 and recall 1', async () => {
    const c = syntheticCache('drifting', 1, 100, 8, 4, 10, 3);
    const r = await h.mk.clusterKV({ data: c.keys, shape: [1, 100, 8] }, { data: c.values, shape: [1, 100, 4] }, { chunkSize: 10, ratio: 1 });
    const q = kvQuality(c, asCluster(r), 100);
    assert.is(q.relativeError, 0);
    assert.is(q.recall, 1);
  });

  test('structured caches: merging has at most half the attention error of uniform stride at the same budget', async () => {
    for (const kind of KINDS) {
      const c = syntheticCache(kind, H, T, D, D, QUERIES, 7);
      for (const factor of [2, 4, 8]) {
        const q = await measure(c, factor);
        h.print(`kv quality: ${row(kind, factor, q)}`);
        assert.ok(q.merged.relativeError <= 0.5 * q.stride.relativeError, `${kind} ${factor}×: merge ${q.merged.relativeError} vs stride ${q.stride.relativeError}`);
        // The log(size) bias is applied, and it is what makes merging win: without it the merged
        // cache is at least twice as far from the full one and no longer has half stride's error.
        assert.ok(q.noBias.relativeError >= 2 * q.merged.relativeError, `${kind} ${factor}×: without log(size) ${q.noBias.relativeError} vs ${q.merged.relativeError}`);
        assert.ok(q.noBias.relativeError > 0.5 * q.stride.relativeError, `${kind} ${factor}×: without log(size) merging should lose its advantage`);
      }
    }
  });

  test('unstructured random keys: no advantage (honest result)', async () => {
    const c = syntheticCache('random', H, T, D, D, QUERIES, 7);
    for (const factor of [2, 4, 8]) {
      const q = await measure(c, factor);
      h.print(`kv quality: ${row('random', factor, q)}`);
      // Nothing to exploit: every method loses most of the output (relative error above 0.5),
      // and merging does not halve stride's error.
      assert.ok(q.merged.relativeError > 0.5 && q.stride.relativeError > 0.5, `random ${factor}×: ${q.merged.relativeError}, ${q.stride.relativeError}`);
      assert.ok(q.merged.relativeError > 0.5 * q.stride.relativeError);
    }
  });

  test.run();
}
