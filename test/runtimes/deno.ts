import { run } from '../harness.ts';

declare const Deno: { args: string[]; exit(code: number): never };
const backend = Deno.args[0] ?? 'js';
const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
const code = await run('deno', backend, gpu, (line) => console.log(line));
const exitCode = (globalThis as { process?: { exitCode?: number } }).process?.exitCode ?? 0;
Deno.exit(code || exitCode);
