// cosineSimilarity on every backend: hand-worked values, properties, the js oracle over many
// shapes, the largest output the runtime allows, and bad input.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reference, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, randomTensor, rejects } from '../util.ts';

// Cosine similarities are in [-1, 1]; float32 dot products over C ≤ 1024 stay within a few
// ulps of 1 (~1e-7 each), so 1e-5 absolute leaves a wide margin and still catches any
// indexing or normalisation error (those are O(0.1)).
const ATOL = 1e-5;

const SHAPES: Array<[number, number, number, number]> = [ // [B, M, N, C]; B = 0 means unbatched
  [0, 1, 1, 1], [0, 1, 1, 3], [0, 2, 4, 4], [0, 3, 5, 7], [0, 1, 9, 128], [0, 7, 1, 5],
  [0, 17, 33, 65], [0, 64, 64, 64], [0, 65, 63, 129], [0, 63, 65, 16], [0, 98, 98, 768],
  [0, 0, 5, 3], [0, 4, 0, 3], [0, 3, 4, 0],
  [2, 3, 5, 7], [3, 67, 65, 33], [5, 1, 1, 1], [1, 129, 130, 17], [4, 0, 2, 2],
];

const t = (data: number[], shape: number[]): Tensor => ({ data: new Float32Array(data), shape });

