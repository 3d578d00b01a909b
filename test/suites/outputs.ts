// `out` on the per-layer calls (as wgpu-matrix's `dst`): the call writes into the caller's tensor
// and returns it; the values are the same bits as a fresh call's, stale contents (NaN here) are
// overwritten everywhere, and a misshaped or overlapping `out` is an error naming it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { randomTensor, rejects } from '../util.ts';

const stale = (shape: number[]): Tensor => ({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape });
const bits = (t: Tensor) => Array.from(new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length));

export default function (h: Harness) {
  const test = suite(`outputs into out [${h.backend}]`);

  test('cosineSimilarity into out: the same bits as a fresh call, 2-D and batched, odd sizes', async () => {
    for (const [shapeA, shapeB] of [[[1, 1], [1, 1]], [[7, 5], [3, 5]], [[2, 9, 6], [2, 4, 6]]] as const) {
      const a = randomTensor([...shapeA], 1), b = randomTensor([...shapeB], 2);
      const fresh = await h.mk.cosineSimilarity(a, b);
      const out = stale(fresh.shape);
      const got = await h.mk.cosineSimilarity(a, b, out);
      assert.ok(got === out, 'returns the caller\'s out');
      assert.equal(bits(out), bits(fresh), `${shapeA} × ${shapeB}`);
    }
    const a = randomTensor([4, 3], 3);
    await rejects(() => h.mk.cosineSimilarity(a, a, stale([4, 5])), 'SHAPE_MISMATCH', ['out', '[4, 4]']);
    const shared = { data: new Float32Array(32), shape: [4, 3] };
    await rejects(() => h.mk.cosineSimilarity({ data: shared.data.subarray(0, 12), shape: [4, 3] }, a, { data: shared.data.subarray(8, 24), shape: [4, 4] }), 'INVALID_OPTION', ['out', 'share memory']);
  });

  test('trimTopK, electSign and disjointMerge into out: the same bits as fresh calls', async () => {
    for (const n of [1, 7, 1023]) {
      const d = [randomTensor([n], 10 + n), randomTensor([n], 20 + n), randomTensor([n], 30 + n)];
      const trimmed = await h.mk.trimTopK(d[0]!, { density: 0.3 });
      const t = stale([n]);
      assert.ok((await h.mk.trimTopK(d[0]!, { density: 0.3 }, t)) === t);
      assert.equal(bits(t), bits(trimmed), `trimTopK n=${n}`);
      for (const zeroSign of ['paper', 'mergekit'] as const) {
        const signs = await h.mk.electSign(d, { zeroSign });
        const s = stale([n]);
        assert.ok((await h.mk.electSign(d, { zeroSign }, s)) === s);
        assert.equal(bits(s), bits(signs), `electSign ${zeroSign} n=${n}`);
        const merged = await h.mk.disjointMerge(d, { zeroSign, merge: 'mean' });
        const m = stale([n]);
        assert.ok((await h.mk.disjointMerge(d, { zeroSign, merge: 'mean' }, m)) === m);
        assert.equal(bits(m), bits(merged), `disjointMerge ${zeroSign} n=${n}`);
      }
    }
    // A vote the paper's zero rule flips: the majority of the signs is negative, so the signs come
    // from the second (zeroSign −1) run and must replace the first run's in out.
    const neg = [{ data: new Float32Array([-1, -2, 1, -1]), shape: [4] }, { data: new Float32Array([-1, -1, -1, 1]), shape: [4] }];
    const s = stale([4]);
    await h.mk.electSign(neg, { zeroSign: 'paper' }, s);
    assert.equal(Array.from(s.data), [-1, -1, -1, -1], 'total 0 at entries 2 and 3 elects the majority sign, −');
    const x = randomTensor([6], 5);
    await rejects(() => h.mk.trimTopK(x, { density: 0.5 }, x), 'INVALID_OPTION', ['out', 'share memory']);
    await rejects(() => h.mk.disjointMerge([x, x], undefined, stale([5])), 'SHAPE_MISMATCH', ['out', '[6]']);
  });

  if (h.checks('merge')) test('plumbing: plan.merge and plan.unmerge into out', async () => {
    const plan = await h.mk.bipartiteSoftMatching(randomTensor([2, 11, 4], 6), { r: 3, classToken: true });
    const x = randomTensor([2, 11, 5], 7);
    for (const mode of ['mean', 'sum', 'amax'] as const) {
      const out = stale([2, 8, 5]);
      assert.ok(plan.merge(x, { mode }, out) === out);
      assert.equal(bits(out), bits(plan.merge(x, { mode })), mode);
    }
    const y = plan.merge(x);
    const back = stale([2, 11, 5]);
    assert.ok(plan.unmerge(y, back) === back);
    assert.equal(bits(back), bits(plan.unmerge(y)));
    assert.throws(() => plan.merge(x, {}, stale([2, 9, 5])), /out: expected an output of shape \[2, 8, 5\]/);
    assert.throws(() => plan.unmerge(y, { data: y.data, shape: [2, 8, 5] } as never), /out/);
  });

  test.run();
}
