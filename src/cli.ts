// The `merge-kernels` command: `merge-kernels merge config.yml out/` (or `-o out/`). Parses the command line,
// picks a backend, runs mergeModelFiles with a progress bar, prints a summary. Returns the exit
// code instead of exiting, so tests can call it in-process.
import cliProgress from 'cli-progress';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkConfigAgainst, init, MergeKernelsError, parseMergeConfig, type MergeKernels, type MethodSpec } from './index.ts';
import { extractLoraFiles, mergeModelFiles } from './node/index.ts';

const HELP = `Usage: merge-kernels merge <config.yml> <out-dir> [options]
       merge-kernels merge <config.yml> -o <out-dir> [options]
       merge-kernels extract-lora --base <model> --model <model> --rank <r> -o <out-dir> [options]

Merges safetensors checkpoints as a mergekit YAML config describes (merge_method, base_model,
models with parameters, or slices of layer ranges; parameters, dtype, out_dtype,
tokenizer_source), streaming tensor by tensor. Model paths in the config are relative to the config file: a .safetensors file, or a
folder with model.safetensors or model.safetensors.index.json (and config.json, tokenizer files).

Options:
  -o, --out <dir>           output folder: model.safetensors (or shards + index), config.json,
                            tokenizer files, README.md; or give it after the config, as
                            mergekit-yaml does
  --chunk-size <size>       bytes of float32 per input per chunk [2MiB]
  --backend <name>          auto | wasm | webgpu | js [auto: WebGPU on a hardware
                            adapter when the optional 'webgpu' package is installed, else wasm]
  --seed <n>                seed of random methods (DARE, DELLA) [0]
  --max-shard-size <size>   largest output file before sharding [5B, mergekit's: 5e9 bytes]
  --no-copy-tokenizer       do not copy the base (or first) model's tokenizer files
  --no-write-model-card     no README.md and mergekit_config.yml
  --no-progress             no progress bar
  --verbose                 say why auto chose its backend
  -h, --help                this help
  --version                 the package version
extract-lora writes a PEFT LoRA adapter (adapter_model.safetensors, adapter_config.json) from the
difference between a fine-tuned model and its base, one SVD per 2-D weight, as mergekit-extract-lora:
  --base <path>             the base model (a .safetensors file or a model folder)
  --model <path>            the fine-tuned model
  --rank <r>                an integer: every weight's rank (at most min(out, in)); or a number in
                            (0, 1): the share of each weight's squared Frobenius norm to keep
  --skip-undecomposable     leave out norms and other tensors that are neither LoRA'd nor embeddings
                            (saved at full rank in modules_to_save otherwise, as mergekit)
  -o, --out, --backend, --no-progress, --verbose as for merge; one line per weight: its rank and
  the share of the difference's energy it keeps.
Sizes: a byte count, or a number with KB, MB, GB (powers of 1000), KiB, MiB, GiB, or
mergekit's K, M, B (thousand, million, billion bytes).
Exit codes: 0 merged, 1 the merge failed (the message says why), 2 bad command line.
`;

export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
}

class UsageError extends Error {}

// mergekit's sizes (parse_kmb) are K, M and B: thousand, million and billion (not bytes).
const UNITS: Record<string, number> = {
  '': 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, k: 1e3, m: 1e6, b: 1e9,
};

export function parseSize(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`${option}: expected a size such as 64MiB or 5GB, got ${JSON.stringify(text)}`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) throw new UsageError(`${option}: expected a positive size, got ${JSON.stringify(text)}`);
  return bytes;
}

interface Args {
  config: string; out: string; chunkSize?: number; backend: string; seed?: number; maxShardSize?: number; progress: boolean; verbose: boolean;
  copyTokenizer: boolean; writeModelCard: boolean;
}

interface LoraArgs { base: string; model: string; rank: number; out: string; backend: string; progress: boolean; verbose: boolean; skipUndecomposable: boolean }

/**
 * Walks `--flag value`, `--flag=value` and positional arguments: `on(flag, value, arg)` handles
 * each, calling `value()` for a flag that takes one (a missing value is a usage error).
 */
function walkArgs(rest: string[], on: (flag: string, value: () => string, arg: string) => void): void {
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    on(flag, () => {
      if (eq > 0) return a.slice(eq + 1);
      const v = rest[++i];
      if (v === undefined) throw new UsageError(`${flag}: expected a value`);
      return v;
    }, a);
  }
}

/** --backend's value. */
function backendArg(b: string): string {
  if (!['auto', 'wasm', 'webgpu', 'js'].includes(b)) throw new UsageError(`--backend: expected auto, wasm, webgpu or js, got ${JSON.stringify(b)}`);
  return b;
}

