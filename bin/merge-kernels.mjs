#!/usr/bin/env node
// The `merge-kernels` command (see dist/cli.js), with every merge method of the package.
import { main } from '../dist/cli.js';
import { METHODS } from '../dist/index.js';

const code = await main(process.argv.slice(2), METHODS);
// Dawn (the optional 'webgpu' package) can keep the process alive after its device is released.
process.exit(code);
