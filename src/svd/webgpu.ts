// The SVD family on the WebGPU backend.
import type { GpuRuntime } from '../webgpu/runtime.ts';
import * as ref from '../reference/svd.ts';
import type { SvdKernels } from './kernels.ts';

export function webgpuSvdKernels(rt: GpuRuntime): SvdKernels {
  void rt;
  return {
    exactTall: async (a, batch, m, n, k) => ref.exactTall(a, batch, m, n, k),
    randomized: async (a, batch, m, n, k, l, q, omega) => ref.randomizedSvd(a, batch, m, n, k, l, q, omega),
  };
}
