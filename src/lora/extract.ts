// LoRA extraction (mergekit's extract-lora, mergekit/scripts/extract_lora.py): the difference
// Δ = W_model − W_base of every 2-D weight, factored by the SVD into PEFT's lora_B·lora_A, the
// best rank-r approximation (√S split between the factors, mergekit's distribute_scale default).
// What is not a 2-D linear weight follows mergekit's choices (without its architecture tables: by
// name and shape here):
//   - embeddings (input and output: embed_tokens, wte, lm_head, …) are saved at full rank from the
//     fine-tuned model under `base_model.model.<name>` and listed in modules_to_save (mergekit's
//     default, --no-embed-lora; it also does so when the vocabularies differ);
//   - a bias of a LoRA'd module becomes `lora_B.bias`, its difference (as mergekit writes it; the
//     config then says lora_bias: true, PEFT's name for it);
//   - other tensors (norms, anything not 2-D) are saved at full rank in modules_to_save, or
//     skipped with skipUndecomposable (mergekit's --skip-undecomposable);
//   - non-float tensors (integer buffers) are not part of an adapter: skipped.
// Streaming: one tensor of each model is read at a time; only the factors (the adapter itself)
// are kept until the file is written, and full-rank tensors are copied by byte range when it is.
import type { Backend } from '../backends.ts';
import type { MergeKernels } from '../api.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import { decodeToFloat32, encodeSafetensorsHeader, type SafetensorsDtype } from '../safetensors.ts';
import { svd } from '../svd/api.ts';
import { blobOutput, openModel, resolveBackend, type Located, type ModelInput, type OpenModel, type OutputTarget } from '../merging/runner.ts';
import { encodeInto } from '../merging/codec.ts';
import { options as checkOptions } from '../validate.ts';

export interface ExtractLoraOptions {
  /** The base model's checkpoint (a safetensors file, its shards, or a ModelSource). */
  base: ModelInput;
  /** The fine-tuned model's checkpoint. */
  model: ModelInput;
  /**
   * An integer r ≥ 1: every weight's rank (capped at min(out, in), as mergekit's --max-rank); or a
   * number in (0, 1): the share of ‖Δ‖²_F each weight keeps, its rank the smallest that keeps it
   * (then adapter_config.json's rank_pattern lists the ranks that differ from the largest).
   */
  rank: number;
  /** The context (or Backend) whose SVD factors the differences. */
  backend: MergeKernels | Backend;
  /** Where adapter_model.safetensors and adapter_config.json go (default: Blobs in the result). */
  output?: OutputTarget;
  /** adapter_config.json's base_model_name_or_path (default ''; the CLI gives the --base path). */
  baseModelName?: string;
  /** adapter_config.json's task_type (default 'CAUSAL_LM', mergekit's). */
  taskType?: string;
  /** Leave out tensors that are neither LoRA'd nor embeddings (norms …) instead of saving them at full rank. */
  skipUndecomposable?: boolean;
  /** Called after each tensor of the fine-tuned model is handled. */
  onProgress?: (p: LoraProgress) => void;
}

export interface LoraProgress {
  tensor: string;
  index: number;
  tensors: number;
  /** What became of it (see LoraTensorReport). */
  kind: LoraTensorReport['kind'];
  /** Bytes of the differenced tensors read so far, of `totalBytes` (both models). */
  bytesRead: number;
  totalBytes: number;
}

export interface LoraTensorReport {
  /** The tensor's name in the fine-tuned model. */
  name: string;
  /** 'lora': factored; 'bias': its difference saved as lora_B.bias; 'full': saved at full rank (modules_to_save); 'skipped'. */
  kind: 'lora' | 'bias' | 'full' | 'skipped';
  shape: number[];
  /** 'lora': the rank kept. */
  rank?: number;
  /** 'lora': the share of ‖Δ‖²_F the kept rank holds (1 for Δ = 0). */
  energy?: number;
}

export interface ExtractLoraResult {
  files: Array<{ name: string; size: number; blob?: Blob }>;
  /** adapter_config.json's contents. */
  config: Record<string, unknown>;
  tensors: LoraTensorReport[];
  bytesRead: number;
  bytesWritten: number;
}

