// Options as a new user types them: every public call rejects a key it does not know with an
// INVALID_OPTION that names the key and, for a near miss, the key that was meant. Before the
// validate module, init, the matching calls and plan.merge ignored typos silently.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { init } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { randomTensor, rejects } from '../util.ts';

/** A software-looking WebGPU implementation: its adapter must never be requested as a device by 'auto'. */
function softwareGpu(info: Record<string, unknown>): GPU {
  const adapter = { info, features: new Set(), limits: {}, requestDevice: async () => { throw new Error('auto must not open a software adapter'); } };
  return { requestAdapter: async () => adapter } as unknown as GPU;
}

export default function (h: Harness) {
  const test = suite(`options [${h.backend}]`);
  const metric = randomTensor([1, 12, 4], 1);

  test('init: an unknown key is INVALID_OPTION with a suggestion; so are null and a bad backend name', async () => {
    const err = await rejects(() => init({ backen: 'js' } as never), 'INVALID_OPTION', ['backen', "did you mean 'backend'"]);
    assert.is(err.argument, 'backen');
    await rejects(() => init({ backend: 'wams' as never }), 'INVALID_OPTION', ['backend', "did you mean 'wasm'"]);
    await rejects(() => init(null as never), 'INVALID_OPTION', ['options']);
    await rejects(() => init({ gpuTimming: true } as never), 'INVALID_OPTION', ["did you mean 'gpuTiming'"]);
  });

  test('matching calls: unknown keys are errors, near misses suggested', async () => {
    const calls: Array<[string, () => Promise<unknown>, string]> = [
      ['clsToken', () => h.mk.bipartiteSoftMatching(metric, { r: 2, clsToken: true } as never), 'classToken'],
      ['seeds', () => h.mk.randomBipartiteSoftMatching(metric, { r: 2, seeds: 1 } as never), 'seed'],
      ['K', () => h.mk.kthBipartiteSoftMatching(metric, { K: 2 } as never), 'k'],
      ['no_rand', () => h.mk.bipartiteSoftMatchingRandom2d(metric, { w: 4, h: 3, sx: 2, sy: 2, r: 2, no_rand: true } as never), 'noRand'],
      ['treshold', () => h.mk.thresholdSoftMatching(metric, { treshold: 0.5 } as never), 'threshold'],
      ['maxr', () => h.mk.batchLevelSoftMatching(metric, { r: 2, maxr: 3 } as never), 'maxR'],
      ['margn', () => h.mk.pitomeSoftMatching(metric, { r: 2, margin: 0.5, margn: 0.1 } as never), 'margin'],
    ];
    for (const [key, call, meant] of calls) {
      const err = await rejects(call, 'INVALID_OPTION', [key, `did you mean '${meant}'`]);
      assert.is(err.argument, key);
    }
    // A key far from every known one is still an error, listing what the call takes.
    await rejects(() => h.mk.bipartiteSoftMatching(metric, { r: 2, colour: 'red' } as never), 'INVALID_OPTION', ['colour', 'expected r, classToken, distillToken']);
  });

  test("plans' merge: { mdoe } is an error, not the default mode", async () => {
    const plan = await h.mk.bipartiteSoftMatching(metric, { r: 2 });
    const x = randomTensor([1, 12, 3], 2);
    await rejects(() => plan.merge(x, { mdoe: 'sum' } as never), 'INVALID_OPTION', ['mdoe', "did you mean 'mode'"]);
    await rejects(() => plan.merge(x, { mode: 'max' as never }), 'INVALID_OPTION', ['mode', "'amax'"]);
    const t = await h.mk.thresholdSoftMatching(metric, { threshold: 0.1 });
    await rejects(() => t.merge(x, { mdoe: 'sum' } as never), 'INVALID_OPTION', ['mdoe']);
    const b = await h.mk.batchLevelSoftMatching(metric, { r: 2 });
    await rejects(() => b.merge(x, { mdoe: 'sum' } as never), 'INVALID_OPTION', ['mdoe']);
  });

  test('model merging calls: unknown keys are errors, near misses suggested', async () => {
    const d = [randomTensor([7], 3), randomTensor([7], 4)];
    await rejects(() => h.mk.trimTopK(d[0]!, { densty: 0.5 } as never), 'INVALID_OPTION', ['densty', "did you mean 'density'"]);
    await rejects(() => h.mk.electSign(d, { zerosign: 'paper' } as never), 'INVALID_OPTION', ["did you mean 'zeroSign'"]);
    await rejects(() => h.mk.disjointMerge(d, { merge: 'mean', wieghts: [1, 1] } as never), 'INVALID_OPTION', ["did you mean 'weights'"]);
    await rejects(() => h.mk.mergeTensors('ties', { models: d, base: d[0], chunksize: 4 } as never), 'INVALID_OPTION', ["did you mean 'chunkSize'"]);
    await rejects(() => h.mk.mergeTensors('ties', { models: d, base: d[0], parameters: { densty: 0.5 } }), 'INVALID_OPTION', ["did you mean 'density'"]);
    await rejects(() => h.mk.disjointMerge(d, { merge: 'maen' } as never), 'INVALID_OPTION', ["did you mean 'mean'"]);
    const out = new Float32Array(7);
    await rejects(() => h.mk.primitives.tiesMerge(d.map((t) => t.data), new Float32Array([1, 1]), new Int32Array([-1, -1]), new Float64Array(2), undefined, out,
      { vote: 'sum', zeroSign: 1, merge: 'sum', lambda: 1, output: 'merged', lamda: 2 } as never), 'INVALID_OPTION', ["did you mean 'lambda'"]);
  });

  test("auto passes over a software adapter (fallback flag or a software name) and says why; asked for by name it is used", async () => {
    for (const info of [{ isFallbackAdapter: true, vendor: 'x', description: 'Fallback' }, { vendor: 'google', architecture: 'swiftshader' }, { vendor: 'mesa', device: 'llvmpipe (LLVM 15.0.6, 256 bits)' }]) {
      const mk = await init({ backend: 'auto', gpu: softwareGpu(info) });
      assert.is(mk.backend, 'wasm', JSON.stringify(info));
      assert.is(mk.fallbackReasons.length, 1);
      assert.match(mk.fallbackReasons[0]!, /^webgpu: the adapter is a software one/);
      mk.dispose();
    }
    // Named explicitly, a software adapter is opened (here the fake one refuses, which proves it was asked).
    await rejects(() => init({ backend: 'webgpu', gpu: softwareGpu({ architecture: 'swiftshader' }) }), 'BACKEND_UNAVAILABLE', ['auto must not open']);
    if (h.backend === 'webgpu') {
      // This runtime's real adapter: software here (SwiftShader / lavapipe), hardware on a GPU machine.
      const adapter = (await h.gpu!.requestAdapter())!;
      const words = `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.device} ${adapter.info.description}`;
      const mk = await init({ backend: 'auto', gpu: h.gpu });
      const software = /swiftshader|llvmpipe|lavapipe|software/i.test(words) || (adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
      h.print(`auto on this runtime's adapter (${words.trim()}): ${mk.backend}`);
      assert.is(mk.backend, software ? 'wasm' : 'webgpu', words);
      mk.dispose();
    }
  });

  test.run();
}
