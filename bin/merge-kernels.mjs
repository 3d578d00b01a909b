#!/usr/bin/env node
// The `merge-kernels` command (see dist/cli.js), with every merge method of the package.
import { errorLine, main } from '../dist/cli.js';
import { METHODS } from '../dist/index.js';

// main() reports every error as one line and returns 1; the catch is a last guard, never a stack trace.
const code = await main(process.argv.slice(2), METHODS).catch((e) => {
  process.stderr.write(`merge-kernels: ${errorLine(e)}\n`);
  return 1;
});
// Dawn (the optional 'webgpu' package) can keep the process alive after its device is released.
process.exit(code);