export const EXTRACT_LORA_OPTIONS: readonly (keyof ExtractLoraOptions)[] = [
  'base', 'model', 'rank', 'backend', 'output', 'baseModelName', 'taskType', 'skipUndecomposable', 'onProgress',
];

// Input and output embeddings (mergekit: get_input_embeddings / get_output_embeddings / nn.Embedding).
const EMBEDDING = /(^|\.)(embed_tokens|embed_in|embed_out|embed_positions|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings|lm_head)\.weight$/;
const FLOAT = new Set(['F64', 'F32', 'F16', 'BF16']);

/** A rank option: a fixed rank, or an energy threshold. */
export function parseRank(v: unknown): { rank: number } | { energy: number } {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) return { rank: v };
  if (typeof v === 'number' && v > 0 && v < 1) return { energy: v };
  throw new MergeKernelsError('INVALID_OPTION', `rank: expected an integer ≥ 1 (the rank) or a number in (0, 1) (the share of each weight's ‖Δ‖²_F to keep), got ${describe(v)}`, 'rank');
}

function moduleOf(name: string, suffix: string): string {
  return name.slice(0, name.length - suffix.length);
}

async function readFloat(t: Located): Promise<{ data: Float32Array; bytes: number }> {
  const bytes = await t.file.read(t.dataOffset + t.info.begin, t.dataOffset + t.info.end);
  if (bytes.length !== t.info.end - t.info.begin) throw new MergeKernelsError('INVALID_SAFETENSORS', `${t.file.name}: tensor "${t.info.name}" is cut short (the file ends early)`, t.info.name);
  return { data: decodeToFloat32(t.info.dtype, bytes), bytes: bytes.length };
}

/** What goes into the adapter file, in order: bytes made here, or a byte range of the model copied. */
type Entry = { name: string; dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array } | { name: string; dtype: SafetensorsDtype; shape: number[]; copy: Located };

/**
 * Extracts a PEFT LoRA adapter from a fine-tuned model and its base (see the module comment).
 * Every disagreement between the models (a weight missing from the base, a different shape) is
 * an error before anything is written; on any failure the output target is aborted.
 */
