// Entry for edge runtimes that forbid compiling wasm from bytes (Cloudflare workerd, Vercel
// edge): the bundler or runtime turns this import into a precompiled WebAssembly.Module.
import { createInit } from './api.ts';
import { createMergeModels } from './merging/merge-models.ts';
import kernels from './kernels.wasm';

export * from './exports.ts';

/** Creates a merge-kernels context: `const mk = await init({ backend: 'auto' })`. */
export const init = createInit(async () => kernels);

/** Merges checkpoints as a mergekit config says: `await mergeModels({ config, inputs })` (methods: METHODS; backend: a wasm context of its own). */
export const mergeModels = /* @__PURE__ */ createMergeModels(init);
