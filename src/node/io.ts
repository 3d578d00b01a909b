// Node file access for the merge runner: checkpoints opened by path and read by byte range with
// a FileHandle (never whole files), and an output folder whose files are written under temporary
// names and renamed only when the whole merge succeeded. Node-only: the browser bundle
// (dist/index.js) never imports this module.
import { constants, rmSync } from 'node:fs';
import { access, open, mkdir, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MergeKernelsError, parseShardIndex, type ByteSource, type ModelSource, type OutputFile, type OutputTarget } from '../index.ts';

/** A file that cannot be opened: MISSING_FILE when it does not exist, else IO_ERROR with the system's reason. */
function fileError(code: string | undefined, path: string, what: string, cause: unknown): MergeKernelsError {
  if (code === 'ENOENT' || code === 'ENOTDIR') return new MergeKernelsError('MISSING_FILE', `${what} ${path} does not exist`, 'path', { cause });
  const why = code === 'EACCES' || code === 'EPERM' ? 'is not readable (permission denied)' : `could not be read (${(cause as Error)?.message ?? cause})`;
  return new MergeKernelsError('IO_ERROR', `${what} ${path} ${why}`, 'path', { cause });
}

async function openFile(path: string, handles: FileHandle[], what = 'the file'): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw fileError((e as NodeJS.ErrnoException).code, path, what, e);
  }
  handles.push(handle);
  const { size } = await handle.stat();
  // Positional reads into the caller's buffer: the runner reuses one per input and chunk slot.
  // Asynchronous, so the runner reads the next chunk while it merges this one (readSync was no
  // faster in bench/cli-merge.mjs, and leaves nothing to overlap).
  const readInto = async (begin: number, target: Uint8Array) => {
    let done = 0;
    while (done < target.length) {
      const { bytesRead } = await handle.read(target, done, target.length - done, begin + done);
      if (bytesRead === 0) break; // the file shrank: the runner reports the short read
      done += bytesRead;
    }
    return done;
  };
  return {
    name: path,
    size,
    async read(begin, end) {
      const buffer = new Uint8Array(end - begin);
      const done = await readInto(begin, buffer);
      return done === buffer.length ? buffer : buffer.subarray(0, done);
    },
    readInto,
  };
}

/**
 * Opens a checkpoint by path: a `.safetensors` file, or a folder holding `model.safetensors`
 * or `model.safetensors.index.json` and its shards. Only headers are read here. A folder's other
 * files (config.json, tokenizer files) are its `sideFile`s; a lone file has none.
 */
export async function openModelPath(path: string): Promise<ModelSource> {
  let info;
  try {
    info = await stat(path);
  } catch (e) {
    throw fileError((e as NodeJS.ErrnoException).code, path, 'the model', e);
  }
  const handles: FileHandle[] = [];
  const close = async () => { for (const h of handles.splice(0)) await h.close(); };
  // The other files of a model folder (config.json, tokenizer files), opened when asked for.
  const sideFile = async (name: string): Promise<ByteSource | undefined> => {
    if (basename(name) !== name) return undefined;
    const file = join(path, name);
    const found = await stat(file).catch(() => undefined);
    return found?.isFile() ? openFile(file, handles) : undefined;
  };
  try {
    if (!info.isDirectory()) return { files: [await openFile(path, handles)], close };
    const indexPath = join(path, 'model.safetensors.index.json');
    let indexText: string | undefined;
    try {
      indexText = await readFile(indexPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fileError((e as NodeJS.ErrnoException).code, indexPath, 'the shard index', e);
    }
    if (indexText === undefined) {
      const single = join(path, 'model.safetensors');
      try {
        await stat(single);
      } catch {
        throw new MergeKernelsError('MISSING_FILE', `the model folder ${path} has neither model.safetensors nor model.safetensors.index.json (only safetensors checkpoints can be merged)`, 'path');
      }
      return { files: [await openFile(single, handles)], close, sideFile };
    }
    const index = parseShardIndex(indexText);
    const shards = [...new Set(index.weightMap.values())];
    const files = [];
    for (const shard of shards) files.push(await openFile(join(path, shard), handles, `the shard (listed in ${indexPath})`));
    return { files, close, sideFile };
  } catch (e) {
    await close();
    throw e;
  }
}

/** A failed write to the output as IO_ERROR naming the path and the system's reason (ENOTDIR, EACCES, ENOSPC…). */
function writeError(what: string, path: string, e: unknown): MergeKernelsError {
  if (e instanceof MergeKernelsError) return e;
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOTDIR' ? 'a part of the path is a file, not a folder'
    : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied'
      : err.code === 'ENOSPC' ? 'no space left on the device'
        : err.code === 'EROFS' ? 'the file system is read-only' : err.message;
  return new MergeKernelsError('IO_ERROR', `output: cannot ${what} ${path}: ${why}${err.code ? ` (${err.code})` : ''}`, 'output', { cause: e });
}

async function writing<T>(what: string, path: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    throw writeError(what, path, e);
  }
}

