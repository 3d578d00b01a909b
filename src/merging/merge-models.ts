// mergeModels as the package exports it: the runner (src/merging/runner.ts) with its defaults
// filled in, the package's methods and a wasm context of the call's own. Each entry point builds
// it with its own init(), which knows how that runtime obtains the wasm module.
import type { InitOptions, MergeKernels } from '../api.ts';
import { METHODS } from './registry.ts';
import { mergeModels as runMerge, type MergeModelsOptions as RunnerOptions, type MergeModelsResult } from './runner.ts';

export interface MergeModelsOptions extends Omit<RunnerOptions, 'methods' | 'backend'> {
  /** The merge methods by mergekit name; default `METHODS`, the package's registry (or pass your own MethodSpecs). */
  methods?: RunnerOptions['methods'];
  /**
   * The context whose backend the method's primitives run on (or a Backend); default a wasm
   * context created for this call and disposed when it ends.
   */
  backend?: RunnerOptions['backend'];
}

/** Builds the exported mergeModels over an entry point's init(). */
export function createMergeModels(init: (options?: InitOptions) => Promise<MergeKernels>) {
  /**
   * Merges safetensors checkpoints as a mergekit config describes, streaming (see the runner's
   * notes in MergeModelsOptions): `mergeModels({ config, inputs })` merges with the package's
   * methods on a wasm context of its own; `methods` and `backend` override those.
   */
  return async function mergeModels(options: MergeModelsOptions): Promise<MergeModelsResult> {
    // Anything but an object is the runner's to reject, with its message.
    if (options === null || typeof options !== 'object') return runMerge(options as RunnerOptions);
    const methods = options.methods === undefined ? METHODS : options.methods;
    if (options.backend !== undefined) return runMerge({ ...options, methods, backend: options.backend });
    const mk = await init({ backend: 'wasm' });
    try {
      return await runMerge({ ...options, methods, backend: mk });
    } finally {
      mk.dispose();
    }
  };
}
