// The KV-cache family's kernels on each backend (see src/kernel-table.ts): the js reference, wasm
// SIMD (src/kv/wasm.ts) and WebGPU (src/kv/webgpu.ts). The eviction baselines are gathers done
// by host code shared by every backend (src/kv/api.ts); only clustering and attention are kernels.
import type { DeviceStorage } from '../device-tensor.ts';
import type { KernelTable } from '../kernel-table.ts';
import * as ref from '../reference/kv-clustering.ts';
import type { AttentionShape, CausalMask, KvCluster, KvLayout, KvShape } from '../reference/kv-clustering.ts';
import { wasmKvKernels } from './wasm.ts';
import { webgpuKvKernels } from './webgpu.ts';

/** A cache input: host values, or this backend's storage of a device tensor (not scanned for NaN). */
export type KvInput = Float32Array | DeviceStorage;

/** The host values of an input on the js backend (its device tensors are host arrays). */
export function hostValues(x: KvInput): Float32Array {
  if (x instanceof Float32Array) return x;
  if (x.kind !== 'host') throw new Error(`internal: expected host storage, got ${x.kind}`);
  return x.data;
}

/** A kernel's compressed cache: merged keys and values on the host, or resident on the backend. */
export type KvClusterOut = Omit<KvCluster, 'keys' | 'values'> & { keys: Float32Array | DeviceStorage; values: Float32Array | DeviceStorage };

export interface KvKernels {
  /**
   * True when the kernels check their float inputs for NaN/±Infinity themselves (throwing the
   * same NON_FINITE error as checkFinite), so that the API does not scan them a second time:
   * wasm scans them with SIMD where it copies them in.
   */
  readonly checksFinite?: boolean;
  /**
   * Chelsea's chunked soft matching of every head (see reference/kv-clustering.ts clusterKV).
   * `resident`: the merged keys and values stay on the backend (DeviceStorage), the rest comes back.
   */
  clusterKV(keys: KvInput, values: KvInput, size: Float32Array | undefined, shape: KvShape, layout: KvLayout, resident?: boolean): Promise<KvClusterOut>;
  /** Proportional attention softmax(q·kᵀ/√D + log size)·V, grouped-query (see reference/kv-clustering.ts attention). */
  attention(q: Float32Array, keys: KvInput, values: KvInput, size: Float32Array | undefined, shape: AttentionShape, causal?: CausalMask): Promise<Float32Array>;
}

export const kvKernels: KernelTable<KvKernels> = {
  family: 'kv-clustering',
  js: () => ({
    clusterKV: async (keys, values, size, shape, layout, resident) => {
      const r = ref.clusterKV(hostValues(keys), hostValues(values), size, shape, layout);
      return resident ? { ...r, keys: { kind: 'host', data: r.keys }, values: { kind: 'host', data: r.values } } : r;
    },
    attention: async (q, keys, values, size, shape, causal) => ref.attention(q, hostValues(keys), hostValues(values), size, shape, causal),
  }),
  wasm: (runtime) => wasmKvKernels(runtime),
  webgpu: (runtime) => webgpuKvKernels(runtime),
};
