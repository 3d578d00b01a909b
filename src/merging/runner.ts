// The streaming merge runner: merges safetensors checkpoints tensor by tensor, and within a tensor
// chunk by chunk, reading only the byte ranges each chunk needs, into buffers allocated once per
// run. Peak memory is about (2 × inputs + 2) chunks, whatever the model size. Runtime-neutral:
// inputs are Blobs/Files/ArrayBuffers or any ModelSource (src/node/io.ts opens paths); output
// goes to an OutputTarget (Blobs here, a folder with temp-file + rename in src/node/io.ts).
//
// The protocol with a method is that of src/merging/types.ts and driver.ts: model passes over
// every tensor, then per tensor its observation passes and one apply pass; where the output can
// be rewritten in place (OutputFile.writeAt), the chunks the method revisits are applied again
// and rewritten, as the in-memory driver does (issue 15: no majority pass over every input).
import type { Backend } from '../backends.ts';
import { MergeKernels } from '../api.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import {
  dtypeSize, encodeSafetensorsHeader, parseSafetensorsHeaderFromReader,
  type SafetensorsDtype, type SafetensorsHeader, type SafetensorsTensorInfo,
} from '../safetensors.ts';
import { checkConfigAgainst, layerOf, layerPositions, parseMergeConfig, resolveSliceParams, resolveTensorParams, type ConfigDtype, type MergeConfig } from './config.ts';
import { alignChunk, chunksOf } from './driver.ts';
import { folderFiles } from './model-folder.ts';
import { decodeInto, encodeInto, readsInPlace, roundInPlace } from './codec.ts';
import type { Chunk, MergeMethod, MethodSpec, TensorInfo, TensorParams } from './types.ts';
import { options as checkOptions } from '../validate.ts';

/** One file readable by byte range. */
export interface ByteSource {
  /** A name for messages (a path, a File's name). */
  readonly name: string;
  readonly size: number;
  /** Bytes [begin, end) of the file. */
  read(begin: number, end: number): Promise<Uint8Array>;
  /**
   * Optional: reads bytes [begin, begin + target.length) into `target` (a buffer the runner
   * reuses for every chunk) and returns how many were read (fewer only at the end of the file).
   * Without it, the runner copies what `read` returns into its buffer.
   */
  readInto?(begin: number, target: Uint8Array): Promise<number>;
}

/** A checkpoint: one safetensors file or its shards. */
export interface ModelSource {
  readonly files: readonly ByteSource[];
  /** Releases file handles; called when the merge ends. */
  close?(): Promise<void>;
  /**
   * Optional: another file of the model's folder by name (`config.json`, `generation_config.json`,
   * tokenizer files), or undefined when it has none. The output folder gets the base (or first)
   * model's config and the tokenizer files from these; without it, none are written.
   */
  sideFile?(name: string): Promise<ByteSource | undefined>;
}

/** A Blob/File/ArrayBuffer/Uint8Array holding a safetensors file, an array of them (shards), or a ModelSource. */
export type ModelInput = ModelSource | Blob | ArrayBuffer | Uint8Array | ReadonlyArray<Blob | ArrayBuffer | Uint8Array>;

/**
 * Where the merged files go. Files are written one at a time, each from start to end; with
 * `writeAt`, chunks already written may then be rewritten in place before the file is closed.
 */
export interface OutputTarget {
  /** Starts a file of `size` bytes under its final name. */
  create(name: string, size: number): Promise<OutputFile>;
  /** Every file is complete: make them visible under their names. */
  commit(): Promise<void>;
  /** The merge failed: remove everything written. */
  abort(): Promise<void>;
}

