// merge-kernels/node: the merge runner over files on disk (Node only). Model references in a
// config are paths, relative to the config file's folder when given as a file.
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { extractLora, MergeKernelsError, mergeModels, type ExtractLoraOptions, type ExtractLoraResult, type MergeModelsOptions, type MergeModelsResult } from '../index.ts';
import { folderOutput, openModelPath } from './io.ts';

export { folderOutput, openModelPath };

export interface MergeFilesOptions extends Omit<MergeModelsOptions, 'config' | 'inputs' | 'output'> {
  /** Path of a mergekit YAML config; its model paths are relative to its folder. */
  configPath?: string;
  /** Or the config itself (YAML text or an object); model paths are then relative to `baseDir`. */
  config?: string | object;
  /** Folder that relative model paths start from when `config` is given (default: the working directory). */
  baseDir?: string;
  /**
   * Output folder: model.safetensors (or shards and model.safetensors.index.json), config.json,
   * generation_config.json, the tokenizer files, README.md and mergekit_config.yml. Written as a
   * whole: into a temporary folder next to it, renamed when the merge succeeded.
   */
  outDir: string;
}

/** Merges the checkpoints a config names into `outDir`, streaming (see mergeModels). */
export async function mergeModelFiles(options: MergeFilesOptions): Promise<MergeModelsResult & { outDir: string }> {
  const { configPath, config, baseDir, outDir, ...rest } = options;
  if ((configPath === undefined) === (config === undefined)) {
    throw new MergeKernelsError('INVALID_OPTION', 'options: give exactly one of configPath and config', 'configPath');
  }
  if (typeof outDir !== 'string' || outDir === '') throw new MergeKernelsError('INVALID_OPTION', 'outDir: expected the output folder', 'outDir');
  let text: string | object;
  let root: string;
  if (configPath !== undefined) {
    try {
      text = await readFile(configPath, 'utf8');
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      throw new MergeKernelsError(missing ? 'MISSING_FILE' : 'IO_ERROR', `configPath: cannot read ${configPath} (${(e as Error).message})`, 'configPath', { cause: e });
    }
    root = dirname(resolve(configPath));
  } else {
    text = config!;
    root = resolve(baseDir ?? '.');
  }
  const result = await mergeModels({
    modelName: basename(resolve(outDir)),
    ...rest,
    config: text,
    inputs: async (model) => {
      const path = isAbsolute(model) ? model : resolve(root, model);
      try {
        return await openModelPath(path);
      } catch (e) {
        if (e instanceof MergeKernelsError && (e.code === 'MISSING_FILE' || e.code === 'IO_ERROR') && e.argument === 'path') {
          throw new MergeKernelsError(e.code, `model "${model}": ${e.message} (model paths are relative to ${configPath !== undefined ? 'the config file' : `${root}`}; only local safetensors checkpoints are read, nothing is downloaded)`, model, { cause: e });
        }
        throw e;
      }
    },
    output: folderOutput(outDir),
  });
  return { ...result, outDir: resolve(outDir) };
}

export interface ExtractLoraFilesOptions extends Omit<ExtractLoraOptions, 'base' | 'model' | 'output'> {
  /** Path of the base model: a .safetensors file, or a folder with model.safetensors or its shard index. */
  base: string;
  /** Path of the fine-tuned model. */
  model: string;
  /** Output folder: adapter_model.safetensors and adapter_config.json, written as a whole (temporary folder, renamed when done). */
  outDir: string;
}

/** Extracts a PEFT LoRA adapter from two checkpoints on disk into `outDir` (see extractLora). */
export async function extractLoraFiles(options: ExtractLoraFilesOptions): Promise<ExtractLoraResult & { outDir: string }> {
  const { base, model, outDir, ...rest } = options;
  for (const [k, v] of [['base', base], ['model', model], ['outDir', outDir]] as const) {
    if (typeof v !== 'string' || v === '') throw new MergeKernelsError('INVALID_OPTION', `${k}: expected a path`, k);
  }
  const baseSource = await openModelPath(base);
  let modelSource;
  try {
    modelSource = await openModelPath(model);
  } catch (e) {
    await baseSource.close?.();
    throw e;
  }
  const result = await extractLora({ baseModelName: base, ...rest, base: baseSource, model: modelSource, output: folderOutput(outDir) });
  return { ...result, outDir: resolve(outDir) };
}
