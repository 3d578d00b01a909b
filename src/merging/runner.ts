// The streaming merge runner: merges safetensors checkpoints tensor by tensor, and within a tensor
// chunk by chunk, reading only the byte ranges each chunk needs. Peak memory is about
// (inputs × chunk) + one output chunk, whatever the model size. Runtime-neutral: inputs are
// Blobs/Files/ArrayBuffers or any ModelSource (src/node/io.ts opens paths); output goes to an
// OutputTarget (Blobs here, a folder with temp-file + rename in src/node/io.ts).
//
// The protocol with a method is that of src/merging/types.ts and driver.ts: model passes over
// every tensor, then per tensor its observation passes and one apply pass.
import type { Backend } from '../backends.ts';
import { MergeKernels } from '../api.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import {
  decodeToFloat32, dtypeSize, encodeFromFloat32, encodeSafetensorsHeader, parseSafetensorsHeaderFromReader,
  type SafetensorsDtype, type SafetensorsHeader, type SafetensorsTensorInfo,
} from '../safetensors.ts';
import { checkConfigAgainst, layerPositions, parseMergeConfig, resolveTensorParams, type ConfigDtype, type MergeConfig } from './config.ts';
import { alignChunk, chunksOf } from './driver.ts';
import type { Chunk, MergeMethod, MethodSpec, TensorInfo, TensorParams } from './types.ts';
import { options as checkOptions } from '../validate.ts';

/** One file readable by byte range. */
export interface ByteSource {
  /** A name for messages (a path, a File's name). */
  readonly name: string;
  readonly size: number;
  /** Bytes [begin, end) of the file. */
  read(begin: number, end: number): Promise<Uint8Array>;
}

/** A checkpoint: one safetensors file or its shards. */
export interface ModelSource {
  readonly files: readonly ByteSource[];
  /** Releases file handles; called when the merge ends. */
  close?(): Promise<void>;
}

/** A Blob/File/ArrayBuffer/Uint8Array holding a safetensors file, an array of them (shards), or a ModelSource. */
export type ModelInput = ModelSource | Blob | ArrayBuffer | Uint8Array | ReadonlyArray<Blob | ArrayBuffer | Uint8Array>;

/** Where the merged files go. Files are written one at a time, each from start to end. */
export interface OutputTarget {
  /** Starts a file of `size` bytes under its final name. */
  create(name: string, size: number): Promise<OutputFile>;
  /** Every file is complete: make them visible under their names. */
  commit(): Promise<void>;
  /** The merge failed: remove everything written. */
  abort(): Promise<void>;
}

export interface OutputFile {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface MergeProgress {
  phase: 'observe-model' | 'merge';
  /** The tensor being read. */
  tensor: string;
  /** Its position among the output tensors (0-based) and their count. */
  index: number;
  tensors: number;
  bytesRead: number;
  bytesWritten: number;
  /** Total bytes of the output files. */
  totalBytes: number;
}

export interface MergeModelsOptions {
  /** A mergekit YAML config (text), the same as an object, or a parsed MergeConfig. */
  config: string | object;
  /** The checkpoint of each model the config names (by its name in the config), or a function that opens it. */
  inputs: Readonly<Record<string, ModelInput>> | ((model: string) => ModelInput | Promise<ModelInput>);
  /** The merge methods by mergekit name (the package's registry, or your own MethodSpecs). */
  methods: Readonly<Record<string, MethodSpec>>;
  /** The context whose backend the method's primitives run on (or a Backend). */
  backend: MergeKernels | Backend;
  /** Where the files go; default: Blobs in the result. */
  output?: OutputTarget;
  /**
   * Bytes of float32 per input per chunk (default 64 MiB); a chunk always holds at least one of
   * the method's rows. Peak memory is about (2 × inputs + 1) chunks: each input's bytes and
   * their float32 values, and the output chunk.
   */
  chunkSize?: number;
  /** Largest output file in bytes before the model is sharded (default 5e9, mergekit's). */
  maxShardSize?: number;
  /** Seed of the methods' random streams (DARE, DELLA). Default 0. */
  seed?: number;
  /** Called after every chunk written (and every chunk read by a model pass). */
  onProgress?: (p: MergeProgress) => void;
}

export interface MergeModelsResult {
  method: string;
  /** Output files in order; with Blob output each has its `blob`. */
  files: Array<{ name: string; size: number; blob?: Blob }>;
  /** The single model.safetensors as a Blob (Blob output, unsharded). */
  blob: Blob | undefined;
  tensorsMerged: number;
  /** Non-float tensors (integer buffers) copied from the base, or first, model. */
  tensorsCopied: number;
  /** Tied weights substituted: a model without `tensor` gave its `from` instead. */
  tied: Array<{ tensor: string; model: string; from: string }>;
  bytesRead: number;
  bytesWritten: number;
  metadata: Record<string, string>;
}

const MiB = 1024 * 1024;
const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F64', 'F32', 'F16', 'BF16']);
const OUT_DTYPE: Record<ConfigDtype, 'F32' | 'F16' | 'BF16'> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
// Embeddings that a model with tied word embeddings uses as its output layer (HF's tie_word_embeddings).
const TIED_INPUT_EMBEDDING = /(^|\.)(embed_tokens|wte|word_embeddings|embed_in)\.weight$/;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes a chunk; F32 on a little-endian host takes one copy instead of decodeToFloat32's two. */
function toFloat32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  if (dtype === 'F32' && LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4).slice();
  return decodeToFloat32(dtype, bytes);
}