export interface OutputFile {
  /** Appends `bytes`: a view into a buffer the runner reuses, so copy what must outlive the call. */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Optional: overwrites bytes already written, from `position` (bytes from the file's start).
   * With it the runner rewrites the few chunks whose zero-sign guess (TIES) was wrong instead
   * of reading every input once more for the paper's majority pass.
   */
  writeAt?(position: number, bytes: Uint8Array): Promise<void>;
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
   * Bytes of float32 per input per chunk (default 2 MiB: small enough that a chunk decoded is still in cache when merged; 1–2 MiB were fastest in bench/cli-merge.mjs); a chunk always holds at least one of
   * the method's rows. Buffers are allocated once per run: peak memory is about (2 × inputs + 2)
   * chunks (the chunk being merged and the next one being read, per input, and the output chunk),
   * plus half that per 16-bit input for the decoded values.
   */
  chunkSize?: number;
  /** Largest output file in bytes before the model is sharded (default 5e9, mergekit's). */
  maxShardSize?: number;
  /** Copy the tokenizer files of the base (or first) model when the config has no tokenizer_source (default true, as mergekit's --copy-tokenizer). */
  copyTokenizer?: boolean;
  /** Write README.md (a model card carrying the config) and mergekit_config.yml (default true, as mergekit's --write-model-card). */
  writeModelCard?: boolean;
  /** The model card's title (default "Untitled Model (1)", mergekit's; the CLI gives the output folder's name). */
  modelName?: string;
  /** Seed of the methods' random streams (DARE, DELLA). Default 0. */
  seed?: number;
  /** Called after every chunk written (and every chunk read by a model pass). */
  onProgress?: (p: MergeProgress) => void;
}

export interface MergeModelsResult {
  method: string;
  /**
   * Output files in the order written: the weights (model.safetensors, or shards and
   * model.safetensors.index.json), then config.json, generation_config.json, the tokenizer files,
   * README.md and mergekit_config.yml where there are any; with Blob output each has its `blob`.
   */
  files: Array<{ name: string; size: number; blob?: Blob }>;
  /** model.safetensors as a Blob (Blob output, unsharded). */
  blob: Blob | undefined;
  tensorsMerged: number;
  /** Non-float tensors (integer buffers) copied from the base, or first, model. */
  tensorsCopied: number;
  /** Tied weights substituted: a model without `tensor` gave its `from` instead. */
  tied: Array<{ tensor: string; model: string; from: string }>;
  /** Bytes of tensor data and headers read from the inputs. */
  bytesRead: number;
  /** Bytes of the weight files written (the shards; not the index, config, tokenizer or card). */
  bytesWritten: number;
  /** Chunks written a second time in place (TIES' zero sign guessed wrong; see OutputFile.writeAt). */
  chunksRewritten: number;
  metadata: Record<string, string>;
}

const MiB = 1024 * 1024;
const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F64', 'F32', 'F16', 'BF16']);
const OUT_DTYPE: Record<ConfigDtype, 'F32' | 'F16' | 'BF16'> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
// Embeddings that a model with tied word embeddings uses as its output layer (HF's tie_word_embeddings).
const TIED_INPUT_EMBEDDING = /(^|\.)(embed_tokens|wte|word_embeddings|embed_in)\.weight$/;

/** One tensor of one input: where its bytes are. */
export interface Located { file: ByteSource; dataOffset: number; info: SafetensorsTensorInfo }

export interface OpenModel {
  label: string; tensors: Map<string, Located>; order: string[]; close: () => Promise<void>;
  sideFile?: (name: string) => Promise<ByteSource | undefined>;
}

/** What the runner does with one output tensor. */
interface TensorPlan {
  name: string;
  shape: number[];
  numel: number;
  kind: 'merge' | 'copy';
  /** Per input (base first when there is one). */
  sources: Located[];
  /** The model of each source, for messages. */
  labels: string[];
  /** Whether sources[0] is the base. */
  hasBase: boolean;
  /** The group (slice) whose method instance merges it, and its layer position t in it. */
  group: number;
  t: number;
  outDtype: SafetensorsDtype;
  outBytes: number;
}

function positiveInteger(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new MergeKernelsError('INVALID_OPTION', `${name}: expected a positive integer number of bytes, got ${describe(v)}`, name);
  return v;
}

function bufferSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name, size: bytes.length,
    read: async (b, e) => bytes.subarray(b, e),
    async readInto(b, target) {
      const part = bytes.subarray(b, b + target.length);
      target.set(part);
      return part.length;
    },
  };
}

