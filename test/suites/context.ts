// The context API: backend resolution, fallbacks, errors, dispose. Applied to every backend.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { init, MergeKernelsError } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { rejects, skip } from '../util.ts';

/** A WebGPU implementation with no adapter, as on a machine without a GPU driver. */
const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
const throwingAdapter = { requestAdapter: async () => { throw new Error('adapter exploded'); } } as unknown as GPU;

export default function (h: Harness) {
  const test = suite(`context [${h.backend}]`);

  test('init resolves the requested backend', () => {
    assert.is(h.mk.backend, h.backend);
    assert.equal(h.mk.fallbackReasons, []);
    if (h.backend === 'webgpu') assert.ok(h.mk.gpuLimits!.maxStorageBufferBindingSize > 0);
    else assert.is(h.mk.gpuLimits, undefined);
  });

  test('init twice with the same options gives two working, independent contexts', async () => {
    const one = await init({ backend: h.backend, gpu: h.gpu });
    const two = await init({ backend: h.backend, gpu: h.gpu });
    const x = { data: new Float32Array([1, 0, 0, 1]), shape: [2, 2] };
    one.dispose();
    const r = await two.cosineSimilarity(x, x);
    assert.equal(Array.from(r.data), [1, 0, 0, 1]);
    two.dispose();
  });

  test('an unknown backend is an INVALID_OPTION naming the argument', async () => {
    const err = await rejects(() => init({ backend: 'cuda' as never }), 'INVALID_OPTION', ["'auto'", 'cuda']);
    assert.is(err.argument, 'backend');
    assert.instance(err, MergeKernelsError);
    assert.instance(err, Error);
  });

  test('webgpu without an adapter is BACKEND_UNAVAILABLE with the reason', async () => {
    await rejects(() => init({ backend: 'webgpu', gpu: noAdapter }), 'BACKEND_UNAVAILABLE', ['webgpu', 'returned null']);
    await rejects(() => init({ backend: 'webgpu', gpu: throwingAdapter }), 'BACKEND_UNAVAILABLE', ['threw', 'adapter exploded']);
  });

  test('auto falls back to wasm when requestAdapter returns null or throws, and says why', async () => {
    for (const gpu of [noAdapter, throwingAdapter]) {
      const mk = await init({ backend: 'auto', gpu });
      assert.is(mk.backend, 'wasm');
      assert.is(mk.fallbackReasons.length, 1);
      assert.match(mk.fallbackReasons[0]!, /^webgpu: /);
      mk.dispose();
    }
  });

  test('wasm bytes that do not compile or instantiate are WASM_BROKEN, not a silent fallback', async () => {
    // Where the runtime compiles WebAssembly at all, a module of ours that fails is a bug or wrong
    // bytes: an error on every backend option that would use wasm, 'auto' included.
    const truncated = new Uint8Array([0, 97, 115, 109, 9, 9, 9, 9]);
    // Compiles, but imports a function nobody provides: instantiate fails (LinkError).
    const strayImport = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 13, 1, 3, 101, 110, 118, 5, 115, 116, 114, 97, 121, 0, 0]);
    assert.ok(WebAssembly.validate(strayImport), 'the stray-import module is valid wasm');
    for (const wasm of [truncated, strayImport]) {
      const err = await rejects(() => init({ backend: 'wasm', wasm }), 'WASM_BROKEN', ['wasm option', 'compile or instantiate']);
      assert.is(err.argument, 'wasm');
      await rejects(() => init({ backend: 'auto', gpu: noAdapter, wasm }), 'WASM_BROKEN', ['wasm option']);
    }
    await rejects(() => init({ backend: 'wasm', wasm: 'not bytes' as never }), 'INVALID_OPTION', ['wasm']);
    // js needs no wasm: the option is not even compiled.
    const js = await init({ backend: 'js', wasm: truncated });
    assert.is(js.backend, 'js');
    js.dispose();
  });

  test('gpuCounters: one submit and one readback per cosineSimilarity, uploads counted with their bytes; undefined off webgpu', async () => {
    if (h.backend !== 'webgpu') { assert.is(h.mk.gpuCounters, undefined); return; }
    const x = { data: new Float32Array(3 * 5).fill(1), shape: [3, 5] };
    const y = { data: new Float32Array(2 * 5).fill(2), shape: [2, 5] };
    const before = h.mk.gpuCounters!;
    await h.mk.cosineSimilarity(x, y);
    const after = h.mk.gpuCounters!;
    assert.is(after.submits - before.submits, 1, 'submits');
    assert.is(after.readbacks - before.readbacks, 1, 'readbacks');
    assert.is(after.uploads - before.uploads, 2, 'the two inputs');
    assert.is(after.uploadBytes - before.uploadBytes, (15 + 10) * 4, 'their bytes');
  });

  test('gpuTiming: gpuTimeMs is a finite, non-decreasing count from 0 on a webgpu device with timestamps, undefined otherwise; a non-boolean is INVALID_OPTION', async () => {
    const err = await rejects(() => init({ backend: h.backend, gpu: h.gpu, gpuTiming: 'yes' as never }), 'INVALID_OPTION', ['gpuTiming', 'yes']);
    assert.is(err.argument, 'gpuTiming');
    assert.is(h.mk.gpuTimeMs, undefined, 'without gpuTiming');
    const mk = await init({ backend: h.backend, gpu: h.gpu, gpuTiming: true });
    try {
      const timestamps = h.backend === 'webgpu' && (await h.gpu!.requestAdapter())!.features.has('timestamp-query');
      if (!timestamps) {
        assert.is(mk.gpuTimeMs, undefined, `${h.backend}: no GPU timestamps`);
        if (h.backend === 'webgpu') skip(h.print, 'gpuTiming accumulates', 'this adapter has no timestamp-query feature');
        return;
      }
      // Types and invariants only: how long a kernel takes is a bench/ question, and a software
      // adapter may quantise a short kernel to 0.
      assert.is(mk.gpuTimeMs, 0);
      const x = { data: Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)), shape: [64, 64] };
      await mk.cosineSimilarity(x, x);
      const once = mk.gpuTimeMs!;
      assert.ok(Number.isFinite(once) && once >= 0, `gpuTimeMs after one call: ${once}`);
      await mk.cosineSimilarity(x, x);
      const twice = mk.gpuTimeMs!;
      assert.ok(Number.isFinite(twice) && twice >= once, `gpuTimeMs never decreases: ${once} then ${twice}`);
    } finally {
      mk.dispose();
    }
  });

  test('a disposed context throws DISPOSED; dispose is idempotent', async () => {
    const mk = await init({ backend: h.backend, gpu: h.gpu });
    mk.dispose();
    mk.dispose();
    const x = { data: new Float32Array([1]), shape: [1, 1] };
    await rejects(() => mk.cosineSimilarity(x, x), 'DISPOSED', ['disposed', h.backend]);
  });

  test('a borrowed device survives dispose(); a lost device makes later calls throw DEVICE_LOST', async () => {
    if (h.backend !== 'webgpu') return skip(h.print, 'borrowed/lost device', `needs a GPU device; this pass tests the ${h.backend} backend`);
    const adapter = await h.gpu!.requestAdapter();
    const device = await adapter!.requestDevice();
    const x = { data: new Float32Array([3, 4]), shape: [1, 2] };
    const borrowed = await init({ backend: 'webgpu', device });
    assert.equal(Array.from((await borrowed.cosineSimilarity(x, x)).data), [1]);
    borrowed.dispose();
    const second = await init({ backend: 'webgpu', device });
    assert.equal(Array.from((await second.cosineSimilarity(x, x)).data), [1], 'the device still works after the first context was disposed');
    device.destroy();
    await device.lost;
    await rejects(() => second.cosineSimilarity(x, x), 'DEVICE_LOST', ['lost', 'init()']);
    second.dispose();
  });

  test.run();
}
