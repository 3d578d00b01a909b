// Peak memory of the streaming merge runner: merges N float32 models of S MB each from disk and
// reports the child process's peak RSS against the model size, for several chunk sizes.
// Usage: node bench/runner-memory.mjs [--models 3] [--size-mb 512] [--chunks 4,16,64]
// The merge is a weighted average (defined here: the package's methods live in their registry),
// so the numbers are the runner's own cost: reading, decoding, encoding and writing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, writeSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };

const linear = {
  name: 'linear', needsBase: false, globalParams: {}, modelParams: { weight: 1 },
  create: () => ({
    name: 'linear', needsBase: false, modelPasses: 0, async observeModel() {},
    tensor: (_info, params) => {
      const w = params.models.map((m) => m.weight);
      const div = w.reduce((a, b) => a + b, 0);
      return {
        passes: 0, rowAlign: 1, async observe() {},
        async apply(chunk, out) {
          out.fill(0);
          chunk.models.forEach((x, m) => { const k = w[m] / div; for (let i = 0; i < out.length; i++) out[i] += k * x[i]; });
        },
      };
    },
  }),
};

if (args[0] === '--child') {
  const [, dir, chunkMiB, models] = args;
  const { init } = await import(join(root, 'dist', 'index.js'));
  const { mergeModelFiles } = await import(join(root, 'dist', 'node.js'));
  const mk = await init({ backend: 'wasm' });
  const before = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  let result;
  if (Number(chunkMiB) > 0) {
    const config = { merge_method: 'linear', models: Array.from({ length: Number(models) }, (_, i) => ({ model: `m${i}.safetensors`, parameters: { weight: i + 1 } })) };
    result = await mergeModelFiles({ config, baseDir: dir, outDir: join(dir, 'out'), methods: { linear }, backend: mk, chunkSize: Number(chunkMiB) * 2 ** 20 });
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ maxRssMB: process.resourceUsage().maxRSS / 1024, startRssMB: before / 1024, seconds, bytesRead: result?.bytesRead ?? 0, bytesWritten: result?.bytesWritten ?? 0 }));
  mk.dispose();
  process.exit(0);
}

const models = Number(opt('models', 3));
const sizeMB = Number(opt('size-mb', 512));
const chunks = opt('chunks', '4,16,64').split(',').map(Number);
const { encodeSafetensorsHeader } = await import(join(root, 'dist', 'index.js'));
const dir = mkdtempSync(join(tmpdir(), 'merge-kernels-mem-'));
try {
  // Four tensors per model, the largest half the model: each far larger than any chunk.
  const entries = Math.floor(sizeMB * 1e6 / 4);
  const shapes = [[Math.floor(entries / 2 / 4096), 4096], [Math.floor(entries / 4 / 4096), 4096], [Math.floor(entries / 8 / 4096), 4096], [Math.floor(entries / 8 / 4096), 4096]];
  const block = new Float32Array(4 * 2 ** 20);
  for (let m = 0; m < models; m++) {
    const tensors = shapes.map((shape, i) => ({ name: `model.layers.${i}.w`, dtype: 'F32', shape }));
    const { header, dataLength } = encodeSafetensorsHeader(tensors);
    const fd = openSync(join(dir, `m${m}.safetensors`), 'w');
    writeSync(fd, header);
    let seed = m + 1;
    for (let left = dataLength; left > 0;) {
      for (let i = 0; i < block.length; i++) { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; block[i] = seed / 2 ** 32 - 0.5; }
      const n = Math.min(left, block.byteLength);
      writeSync(fd, new Uint8Array(block.buffer, 0, n));
      left -= n;
    }
    closeSync(fd);
  }
  const total = models * shapes.reduce((a, [r, c]) => a + r * c * 4, 0);
  const child = (chunk) => JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir, String(chunk), String(models)], { encoding: 'utf8' }));
  const baseline = child(0);
  const rows = [`| chunk | peak RSS | over the idle process | inputs read | time | read rate |`, `|---|---|---|---|---|---|`];
  rows.push(`| (no merge) | ${baseline.maxRssMB.toFixed(0)} MB | — | — | — | — |`);
  for (const c of chunks) {
    const r = child(c);
    rows.push(`| ${c} MiB | ${r.maxRssMB.toFixed(0)} MB | ${(r.maxRssMB - baseline.maxRssMB).toFixed(0)} MB | ${(r.bytesRead / 1e6).toFixed(0)} MB | ${r.seconds.toFixed(1)} s | ${(r.bytesRead / 1e6 / r.seconds).toFixed(0)} MB/s |`);
  }
  const text = `runner peak memory: ${models} float32 models of ${(total / models / 1e6).toFixed(0)} MB (${(total / 1e6).toFixed(0)} MB in all), largest tensor ${(shapes[0][0] * shapes[0][1] * 4 / 1e6).toFixed(0)} MB, wasm backend, Node ${process.version}\n\n${rows.join('\n')}\n`;
  console.log(text);
  if (args.includes('--save')) writeFileSync(join(root, 'bench', 'results', `runner-memory-${new Date().toISOString().slice(0, 10)}.md`), text);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
