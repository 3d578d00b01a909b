// npm start: a demo of every kernel merge-kernels has, on data it generates.
// Today: cosineSimilarity and ToMe's bipartite soft matching (token merging).
import { init, reference } from '../dist/index.js';

/** A 224×224 RGB picture made of a sky gradient, a sun, a house and grass; values in [0, 1]. */
function makePicture(size = 224) {
  const px = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let rgb = [0.35 + 0.4 * (1 - y / size), 0.6 + 0.3 * (1 - y / size), 0.95]; // sky
      if ((x - 170) ** 2 + (y - 45) ** 2 < 22 ** 2) rgb = [1, 0.85, 0.2];            // sun
      if (y > 150) rgb = [0.2, 0.55 + 0.1 * Math.sin(x / 7), 0.2];                    // grass
      if (x > 50 && x < 130 && y > 100 && y <= 150) rgb = [0.7, 0.3, 0.25];           // house
      if (x > 80 && x < 100 && y > 120 && y <= 150) rgb = [0.35, 0.2, 0.1];           // door
      px.set(rgb, (y * size + x) * 3);
    }
  }
  return px;
}

/** Cuts the picture into 16×16 patches: 196 tokens of 768 values (ViT-B/16's patch embedding input). */
function patches(px, size = 224, p = 16) {
  const g = size / p;
  const out = new Float32Array(g * g * p * p * 3);
  for (let ty = 0; ty < g; ty++) for (let tx = 0; tx < g; tx++) {
    const t = ty * g + tx;
    for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) for (let c = 0; c < 3; c++) {
      // Centre each channel so that colour, not brightness alone, drives the similarity.
      out[((t * p + y) * p + x) * 3 + c] = px[(((ty * p + y) * size) + tx * p + x) * 3 + c] - 0.5;
    }
  }
  return { data: out, tokens: g * g, dim: p * p * 3, grid: g };
}

async function nodeGpu() {
  try {
    process.env.XDG_RUNTIME_DIR ??= '/tmp'; // Dawn complains without it
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    return webgpu.create([]);
  } catch {
    return undefined; // the optional peer dependency is not installed
  }
}

const picture = patches(makePicture());
const { tokens, dim, grid } = picture;
// ToMe's bipartite split: even tokens (set A) against odd tokens (set B).
const half = (parity) => {
  const rows = [];
  for (let t = parity; t < tokens; t += 2) rows.push(picture.data.subarray(t * dim, (t + 1) * dim));
  const data = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => data.set(r, i * dim));
  return { data, shape: [rows.length, dim] };
};
const A = half(0), B = half(1);
console.log(`merge-kernels demo: a generated 224×224 picture → ${tokens} patch tokens of ${dim} values (${grid}×${grid} grid)\n`);

const gpu = await nodeGpu();
const want = reference.cosineSimilarity(A.data, B.data, 1, A.shape[0], B.shape[0], dim);
for (const backend of ['auto', 'webgpu', 'wasm', 'js']) {
  let mk;
  try {
    mk = await init({ backend, gpu });
  } catch (e) {
    const hint = gpu && !process.env.VK_ICD_FILENAMES ? ' — with no GPU, try VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm start (software Vulkan from Debian\'s chromium)' : '';
    console.log(`${backend.padEnd(6)} unavailable: ${e.message}${hint}`);
    continue;
  }
  const t0 = performance.now();
  const sim = await mk.cosineSimilarity(A, B);
  const ms = performance.now() - t0;
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(sim.data[i] - want[i]));
  const note = backend === 'auto' ? ` → resolved to ${mk.backend}${mk.fallbackReasons.length ? ` (${mk.fallbackReasons.join('; ')})` : ''}` : '';
  console.log(`${backend.padEnd(6)} cosineSimilarity [${A.shape}] × [${B.shape}] → [${sim.shape}] in ${ms.toFixed(1)} ms, max |Δ| vs reference ${err.toExponential(1)}${note}`);
  if (backend === 'wasm') {
    // What bipartite soft matching would do next: each A token's best match in B.
    const nA = A.shape[0], nB = B.shape[0];
    let merged = 0;
    const best = [];
    for (let i = 0; i < nA; i++) {
      let j = 0;
      for (let k = 1; k < nB; k++) if (sim.data[i * nB + k] > sim.data[i * nB + j]) j = k;
      best.push(sim.data[i * nB + j]);
      if (sim.data[i * nB + j] > 0.99) merged++;
    }
    console.log(`       ${merged} of ${nA} A tokens have a B token with similarity > 0.99 (flat sky, grass and wall patches): what token merging would merge first`);
  }
  mk.dispose();
}

// ── Token merging (ToMe): four merge steps of r = 24 on the picture's patch tokens ──
{
  const mk = await init({ backend: 'auto', gpu });
  console.log(`\ntoken merging (ToMe bipartite soft matching, backend ${mk.backend}): patch tokens as the metric, r = 24 per step`);
  let x = { data: picture.data, shape: [1, tokens, dim] };
  let size, source;
  for (let step = 1; step <= 4; step++) {
    const plan = await mk.bipartiteSoftMatching(x, { r: 24 });
    source = mk.mergeSource(plan, source);
    ({ x, size } = mk.mergeWavg(plan, x, size));
    const sizes = Array.from(size.data).sort((a, b) => b - a);
    console.log(`  step ${step}: ${plan.tokens} → ${x.shape[1]} tokens (largest merged tokens hold ${sizes.slice(0, 3).join(', ')} patches)`);
  }
  // Which merged token holds each original patch: one letter per token of 3+ patches, '.' for the rest.
  const n = x.shape[1];
  const owner = new Int32Array(tokens);
  for (let i = 0; i < n; i++) for (let j = 0; j < tokens; j++) if (source.data[i * tokens + j] === 1) owner[j] = i;
  const big = [...new Set(owner)].filter((i) => size.data[i] >= 3).sort((a, b) => size.data[b] - size.data[a]);
  const letter = new Map(big.map((i, k) => [i, k < 26 ? String.fromCharCode(65 + k) : String.fromCharCode(97 + ((k - 26) % 26))]));
  console.log(`  which patches merged (${grid}×${grid}; letters = merged tokens of 3+ patches, largest first):`);
  for (let y = 0; y < grid; y++) {
    let row = '    ';
    for (let xx = 0; xx < grid; xx++) row += (letter.get(owner[y * grid + xx]) ?? '.') + ' ';
    console.log(row);
  }
  mk.dispose();
}
process.exit(0);
