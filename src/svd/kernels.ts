// The SVD family's kernels, one implementation per backend (see src/kernel-table.ts). Each takes
// validated float32 arrays; the API (api.ts) transposes wide input and fixes signs on the host.
import type { KernelTable } from '../kernel-table.ts';
import * as ref from '../reference/svd.ts';
import type { SvdFactors } from '../reference/svd.ts';
import { wasmSvdKernels } from './wasm.ts';
import { webgpuSvdKernels } from './webgpu.ts';

export interface SvdKernels {
  /** Exact thin SVD of tall items a [batch, m, n] (m ≥ n), top k, σ descending, signs not fixed. */
  exactTall(a: Float32Array, batch: number, m: number, n: number, k: number): Promise<SvdFactors>;
  /**
   * Randomized SVD of items of any shape with the test matrices omega [batch, n, l]
   * (k ≤ l < min(m, n)), top k, σ descending, signs not fixed.
   */
  randomized(a: Float32Array, batch: number, m: number, n: number, k: number, l: number, powerIters: number, omega: Float32Array): Promise<SvdFactors>;
}

export const svdKernels: KernelTable<SvdKernels> = {
  family: 'svd',
  js: () => ({
    exactTall: async (a, batch, m, n, k) => ref.exactTall(a, batch, m, n, k),
    randomized: async (a, batch, m, n, k, l, q, omega) => ref.randomizedSvd(a, batch, m, n, k, l, q, omega),
  }),
  wasm: (runtime) => wasmSvdKernels(runtime),
  webgpu: (runtime) => webgpuSvdKernels(runtime),
};
