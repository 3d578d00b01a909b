// workerd smoke test of the built package: the "workerd" export condition imports kernels.wasm
// as a precompiled module (workerd forbids compiling wasm from bytes).
import { init, reference, MergeKernelsError } from 'merge-kernels';

export default {
  async test() {
    const mk = await init({ backend: 'auto' });
    if (mk.backend !== 'wasm') throw new Error(`expected wasm in workerd, got ${mk.backend}`);
    const [M, N, C] = [37, 29, 21];
    const a = Float32Array.from({ length: M * C }, (_, i) => Math.sin(i * 1.3));
    const b = Float32Array.from({ length: N * C }, (_, i) => Math.cos(i * 0.7));
    const got = await mk.cosineSimilarity({ data: a, shape: [M, C] }, { data: b, shape: [N, C] });
    const want = reference.cosineSimilarity(a, b, 1, M, N, C);
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got.data[i]! - want[i]!) <= 1e-5)) throw new Error(`mismatch at ${i}: ${got.data[i]} vs ${want[i]}`);
    }
    try {
      await mk.cosineSimilarity({ data: a, shape: [M, C] }, { data: b, shape: [N * C] });
      throw new Error('expected a MergeKernelsError');
    } catch (e) {
      if (!(e instanceof MergeKernelsError) || e.code !== 'INVALID_SHAPE') throw e;
    }
    mk.dispose();
    console.log('workerd smoke: ok');
  },
};
