import { run } from '../harness.ts';

const backend = process.argv[2] ?? 'js';
let gpu: GPU | undefined;
if (backend === 'webgpu') {
  // Dawn for Node: an optional peer dependency of the package, a dev dependency of its tests.
  const webgpu = await import('webgpu');
  Object.assign(globalThis, webgpu.globals);
  gpu = webgpu.create([]);
}
const code = await run('node', backend, gpu, (line) => console.log(line));
// A process that created a Dawn device may not exit on its own.
process.exit(code || (process.exitCode as number | undefined) || 0);
