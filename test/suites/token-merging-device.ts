// merge / unmerge / mergeWavg / mergeSource as kernels (issue 9): on every backend they equal the
// js reference — on host tensors, and on device tensors, where the result is a device tensor that
// never left the device (wasm: bit for bit, the same float64 sums; webgpu: float32 pair sums,
// within an ulp or so). Shapes: D = 1, odd, not a multiple of 4 or of the 64-wide workgroup;
// plans with a class and a distillation token, r = 0, all-merged variants, kth's dropped tail.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceTensor, reference, type TokenMergePlan, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, randomTensor, rejects, skip } from '../util.ts';

// [B, N, C, r, classToken, distillToken, D]
const CASES: Array<[number, number, number, number, boolean, boolean, number]> = [
  [1, 2, 3, 1, false, false, 1], [1, 3, 2, 0, false, false, 5], [2, 9, 4, 3, true, false, 7], [1, 17, 5, 8, true, true, 65],
  [3, 130, 8, 40, false, true, 3], [1, 197, 16, 16, true, false, 130], [2, 64, 8, 100, false, false, 4],
];

export default function (h: Harness) {
  const test = suite(`token merging kernels: merge, unmerge, mergeWavg [${h.backend}]`);
  // wasm sums exactly as the reference (float64); WGSL in float32 pairs.
  const tol = h.backend === 'webgpu' ? { rtol: 2e-7, atol: 1e-30 } : { atol: 0 };

  async function plans(): Promise<Array<[string, TokenMergePlan]>> {
    const out: Array<[string, TokenMergePlan]> = [];
    let seed = 900;
    for (const [B, N, C, r, classToken, distillToken] of CASES) {
      out.push([`B=${B} N=${N} r=${r}${classToken ? ' cls' : ''}${distillToken ? ' dist' : ''}`, await h.mk.bipartiteSoftMatching(randomTensor([B, N, C], seed++), { r, classToken, distillToken })]);
    }
    out.push(['kth k=3 N=11 (a dropped tail)', await h.mk.kthBipartiteSoftMatching(randomTensor([2, 11, 4], seed++), { k: 3 })]);
    out.push(['random r=5 N=9', await h.mk.randomBipartiteSoftMatching(randomTensor([1, 9, 3], seed++), { r: 5, seed: 4 })]);
    out.push(['random2d 4×3', await h.mk.bipartiteSoftMatchingRandom2d(randomTensor([2, 12, 3], seed++), { w: 4, h: 3, sx: 2, sy: 2, r: 4, seed: 1 })]);
    return out;
  }
  const dims = (plan: TokenMergePlan, i: number) => CASES[i]?.[6] ?? [2, 9, 66][i - CASES.length]!;

  test('host tensors: merge (mean, sum, amax), unmerge, mergeWavg (with and without sizes), mergeSource equal the reference', async () => {
    const all = await plans();
    for (const [i, [label, plan]] of all.entries()) {
      const D = dims(plan, i);
      const x = randomTensor([plan.batch, plan.tokens, D], 10 + i);
      // Sizes as ToMe's: positive counts, here also fractional.
      const size = randomTensor([plan.batch, plan.tokens, 1], 20 + i, 1, 4);
      for (const mode of ['mean', 'sum', 'amax'] as const) {
        allClose(plan.merge(x, { mode }).data, reference.mergeTokens(plan, x.data, D, mode), tol, `${label}: merge ${mode}`);
      }
      const y = randomTensor([plan.batch, plan.tokens - plan.r, D], 30 + i);
      assert.equal(Array.from(plan.unmerge(y).data), Array.from(reference.unmergeTokens(plan, y.data, D)), `${label}: unmerge`);
      for (const s of [undefined, size]) {
        const got = h.mk.mergeWavg(plan, x, s), want = reference.mergeWavg(plan, x.data, D, s?.data);
        allClose(got.x.data, want.x, tol, `${label}: mergeWavg x${s ? '' : ' (no sizes)'}`);
        allClose(got.size.data, want.size, tol, `${label}: mergeWavg size`);
      }
      assert.equal(Array.from(h.mk.mergeSource(plan).data), Array.from(reference.mergeSource(plan)), `${label}: mergeSource`);
    }
  });

  test('device tensors: the same results as device tensors, never leaving the device; chains layer after layer', async () => {
    const all = await plans();
    for (const [i, [label, plan]] of all.entries()) {
      const D = dims(plan, i);
      const x = randomTensor([plan.batch, plan.tokens, D], 40 + i);
      const size = randomTensor([plan.batch, plan.tokens, 1], 50 + i, 1, 4);
      const dx = h.mk.upload(x), dsize = h.mk.upload(size);
      for (const mode of ['mean', 'sum', 'amax'] as const) {
        const merged = plan.merge(dx, { mode });
        assert.instance(merged, DeviceTensor);
        assert.equal([...merged.shape], [plan.batch, plan.tokens - plan.r, D]);
        allClose((await merged.read()).data, reference.mergeTokens(plan, x.data, D, mode), tol, `${label}: device merge ${mode}`);
        merged.dispose();
      }
      for (const s of [undefined, dsize]) {
        const got = h.mk.mergeWavg(plan, dx, s), want = reference.mergeWavg(plan, x.data, D, s ? size.data : undefined);
        assert.instance(got.x, DeviceTensor);
        assert.equal([...got.size.shape], [plan.batch, plan.tokens - plan.r, 1]);
        allClose((await got.x.read()).data, want.x, tol, `${label}: device mergeWavg x${s ? '' : ' (no sizes)'}`);
        allClose((await got.size.read()).data, want.size, tol, `${label}: device mergeWavg size`);
        // unmerge of the merged tensor, still on the device.
        const back = plan.unmerge(got.x);
        assert.equal([...back.shape], [plan.batch, plan.tokens, D]);
        allClose((await back.read()).data, reference.unmergeTokens(plan, (await got.x.read()).data, D), { atol: 0 }, `${label}: device unmerge`);
        for (const t of [got.x, got.size, back]) t.dispose();
      }
      dx.dispose();
      dsize.dispose();
    }
  });

  test('device tensors: a ToMe step layer after layer (match on the host metric, mergeWavg on the device) equals the reference chain', async () => {
    let x: Tensor = randomTensor([2, 41, 24], 61);
    let size: Tensor = { data: new Float32Array(2 * 41).fill(1), shape: [2, 41, 1] };
    let dx = h.mk.upload(x), dsize = h.mk.upload(size);
    for (let layer = 0; layer < 4; layer++) {
      const plan = await h.mk.bipartiteSoftMatching(x, { r: 4, classToken: true });
      const want = reference.mergeWavg(plan, x.data, 24, size.data);
      const got = h.mk.mergeWavg(plan, dx, dsize);
      dx.dispose();
      dsize.dispose();
      dx = got.x;
      dsize = got.size;
      x = { data: want.x, shape: [2, plan.tokens - plan.r, 24] };
      size = { data: want.size, shape: [2, plan.tokens - plan.r, 1] };
    }
    allClose((await dx.read()).data, x.data, { rtol: 1e-6, atol: 1e-7 }, 'x after 4 layers');
    allClose((await dsize.read()).data, size.data, { rtol: 1e-6 }, 'size after 4 layers');
  });

  test('a device metric gives the same plan as the host metric (matched where it lives)', async () => {
    let seed = 1900;
    for (const [B, N, C, r, classToken, distillToken] of CASES) {
      const metric = randomTensor([B, N, C], seed++);
      const host = await h.mk.bipartiteSoftMatching(metric, { r, classToken, distillToken });
      const dm = h.mk.upload(metric);
      const dev = await h.mk.bipartiteSoftMatching(dm, { r, classToken, distillToken });
      const label = `B=${B} N=${N} C=${C} r=${r}`;
      // Merging device tensors needs no host indices: on webgpu this uses the plan's GPU groups.
      const D = 6, x = randomTensor([B, N, D], seed++), size = randomTensor([B, N, 1], seed++, 1, 3);
      const got = h.mk.mergeWavg(dev, h.mk.upload(x), h.mk.upload(size));
      const want = reference.mergeWavg(host, x.data, D, size.data);
      allClose((await got.x.read()).data, want.x, tol, `${label}: mergeWavg through the device plan`);
      allClose((await got.size.read()).data, want.size, tol, `${label}: sizes through the device plan`);
      const back = dev.unmerge(got.x);
      allClose((await back.read()).data, reference.unmergeTokens(host, (await got.x.read()).data, D), { atol: 0 }, `${label}: unmerge through the device plan`);
      if (h.backend === 'webgpu' && dev.r > 0) {
        assert.not.ok(dev.onHost, `${label}: a GPU-matched plan keeps its indices on the GPU`);
        await rejects(() => dev.srcIdx, 'ON_DEVICE', ['plan', 'await plan.read()']);
        await rejects(() => dev.merge(x), 'ON_DEVICE', ['plan']);
      }
      assert.ok((await dev.read()) === dev, 'read() returns the plan');
      assert.ok(dev.onHost);
      assert.is(dev.r, host.r, `${label}: r`);
      assert.equal(Array.from(dev.srcIdx), Array.from(host.srcIdx), `${label}: srcIdx`);
      assert.equal(Array.from(dev.dstIdx), Array.from(host.dstIdx), `${label}: dstIdx`);
      assert.equal(Array.from(dev.unmergedIdx), Array.from(host.unmergedIdx), `${label}: unmergedIdx`);
      assert.equal(Array.from((await dm.read()).data), Array.from(metric.data), `${label}: the metric is not changed`);
      dm.dispose();
    }
    await rejects(() => h.mk.bipartiteSoftMatching(h.mk.upload(randomTensor([4, 3], 1)), { r: 1 }), 'INVALID_SHAPE', ['metric', 'rank 3']);
    const foreign = h.ref.upload(randomTensor([1, 6, 3], 2));
    await rejects(() => h.mk.bipartiteSoftMatching(foreign, { r: 1 }), 'WRONG_DEVICE', ['metric']);
  });

  test('the variants take a device metric (read to the host for their gathers) and make the same plans', async () => {
    const metric = randomTensor([2, 12, 5], 2100);
    const dm = h.mk.upload(metric);
    const same = (a: TokenMergePlan, b: TokenMergePlan, what: string) => {
      assert.equal(Array.from(a.outputRow), Array.from(b.outputRow), `${what}: output rows`);
      assert.equal(Array.from(a.srcIdx), Array.from(b.srcIdx), `${what}: srcIdx`);
    };
    same(await h.mk.kthBipartiteSoftMatching(dm, { k: 3 }), await h.mk.kthBipartiteSoftMatching(metric, { k: 3 }), 'kth');
    same(await h.mk.randomBipartiteSoftMatching(dm, { r: 4, seed: 3 }), await h.mk.randomBipartiteSoftMatching(metric, { r: 4, seed: 3 }), 'random');
    same(await h.mk.bipartiteSoftMatchingRandom2d(dm, { w: 4, h: 3, sx: 2, sy: 2, r: 3 }), await h.mk.bipartiteSoftMatchingRandom2d(metric, { w: 4, h: 3, sx: 2, sy: 2, r: 3 }), 'random2d');
    same(await h.mk.pitomeSoftMatching(dm, { r: 3, margin: 0.5 }), await h.mk.pitomeSoftMatching(metric, { r: 3, margin: 0.5 }), 'pitome');
    const t1 = await h.mk.thresholdSoftMatching(dm, { threshold: 0.1 }), t2 = await h.mk.thresholdSoftMatching(metric, { threshold: 0.1 });
    assert.equal(t1.r, t2.r, 'threshold: r per item');
    const b1 = await h.mk.batchLevelSoftMatching(dm, { r: 2 }), b2 = await h.mk.batchLevelSoftMatching(metric, { r: 2 });
    assert.equal(Array.from(b1.merge(randomTensor([2, 12, 3], 1)).x.data), Array.from(b2.merge(randomTensor([2, 12, 3], 1)).x.data), 'batch-level merge');
    const nan = randomTensor([1, 6, 2], 2101);
    nan.data[3] = NaN;
    await rejects(() => h.mk.kthBipartiteSoftMatching(h.mk.upload(nan), { k: 2 }), 'NON_FINITE', ['metric']);
    await rejects(() => h.mk.pitomeSoftMatching(h.ref.upload(metric), { r: 2, margin: 0.5 }), 'WRONG_DEVICE', ['metric']);
    dm.dispose();
  });

  test('device tensors: errors name the argument', async () => {
    const plan = await h.mk.bipartiteSoftMatching(randomTensor([1, 8, 4], 70), { r: 2 });
    const dx = h.mk.upload(randomTensor([1, 8, 3], 71));
    await rejects(() => plan.merge(h.mk.upload(randomTensor([1, 7, 3], 72))), 'SHAPE_MISMATCH', ['x', '[1, 8, D]']);
    await rejects(() => plan.unmerge(dx), 'SHAPE_MISMATCH', ['y', '[1, 6, D]']);
    await rejects(() => plan.merge(dx as never, {}, { data: new Float32Array(18), shape: [1, 6, 3] } as never), 'INVALID_OPTION', ['out']);
    await rejects(() => h.mk.mergeWavg(plan, dx, randomTensor([1, 8, 1], 73) as never), 'INVALID_TYPE', ['size', 'device tensor']);
    await rejects(() => h.mk.mergeWavg(plan, dx, h.mk.upload(randomTensor([1, 8, 2], 74))), 'SHAPE_MISMATCH', ['size', '[1, 8, 1]']);
    // A plan of another context, and a tensor of another context.
    const other = await h.ref.bipartiteSoftMatching(randomTensor([1, 8, 4], 70), { r: 2 });
    await rejects(() => other.merge(dx), 'WRONG_DEVICE', ['x']);
    await rejects(() => h.mk.mergeWavg(other, dx), 'WRONG_DEVICE', ['plan']);
    dx.dispose();
    await rejects(() => plan.merge(dx), 'DISPOSED', ['x']);
  });

  test('webgpu counts: a device mergeWavg is one submit, no readback; the plan\'s groups are uploaded once', async () => {
    if (h.backend !== 'webgpu') return skip(h.print, 'webgpu counts', `the ${h.backend} backend has no GPU counters`);
    const plan = await h.mk.bipartiteSoftMatching(randomTensor([1, 197, 64], 80), { r: 16, classToken: true });
    const dx = h.mk.upload(randomTensor([1, 197, 768], 81));
    const before = h.mk.gpuCounters!;
    const first = h.mk.mergeWavg(plan, dx);
    const mid = h.mk.gpuCounters!;
    const second = h.mk.mergeWavg(plan, dx);
    const after = h.mk.gpuCounters!;
    assert.is(mid.submits - before.submits, 1, 'one submit');
    assert.is(mid.readbacks - before.readbacks, 0, 'no readback');
    assert.is(mid.uploads - before.uploads, 1, 'the groups, once');
    assert.ok(mid.uploadBytes - before.uploadBytes <= (198 + 197) * 4, `only the groups are uploaded (${mid.uploadBytes - before.uploadBytes} bytes)`);
    assert.is(after.uploads - mid.uploads, 0, 'no upload the second time');
    assert.is(after.submits - mid.submits, 1);
    for (const t of [first.x, first.size, second.x, second.size, dx]) t.dispose();
  });

  test('webgpu counts: a ToMe step on device tensors (match, mergeWavg) is one submit, no readback, no upload', async () => {
    if (h.backend !== 'webgpu') return skip(h.print, 'webgpu step counts', `the ${h.backend} backend has no GPU counters`);
    const metric = randomTensor([2, 197, 64], 82), x = randomTensor([2, 197, 96], 83);
    const dm = h.mk.upload(metric), dx = h.mk.upload(x);
    for (let step = 0; step < 3; step++) {
      const before = h.mk.gpuCounters!;
      const plan = await h.mk.bipartiteSoftMatching(dm, { r: 16, classToken: true });
      const merged = h.mk.mergeWavg(plan, dx);
      const after = h.mk.gpuCounters!;
      assert.is(after.submits - before.submits, 1, `step ${step}: one submit (match, rank, groups and merge together)`);
      assert.is(after.readbacks - before.readbacks, 0, `step ${step}: no readback`);
      assert.is(after.uploads - before.uploads, 0, `step ${step}: no upload`);
      if (step === 2) {
        const want = reference.mergeWavg(await h.ref.bipartiteSoftMatching(metric, { r: 16, classToken: true }), x.data, 96);
        allClose((await merged.x.read()).data, want.x, tol, 'the merged tokens');
      }
      merged.x.dispose();
      merged.size.dispose();
      plan.dispose();
    }
    dm.dispose();
    dx.dispose();
  });

  test.run();
}