function blobSource(name: string, blob: Blob): ByteSource {
  // A Blob has no read into a given buffer (a BYOB stream reads from the start): one copy from the slice.
  const read = async (b: number, e: number) => new Uint8Array(await blob.slice(b, e).arrayBuffer());
  return {
    name, size: blob.size, read,
    async readInto(b, target) {
      const part = await read(b, b + target.length);
      target.set(part);
      return part.length;
    },
  };
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

export async function openModel(input: ModelInput, label: string): Promise<OpenModel> {
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
  const sideFile = source.sideFile ? (name: string) => source.sideFile!(name) : undefined;
  return { label, tensors, order, close: async () => { await source.close?.(); }, sideFile };
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** An output tensor before it is checked: its name, the tensor of each input model it is merged from, its group and layer position. */
interface Wanted { name: string; inputs: Array<{ model: OpenModel; name: string }>; group: number; t: number }

/** Inputs merged by one instance of the method: the one group of a models config, or a slice. */
interface Group {
  /** Where in the config, for messages ('' for a models config, else `slices[i]`). */
  where: string;
  /** The models, base first when there is one (a model may be there twice: two layer ranges of it). */
  labels: string[];
  hasBase: boolean;
  /** The parameters of one of its tensors at layer position t. */
  params(name: string, t: number): TensorParams;
}

/** Which tensors the output has, and where each comes from; every disagreement between the models is an error here, before anything is written. */
function planTensors(wanted: Wanted[], groups: Group[], config: MergeConfig, tied: MergeModelsResult['tied']): TensorPlan[] {
  const plans: TensorPlan[] = [];
  for (const w of wanted) {
    const name = w.name;
    const models = w.inputs.map((x) => x.model);
    const inputName = (i: number) => w.inputs[i]!.name;
    // A renamed layer (slices) says which layer of the model it is.
    const of = (i: number) => `"${models[i]!.label}"${inputName(i) !== name ? ` (as "${inputName(i)}")` : ''}`;
    const sources: Array<Located | undefined> = w.inputs.map((x) => x.model.tensors.get(x.name));
    const missing = models.filter((_, i) => !sources[i]);
    if (missing.length > 0 && /(^|\.)lm_head\.weight$/.test(name) && sources.some((s) => s)) {
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
    const stillMissing = models.map((_, i) => i).filter((i) => !sources[i]);
    if (stillMissing.length > 0) {
      const has = models.map((_, i) => i).filter((i) => sources[i]).map(of).join(', ');
      const hint = /lm_head/.test(name) ? ' (a model with tied word embeddings has no lm_head; none of its embeddings matched the shape to stand in)' : '';
      throw new MergeKernelsError('MISSING_TENSOR', `tensor "${name}" is in ${has || 'none of the models'} but missing from ${stillMissing.map(of).join(', ')}${hint}: the models must have the same tensors`, name);
    }
    const located = sources as Located[];
    const first = located[0]!.info;
    located.forEach((s, i) => {
      if (!sameShape(s.info.shape, first.shape)) {
        throw new MergeKernelsError('SHAPE_MISMATCH', `tensor "${name}" has shape [${first.shape.join(', ')}] in ${of(0)} but [${s.info.shape.join(', ')}] in ${of(i)}${/embed|lm_head|wte/.test(name) ? ' (different vocabularies? tokenizer merging is not supported)' : ''}`, name);
      }
    });
    const f8 = located.findIndex((s) => s.info.dtype.startsWith('F8'));
    if (f8 >= 0) throw new MergeKernelsError('UNSUPPORTED_DTYPE', `tensor "${name}" is ${located[f8]!.info.dtype} in ${of(f8)}: float8 tensors cannot be decoded for merging (convert the model to bfloat16 or float16 first)`, name);
    const isFloat = located.map((s) => FLOAT_DTYPES.has(s.info.dtype));
    if (isFloat.some((f) => f !== isFloat[0]) || (!isFloat[0] && located.some((s) => s.info.dtype !== first.dtype))) {
      throw new MergeKernelsError('DTYPE_MISMATCH', `tensor "${name}" has dtypes ${located.map((s, i) => `${s.info.dtype} in ${of(i)}`).join(', ')}: float tensors merge whatever their float dtype, other tensors must have one dtype`, name);
    }
    const numel = numelOf(first.shape);
    const base = { name, shape: first.shape, numel, sources: located, labels: models.map((m) => m.label), hasBase: groups[w.group]!.hasBase, group: w.group, t: w.t };
    if (!isFloat[0]) {
      plans.push({ ...base, kind: 'copy', outDtype: first.dtype, outBytes: first.end - first.begin });
      continue;
    }
    const outDtype: SafetensorsDtype = config.outDtype ? OUT_DTYPE[config.outDtype] : config.dtype ? OUT_DTYPE[config.dtype] : first.dtype === 'F64' ? 'F32' : first.dtype;
    plans.push({ ...base, kind: 'merge', outDtype, outBytes: numel * dtypeSize(outDtype)! });
  }
  return plans;
}

/** The tensors of a `models` config: every tensor of the models, by its name, in one group. */
function modelsPlan(config: MergeConfig, spec: MethodSpec, models: OpenModel[]): { wanted: Wanted[]; groups: Group[] } {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const m of models) for (const n of m.order) if (!seen.has(n)) { seen.add(n); names.push(n); }
  const positions = layerPositions(names);
  const group: Group = {
    where: '', labels: models.map((m) => m.label), hasBase: config.baseModel !== undefined,
    params: (name, t) => resolveTensorParams(config, spec, name, t),
  };
  return { wanted: names.map((name) => ({ name, inputs: models.map((model) => ({ model, name })), group: 0, t: positions.get(name)! })), groups: [group] };
}

// Tensors outside the layers that come before them (mergekit's pre_weights): taken from the first
// slice's models; the others (final norm, lm_head: post_weights) from the last slice's.
const EMBEDDING = /(^|\.)(embed_tokens|embed_in|embed_positions|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings|embeddings)(\.|$)/;

/** A model's layer stack: the prefix of its numbered layers and, per layer, the rest of each tensor name. */
function layerStack(m: OpenModel): { prefix: string; layers: Map<number, string[]>; count: number } | undefined {
  const stacks = new Map<string, Map<number, string[]>>();
  for (const name of m.order) {
    const at = layerOf(name);
    if (!at) continue;
    let layers = stacks.get(at.prefix);
    if (!layers) stacks.set(at.prefix, layers = new Map());
    let rest = layers.get(at.index);
    if (!rest) layers.set(at.index, rest = []);
    rest.push(at.rest);
  }
  if (stacks.size > 1) {
    throw new MergeKernelsError('INVALID_OPTION', `slices: model "${m.label}" has ${stacks.size} layer stacks (${[...stacks.keys()].join(', ')}); slices take the layers of a model with one (mergekit's modules, which slice each, are not supported)`, 'slices');
  }
  const [prefix, layers] = [...stacks][0] ?? [];
  return prefix === undefined ? undefined : { prefix, layers: layers!, count: Math.max(...layers!.keys()) + 1 };
}

/**
 * The tensors of a `slices` config, as mergekit's planner lays them out: the embeddings from the
 * first slice's models, then each slice's layers (layer `start + k` of every source merged into
 * output layer `n + k`, renumbered in the tensor names, with t = k / (length − 1) within the
 * slice), then the other non-layer tensors from the last slice's models. One group per slice.
 * Returns also, per output layer, the layer of the slice's first source it came from.
 */
function slicesPlan(config: MergeConfig, spec: MethodSpec, byLabel: (label: string) => OpenModel): { wanted: Wanted[]; groups: Group[]; layers: number[] } {
  const slices = config.slices!;
  const stacks = new Map<string, NonNullable<ReturnType<typeof layerStack>>>();
  const stackOf = (label: string) => {
    let s = stacks.get(label);
    if (!s) {
      const found = layerStack(byLabel(label));
      if (!found) throw new MergeKernelsError('INVALID_OPTION', `slices: model "${label}" has no numbered layers (tensor names such as model.layers.0.…) to take a layer_range of`, 'slices');
      stacks.set(label, s = found);
    }
    return s;
  };
  const groups: Group[] = [];
  const layersWanted: Wanted[] = [];
  const layers: number[] = [];
  let prefix: string | undefined;
  slices.forEach((slice, i) => {
    const baseAt = slice.baseModel === undefined ? -1 : slice.sources.findIndex((src) => src.model === slice.baseModel);
    const merged = slice.sources.filter((_, j) => j !== baseAt);
    const ordered = baseAt >= 0 ? [slice.sources[baseAt]!, ...merged] : merged;
    groups.push({ where: `slices[${i}]`, labels: ordered.map((src) => src.model), hasBase: baseAt >= 0, params: (name, t) => resolveSliceParams(config, spec, slice, merged, name, t) });
    slice.sources.forEach((src, j) => {
      const stack = stackOf(src.model);
      prefix ??= stack.prefix;
      if (stack.prefix !== prefix) throw new MergeKernelsError('INVALID_OPTION', `slices[${i}].sources[${j}]: model "${src.model}" has its layers under ${stack.prefix}, the models before it under ${prefix}`, `slices[${i}].sources[${j}]`);
      if (src.layerRange[1] > stack.count) {
        throw new MergeKernelsError('INVALID_OPTION', `slices[${i}].sources[${j}].layer_range: [${src.layerRange.join(', ')}] takes layers up to ${src.layerRange[1] - 1}, but model "${src.model}" has ${stack.count} (0 to ${stack.count - 1})`, `slices[${i}].sources[${j}].layer_range`);
      }
    });
    const length = slice.sources[0]!.layerRange[1] - slice.sources[0]!.layerRange[0];
    for (let k = 0; k < length; k++) {
      const t = length > 1 ? k / (length - 1) : 1;
      const first = ordered[0]!;
      const out = layers.length;
      for (const rest of stackOf(first.model).layers.get(first.layerRange[0] + k) ?? []) {
        layersWanted.push({
          name: `${prefix}.${out}.${rest}`,
          inputs: ordered.map((src) => ({ model: byLabel(src.model), name: `${prefix}.${src.layerRange[0] + k}.${rest}` })),
          group: i, t,
        });
      }
      layers.push(slice.sources[0]!.layerRange[0] + k);
    }
  });
  const outside = (g: number, keep: (name: string) => boolean): Wanted[] => {
    const models = groups[g]!.labels.map(byLabel);
    const names: string[] = [];
    for (const m of models) for (const n of m.order) if (!layerOf(n) && keep(n) && !names.includes(n)) names.push(n);
    return names.map((name) => ({ name, inputs: models.map((model) => ({ model, name })), group: g, t: 0 }));
  };
  const pre = outside(0, (n) => EMBEDDING.test(n));
  const post = outside(groups.length - 1, (n) => !EMBEDDING.test(n));
  return { wanted: [...pre, ...layersWanted, ...post], groups, layers };
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
    ...(config.slices
      ? { slices: config.slices.map((x) => ({ sources: x.sources.map((y) => ({ model: y.model, layer_range: y.layerRange, parameters: y.parameters })), parameters: x.parameters, base_model: x.baseModel })) }
      : { models: config.models.map((m) => ({ model: m.model, parameters: m.parameters })) }),
    parameters: config.parameters, dtype: config.dtype, out_dtype: config.outDtype,
  });
}

