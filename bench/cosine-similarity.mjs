// cosineSimilarity [M, C] × [N, C] → [M, N] against plain JS and TensorFlow.js (wasm backend).
import { reference } from '../dist/index.js';
import { time, timePeer, maxAbsDiff } from './lib.mjs';

/** What a JS user would write without us: normalise rows, then the double loop of dot products. */
function plainJs(a, b, m, n, c) {
  const na = new Float32Array(a), nb = new Float32Array(b);
  for (const [x, rows] of [[na, m], [nb, n]]) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < c; k++) s += x[r * c + k] ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let k = 0; k < c; k++) x[r * c + k] *= inv;
    }
  }
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += na[i * c + k] * nb[j * c + k];
    out[i * n + j] = s;
  }
  return out;
}

/** TensorFlow.js: l2-normalise along the last axis, then matMul with bᵀ. */
function tfjs(tf, a, b, m, n, c) {
  return tf.tidy(() => {
    const ta = tf.tensor2d(a, [m, c]), tb = tf.tensor2d(b, [n, c]);
    const norm = (t) => tf.div(t, tf.maximum(tf.sqrt(tf.sum(tf.square(t), 1, true)), 1e-30));
    return tf.matMul(norm(ta), norm(tb), false, true).dataSync();
  });
}

/** Prints the table and returns the result object for bench/results/cosine-similarity.json. */
export default async function bench({ quick, limits, mk, tf, tfFlags }) {
  const shapes = quick ? [[98, 98, 768]] : [[98, 98, 768], [512, 512, 1024], [2048, 2048, 128]];
  const rows = [];
  console.log(`cosineSimilarity [M, C] × [N, C] → [M, N]   (peer: ${tfFlags})`);
  console.log('  shape (M×N×C)      contender          ✔   time (ms)   GFLOP/s   vs plain JS   vs tfjs   % SIMD limit');
  for (const [m, n, c] of shapes) {
    const a = Float32Array.from({ length: m * c }, (_, i) => Math.sin(i * 0.37) + 0.1);
    const b = Float32Array.from({ length: n * c }, (_, i) => Math.cos(i * 0.23) - 0.05);
    const want = reference.cosineSimilarity(a, b, 1, m, n, c);
    const flops = 2 * m * n * c;
    const contenders = {
      'merge-kernels wasm': async () => (await mk.cosineSimilarity({ data: a, shape: [m, c] }, { data: b, shape: [n, c] })).data,
      'tfjs wasm': async () => tfjs(tf, a, b, m, n, c),
      'plain JS': async () => plainJs(a, b, m, n, c),
    };
    const times = {}, valid = {};
    for (const [name, fn] of Object.entries(contenders)) {
      const t0 = performance.now();
      const worst = maxAbsDiff(await fn(), want);
      const once = performance.now() - t0;
      valid[name] = worst <= 1e-4;
      // Ours: 10 runs after a warm-up. Peers: the validating run warms them up, then up to 3 (plain JS)
      // or 10 runs within ~2 s (tfjs takes seconds a run at 2048×2048×128).
      const reps = name === 'plain JS' ? (quick ? 1 : 3) : (quick ? 3 : 10);
      times[name] = !valid[name] ? NaN : name === 'merge-kernels wasm' ? await time(fn, reps) : (await timePeer(fn, once, reps, quick ? 500 : 2000)).median;
      rows.push({ shape: [m, n, c], contender: name, valid: valid[name], maxAbsError: worst, ms: times[name], gflops: flops / (times[name] / 1e3) / 1e9 });
    }
    for (const [name, ms] of Object.entries(times)) {
      const gflops = flops / (ms / 1e3) / 1e9;
      console.log(`  ${`${m}×${n}×${c}`.padEnd(18)} ${name.padEnd(18)} ${valid[name] ? '✔' : '✘'}  ${ms.toFixed(2).padStart(10)}  ${gflops.toFixed(2).padStart(8)}  ${(times['plain JS'] / ms).toFixed(1).padStart(10)}×  ${(times['tfjs wasm'] / ms).toFixed(2).padStart(7)}×  ${(100 * gflops / limits.wasmSimdGflops).toFixed(0).padStart(8)}%`);
    }
  }
  return { peer: tfFlags, rows };
}
