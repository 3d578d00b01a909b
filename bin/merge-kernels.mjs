#!/usr/bin/env node
// The `merge-kernels` command (see dist/cli.js). The merge methods come from the package's
// registries; a namespace import so this file works whichever registries a build exports.
import { main } from '../dist/cli.js';
import * as mk from '../dist/index.js';

const methods = { ...(mk.METHODS ?? {}), ...(mk.INTERPOLATION_METHODS ?? {}) };
const code = await main(process.argv.slice(2), methods);
// Dawn (the optional 'webgpu' package) can keep the process alive after its device is released.
process.exit(code);