/** Output as Blobs, built from copies of the written parts (memory: the output's size, unavoidable for a Blob). */
export function blobOutput(): OutputTarget & { readonly files: ReadonlyMap<string, Blob> } {
  const files = new Map<string, Blob>();
  return {
    files,
    async create(name) {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      const starts: number[] = [];
      let size = 0;
      return {
        async write(bytes) {
          starts.push(size);
          parts.push(bytes.slice() as Uint8Array<ArrayBuffer>);
          size += bytes.length;
        },
        async writeAt(position, bytes) {
          if (position < 0 || position + bytes.length > size) throw new RangeError(`writeAt: [${position}, ${position + bytes.length}) is outside the ${size} bytes written`);
          // The last part starting at or before `position`, then on through the parts it spans.
          let lo = 0, hi = starts.length - 1;
          while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (starts[mid]! <= position) lo = mid; else hi = mid - 1; }
          for (let k = lo, done = 0; done < bytes.length; k++) {
            const at = position + done - starts[k]!, n = Math.min(parts[k]!.length - at, bytes.length - done);
            parts[k]!.set(bytes.subarray(done, done + n), at);
            done += n;
          }
        },
        async close() { files.set(name, new Blob(parts, { type: 'application/octet-stream' })); parts.length = 0; },
      };
    },
    async commit() {},
    async abort() { files.clear(); },
  };
}