/** Encodes an output chunk; F32 on a little-endian host is the chunk's own bytes (each chunk is a fresh array). */
function fromFloat32(dtype: 'F32' | 'F16' | 'BF16', x: Float32Array): Uint8Array {
  if (dtype === 'F32' && LITTLE_ENDIAN) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  return encodeFromFloat32(dtype, x);
}

/** One tensor of one input: where its bytes are. */
interface Located { file: ByteSource; dataOffset: number; info: SafetensorsTensorInfo }

interface OpenModel { label: string; tensors: Map<string, Located>; order: string[]; close: () => Promise<void> }

/** What the runner does with one output tensor. */
interface TensorPlan {
  name: string;
  shape: number[];
  numel: number;
  kind: 'merge' | 'copy';
  /** Per input (base first when there is one). */
  sources: Located[];
  outDtype: SafetensorsDtype;
  outBytes: number;
}

function positiveInteger(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new MergeKernelsError('INVALID_OPTION', `${name}: expected a positive integer number of bytes, got ${describe(v)}`, name);
  return v;
}

function bufferSource(name: string, bytes: Uint8Array): ByteSource {
  return { name, size: bytes.length, read: async (b, e) => bytes.subarray(b, e) };
}

function blobSource(name: string, blob: Blob): ByteSource {
  return { name, size: blob.size, read: async (b, e) => new Uint8Array(await blob.slice(b, e).arrayBuffer()) };
}

function toSource(input: ModelInput, label: string): ModelSource {
  const one = (x: unknown, name: string): ByteSource => {
    if (typeof Blob !== 'undefined' && x instanceof Blob) return blobSource((x as File).name || name, x);
    if (x instanceof ArrayBuffer) return bufferSource(name, new Uint8Array(x));
    if (x instanceof Uint8Array) return bufferSource(name, x);
    throw new MergeKernelsError('INVALID_TYPE', `inputs["${label}"]: expected a Blob, File, ArrayBuffer, Uint8Array, an array of them, or a ModelSource, got ${describe(x)}`, 'inputs');
  };
  if (Array.isArray(input)) {
    if (input.length === 0) throw new MergeKernelsError('INVALID_TYPE', `inputs["${label}"]: an empty list of shards`, 'inputs');
    return { files: input.map((x, i) => one(x, `${label} shard ${i + 1}`)) };
  }
  if (input !== null && typeof input === 'object' && Array.isArray((input as ModelSource).files)) return input as ModelSource;
  return { files: [one(input, label)] };
}

