// The merge CLI against the in-memory merge (issue 15): `merge-kernels merge ties.yml -o out/`
// spawned as a user runs it, on a base and three models of 200 MB of float32 each (50M entries
// split into four tensors), TIES at density 0.2, files in the page cache; against
// mk.mergeTensors('ties') on the same tensors in memory (wasm backend), in the same run. Then the
// same in BF16. Prints the wall times (median of several runs, fastest in brackets), their ratio,
// the CLI's peak RSS (/usr/bin/time -v on the child) and its effective read rate (input bytes /
// wall time) against the machine's copy bandwidth. Every CLI output is checked bit for bit
// against the in-memory result before it is timed. The files live in a temp dir, deleted after.
//   node bench/cli-merge.mjs [--quick] [--runs 5] [--chunk-size 2MiB] [--dtype F32,BF16] [--semantics paper|mergekit] [--ab NAME=VALUE]
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, encodeSafetensorsHeader, encodeFromFloat32, decodeToFloat32, readSafetensors } from '../dist/index.js';
import { benchDir, describeMachine, measureLimits, writeResult } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const quick = args.includes('--quick');
const runs = Number(opt('runs', quick ? 3 : 5));
const chunkSize = opt('chunk-size', undefined);
const dtypes = opt('dtype', 'F32,BF16').split(',');
// The TIES paper's zero sign (issue 15's case: a guess, and chunks rewritten in place) unless
// --semantics mergekit (mergekit's + for a zero total: no zero-sign work at all).
const semantics = opt('semantics', 'paper');
// --ab NAME=VALUE: also time the CLI with that environment variable set, interleaved run by run
// (commits up to bea7a52 of branch cli read MERGE_KERNELS_PREFETCH=0 as "no read of the next
// chunk while the current one merges"; bench/README.md has those figures).
const ab = opt('ab', undefined);
const ENTRIES = quick ? 8_000_000 : 50_000_000; // per model: 200 MB of float32
const COLS = 10_000;
const SHAPES = [0, 1, 2, 3].map(() => [ENTRIES / 4 / COLS, COLS]);
const NAMES = SHAPES.map((_, i) => `model.layers.${i}.mlp.weight`);
const DENSITY = 0.2;
const LABELS = ['base', 'm1', 'm2', 'm3'];
const bin = join(benchDir, '..', 'bin', 'merge-kernels.mjs');

/** The four tensors of each input, float32: a base N(0, 0.02²)-like, models = base + a small task vector. */
function tensors(seed) {
  let s = seed >>> 0;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; };
  const base = SHAPES.map(([r, c]) => { const x = new Float32Array(r * c); for (let i = 0; i < x.length; i++) x[i] = 0.07 * (u() + u()); return x; });
  const models = [1, 2, 3].map(() => base.map((b) => { const x = new Float32Array(b.length); for (let i = 0; i < x.length; i++) x[i] = b[i] + 0.004 * u(); return x; }));
  return [base, ...models];
}

function writeModel(path, dtype, list) {
  const { header } = encodeSafetensorsHeader(NAMES.map((name, i) => ({ name, dtype, shape: SHAPES[i] })));
  const fd = openSync(path, 'w');
  writeSync(fd, header);
  for (const x of list) {
    const bytes = dtype === 'F32' ? new Uint8Array(x.buffer, x.byteOffset, x.byteLength) : encodeFromFloat32(dtype, x);
    writeSync(fd, bytes);
  }
  closeSync(fd);
}