export function resolveBackend(backend: unknown): Backend {
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
export const MERGE_MODELS_OPTIONS: readonly (keyof MergeModelsOptions)[] = [
  'config', 'inputs', 'methods', 'backend', 'output', 'chunkSize', 'maxShardSize', 'seed', 'onProgress', 'copyTokenizer', 'writeModelCard', 'modelName',
];

function booleanOption(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new MergeKernelsError('INVALID_OPTION', `${name}: expected true or false, got ${describe(v)}`, name);
  return v;
}

export async function mergeModels(options: MergeModelsOptions): Promise<MergeModelsResult> {
  checkOptions('options', options, MERGE_MODELS_OPTIONS, true);
  const backend = resolveBackend(options.backend);
  if (options.methods === null || typeof options.methods !== 'object') throw new MergeKernelsError('INVALID_TYPE', `methods: expected a table of MethodSpecs by name, got ${describe(options.methods)}`, 'methods');
  const config = parseMergeConfig(options.config);
  const spec = checkConfigAgainst(config, options.methods);
  const chunkBytes = positiveInteger('chunkSize', options.chunkSize, 2 * MiB);
  const chunkEntries = Math.max(1, Math.floor(chunkBytes / 4));
  const maxShard = positiveInteger('maxShardSize', options.maxShardSize, 5e9);
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new MergeKernelsError('INVALID_OPTION', `seed: expected an integer in [0, 2^32), got ${describe(seed)}`, 'seed');
  const inputs = options.inputs;
  if (inputs === null || (typeof inputs !== 'object' && typeof inputs !== 'function')) throw new MergeKernelsError('INVALID_TYPE', `inputs: expected a record of model name → input, or a function, got ${describe(inputs)}`, 'inputs');
  // Every model the config names, base first (for a models config: the inputs in order).
  const labels = config.slices
    ? [...new Set([...(config.baseModel !== undefined ? [config.baseModel] : []), ...config.slices.flatMap((s) => [...(s.baseModel !== undefined ? [s.baseModel] : []), ...s.sources.map((x) => x.model)])])]
    : [...(config.baseModel !== undefined ? [config.baseModel] : []), ...config.models.map((m) => m.model)];
  const copyTokenizer = booleanOption('copyTokenizer', options.copyTokenizer, true);
  const writeModelCard = booleanOption('writeModelCard', options.writeModelCard, true);
  const modelName = options.modelName ?? 'Untitled Model (1)';
  if (typeof modelName !== 'string') throw new MergeKernelsError('INVALID_OPTION', `modelName: expected a string, got ${describe(modelName)}`, 'modelName');
  const output = options.output ?? blobOutput();
  const onProgress = options.onProgress;

  const opened: OpenModel[] = [];
  let committed = false;
  try {
    for (const label of new Set(labels)) {
      let input: ModelInput | undefined;
      if (typeof inputs === 'function') input = await inputs(label);
      else if (Object.prototype.hasOwnProperty.call(inputs, label)) input = inputs[label];
      if (input === undefined) throw new MergeKernelsError('MISSING_FILE', `inputs: no input for model "${label}" of the config`, 'inputs');
      opened.push(await openModel(input, label));
    }
    // A model listed twice is read twice from one source.
    const byLabel = (label: string) => opened.find((m) => m.label === label)!;
    const { wanted, groups, layers } = config.slices
      ? slicesPlan(config, spec, byLabel)
      : { ...modelsPlan(config, spec, labels.map(byLabel)), layers: undefined };
    const tied: MergeModelsResult['tied'] = [];
    const plans = planTensors(wanted, groups, config, tied);
    const paramsOf = (p: TensorPlan): TensorParams => groups[p.group]!.params(p.name, p.t);
    const summary = configSummary(config);
    const metadata: Record<string, string> = { format: 'pt', merge_method: config.mergeMethod, merge_config: summary, merge_config_fnv1a: fnv1a(summary), merged_with: 'merge-kernels' };
    // The folder's other files are read (and checked) before anything is written.
    const configDtype = config.outDtype ?? config.dtype;
    const mergedDtypes = new Set(plans.filter((p) => p.kind === 'merge').map((p) => p.outDtype));
    const donor = byLabel(config.baseModel ?? (config.slices ? config.slices[0]!.sources[0]!.model : config.models[0]!.model));
    const extraFiles = await folderFiles({
      donor,
      tokenizer: config.tokenizerSource !== undefined ? { model: byLabel(config.tokenizerSource), explicit: true } : copyTokenizer ? { model: donor, explicit: false } : undefined,
      dtype: configDtype ? OUT_DTYPE[configDtype] : mergedDtypes.size === 1 ? [...mergedDtypes][0] : undefined,
      layers,
      card: writeModelCard ? { name: modelName, method: config.mergeMethod, baseModel: config.baseModel, models: labels, yaml: config.yaml } : undefined,
    });
    const shards = planShards(plans, maxShard);
    const headers = shards.map((s) => encodeSafetensorsHeader(s.map((p) => ({ name: p.name, dtype: p.outDtype, shape: p.shape })), metadata));
    const totalBytes = headers.reduce((a, h) => a + h.header.length + h.dataLength, 0);
    // Parameters that shape the whole run (TIES' scope and semantics) are read as set for no
    // particular tensor.
    // One instance of the method per group (a slice has its own models and parameters).
    const methods = groups.map((g) => {
      try {
        return spec.create({ models: g.labels.length - (g.hasBase ? 1 : 0), seed, backend, global: g.params('', 0).global });
      } catch (e) {
        if (!(e instanceof MergeKernelsError) || g.where === '') throw e;
        throw new MergeKernelsError(e.code, `${g.where}: ${e.message}`, e.argument, { cause: e });
      }
    });
    const stats = { bytesRead: 0, bytesWritten: 0, chunksRewritten: 0 };
    const roundTo = config.dtype === 'float16' ? 'F16' : config.dtype === 'bfloat16' ? 'BF16' : undefined;
    const reader = new ChunkReader(backend, roundTo, stats);
    const outBuffers: OutBuffers = { values: new Float32Array(0), encoded: { bytes: new Uint8Array(0) } };
    const progress = (phase: MergeProgress['phase'], p: TensorPlan, index: number) =>
      onProgress?.({ phase, tensor: p.name, index, tensors: plans.length, bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten, totalBytes });

    for (let pass = 0; pass < Math.max(...methods.map((m) => m.modelPasses)); pass++) {
      for (const [index, p] of plans.entries()) {
        const method = methods[p.group]!;
        if (p.kind !== 'merge' || pass >= method.modelPasses) continue;
        const info: TensorInfo = { name: p.name, shape: p.shape, numel: p.numel };
        const params = paramsOf(p);
        for await (const chunk of reader.chunks(p, rangesOf(p.numel, chunkEntries), pass === 0)) {
          await method.observeModel(pass, info, params, chunk);
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
      let position = header.length;
      for (const p of shard) {
        const written = async (bytes: Uint8Array) => { await write(bytes); progress('merge', p, index); };
        if (p.kind === 'copy') {
          await copyTensor(p, chunkBytes, written, stats);
        } else {
          // The tensor's bytes start at `start` in the file: a chunk rewritten in place goes there.
          const start = position;
          const writeAt = file.writeAt ? (at: number, bytes: Uint8Array) => file.writeAt!(start + at, bytes) : undefined;
          stats.chunksRewritten += await mergeOne(methods[p.group]!, p, paramsOf(p), chunkEntries, reader, outBuffers, written, writeAt);
        }
        position += p.outBytes;
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
    for (const extra of extraFiles) {
      // Written a chunk at a time like the weights (a copied tokenizer.json may be tens of MB, read by range).
      const size = 'bytes' in extra ? extra.bytes.length : extra.copy.size;
      const file = await output.create(extra.name, size);
      for (let at = 0; at < size; at += chunkBytes) {
        const end = Math.min(size, at + chunkBytes);
        const bytes = 'bytes' in extra ? extra.bytes.subarray(at, end) : await extra.copy.read(at, end);
        if (bytes.length !== end - at) throw new MergeKernelsError('IO_ERROR', `reading ${'copy' in extra ? extra.copy.name : extra.name} gave ${bytes.length} of ${end - at} bytes at ${at}: the file changed while it was copied`, extra.name);
        await file.write(bytes);
      }
      await file.close();
      files.push({ name: extra.name, size });
    }
    await output.commit();
    committed = true;
    const blobs = (output as { files?: ReadonlyMap<string, Blob> }).files;
    if (blobs instanceof Map) for (const f of files) f.blob = blobs.get(f.name);
    return {
      method: config.mergeMethod, files, blob: files.find((f) => f.name === 'model.safetensors')?.blob,
      tensorsMerged: plans.filter((p) => p.kind === 'merge').length, tensorsCopied: plans.filter((p) => p.kind === 'copy').length,
      tied, bytesRead: stats.bytesRead, bytesWritten: stats.bytesWritten, chunksRewritten: stats.chunksRewritten, metadata,
    };
  } finally {
    if (!committed) await output.abort();
    for (const m of opened) await m.close();
  }
}

/** The chunks [offset, offset + length) of a tensor of `numel` entries in chunks of `size`. */
function rangesOf(numel: number, size: number): Array<{ offset: number; length: number }> {
  return [...chunksOf(numel, size, undefined, [])].map(({ offset, length }) => ({ offset, length }));
}


/**
 * Reads chunks of a tensor from every input into buffers allocated once per run and grown only
 * for a larger chunk: two sets of raw buffers (the chunk being merged, and the next one, read
 * meanwhile), and one set of decoded float32 values for inputs that are not F32 (F32 is read
 * straight into its float32 buffer). Chunks handed out are views into them, valid until the
 * next chunk is requested.
 */
class ChunkReader {
  readonly #raw: ArrayBuffer[][] = [[], []];
  readonly #decoded: Float32Array[] = [];

  constructor(
    readonly backend: Backend, readonly roundTo: 'F16' | 'BF16' | undefined,
    readonly stats: { bytesRead: number },
  ) {}

  /** Bytes [0, bytes) of raw buffer `set` of input `i`, grown (never shrunk) as needed. */
  #rawBuffer(set: number, i: number, bytes: number): Uint8Array {
    let b = this.#raw[set]![i];
    if (!b || b.byteLength < bytes) this.#raw[set]![i] = b = new ArrayBuffer(Math.ceil(bytes / 8) * 8);
    return new Uint8Array(b, 0, bytes);
  }

  #decodedBuffer(i: number, n: number): Float32Array {
    if (!this.#decoded[i] || this.#decoded[i]!.length < n) this.#decoded[i] = new Float32Array(n);
    return this.#decoded[i]!.subarray(0, n);
  }

  /** Reads the raw bytes of entries [offset, offset + length) of every input into set `set`. */
  #fetch(p: TensorPlan, offset: number, length: number, set: number): Promise<Uint8Array[]> {
    return Promise.all(p.sources.map(async (s, i) => {
      const size = dtypeSize(s.info.dtype)!;
      const at = s.dataOffset + s.info.begin + offset * size;
      const target = this.#rawBuffer(set, i, length * size);
      let got = 0;
      if (length > 0) {
        if (s.file.readInto) {
          got = await s.file.readInto(at, target);
        } else {
          const bytes = await s.file.read(at, at + target.length);
          got = Math.min(bytes.length, target.length);
          target.set(bytes.subarray(0, got));
        }
      }
      if (got !== target.length) throw new MergeKernelsError('INVALID_SAFETENSORS', `model "${p.labels[i]}": reading tensor "${p.name}" from ${s.file.name} gave ${got} of ${target.length} bytes: the file changed or is truncated`, p.name);
      this.stats.bytesRead += got;
      return target;
    }));
  }

  /** Decodes fetched bytes into float32 (rounded to the config's dtype); `check`: NaN/±Infinity is an error naming the model. */
  async #decode(p: TensorPlan, offset: number, length: number, raw: Uint8Array[], check: boolean): Promise<Chunk> {
    const values: Float32Array[] = [];
    for (const [i, s] of p.sources.entries()) {
      const bytes = raw[i]!;
      let x: Float32Array;
      // Where the decode already found the first non-finite entry (-1: none; undefined: not looked).
      let found: number | undefined;
      if (readsInPlace(s.info.dtype)) {
        x = new Float32Array(bytes.buffer, bytes.byteOffset, length);
      } else {
        x = this.#decodedBuffer(i, length);
        if (s.info.dtype === 'BF16' && this.backend.decodeBf16) found = this.backend.decodeBf16(bytes, x);
        else decodeInto(s.info.dtype, bytes, x);
      }
      if (this.roundTo) { roundInPlace(this.roundTo, x); found = undefined; } // rounding to float16 may overflow
      if (check) {
        const bad = found ?? await this.backend.findNonFinite(x);
        if (bad >= 0) throw new MergeKernelsError('NON_FINITE', `model "${p.labels[i]}", tensor "${p.name}": ${x[bad]} at index ${offset + bad}; merging needs finite values`, p.name);
      }
      values.push(x);
    }
    const hasBase = p.hasBase;
    return { offset, length, base: hasBase ? values[0] : undefined, models: hasBase ? values.slice(1) : values };
  }

  /** One chunk (the chunks being streamed by `chunks` must be done). */
  async read(p: TensorPlan, offset: number, length: number, check: boolean): Promise<Chunk> {
    return this.#decode(p, offset, length, await this.#fetch(p, offset, length, 0), check);
  }

  /**
   * The chunks `ranges` of a tensor in order, each read while the one before is merged.
   * `check`: the first pass over the tensor (later passes read the same, already checked, values).
   */
  async *chunks(p: TensorPlan, ranges: ReadonlyArray<{ offset: number; length: number }>, check: boolean): AsyncGenerator<Chunk> {
    const start = (k: number) => {
      const r = ranges[k]!;
      const pending = this.#fetch(p, r.offset, r.length, k % 2);
      pending.catch(() => {}); // awaited below, or abandoned when the merge fails
      return pending;
    };
    // Reading the next chunk while this one merges was a small, noisy gain on 2 busy cores
    // (bench/README.md, measured with a switch since removed); it costs one more set of raw buffers.
    let next = ranges.length > 0 ? start(0) : undefined;
    for (let k = 0; k < ranges.length; k++) {
      const raw = await next!;
      next = k + 1 < ranges.length ? start(k + 1) : undefined;
      const r = ranges[k]!;
      yield await this.#decode(p, r.offset, r.length, raw, check);
    }
  }
}

/** The output chunk's float32 values and its encoded bytes, reused for every chunk. */
interface OutBuffers { values: Float32Array; encoded: { bytes: Uint8Array } }

/**
 * Merges one tensor: the method's observation passes, then apply chunk by chunk, each written
 * before the next. With `writeAt` (an output that can rewrite in place) the method may guess a
 * whole-tensor statistic during apply (TIES' zero sign) instead of an extra pass over every
 * input; the chunks it guessed wrong are applied again and rewritten at their place. Returns
 * how many chunks were rewritten.
 */
async function mergeOne(
  method: MergeMethod, p: TensorPlan, params: TensorParams, chunkEntries: number, reader: ChunkReader, buffers: OutBuffers,
  write: (bytes: Uint8Array) => Promise<void>, writeAt: ((at: number, bytes: Uint8Array) => Promise<void>) | undefined,
): Promise<number> {
  const plan = method.tensor({ name: p.name, shape: p.shape, numel: p.numel }, params, { revisit: writeAt !== undefined });
  const size = alignChunk(chunkEntries, plan.rowAlign);
  const ranges = rangesOf(p.numel, size);
  let checked = false;
  for (let pass = 0; pass < plan.passes; pass++) {
    for await (const chunk of reader.chunks(p, ranges, !checked)) await plan.observe(pass, chunk);
    checked = true;
  }
  const outDtype = p.outDtype as 'F32' | 'F16' | 'BF16';
  const merged = async (chunk: Chunk): Promise<Uint8Array> => {
    if (buffers.values.length < chunk.length) buffers.values = new Float32Array(chunk.length);
    const out = buffers.values.subarray(0, chunk.length);
    await plan.apply(chunk, out);
    return encodeInto(outDtype, out, buffers.encoded);
  };
  for await (const chunk of reader.chunks(p, ranges, !checked)) {
    const bytes = await merged(chunk);
    if (chunk.length > 0) await write(bytes);
  }
  const again = plan.revisit?.() ?? [];
  for (const offset of again) {
    const chunk = await reader.read(p, offset, Math.min(size, p.numel - offset), false);
    await writeAt!(offset * dtypeSize(outDtype)!, await merged(chunk));
  }
  return again.length;
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