export async function extractLora(options: ExtractLoraOptions): Promise<ExtractLoraResult> {
  checkOptions('options', options, EXTRACT_LORA_OPTIONS, true);
  const backend = resolveBackend(options.backend);
  const target = parseRank(options.rank);
  const taskType = options.taskType ?? 'CAUSAL_LM';
  if (typeof taskType !== 'string') throw new MergeKernelsError('INVALID_OPTION', `taskType: expected a string, got ${describe(taskType)}`, 'taskType');
  const baseModelName = options.baseModelName ?? '';
  if (typeof baseModelName !== 'string') throw new MergeKernelsError('INVALID_OPTION', `baseModelName: expected a string, got ${describe(baseModelName)}`, 'baseModelName');
  const skip = options.skipUndecomposable ?? false;
  if (typeof skip !== 'boolean') throw new MergeKernelsError('INVALID_OPTION', `skipUndecomposable: expected true or false, got ${describe(skip)}`, 'skipUndecomposable');
  const output = options.output ?? blobOutput();
  const opened: OpenModel[] = [];
  let bytesRead = 0, bytesWritten = 0;
  try {
    const base = await openModel(options.base, 'base');
    opened.push(base);
    const model = await openModel(options.model, 'model');
    opened.push(model);

    // The plan, checked before any SVD: which tensors are factored, which kept whole.
    const lora = new Set<string>();
    for (const name of model.order) {
      const t = model.tensors.get(name)!.info;
      if (FLOAT.has(t.dtype) && t.shape.length === 2 && name.endsWith('.weight') && !EMBEDDING.test(name)) lora.add(moduleOf(name, '.weight'));
    }
    const kinds = new Map<string, LoraTensorReport['kind']>();
    for (const name of model.order) {
      const t = model.tensors.get(name)!.info;
      const kind: LoraTensorReport['kind'] = !FLOAT.has(t.dtype) ? 'skipped'
        : name.endsWith('.weight') && lora.has(moduleOf(name, '.weight')) ? 'lora'
          : name.endsWith('.bias') && lora.has(moduleOf(name, '.bias')) ? 'bias'
            : EMBEDDING.test(name) || !skip ? 'full' : 'skipped';
      kinds.set(name, kind);
      if (kind !== 'lora' && kind !== 'bias') continue;
      const b = base.tensors.get(name);
      if (!b) throw new MergeKernelsError('MISSING_TENSOR', `tensor "${name}" is in the fine-tuned model but not in the base: a LoRA needs the base's weight to take the difference from`, name);
      if (b.info.shape.length !== t.shape.length || b.info.shape.some((d, i) => d !== t.shape[i])) {
        throw new MergeKernelsError('SHAPE_MISMATCH', `tensor "${name}" has shape [${b.info.shape.join(', ')}] in the base but [${t.shape.join(', ')}] in the fine-tuned model: a LoRA adds to the base's weight, so the shapes must agree`, name);
      }
      if (!FLOAT.has(b.info.dtype)) throw new MergeKernelsError('DTYPE_MISMATCH', `tensor "${name}" is ${b.info.dtype} in the base but ${t.dtype} in the fine-tuned model`, name);
    }
    // Progress counts the bytes the SVD pass reads (full-rank tensors are copied after it, when the file is written).
    const totalBytes = model.order.reduce((s, n) => s + (kinds.get(n) === 'lora' || kinds.get(n) === 'bias' ? 2 : 0) * (model.tensors.get(n)!.info.end - model.tensors.get(n)!.info.begin), 0);

    const entries: Entry[] = [];
    const reports: LoraTensorReport[] = [];
    const ranks = new Map<string, number>();
    const modulesToSave = new Set<string>();
    let hasBias = false;
    const scratch = { bytes: new Uint8Array(0) };
    const encode = (dtype: SafetensorsDtype, x: Float32Array) => {
      const out: 'F32' | 'F16' | 'BF16' = dtype === 'F16' || dtype === 'BF16' ? dtype : 'F32';
      return { dtype: out, bytes: encodeInto(out, x, scratch).slice() };
    };
    for (let index = 0; index < model.order.length; index++) {
      const name = model.order[index]!;
      const m = model.tensors.get(name)!;
      const kind = kinds.get(name)!;
      const shape = [...m.info.shape];
      const report: LoraTensorReport = { name, kind, shape };
      if (kind === 'lora' || kind === 'bias') {
        const w = await readFloat(m), w0 = await readFloat(base.tensors.get(name)!);
        bytesRead += w.bytes + w0.bytes;
        const delta = w.data;
        for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! - w0.data[i]!;
        if (kind === 'bias') {
          const e = encode(m.info.dtype, delta);
          entries.push({ name: `base_model.model.${moduleOf(name, '.bias')}.lora_B.bias`, dtype: e.dtype, shape, bytes: e.bytes });
          hasBias = true;
        } else {
          const [rows, cols] = shape as [number, number];
          const f = await factorDelta(backend, name, delta, rows, cols, target);
          const module = moduleOf(name, '.weight');
          const a = encode(m.info.dtype, f.a), bb = encode(m.info.dtype, f.b);
          entries.push({ name: `base_model.model.${module}.lora_A.weight`, dtype: a.dtype, shape: [f.rank, cols], bytes: a.bytes });
          entries.push({ name: `base_model.model.${module}.lora_B.weight`, dtype: bb.dtype, shape: [rows, f.rank], bytes: bb.bytes });
          ranks.set(module, f.rank);
          report.rank = f.rank;
          report.energy = f.energy;
        }
      } else if (kind === 'full') {
        entries.push({ name: `base_model.model.${name}`, dtype: m.info.dtype, shape, copy: m });
        const module = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : name;
        modulesToSave.add(module.slice(module.lastIndexOf('.') + 1));
      }
      reports.push(report);
      options.onProgress?.({ tensor: name, index, tensors: model.order.length, kind, bytesRead, totalBytes });
    }
    if (ranks.size === 0) throw new MergeKernelsError('INVALID_OPTION', 'model: no 2-D weight to extract a LoRA from (every tensor is an embedding, a norm, or not a float)', 'model');

    const r = Math.max(...ranks.values());
    const pattern: Record<string, number> = {};
    for (const [module, k] of ranks) if (k !== r) pattern[module] = k;
    const config: Record<string, unknown> = {
      base_model_name_or_path: baseModelName,
      peft_type: 'LORA',
      task_type: taskType,
      r,
      lora_alpha: r,
      rank_pattern: pattern,
      alpha_pattern: { ...pattern },
      target_modules: [...new Set([...ranks.keys()].map((k) => k.slice(k.lastIndexOf('.') + 1)))].sort(),
      modules_to_save: modulesToSave.size > 0 ? [...modulesToSave].sort() : null,
      lora_dropout: 0,
      fan_in_fan_out: false,
      bias: 'none',
      lora_bias: hasBias,
      use_rslora: false,
      inference_mode: true,
    };

    const { header, dataLength } = encodeSafetensorsHeader(entries.map(({ name, dtype, shape }) => ({ name, dtype, shape })), { format: 'pt' });
    const files: ExtractLoraResult['files'] = [];
    const file = await output.create('adapter_model.safetensors', header.length + dataLength);
    await file.write(header);
    for (const e of entries) {
      if ('bytes' in e) {
        await file.write(e.bytes);
      } else {
        // Full-rank tensors by byte range, a few MiB at a time: never the whole embedding at once.
        const begin = e.copy.dataOffset + e.copy.info.begin, end = e.copy.dataOffset + e.copy.info.end;
        for (let at = begin; at < end; at += 4 << 20) {
          const bytes = await e.copy.file.read(at, Math.min(end, at + (4 << 20)));
          bytesRead += bytes.length;
          await file.write(bytes);
        }
      }
    }
    await file.close();
    bytesWritten = header.length + dataLength;
    files.push({ name: 'adapter_model.safetensors', size: bytesWritten });
    const json = new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n');
    const cf = await output.create('adapter_config.json', json.length);
    await cf.write(json);
    await cf.close();
    files.push({ name: 'adapter_config.json', size: json.length });
    await output.commit();
    const blobs = (output as { files?: ReadonlyMap<string, Blob> }).files;
    if (blobs) for (const f of files) f.blob = blobs.get(f.name);
    return { files, config, tensors: reports, bytesRead, bytesWritten };
  } catch (e) {
    await output.abort().catch(() => {});
    throw e;
  } finally {
    for (const m of opened) await m.close().catch(() => {});
  }
}

