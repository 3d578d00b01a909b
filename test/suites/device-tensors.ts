// Device tensors (issue 9): upload → read round trips; cosineSimilarity on device tensors gives the
// same bits as on host tensors on the same backend and returns a device tensor (so calls chain);
// use after dispose, a tensor of another context and a GPUBuffer of another device are
// MergeKernelsErrors; on webgpu an adopted buffer works and a call on device tensors does one
// submit, no upload and no readback.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceTensor, init, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { randomTensor, rejects, skip } from '../util.ts';

const bits = (t: Tensor) => Array.from(new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length));

export default function (h: Harness) {
  const test = suite(`device tensors [${h.backend}]`);

  test('upload then read gives the same bits and shape, empty tensors included; dispose frees', async () => {
    for (const shape of [[0, 3], [1], [7, 5], [2, 3, 4]]) {
      const t = randomTensor(shape, 1);
      const d = h.mk.upload(t);
      assert.instance(d, DeviceTensor);
      assert.equal([...d.shape], shape);
      const back = await d.read();
      assert.equal(back.shape, shape);
      assert.equal(bits(back), bits(t), `shape [${shape}]`);
      t.data.fill(0); // the device copy does not alias the host array
      assert.equal(bits(await d.read()), bits(back), 'uploaded values are a copy');
      d.dispose();
      d.dispose();
      assert.ok(d.disposed);
      await rejects(() => d.read(), 'DISPOSED', ['disposed']);
    }
  });

  test('cosineSimilarity on device tensors: same bits as host tensors, a device tensor back, chains, host operand uploaded', async () => {
    for (const [sa, sb] of [[[1, 1], [1, 1]], [[7, 5], [3, 5]], [[65, 17], [66, 17]], [[2, 9, 6], [2, 4, 6]]]) {
      const a = randomTensor(sa!, 2), b = randomTensor(sb!, 3);
      const host = await h.mk.cosineSimilarity(a, b);
      const da = h.mk.upload(a), db = h.mk.upload(b);
      const sim = await h.mk.cosineSimilarity(da, db);
      assert.instance(sim, DeviceTensor);
      assert.equal([...sim.shape], host.shape);
      assert.equal(bits(await sim.read()), bits(host), `[${sa}] × [${sb}]`);
      // Mixed: the host operand is uploaded for the call.
      assert.equal(bits(await (await h.mk.cosineSimilarity(da, b)).read()), bits(host), 'device a, host b');
      // A chain that stays on the device: the similarity of the similarity rows.
      const again = await h.mk.cosineSimilarity(sim, sim);
      assert.equal(bits(await again.read()), bits(await h.mk.cosineSimilarity(host, host)), 'chained');
      // The inputs are not changed by the call (the wasm kernel normalises copies).
      assert.equal(bits(await da.read()), bits(a), 'a unchanged');
      for (const d of [da, db, sim, again]) d.dispose();
    }
  });

  test('errors: disposed tensors, a disposed context, another context\'s tensor, bad shapes, out with device inputs', async () => {
    const a = h.mk.upload(randomTensor([3, 4], 4));
    const b = h.mk.upload(randomTensor([5, 4], 5));
    await rejects(() => h.mk.cosineSimilarity(a, h.mk.upload(randomTensor([5, 3], 6))), 'SHAPE_MISMATCH', ['b', 'C = 4']);
    await rejects(() => h.mk.cosineSimilarity(a as never, b as never, { data: new Float32Array(15), shape: [3, 5] }), 'INVALID_OPTION', ['out']);
    await rejects(() => h.mk.cosineSimilarity(h.mk.upload(randomTensor([2, 2, 2, 2], 7)), b), 'INVALID_SHAPE', ['a', 'rank 2 or 3']);
    const other = await init({ backend: h.backend, gpu: h.gpu });
    const foreign = other.upload(randomTensor([5, 4], 8));
    const err = await rejects(() => h.mk.cosineSimilarity(a, foreign), 'WRONG_DEVICE', ['another context']);
    assert.is(err.argument, 'b');
    other.dispose();
    assert.ok(foreign.disposed, 'a context takes its device tensors with it');
    await rejects(() => foreign.read(), 'DISPOSED', ['context']);
    b.dispose();
    await rejects(() => h.mk.cosineSimilarity(a, b), 'DISPOSED', ['b']);
    a.dispose();
  });

  test('webgpu: an adopted GPUBuffer (as onnxruntime-web or transformers.js hold one) works in place; another device\'s is WRONG_DEVICE; counts', async () => {
    if (h.backend !== 'webgpu') {
      await rejects(() => h.mk.wrap({ buffer: {} as GPUBuffer, shape: [1] }), 'INVALID_OPTION', ['webgpu context']);
      return skip(h.print, 'adopted GPUBuffer', `needs a webgpu context; this pass tests the ${h.backend} backend`);
    }
    const device = h.mk.gpuDevice!;
    const x = randomTensor([6, 8], 9);
    // Another library's buffer: its own usage flags, our data at a 256-byte offset.
    const align = device.limits.minStorageBufferOffsetAlignment;
    const buffer = device.createBuffer({ size: align + x.data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(buffer, align, x.data as Float32Array<ArrayBuffer>);
    const t = await h.mk.wrap({ buffer, shape: [6, 8], offset: align });
    assert.equal(bits(await t.read()), bits(x), 'read through the offset');
    const before = h.mk.gpuCounters!;
    const sim = await h.mk.cosineSimilarity(t, t);
    const after = h.mk.gpuCounters!;
    assert.is(after.submits - before.submits, 1, 'one submit');
    assert.is(after.readbacks - before.readbacks, 0, 'no readback');
    assert.is(after.uploads - before.uploads, 0, 'no upload');
    assert.equal(bits(await sim.read()), bits(await h.mk.cosineSimilarity(x, x)));
    t.dispose();
    assert.ok(buffer.size > 0);
    device.queue.writeBuffer(buffer, align, new Float32Array(48)); // still the owner's, still usable
    await rejects(() => h.mk.wrap({ buffer, shape: [6, 8], offset: 4 }), 'INVALID_OPTION', ['offset', 'multiple']);
    await rejects(() => h.mk.wrap({ buffer, shape: [100, 8] }), 'INVALID_SHAPE', ['shape', 'bytes']);
    await rejects(() => h.mk.wrap({ buffer, shape: [6, 8], ofset: 0 } as never), 'INVALID_OPTION', ["did you mean 'offset'"]);
    const other = await init({ backend: 'webgpu', gpu: h.gpu });
    const foreign = other.gpuDevice!.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE });
    await rejects(() => h.mk.wrap({ buffer: foreign, shape: [16] }), 'WRONG_DEVICE', ['buffer']);
    foreign.destroy();
    other.dispose();
    buffer.destroy();
    sim.dispose();
  });

  test.run();
}