function parseLoraArgs(rest: string[]): LoraArgs {
  const args: Partial<LoraArgs> = { backend: 'auto', progress: true, verbose: false, skipUndecomposable: false };
  walkArgs(rest, (flag, value, a) => {
    switch (flag) {
      case '-o': case '--out': args.out = value(); return;
      case '--base': args.base = value(); return;
      case '--model': args.model = value(); return;
      case '--rank': {
        const v = value();
        // The number is checked by extractLora (an integer ≥ 1 or a share in (0, 1)); here only that it is one.
        if (!/^\d+(\.\d+)?$|^\.\d+$/.test(v)) throw new UsageError(`--rank: expected an integer ≥ 1 or a number in (0, 1), got ${JSON.stringify(v)}`);
        args.rank = Number(v);
        return;
      }
      case '--backend': args.backend = backendArg(value()); return;
      case '--skip-undecomposable': args.skipUndecomposable = true; return;
      case '--no-progress': args.progress = false; return;
      case '--verbose': args.verbose = true; return;
      default: throw new UsageError(`${a.startsWith('-') ? `unknown option ${a}` : `unexpected argument ${JSON.stringify(a)}`}; see --help`);
    }
  });
  for (const [k, flag] of [['base', '--base'], ['model', '--model'], ['rank', '--rank'], ['out', '-o']] as const) {
    if (args[k] === undefined) throw new UsageError(`extract-lora: expected ${flag}: merge-kernels extract-lora --base <model> --model <model> --rank <r> -o <out-dir>`);
  }
  return args as LoraArgs;
}

