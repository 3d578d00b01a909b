// mergekit configs and the streaming merge runner over in-memory files (ArrayBuffer, Uint8Array,
// Blob, shards, a custom ModelSource) with Blob output. Parameter resolution (filters, gradients,
// layer positions) is checked against values worked out by hand from mergekit's rules; the
// runner with the small methods of test/merge-methods.ts, whose results are written out here.
// No file system: the same suite runs in Node, Deno and Chromium (test/node/ covers folders).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { allClose, rejects, rng } from '../util.ts';
import { TEST_METHODS, linear } from '../merge-methods.ts';
import {
  METHODS, blobOutput, checkConfigAgainst, decodeToFloat32, encodeFromFloat32, evaluateSetting, layerPositions, mergeModels, parseMergeConfig,
  parseShardIndex, readSafetensors, resolveTensorParams, writeSafetensors,
  type ByteSource, type GradientSetting, type StepSetting, type MergeModelsOptions, type ModelSource, type OutputTarget, type SafetensorsDtype,
} from 'merge-kernels';

type T = [name: string, dtype: SafetensorsDtype, shape: number[], values: number[]];

/** A safetensors file holding float tensors (encoded from the values) and I64 tensors. */
function model(tensors: T[]): Uint8Array<ArrayBuffer> {
  return writeSafetensors(tensors.map(([name, dtype, shape, values]) => {
    if (dtype === 'I64') return { name, dtype, shape, data: new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer) };
    return { name, dtype, shape, data: encodeFromFloat32(dtype as 'F32' | 'F16' | 'BF16', new Float32Array(values)) };
  }));
}

async function read(blob: Blob | undefined) {
  assert.ok(blob instanceof Blob, 'the result has a Blob');
  return readSafetensors(new Uint8Array(await blob!.arrayBuffer()));
}

function values(file: ReturnType<typeof readSafetensors>, name: string): number[] {
  const t = file.tensors.get(name);
  assert.ok(t, `tensor ${name} in the output`);
  const { dtype, bytes } = t!;
  if (dtype === 'F32') return Array.from(new Float32Array(bytes.slice().buffer));
  if (dtype === 'I64') return Array.from(new BigInt64Array(bytes.slice().buffer), Number);
  const u = new Uint16Array(bytes.slice().buffer);
  if (dtype === 'BF16') return Array.from(u, (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]!);
  // F16 → the values used here are exact halves: decode normal numbers by hand.
  return Array.from(u, (h) => {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
  });
}

const LINEAR_YAML = `merge_method: linear
models:
  - model: a
    parameters:
      weight: 1
  - model: b
    parameters:
      weight: [1, 3]   # a gradient over the two layers
`;