async function openModel(input: ModelInput, label: string): Promise<OpenModel> {
  const source = toSource(input, label);
  const tensors = new Map<string, Located>();
  const order: string[] = [];
  try {
    for (const file of source.files) {
      let header: SafetensorsHeader;
      try {
        header = await parseSafetensorsHeaderFromReader(file.size, (b, e) => file.read(b, e));
      } catch (e) {
        if (e instanceof MergeKernelsError) {
          throw Object.assign(new MergeKernelsError(e.code, `model "${label}", file ${file.name}: ${e.message}`, e.argument, { cause: e }), { violation: (e as { violation?: unknown }).violation });
        }
        throw e;
      }
      for (const info of header.tensors) {
        const seen = tensors.get(info.name);
        if (seen) {
          throw new MergeKernelsError('INVALID_SAFETENSORS', `model "${label}": tensor "${info.name}" is in two shards, ${seen.file.name} and ${file.name}`, 'inputs');
        }
        tensors.set(info.name, { file, dataOffset: header.dataOffset, info });
        order.push(info.name);
      }
    }
  } catch (e) {
    await source.close?.();
    throw e;
  }
  return { label, tensors, order, close: async () => { await source.close?.(); } };
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Which tensors the output has, and where each comes from; every disagreement between the models is an error here, before anything is written. */
function planTensors(models: OpenModel[], config: MergeConfig, tied: MergeModelsResult['tied']): TensorPlan[] {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const m of models) for (const n of m.order) if (!seen.has(n)) { seen.add(n); names.push(n); }
  const plans: TensorPlan[] = [];
  for (const name of names) {
    const sources: Array<Located | undefined> = models.map((m) => m.tensors.get(name));
    const missing = models.filter((_, i) => !sources[i]);
    if (missing.length > 0 && /(^|\.)lm_head\.weight$/.test(name)) {
      // A model with tied word embeddings stores no lm_head: its input embedding is its output
      // layer, and mergekit merges that in its place (tied_names). Same here when exactly one
      // embedding of the same shape is found.
      const shape = sources.find((s) => s)!.info.shape;
      models.forEach((m, i) => {
        if (sources[i]) return;
        const candidates = m.order.filter((n) => TIED_INPUT_EMBEDDING.test(n) && sameShape(m.tensors.get(n)!.info.shape, shape));
        if (candidates.length === 1) {
          sources[i] = m.tensors.get(candidates[0]!)!;
          tied.push({ tensor: name, model: m.label, from: candidates[0]! });
        }
      });
    }
    const stillMissing = models.filter((_, i) => !sources[i]);
    if (stillMissing.length > 0) {
      const has = models.filter((_, i) => sources[i]).map((m) => `"${m.label}"`).join(', ');
      const hint = /lm_head/.test(name) ? ' (a model with tied word embeddings has no lm_head; none of its embeddings matched the shape to stand in)' : '';
      throw new MergeKernelsError('MISSING_TENSOR', `tensor "${name}" is in ${has} but missing from ${stillMissing.map((m) => `"${m.label}"`).join(', ')}${hint}: the models must have the same tensors`, name);
    }
    const located = sources as Located[];
    const first = located[0]!.info;
    located.forEach((s, i) => {
      if (!sameShape(s.info.shape, first.shape)) {
        throw new MergeKernelsError('SHAPE_MISMATCH', `tensor "${name}" has shape [${first.shape.join(', ')}] in "${models[0]!.label}" but [${s.info.shape.join(', ')}] in "${models[i]!.label}"${/embed|lm_head|wte/.test(name) ? ' (different vocabularies? tokenizer merging is not supported)' : ''}`, name);
      }
    });
    const f8 = located.findIndex((s) => s.info.dtype.startsWith('F8'));
    if (f8 >= 0) throw new MergeKernelsError('INVALID_SAFETENSORS', `tensor "${name}" is ${located[f8]!.info.dtype} in "${models[f8]!.label}": float8 tensors cannot be decoded for merging`, name);
    const isFloat = located.map((s) => FLOAT_DTYPES.has(s.info.dtype));
    if (isFloat.some((f) => f !== isFloat[0]) || (!isFloat[0] && located.some((s) => s.info.dtype !== first.dtype))) {
      throw new MergeKernelsError('SHAPE_MISMATCH', `tensor "${name}" has dtypes ${located.map((s, i) => `${s.info.dtype} in "${models[i]!.label}"`).join(', ')}: float tensors merge whatever their float dtype, other tensors must have one dtype`, name);
    }
    const numel = numelOf(first.shape);
    if (!isFloat[0]) {
      plans.push({ name, shape: first.shape, numel, kind: 'copy', sources: located, outDtype: first.dtype, outBytes: first.end - first.begin });
      continue;
    }
    const outDtype: SafetensorsDtype = config.outDtype ? OUT_DTYPE[config.outDtype] : config.dtype ? OUT_DTYPE[config.dtype] : first.dtype === 'F64' ? 'F32' : first.dtype;
    plans.push({ name, shape: first.shape, numel, kind: 'merge', sources: located, outDtype, outBytes: numel * dtypeSize(outDtype)! });
  }
  return plans;
}

