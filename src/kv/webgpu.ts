// The KV-cache family on WebGPU: placeholder until kernels/kv-*.wgsl land.
import * as ref from '../reference/kv-clustering.ts';
import type { GpuRuntime } from '../webgpu/runtime.ts';
import type { KvKernels } from './kernels.ts';

export function webgpuKvKernels(_runtime: GpuRuntime): KvKernels {
  return {
    clusterKV: async (keys, values, size, shape, layout) => ref.clusterKV(keys, values, size, shape, layout),
    attention: async (q, keys, values, size, shape, causal) => ref.attention(q, keys, values, size, shape, causal),
  };
}
