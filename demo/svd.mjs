// The SVD part of `npm start`: a fine-tuning update split into LoRA-style factors (mk.lowRank)
// with the energy each rank keeps; the randomized method against the exact one on a KV-cache-sized
// matrix; the accuracy on an ill-conditioned matrix with known singular values, per backend; and
// extractLora turning a generated fine-tune into a PEFT adapter.
// Seeded: the same output on every run (timings aside).
import { extractLora, init, reference, writeSafetensors } from '../dist/index.js';

/** Standard normal draws from the package's seeded generator (Box–Muller). */
function gaussian(seed) {
  const next = reference.seededStream(seed, 0);
  return () => Math.sqrt(-2 * Math.log((next() + 1) / 4294967297)) * Math.cos((2 * Math.PI * next()) / 4294967296);
}

/** x [m, r]·y [r, n] in float64, rounded to float32. */
function product(x, y, m, r, n) {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
    const f = x[i * r + c];
    for (let j = 0; j < n; j++) out[i * n + j] += f * y[c * n + j];
  }
  return out;
}

const relError = (a, b) => {
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) { e += (a[i] - b[i]) ** 2; s += a[i] ** 2; }
  return Math.sqrt(e / s);
};

/** Orthonormal columns [rows, cols] by Gram–Schmidt (twice) in float64. */
function orthonormal(rows, cols, normal) {
  const q = Float64Array.from({ length: rows * cols }, normal);
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) for (let c = 0; c < j; c++) {
      let d = 0;
      for (let i = 0; i < rows; i++) d += q[i * cols + j] * q[i * cols + c];
      for (let i = 0; i < rows; i++) q[i * cols + j] -= d * q[i * cols + c];
    }
    let s = 0;
    for (let i = 0; i < rows; i++) s += q[i * cols + j] ** 2;
    for (let i = 0; i < rows; i++) q[i * cols + j] /= Math.sqrt(s);
  }
  return q;
}

