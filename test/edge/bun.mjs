// Bun smoke test of the built package through its own exports map (default condition).
import * as mergeKernels from 'merge-kernels';
import { smoke } from './smoke.mjs';

await smoke(mergeKernels);
console.log('bun smoke: ok');