/** One CLI run as a user runs it; returns wall ms and peak RSS in MB. */
function cli(dir, out, env) {
  rmSync(out, { recursive: true, force: true });
  const argv = [process.execPath, bin, 'merge', join(dir, 'ties.yml'), '-o', out, '--backend', 'wasm', '--no-progress', ...(chunkSize ? ['--chunk-size', chunkSize] : [])];
  const timed = existsSync('/usr/bin/time');
  const t0 = performance.now();
  const r = spawnSync(timed ? '/usr/bin/time' : argv[0], timed ? ['-v', ...argv] : argv.slice(1), { encoding: 'utf8', env: env ? { ...process.env, [env.split('=')[0]]: env.split('=')[1] } : process.env });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`the CLI failed (${r.status}): ${r.stderr}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  return { ms, rssMB: rss ? Number(rss[1]) / 1024 : NaN, stdout: r.stdout };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

const machine = describeMachine();
const limits = await measureLimits(true);
console.log(`merge CLI vs in-memory merge — ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}${quick ? ' (--quick)' : ''}`);
console.log(`copy bandwidth ${limits.copyBandwidthGBs.toFixed(1)} GB/s (wasm memory.copy, read + write bytes)`);
console.log(`inputs: base + 3 models × ${ENTRIES / 1e6}M entries (4 tensors of [${SHAPES[0].join(', ')}]), ties density ${DENSITY} (semantics ${semantics}), chunk size ${chunkSize ?? 'default'}, ${runs} runs\n`);

const mk = await init({ backend: 'wasm' });
const dir = mkdtempSync(join(tmpdir(), 'merge-kernels-cli-bench-'));
const results = {};
try {
  const f32 = tensors(2023);
  writeFileSync(join(dir, 'ties.yml'), `merge_method: ties\nbase_model: base.safetensors\nparameters:\n  semantics: ${semantics}\nmodels:\n${LABELS.slice(1).map((m) => `  - model: ${m}.safetensors\n    parameters: { weight: 1, density: ${DENSITY} }\n`).join('')}`);
  for (const dtype of dtypes) {
    // What the files hold, as float32 (BF16: rounded), for the in-memory merge.
    const inputs = dtype === 'F32' ? f32 : f32.map((list) => list.map((x) => decodeToFloat32(dtype, encodeFromFloat32(dtype, x))));
    LABELS.forEach((label, i) => writeModel(join(dir, `${label}.safetensors`), dtype, inputs[i]));
    const inputBytes = LABELS.length * ENTRIES * (dtype === 'F32' ? 4 : 2);
    const memory = async () => {
      const out = [];
      for (let t = 0; t < NAMES.length; t++) {
        out.push((await mk.mergeTensors('ties', { base: { data: inputs[0][t], shape: SHAPES[t] }, models: inputs.slice(1).map((m) => ({ data: m[t], shape: SHAPES[t] })), parameters: { density: DENSITY, semantics } })).data);
      }
      return out;
    };
    const want = await memory();
    // Validate: the CLI's file equals the in-memory result, encoded in the output dtype, bit for bit.
    const outDir = join(dir, 'out');
    const first = cli(dir, outDir);
    const file = readSafetensors(new Uint8Array(readFileSync(join(outDir, 'model.safetensors'))));
    const same = NAMES.every((name, t) => {
      const got = file.tensors.get(name).bytes;
      const exp = dtype === 'F32' ? new Uint8Array(want[t].buffer) : encodeFromFloat32(dtype, want[t]);
      return got.length === exp.length && Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.length), Buffer.from(exp.buffer, exp.byteOffset, exp.length)) === 0;
    });
    const memMs = [], cliMs = [], rss = [], abMs = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      await memory();
      memMs.push(performance.now() - t0);
      const c = cli(dir, outDir);
      cliMs.push(c.ms);
      rss.push(c.rssMB);
      if (ab) abMs.push(cli(dir, outDir, ab).ms);
    }
    const m = median(memMs), c = median(cliMs);
    const row = {
      valid: same, inputBytes, memoryMs: m, memoryMsMin: Math.min(...memMs), cliMs: c, cliMsMin: Math.min(...cliMs),
      ratio: c / m, peakRssMB: Math.max(...rss), readRateGBs: inputBytes / (c / 1e3) / 1e9, cliSummary: first.stdout.trim().split('\n')[1],
      loadAverage1m: loadavg()[0], ...(ab ? { ab, abCliMs: median(abMs), abCliMsMin: Math.min(...abMs) } : {}),
    };
    results[dtype] = row;
    console.log(`${dtype}: ${same ? '✔' : '✘ the CLI output differs from the in-memory merge'}`);
    console.log(`  in memory (mk.mergeTensors('ties'), wasm)  ${fmt(m)} ms (${fmt(row.memoryMsMin)})`);
    console.log(`  CLI (spawned, whole run)                   ${fmt(c)} ms (${fmt(row.cliMsMin)})   ${row.ratio.toFixed(2)}× the in-memory merge`);
    if (ab) console.log(`  CLI with ${ab.padEnd(31)}${fmt(row.abCliMs)} ms (${fmt(row.abCliMsMin)})   ${(row.abCliMs / m).toFixed(2)}× the in-memory merge`);
    console.log(`  CLI peak RSS                               ${row.peakRssMB.toFixed(0)} MB`);
    console.log(`  effective read rate                        ${row.readRateGBs.toFixed(2)} GB/s (${(inputBytes / 1e6).toFixed(0)} MB of inputs / wall time; copy bandwidth ${limits.copyBandwidthGBs.toFixed(1)} GB/s)`);
    console.log(`  CLI says: ${row.cliSummary}; load average now ${row.loadAverage1m.toFixed(1)}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  mk.dispose();
}
writeResult('cli-merge', { machine, quick, limits, semantics, chunkSize: chunkSize ?? 'default', runs, results });
console.log('written: bench/results/cli-merge.json');
