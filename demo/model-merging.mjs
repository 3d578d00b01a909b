// The model-merging half of `npm start`: a tiny multi-task classifier (a shared ReLU layer and one
// head per task), a base that was never trained on the tasks, and one fine-tuned copy per task;
// written as safetensors in memory, merged with task arithmetic, TIES and DARE through
// mergeModels and a mergekit-style YAML config, then scored on every task. Seeded: the same
// output on every run. Finally the same TIES merge through the CLI, on files in a temp folder.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METHODS, decodeToFloat32, encodeFromFloat32, init, mergeModels, readSafetensors, reference, writeSafetensors } from '../dist/index.js';

const SEED = 11;
const IN = 16, HIDDEN = 32, CLASSES = 4;
/** Each task labels an input by a random linear teacher that reads its own (overlapping) window of the features. */
const TASKS = [{ name: 'a', from: 0, to: 10 }, { name: 'b', from: 3, to: 13 }, { name: 'c', from: 6, to: 16 }];
const TRAIN = 400, TEST = 1000, STEPS = 150, LR = 0.5;

/** Standard normal draws from the package's seeded generator (Box–Muller). */
function gaussian(stream) {
  const next = reference.seededStream(SEED, stream);
  return () => Math.sqrt(-2 * Math.log((next() + 1) / 4294967297)) * Math.cos((2 * Math.PI * next()) / 4294967296);
}

/** A task's train and test sets: x ~ N(0, I), label = argmax of the teacher's scores. */
function makeTask(t) {
  const normal = gaussian(100 + t);
  const { from, to } = TASKS[t];
  const teacher = Float64Array.from({ length: CLASSES * IN }, (_, i) => (i % IN >= from && i % IN < to ? normal() : 0));
  const sample = (n) => {
    const x = Float64Array.from({ length: n * IN }, normal);
    const y = new Int32Array(n);
    for (let s = 0; s < n; s++) {
      let best = -Infinity;
      for (let c = 0; c < CLASSES; c++) {
        let v = 0;
        for (let i = 0; i < IN; i++) v += teacher[c * IN + i] * x[s * IN + i];
        if (v > best) { best = v; y[s] = c; }
      }
    }
    return { x, y, n };
  };
  return { train: sample(TRAIN), test: sample(TEST) };
}

/** The model's tensors, by name, as safetensors will hold them. */
function baseModel() {
  const normal = gaussian(1);
  const model = new Map();
  const add = (name, shape, scale) => model.set(name, { shape, data: Float64Array.from({ length: shape.reduce((a, b) => a * b) }, () => scale * normal()) });
  add('trunk.weight', [HIDDEN, IN], Math.sqrt(2 / IN));
  add('trunk.bias', [HIDDEN], 0);
  for (const t of TASKS) {
    add(`heads.${t.name}.weight`, [CLASSES, HIDDEN], Math.sqrt(1 / HIDDEN));
    add(`heads.${t.name}.bias`, [CLASSES], 0);
  }
  return model;
}

const copy = (model) => new Map([...model].map(([k, v]) => [k, { shape: v.shape, data: Float64Array.from(v.data) }]));

/** Logits of task t's head for n inputs, and the hidden activations. */
function forward(model, t, x, n) {
  const W1 = model.get('trunk.weight').data, b1 = model.get('trunk.bias').data;
  const W2 = model.get(`heads.${TASKS[t].name}.weight`).data, b2 = model.get(`heads.${TASKS[t].name}.bias`).data;
  const h = new Float64Array(n * HIDDEN), logits = new Float64Array(n * CLASSES);
  for (let s = 0; s < n; s++) {
    for (let j = 0; j < HIDDEN; j++) {
      let v = b1[j];
      for (let i = 0; i < IN; i++) v += W1[j * IN + i] * x[s * IN + i];
      h[s * HIDDEN + j] = v > 0 ? v : 0;
    }
    for (let c = 0; c < CLASSES; c++) {
      let v = b2[c];
      for (let j = 0; j < HIDDEN; j++) v += W2[c * HIDDEN + j] * h[s * HIDDEN + j];
      logits[s * CLASSES + c] = v;
    }
  }
  return { h, logits };
}

