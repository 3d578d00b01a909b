// Default entry (Node, Deno, browsers, bundlers, Bun): the wasm bytes are inlined, so no path
// or bundler configuration is needed. Nothing runs on import; init() compiles lazily.
import { createInit } from './api.ts';
import { createMergeModels } from './merging/merge-models.ts';
import { WASM_BASE64 } from './gen/wasm.ts';
import { decodeBase64 } from './wasm/runtime.ts';

export * from './exports.ts';

/** Creates a merge-kernels context: `const mk = await init({ backend: 'auto' })`. */
export const init = createInit(() => WebAssembly.compile(decodeBase64(WASM_BASE64) as Uint8Array<ArrayBuffer>));

/** Merges checkpoints as a mergekit config says: `await mergeModels({ config, inputs })` (methods: METHODS; backend: a wasm context of its own). */
export const mergeModels = /* @__PURE__ */ createMergeModels(init);
