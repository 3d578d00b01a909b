// npm start: a demo of every kernel family merge-kernels has, on data it generates (offline).
// Token merging: demo/token-merging.mjs; model merging: demo/model-merging.mjs; SVD: demo/svd.mjs;
// KV caches: demo/kv-clustering.mjs.
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokenMergingDemo } from './token-merging.mjs';
import { modelMergingDemo } from './model-merging.mjs';
import { svdDemo } from './svd.mjs';
import { kvClusteringDemo } from './kv-clustering.mjs';

/** Node's WebGPU: the optional peer dependency `webgpu` (Dawn), when installed. */
async function nodeGpu() {
  try {
    process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Dawn complains without it
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    return webgpu.create([]);
  } catch {
    return undefined; // the optional peer dependency is not installed
  }
}

const gpu = await nodeGpu();
const svgPath = join(dirname(fileURLToPath(import.meta.url)), 'out', 'token-merging.svg');
console.log('merge-kernels demo\n');
await tokenMergingDemo({ gpu, svgPath: relative(process.cwd(), svgPath) || svgPath });
await modelMergingDemo({ gpu });
await svdDemo({ gpu });
await kvClusteringDemo();
// Dawn (the optional 'webgpu' package) can keep the process alive after its devices are released.
process.exit(0);