/** Splits the tensors into files of at most `max` bytes (a single tensor may exceed it), as mergekit's writer does. */
function planShards(plans: TensorPlan[], max: number): TensorPlan[][] {
  const shards: TensorPlan[][] = [];
  let current: TensorPlan[] = [];
  let size = 0;
  for (const p of plans) {
    if (current.length > 0 && size + p.outBytes > max) { shards.push(current); current = []; size = 0; }
    current.push(p);
    size += p.outBytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

function shardName(i: number, n: number): string {
  if (n === 1) return 'model.safetensors';
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/** FNV-1a (32-bit) of a string's UTF-16 code units: a short, dependency-free config fingerprint. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The config as recorded in the output's __metadata__. */
function configSummary(config: MergeConfig): string {
  return JSON.stringify({
    merge_method: config.mergeMethod, base_model: config.baseModel,
    models: config.models.map((m) => ({ model: m.model, parameters: m.parameters })),
    parameters: config.parameters, dtype: config.dtype, out_dtype: config.outDtype,
  });
}

/** Output as Blobs, built from the encoded parts (memory: the output's size, unavoidable for a Blob). */
export function blobOutput(): OutputTarget & { readonly files: ReadonlyMap<string, Blob> } {
  const files = new Map<string, Blob>();
  return {
    files,
    async create(name) {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      return {
        async write(bytes) { parts.push(bytes as Uint8Array<ArrayBuffer>); },
        async close() { files.set(name, new Blob(parts, { type: 'application/octet-stream' })); parts.length = 0; },
      };
    },
    async commit() {},
    async abort() { files.clear(); },
  };
}

function resolveBackend(backend: unknown): Backend {
  if (backend instanceof MergeKernels) return MergeKernels.backendOf(backend);
  const b = backend as Backend | null;
  if (b !== null && typeof b === 'object' && typeof b.name === 'string' && typeof b.findNonFinite === 'function') return b;
  throw new MergeKernelsError('INVALID_TYPE', `backend: expected a context from init() (or its Backend), got ${describe(backend)}`, 'backend');
}

/**
 * Merges safetensors checkpoints as a mergekit config describes, streaming: each tensor is read
 * in chunks of `chunkSize` bytes of float32 per input, merged by the method and written in the
 * output dtype before the next chunk is read. Arithmetic is float32; inputs are first rounded to
 * the config's `dtype` when it names a 16-bit one. Every disagreement between the models
 * (missing tensors, shapes, dtypes) is found before anything is written; a NaN or infinity in an
 * input fails with NON_FINITE naming the model and the tensor. On any failure the output target
 * is aborted, so no partial model is left behind.
 */
/** The keys of MergeModelsOptions (an unknown one is an error). */
export const MERGE_MODELS_OPTIONS: readonly (keyof MergeModelsOptions)[] = ['config', 'inputs', 'methods', 'backend', 'output', 'chunkSize', 'maxShardSize', 'seed', 'onProgress'];

export async function mergeModels(options: MergeModelsOptions): Promise<MergeModelsResult> {
  checkOptions('options', options, MERGE_MODELS_OPTIONS, true);
  const backend = resolveBackend(options.backend);
  if (options.methods === null || typeof options.methods !== 'object') throw new MergeKernelsError('INVALID_TYPE', `methods: expected a table of MethodSpecs by name, got ${describe(options.methods)}`, 'methods');
  const config = parseMergeConfig(options.config);
  const spec = checkConfigAgainst(config, options.methods);
  const chunkBytes = positiveInteger('chunkSize', options.chunkSize, 64 * MiB);
  const chunkEntries = Math.max(1, Math.floor(chunkBytes / 4));
  const maxShard = positiveInteger('maxShardSize', options.maxShardSize, 5e9);
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new MergeKernelsError('INVALID_OPTION', `seed: expected an integer in [0, 2^32), got ${describe(seed)}`, 'seed');
  const inputs = options.inputs;
  if (inputs === null || (typeof inputs !== 'object' && typeof inputs !== 'function')) throw new MergeKernelsError('INVALID_TYPE', `inputs: expected a record of model name → input, or a function, got ${describe(inputs)}`, 'inputs');
  const labels = [...(config.baseModel !== undefined ? [config.baseModel] : []), ...config.models.map((m) => m.model)];
  const output = options.output ?? blobOutput();
  const onProgress = options.onProgress;

  const opened: OpenModel[] = [];
  let committed = false;
  try {
    for (const label of new Set(labels)) {
      let input: ModelInput | undefined;
      if (typeof inputs === 'function') input = await inputs(label);
      else if (Object.prototype.hasOwnProperty.call(inputs, label)) input = inputs[label];
      if (input === undefined) throw new MergeKernelsError('INVALID_OPTION', `inputs: no input for model "${label}" of the config`, 'inputs');
      opened.push(await openModel(input, label));
    }
    // A model listed twice is read twice from one source.
    const models = labels.map((l) => opened.find((m) => m.label === l)!);
    const hasBase = config.baseModel !== undefined;
    const tied: MergeModelsResult['tied'] = [];
    const plans = planTensors(models, config, tied);
    const positions = layerPositions(plans.map((p) => p.name));
    const paramsOf = (p: TensorPlan): TensorParams => resolveTensorParams(config, spec, p.name, positions.get(p.name)!);
    const summary = configSummary(config);
    const metadata: Record<string, string> = { format: 'pt', merge_method: config.mergeMethod, merge_config: summary, merge_config_fnv1a: fnv1a(summary), merged_with: 'merge-kernels' };
    const shards = planShards(plans, maxShard);
    const headers = shards.map((s) => encodeSafetensorsHeader(s.map((p) => ({ name: p.name, dtype: p.outDtype, shape: p.shape })), metadata));
    const totalBytes = headers.reduce((a, h) => a + h.header.length + h.dataLength, 0);
    // Parameters that shape the whole run (TIES' scope and semantics) are read as set for no
    // particular tensor.
    const method = spec.create({ models: config.models.length, seed, backend, global: resolveTensorParams(config, spec, '', 0).global });
    const stats = { bytesRead: 0, bytesWritten: 0 };
    const roundTo = config.dtype === 'float16' ? 'F16' : config.dtype === 'bfloat16' ? 'BF16' : undefined;

    /** Reads and decodes entries [offset, offset + length) of a tensor from every input. */
    const readChunk = async (p: TensorPlan, offset: number, length: number): Promise<Chunk> => {
      const values = await Promise.all(p.sources.map(async (s, i) => {
        const size = dtypeSize(s.info.dtype)!;
        const at = s.dataOffset + s.info.begin + offset * size;
        const bytes = length === 0 ? new Uint8Array(0) : await s.file.read(at, at + length * size);
        if (bytes.length !== length * size) throw new MergeKernelsError('INVALID_SAFETENSORS', `model "${models[i]!.label}": reading tensor "${p.name}" from ${s.file.name} gave ${bytes.length} of ${length * size} bytes: the file changed or is truncated`, p.name);
        stats.bytesRead += bytes.length;
        let x = toFloat32(s.info.dtype, bytes);
        if (roundTo) x = decodeToFloat32(roundTo, encodeFromFloat32(roundTo, x));
        const bad = await backend.findNonFinite(x);
        if (bad >= 0) throw new MergeKernelsError('NON_FINITE', `model "${models[i]!.label}", tensor "${p.name}": ${x[bad]} at index ${offset + bad}; merging needs finite values`, p.name);
        return x;
      }));
      return { offset, length, base: hasBase ? values[0] : undefined, models: hasBase ? values.slice(1) : values };
    };
    const progress = (phase: MergeProgress['phase'], p: TensorPlan, index: number) =>
      onProgress?.({ phase, tensor: p.name, index, tensors: plans.length, bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten, totalBytes });

    for (let pass = 0; pass < method.modelPasses; pass++) {
      for (const [index, p] of plans.entries()) {
        if (p.kind !== 'merge') continue;
        const info: TensorInfo = { name: p.name, shape: p.shape, numel: p.numel };
        const params = paramsOf(p);
        for (const { offset, length } of chunksOf(p.numel, alignChunk(chunkEntries, 1), undefined, [])) {
          await method.observeModel(pass, info, params, await readChunk(p, offset, length));
          progress('observe-model', p, index);
        }
      }
    }

    const files: MergeModelsResult['files'] = [];
    let index = 0;
    for (const [k, shard] of shards.entries()) {
      const name = shardName(k, shards.length);
      const { header, dataLength } = headers[k]!;
      const file = await output.create(name, header.length + dataLength);
      const write = async (bytes: Uint8Array) => { await file.write(bytes); stats.bytesWritten += bytes.length; };
      await write(header);
      for (const p of shard) {
        const written = async (bytes: Uint8Array) => { await write(bytes); progress('merge', p, index); };
        if (p.kind === 'copy') await copyTensor(p, chunkBytes, written, stats);
        else await mergeOne(method, p, paramsOf(p), chunkEntries, readChunk, written);
        progress('merge', p, index++);
      }
      await file.close();
      files.push({ name, size: header.length + dataLength });
    }
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      shards.forEach((s, k) => { for (const p of s) weightMap[p.name] = shardName(k, shards.length); });
      const json = new TextEncoder().encode(JSON.stringify({ metadata: { total_size: plans.reduce((a, p) => a + p.outBytes, 0), ...metadata }, weight_map: weightMap }, null, 2) + '\n');
      const file = await output.create('model.safetensors.index.json', json.length);
      await file.write(json);
      await file.close();
      files.push({ name: 'model.safetensors.index.json', size: json.length });
    }
    await output.commit();
    committed = true;
    const blobs = (output as { files?: ReadonlyMap<string, Blob> }).files;
    if (blobs instanceof Map) for (const f of files) f.blob = blobs.get(f.name);
    return {
      method: config.mergeMethod, files, blob: files.length === 1 ? files[0]!.blob : undefined,
      tensorsMerged: plans.filter((p) => p.kind === 'merge').length, tensorsCopied: plans.filter((p) => p.kind === 'copy').length,
      tied, bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten, metadata,
    };
  } finally {
    if (!committed) await output.abort();
    for (const m of opened) await m.close();
  }
}

async function mergeOne(
  method: MergeMethod, p: TensorPlan, params: TensorParams, chunkEntries: number,
  readChunk: (p: TensorPlan, offset: number, length: number) => Promise<Chunk>, write: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const plan = method.tensor({ name: p.name, shape: p.shape, numel: p.numel }, params);
  const size = alignChunk(chunkEntries, plan.rowAlign);
  for (let pass = 0; pass < plan.passes; pass++) {
    for (const { offset, length } of chunksOf(p.numel, size, undefined, [])) await plan.observe(pass, await readChunk(p, offset, length));
  }
  for (const { offset, length } of chunksOf(p.numel, size, undefined, [])) {
    const chunk = await readChunk(p, offset, length);
    const out = new Float32Array(length);
    await plan.apply(chunk, out);
    if (length > 0) await write(fromFloat32(p.outDtype as 'F32' | 'F16' | 'BF16', out));
  }
}

/** Copies a non-float tensor's bytes from the base (or first) model unchanged, in chunks. */
async function copyTensor(p: TensorPlan, chunkBytes: number, write: (bytes: Uint8Array) => Promise<void>, stats: { bytesRead: number }): Promise<void> {
  const s = p.sources[0]!;
  const begin = s.dataOffset + s.info.begin, end = s.dataOffset + s.info.end;
  for (let at = begin; at < end; at += chunkBytes) {
    const bytes = await s.file.read(at, Math.min(end, at + chunkBytes));
    stats.bytesRead += bytes.length;
    await write(bytes);
  }
}