export default function (h: Harness) {
  const test = suite(`cosineSimilarity [${h.backend}]`);

  test('hand-worked values: parallel 1, orthogonal 0, 45° 1/√2, antiparallel -1, zero row 0', async () => {
    const a = t([1, 0, 1, 1, 0, 0, -2, 0], [4, 2]);
    const b = t([3, 0, 0, 5, 1, -1], [3, 2]);
    const s = Math.SQRT1_2;
    const want = [
      1, 0, s,       // (1,0) vs (3,0), (0,5), (1,-1)
      s, s, 0,       // (1,1): 3/(√2·3), 5/(√2·5), 0
      0, 0, 0,       // zero row: similarity 0, not NaN
      -1, 0, -s,     // (-2,0)
    ];
    const r = await h.mk.cosineSimilarity(a, b);
    assert.equal(r.shape, [4, 3]);
    allClose(r.data, want, { atol: ATOL });
    allClose(reference.cosineSimilarity(a.data, b.data, 1, 4, 3, 2), want, { atol: 1e-7 }, 'reference');
  });

  test('scale invariance and symmetry', async () => {
    const a = randomTensor([9, 13], 1), b = randomTensor([11, 13], 2);
    // Each row of a scaled by its own positive factor (1 to 2001): similarities must not change.
    const rowScaled = { data: a.data.map((v, i) => v * (1 + Math.floor(i / 13) * 250)), shape: a.shape };
    const ab = await h.mk.cosineSimilarity(a, b);
    const sb = await h.mk.cosineSimilarity(rowScaled, b);
    allClose(sb.data, ab.data, { atol: ATOL }, 'row-scaled');
    const ba = await h.mk.cosineSimilarity(b, a);
    for (let i = 0; i < 9; i++) for (let j = 0; j < 11; j++) {
      assert.ok(Math.abs(ab.data[i * 11 + j]! - ba.data[j * 9 + i]!) <= ATOL, `symmetry at ${i},${j}`);
    }
  });

  test('rows of huge and tiny magnitude neither overflow nor underflow', async () => {
    const a = t([1e30, 1e30, 1e-20, -1e-20, 3e38, 0], [3, 2]);
    const b = t([1, 1, 1, -1], [2, 2]);
    const r = await h.mk.cosineSimilarity(a, b);
    allClose(r.data, [1, 0, 0, 1, 0.7071067811865476, 0.7071067811865476], { atol: ATOL });
  });

  test('matches the js reference on edge and typical shapes', async () => {
    let seed = 100;
    for (const [B, M, N, C] of SHAPES) {
      const a = randomTensor(B ? [B, M, C] : [M, C], seed++);
      const b = randomTensor(B ? [B, N, C] : [N, C], seed++);
      const got = await h.mk.cosineSimilarity(a, b);
      const want = await h.ref.cosineSimilarity(a, b);
      assert.equal(got.shape, B ? [B, M, N] : [M, N], `shape for ${[B, M, N, C]}`);
      allClose(got.data, want.data, { atol: ATOL }, `B=${B} M=${M} N=${N} C=${C}`);
    }
  });

  test('a batch equals its items computed one by one', async () => {
    const [B, M, N, C] = [3, 10, 7, 19];
    const a = randomTensor([B, M, C], 7), b = randomTensor([B, N, C], 8);
    const all = await h.mk.cosineSimilarity(a, b);
    for (let i = 0; i < B; i++) {
      const one = await h.mk.cosineSimilarity(
        { data: a.data.slice(i * M * C, (i + 1) * M * C), shape: [M, C] },
        { data: b.data.slice(i * N * C, (i + 1) * N * C), shape: [N, C] });
      allClose(all.data.subarray(i * M * N, (i + 1) * M * N), one.data, { atol: 0 }, `item ${i}`);
    }
  });

  test('the largest output in reasonable time: above the 128 MiB default binding limit', async () => {
    // 4100 × 8200 floats = 134.5 MB > 128 MiB: a device on default limits must split it.
    const [M, N, C] = [4100, 8200, 2];
    const a = randomTensor([M, C], 11), b = randomTensor([N, C], 12);
    const got = await h.mk.cosineSimilarity(a, b);
    const want = await h.ref.cosineSimilarity(a, b);
    allClose(got.data, want.data, { atol: ATOL }, 'large');
    if (h.backend === 'webgpu') h.print(`  (webgpu maxStorageBufferBindingSize here: ${h.mk.gpuLimits!.maxStorageBufferBindingSize} bytes; output ${M * N * 4} bytes)`);
  });

  test('bad input: mismatched C, wrong rank, plain arrays, shape/data mismatch, batch mismatch, NaN', async () => {
    const a = randomTensor([3, 4], 1), b = randomTensor([5, 4], 2);
    let err = await rejects(() => h.mk.cosineSimilarity(a, randomTensor([5, 3], 3)), 'SHAPE_MISMATCH', ['C = 4', '3']);
    assert.is(err.argument, 'b');
    err = await rejects(() => h.mk.cosineSimilarity(randomTensor([12], 1), b), 'INVALID_SHAPE', ['rank 2 or 3', 'rank 1']);
    assert.is(err.argument, 'a');
    await rejects(() => h.mk.cosineSimilarity(randomTensor([1, 1, 3, 4], 1), b), 'INVALID_SHAPE', ['rank']);
    await rejects(() => h.mk.cosineSimilarity(a, randomTensor([1, 5, 4], 1)), 'SHAPE_MISMATCH', ['rank 2']);
    err = await rejects(() => h.mk.cosineSimilarity({ data: [1, 2, 3, 4] as never, shape: [1, 4] }, b), 'INVALID_TYPE', ['Float32Array', 'plain Array']);
    assert.is(err.argument, 'a');
    await rejects(() => h.mk.cosineSimilarity({ data: new Float64Array(4) as never, shape: [1, 4] }, b), 'INVALID_TYPE', ['Float64Array']);
    await rejects(() => h.mk.cosineSimilarity(a, { data: new Float32Array(7), shape: [2, 4] }), 'INVALID_SHAPE', ['holds 8', 'has 7']);
    await rejects(() => h.mk.cosineSimilarity(a, { data: new Float32Array(8), shape: [2, 4.5] as never }), 'INVALID_SHAPE', ['non-negative integers']);
    await rejects(() => h.mk.cosineSimilarity(randomTensor([2, 3, 4], 1), randomTensor([3, 3, 4], 2)), 'SHAPE_MISMATCH', ['batch size 2']);
    await rejects(() => h.mk.cosineSimilarity(null as never, b), 'INVALID_TYPE', ['tensor']);
    const nan = randomTensor([3, 4], 1);
    nan.data[5] = NaN;
    err = await rejects(() => h.mk.cosineSimilarity(nan, b), 'NON_FINITE', ['NaN', 'index 5']);
    const inf = randomTensor([5, 4], 1);
    inf.data[19] = -Infinity;
    await rejects(() => h.mk.cosineSimilarity(a, inf), 'NON_FINITE', ['-Infinity', 'index 19']);
  });

  test.run();
}