/** Fine-tuning: full-batch gradient descent on softmax cross-entropy, trunk and task t's head. */
function fineTune(model, t, { x, y, n }) {
  const W1 = model.get('trunk.weight').data, b1 = model.get('trunk.bias').data;
  const W2 = model.get(`heads.${TASKS[t].name}.weight`).data, b2 = model.get(`heads.${TASKS[t].name}.bias`).data;
  for (let step = 0; step < STEPS; step++) {
    const { h, logits } = forward(model, t, x, n);
    const gW1 = new Float64Array(W1.length), gb1 = new Float64Array(b1.length);
    const gW2 = new Float64Array(W2.length), gb2 = new Float64Array(b2.length);
    for (let s = 0; s < n; s++) {
      const row = logits.subarray(s * CLASSES, (s + 1) * CLASSES);
      const peak = Math.max(...row);
      const e = row.map((v) => Math.exp(v - peak));
      const sum = e.reduce((a, b) => a + b);
      const dlogit = e.map((v, c) => (v / sum - (c === y[s] ? 1 : 0)) / n);
      for (let j = 0; j < HIDDEN; j++) {
        const hj = h[s * HIDDEN + j];
        let dh = 0;
        for (let c = 0; c < CLASSES; c++) {
          gW2[c * HIDDEN + j] += dlogit[c] * hj;
          dh += dlogit[c] * W2[c * HIDDEN + j];
        }
        if (hj <= 0) continue;
        gb1[j] += dh;
        for (let i = 0; i < IN; i++) gW1[j * IN + i] += dh * x[s * IN + i];
      }
      for (let c = 0; c < CLASSES; c++) gb2[c] += dlogit[c];
    }
    for (const [p, g] of [[W1, gW1], [b1, gb1], [W2, gW2], [b2, gb2]]) for (let i = 0; i < p.length; i++) p[i] -= LR * g[i];
  }
  return model;
}

function accuracy(model, t, { x, y, n }) {
  const { logits } = forward(model, t, x, n);
  let right = 0;
  for (let s = 0; s < n; s++) {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (logits[s * CLASSES + c] > logits[s * CLASSES + best]) best = c;
    if (best === y[s]) right++;
  }
  return right / n;
}

/** A model as a safetensors file's bytes (F32), as an ArrayBuffer: what a browser gets from fetch() or a File. */
function toSafetensors(model) {
  const bytes = writeSafetensors([...model].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, data: encodeFromFloat32('F32', Float32Array.from(t.data)) })));
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** A safetensors file's tensors as float32 (and float64 for scoring). */
function fromSafetensors(bytes) {
  const { tensors } = readSafetensors(new Uint8Array(bytes));
  return new Map([...tensors].map(([name, t]) => [name, { shape: t.shape, f32: decodeToFloat32(t.dtype, t.bytes), data: Float64Array.from(decodeToFloat32(t.dtype, t.bytes)) }]));
}

/** A mergekit config: one entry per fine-tuned model with its parameters, and global parameters. */
function yamlConfig(method, modelParams, globalParams) {
  const flow = (o) => `{${Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ')}}`;
  return [
    `merge_method: ${method}`,
    'base_model: base.safetensors',
    'models:',
    ...TASKS.map((t) => `  - model: task-${t.name}.safetensors\n    parameters: ${flow(modelParams)}`),
    ...(globalParams ? [`parameters: ${flow(globalParams)}`] : []),
    'dtype: float32',
  ].join('\n') + '\n';
}

const pct = (v) => `${(100 * v).toFixed(1)}%`;

