// mk.svd on the wasm backend against the JavaScript SVDs a user would otherwise pick (ml-matrix,
// svd-js: float64 JavaScript, one-sided Jacobi / Golub–Kahan) and numpy's LAPACK (sgesdd, one
// thread) as the native anchor, in the same run. Every contender is validated (✔/✘: relative
// reconstruction error ‖A − U·S·Vᵀ‖_F/‖A‖_F, and for the randomized top-k the error against the
// optimal rank-k error) before it is timed; medians of back-to-back calls.
//   node bench/run.mjs svd      (or: node bench/svd.mjs [--quick])
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { rng, timePeer, timeStats, benchDir } from './lib.mjs';

const require = createRequire(import.meta.url);
/** The installed version of a package (its package.json, found above its entry point). */
function versionOf(name) {
  try {
    let dir = dirname(require.resolve(name));
    while (dir !== dirname(dir)) {
      try { const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')); if (pkg.name === name) return pkg.version; } catch {}
      dir = dirname(dir);
    }
  } catch {}
  return '?';
}
const peer = (name) => { try { return require(name); } catch (e) { return { missing: `${name} is not installed (${e.code ?? e.message})` }; } };

/** ‖A − U·S·Vᵀ‖_F / ‖A‖_F in float64 (u [m, k], vt [k, n], row-major typed or nested arrays flattened). */
function reconstructionError(a, m, n, u, s, vt, k) {
  let err = 0, norm = 0;
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let c = 0; c < k; c++) {
      const f = u[i * k + c] * s[c];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) row[j] += f * vt[c * n + j];
    }
    for (let j = 0; j < n; j++) { err += (a[i * n + j] - row[j]) ** 2; norm += a[i * n + j] ** 2; }
  }
  return Math.sqrt(err / norm);
}

/** A uniform random [m, n] matrix (seeded). */
function uniform(m, n, seed) {
  const next = rng(seed);
  return Float32Array.from({ length: m * n }, () => next() * 2 - 1);
}

/** Orthonormal columns [rows, cols] (modified Gram–Schmidt, twice, float64) from a seeded Gaussian. */
function orthonormal(rows, cols, next) {
  const q = new Float64Array(rows * cols);
  for (let i = 0; i < q.length; i++) q[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  for (let j = 0; j < cols; j++) {
    for (let pass = 0; pass < 2; pass++) for (let c = 0; c < j; c++) {
      let d = 0;
      for (let i = 0; i < rows; i++) d += q[i * cols + j] * q[i * cols + c];
      for (let i = 0; i < rows; i++) q[i * cols + j] -= d * q[i * cols + c];
    }
    let s = 0;
    for (let i = 0; i < rows; i++) s += q[i * cols + j] ** 2;
    s = Math.sqrt(s);
    for (let i = 0; i < rows; i++) q[i * cols + j] /= s;
  }
  return q;
}

/** [n, n] with singular values 0.8^i for i < r and 0 beyond (known optimal rank-k errors). */
function decaying(n, r, seed) {
  const next = rng(seed);
  const u = orthonormal(n, r, next), v = orthonormal(n, r, next);
  const sigma = Array.from({ length: r }, (_, i) => 0.8 ** i);
  const a = new Float32Array(n * n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let c = 0; c < r; c++) { const f = u[i * r + c] * sigma[c]; for (let j = 0; j < n; j++) row[j] += f * v[j * r + c]; }
    a.set(row, i * n);
  }
  return { a, sigma };
}

