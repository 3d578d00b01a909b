// How a kernel family plugs into the backends (Foundation v2, issue 9, part 5): a family is one
// folder under src/ (its API functions, options and plans) whose kernels.ts exports a KernelTable
// — one factory per backend — instead of widening the central Backend interface and its three
// classes. The family's API asks `kernelsOf(backend, table)` for this context's implementation;
// each is made once per context (it may build pipelines or scratch) and lives as long as it.
// As tfjs registers a kernel per backend, without the backends knowing the kernel.
import type { Backend } from './backends.ts';
import type { WasmRuntime } from './wasm/runtime.ts';
import type { GpuRuntime } from './webgpu/runtime.ts';

export interface KernelTable<K> {
  /** The family's name, for messages. */
  readonly family: string;
  /** The plain TypeScript reference (src/reference/), the oracle of the family's suite. */
  js(): K;
  /** WebAssembly SIMD, over the context's wasm instance and memory. */
  wasm(runtime: WasmRuntime): K;
  /** WebGPU, over the context's device (pipelines cached in runtime.pipelines). */
  webgpu(runtime: GpuRuntime): K;
}

const made = new WeakMap<Backend, Map<KernelTable<unknown>, unknown>>();

/** This backend's implementation of a family's kernels, made on first use and kept with the context. */
export function kernelsOf<K>(backend: Backend, table: KernelTable<K>): K {
  let byTable = made.get(backend);
  if (!byTable) made.set(backend, (byTable = new Map()));
  let k = byTable.get(table as KernelTable<unknown>) as K | undefined;
  if (k === undefined) {
    const runtime = (backend as { runtime?: unknown }).runtime;
    k = backend.name === 'js' ? table.js()
      : backend.name === 'wasm' ? table.wasm(runtime as WasmRuntime)
      : table.webgpu(runtime as GpuRuntime);
    byTable.set(table as KernelTable<unknown>, k);
  }
  return k;
}