/** Runs the model-merging demo on a context's backend. */
export async function modelMergingDemo({ gpu }) {
  console.log('\n── Model merging ──');
  const data = TASKS.map((_, t) => makeTask(t));
  const base = baseModel();
  const tuned = TASKS.map((_, t) => fineTune(copy(base), t, data[t].train));
  console.log(`a tiny classifier: trunk.weight [${HIDDEN}, ${IN}] + ReLU, then one 4-class head per task (heads.{a,b,c}); 3 tasks over overlapping windows of ${IN} Gaussian features.`);
  console.log(`base: random initialisation, never trained on the tasks; task-a, task-b, task-c: the base fine-tuned ${STEPS} gradient steps on ${TRAIN} examples of its own task (trunk and its own head).`);

  const files = { 'base.safetensors': toSafetensors(base) };
  TASKS.forEach((t, i) => { files[`task-${t.name}.safetensors`] = toSafetensors(tuned[i]); });
  // Round-trip through float32 safetensors, so the fine-tuned models are scored as they are merged.
  const stored = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, fromSafetensors(v)]));

  const runs = [
    { label: 'task_arithmetic', method: 'task_arithmetic', model: { weight: 1.0 }, global: { lambda: 1.0 } },
    { label: 'ties', method: 'ties', model: { weight: 1.0, density: 0.5 } },
    { label: 'ties (paper)', method: 'ties', model: { weight: 1.0, density: 0.5 }, global: { semantics: 'paper' } },
    { label: 'dare_ties', method: 'dare_ties', model: { weight: 1.0, density: 0.5 } },
  ];
  const mk = await init({ backend: 'auto', gpu });
  for (const run of runs) {
    run.yaml = yamlConfig(run.method, run.model, run.global);
    const result = await mergeModels({ config: run.yaml, inputs: files, methods: METHODS, backend: mk, seed: SEED });
    run.bytes = await result.blob.arrayBuffer();
    run.merged = fromSafetensors(run.bytes);
  }
  const ties = runs[1], dare = runs[3];
  console.log(`\nmerged on the ${mk.backend} backend: mergeModels({ config, inputs: { 'base.safetensors': ArrayBuffer, … }, methods: METHODS, backend: mk, seed: ${SEED} }) → a Blob; the ties config:`);
  console.log(ties.yaml.trimEnd().replace(/^/gm, '    '));
  console.log('  the others: task_arithmetic with merge_method: task_arithmetic, {weight: 1} per model and parameters: {lambda: 1};');
  console.log('  ties (paper): the same plus parameters: {semantics: paper}; dare_ties: merge_method: dare_ties');
  console.log('  (ties, as mergekit: keeps exactly floor(d·n) entries, elects + on a zero vote total and divides by the agreeing weights;');
  console.log('   semantics: paper, the TIES code: keeps floor(d·n) + 1 entries plus ties, a zero total takes the majority sign, normalize is the mean of agreeing entries.');
  console.log('   dare_ties: random drop, kept entries rescaled to the task vector\'s L1 norm, mergekit\'s rescale)\n');

  const head = ['task', 'base', 'task-a', 'task-b', 'task-c', ...runs.map((r) => r.label)];
  const rows = TASKS.map((t, i) => [t.name, ...['base.safetensors', ...TASKS.map((u) => `task-${u.name}.safetensors`)].map((f) => pct(accuracy(stored[f], i, data[i].test))),
    ...runs.map((r) => pct(accuracy(r.merged, i, data[i].test)))]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells) => '  ' + cells.map((v, c) => v.padEnd(widths[c])).join('  ');
  console.log(`accuracy on each task's ${TEST} test examples (4 classes: chance is 25%); columns: the base, each fine-tuned model, each merge`);
  console.log(line(head));
  rows.forEach((r) => console.log(line(r)));
  console.log('  (each merged model serves all three tasks with one trunk; a fine-tuned model serves only its own. Dropping half of each task vector at random');
  const parameters = [...base.values()].reduce((a, t) => a + t.data.length, 0);
  console.log(`   costs this ${parameters}-parameter model more than trimming the smaller half: DARE relies on the redundancy of large fine-tuned models)`);

  // Per tensor: where the task vectors disagree, what each sparsifier kept, what each merge changed.
  const names = [...stored['base.safetensors'].keys()];
  console.log(`\nper tensor: sign conflicts (entries that two fine-tuned models moved in opposite directions), entries of each task vector kept by ties' trim (density ${ties.model.density}) and dare_ties' random drop (density ${dare.model.density}), entries each merge changed (merged ≠ base):`);
  const stats = [];
  for (const name of names) {
    const b = stored['base.safetensors'].get(name);
    const deltas = TASKS.map((t) => {
      const x = stored[`task-${t.name}.safetensors`].get(name).f32;
      return Float32Array.from(x, (v, i) => v - b.f32[i]);
    });
    let conflicts = 0;
    for (let i = 0; i < b.f32.length; i++) if (deltas.some((d) => d[i] > 0) && deltas.some((d) => d[i] < 0)) conflicts++;
    const nonzero = (x) => x.reduce((a, v) => a + (v !== 0 ? 1 : 0), 0);
    const kept = async (run, t) => {
      if (nonzero(deltas[t]) === 0) return '—';
      let out;
      if (run === ties) {
        out = (await mk.trimTopK({ data: deltas[t], shape: b.shape }, { density: run.model.density })).data;
      } else {
        // DARE's mask is a counter-based draw keyed by (seed, tensor name, model index): the merge's own mask.
        out = new Float32Array(deltas[t].length);
        await mk.primitives.dropAndRescale(deltas[t], 0, reference.modelMerging.modelStreamKey(SEED, name, t), run.model.density, 1, out);
      }
      return pct(nonzero(out) / out.length);
    };
    const changed = (run) => pct(nonzero(run.merged.get(name).f32.map((v, i) => v - b.f32[i])) / b.f32.length);
    stats.push([name, `[${b.shape.join(', ')}]`, pct(conflicts / b.f32.length),
      (await Promise.all(TASKS.map((_, t) => kept(ties, t)))).join(' '), changed(ties),
      (await Promise.all(TASKS.map((_, t) => kept(dare, t)))).join(' '), changed(dare), changed(runs[0])]);
  }
  const sHead = ['tensor', 'shape', 'conflicts', 'ties kept (a b c)', 'ties changed', 'dare_ties kept (a b c)', 'dare_ties changed', 'task_arithmetic changed'];
  const sWidths = sHead.map((h, c) => Math.max(h.length, ...stats.map((r) => r[c].length)));
  const sLine = (cells) => '  ' + cells.map((v, c) => v.padEnd(sWidths[c])).join('  ');
  console.log(sLine(sHead));
  stats.forEach((r) => console.log(sLine(r)));
  mk.dispose();

  // ── The same TIES merge with the CLI, on files in a temporary folder ──
  console.log('\nthe CLI does the same from files (model paths relative to the config):');
  console.log('  $ npx merge-kernels merge config.yml -o out/');
  const dir = mkdtempSync(join(tmpdir(), 'merge-kernels-demo-'));
  try {
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), new Uint8Array(bytes));
    writeFileSync(join(dir, 'config.yml'), ties.yaml);
    const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'merge-kernels.mjs');
    const out = execFileSync(process.execPath, [bin, 'merge', 'config.yml', '-o', 'out/', '--no-progress'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    console.log(out.trimEnd().replace(dir, '<tmp>').replace(/^/gm, '  '));
    const cli = new Uint8Array(readFileSync(join(dir, 'out', 'model.safetensors')));
    const mem = new Uint8Array(ties.bytes);
    const same = cli.length === mem.length && cli.every((v, i) => v === mem[i]);
    console.log(`  its out/model.safetensors is ${same ? 'byte for byte the file mergeModels gave above' : 'NOT the same file as mergeModels gave above (different backends?)'}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