/** numpy's LAPACK on the same inputs (one BLAS thread), in a child process; null with the reason when numpy is missing. */
function numpyTimes(cases, quick) {
  const dir = mkdtempSync(join(tmpdir(), 'mk-svd-'));
  try {
    const specs = cases.map((c, i) => {
      const file = join(dir, `${i}.f32`);
      writeFileSync(file, new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength));
      return { file, shape: c.shape, k: c.k ?? null, reps: quick ? 3 : c.reps ?? 15 };
    });
    writeFileSync(join(dir, 'cases.json'), JSON.stringify(specs));
    const env = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
    const out = spawnSync('python3', [join(benchDir, 'svd_numpy.py'), join(dir, 'cases.json')], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (out.status !== 0) return { reason: (out.stderr || out.error?.message || 'python3 failed').trim().split('\n').pop() };
    return JSON.parse(out.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The kernels' own wasm, instantiated alone, for the QR's and the product's GFLOP/s. */
async function kernelRates(quick) {
  const memory = new WebAssembly.Memory({ initial: 16, maximum: 65536 });
  const { instance } = await WebAssembly.instantiate(readFileSync(join(benchDir, '..', 'dist', 'kernels.wasm')), { env: { memory, abort() { throw new Error('abort'); } } });
  const e = instance.exports;
  const base = e.heapBase();
  const need = (bytes) => { const pages = Math.ceil((base + bytes) / 65536) - memory.buffer.byteLength / 65536; if (pages > 0) memory.grow(pages); };
  // Householder QR of 4096 × 64 (2mn² − 2n³/3 flops).
  const [m, n] = [4096, 64];
  need(m * n * 8 + 4096);
  const a = uniform(m, n, 3);
  const qr = (await timeStats(() => { new Float32Array(memory.buffer, base, m * n).set(a); e.householderQR(base, m, n, base + m * n * 4, base + m * n * 4 + 1024); }, quick ? 5 : 30)).median;
  // Y = A·Ω, 2048² × 42 (the randomized range finder's product).
  const [p, l] = [2048, 42];
  need((p * p + 2 * p * l) * 4);
  new Float32Array(memory.buffer, base, p * p).set(uniform(p, p, 4));
  new Float32Array(memory.buffer, base + p * p * 4, p * l).set(uniform(p, l, 5));
  const mm = (await timeStats(() => e.multiply(base, base + p * p * 4, base + (p * p + p * l) * 4, p, p, l, 0), quick ? 3 : 10)).median;
  return { qrGflops: (2 * m * n * n - (2 * n ** 3) / 3) / (qr / 1e3) / 1e9, qrMs: qr, multiplyGflops: (2 * p * p * l) / (mm / 1e3) / 1e9, multiplyMs: mm };
}

export default async function bench({ quick, limits, mk }) {
  const { Matrix, SingularValueDecomposition, missing: mlMissing } = peer('ml-matrix');
  const svdJs = peer('svd-js');
  const shapes = quick ? [[128, 128], [4096, 64]] : [[128, 128], [512, 512], [1024, 256], [2048, 128], [4096, 64]];
  const cases = shapes.map(([m, n], i) => ({ name: `${m}×${n}`, m, n, shape: [m, n], data: uniform(m, n, 10 + i), reps: m * n > 200000 ? 7 : 25 }));
  const batch = 32;
  cases.push({ name: `${batch}×(128×128)`, m: 128, n: 128, batch, shape: [batch, 128, 128], data: uniform(batch * 128 * 128, 1, 99), reps: 7 });
  const top = quick ? 1024 : 4096;
  const dec = decaying(top, 64, 7);
  cases.push({ name: `top-32 of ${top}²`, m: top, n: top, k: 32, shape: [top, top], data: dec.a, sigma: dec.sigma, reps: 7 });

  const numpy = numpyTimes(cases, quick);
  const rows = [];
  console.log(`svd (exact unless top-k: randomized, oversample 10, 2 power iterations)   peers: ml-matrix ${mlMissing ? '(missing)' : versionOf('ml-matrix')}, svd-js ${svdJs.missing ? '(missing)' : versionOf('svd-js')}, numpy ${numpy.reason ? `(skipped: ${numpy.reason})` : `${numpy.version} ${numpy.blas}, 1 thread`}`);
  console.log('  shape               contender             ✔  rel. error   time (ms)   vs ml-matrix   vs numpy   (top-k: error / the optimal rank-k error)');
  for (const [ci, c] of cases.entries()) {
    const { m, n, k } = c;
    const items = c.batch ?? 1;
    const validate = (f) => {
      // f: per item { u, s, vt, k } row-major flat.
      let worst = 0;
      for (let b = 0; b < items; b++) {
        const x = c.data.subarray(b * m * n, (b + 1) * m * n);
        const r = f(b);
        let err = reconstructionError(x, m, n, r.u, r.s, r.vt, r.k);
        if (c.sigma) {
          // Randomized: the error relative to the optimal rank-k error (√Σ_{i≥k} σᵢ² / ‖A‖).
          const total = c.sigma.reduce((t, s) => t + s * s, 0), tail = c.sigma.slice(k).reduce((t, s) => t + s * s, 0);
          err /= Math.sqrt(tail / total);
        }
        worst = Math.max(worst, err);
      }
      return { err: worst, ok: c.sigma ? worst <= 1.1 : worst <= 1e-4 };
    };
    const contenders = {};
    contenders['merge-kernels wasm'] = {
      run: () => mk.svd({ data: c.data, shape: c.shape }, k ? { k, method: 'randomized' } : { method: 'exact' }),
      check: (r) => validate((b) => { const kk = r.s.length / items; return { u: r.u.data.subarray(b * m * kk, (b + 1) * m * kk), s: r.s.subarray(b * kk, (b + 1) * kk), vt: r.vt.data.subarray(b * kk * n, (b + 1) * kk * n), k: kk }; }),
    };
    const nested = (b) => Array.from({ length: m }, (_, i) => Array.from(c.data.subarray((b * m + i) * n, (b * m + i + 1) * n)));
    const fromNested = (uRows, s, vRows, kk) => ({ u: Float64Array.from(uRows.flatMap((r) => r.slice(0, kk))), s, vt: Float64Array.from({ length: kk * n }, (_, idx) => vRows[idx % n][Math.floor(idx / n)]), k: kk });
    if (!k && !mlMissing) {
      contenders['ml-matrix'] = {
        run: () => Array.from({ length: items }, (_, b) => new SingularValueDecomposition(new Matrix(nested(b)), { autoTranspose: true })),
        check: (all) => validate((b) => fromNested(all[b].leftSingularVectors.to2DArray(), all[b].diagonal, all[b].rightSingularVectors.to2DArray(), n)),
      };
    }
    if (!k && !svdJs.missing) {
      contenders['svd-js'] = {
        run: () => Array.from({ length: items }, (_, b) => svdJs.SVD(nested(b))),
        check: (all) => validate((b) => fromNested(all[b].u, all[b].q, all[b].v, n)),
      };
    }
    const times = {};
    for (const [name, contender] of Object.entries(contenders)) {
      // The slow JS peers on large shapes: one validated run is their time (each takes seconds).
      const t0 = performance.now();
      const first = await contender.run();
      const once = performance.now() - t0;
      const v = contender.check(first);
      const t = v.ok ? await timePeer(contender.run, once, c.reps, name.startsWith('merge-kernels') ? 20000 : 4000) : undefined;
      times[name] = { ...v, ...t };
    }
    const np = numpy.reason ? undefined : numpy.cases[ci];
    if (np) {
      // Randomized: the error over the optimal one, as for ours.
      const err = c.sigma ? np.error / Math.sqrt(c.sigma.slice(k).reduce((t, s) => t + s * s, 0) / c.sigma.reduce((t, s) => t + s * s, 0)) : np.error;
      times[`numpy ${k ? 'randomized' : 'sgesdd'}`] = { err, ok: c.sigma ? err <= 1.1 : err <= 1e-4, median: np.median, min: np.min, runs: np.reps };
    }
    const ml = times['ml-matrix']?.median, npT = np?.median;
    for (const [name, t] of Object.entries(times)) {
      const ratio = (x) => (x && t.median ? `${(x / t.median).toFixed(1)}×`.padStart(12) : ''.padStart(12));
      console.log(`  ${c.name.padEnd(18)}  ${name.padEnd(20)}  ${t.ok ? '✔' : '✘'}  ${t.err.toExponential(1).padStart(9)}  ${t.median === undefined ? '—'.padStart(10) : t.median.toFixed(1).padStart(10)}  ${ratio(ml)}  ${ratio(npT)}`);
    }
    rows.push({ shape: c.name, ...Object.fromEntries(Object.entries(times).map(([name, t]) => [name, t])) });
  }
  const rates = await kernelRates(quick);
  console.log(`\n  wasm kernels, one thread: Householder QR of 4096×64 ${rates.qrGflops.toFixed(2)} GFLOP/s (${(100 * rates.qrGflops / limits.wasmSimdGflops).toFixed(0)}% of the f32x4 limit ${limits.wasmSimdGflops.toFixed(1)}); A·Ω 2048²×42 ${rates.multiplyGflops.toFixed(2)} GFLOP/s (${(100 * rates.multiplyGflops / limits.wasmSimdGflops).toFixed(0)}%)`);
  console.log('  (ratios: the peer\'s median over ours; > 1× means merge-kernels is faster)');
  return { numpy: numpy.reason ? { skipped: numpy.reason } : { version: numpy.version, blas: numpy.blas }, rows, kernelRates: rates };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { init } = await import('../dist/index.js');
  const { measureLimits, describeMachine, writeResult } = await import('./lib.mjs');
  const quick = process.argv.includes('--quick');
  const machine = describeMachine(), limits = await measureLimits(quick);
  const mk = await init({ backend: 'wasm' });
  const result = await bench({ quick, limits, mk, machine });
  writeResult('svd', { machine, quick, limits, ...result });
  mk.dispose();
}
