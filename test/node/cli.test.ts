// Node only: the folder output (temporary files renamed on success, nothing left on failure),
// model folders and shard indexes as inputs, config-relative paths, and the merge-kernels
// command in-process (with the test methods) and as a process (--help, exit codes, and a real
// merge when the package's registry has `linear`). Run by scripts/test.mjs in its node stage.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkg from 'merge-kernels';
import { decodeToFloat32, encodeFromFloat32, extractLora, mergeModels, readSafetensors, writeSafetensors, type MethodSpec } from 'merge-kernels';
import { extractLoraFiles, mergeModelFiles } from 'merge-kernels/node';
import { main, parseSize } from '../../src/cli.ts';
import { TEST_METHODS } from '../merge-methods.ts';
import { rejects } from '../util.ts';

const test = suite('node / files + cli');
const root = await mkdtemp(join(tmpdir(), 'merge-kernels-cli-'));
const bin = join(process.cwd(), 'bin', 'merge-kernels.mjs');

function st(tensors: Array<[string, 'F32' | 'F16' | 'BF16', number[], number[]]>): Uint8Array<ArrayBuffer> {
  return writeSafetensors(tensors.map(([name, dtype, shape, v]) => ({ name, dtype, shape, data: encodeFromFloat32(dtype, new Float32Array(v)) })));
}

