// workerd smoke test of the built package: the "workerd" export condition imports kernels.wasm
// as a precompiled module (workerd forbids compiling wasm from bytes).
import * as mergeKernels from 'merge-kernels';
// @ts-expect-error: a plain JS module shared with the Bun smoke test
import { smoke } from './smoke.mjs';

export default {
  async test() {
    await smoke(mergeKernels);
    console.log('workerd smoke: ok');
  },
};