function parseArgs(argv: string[]): Args | LoraArgs | 'help' | 'version' | 'usage' {
  if (argv.includes('-h') || argv.includes('--help')) return 'help';
  if (argv.includes('--version')) return 'version';
  if (argv.length === 0) return 'usage';
  const [command, ...rest] = argv;
  if (command === 'extract-lora') return parseLoraArgs(rest);
  if (command !== 'merge') throw new UsageError(`unknown command ${JSON.stringify(command)}; the commands are: merge-kernels merge <config.yml> <out-dir>, merge-kernels extract-lora --base <model> --model <model> --rank <r> -o <out-dir>`);
  const args: Partial<Args> = { backend: 'auto', progress: true, verbose: false, copyTokenizer: true, writeModelCard: true };
  const positional: string[] = [];
  walkArgs(rest, (flag, value, a) => {
    switch (flag) {
      case '-o': case '--out': args.out = value(); return;
      case '--chunk-size': args.chunkSize = parseSize(value(), flag); return;
      case '--max-shard-size': args.maxShardSize = parseSize(value(), flag); return;
      case '--backend': args.backend = backendArg(value()); return;
      case '--seed': {
        const v = value();
        if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`--seed: expected an integer in [0, 2^32), got ${JSON.stringify(v)}`);
        args.seed = Number(v);
        return;
      }
      case '--no-progress': args.progress = false; return;
      case '--no-copy-tokenizer': args.copyTokenizer = false; return;
      case '--no-write-model-card': args.writeModelCard = false; return;
      case '--verbose': args.verbose = true; return;
      default:
        if (a.startsWith('-')) throw new UsageError(`unknown option ${a}; see --help`);
        positional.push(a);
    }
  });
  if (positional.length === 0) throw new UsageError('expected the config file: merge-kernels merge <config.yml> <out-dir>');
  // mergekit-yaml's form: the output folder after the config.
  if (positional.length === 2 && args.out === undefined) args.out = positional.pop();
  if (positional.length !== 1) {
    throw new UsageError(`expected a config file and an output folder${args.out !== undefined ? ' (given with -o)' : ''}, got ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  if (!args.out) throw new UsageError('expected the output folder: merge-kernels merge <config.yml> <out-dir>');
  return { ...args, config: positional[0]! } as Args;
}

/** A GPU from the optional `webgpu` package (Dawn), or the reason there is none. */
async function nodeGpu(): Promise<GPU | string> {
  try {
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    return webgpu.create([]);
  } catch (e) {
    return `the optional package 'webgpu' is not installed (${(e as Error).message.split('\n')[0]})`;
  }
}

async function createContext(backend: string): Promise<{ mk: MergeKernels; note: string }> {
  if (backend === 'js' || backend === 'wasm') return { mk: await init({ backend }), note: '' };
  const gpu = await nodeGpu();
  if (backend === 'webgpu') {
    if (typeof gpu === 'string') throw new MergeKernelsError('BACKEND_UNAVAILABLE', `backend 'webgpu' is unavailable: ${gpu}`, 'backend');
    return { mk: await init({ backend: 'webgpu', gpu }), note: '' };
  }
  // auto: init's rule (a hardware adapter, else wasm), with the reason when it falls back.
  const mk = await init({ backend: 'auto', gpu: typeof gpu === 'string' ? undefined : gpu });
  const why = typeof gpu === 'string' ? [gpu] : mk.fallbackReasons.map((r) => r.replace(/^webgpu: /, ''));
  return { mk, note: mk.backend === 'webgpu' ? '' : `${mk.backend} (${why.join('; ')})` };
}

function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let u = -1;
  do { n /= 1000; u++; } while (n >= 1000 && u < units.length - 1);
  return `${n.toFixed(n < 10 ? 2 : 1)} ${units[u]}`;
}

/** Runs the command line `argv` (without `node` and the script); returns the exit code. */
export async function main(argv: string[], methods: Readonly<Record<string, MethodSpec>>, io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let args: Args | LoraArgs | 'help' | 'version' | 'usage';
  try {
    args = parseArgs(argv);
  } catch (e) {
    io.stderr.write(`merge-kernels: ${errorLine(e)}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  if (args === 'help') {
    io.stdout.write(HELP);
    return 0;
  }
  if (args === 'usage') {
    // No command at all: a usage error, so a script that forgot its arguments does not succeed.
    io.stderr.write(HELP);
    return 2;
  }
  if (args === 'version') {
    try {
      io.stdout.write(`${await packageVersion()}\n`);
      return 0;
    } catch (e) {
      io.stderr.write(`merge-kernels: ${errorLine(e)}\n`);
      return 1;
    }
  }
  if ('base' in args) return extractLoraCommand(args, io);
  let mk: MergeKernels | undefined;
  let bar: cliProgress.SingleBar | undefined;
  const t0 = performance.now();
  try {
    // The config is checked before a backend (possibly a GPU) is set up, so its errors come first.
    let text: string;
    try {
      text = await readFile(args.config, 'utf8');
    } catch (e) {
      const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
      throw new MergeKernelsError(missing ? 'MISSING_FILE' : 'IO_ERROR', `cannot read the config ${args.config}: ${(e as Error).message}`, 'config', { cause: e });
    }
    checkConfigAgainst(parseMergeConfig(text), methods);
    const ctx = await createContext(args.backend);
    mk = ctx.mk;
    if (args.progress && (io.stderr as { isTTY?: boolean }).isTTY) {
      bar = new cliProgress.SingleBar({
        stream: io.stderr as NodeJS.WriteStream,
        format: '{bar} {percentage}% | {written} | {speed} MB/s | {tensor}',
        hideCursor: true, clearOnComplete: true, etaBuffer: 50,
      }, cliProgress.Presets.shades_classic);
    }
    let started = false;
    const result = await mergeModelFiles({
      config: text, baseDir: dirname(resolve(args.config)), outDir: args.out, methods, backend: mk,
      chunkSize: args.chunkSize, maxShardSize: args.maxShardSize, seed: args.seed,
      copyTokenizer: args.copyTokenizer, writeModelCard: args.writeModelCard,
      onProgress: (p) => {
        if (!bar) return;
        if (!started) { bar.start(p.totalBytes, 0, { tensor: '', speed: '0', written: '' }); started = true; }
        const seconds = (performance.now() - t0) / 1000;
        bar.update(p.bytesWritten, { tensor: p.tensor.length > 48 ? `…${p.tensor.slice(-47)}` : p.tensor, speed: (p.bytesRead / 1e6 / Math.max(seconds, 1e-3)).toFixed(0), written: formatBytes(p.bytesWritten) });
      },
    });
    bar?.stop();
    const seconds = (performance.now() - t0) / 1000;
    const lines = [
      `merged ${result.tensorsMerged} tensors${result.tensorsCopied ? ` (and copied ${result.tensorsCopied} non-float tensors from the ${methods[result.method]?.needsBase ? 'base' : 'first'} model)` : ''} with ${result.method} on ${mk.backend}${ctx.note && args.verbose ? ` (auto chose ${ctx.note})` : ''}`,
      `read ${formatBytes(result.bytesRead)}${rate(result.bytesRead, seconds)}, wrote ${formatBytes(result.bytesWritten)}${result.chunksRewritten ? ` (and rewrote ${result.chunksRewritten} chunk${result.chunksRewritten === 1 ? '' : 's'} in place: zero sign guessed wrong)` : ''} in ${seconds.toFixed(1)} s`,
      ...result.tied.map((t) => `tied weights: "${t.model}" has no ${t.tensor}; its ${t.from} was merged in its place`),
      `output: ${result.outDir} (${result.files.map((f) => f.name).join(', ')})`,
    ];
    io.stdout.write(lines.join('\n') + '\n');
    return 0;
  } catch (e) {
    bar?.stop();
    io.stderr.write(`merge-kernels: ${errorLine(e)}\n`);
    return 1;
  } finally {
    try {
      mk?.dispose();
    } catch {
      // The merge's outcome is already decided and reported; a failing dispose must not replace it.
    }
  }
}

/** `merge-kernels extract-lora`: a PEFT adapter from two models, one line per weight with its rank and energy. */
async function extractLoraCommand(args: LoraArgs, io: CliIo): Promise<number> {
  let mk: MergeKernels | undefined;
  let bar: cliProgress.SingleBar | undefined;
  const t0 = performance.now();
  try {
    const ctx = await createContext(args.backend);
    mk = ctx.mk;
    if (args.progress && (io.stderr as { isTTY?: boolean }).isTTY) {
      bar = new cliProgress.SingleBar({
        stream: io.stderr as NodeJS.WriteStream, format: '{bar} {percentage}% | {tensor}', hideCursor: true, clearOnComplete: true,
      }, cliProgress.Presets.shades_classic);
    }
    let started = false;
    const result = await extractLoraFiles({
      base: args.base, model: args.model, rank: args.rank, outDir: args.out, backend: mk, skipUndecomposable: args.skipUndecomposable,
      onProgress: (p) => {
        if (!bar) return;
        if (!started) { bar.start(Math.max(p.totalBytes, 1), 0, { tensor: '' }); started = true; }
        bar.update(p.bytesRead, { tensor: p.tensor.length > 48 ? `…${p.tensor.slice(-47)}` : p.tensor });
      },
    });
    bar?.stop();
    const seconds = (performance.now() - t0) / 1000;
    const lora = result.tensors.filter((t) => t.kind === 'lora');
    const full = result.tensors.filter((t) => t.kind === 'full');
    const width = Math.max(...lora.map((t) => t.name.length));
    const lines = [
      ...lora.map((t) => `${t.name.padEnd(width)}  [${t.shape.join(', ')}]  rank ${t.rank}  energy ${(t.energy! * 100).toFixed(2)}%`),
      `extracted ${lora.length} LoRA weights (rank ${result.config.r}${Object.keys(result.config.rank_pattern as object).length ? ', others in rank_pattern' : ''})${full.length ? `, saved ${full.length} tensors at full rank (modules_to_save: ${(result.config.modules_to_save as string[]).join(', ')})` : ''} on ${mk.backend}${ctx.note && args.verbose ? ` (auto chose ${ctx.note})` : ''} in ${seconds.toFixed(1)} s`,
      `output: ${result.outDir} (${result.files.map((f) => `${f.name} ${formatBytes(f.size)}`).join(', ')})`,
    ];
    io.stdout.write(lines.join('\n') + '\n');
    return 0;
  } catch (e) {
    bar?.stop();
    io.stderr.write(`merge-kernels: ${errorLine(e)}\n`);
    return 1;
  } finally {
    try { mk?.dispose(); } catch { /* the outcome is already reported */ }
  }
}

/** The version in the package's package.json (the folder above src/ and dist/, whichever holds this module). */
async function packageVersion(): Promise<string> {
  const { version } = JSON.parse(await readFile(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as { version: string };
  return version;
}

/**
 * Any thrown value as one line: a MergeKernelsError's message; for anything else (a bug, or an
 * error from Node or a dependency) its name and message, never a stack trace.
 */
export function errorLine(e: unknown): string {
  let line: string;
  try {
    line = e instanceof MergeKernelsError || e instanceof UsageError ? e.message
      : e instanceof Error ? `unexpected ${e.name}: ${e.message} (please report this)`
      : `unexpected error: ${String(e)} (please report this)`;
  } catch {
    line = 'unexpected error that cannot be printed (please report this)';
  }
  line = line.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  return line.length > 2000 ? line.slice(0, 2000) + '…' : line;
}

/** " (N MB/s)" when the rate means something: at least 1 MB read over at least 0.1 s. */
function rate(bytes: number, seconds: number): string {
  if (bytes < 1e6 || seconds < 0.1) return '';
  const mbs = bytes / 1e6 / seconds;
  return ` (${mbs >= 10 ? mbs.toFixed(0) : mbs.toFixed(1)} MB/s)`;
}