/**
 * Δ [out, in] → lora_A = √S·Vᵀ [r, in] and lora_B = U·√S [out, r], r fixed (capped at
 * min(out, in)) or the smallest rank whose Σσᵢ² reaches the energy share of ‖Δ‖²_F.
 */
async function factorDelta(backend: Backend, name: string, delta: Float32Array, rows: number, cols: number, target: { rank: number } | { energy: number }): Promise<{ a: Float32Array; b: Float32Array; rank: number; energy: number }> {
  let total = 0;
  for (let i = 0; i < delta.length; i++) total += delta[i]! * delta[i]!;
  const small = Math.min(rows, cols);
  const k = 'rank' in target ? Math.min(target.rank, small) : small;
  let f;
  try {
    f = await svd(backend, { data: delta, shape: [rows, cols] }, { k });
  } catch (e) {
    if (e instanceof MergeKernelsError && e.code === 'NON_FINITE') throw new MergeKernelsError('NON_FINITE', `tensor "${name}": the difference holds NaN or infinity (${e.message})`, name, { cause: e });
    throw e;
  }
  // The energy each rank keeps, in float64 (Σσᵢ² against ‖Δ‖²_F computed from Δ itself).
  let rank = k, kept = 0;
  for (let j = 0; j < k; j++) {
    kept += f.s[j]! * f.s[j]!;
    if ('energy' in target && (total === 0 || kept / total >= target.energy)) { rank = j + 1; break; }
  }
  kept = 0;
  for (let j = 0; j < rank; j++) kept += f.s[j]! * f.s[j]!;
  const energy = total === 0 ? 1 : Math.min(1, kept / total);
  const a = new Float32Array(rank * cols), b = new Float32Array(rows * rank);
  for (let j = 0; j < rank; j++) {
    const root = Math.sqrt(f.s[j]!);
    for (let c = 0; c < cols; c++) a[j * cols + c] = f.vt.data[j * cols + c]! * root;
    for (let i = 0; i < rows; i++) b[i * rank + j] = f.u.data[i * k + j]! * root;
  }
  return { a, b, rank, energy };
}
