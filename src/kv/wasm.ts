// The KV-cache family on wasm: placeholder until assembly/kv-clustering.ts lands.
import * as ref from '../reference/kv-clustering.ts';
import type { WasmRuntime } from '../wasm/runtime.ts';
import type { KvKernels } from './kernels.ts';

export function wasmKvKernels(_runtime: WasmRuntime): KvKernels {
  return {
    clusterKV: async (keys, values, size, shape, layout) => ref.clusterKV(keys, values, size, shape, layout),
    attention: async (q, keys, values, size, shape, causal) => ref.attention(q, keys, values, size, shape, causal),
  };
}