/** Runs main() with captured output. */
async function cli(args: string[], methods: Record<string, MethodSpec> = TEST_METHODS) {
  let stdout = '', stderr = '';
  const code = await main(args, methods, { stdout: { write: (s: string) => { stdout += s; } }, stderr: { write: (s: string) => { stderr += s; } } });
  return { code, stdout, stderr };
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const base = st([['model.layers.0.w', 'F32', [2, 3], [1, 2, 3, 4, 5, 6]], ['model.layers.1.w', 'F32', [3], [0, 0, 0]], ['model.norm.weight', 'F32', [3], [1, 1, 1]]]);
const a = st([['model.layers.0.w', 'F16', [2, 3], [2, 2, 2, 2, 2, 2]], ['model.layers.1.w', 'F16', [3], [1, 2, 3]], ['model.norm.weight', 'F16', [3], [2, 1, 0]]]);
const b = st([['model.layers.0.w', 'BF16', [2, 3], [0, 1, 0, 1, 0, 1]], ['model.layers.1.w', 'BF16', [3], [4, 4, 4]], ['model.norm.weight', 'BF16', [3], [0.5, 0.5, 0.5]]]);
const CONFIG = `merge_method: centered
base_model: ../models/base
models:
  - model: ../models/base
  - model: ../models/a.safetensors
    parameters:
      weight: [0.5, 1]
  - model: ../models/b
    parameters:
      weight: 0.25
`;

test.before(async () => {
  await mkdir(join(root, 'models', 'b'), { recursive: true });
  await mkdir(join(root, 'models', 'base'), { recursive: true });
  await mkdir(join(root, 'cfg'), { recursive: true });
  await writeFile(join(root, 'models', 'a.safetensors'), a);
  await writeFile(join(root, 'models', 'b', 'model.safetensors'), b);
  // The base as two shards with an index.
  const s1 = st([['model.layers.0.w', 'F32', [2, 3], [1, 2, 3, 4, 5, 6]]]);
  const s2 = st([['model.layers.1.w', 'F32', [3], [0, 0, 0]], ['model.norm.weight', 'F32', [3], [1, 1, 1]]]);
  await writeFile(join(root, 'models', 'base', 'model-00001-of-00002.safetensors'), s1);
  await writeFile(join(root, 'models', 'base', 'model-00002-of-00002.safetensors'), s2);
  await writeFile(join(root, 'models', 'base', 'model.safetensors.index.json'), JSON.stringify({
    metadata: { total_size: 48 }, weight_map: { 'model.layers.0.w': 'model-00001-of-00002.safetensors', 'model.layers.1.w': 'model-00002-of-00002.safetensors', 'model.norm.weight': 'model-00002-of-00002.safetensors' },
  }));
  await writeFile(join(root, 'cfg', 'merge.yml'), CONFIG);
});

test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('merge: paths relative to the config, a sharded base folder; the file equals the in-memory merge', async () => {
  const out = join(root, 'out1');
  const r = await cli(['merge', join(root, 'cfg', 'merge.yml'), '-o', out, '--chunk-size', '12', '--backend', 'js', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /merged 3 tensors with centered on js/);
  assert.match(r.stdout, /model\.safetensors/);
  // No temporary file left; the model card and the config come with the weights (the models have no config.json or tokenizer).
  assert.equal((await readdir(out)).sort(), ['README.md', 'mergekit_config.yml', 'model.safetensors']);
  assert.is(await readFile(join(out, 'mergekit_config.yml'), 'utf8'), CONFIG);
  const file = new Uint8Array(await readFile(join(out, 'model.safetensors')));
  const mk = await pkg.init({ backend: 'js' });
  const memory = await mergeModels({ config: CONFIG, methods: TEST_METHODS, backend: mk, inputs: { '../models/base': base, '../models/a.safetensors': a, '../models/b': new Blob([b]) } });
  assert.equal(file, new Uint8Array(await memory.blob!.arrayBuffer()));
  mk.dispose();
  assert.is(readSafetensors(file).metadata.merge_method, 'centered');
});

test('sharded output with an index, which reads back as a model folder', async () => {
  const out = join(root, 'out2');
  const r = await cli(['merge', join(root, 'cfg', 'merge.yml'), '-o', out, '--max-shard-size', '20', '--backend', 'wasm', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  assert.equal((await readdir(out)).sort(), ['README.md', 'mergekit_config.yml', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
  const mk = await pkg.init({ backend: 'wasm' });
  const again = await mergeModelFiles({ config: 'merge_method: linear\nmodels:\n  - model: out2\n', baseDir: root, outDir: join(root, 'out3'), methods: TEST_METHODS, backend: mk, onProgress: () => {} });
  mk.dispose();
  assert.is(again.tensorsMerged, 3);
  // Merging one model with linear gives it back: the single file equals the three shards' tensors.
  const single = readSafetensors(new Uint8Array(await readFile(join(root, 'out3', 'model.safetensors'))));
  const shard3 = readSafetensors(new Uint8Array(await readFile(join(out, 'model-00003-of-00003.safetensors'))));
  assert.equal(single.tensors.get('model.norm.weight')!.bytes, shard3.tensors.get('model.norm.weight')!.bytes);
});

test('a failure mid-merge leaves no partial file and keeps the earlier model', async () => {
  const out = join(root, 'out4');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'model.safetensors'), 'the earlier model');
  const bad = st([['model.layers.0.w', 'F32', [2, 3], [1, 1, 1, 1, 1, 1]], ['model.layers.1.w', 'F32', [3], [1, 1, 1]], ['model.norm.weight', 'F32', [3], [1, NaN, 1]]]);
  await writeFile(join(root, 'models', 'bad.safetensors'), bad);
  await writeFile(join(root, 'cfg', 'bad.yml'), CONFIG.replace('model: ../models/b\n', 'model: ../models/bad.safetensors\n'));
  const r = await cli(['merge', join(root, 'cfg', 'bad.yml'), '-o', out, '--chunk-size', '4', '--backend', 'js', '--no-progress']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /"\.\.\/models\/bad\.safetensors", tensor "model\.norm\.weight": NaN at index 1/, r.stderr);
  assert.equal(await readdir(out), ['model.safetensors']);
  assert.is(await readFile(join(out, 'model.safetensors'), 'utf8'), 'the earlier model');
});

test('bad configs and missing models: exit code 1 and the reason', async () => {
  await writeFile(join(root, 'cfg', 'modules.yml'), 'merge_method: linear\nmodules:\n  text: {}\n');
  let r = await cli(['merge', join(root, 'cfg', 'modules.yml'), '-o', join(root, 'x'), '--backend', 'js']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /unsupported key "modules" \(line 2\)/);
  await writeFile(join(root, 'cfg', 'missing.yml'), 'merge_method: linear\nmodels:\n  - model: org/not-here\n');
  r = await cli(['merge', join(root, 'cfg', 'missing.yml'), '-o', join(root, 'x'), '--backend', 'js']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /model "org\/not-here".*does not exist.*nothing is downloaded/);
  r = await cli(['merge', join(root, 'cfg', 'nope.yml'), '-o', join(root, 'x'), '--backend', 'js']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /cannot read the config/);
  // What does not exist is MISSING_FILE (not an invalid option): a model path, a model folder
  // without weights, a shard its index names, the config file.
  await rejects(() => mergeModelFiles({ configPath: join(root, 'cfg', 'missing.yml'), outDir: join(root, 'x'), methods: TEST_METHODS }), 'MISSING_FILE', ['model "org/not-here"', 'does not exist']);
  await mkdir(join(root, 'models', 'empty'), { recursive: true });
  await rejects(() => mergeModelFiles({ config: 'merge_method: linear\nmodels:\n  - model: models/empty\n', baseDir: root, outDir: join(root, 'x'), methods: TEST_METHODS }), 'MISSING_FILE', ['neither model.safetensors nor model.safetensors.index.json']);
  await mkdir(join(root, 'models', 'lost-shard'), { recursive: true });
  await writeFile(join(root, 'models', 'lost-shard', 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { w: 'model-00001-of-00001.safetensors' } }));
  await rejects(() => mergeModelFiles({ config: 'merge_method: linear\nmodels:\n  - model: models/lost-shard\n', baseDir: root, outDir: join(root, 'x'), methods: TEST_METHODS }), 'MISSING_FILE', ['model-00001-of-00001.safetensors', 'listed in']);
  await rejects(() => mergeModelFiles({ configPath: join(root, 'cfg', 'nope.yml'), outDir: join(root, 'x'), methods: TEST_METHODS }), 'MISSING_FILE', ['configPath']);
  assert.equal((await readdir(root)).includes('x'), false, 'nothing was created for failed merges');
});

/** stderr is one line: "merge-kernels: …", a newline, nothing else (no stack trace). */
function oneLine(stderr: string, what: string): void {
  assert.match(stderr, /^merge-kernels: [^\n]+\n$/, `${what}: one line, got ${JSON.stringify(stderr.slice(0, 400))}`);
  assert.not.match(stderr, /\bat .*:\d+:\d+/, `${what}: no stack frames`);
}

test('every error is one line with exit code 1: a header nested 10,000 deep, an integer-valued float dim, a non-MergeKernelsError', async () => {
  // data_offsets nested 10,000 deep: a message that stringified it would overflow the stack (a RangeError).
  const levels = 10_000;
  const header = `{"model.norm.weight":{"dtype":"F32","shape":[1],"data_offsets":${'['.repeat(levels)}${']'.repeat(levels)}}}`;
  const deep = new Uint8Array(8 + header.length + 4);
  new DataView(deep.buffer).setBigUint64(0, BigInt(header.length), true);
  deep.set(new TextEncoder().encode(header), 8);
  await writeFile(join(root, 'models', 'deep.safetensors'), deep);
  await writeFile(join(root, 'cfg', 'deep.yml'), 'merge_method: linear\nmodels:\n  - model: ../models/deep.safetensors\n  - model: ../models/b\n');
  let r = await cli(['merge', join(root, 'cfg', 'deep.yml'), '-o', join(root, 'out-deep'), '--backend', 'js', '--no-progress']);
  assert.is(r.code, 1, r.stderr);
  oneLine(r.stderr, 'deep header');
  assert.match(r.stderr, /HEADER_NOT_JSON/);

  // "shape": [3.0] is a float for the reference reader, which refuses it; so do we.
  const floatHeader = '{"model.layers.0.w":{"dtype":"F16","shape":[2,3.0],"data_offsets":[0,12]},"model.layers.1.w":{"dtype":"F16","shape":[3],"data_offsets":[12,18]},"model.norm.weight":{"dtype":"F16","shape":[3],"data_offsets":[18,24]}}';
  const floaty = new Uint8Array(8 + floatHeader.length + 24);
  new DataView(floaty.buffer).setBigUint64(0, BigInt(floatHeader.length), true);
  floaty.set(new TextEncoder().encode(floatHeader), 8);
  await writeFile(join(root, 'models', 'float-dim.safetensors'), floaty);
  await writeFile(join(root, 'cfg', 'float-dim.yml'), 'merge_method: linear\nmodels:\n  - model: ../models/float-dim.safetensors\n  - model: ../models/b\n');
  r = await cli(['merge', join(root, 'cfg', 'float-dim.yml'), '-o', join(root, 'out-float'), '--backend', 'js', '--no-progress']);
  assert.is(r.code, 1, r.stderr);
  oneLine(r.stderr, 'float dim');
  assert.match(r.stderr, /BAD_SHAPE/);

  // A method that fails with a plain TypeError whose message spans two lines.
  const boom: MethodSpec = { ...TEST_METHODS.linear!, name: 'boom', create: () => { throw new TypeError('first line\nsecond line'); } };
  await writeFile(join(root, 'cfg', 'boom.yml'), 'merge_method: boom\nmodels:\n  - model: ../models/a.safetensors\n  - model: ../models/b\n');
  r = await cli(['merge', join(root, 'cfg', 'boom.yml'), '-o', join(root, 'out-boom'), '--backend', 'js', '--no-progress'], { ...TEST_METHODS, boom });
  assert.is(r.code, 1, r.stderr);
  oneLine(r.stderr, 'TypeError');
  assert.match(r.stderr, /TypeError: first line second line/);

  // As a process: the same one line, no stack trace.
  const p = await run(['merge', join(root, 'cfg', 'deep.yml'), '-o', join(root, 'out-deep'), '--backend', 'wasm', '--no-progress']);
  assert.is(p.code, 1, p.stderr);
  oneLine(p.stderr, 'deep header, as a process');
  assert.equal((await readdir(root)).filter((f) => f.startsWith('out-')), [], 'nothing was written');
});

test('usage errors: exit code 2', async () => {
  for (const args of [['frobnicate'], ['merge'], ['merge', 'c.yml'], ['merge', 'c.yml', '-o', 'o', '--chunk-size', 'lots'], ['merge', 'c.yml', '-o', 'o', '--backend', 'cuda'], ['merge', 'c.yml', '-o', 'o', '--bogus']]) {
    const r = await cli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^merge-kernels: /);
  }
});

test('--version, no arguments, the output folder after the config, YAML positions', async () => {
  const { version } = JSON.parse(await readFile(join(process.cwd(), 'package.json'), 'utf8')) as { version: string };
  let r = await cli(['--version']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `${version}\n`);
  // No arguments: a usage error, the usage on stderr and nothing on stdout.
  r = await cli([]);
  assert.is(r.code, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /^Usage: merge-kernels merge <config\.yml> <out-dir>/);
  // mergekit-yaml's `config.yml out/`: the same file as with -o.
  const config = join(root, 'cfg', 'merge.yml');
  r = await cli(['merge', config, join(root, 'pos-a'), '--backend', 'js', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  r = await cli(['merge', config, '-o', join(root, 'pos-b'), '--backend', 'js', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(await readFile(join(root, 'pos-a', 'model.safetensors')), await readFile(join(root, 'pos-b', 'model.safetensors')));
  for (const args of [['merge', config, 'out', 'extra'], ['merge', config, 'out', '-o', 'other']]) {
    r = await cli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    oneLine(r.stderr, args.join(' '));
  }
  // A YAML syntax error (a duplicate key) ends with its line and column.
  await writeFile(join(root, 'cfg', 'dup.yml'), 'merge_method: linear\nmerge_method: ties\n');
  r = await cli(['merge', join(root, 'cfg', 'dup.yml'), join(root, 'x'), '--backend', 'js']);
  assert.is(r.code, 1);
  oneLine(r.stderr, 'YAML error');
  assert.match(r.stderr, /not valid YAML: Map keys must be unique \(line 2, column 1\)\n$/);
});

test('the command as a process: no arguments, --version, and the auto backend note only with --verbose', async () => {
  const none = await run([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /^Usage: merge-kernels merge/);
  const { version } = JSON.parse(await readFile(join(process.cwd(), 'package.json'), 'utf8')) as { version: string };
  assert.is((await run(['--version'])).stdout, `${version}\n`);
  // The package registry (bin/merge-kernels.mjs): linear, a method of METHODS.
  const config = join(root, 'cfg', 'linear-auto.yml');
  await writeFile(config, 'merge_method: linear\nmodels:\n  - model: ../models/a.safetensors\n    parameters: { weight: 1 }\n  - model: ../models/b\n    parameters: { weight: 3 }\n');
  const quiet = await run(['merge', config, join(root, 'auto-a'), '--backend', 'auto', '--no-progress']);
  assert.is(quiet.code, 0, quiet.stderr);
  assert.not.match(quiet.stdout, /auto chose/);
  const verbose = await run(['merge', config, join(root, 'auto-b'), '--backend', 'auto', '--no-progress', '--verbose']);
  assert.is(verbose.code, 0, verbose.stderr);
  const backend = /with linear on (\w+)/.exec(verbose.stdout)?.[1];
  if (backend === 'webgpu') console.log('SKIP: cli --verbose note: auto chose WebGPU here (a hardware adapter), which needs no reason');
  else assert.match(verbose.stdout, new RegExp(`on ${backend} \\(auto chose ${backend} \\(`));
  // mergeModelFiles without methods and backend: the package registry on wasm, the same file.
  const files = await mergeModelFiles({ configPath: config, outDir: join(root, 'auto-c') });
  assert.is(files.tensorsMerged, 3);
  assert.equal(await readFile(join(root, 'auto-c', 'model.safetensors')), await readFile(join(root, 'auto-a', 'model.safetensors')));
});

test('the command as a process: --help, exit codes, and a merge with the package registry', async () => {
  const help = await run(['--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /Usage: merge-kernels merge/);
  assert.is((await run(['merge'])).code, 2);
  const registry = { ...((pkg as unknown as Record<string, unknown>).METHODS as object ?? {}), ...((pkg as unknown as Record<string, unknown>).INTERPOLATION_METHODS as object ?? {}) } as Record<string, MethodSpec>;
  await writeFile(join(root, 'cfg', 'linear.yml'), 'merge_method: linear\nmodels:\n  - model: ../models/a.safetensors\n    parameters: { weight: 1 }\n  - model: ../models/b\n    parameters: { weight: 1 }\n');
  const r = await run(['merge', join(root, 'cfg', 'linear.yml'), '-o', join(root, 'out5'), '--backend', 'wasm', '--no-progress']);
  if (!registry.linear) {
    assert.is(r.code, 1);
    assert.match(r.stderr, /unknown method "linear"/);
    console.log('SKIP: cli process merge: this build exports no METHODS registry with linear; checked the exit code of the unknown method instead');
    return;
  }
  assert.is(r.code, 0, r.stderr);
  const out = readSafetensors(new Uint8Array(await readFile(join(root, 'out5', 'model.safetensors'))));
  // (a + b) / 2 for the norm: a = [2, 1, 0], b = [0.5, 0.5, 0.5]; output dtype F16 as in a.
  assert.is(out.tensors.get('model.norm.weight')!.dtype, 'F16');
  assert.equal(Array.from(pkg.decodeToFloat32('F16', out.tensors.get('model.norm.weight')!.bytes)), [1.25, 0.75, 0.25]);
});

test('TIES zero sign guessed wrong: the chunk is rewritten in place in the temporary file; the same bytes for every chunk size', async () => {
  const dir = join(root, 'zero-sign');
  await mkdir(dir, { recursive: true });
  // As in test/suites/merge-runner.ts: base 0, δa = [1, 2, 3, -1, 1, -2], δb = [-1, 2, -1, 1, 1, -2],
  // Σ = [0, 4, 2, 0, 2, -4]: majority +2 → zero sign +1, merged = mean of the agreeing δ:
  // [1, 2, 3, 1, 1, -2]. Entry 0 is merged first under the guess −1 (b's −1) and must be rewritten.
  await writeFile(join(dir, 'base.safetensors'), st([['w', 'F32', [6], [0, 0, 0, 0, 0, 0]]]));
  await writeFile(join(dir, 'a.safetensors'), st([['w', 'F32', [6], [1, 2, 3, -1, 1, -2]]]));
  await writeFile(join(dir, 'b.safetensors'), st([['w', 'F32', [6], [-1, 2, -1, 1, 1, -2]]]));
  await writeFile(join(dir, 'ties.yml'), 'merge_method: ties\nbase_model: base.safetensors\nparameters:\n  semantics: paper\nmodels:\n  - model: a.safetensors\n    parameters: { weight: 1, density: 1 }\n  - model: b.safetensors\n    parameters: { weight: 1, density: 1 }\n');
  const files: Uint8Array[] = [];
  for (const size of ['4', '8', '12', '1MiB']) {
    const out = join(dir, `out-${size}`);
    const r = await cli(['merge', join(dir, 'ties.yml'), '-o', out, '--chunk-size', size, '--backend', 'wasm', '--no-progress'], pkg.METHODS);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /rewrote 1 chunk in place/, r.stdout);
    assert.ok((await readdir(out)).includes('model.safetensors')); // the rewrite went to the temporary file, renamed after
    const file = new Uint8Array(await readFile(join(out, 'model.safetensors')));
    assert.equal(Array.from(pkg.decodeToFloat32('F32', readSafetensors(file).tensors.get('w')!.bytes)), [1, 2, 3, 1, 1, -2], `chunk size ${size}`);
    files.push(file);
  }
  for (let i = 1; i < files.length; i++) assert.equal(files[i], files[0], `chunk size #${i} gives the same bytes`);
});

test('bfloat16 inputs on the wasm backend (decoded in SIMD with the finiteness check): the same bytes as js, values by hand, a NaN or infinity named at its index', async () => {
  // 37 entries: blocks of 8 and a tail, in chunks of 13 (a partial block per chunk) and whole.
  const n = 37;
  const av = Array.from({ length: n }, (_, i) => i / 8 - 2), bv = Array.from({ length: n }, (_, i) => 3 - i / 4);
  const one = (v: number[]) => writeSafetensors([{ name: 'w', dtype: 'BF16', shape: [n], data: encodeFromFloat32('BF16', new Float32Array(v)) }]);
  const config = 'merge_method: linear\nmodels:\n  - model: a\n  - model: b\n';
  const wasm = await pkg.init({ backend: 'wasm' });
  const js = await pkg.init({ backend: 'js' });
  try {
    for (const chunkSize of [4 * 13, 1 << 20]) {
      const merged = async (mk: pkg.MergeKernels) => new Uint8Array(await (await mergeModels({ config, inputs: { a: one(av), b: one(bv) }, methods: TEST_METHODS, backend: mk, chunkSize })).blob!.arrayBuffer());
      const w = await merged(wasm);
      assert.equal(w, await merged(js), `chunk size ${chunkSize}: wasm and js give the same bytes`);
      // (a + b) / 2 = (i/8 − 2 + 3 − i/4) / 2 = 1/2 − i/16: exact in bfloat16 (8 significant bits) for i < 37.
      assert.equal(Array.from(pkg.decodeToFloat32('BF16', readSafetensors(w as Uint8Array<ArrayBuffer>).tensors.get('w')!.bytes)), av.map((_, i) => 0.5 - i / 16));
    }
    for (const [at, bad] of [[3, NaN], [19, Infinity], [36, -Infinity]] as const) {
      const v = bv.slice();
      v[at] = bad;
      for (const chunkSize of [4 * 13, 1 << 20]) {
        await rejects(() => mergeModels({ config, inputs: { a: one(av), b: one(v) }, methods: TEST_METHODS, backend: wasm, chunkSize }), 'NON_FINITE', ['model "b"', `${bad} at index ${at}`]);
      }
    }
  } finally {
    wasm.dispose();
    js.dispose();
  }
});

test('the command as a process: ties and dare_linear on tiny files equal values worked by hand', async () => {
  const dir = join(root, 'hand');
  await mkdir(dir, { recursive: true });
  const f32 = (name: string, values: number[]) => st([[name, 'F32', [values.length], values]]);
  const numbers = async (out: string, name: string) => Array.from(pkg.decodeToFloat32('F32', readSafetensors(new Uint8Array(await readFile(join(dir, out, 'model.safetensors')))).tensors.get(name)!.bytes));
  const f = Math.fround;

  // TIES, mergekit semantics (trim to exactly k = int(0.5·4) = 2 entries, sign of Σ w·δ,
  // Σ agreeing w·δ / Σ agreeing w), λ = 1:
  //   base = [1, 1, 1, 1]
  //   δa = [3, -1, 0.5, -2]  (weight 1)   → top 2 by |δ|: [3, 0, 0, -2]   → w·δ = [3, 0, 0, -2]
  //   δb = [-1, 2, 0.25, -4] (weight 0.5) → top 2 by |δ|: [0, 2, 0, -4]   → w·δ = [0, 1, 0, -2]
  //   Σ w·δ = [3, 1, 0, -4] → signs [+, +, + (a zero total elects +), −]
  //   entry 0: only a agrees (0 never agrees): 3 / 1 = 3            → 1 + 3 = 4
  //   entry 1: only b agrees: 1 / 0.5 = 2                            → 1 + 2 = 3
  //   entry 2: nothing agrees: 0 / (divisor 0 → 1) = 0               → 1
  //   entry 3: both agree: (−2 − 2) / (1 + 0.5) = −8/3               → 1 − 8/3 = −5/3
  await writeFile(join(dir, 'base.safetensors'), f32('w', [1, 1, 1, 1]));
  await writeFile(join(dir, 'a.safetensors'), f32('w', [4, 0, 1.5, -1]));
  await writeFile(join(dir, 'b.safetensors'), f32('w', [0, 3, 1.25, -3]));
  await writeFile(join(dir, 'ties.yml'), `merge_method: ties
base_model: base.safetensors
parameters:
  semantics: mergekit
models:
  - model: a.safetensors
    parameters: { weight: 1, density: 0.5 }
  - model: b.safetensors
    parameters: { weight: 0.5, density: 0.5 }
`);
  let r = await run(['merge', join(dir, 'ties.yml'), '-o', join(dir, 'ties'), '--backend', 'wasm', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(await numbers('ties', 'w'), [4, 3, 1, f(1 + f(-4 / 1.5))]);

  // dare_linear, paper rescale (÷ density), seed 1, tensor "w": the masks come from
  // draw(key(1, "w\0" + model index), i) < density·2^24 (test/suites/oracles.ts works them out):
  //   model 0 (density 0.5):  draws 11811118, 2686504, 1710478, 14459704 vs 8388608 → mask [0, 1, 1, 0]
  //   model 1 (density 0.75): draws 11822884, 7941295, 6972781, 13604135 vs 12582912 → mask [1, 1, 1, 0]
  //   base = [0.5, -1, 2, 0]; δ0 = [1, 2, -1, 0.5] (weight 1); δ1 = [-0.375, 0.75, 0.75, 1.5] (weight 0.5)
  //   model 0: mask·δ0/0.5 = [0, 4, -2, 0]; model 1: 0.5·mask·δ1/0.75 = [-0.25, 0.5, 0.5, 0]
  //   base + Σ = [0.25, 3.5, 0.5, 0]
  await writeFile(join(dir, 'base2.safetensors'), f32('w', [0.5, -1, 2, 0]));
  await writeFile(join(dir, 'c.safetensors'), f32('w', [1.5, 1, 1, 0.5]));
  await writeFile(join(dir, 'd.safetensors'), f32('w', [0.125, -0.25, 2.75, 1.5]));
  await writeFile(join(dir, 'dare.yml'), `merge_method: dare_linear
base_model: base2.safetensors
parameters:
  semantics: paper
models:
  - model: c.safetensors
    parameters: { weight: 1, density: 0.5 }
  - model: d.safetensors
    parameters: { weight: 0.5, density: 0.75 }
`);
  r = await run(['merge', join(dir, 'dare.yml'), '-o', join(dir, 'dare'), '--backend', 'wasm', '--seed', '1', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(await numbers('dare', 'w'), [0.25, 3.5, 0.5, 0]);
});

test('an output path below a file, or in a folder without write permission: IO_ERROR naming the path, one line from the CLI', async () => {
  const dir = join(root, 'bad-out');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'a-file'), 'not a folder');
  await writeFile(join(dir, 'x.safetensors'), st([['w', 'F32', [2], [1, 2]]]));
  await writeFile(join(dir, 'linear.yml'), 'merge_method: linear\nmodels:\n  - model: x.safetensors\n  - model: x.safetensors\n');
  const below = join(dir, 'a-file', 'out');
  const err = await rejects(() => mergeModelFiles({ configPath: join(dir, 'linear.yml'), outDir: below, methods: pkg.METHODS }), 'IO_ERROR', [join(dir, 'a-file'), 'is a file, not a folder']);
  assert.is(err.argument, 'output');
  const r = await run(['merge', join(dir, 'linear.yml'), '-o', below, '--backend', 'js', '--no-progress']);
  assert.is(r.code, 1, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.match(r.stderr, /^merge-kernels: output: cannot create the folder .*ENOTDIR/);
  if (typeof process.getuid === 'function' && process.getuid() === 0) return; // root writes anywhere
  const locked = join(dir, 'locked');
  await mkdir(locked, { mode: 0o555 });
  await rejects(() => mergeModelFiles({ configPath: join(dir, 'linear.yml'), outDir: locked, methods: pkg.METHODS }), 'IO_ERROR', ['permission denied']);
});

test('a loadable output folder: shards and their index, config.json with torch_dtype, generation_config.json, the tokenizer of tokenizer_source, a model card', async () => {
  const dir = join(root, 'folder');
  for (const m of ['base', 'a']) await mkdir(join(dir, m), { recursive: true });
  // Every entry of base is 1, of a 2, of b 3: task_arithmetic with weights 1 and 0.5 gives
  // 1 + 1·(2 − 1) + 0.5·(3 − 1) = 3 everywhere, exact in float16.
  const tensors = (v: number) => st([
    ['model.embed_tokens.weight', 'BF16', [4, 2], Array(8).fill(v)], ['model.layers.0.w', 'BF16', [2, 2], Array(4).fill(v)],
    ['model.layers.1.w', 'BF16', [2, 2], Array(4).fill(v)], ['model.norm.weight', 'BF16', [2], Array(2).fill(v)], ['lm_head.weight', 'BF16', [4, 2], Array(8).fill(v)],
  ]);
  const baseConfig = { architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: 2, hidden_size: 2, vocab_size: 4, torch_dtype: 'bfloat16' };
  await writeFile(join(dir, 'base', 'model.safetensors'), tensors(1));
  await writeFile(join(dir, 'base', 'config.json'), JSON.stringify(baseConfig));
  await writeFile(join(dir, 'base', 'generation_config.json'), '{"bos_token_id": 1, "eos_token_id": 2}\n');
  await writeFile(join(dir, 'base', 'tokenizer.json'), '{"the": "base tokenizer"}');
  await writeFile(join(dir, 'base', 'tokenizer_config.json'), '{"model_max_length": 8}');
  await writeFile(join(dir, 'base', 'special_tokens_map.json'), '{}');
  await writeFile(join(dir, 'a', 'model.safetensors'), tensors(2));
  await writeFile(join(dir, 'a', 'config.json'), JSON.stringify({ ...baseConfig, name_or_path: 'a' }));
  await writeFile(join(dir, 'a', 'tokenizer.json'), '{"the": "tokenizer of a"}');
  await writeFile(join(dir, 'a', 'tokenizer_config.json'), '{"model_max_length": 16}');
  await writeFile(join(dir, 'b.safetensors'), tensors(3));
  const config = (extra: string) => `merge_method: task_arithmetic
base_model: base
models:
  - model: a
    parameters: {weight: 1}
  - model: b.safetensors
    parameters: {weight: 0.5}
out_dtype: float16
${extra}`;
  await writeFile(join(dir, 'tok-a.yml'), config('tokenizer_source: a\n'));
  const out = join(dir, 'out');
  const r = await cli(['merge', join(dir, 'tok-a.yml'), out, '--max-shard-size', '20', '--backend', 'wasm', '--no-progress'], pkg.METHODS);
  assert.is(r.code, 0, r.stderr);
  const names = (await readdir(out)).sort();
  const shards = names.filter((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n));
  // 52 bytes of float16 in shards of at most 20 bytes (embed 16, layers 8 + 8, norm 4, lm_head 16).
  assert.ok(shards.length >= 3, names.join(' '));
  assert.equal(names, [...shards, 'README.md', 'config.json', 'generation_config.json', 'mergekit_config.yml', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json'].sort());
  assert.equal((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'no temporary folder left next to the output');
  // The index maps every tensor to the shard that holds it; the reader loads every shard.
  const index = pkg.parseShardIndex(await readFile(join(out, 'model.safetensors.index.json'), 'utf8'));
  assert.is(index.metadata.total_size, 52);
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [4, 2], 'model.layers.0.w': [2, 2], 'model.layers.1.w': [2, 2], 'model.norm.weight': [2], 'lm_head.weight': [4, 2] };
  assert.equal([...index.weightMap.keys()].sort(), Object.keys(shapes).sort());
  let seen = 0;
  for (const shard of shards) {
    const bytes = new Uint8Array(await readFile(join(out, shard)));
    const file = readSafetensors(bytes);
    assert.ok(bytes.length - 8 - new DataView(bytes.buffer).getUint32(0, true) <= 20 || file.tensors.size === 1, `${shard} over the limit`);
    for (const [name, t] of file.tensors) {
      assert.is(index.weightMap.get(name), shard, name);
      assert.equal(t.shape, shapes[name], name);
      assert.is(t.dtype, 'F16', name);
      assert.ok(Array.from(pkg.decodeToFloat32('F16', t.bytes)).every((v) => v === 3), name);
      seen++;
    }
  }
  assert.is(seen, 5);
  // config.json is the base's with the output dtype; generation_config.json the base's; the tokenizer a's.
  assert.equal(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')), { ...baseConfig, torch_dtype: 'float16' });
  assert.is(await readFile(join(out, 'generation_config.json'), 'utf8'), '{"bos_token_id": 1, "eos_token_id": 2}\n');
  assert.is(await readFile(join(out, 'tokenizer.json'), 'utf8'), '{"the": "tokenizer of a"}');
  assert.is(await readFile(join(out, 'tokenizer_config.json'), 'utf8'), '{"model_max_length": 16}');
  const card = await readFile(join(out, 'README.md'), 'utf8');
  assert.match(card, /^---\n[^]*tags:\n- mergekit\n- merge\n[^]*---\n# out\n/);
  assert.match(card, /merged using the task_arithmetic merge method using base as a base\./);
  assert.match(card, /\* a\n\* b\.safetensors\n/);
  assert.ok(card.includes('```yaml\n' + config('tokenizer_source: a\n').trimEnd() + '\n```\n'), card);

  // Without tokenizer_source: the base's tokenizer; the dtype of the inputs when out_dtype is absent.
  await writeFile(join(dir, 'plain.yml'), config('').replace('out_dtype: float16\n', ''));
  const plain = join(dir, 'plain');
  assert.is((await cli(['merge', join(dir, 'plain.yml'), plain, '--backend', 'js', '--no-progress', '--no-write-model-card'], pkg.METHODS)).code, 0);
  assert.equal((await readdir(plain)).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
  assert.is(await readFile(join(plain, 'tokenizer.json'), 'utf8'), '{"the": "base tokenizer"}');
  assert.is(JSON.parse(await readFile(join(plain, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  assert.is((await cli(['merge', join(dir, 'plain.yml'), join(dir, 'bare'), '--backend', 'js', '--no-progress', '--no-copy-tokenizer'], pkg.METHODS)).code, 0);
  assert.equal((await readdir(join(dir, 'bare'))).sort(), ['README.md', 'config.json', 'generation_config.json', 'mergekit_config.yml', 'model.safetensors']);

  // Into a folder that holds an earlier sharded merge and a file of the user's: the stale shards
  // and index go, the user's file stays.
  await writeFile(join(plain, 'model-00001-of-00002.safetensors'), 'stale');
  await writeFile(join(plain, 'model.safetensors.index.json'), '{}');
  await writeFile(join(plain, 'notes.txt'), 'mine');
  assert.is((await cli(['merge', join(dir, 'plain.yml'), plain, '--backend', 'js', '--no-progress'], pkg.METHODS)).code, 0);
  assert.equal((await readdir(plain)).sort(), ['README.md', 'config.json', 'generation_config.json', 'mergekit_config.yml', 'model.safetensors', 'notes.txt', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);

  // tokenizer_source: union is refused; a model without tokenizer files is MISSING_FILE; nothing is written.
  await writeFile(join(dir, 'union.yml'), config('tokenizer_source: union\n'));
  let bad = await cli(['merge', join(dir, 'union.yml'), join(dir, 'no-1'), '--backend', 'js', '--no-progress'], pkg.METHODS);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /tokenizer_source: union .* is not supported \(line 9\): use base, or a model of the config/);
  await writeFile(join(dir, 'tok-b.yml'), config('tokenizer_source: b.safetensors\n'));
  await rejects(() => mergeModelFiles({ configPath: join(dir, 'tok-b.yml'), outDir: join(dir, 'no-2') }), 'MISSING_FILE', ['tokenizer_source', '"b.safetensors" has no tokenizer files']);
  await writeFile(join(dir, 'tok-x.yml'), config('tokenizer_source: elsewhere\n'));
  bad = await cli(['merge', join(dir, 'tok-x.yml'), join(dir, 'no-3'), '--backend', 'js', '--no-progress'], pkg.METHODS);
  assert.match(bad.stderr, /tokenizer_source: "elsewhere" is not a model of the config/);
  assert.equal((await readdir(dir)).filter((n) => n.startsWith('no-') || n.endsWith('.tmp')), []);
});

test("mergekit's examples/orcamini-platy-44layer.yml as written (passthrough over slices) on generated 40-layer models: 44 layers renumbered, config.json with 44 layers and float16", async () => {
  const dir = join(root, 'frankenmerge');
  // Layer i of model m holds 100·m + i (m = 1 for orca_mini, 2 for Platypus2); 40 layers each.
  const generated = (m: number) => st([
    ['model.embed_tokens.weight', 'F32', [2, 2], Array(4).fill(100 * m + 90)],
    ...Array.from({ length: 40 }, (_, i): [string, 'F32', number[], number[]] => [`model.layers.${i}.mlp.down_proj.weight`, 'F32', [2], [100 * m + i, 100 * m + i]]),
    ['model.norm.weight', 'F32', [2], [100 * m + 91, 100 * m + 91]],
    ['lm_head.weight', 'F32', [2, 2], Array(4).fill(100 * m + 92)],
  ]);
  for (const [m, path] of [[1, 'psmathur/orca_mini_v3_13b'], [2, 'garage-bAInd/Platypus2-13B']] as const) {
    await mkdir(join(dir, path), { recursive: true });
    await writeFile(join(dir, path, 'model.safetensors'), generated(m));
    await writeFile(join(dir, path, 'config.json'), JSON.stringify({ model_type: 'llama', num_hidden_layers: 40, torch_dtype: 'float32' }));
  }
  // The example, verbatim.
  await writeFile(join(dir, 'orcamini-platy-44layer.yml'), `slices:
  - sources:
    - model: psmathur/orca_mini_v3_13b
      layer_range: [0, 24]
  - sources:
    - model: garage-bAInd/Platypus2-13B
      layer_range: [20, 40]
merge_method: passthrough
dtype: float16
`);
  const out = join(dir, 'out');
  const r = await run(['merge', join(dir, 'orcamini-platy-44layer.yml'), out, '--backend', 'wasm', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  const file = readSafetensors(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
  assert.is(file.tensors.size, 44 + 3);
  for (let i = 0; i < 44; i++) {
    const t = file.tensors.get(`model.layers.${i}.mlp.down_proj.weight`)!;
    assert.is(t.dtype, 'F16');
    assert.equal(t.shape, [2]);
    // Output layers 0–23: orca_mini's 0–23; 24–43: Platypus2's 20–39.
    assert.equal(Array.from(pkg.decodeToFloat32('F16', t.bytes)), Array(2).fill(i < 24 ? 100 + i : 200 + (i - 24) + 20), `layer ${i}`);
  }
  assert.equal(Array.from(pkg.decodeToFloat32('F16', file.tensors.get('model.embed_tokens.weight')!.bytes)), [190, 190, 190, 190]);
  assert.equal(Array.from(pkg.decodeToFloat32('F16', file.tensors.get('lm_head.weight')!.bytes)), [292, 292, 292, 292]);
  assert.equal(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')), { model_type: 'llama', num_hidden_layers: 44, torch_dtype: 'float16' });
  assert.match(await readFile(join(out, 'README.md'), 'utf8'), /passthrough merge method\.\n[^]*\* psmathur\/orca_mini_v3_13b\n\* garage-bAInd\/Platypus2-13B\n/);
});

test("--max-shard-size takes mergekit's K, M and B (thousand, million, billion) as well as KB, MiB, GB", () => {
  assert.is(parseSize('5B', '--max-shard-size'), 5e9);
  assert.is(parseSize('500M', '--max-shard-size'), 5e8);
  assert.is(parseSize('100k', '--max-shard-size'), 1e5);
  assert.is(parseSize('2MiB', '--chunk-size'), 2 ** 21);
  assert.is(parseSize('1000000', '--max-shard-size'), 1e6);
});

test('SIGINT or SIGTERM while an output file is being written deletes its temporary file, then ends the process as the signal would', async () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const dir = join(root, `signal-${signal}`);
    // A writer that stops half way: the state a merge is in when the user presses Ctrl-C.
    const script = `import { folderOutput } from 'merge-kernels/node';
const out = folderOutput(${JSON.stringify(dir)});
const f = await out.create('model.safetensors');
await f.write(new Uint8Array(1024));
console.log('ready');
setInterval(() => {}, 1000);`;
    const child = execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), timeout: 60_000 });
    const ready = await new Promise<boolean>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => { if (String(d).includes('ready')) resolve(true); });
      child.on('exit', () => resolve(false));
    });
    assert.ok(ready, 'the writer started');
    const temporary = (await readdir(root)).filter((f) => f.startsWith(`.signal-${signal}.`) && f.endsWith('.tmp'));
    assert.is(temporary.length, 1, 'a temporary folder next to the output while writing');
    assert.equal(await readdir(join(root, temporary[0]!)), ['model.safetensors']);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    child.kill(signal);
    assert.is(await exited, signal, 'ended by the signal');
    assert.equal((await readdir(root)).filter((f) => f.includes(`signal-${signal}`)), [], `${signal}: nothing left behind, no output folder`);
  }
});

// ---- LoRA extraction (extract-lora): small models whose differences are known low-rank matrices.

/** A seeded uniform stream in [-1, 1) (LCG): test data, not the method's. */
function stream(seed: number): () => number {
  let x = seed >>> 0;
  return () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x / 2 ** 31 - 1; };
}
const rand = (n: number, next: () => number, scale = 1) => Array.from({ length: n }, () => next() * scale);
function matmul(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const c = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) c[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
  return c;
}
const add = (x: number[], y: number[]) => x.map((v, i) => v + y[i]!);

const next = stream(7);
const Q_BASE = rand(24, next), Q_BIAS = rand(6, next), DOWN_BASE = rand(24, next), EMBED = rand(20, next), HEAD = rand(20, next);
// q_proj [out 6, in 4]: a rank-2 delta U·V plus noise of 1e-4; down_proj [4, 6]: a rank-1 delta.
const Q_DELTA = add(matmul(rand(12, next), rand(8, next), 6, 2, 4), rand(24, next, 1e-4));
const DOWN_DELTA = matmul(rand(4, next), rand(6, next), 4, 1, 6);
const BIAS_DELTA = [0.5, 0, -0.25, 0, 0, 1];
const loraBase = st([
  ['model.embed_tokens.weight', 'F32', [5, 4], EMBED],
  ['model.layers.0.self_attn.q_proj.weight', 'F32', [6, 4], Q_BASE],
  ['model.layers.0.self_attn.q_proj.bias', 'F32', [6], Q_BIAS],
  ['model.layers.0.mlp.down_proj.weight', 'F32', [4, 6], DOWN_BASE],
  ['model.norm.weight', 'F32', [4], [1, 1, 1, 1]],
  ['lm_head.weight', 'F32', [5, 4], HEAD],
]);
const loraModel = st([
  ['model.embed_tokens.weight', 'F32', [5, 4], EMBED.map((v) => v + 0.5)],
  ['model.layers.0.self_attn.q_proj.weight', 'F32', [6, 4], add(Q_BASE, Q_DELTA)],
  ['model.layers.0.self_attn.q_proj.bias', 'F32', [6], add(Q_BIAS, BIAS_DELTA)],
  ['model.layers.0.mlp.down_proj.weight', 'F32', [4, 6], add(DOWN_BASE, DOWN_DELTA)],
  ['model.norm.weight', 'F32', [4], [1, 2, 1, 2]],
  ['lm_head.weight', 'F32', [5, 4], HEAD],
]);

async function adapterOf(result: { files: Array<{ name: string; blob?: Blob }> }) {
  const bytes = new Uint8Array(await result.files.find((f) => f.name === 'adapter_model.safetensors')!.blob!.arrayBuffer());
  const { tensors } = readSafetensors(bytes);
  const get = (name: string) => {
    const t = tensors.get(name);
    assert.ok(t, `adapter has ${name} (has ${[...tensors.keys()].join(', ')})`);
    return { shape: t!.shape, data: Array.from(decodeToFloat32(t!.dtype, t!.bytes)) };
  };
  const config = JSON.parse(await result.files.find((f) => f.name === 'adapter_config.json')!.blob!.text()) as Record<string, unknown>;
  return { names: [...tensors.keys()], get, config };
}

function assertClose(actual: number[], expected: number[], tol: number, what: string) {
  assert.is(actual.length, expected.length, `${what}: length`);
  const err = Math.max(...actual.map((v, i) => Math.abs(v - expected[i]!)));
  assert.ok(err <= tol, `${what}: max error ${err} > ${tol}`);
}

test('extract-lora API: lora_B·lora_A reproduces a rank-2 delta; PEFT names and shapes; embeddings and norms at full rank; bias as lora_B.bias', async () => {
  const mk = await pkg.init({ backend: 'wasm' });
  try {
    const result = await extractLora({ base: loraBase, model: loraModel, rank: 2, backend: mk, baseModelName: 'org/base' });
    const { names, get, config } = await adapterOf(result);
    const q = 'base_model.model.model.layers.0.self_attn.q_proj', down = 'base_model.model.model.layers.0.mlp.down_proj';
    assert.equal(names.sort(), [
      `${down}.lora_A.weight`, `${down}.lora_B.weight`, 'base_model.model.lm_head.weight', 'base_model.model.model.embed_tokens.weight',
      `${q}.lora_A.weight`, `${q}.lora_B.bias`, `${q}.lora_B.weight`, 'base_model.model.model.norm.weight',
    ].sort());
    const qa = get(`${q}.lora_A.weight`), qb = get(`${q}.lora_B.weight`);
    assert.equal(qa.shape, [2, 4], 'lora_A is [r, in]');
    assert.equal(qb.shape, [6, 2], 'lora_B is [out, r]');
    // The rank-2 part is kept; what is left is the 1e-4 noise (its best rank-2 residual is smaller still).
    assertClose(matmul(qb.data, qa.data, 6, 2, 4), Q_DELTA, 5e-4, 'q_proj: lora_B·lora_A ≈ Δ');
    const da = get(`${down}.lora_A.weight`), db = get(`${down}.lora_B.weight`);
    assert.equal(da.shape, [2, 6]);
    assert.equal(db.shape, [4, 2]);
    assertClose(matmul(db.data, da.data, 4, 2, 6), DOWN_DELTA, 1e-5, 'down_proj (rank 1 delta, rank 2 kept)');
    assertClose(get(`${q}.lora_B.bias`).data, BIAS_DELTA, 1e-6, 'bias difference');
    assertClose(get('base_model.model.model.norm.weight').data, [1, 2, 1, 2], 0, 'norm: the fine-tuned tensor at full rank');
    assertClose(get('base_model.model.model.embed_tokens.weight').data, EMBED.map((v) => Math.fround(v + 0.5)), 0, 'embedding at full rank');
    assert.is(config.peft_type, 'LORA');
    assert.is(config.task_type, 'CAUSAL_LM');
    assert.is(config.r, 2);
    assert.is(config.lora_alpha, 2);
    assert.is(config.base_model_name_or_path, 'org/base');
    assert.equal(config.target_modules, ['down_proj', 'q_proj']);
    assert.equal(config.modules_to_save, ['embed_tokens', 'lm_head', 'norm']);
    assert.equal(config.rank_pattern, {});
    assert.is(config.lora_bias, true);
    const qr = result.tensors.find((t) => t.name.endsWith('q_proj.weight'))!;
    assert.is(qr.rank, 2);
    assert.ok(qr.energy! > 0.99999 && qr.energy! <= 1, `q_proj energy ${qr.energy}`);
    // Skipping the undecomposable: the norm goes, the embeddings stay (mergekit keeps them in modules_to_save).
    const skipped = await extractLora({ base: loraBase, model: loraModel, rank: 1, backend: mk, skipUndecomposable: true });
    const s = await adapterOf(skipped);
    assert.not.ok(s.names.includes('base_model.model.model.norm.weight'));
    assert.equal(s.config.modules_to_save, ['embed_tokens', 'lm_head']);
    assert.equal(s.get(`${q}.lora_A.weight`).shape, [1, 4]);
  } finally {
    mk.dispose();
  }
});

test('extract-lora API: an energy threshold picks the smallest rank keeping that share (singular values 3, 2, 1 by hand)', async () => {
  // Δ [3, 4] with one entry per row and column: singular values 3, 2, 1; energy 9/14, 13/14, 1.
  const delta = [0, 3, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0];
  const zero = new Array<number>(12).fill(0), w = new Array<number>(12).fill(0.25);
  const rank1 = [...matmul([1, 2, 3], [1, 0, -1, 0], 3, 1, 4)];
  const b = st([['a.proj.weight', 'F32', [3, 4], w], ['b.proj.weight', 'F32', [3, 4], zero]]);
  const m = st([['a.proj.weight', 'F32', [3, 4], add(w, delta)], ['b.proj.weight', 'F32', [3, 4], rank1]]);
  const mk = await pkg.init({ backend: 'wasm' });
  try {
    for (const [threshold, expected] of [[0.6, 1], [0.9, 2], [0.95, 3]] as const) {
      const r = await extractLora({ base: b, model: m, rank: threshold, backend: mk });
      const a = r.tensors.find((t) => t.name === 'a.proj.weight')!;
      assert.is(a.rank, expected, `threshold ${threshold}`);
      assert.ok(Math.abs(a.energy! - [9 / 14, 13 / 14, 1][expected - 1]!) < 1e-5, `energy ${a.energy}`);
      const { get, config } = await adapterOf(r);
      assert.is(config.r, expected);
      // b.proj's delta has rank 1: every threshold keeps rank 1, listed in rank_pattern when r > 1.
      assert.equal(config.rank_pattern, expected === 1 ? {} : { 'b.proj': 1 });
      assert.equal(config.alpha_pattern, config.rank_pattern);
      assert.equal(get('base_model.model.b.proj.lora_A.weight').shape, [1, 4]);
      // The best rank-j approximation keeps the j largest entries (its singular triplets) by hand.
      const best = delta.map((v) => (v > 3 - expected ? v : 0));
      assertClose(matmul(get('base_model.model.a.proj.lora_B.weight').data, get('base_model.model.a.proj.lora_A.weight').data, 3, expected, 4), best, 1e-5, `rank ${expected}`);
    }
  } finally {
    mk.dispose();
  }
});

test('extract-lora API: bad input is a MergeKernelsError naming it', async () => {
  const mk = await pkg.init({ backend: 'js' });
  try {
    for (const rank of [0, -1, 1.5, 1, Number.NaN, Infinity, '2' as unknown as number]) {
      if (rank === 1) continue;
      await rejects(() => extractLora({ base: loraBase, model: loraModel, rank, backend: mk }), 'INVALID_OPTION', ['rank']);
    }
    const other = st([['model.layers.0.self_attn.q_proj.weight', 'F32', [4, 6], Q_BASE]]);
    const one = st([['model.layers.0.self_attn.q_proj.weight', 'F32', [6, 4], Q_BASE]]);
    await rejects(() => extractLora({ base: other, model: one, rank: 2, backend: mk }), 'SHAPE_MISMATCH', ['q_proj', '[4, 6]', '[6, 4]']);
    await rejects(() => extractLora({ base: st([['x.weight', 'F32', [2, 2], [1, 2, 3, 4]]]), model: one, rank: 2, backend: mk }), 'MISSING_TENSOR', ['q_proj']);
  } finally {
    mk.dispose();
  }
});

test('extract-lora CLI: writes the adapter folder atomically, one energy line per weight; bad input exits 1 and leaves nothing', async () => {
  await mkdir(join(root, 'lora'), { recursive: true });
  await writeFile(join(root, 'lora', 'base.safetensors'), loraBase);
  await writeFile(join(root, 'lora', 'model.safetensors'), loraModel);
  const out = join(root, 'lora', 'adapter');
  const r = await cli(['extract-lora', '--base', join(root, 'lora', 'base.safetensors'), '--model', join(root, 'lora', 'model.safetensors'), '--rank', '0.999', '-o', out, '--backend', 'wasm', '--no-progress']);
  assert.is(r.code, 0, r.stderr);
  assert.equal((await readdir(out)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  assert.match(r.stdout, /model\.layers\.0\.self_attn\.q_proj\.weight\s+\[6, 4\]\s+rank 2\s+energy 100\.00%/);
  assert.match(r.stdout, /model\.layers\.0\.mlp\.down_proj\.weight\s+\[4, 6\]\s+rank 1\s+energy 100\.00%/);
  const config = JSON.parse(await readFile(join(out, 'adapter_config.json'), 'utf8'));
  assert.is(config.base_model_name_or_path, join(root, 'lora', 'base.safetensors'));
  assert.equal(config.rank_pattern, { 'model.layers.0.mlp.down_proj': 1 });
  const bad = await cli(['extract-lora', '--base', join(root, 'lora', 'base.safetensors'), '--model', join(root, 'lora', 'model.safetensors'), '--rank', '0', '-o', join(root, 'lora', 'bad'), '--backend', 'js', '--no-progress']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /rank/);
  const usage = await cli(['extract-lora', '--base', 'x', '--rank', '2', '-o', 'y']);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /--model/);
  assert.equal((await readdir(join(root, 'lora'))).sort(), ['adapter', 'base.safetensors', 'model.safetensors'], 'no output or temporary folder left by the failures');
});

test.run();