/** Names of the weight files a loader reads from a folder (a stale one from an earlier merge would be read with the new ones). */
const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors$|^model\.safetensors\.index\.json$/;

/**
 * A folder as the merge's output, written as a whole: every file goes into a temporary folder
 * next to it, `.<name>.<pid>.tmp`, which commit() renames to `folder` once every file is complete
 * (a folder that already holds files gets the new ones moved in, and loses the weight files of
 * an earlier merge that the new one did not write: `model*.safetensors`, the shard index).
 * abort() deletes the temporary folder, and so does a SIGINT or SIGTERM that arrives meanwhile
 * (the signal is then raised again, so the process ends as it would have). A merge that fails
 * (or is interrupted) never leaves a file under a final name, and an earlier model in the
 * folder is replaced only by a complete new one.
 */
export function folderOutput(folder: string): OutputTarget {
  const dir = resolve(folder);
  const tmpDir = join(dirname(dir), `.${basename(dir)}.${process.pid}.tmp`);
  const written: string[] = [];
  let started = false;
  let current: FileHandle | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    try { rmSync(tmpDir, { recursive: true, force: true }); } catch { /* already gone */ }
    unwatch();
    process.kill(process.pid, signal);
  };
  const watch = () => { process.once('SIGINT', onSignal); process.once('SIGTERM', onSignal); };
  const unwatch = () => { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); };
  const start = async () => {
    // A target that exists must be a folder we may write (a read-only folder is not replaced).
    const info = await stat(dir).catch(() => undefined);
    if (info && !info.isDirectory()) throw writeError('write into', dir, Object.assign(new Error('not a folder'), { code: 'ENOTDIR' }));
    if (info) await writing('write into', dir, () => access(dir, constants.W_OK));
    await writing('create the folder', tmpDir, () => mkdir(tmpDir, { recursive: true }));
    watch();
    started = true;
  };
  return {
    async create(name: string): Promise<OutputFile> {
      if (basename(name) !== name || name === '.' || name === '..') throw new MergeKernelsError('INVALID_OPTION', `output file name ${JSON.stringify(name)} is not a plain file name`, 'output');
      if (written.includes(name)) throw new MergeKernelsError('INVALID_OPTION', `output file ${JSON.stringify(name)} is written twice`, 'output');
      if (!started) await start();
      const tmp = join(tmpDir, name);
      const handle = await writing('create', tmp, () => open(tmp, 'w'));
      current = handle;
      written.push(name);
      let size = 0;
      const writeAt = (position: number, bytes: Uint8Array) => writing('write', tmp, async () => {
        let done = 0;
        while (done < bytes.length) done += (await handle.write(bytes, done, bytes.length - done, position + done)).bytesWritten;
      });
      return {
        async write(bytes: Uint8Array) {
          await writeAt(size, bytes);
          size += bytes.length;
        },
        // A chunk rewritten in place (TIES' zero sign guessed wrong), still in the temporary folder.
        async writeAt(position: number, bytes: Uint8Array) {
          if (position < 0 || position + bytes.length > size) throw new RangeError(`writeAt: [${position}, ${position + bytes.length}) is outside the ${size} bytes written`);
          await writeAt(position, bytes);
        },
        async close() {
          await writing('write', tmp, async () => { await handle.sync(); await handle.close(); });
          current = undefined;
        },
      };
    },
    async commit() {
      if (!started) await start();
      try {
        // One rename: the folder appears complete (it may replace an empty folder).
        await rename(tmpDir, dir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw writeError('rename into', dir, e);
        // The folder holds files already: move the new ones in, then drop stale weight files.
        for (const name of written) await writing('rename into', join(dir, name), () => rename(join(tmpDir, name), join(dir, name)));
        for (const name of await readdir(dir)) {
          if (WEIGHT_FILE.test(name) && !written.includes(name)) await unlink(join(dir, name)).catch(() => {});
        }
        await rm(tmpDir, { recursive: true, force: true });
      }
      unwatch();
    },
    async abort() {
      unwatch();
      if (current) await current.close().catch(() => {});
      if (started) await rm(tmpDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}
