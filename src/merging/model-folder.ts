// The files of a loadable model folder besides the weights, as mergekit writes them
// (mergekit/merge.py): config.json from the base (or first) model with `torch_dtype` set to the
// output dtype (and, for a slices merge, the new layer count), generation_config.json from the
// same model, the tokenizer files of `tokenizer_source` (by default the base's, or the first
// model's), and a README.md model card carrying the config, with the config itself as
// mergekit_config.yml. Runtime-neutral: a model's files come from its ModelSource.sideFile.
import { MergeKernelsError, describe } from '../errors.ts';
import type { ByteSource } from './runner.ts';

/** The tokenizer files copied from the tokenizer's model when present (mergekit's list, plus the vocab files of BPE and WordPiece tokenizers without tokenizer.json). */
export const TOKENIZER_FILES: readonly string[] = [
  'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'added_tokens.json',
  'merges.txt', 'vocab.json', 'vocab.txt', 'chat_template.jinja', 'chat_template.json',
];
/** Any of these makes a tokenizer; tokenizer_config.json alone does not. */
const TOKENIZER_CORE = ['tokenizer.json', 'tokenizer.model', 'vocab.json', 'vocab.txt'];
/** The keys transformers configs use for the number of layers, in the order looked for. */
const LAYER_COUNT_KEYS = ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers'];
const TORCH_DTYPE: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** A model's side files, by the label it has in the config. */
export interface SideFiles {
  label: string;
  sideFile?: (name: string) => Promise<ByteSource | undefined>;
}

/** One file of the folder: bytes made here, or a copy of another model's file read by range. */
export type FolderFile = { name: string; bytes: Uint8Array } | { name: string; copy: ByteSource };

export interface FolderPlan {
  /** The model whose config.json and generation_config.json the output gets (base, else first). */
  donor: SideFiles;
  /** The tokenizer's model, and whether the config named it (tokenizer_source): then it must have one. */
  tokenizer: { model: SideFiles; explicit: boolean } | undefined;
  /** The output's float dtype (safetensors name), when every merged tensor has the same one. */
  dtype: string | undefined;
  /** A slices merge: for each output layer, the donor-architecture layer it came from (its layer_types entry). */
  layers: number[] | undefined;
  /** The model card's contents, or undefined for none. */
  card: ModelCard | undefined;
}

export interface ModelCard {
  name: string;
  method: string;
  baseModel: string | undefined;
  models: readonly string[];
  yaml: string;
}

async function readAll(file: ByteSource): Promise<Uint8Array> {
  return file.read(0, file.size);
}

/**
 * The folder's files besides the weights, read and checked before anything is written: a
 * tokenizer_source without tokenizer files, or a config.json that is not a JSON object, fail here.
 */
export async function folderFiles(plan: FolderPlan): Promise<FolderFile[]> {
  const files: FolderFile[] = [];
  const donorFile = await plan.donor.sideFile?.('config.json');
  if (donorFile) files.push({ name: 'config.json', bytes: outputConfig(plan.donor.label, await readAll(donorFile), plan) });
  const generation = await plan.donor.sideFile?.('generation_config.json');
  if (generation) files.push({ name: 'generation_config.json', copy: generation });
  if (plan.tokenizer) {
    const { model, explicit } = plan.tokenizer;
    const found: FolderFile[] = [];
    for (const name of TOKENIZER_FILES) {
      const file = await model.sideFile?.(name);
      if (file) found.push({ name, copy: file });
    }
    if (!found.some((f) => TOKENIZER_CORE.includes(f.name))) {
      if (explicit) {
        throw new MergeKernelsError('MISSING_FILE', `tokenizer_source: model "${model.label}" has no tokenizer files (${TOKENIZER_CORE.join(', ')})${model.sideFile ? '' : ': it was given as weights only; give it as a folder (or a ModelSource with sideFile)'}`, 'tokenizer_source');
      }
    } else {
      files.push(...found);
    }
  }
  if (plan.card) {
    files.push({ name: 'README.md', bytes: new TextEncoder().encode(modelCard(plan.card)) });
    files.push({ name: 'mergekit_config.yml', bytes: new TextEncoder().encode(plan.card.yaml.endsWith('\n') ? plan.card.yaml : plan.card.yaml + '\n') });
  }
  return files;
}

/** The donor's config.json with torch_dtype (and `dtype`, transformers' newer name, where present) and the layer count updated. */
function outputConfig(label: string, bytes: Uint8Array, plan: FolderPlan): Uint8Array {
  let config: unknown;
  try {
    config = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new MergeKernelsError('INVALID_OPTION', `model "${label}": config.json is not valid JSON (${(e as Error).message})`, 'config.json', { cause: e });
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new MergeKernelsError('INVALID_OPTION', `model "${label}": config.json holds ${describe(config)}, expected a JSON object`, 'config.json');
  }
  const out = config as Record<string, unknown>;
  const dtype = plan.dtype === undefined ? undefined : TORCH_DTYPE[plan.dtype];
  if (dtype !== undefined) {
    out.torch_dtype = dtype;
    if (typeof out.dtype === 'string') out.dtype = dtype;
  }
  if (plan.layers) {
    const key = LAYER_COUNT_KEYS.find((k) => typeof out[k] === 'number') ?? 'num_hidden_layers';
    const before = out[key];
    out[key] = plan.layers.length;
    // Per-layer lists (layer_types: sliding or full attention) follow the layers they describe.
    for (const [k, v] of Object.entries(out)) {
      if (k === 'layer_types' && Array.isArray(v) && v.length === before) out[k] = plan.layers.map((i) => v[i]);
    }
  }
  return new TextEncoder().encode(JSON.stringify(out, null, 2) + '\n');
}

/** mergekit's model card (mergekit/card.py), naming this package as the tool. */
export function modelCard(card: ModelCard): string {
  // mergekit lists Hugging Face ids under base_model; the models here are local files.
  const method = card.method === 'slerp' ? undefined : card.baseModel;
  const models = [...new Set(card.models)].filter((m) => m !== method);
  return `---
library_name: transformers
tags:
- mergekit
- merge
- merge-kernels
---
# ${card.name}

This is a merge of pre-trained language models created with [merge-kernels](https://www.npmjs.com/package/merge-kernels) from a [mergekit](https://github.com/arcee-ai/mergekit) configuration.

## Merge Details
### Merge Method

This model was merged using the ${card.method} merge method${method === undefined ? '' : ` using ${method} as a base`}.

### Models Merged

The following models were included in the merge:
${models.map((m) => `* ${m}`).join('\n')}

### Configuration

The following YAML configuration was used to produce this model:

\`\`\`yaml
${card.yaml.replace(/\s+$/, '')}
\`\`\`
`;
}
