// Entry for edge runtimes that forbid compiling wasm from bytes (Cloudflare workerd, Vercel
// edge): the bundler or runtime turns this import into a precompiled WebAssembly.Module.
import { createInit } from './api.ts';
import kernels from './kernels.wasm';

export * from './exports.ts';

/** Creates a merge-kernels context: `const mk = await init({ backend: 'auto' })`. */
export const init = createInit(async () => kernels);