export async function svdDemo({ gpu }) {
  console.log('\nSVD: low rank for models and KV caches (mk.svd, mk.lowRank)');
  const mk = await init({ gpu });
  console.log(`  backend: ${mk.backend}`);

  // 1. LoRA extraction: ΔW = W_finetuned − W_base, a rank-8 update plus 2% noise.
  const [m, n, r0] = [512, 256, 8];
  const normal = gaussian(21);
  const left = Float32Array.from({ length: m * r0 }, normal), right = Float32Array.from({ length: r0 * n }, (_, i) => normal() / (1 + (i / n)));
  const delta = product(left, right, m, r0, n);
  const scale = Math.sqrt(delta.reduce((t, v) => t + v * v, 0) / delta.length);
  for (let i = 0; i < delta.length; i++) delta[i] += 0.02 * scale * normal();
  console.log(`  a fine-tuning update ΔW [${m}, ${n}] (rank ${r0} + 2% noise) as LoRA factors a [${m}, r] · b [r, ${n}]:`);
  console.log('      r   energy kept   ‖ΔW − a·b‖/‖ΔW‖   parameters');
  for (const rank of [1, 4, 8, 16]) {
    const t0 = performance.now();
    const lr = await mk.lowRank({ data: delta, shape: [m, n] }, { rank, method: 'exact' });
    const ms = performance.now() - t0;
    const err = relError(delta, product(lr.a.data, lr.b.data, m, rank, n));
    console.log(`    ${String(rank).padStart(3)}   ${(100 * lr.energy[rank - 1]).toFixed(2).padStart(10)}%   ${err.toExponential(2).padStart(15)}   ${String(rank * (m + n)).padStart(6)} of ${m * n} (${ms.toFixed(0)} ms)`);
  }

  // 2. Randomized vs exact: the top 16 of a keys matrix [T, d] whose spectrum decays.
  const [T, d, k] = [2048, 256, 16];
  const nk = gaussian(22);
  const basis = orthonormal(d, d, nk), coeff = Float32Array.from({ length: T * d }, (_, i) => nk() * Math.pow(0.9, i % d));
  const keys = product(coeff, Float32Array.from(basis), T, d, d);
  console.log(`  top-${k} of a keys matrix [${T}, ${d}] (σ decaying as 0.9^i):`);
  for (const method of ['exact', 'randomized']) {
    const t0 = performance.now();
    const f = await mk.svd({ data: keys, shape: [T, d] }, { k, method });
    const ms = performance.now() - t0;
    const us = Float32Array.from(f.u.data.map((v, i) => v * f.s[i % k]));
    console.log(`    ${method.padEnd(10)}  σ₁ ${f.s[0].toFixed(3)}  σ₁₆ ${f.s[k - 1].toFixed(4)}  ‖K − U·S·Vᵀ‖/‖K‖ ${relError(keys, product(us, f.vt.data, T, k, d)).toExponential(3)}   ${ms.toFixed(0)} ms`);
  }

  // 3. Accuracy where the Gram matrix AᵀA fails: condition number 1e6, known σ.
  const size = 96;
  const na = gaussian(23);
  const u = orthonormal(size, size, na), v = orthonormal(size, size, na);
  const sigma = Array.from({ length: size }, (_, i) => Math.pow(1e6, -i / (size - 1)));
  const a = new Float32Array(size * size);
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) {
    let s = 0;
    for (let c = 0; c < size; c++) s += u[i * size + c] * sigma[c] * v[j * size + c];
    a[i * size + j] = s;
  }
  console.log(`  [${size}, ${size}] with condition number 1e6 and known σ (the float32 Gram-matrix route loses U here):`);
  const backends = ['js', 'wasm', ...(gpu ? ['webgpu'] : [])];
  for (const backend of backends) {
    let ctx;
    try { ctx = await init({ backend, gpu }); } catch (e) { console.log(`    ${backend.padEnd(7)} unavailable (${e.message})`); continue; }
    const f = await ctx.svd({ data: a, shape: [size, size] });
    let orth = 0, sig = 0;
    for (let p = 0; p < size; p++) {
      sig = Math.max(sig, Math.abs(f.s[p] - sigma[p]));
      for (let q = 0; q < size; q++) {
        let dot = 0;
        for (let i = 0; i < size; i++) dot += f.u.data[i * size + p] * f.u.data[i * size + q];
        orth = Math.max(orth, Math.abs(dot - (p === q ? 1 : 0)));
      }
    }
    const us = Float32Array.from(f.u.data.map((x, i) => x * f.s[i % size]));
    console.log(`    ${backend.padEnd(7)} ‖A − USVᵀ‖/‖A‖ ${relError(a, product(us, f.vt.data, size, size, size)).toExponential(1)}   max|UᵀU − I| ${orth.toExponential(1)}   max|σ − known|/σ₁ ${sig.toExponential(1)}`);
    ctx.dispose();
  }

  // 4. extractLora on two generated checkpoints (in memory): q/v projections fine-tuned by rank-4
  // updates plus a little noise, an embedding and a norm that changed too.
  const f32 = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const noise = gaussian(77);
  const tensors = [['model.layers.0.self_attn.q_proj.weight', [96, 64]], ['model.layers.0.self_attn.v_proj.weight', [96, 64]], ['model.embed_tokens.weight', [50, 64]], ['model.norm.weight', [64]]];
  const base = [], tuned = [];
  for (const [name, shape] of tensors) {
    const size = shape.reduce((x, y) => x * y, 1);
    const w = Float32Array.from({ length: size }, () => 0.02 * noise());
    const d = shape.length === 2 && name.includes('proj')
      ? product(Float32Array.from({ length: shape[0] * 4 }, noise), Float32Array.from({ length: 4 * shape[1] }, () => 0.001 * noise()), shape[0], 4, shape[1])
      : Float32Array.from({ length: size }, () => 0.001 * noise());
    for (let i = 0; i < size; i++) d[i] += w[i] + 0.00001 * noise();
    base.push({ name, dtype: 'F32', shape, data: f32(w) });
    tuned.push({ name, dtype: 'F32', shape, data: f32(d) });
  }
  const t0 = performance.now();
  const lora = await extractLora({ base: new Blob([writeSafetensors(base)]), model: new Blob([writeSafetensors(tuned)]), rank: 0.99, backend: mk });
  console.log(`  extractLora (rank: 0.99 of each weight's ‖Δ‖²) on a generated fine-tune, ${(performance.now() - t0).toFixed(0)} ms → ${lora.files.map((f) => f.name).join(', ')}:`);
  for (const t of lora.tensors) {
    console.log(`    ${t.name.padEnd(42)} [${t.shape.join(', ')}]`.padEnd(58) + (t.kind === 'lora' ? `LoRA rank ${t.rank}, energy ${(100 * t.energy).toFixed(2)}%` : t.kind === 'full' ? 'saved whole (modules_to_save)' : t.kind));
  }
  console.log(`  (the same from files: npx merge-kernels extract-lora --base B --model M --rank 0.99 -o adapter/)`);
  mk.dispose();
}