export default function (h: Harness): void {
  const cfg = suite(`${h.runtime} / ${h.backend} / mergekit config`);

  cfg('parses a TIES-style config; the base listed under models is the base, not a model', () => {
    const c = parseMergeConfig(`
merge_method: ties
base_model: base
models:
  - model: base
  - model: a
    parameters: { density: 0.5, weight: 0.7 }
  - model: b
    parameters:
      density: [1, 0.5]
      weight: [{ filter: mlp, value: 0.5 }, { value: 1 }]
parameters:
  normalize: true
dtype: bfloat16
out_dtype: torch.float16
`);
    assert.is(c.mergeMethod, 'ties');
    assert.is(c.baseModel, 'base');
    assert.equal(c.models.map((m) => m.model), ['a', 'b']);
    assert.equal(c.models[0]!.parameters.density, { kind: 'scalar', value: 0.5 });
    assert.equal(c.models[1]!.parameters.density, { kind: 'gradient', values: [1, 0.5] });
    assert.equal(c.models[1]!.parameters.weight, { kind: 'filters', conditions: [
      { filter: 'mlp', value: { kind: 'scalar', value: 0.5 } }, { filter: undefined, value: { kind: 'scalar', value: 1 } }] });
    assert.equal(c.parameters.normalize, { kind: 'scalar', value: true });
    assert.is(c.dtype, 'bfloat16');
    assert.is(c.outDtype, 'float16');
    // The same config as a plain object.
    const o = parseMergeConfig({ merge_method: 'linear', models: [{ model: 'x', parameters: { weight: 2 } }] });
    assert.equal(o.models, [{ model: 'x', parameters: { weight: { kind: 'scalar', value: 2 } } }]);
    assert.is(o.baseModel, undefined);
  });

  cfg('every unsupported key is an error naming the key and its line', async () => {
    const base = 'merge_method: linear\nmodels:\n  - model: a\n';
    for (const key of ['modules', 'tokenizer', 'chat_template', 'allow_crimes']) {
      await rejects(() => parseMergeConfig(`${base}${key}: x\n`), 'INVALID_OPTION', [`"${key}"`, 'line 4']);
    }
    await rejects(() => parseMergeConfig(`${base}    layer_range: [0, 4]\n`), 'INVALID_OPTION', ['"layer_range"', 'line 4']);
    await rejects(() => parseMergeConfig(`${base}    parameters:\n      weight: [{ filter: mlp, value: 1, extra: 2 }]\n`), 'INVALID_OPTION', ['"extra"', 'line 5']);
    await rejects(() => parseMergeConfig(`${base}merge_method: ties\n`), 'INVALID_OPTION', ['line 4']);
    await rejects(() => parseMergeConfig('merge_method: [\n'), 'INVALID_OPTION', ['not valid YAML']);
    await rejects(() => parseMergeConfig('models:\n  - model: a\n'), 'INVALID_OPTION', ['merge_method']);
    await rejects(() => parseMergeConfig('merge_method: linear\n'), 'INVALID_OPTION', ['models']);
    await rejects(() => parseMergeConfig(`${base}    parameters:\n      weight: { filter: mlp, value: 1 }\n`), 'INVALID_OPTION', ['written as a list']);
    await rejects(() => parseMergeConfig(`${base}dtype: int8\n`), 'INVALID_OPTION', ['dtype', 'line 4']);
    await rejects(() => parseMergeConfig(`merge_method: ties\nbase_model: a\nmodels:\n  - model: a\n`), 'INVALID_OPTION', ['nothing to merge']);
    await rejects(() => parseMergeConfig(`merge_method: ties\nbase_model: a\nmodels:\n  - model: a\n    parameters: { weight: 1 }\n  - model: b\n`), 'INVALID_OPTION', ['base model "a" has parameters']);
    await rejects(() => parseMergeConfig(42 as unknown as string), 'INVALID_TYPE', ['config']);
  });

  cfg('checks parameters against the method: unknown names, types, base model', async () => {
    const check = (yaml: string) => checkConfigAgainst(parseMergeConfig(yaml), TEST_METHODS);
    assert.is(check(LINEAR_YAML).name, 'linear');
    await rejects(() => check('merge_method: nope\nmodels:\n  - model: a\n'), 'INVALID_OPTION', ['"nope"', 'linear, centered']);
    await rejects(() => check('merge_method: linear\nmodels:\n  - model: a\nparameters:\n  density: 0.5\n'), 'INVALID_OPTION', ['parameters.density', 'weight']);
    await rejects(() => check('merge_method: linear\nmodels:\n  - model: a\n    parameters: { normalize: false }\n'), 'INVALID_OPTION', ['models[0].parameters.normalize', 'global parameter']);
    await rejects(() => check('merge_method: linear\nmodels:\n  - model: a\n    parameters: { weight: heavy }\n'), 'INVALID_OPTION', ['models[0].parameters.weight', 'number']);
    await rejects(() => check('merge_method: linear\nmodels:\n  - model: a\nparameters:\n  normalize: [true, 1]\n'), 'INVALID_OPTION', ['parameters.normalize', 'boolean']);
    await rejects(() => check('merge_method: centered\nmodels:\n  - model: a\n'), 'INVALID_OPTION', ['base_model', 'needs']);
    await rejects(() => check('merge_method: linear\nbase_model: b\nmodels:\n  - model: a\n'), 'INVALID_OPTION', ['base_model', 'does not use']);
  });

  cfg('gradients interpolate over t as mergekit does; non-numeric lists step', () => {
    const g: GradientSetting = { kind: 'gradient', values: [0, 1, 0.5] };
    // t·(n−1) = 0.5 → halfway between 0 and 1; 1.5 → halfway between 1 and 0.5; t = 1 → the last.
    assert.is(evaluateSetting(g, 'x', 0), 0);
    assert.is(evaluateSetting(g, 'x', 0.25), 0.5);
    assert.is(evaluateSetting(g, 'x', 0.75), 0.75);
    assert.is(evaluateSetting(g, 'x', 1), 0.5);
    const s: StepSetting = { kind: 'steps', values: ['a', 'b', 'c'] };
    // index floor(t · 2): 0.49 → 0, 0.5 → 1, 0.99 → 1, 1 → 2.
    assert.equal([0.49, 0.5, 0.99, 1].map((t) => evaluateSetting(s, 'x', t)), ['a', 'b', 'b', 'c']);
  });

  cfg('layer positions: i / (n − 1) per layer stack, 0 outside the layers, 1 for a single layer', () => {
    const pos = layerPositions([
      'model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.1.self_attn.q_proj.weight',
      'model.layers.3.mlp.experts.7.w1.weight', 'model.layers.2.input_layernorm.weight', 'model.norm.weight', 'lm_head.weight',
      'vision.blocks.0.attn.weight', 'vision.blocks.1.attn.weight', 'solo.layers.0.weight', 'bias.0',
    ]);
    assert.is(pos.get('model.embed_tokens.weight'), 0);
    assert.is(pos.get('model.layers.0.mlp.up_proj.weight'), 0);
    assert.is(pos.get('model.layers.1.self_attn.q_proj.weight'), 1 / 3);
    assert.is(pos.get('model.layers.2.input_layernorm.weight'), 2 / 3);
    assert.is(pos.get('model.layers.3.mlp.experts.7.w1.weight'), 1); // the layer index, not the expert's
    assert.is(pos.get('model.norm.weight'), 0);
    assert.is(pos.get('lm_head.weight'), 0);
    assert.is(pos.get('vision.blocks.1.attn.weight'), 1);
    assert.is(pos.get('solo.layers.0.weight'), 1);
    assert.is(pos.get('bias.0'), 0); // a trailing number is not a layer
  });

  cfg('per-tensor parameters: model setting, then global, then default; unmatched filters fall through', () => {
    const c = parseMergeConfig(`
merge_method: linear
models:
  - model: a
    parameters:
      weight: [{ filter: mlp, value: 2 }]
  - model: b
    parameters:
      weight: [0, 1]
parameters:
  weight: 0.3
  normalize: [{ filter: self_attn, value: false }, { filter: "*", value: true }]
`);
    const spec = checkConfigAgainst(c, TEST_METHODS);
    // Three layers: layer 1 has t = 1/2, layer 2 has t = 1.
    const attn = resolveTensorParams(c, spec, 'model.layers.1.self_attn.q_proj.weight', 0.5);
    assert.equal(attn, { global: { normalize: false }, models: [{ weight: 0.3 }, { weight: 0.5 }] });
    const mlp = resolveTensorParams(c, spec, 'model.layers.2.mlp.up_proj.weight', 1);
    assert.equal(mlp, { global: { normalize: true }, models: [{ weight: 2 }, { weight: 1 }] });
    // No setting anywhere: the method's default.
    const d = parseMergeConfig('merge_method: linear\nmodels:\n  - model: a\n');
    assert.equal(resolveTensorParams(d, checkConfigAgainst(d, TEST_METHODS), 'w', 0), { global: { normalize: true }, models: [{ weight: 1 }] });
  });

  cfg('one rule for global parameters in a config and in mk.mergeTensors: a global value applies to every model that does not set its own', async () => {
    // linear without normalize: a sets weight 3, b has none, the global weight 0.5 is b's:
    //   3·[1, 2] + 0.5·[4, 8] = [5, 10]
    const yaml = 'merge_method: linear\nmodels:\n  - model: a\n    parameters: { weight: 3 }\n  - model: b\nparameters: { weight: 0.5, normalize: false }\n';
    const c = parseMergeConfig(yaml);
    assert.equal(resolveTensorParams(c, checkConfigAgainst(c, METHODS), 'w', 0), { global: { normalize: false }, models: [{ weight: 3 }, { weight: 0.5 }] });
    const x = new Float32Array([1, 2]), y = new Float32Array([4, 8]);
    const api = await h.mk.mergeTensors('linear', { models: [{ data: x, shape: [2] }, { data: y, shape: [2] }], parameters: { weight: 0.5, normalize: false }, modelParameters: [{ weight: 3 }, {}] });
    assert.equal(Array.from(api.data), [5, 10]);
    const file = (v: Float32Array) => writeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: encodeFromFloat32('F32', v) }]);
    const merged = await mergeModels({ config: yaml, inputs: { a: file(x), b: file(y) }, methods: METHODS, backend: h.mk });
    assert.equal(values(await read(merged.blob), 'w'), [5, 10]);
  });

  cfg.run();

  const run = suite(`${h.runtime} / ${h.backend} / merge runner`);
  const opts = (o: Partial<MergeModelsOptions> & Pick<MergeModelsOptions, 'config' | 'inputs'>): MergeModelsOptions => ({ methods: TEST_METHODS, backend: h.mk, ...o });

  // Model a and b of LINEAR_YAML: mixed float dtypes, an integer buffer, an empty tensor.
  const A = model([
    ['model.embed_tokens.weight', 'F16', [2, 2], [1, 2, -4, 0.5]],
    ['model.layers.0.mlp.weight', 'F32', [4], [2, 4, 6, 8]],
    ['model.layers.1.mlp.weight', 'F32', [4], [2, 4, 6, 8]],
    ['position_ids', 'I64', [3], [0, 1, 2]],
    ['empty', 'F32', [0, 3], []],
  ]);
  const B = model([
    ['model.embed_tokens.weight', 'BF16', [2, 2], [5, -2, 0, 0.25]],
    ['model.layers.0.mlp.weight', 'F16', [4], [4, 0, 2, 2]],
    ['model.layers.1.mlp.weight', 'F16', [4], [4, 0, 2, 2]],
    ['position_ids', 'I64', [3], [7, 8, 9]],
    ['empty', 'BF16', [0, 3], []],
  ]);

  run('linear over mixed F16/BF16/F32 inputs: values worked by hand, integers copied, dtypes kept', async () => {
    const result = await mergeModels(opts({ config: LINEAR_YAML, inputs: { a: A.buffer, b: new Blob([B]) } }));
    const out = await read(result.blob);
    assert.equal([...out.tensors.keys()], ['model.embed_tokens.weight', 'model.layers.0.mlp.weight', 'model.layers.1.mlp.weight', 'position_ids', 'empty']);
    // Non-layer tensors have t = 0, so b's weight is 1 there: (a + b) / 2.
    assert.equal(values(out, 'model.embed_tokens.weight'), [(1 + 5) / 2, (2 - 2) / 2, (-4 + 0) / 2, (0.5 + 0.25) / 2]);
    assert.equal(values(out, 'model.layers.0.mlp.weight'), [(2 + 4) / 2, (4 + 0) / 2, (6 + 2) / 2, (8 + 2) / 2]);
    // Layer 1 of 2 has t = 1: b's weight is 3, (a + 3b) / 4.
    assert.equal(values(out, 'model.layers.1.mlp.weight'), [(2 + 12) / 4, (4 + 0) / 4, (6 + 6) / 4, (8 + 6) / 4]);
    assert.equal(values(out, 'position_ids'), [0, 1, 2]);
    assert.equal(out.tensors.get('empty')!.shape, [0, 3]);
    // Output dtype: that of the first model's tensor.
    assert.equal([...out.tensors.values()].map((t) => t.dtype), ['F16', 'F32', 'F32', 'I64', 'F32']);
    assert.is(result.tensorsMerged, 4);
    assert.is(result.tensorsCopied, 1);
    assert.equal(result.files.map((f) => f.name), ['model.safetensors', 'README.md', 'mergekit_config.yml']);
    assert.is(out.metadata.merge_method, 'linear');
    assert.is(out.metadata.format, 'pt');
    assert.ok(out.metadata.merge_config!.includes('"weight"'), out.metadata.merge_config);
    assert.is(result.bytesWritten, result.blob!.size);
  });

  run('out_dtype and dtype: inputs rounded to bfloat16 first (ties to even), output in out_dtype', async () => {
    const one = model([['w', 'F32', [3], [1 + 2 ** -10, 1 + 3 * 2 ** -8, 3]]]);
    const yaml = 'merge_method: linear\nmodels:\n  - model: m\ndtype: bfloat16\nout_dtype: float32\n';
    const out = await read((await mergeModels(opts({ config: yaml, inputs: { m: one } }))).blob);
    // bfloat16 has a spacing of 2^-7 near 1: 1 + 2^-10 → 1; 1 + 1.5·2^-7 is a tie → the even 1 + 2^-6.
    assert.equal(values(out, 'w'), [1, 1 + 2 ** -6, 3]);
    assert.is(out.tensors.get('w')!.dtype, 'F32');
    const bf = await read((await mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: m\nout_dtype: bfloat16\n', inputs: { m: one } }))).blob);
    assert.is(bf.tensors.get('w')!.dtype, 'BF16');
  });

  // A base and two models for the centered method (one observation pass, whole rows).
  const next = rng(7);
  const grid = (n: number) => Array.from({ length: n }, () => Math.round((next() * 8 - 4) * 64) / 64);
  const base = grid(60), m1 = grid(60), m2 = grid(60), small = [grid(3), grid(3), grid(3)];
  const files = {
    base: model([['w', 'F32', [15, 4], base], ['v', 'F32', [3], small[0]!]]),
    m1: model([['w', 'F32', [15, 4], m1], ['v', 'F32', [3], small[1]!]]),
    m2: model([['w', 'BF16', [15, 4], m2], ['v', 'F16', [3], small[2]!]]),
  };
  const CENTERED = 'merge_method: centered\nbase_model: base\nmodels:\n  - model: m1\n    parameters: { weight: 0.5 }\n  - model: m2\n    parameters: { weight: 2 }\n';

  run('a tensor-wide statistic over chunks: the same bytes for every chunk size, values as worked out', async () => {
    const want = (b: number[], x: number[], y: number[]) => {
      const mean = x.reduce((s, v, i) => s + (v - b[i]!), 0) / x.length;
      return b.map((v, i) => v + 0.5 * (x[i]! - v) + 2 * (y[i]! - v) - mean);
    };
    const outputs: Uint8Array[] = [];
    for (const chunkSize of [4, 16, 20, 100, 1 << 20]) {
      const result = await mergeModels(opts({ config: CENTERED, inputs: files, chunkSize }));
      outputs.push(new Uint8Array(await result.blob!.arrayBuffer()));
    }
    for (let i = 1; i < outputs.length; i++) assert.equal(outputs[i], outputs[0], `chunk size #${i} gives the same bytes`);
    const out = readSafetensors(outputs[0] as Uint8Array<ArrayBuffer>);
    allClose(values(out, 'w'), want(base, m1, m2), { atol: 1e-5 }, 'w'); // float32 output of float64 arithmetic
    allClose(values(out, 'v'), want(small[0]!, small[1]!, small[2]!), { atol: 1e-5 }, 'v');
  });

  run('memory is bounded by the chunk: every read and write of tensor data is at most one chunk', async () => {
    const reads: number[] = [];
    const spy = (bytes: Uint8Array, name: string): ModelSource => {
      // Header reads start at byte 0; tensor data starts after the header.
      const file: ByteSource = { name, size: bytes.length, read: async (b, e) => { if (b > 0) reads.push(e - b); return bytes.subarray(b, e); } };
      return { files: [file] };
    };
    const writes: number[] = [];
    const blobs = blobOutput();
    const target: OutputTarget = { ...blobs, create: async (name, size) => { const f = await blobs.create(name, size); return { write: async (b) => { writes.push(b.length); await f.write(b); }, close: () => f.close() }; } };
    // 60 float32 entries per input (240 bytes) in chunks of 16 bytes = one row of 4.
    await mergeModels(opts({ config: CENTERED, inputs: { base: spy(files.base, 'base'), m1: spy(files.m1, 'm1'), m2: spy(files.m2, 'm2') }, chunkSize: 16, output: target }));
    assert.ok(reads.every((n) => n <= 16), `data reads ≤ 16 bytes: ${reads}`);
    // w: 15 rows read twice (observe + apply) per input; v (3 entries): one chunk, twice.
    assert.is(reads.length, 3 * (2 * 15 + 2));
    assert.ok(writes.slice(1).every((n) => n <= 16), `writes after the header ≤ 16 bytes: ${writes}`);
  });

  // TIES with the paper's zero sign (semantics 'paper'; mergekit's elects + instead): an entry whose votes sum to
  // exactly 0 takes the sign of the whole tensor's majority Σ sign(Σ_t δ_t), known only after every
  // chunk. The runner guesses it from the chunks merged so far (≤ 0 → −1 at the start) and
  // rewrites the chunks it guessed wrong in place. By hand, base 0, weights 1, density 1 (no trim),
  // merged = mean of the δ_t that agree with the elected sign:
  //   δa = [ 1, 2,  3, -1, 1, -2]
  //   δb = [-1, 2, -1,  1, 1, -2]
  //   Σ  = [ 0, 4,  2,  0, 2, -4] → majority = +1 +1 +1 −1 = +2 > 0 → zero sign +1
  //   entry 0: + → a: 1;  1: both: 2;  2: + → a: 3;  3: + → b: 1;  4: both: 1;  5: both: −2
  // Entry 0 comes first, merged under the guess −1 (nothing seen yet): it is b's −1 until rewritten.
  // Entry 3 is merged after entries 0–2 (running majority +2): guessed right, whatever the chunk size.
  const TIES_PAPER = 'merge_method: ties\nbase_model: base\nparameters:\n  semantics: paper\nmodels:\n  - model: a\n    parameters: { weight: 1, density: 1 }\n  - model: b\n    parameters: { weight: 1, density: 1 }\n';
  const zeroSign = {
    base: model([['w', 'F32', [6], [0, 0, 0, 0, 0, 0]]]),
    a: model([['w', 'F32', [6], [1, 2, 3, -1, 1, -2]]]),
    b: model([['w', 'F32', [6], [-1, 2, -1, 1, 1, -2]]]),
  };

  run('TIES zero sign guessed wrong: the chunk is rewritten in place; the same bytes for every chunk size, values by hand', async () => {
    const outputs: Uint8Array[] = [];
    for (const chunkSize of [4, 8, 12, 1 << 20]) {
      const result = await mergeModels({ config: TIES_PAPER, inputs: zeroSign, methods: METHODS, backend: h.mk, chunkSize });
      // One chunk holds entry 0 and is merged under the wrong guess, whatever the chunk size.
      assert.is(result.chunksRewritten, 1, `chunk size ${chunkSize}: one chunk rewritten`);
      outputs.push(new Uint8Array(await result.blob!.arrayBuffer()));
      assert.equal(values(readSafetensors(outputs.at(-1) as Uint8Array<ArrayBuffer>), 'w'), [1, 2, 3, 1, 1, -2], `chunk size ${chunkSize}`);
    }
    for (let i = 1; i < outputs.length; i++) assert.equal(outputs[i], outputs[0], `chunk size #${i} gives the same bytes`);
    // An output that cannot rewrite (no writeAt): the paper's majority pass first, the same bytes.
    const blobs = blobOutput();
    const target: OutputTarget = { ...blobs, create: async (name, size) => { const f = await blobs.create(name, size); return { write: (b) => f.write(b), close: () => f.close() }; } };
    const plain = await mergeModels({ config: TIES_PAPER, inputs: zeroSign, methods: METHODS, backend: h.mk, chunkSize: 4, output: target });
    assert.is(plain.chunksRewritten, 0);
    assert.equal(new Uint8Array(await blobs.files.get('model.safetensors')!.arrayBuffer()), outputs[0]);
  });

  run('the chunk codecs: F16/BF16 read and F16/BF16 written give the bits of decodeToFloat32 / encodeFromFloat32, odd lengths and partial chunks included', async () => {
    // One model merged by linear with weight 1 is itself: the output is the input re-encoded.
    // Random finite float32 bit patterns (every exponent, both signs, subnormals), 1001 entries.
    const next = rng(11);
    const bits = new Uint32Array(1001);
    for (let i = 0; i < bits.length; i++) {
      let b = Math.floor(next() * 2 ** 32) >>> 0;
      if ((b & 0x7f800000) === 0x7f800000) b &= 0xff7fffff; // keep it finite
      bits[i] = b;
    }
    bits.set([0x3f808000, 0x3f818000, 0xbf808000, 0x477fe000, 0x477ff000, 0x33000000, 0x80000001]); // ties, F16's largest and overflow, the smallest subnormal's half, a negative that rounds to −0
    // (not −0 itself: linear sums from +0, and 0 + −0 is +0)
    const x = new Float32Array(bits.buffer);
    const one = (dtype: 'F32' | 'F16' | 'BF16') => writeSafetensors([{ name: 'w', dtype, shape: [x.length], data: encodeFromFloat32(dtype, x) }]);
    const bytesOf = async (r: { blob: Blob | undefined }) => readSafetensors(new Uint8Array(await r.blob!.arrayBuffer())).tensors.get('w')!.bytes;
    for (const chunkSize of [4 * 13, 1 << 20]) {
      for (const out of ['float16', 'bfloat16'] as const) {
        const yaml = `merge_method: linear\nmodels:\n  - model: m\nout_dtype: ${out}\n`;
        const got = await bytesOf(await mergeModels(opts({ config: yaml, inputs: { m: one('F32') }, chunkSize })));
        // float16 overflows to ±Inf for the largest magnitudes: written as the reference encodes them.
        assert.equal(got, encodeFromFloat32(out === 'float16' ? 'F16' : 'BF16', x), `F32 → ${out}, chunk ${chunkSize}`);
      }
      for (const [dtype, exp] of [['F16', 0x7c00], ['BF16', 0x7f80]] as const) {
        // Every finite 16-bit pattern kind: random bits, the all-ones exponent avoided.
        const h = Uint16Array.from({ length: 1001 }, () => {
          const v = Math.floor(next() * 65536);
          return (v & exp) === exp ? v & ~0x4000 : v === 0x8000 ? 0x8001 : v; // no −0 (see above)
        });
        const stored = new Uint8Array(h.buffer);
        const file = writeSafetensors([{ name: 'w', dtype, shape: [h.length], data: stored }]);
        const got = await bytesOf(await mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: m\nout_dtype: float32\n', inputs: { m: file }, chunkSize })));
        assert.equal(got, new Uint8Array(decodeToFloat32(dtype, stored).buffer), `${dtype} → F32, chunk ${chunkSize}`);
      }
    }
  });

  run('a model pass sees every tensor before any is merged', async () => {
    const m = model([['x', 'F32', [3], [1, 2, 3]], ['y', 'F16', [2], [4, 5]]]);
    const out = await read((await mergeModels(opts({ config: 'merge_method: model_centered\nmodels:\n  - model: m\n', inputs: { m }, chunkSize: 4 }))).blob);
    // Mean over the model: (1 + 2 + 3 + 4 + 5) / 5 = 3.
    assert.equal(values(out, 'x'), [-2, -1, 0]);
    assert.equal(values(out, 'y'), [1, 2]);
  });

  run('inputs: Uint8Array, ArrayBuffer, Blob, shards as an array of Blobs, a ModelSource', async () => {
    const shard1 = model([['model.embed_tokens.weight', 'BF16', [2, 2], [5, -2, 0, 0.25]], ['position_ids', 'I64', [3], [7, 8, 9]]]);
    const shard2 = model([['model.layers.0.mlp.weight', 'F16', [4], [4, 0, 2, 2]], ['model.layers.1.mlp.weight', 'F16', [4], [4, 0, 2, 2]], ['empty', 'BF16', [0, 3], []]]);
    const source: ModelSource = { files: [{ name: 'a.safetensors', size: A.length, read: async (b, e) => A.subarray(b, e) }] };
    const want = new Uint8Array(await (await mergeModels(opts({ config: LINEAR_YAML, inputs: { a: A, b: B } }))).blob!.arrayBuffer());
    for (const inputs of [
      { a: A.buffer, b: [new Blob([shard1]), new Blob([shard2])] },
      { a: source, b: [shard1, shard2.buffer] },
      (name: string) => (name === 'a' ? new Blob([A]) : B),
    ]) {
      const got = new Uint8Array(await (await mergeModels(opts({ config: LINEAR_YAML, inputs: inputs as MergeModelsOptions['inputs'] }))).blob!.arrayBuffer());
      assert.equal(got, want);
    }
  });

  run('sharded output: files under the size limit, an index that parses', async () => {
    const m = model([['t0', 'F32', [4], [1, 2, 3, 4]], ['t1', 'F32', [4], [5, 6, 7, 8]], ['t2', 'F32', [4], [9, 10, 11, 12]]]);
    const result = await mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: m\n', inputs: { m }, maxShardSize: 20 }));
    assert.equal(result.files.map((f) => f.name), ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json', 'README.md', 'mergekit_config.yml']);
    assert.is(result.blob, undefined);
    const index = parseShardIndex(await result.files[3]!.blob!.text());
    assert.equal([...index.weightMap], [['t0', result.files[0]!.name], ['t1', result.files[1]!.name], ['t2', result.files[2]!.name]]);
    assert.is(index.metadata.total_size, 48);
    assert.equal(values(await read(result.files[2]!.blob), 't2'), [9, 10, 11, 12]);
    // Two 16-byte tensors fit in 32 bytes: mergekit's rule fills a shard until the next would overflow it.
    const two = await mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: m\n', inputs: { m }, maxShardSize: 32 }));
    assert.equal(two.files.map((f) => f.name), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'README.md', 'mergekit_config.yml']);
  });

  run('Blob output of a loadable folder: config.json and the tokenizer from ModelSource.sideFile, the card; none of them on request', async () => {
    const m = model([['w', 'F32', [2], [1, 2]]]);
    const text = (s: string): ByteSource => { const bytes = new TextEncoder().encode(s); return { name: 'side', size: bytes.length, read: async (b, e) => bytes.subarray(b, e) }; };
    const folder = (sides: Record<string, string>): ModelSource => ({ files: [{ name: 'model.safetensors', size: m.length, read: async (b, e) => m.subarray(b, e) }], sideFile: async (name) => (name in sides ? text(sides[name]!) : undefined) });
    const x = folder({ 'config.json': '{"num_hidden_layers": 1, "torch_dtype": "float32", "dtype": "float32"}', 'tokenizer.json': '{"x": 1}', 'vocab.json': 'not read' });
    const y = folder({ 'config.json': '{"from": "y"}', 'tokenizer.json': '{"y": 1}', 'tokenizer_config.json': '{}' });
    const yaml = 'merge_method: linear\nmodels:\n  - model: x\n  - model: y\nout_dtype: bfloat16\ntokenizer_source: y\n';
    const result = await mergeModels(opts({ config: yaml, inputs: { x, y }, modelName: 'my-merge' }));
    assert.equal(result.files.map((f) => f.name), ['model.safetensors', 'config.json', 'tokenizer_config.json', 'tokenizer.json', 'README.md', 'mergekit_config.yml']);
    const file = (name: string) => result.files.find((f) => f.name === name)!.blob!.text();
    // The first model's config (no base), both dtype keys set to the output dtype.
    assert.equal(JSON.parse(await file('config.json')), { num_hidden_layers: 1, torch_dtype: 'bfloat16', dtype: 'bfloat16' });
    assert.is(await file('tokenizer.json'), '{"y": 1}');
    assert.match(await file('README.md'), /^---\n[^]*# my-merge\n[^]*merged using the linear merge method\.\n[^]*\* x\n\* y\n/);
    assert.is(await file('mergekit_config.yml'), yaml);
    assert.equal(values(await read(result.blob), 'w'), [1, 2]);
    const bare = await mergeModels(opts({ config: yaml.replace('tokenizer_source: y\n', ''), inputs: { x, y }, copyTokenizer: false, writeModelCard: false }));
    assert.equal(bare.files.map((f) => f.name), ['model.safetensors', 'config.json']);
    // The object form of a config is written out as YAML for the card.
    const object = await mergeModels(opts({ config: { merge_method: 'linear', models: [{ model: 'x' }] }, inputs: { x: m } }));
    assert.is(await object.files.find((f) => f.name === 'mergekit_config.yml')!.blob!.text(), 'merge_method: linear\nmodels:\n  - model: x\n');
    await rejects(() => mergeModels(opts({ config: yaml, inputs: { x, y: m } })), 'MISSING_FILE', ['"y" has no tokenizer files', 'weights only']);
    await rejects(() => mergeModels(opts({ config: yaml, inputs: { x, y }, writeModelCard: 1 as never })), 'INVALID_OPTION', ['writeModelCard']);
  });

  // Models for slices: model m (1, 2, 3) has 4 layers whose tensors are all 100·m + i at layer i;
  // its embedding is 100·m + 90, its final norm 100·m + 91, its lm_head 100·m + 92. So a value
  // says which layer of which model landed where.
  const layered = (m: number, dtype: 'F32' | 'F16' = 'F32', drop?: string) => model([
    ['model.embed_tokens.weight', dtype, [3, 2], Array(6).fill(100 * m + 90)],
    ...[0, 1, 2, 3].flatMap((i): T[] => [
      [`model.layers.${i}.self_attn.q_proj.weight`, dtype, [2, 2], Array(4).fill(100 * m + i)],
      [`model.layers.${i}.input_layernorm.weight`, dtype, [2], Array(2).fill(100 * m + i)],
    ]).filter(([name]) => name !== drop),
    ['model.norm.weight', dtype, [2], Array(2).fill(100 * m + 91)],
    ['lm_head.weight', dtype, [3, 2], Array(6).fill(100 * m + 92)],
  ]);
  const withConfig = (bytes: Uint8Array, config: object): ModelSource => {
    const json = new TextEncoder().encode(JSON.stringify(config));
    return {
      files: [{ name: 'model.safetensors', size: bytes.length, read: async (b, e) => bytes.subarray(b, e) }],
      sideFile: async (name) => (name === 'config.json' ? { name, size: json.length, read: async (b, e) => json.subarray(b, e) } : undefined),
    };
  };
  /** Every output tensor's value (they are constant), by name. */
  const constants = (file: ReturnType<typeof readSafetensors>) => Object.fromEntries([...file.tensors.keys()].map((name) => {
    const v = values(file, name);
    assert.ok(v.every((x) => x === v[0]), `${name} is constant`);
    return [name, v[0]];
  }));
  const layerValues = (c: Record<string, number | undefined>, n: number) => Array.from({ length: n }, (_, i) => {
    assert.is(c[`model.layers.${i}.input_layernorm.weight`], c[`model.layers.${i}.self_attn.q_proj.weight`], `layer ${i}: both tensors from one layer`);
    return c[`model.layers.${i}.self_attn.q_proj.weight`];
  });

  run('slices with passthrough: layer ranges of several models stacked and renumbered; embeddings from the first slice, norm and lm_head from the last; config.json layer count', async () => {
    const yaml = `merge_method: passthrough
slices:
  - sources:
      - model: m1
        layer_range: [0, 3]
  - sources:
      - model: m2
        layer_range: [1, 4]
  - sources:
      - model: m3
        layer_range: [0, 1]
`;
    const types = ['sliding', 'full', 'sliding', 'full'];
    const inputs = { m1: withConfig(layered(1), { num_hidden_layers: 4, layer_types: types, torch_dtype: 'float32' }), m2: layered(2, 'F16'), m3: layered(3) };
    const result = await mergeModels({ config: yaml, inputs, methods: METHODS, backend: h.mk });
    const out = await read(result.blob);
    const c = constants(out);
    // Output layers 0–2: m1's 0–2; 3–5: m2's 1–3; 6: m3's 0. 7 layers × 2 tensors + 3 others.
    assert.is(out.tensors.size, 17);
    assert.equal(layerValues(c, 7), [100, 101, 102, 201, 202, 203, 300]);
    assert.equal([c['model.embed_tokens.weight'], c['model.norm.weight'], c['lm_head.weight']], [190, 391, 392]);
    // Each tensor keeps its source's dtype; the order is embeddings, layers, then the rest.
    assert.is(out.tensors.get('model.layers.4.self_attn.q_proj.weight')!.dtype, 'F16');
    assert.equal([...out.tensors.keys()][0], 'model.embed_tokens.weight');
    assert.equal([...out.tensors.keys()].slice(-2).sort(), ['lm_head.weight', 'model.norm.weight']);
    // The first slice's first model gives config.json: 7 layers, layer_types following the layers taken.
    const config = JSON.parse(await result.files.find((f) => f.name === 'config.json')!.blob!.text());
    assert.equal(config, { num_hidden_layers: 7, layer_types: [0, 1, 2, 1, 2, 3, 0].map((i) => types[i]), torch_dtype: 'float32' });
    // passthrough takes one source per slice.
    const two = yaml.replace('        layer_range: [0, 3]\n', '        layer_range: [0, 3]\n      - model: m2\n        layer_range: [1, 4]\n');
    await rejects(() => mergeModels({ config: two, inputs, methods: METHODS, backend: h.mk }), 'INVALID_OPTION', ['slices[0]', 'passthrough copies exactly one model']);
  });

  run('slices merged with a method: per-source, per-slice and global parameters (mergekit precedence), gradients over each slice, a base among the sources', async () => {
    // linear without normalize: Σ wᵢ·xᵢ. Slice 0: m1's own weight 3, m2 the slice's 2 (over the global 1).
    //   out 0 = 3·100 + 2·202 = 704, out 1 = 3·101 + 2·203 = 709; the embedding (slice 0's models, t = 0) 3·190 + 2·290 = 1150.
    // Slice 1 (3 layers, t = 0, ½, 1): m2's own gradient [0, 1] gives 0, ½, 1; m3 the global 1.
    //   out 2 = 0·200 + 301 = 301, out 3 = ½·201 + 302 = 402.5, out 4 = 202 + 303 = 505;
    //   norm and lm_head (slice 1's models, t = 0): 0·291 + 391 = 391, 0·292 + 392 = 392.
    const yaml = `merge_method: linear
parameters: { normalize: false, weight: 1 }
slices:
  - sources:
      - model: m1
        layer_range: [0, 2]
        parameters: { weight: 3 }
      - model: m2
        layer_range: [2, 4]
    parameters: { weight: 2 }
  - sources:
      - model: m2
        layer_range: [0, 3]
        parameters: { weight: [0, 1] }
      - model: m3
        layer_range: [1, 4]
`;
    const inputs = { m1: layered(1), m2: layered(2), m3: layered(3, 'F16') };
    const c = constants(await read((await mergeModels({ config: yaml, inputs, methods: METHODS, backend: h.mk })).blob));
    assert.equal(layerValues(c, 5), [704, 709, 301, 402.5, 505]);
    assert.equal([c['model.embed_tokens.weight'], c['model.norm.weight'], c['lm_head.weight']], [1150, 391, 392]);
    assert.is(c['model.layers.5.self_attn.q_proj.weight'], undefined);

    // task_arithmetic with the base listed second among the sources: base + 0.5·(m2 − base).
    //   out 0 = 100 + 0.5·(202 − 100) = 151, out 1 = 101 + 0.5·(203 − 101) = 152;
    //   embedding 190 + 0.5·100 = 240, norm 241, lm_head 242.
    const ta = `merge_method: task_arithmetic
base_model: m1
slices:
  - sources:
      - model: m2
        layer_range: [2, 4]
        parameters: { weight: 0.5 }
      - model: m1
        layer_range: [0, 2]
`;
    const t = constants(await read((await mergeModels({ config: ta, inputs, methods: METHODS, backend: h.mk })).blob));
    assert.equal(layerValues(t, 2), [151, 152]);
    assert.equal([t['model.embed_tokens.weight'], t['model.norm.weight'], t['lm_head.weight']], [240, 241, 242]);
  });

  run('slices that do not fit: lengths, ranges past the last layer, a base outside the slice, models and slices, a missing layer tensor', async () => {
    const inputs = { m1: layered(1), m2: layered(2, 'F32', 'model.layers.2.input_layernorm.weight') };
    const merge = (yaml: string) => mergeModels({ config: yaml, inputs, methods: METHODS, backend: h.mk });
    const slice = (a: string, b: string) => `merge_method: linear\nslices:\n  - sources:\n      - model: m1\n        layer_range: ${a}\n      - model: m2\n        layer_range: ${b}\n`;
    await rejects(() => merge(slice('[0, 2]', '[0, 3]')), 'INVALID_OPTION', ['slices[0].sources', 'as many layers', '2, 3']);
    await rejects(() => merge(slice('[2, 5]', '[0, 3]')), 'INVALID_OPTION', ['slices[0].sources[0].layer_range', '[2, 5]', 'has 4']);
    await rejects(() => merge(slice('[2, 1]', '[0, 3]')), 'INVALID_OPTION', ['layer_range', '0 ≤ start < end']);
    await rejects(() => merge(slice('[0, 1]', '[0, 1]').replace('linear', 'task_arithmetic\nbase_model: m3')), 'INVALID_OPTION', ['base model "m3" is not one of them']);
    await rejects(() => merge(`${slice('[0, 1]', '[0, 1]')}models:\n  - model: m1\n`), 'INVALID_OPTION', ['either models or slices']);
    // m2's layer 2 has no input_layernorm: named with the layer it would have been.
    await rejects(() => merge(slice('[1, 3]', '[1, 3]')), 'MISSING_TENSOR', ['"model.layers.1.input_layernorm.weight"', '"m2" (as "model.layers.2.input_layernorm.weight")']);
  });

  run('models that disagree: missing tensors, shapes, dtypes; each named', async () => {
    const b1 = model([['x', 'F32', [4], [1, 2, 3, 4]], ['y', 'F32', [2], [1, 2]]]);
    const missing = model([['x', 'F32', [4], [1, 2, 3, 4]]]);
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: one\n  - model: two\n', inputs: { one: b1, two: missing } })), 'MISSING_TENSOR', ['"y"', '"one"', 'missing from "two"']);
    const shape = model([['x', 'F32', [2, 2], [1, 2, 3, 4]], ['y', 'F32', [2], [1, 2]]]);
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: one\n  - model: two\n', inputs: { one: b1, two: shape } })), 'SHAPE_MISMATCH', ['"x"', '[4]', '[2, 2]', '"two"']);
    // A float and an integer tensor of one name, or two integer dtypes: DTYPE_MISMATCH, not a shape error.
    const ints = model([['x', 'F32', [4], [1, 2, 3, 4]], ['y', 'I64', [2], [1, 2]]]);
    const two = 'merge_method: linear\nmodels:\n  - model: one\n  - model: two\n';
    await rejects(() => mergeModels(opts({ config: two, inputs: { one: b1, two: ints } })), 'DTYPE_MISMATCH', ['"y"', 'F32 in "one"', 'I64 in "two"']);
    const i32 = writeSafetensors([{ name: 'x', dtype: 'F32', shape: [4], data: encodeFromFloat32('F32', new Float32Array(4)) }, { name: 'y', dtype: 'I32', shape: [2], data: new Uint8Array(8) }]);
    await rejects(() => mergeModels(opts({ config: two, inputs: { one: ints, two: i32 } })), 'DTYPE_MISMATCH', ['"y"', 'I64 in "one"', 'I32 in "two"']);
    // A float8 tensor: UNSUPPORTED_DTYPE naming the tensor, the model and the dtype.
    const f8 = writeSafetensors([{ name: 'x', dtype: 'F32', shape: [4], data: encodeFromFloat32('F32', new Float32Array(4)) }, { name: 'y', dtype: 'F8_E4M3', shape: [2], data: new Uint8Array([0x38, 0x40]) }]);
    await rejects(() => mergeModels(opts({ config: two, inputs: { one: b1, two: f8 } })), 'UNSUPPORTED_DTYPE', ['"y"', 'F8_E4M3', '"two"']);
    // A model of the config without an input: MISSING_FILE, not an invalid option.
    await rejects(() => mergeModels(opts({ config: two, inputs: { one: b1 } })), 'MISSING_FILE', ['"two"']);
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: one\n', inputs: { one: b1.subarray(0, 30) } })), 'INVALID_SAFETENSORS', ['"one"']);
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: one\n', inputs: { one: b1 }, chunkSize: 0 })), 'INVALID_OPTION', ['chunkSize']);
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: one\n', inputs: { one: b1 }, backend: {} as never })), 'INVALID_TYPE', ['backend']);
  });

  run('tied word embeddings: a model without lm_head gives its embedding in its place', async () => {
    const untied = model([['model.embed_tokens.weight', 'F32', [2, 2], [1, 1, 1, 1]], ['lm_head.weight', 'F32', [2, 2], [3, 5, 7, 9]]]);
    const tied = model([['model.embed_tokens.weight', 'F32', [2, 2], [1, 3, 5, 7]]]);
    const result = await mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: u\n  - model: t\n', inputs: { u: untied, t: tied } }));
    assert.equal(result.tied, [{ tensor: 'lm_head.weight', model: 't', from: 'model.embed_tokens.weight' }]);
    const out = await read(result.blob);
    assert.equal(values(out, 'lm_head.weight'), [(3 + 1) / 2, (5 + 3) / 2, (7 + 5) / 2, (9 + 7) / 2]);
    // An embedding of another shape cannot stand in: a clear error.
    const other = model([['model.embed_tokens.weight', 'F32', [2, 2], [1, 3, 5, 7]]]);
    const wide = model([['model.embed_tokens.weight', 'F32', [2, 2], [1, 1, 1, 1]], ['lm_head.weight', 'F32', [4], [3, 5, 7, 9]]]);
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: u\n  - model: t\n', inputs: { u: wide, t: other } })), 'MISSING_TENSOR', ['"lm_head.weight"', 'tied word embeddings']);
  });

  run('a NaN or infinity in an input: NON_FINITE naming the model, tensor and index; the output is aborted', async () => {
    const good = model([['a', 'F32', [2], [1, 2]], ['b', 'F32', [3], [1, 2, 3]]]);
    const bad = model([['a', 'F32', [2], [1, 2]], ['b', 'F32', [3], [1, 2, Infinity]]]);
    const calls: string[] = [];
    const target: OutputTarget = {
      create: async (name) => { calls.push(`create ${name}`); return { write: async () => { calls.push('write'); }, close: async () => { calls.push('close'); } }; },
      commit: async () => { calls.push('commit'); },
      abort: async () => { calls.push('abort'); },
    };
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: good\n  - model: bad\n', inputs: { good, bad }, output: target })), 'NON_FINITE', ['"bad"', '"b"', 'index 2']);
    assert.ok(calls.includes('abort') && !calls.includes('commit'), calls.join(', '));
    // Disagreements are found before anything is created.
    calls.length = 0;
    await rejects(() => mergeModels(opts({ config: 'merge_method: linear\nmodels:\n  - model: good\n  - model: bad\n', inputs: { good, bad: model([['a', 'F32', [2], [1, 2]]]) }, output: target })), 'MISSING_TENSOR');
    assert.equal(calls, ['abort']);
  });

  run('the config object form and linear without normalize', async () => {
    const m = model([['w', 'F32', [2], [1, 2]]]);
    const out = await read((await mergeModels({ config: { merge_method: 'linear', models: [{ model: 'x', parameters: { weight: 3 } }, { model: 'y', parameters: { weight: 0.5 } }], parameters: { normalize: false } }, inputs: { x: m, y: m }, methods: { linear }, backend: h.mk })).blob);
    assert.equal(values(out, 'w'), [3 * 1 + 0.5 * 1, 3 * 2 + 0.5 * 2]);
  });

  run('without methods and backend: the package registry on a wasm context of the call\'s own', async () => {
    // task_arithmetic is in METHODS, not in the test methods: base + λ·Σ wᵢ·(xᵢ − base), λ = 1
    //   base [1, 1], a [2, 3] (w 1), b [0, 5] (w 0.5): 1 + (1 + 0.5·-1) = 1.5, 1 + (2 + 0.5·4) = 5
    const config = 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: a\n    parameters: { weight: 1 }\n  - model: b\n    parameters: { weight: 0.5 }\n';
    const inputs = { base: model([['w', 'F32', [2], [1, 1]]]), a: model([['w', 'F32', [2], [2, 3]]]), b: model([['w', 'F32', [2], [0, 5]]]) };
    const result = await mergeModels({ config, inputs });
    assert.equal(values(await read(result.blob), 'w'), [1.5, 5]);
    // Either default alone, and an explicit undefined, is the same.
    assert.equal(values(await read((await mergeModels({ config, inputs, backend: h.mk })).blob), 'w'), [1.5, 5]);
    assert.equal(values(await read((await mergeModels({ config, inputs, methods: undefined, backend: undefined })).blob), 'w'), [1.5, 5]);
    await rejects(() => mergeModels({ config, inputs, methods: TEST_METHODS }), 'INVALID_OPTION', ['task_arithmetic']);
  });

  run.run();
}
