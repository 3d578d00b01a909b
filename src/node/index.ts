// merge-kernels/node: the merge runner over files on disk (Node only). Model references in a
// config are paths, relative to the config file's folder when given as a file.
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { MergeKernelsError, mergeModels, type MergeModelsOptions, type MergeModelsResult } from '../index.ts';
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
