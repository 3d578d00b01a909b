// The token-merging half of `npm start`: a generated picture's 16×16 patches as tokens, their
// cosine similarity on every backend, four ToMe steps, then tomesd's random 2-D matching (with
// its unmerge), DToMe's threshold (a different r per batch item) and PiToMe's energy score, and
// an SVG of which patches merged.
import { init, pitomeMargin, reference } from '../dist/index.js';
import { mergeMapSvg, writeAtomic } from './svg.mjs';

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

/** Which merged token holds each original patch, from a source matrix [1, N', N0] (mk.mergeSource). */
function owners(source) {
  const [, n, n0] = source.shape;
  const owner = new Int32Array(n0);
  for (let i = 0; i < n; i++) for (let j = 0; j < n0; j++) if (source.data[i * n0 + j] === 1) owner[j] = i;
  return owner;
}

/** Standard normal draws from our seeded generator (Box–Muller), so the demo prints the same every run. */
function gaussian(seed, stream) {
  const next = reference.seededStream(seed, stream);
  return () => Math.sqrt(-2 * Math.log((next() + 1) / 4294967297)) * Math.cos((2 * Math.PI * next()) / 4294967296);
}

/** Runs the token-merging demo; writes the SVG to `svgPath`. */
export async function tokenMergingDemo({ gpu, svgPath }) {
  const px = makePicture();
  const picture = patches(px);
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
  console.log(`── Token merging ──\na generated 224×224 picture → ${tokens} patch tokens of ${dim} values (${grid}×${grid} grid)\n`);

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
      for (let i = 0; i < nA; i++) {
        let j = 0;
        for (let k = 1; k < nB; k++) if (sim.data[i * nB + k] > sim.data[i * nB + j]) j = k;
        if (sim.data[i * nB + j] > 0.99) merged++;
      }
      console.log(`       ${merged} of ${nA} A tokens have a B token with similarity > 0.99 (flat sky, grass and wall patches): what token merging would merge first`);
    }
    mk.dispose();
  }

  const mk = await init({ backend: 'auto', gpu });
  const x0 = { data: picture.data, shape: [1, tokens, dim] };
  const panels = [{ title: 'the generated picture (14×14 patches)' }];

  // ── ToMe: four merge steps of r = 24 ──
  console.log(`\nToMe (bipartite soft matching, backend ${mk.backend}): patch tokens as the metric, r = 24 per step`);
  let x = x0, size, source;
  for (let step = 1; step <= 4; step++) {
    const plan = await mk.bipartiteSoftMatching(x, { r: 24 });
    source = mk.mergeSource(plan, source);
    ({ x, size } = mk.mergeWavg(plan, x, size));
    const sizes = Array.from(size.data).sort((a, b) => b - a);
    console.log(`  step ${step}: ${plan.tokens} → ${x.shape[1]} tokens (largest merged tokens hold ${sizes.slice(0, 3).join(', ')} patches)`);
  }
  // Which merged token holds each original patch: one letter per token of 3+ patches, '.' for the rest.
  const owner = owners(source);
  const big = [...new Set(owner)].filter((i) => size.data[i] >= 3).sort((a, b) => size.data[b] - size.data[a]);
  const letter = new Map(big.map((i, k) => [i, k < 26 ? String.fromCharCode(65 + k) : String.fromCharCode(97 + ((k - 26) % 26))]));
  console.log(`  which patches merged (${grid}×${grid}; letters = merged tokens of 3+ patches, largest first):`);
  for (let y = 0; y < grid; y++) {
    let row = '    ';
    for (let xx = 0; xx < grid; xx++) row += (letter.get(owner[y * grid + xx]) ?? '.') + ' ';
    console.log(row);
  }
  panels.push({ title: `ToMe, 4 steps of r = 24 → ${x.shape[1]} tokens`, owner });

  // ── tomesd: one destination per 2×2 cell, r = int(N · 0.5) as its patch computes it, then unmerge ──
  {
    const r = Math.floor(tokens * 0.5);
    const plan = await mk.bipartiteSoftMatchingRandom2d(x0, { w: grid, h: grid, sx: 2, sy: 2, r, seed: 1 });
    const merged = plan.merge(x0);
    const back = plan.unmerge(merged);
    // A token merged when its output row holds other tokens too; unmerge gives it that row.
    const members = new Map();
    for (const row of plan.outputRow) members.set(row, (members.get(row) ?? 0) + 1);
    let mergedTokens = 0, changed = 0, worst = 0;
    for (let t = 0; t < tokens; t++) {
      if (members.get(plan.outputRow[t]) < 2) continue;
      mergedTokens++;
      let d = 0;
      for (let i = t * dim; i < (t + 1) * dim; i++) d = Math.max(d, Math.abs(back.data[i] - x0.data[i]));
      if (d > 0) changed++;
      worst = Math.max(worst, d);
    }
    console.log(`\ntomesd random 2-D (sx = sy = 2, seed 1, r = int(N · 0.5) = ${plan.requestedR}): ${tokens} → ${merged.shape[1]} tokens; unmerge → [${back.shape}]`);
    console.log(`  ${mergedTokens} tokens were in merged groups; unmerge gives each its group's mean, which differs from the token for ${changed} of them (max |Δ| ${worst.toFixed(3)}; values in [−0.5, 0.5]): most groups are identical sky or wall patches`);
    panels.push({ title: `tomesd random 2-D, r = ${plan.r} → ${merged.shape[1]} tokens`, owner: owners(mk.mergeSource(plan)) });
  }

  // ── DToMe: merge every pair above a threshold, so each batch item gets its own r ──
  {
    const noisy = picture.data.slice();
    const normal = gaussian(7, 0);
    for (let i = 0; i < noisy.length; i++) noisy[i] += 0.07 * normal();
    const batch = new Float32Array(2 * tokens * dim);
    batch.set(picture.data, 0);
    batch.set(noisy, tokens * dim);
    const xb = { data: batch, shape: [2, tokens, dim] };
    const threshold = 0.95;
    const plan = await mk.thresholdSoftMatching(xb, { threshold });
    const outs = plan.merge(xb);
    console.log(`\nDToMe threshold (merge every A token whose best match has cosine > ${threshold}), a batch of 2:`);
    const names = ['the picture', 'the picture + Gaussian noise, σ = 0.07'];
    outs.forEach((o, b) => console.log(`  item ${b} (${names[b]}): r = ${plan.r[b]} → [${o.shape}]`));
    console.log('  (items differ in length, so merge returns one tensor per item; unmerge takes that array back)');
    panels.push({ title: `DToMe threshold ${threshold} → ${outs[0].shape[1]} tokens`, owner: owners(mk.mergeSource(plan.items[0])) });
  }

  // ── PiToMe: energy-scored merging, the margin of a first layer of 12 ──
  {
    const margin = pitomeMargin(0, 12);
    const plan = await mk.pitomeSoftMatching(x0, { r: 48, margin });
    const merged = plan.merge(x0);
    console.log(`\nPiToMe (energy margin ${margin}, r = 48): ${tokens} → ${merged.shape[1]} tokens; the 96 highest-energy tokens (those most like many others) alternate into A and B, each A merges into its best B`);
    panels.push({ title: `PiToMe, r = ${plan.r} → ${merged.shape[1]} tokens`, owner: owners(mk.mergeSource(plan)) });
  }
  mk.dispose();

  writeAtomic(svgPath, mergeMapSvg(px, 224, grid, panels));
  console.log(`\npicture of which patches merged (each merged group tinted and outlined): ${svgPath}`);
}
