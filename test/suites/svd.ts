// mk.svd and mk.lowRank on every backend, checked against mathematics: matrices built as
// U·diag(σ)·Vᵀ from random orthogonal factors (float64 Gram–Schmidt here, independent of the
// code under test) have known singular values, so reconstruction, orthogonality and every σ are
// measured against what they must be; hand-worked small cases; the js reference where the
// singular vectors are unique (well-separated spectra); the randomized method against the
// optimal rank-k error (Eckart–Young: √Σ_{i>k} σᵢ²).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { init, reference, type SvdResult, type Tensor } from 'merge-kernels';
import type { Harness } from '../harness.ts';
import { allClose, rejects, rng } from '../util.ts';

// The accuracy bar: LAPACK's sgesdd reaches 3e-9..5e-8 on these shapes; 20× of it is 1e-6 for
// reconstruction, orthogonality and σ (relative to σ₁). WebGPU's float32 arithmetic (no float64
// in WGSL) is held to 1e-5.
const bound = (backend: string) => (backend === 'webgpu' ? 1e-5 : 1e-6);

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

/** A random [rows, cols] matrix with orthonormal columns (float64 Gram–Schmidt, twice). */
function orthonormalColumns(rows: number, cols: number, next: () => number): Float64Array {
  const q = new Float64Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) q[i * cols + j] = gaussian(next);
    for (let pass = 0; pass < 2; pass++) {
      for (let c = 0; c < j; c++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += q[i * cols + j]! * q[i * cols + c]!;
        for (let i = 0; i < rows; i++) q[i * cols + j] = q[i * cols + j]! - d * q[i * cols + c]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += q[i * cols + j]! ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < rows; i++) q[i * cols + j] = q[i * cols + j]! / norm;
  }
  return q;
}

/** U·diag(sigma)·Vᵀ [m, n] with random orthogonal U, V, rounded to float32 once. */
function withSpectrum(m: number, n: number, sigma: number[], seed: number): Float32Array {
  const next = rng(seed), p = Math.min(m, n);
  const u = orthonormalColumns(m, p, next), v = orthonormalColumns(n, p, next);
  const a = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < p; c++) s += u[i * p + c]! * sigma[c]! * v[j * p + c]!;
      a[i * n + j] = s;
    }
  }
  return a;
}

const geometric = (count: number, cond: number) => Array.from({ length: count }, (_, i) => Math.pow(cond, -i / Math.max(1, count - 1)));

interface Measured { reconstruction: number; orthU: number; orthV: number; sigma: number }

/** Item `b` of a result: ‖A − U·S·Vᵀ‖_F/‖A‖_F, max|UᵀU − I|, max|VᵀV − I| (float64), and the worst |σᵢ − known| / σ₁. */
function measure(a: Float32Array, r: SvdResult, m: number, n: number, k: number, b = 0, known?: number[]): Measured {
  const u = r.u.data.subarray(b * m * k), vt = r.vt.data.subarray(b * k * n), s = r.s.subarray(b * k), x = a.subarray(b * m * n);
  let err = 0, norm = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < k; c++) sum += u[i * k + c]! * s[c]! * vt[c * n + j]!;
      err += (x[i * n + j]! - sum) ** 2;
      norm += x[i * n + j]! ** 2;
    }
  }
  let orthU = 0, orthV = 0;
  for (let p = 0; p < k; p++) {
    for (let q = 0; q < k; q++) {
      let du = 0, dv = 0;
      for (let i = 0; i < m; i++) du += u[i * k + p]! * u[i * k + q]!;
      for (let j = 0; j < n; j++) dv += vt[p * n + j]! * vt[q * n + j]!;
      orthU = Math.max(orthU, Math.abs(du - (p === q ? 1 : 0)));
      orthV = Math.max(orthV, Math.abs(dv - (p === q ? 1 : 0)));
    }
  }
  let sigma = 0;
  if (known) for (let i = 0; i < k; i++) sigma = Math.max(sigma, Math.abs(s[i]! - known[i]!) / (known[0]! || 1));
  return { reconstruction: norm === 0 ? Math.sqrt(err) : Math.sqrt(err / norm), orthU, orthV, sigma };
}

/** The sign convention: each column of u has its largest-magnitude entry (first on ties) positive. */
function checkSigns(r: SvdResult, batch: number, m: number, k: number, what: string) {
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < k; j++) {
      let best = -1, at = 0;
      for (let i = 0; i < m; i++) {
        const v = Math.abs(r.u.data[(b * m + i) * k + j]!);
        if (v > best) { best = v; at = i; }
      }
      assert.ok(r.u.data[(b * m + at) * k + j]! >= 0, `${what}: column ${j} of u (item ${b}) has its largest entry negative`);
    }
  }
}

// [m, n, spectrum, what]: spectra with a known answer, including the traps of float32 SVD.
const CASES: Array<[number, number, number[], string]> = [
  [60, 40, geometric(40, 1e3), 'condition 1e3'],
  [50, 50, geometric(50, 1e6), 'condition 1e6, square'],
  [30, 70, geometric(30, 1e6), 'condition 1e6, wide (m < n)'],
  [97, 33, geometric(33, 1e3).map((s) => s * 1e4), 'large scale, odd sizes'],
  [40, 24, [...Array(8).fill(5), ...Array(8).fill(2), ...Array(8).fill(1)], 'repeated singular values'],
  [33, 21, Array.from({ length: 21 }, (_, i) => 1 + (i % 3) * 1e-6 + Math.floor(i / 3) * 0.1).sort((x, y) => y - x), 'clustered singular values'],
  [45, 20, [4, 3, 2, ...Array(17).fill(0)], 'exact rank 3 of 20'],
  [20, 45, [7, 1e-3, ...Array(18).fill(0)], 'exact rank 2, wide'],
  [37, 13, geometric(13, 10), 'sizes not multiples of 4'],
  [13, 37, geometric(13, 10), 'sizes not multiples of 4, wide'],
  [1, 1, [2.5], '1 × 1'],
  [1, 9, [3], '1 × n'],
  [9, 1, [3], 'm × 1'],
  [2, 2, [1, 1], 'a 2 × 2 rotation (equal σ)'],
  [130, 70, geometric(70, 1e4), 'larger: 130 × 70'],
];

export default function (h: Harness) {
  const test = suite(`svd [${h.backend}]`);
  const tol = bound(h.backend);
  const worst: Measured = { reconstruction: 0, orthU: 0, orthV: 0, sigma: 0 };
  const note = (x: Measured) => { for (const key of Object.keys(worst) as Array<keyof Measured>) worst[key] = Math.max(worst[key], x[key]); };
  const within = (x: Measured, what: string) => {
    note(x);
    assert.ok(x.reconstruction <= tol, `${what}: ‖A − USVᵀ‖/‖A‖ = ${x.reconstruction} > ${tol}`);
    assert.ok(x.orthU <= tol, `${what}: max|UᵀU − I| = ${x.orthU} > ${tol}`);
    assert.ok(x.orthV <= tol, `${what}: max|VᵀV − I| = ${x.orthV} > ${tol}`);
    assert.ok(x.sigma <= tol, `${what}: max|σᵢ − known|/σ₁ = ${x.sigma} > ${tol}`);
  };

  test('hand-worked: diag(3, −2) and the rank-1 [[1, 2, 2], [2, 4, 4]]', async () => {
    const d = await h.mk.svd({ data: new Float32Array([3, 0, 0, -2]), shape: [2, 2] });
    allClose(d.s, [3, 2], { atol: 1e-6 }, 's');
    allClose(d.u.data, [1, 0, 0, 1], { atol: 1e-6 }, 'u (largest entry of each column positive)');
    allClose(d.vt.data, [1, 0, 0, -1], { atol: 1e-6 }, 'vt (carries the sign of −2)');
    // [1, 2]ᵀ·[1, 2, 2]: σ₁ = ‖(1, 2)‖·‖(1, 2, 2)‖ = √5·3, u₁ = (1, 2)/√5, v₁ = (1, 2, 2)/3; σ₂ = 0.
    const r = await h.mk.svd({ data: new Float32Array([1, 2, 2, 2, 4, 4]), shape: [2, 3] });
    assert.equal(r.u.shape, [2, 2]);
    assert.equal(r.vt.shape, [2, 3]);
    allClose(r.s, [3 * Math.sqrt(5), 0], { atol: 1e-5 }, 's');
    allClose([r.u.data[0]!, r.u.data[2]!], [1 / Math.sqrt(5), 2 / Math.sqrt(5)], { atol: 1e-6 }, 'u₁');
    allClose(r.vt.data.subarray(0, 3), [1 / 3, 2 / 3, 2 / 3], { atol: 1e-6 }, 'v₁');
    within(measure(new Float32Array([1, 2, 2, 2, 4, 4]), r, 2, 3, 2), 'rank 1');
  });

  test('known spectra: reconstruction, orthogonality and σ within the bound, the sign convention', async () => {
    let seed = 1;
    for (const [m, n, sigma, what] of CASES) {
      const a = withSpectrum(m, n, sigma, seed++);
      const k = Math.min(m, n);
      const r = await h.mk.svd({ data: a, shape: [m, n] }, { method: 'exact' });
      assert.equal(r.u.shape, [m, k], `${what}: u's shape`);
      assert.equal(r.vt.shape, [k, n], `${what}: vt's shape`);
      assert.is(r.s.length, k);
      for (let i = 1; i < k; i++) assert.ok(r.s[i - 1]! >= r.s[i]!, `${what}: σ descending`);
      within(measure(a, r, m, n, k, 0, sigma), `${what} [${m}, ${n}]`);
      checkSigns(r, 1, m, k, what);
    }
  });

  test('the zero matrix: σ = 0 and orthonormal u and vt', async () => {
    for (const [m, n] of [[5, 4], [3, 7], [1, 1]] as const) {
      const r = await h.mk.svd({ data: new Float32Array(m * n), shape: [m, n] });
      assert.ok(r.s.every((s) => s === 0), `[${m}, ${n}]: σ all zero`);
      within(measure(new Float32Array(m * n), r, m, n, Math.min(m, n)), `zero [${m}, ${n}]`);
    }
  });

  test('agrees with the js reference where the singular vectors are unique', async () => {
    let seed = 50;
    for (const [m, n] of [[24, 16], [16, 24], [41, 41], [70, 9]] as const) {
      const p = Math.min(m, n);
      // Well separated: σ from 2 down to 1 by equal steps (gap 1/p), so vectors move ≲ ε·σ₁/gap.
      const sigma = Array.from({ length: p }, (_, i) => 2 - i / p);
      const a = { data: withSpectrum(m, n, sigma, seed++), shape: [m, n] };
      const got = await h.mk.svd(a), want = await h.ref.svd(a);
      allClose(got.s, want.s, { atol: tol * 2 }, `[${m}, ${n}] s`);
      const vectors = h.backend === 'webgpu' ? 1e-3 : 1e-4;
      allClose(got.u.data, want.u.data, { atol: vectors }, `[${m}, ${n}] u`);
      allClose(got.vt.data, want.vt.data, { atol: vectors }, `[${m}, ${n}] vt`);
    }
  });

  test('batched [B, m, n] equals its items one by one; k < min(m, n) is the leading triplets', async () => {
    for (const [B, m, n] of [[3, 12, 7], [2, 5, 11], [4, 1, 6]] as const) {
      const p = Math.min(m, n);
      const items = Array.from({ length: B }, (_, b) => withSpectrum(m, n, geometric(p, 100).map((s) => s * (b + 1)), 200 + b));
      const data = new Float32Array(B * m * n);
      items.forEach((x, b) => data.set(x, b * m * n));
      const all = await h.mk.svd({ data, shape: [B, m, n] });
      assert.equal(all.u.shape, [B, m, p]);
      assert.equal(all.vt.shape, [B, p, n]);
      assert.is(all.s.length, B * p);
      checkSigns(all, B, m, p, `batched [${B}, ${m}, ${n}]`);
      for (let b = 0; b < B; b++) {
        within(measure(data, all, m, n, p, b, geometric(p, 100).map((s) => s * (b + 1))), `batched item ${b}`);
        const one = await h.mk.svd({ data: items[b]!, shape: [m, n] });
        allClose(all.s.subarray(b * p, (b + 1) * p), one.s, { atol: 1e-6 * (b + 1) }, `item ${b} s`);
        allClose(all.u.data.subarray(b * m * p, (b + 1) * m * p), one.u.data, { atol: 1e-5 }, `item ${b} u`);
      }
    }
    const a = { data: withSpectrum(30, 20, geometric(20, 50), 7), shape: [30, 20] };
    const full = await h.mk.svd(a), top = await h.mk.svd(a, { k: 5, method: 'exact' });
    assert.equal(top.u.shape, [30, 5]);
    assert.equal(top.vt.shape, [5, 20]);
    allClose(top.s, full.s.subarray(0, 5), { atol: 1e-6 }, 'top-5 σ');
    allClose(top.vt.data, full.vt.data.subarray(0, 100), { atol: 1e-5 }, 'top-5 vt');
  });

  test('randomized: within 1.1× the optimal rank-k error on decaying spectra; seeded', async () => {
    for (const [m, n, k, decay] of [[300, 200, 10, 0.8], [150, 260, 8, 0.9]] as const) {
      const p = Math.min(m, n);
      const sigma = Array.from({ length: p }, (_, i) => Math.pow(decay, i));
      const a = { data: withSpectrum(m, n, sigma, 300 + k), shape: [m, n] };
      const r = await h.mk.svd(a, { k, method: 'randomized', seed: 5 });
      assert.equal(r.u.shape, [m, k]);
      const x = measure(a.data, r, m, n, k);
      let optimal = 0, total = 0;
      for (let i = 0; i < p; i++) { total += sigma[i]! ** 2; if (i >= k) optimal += sigma[i]! ** 2; }
      const ratio = x.reconstruction / Math.sqrt(optimal / total);
      assert.ok(ratio <= 1.1, `[${m}, ${n}] k=${k}: error ${ratio}× the optimal`);
      assert.ok(x.orthU <= tol && x.orthV <= tol, `[${m}, ${n}]: orthogonality ${x.orthU}, ${x.orthV}`);
      for (let i = 0; i < k; i++) assert.ok(Math.abs(r.s[i]! - sigma[i]!) <= 1e-3, `σ${i} = ${r.s[i]} vs ${sigma[i]}`);
      checkSigns(r, 1, m, k, 'randomized');
      const again = await h.mk.svd(a, { k, method: 'randomized', seed: 5 });
      allClose(again.u.data, r.u.data, { atol: 0 }, 'same seed, same result');
      const want = await h.ref.svd(a, { k, method: 'randomized', seed: 5 });
      allClose(r.s, want.s, { atol: 1e-5 }, 'σ as the js reference (the same test matrix)');
    }
    // 'auto' takes the randomized path here (k + 10 ≤ 200/4): the same answer as asking for it.
    const a = { data: withSpectrum(300, 200, geometric(200, 1e6), 9), shape: [300, 200] };
    const auto = await h.mk.svd(a, { k: 4, seed: 3 }), randomized = await h.mk.svd(a, { k: 4, seed: 3, method: 'randomized' });
    allClose(auto.s, randomized.s, { atol: 0 }, 'auto = randomized');
  });

  test('lowRank: a·b is the best rank-r approximation; energy is Σσ²/‖A‖²', async () => {
    const m = 40, n = 25, sigma = [5, 4, 3, 2, 1, ...Array(20).fill(0.01)];
    const data = withSpectrum(m, n, sigma, 400);
    const lr = await h.mk.lowRank({ data, shape: [m, n] }, { rank: 5 });
    assert.equal(lr.a.shape, [m, 5]);
    assert.equal(lr.b.shape, [5, n]);
    const full = sigma.reduce((t, s) => t + s * s, 0);
    let kept = 0;
    const want = sigma.slice(0, 5).map((s) => (kept += s * s) / full);
    allClose(lr.energy, want, { atol: 1e-5 }, 'energy');
    allClose(lr.s, sigma.slice(0, 5), { atol: 1e-5 }, 's');
    // ‖A − a·b‖_F = √Σ_{i>5} σᵢ² (Eckart–Young), and both factors carry √σ: ‖a_j‖ = ‖b_j‖ = √σ_j.
    let err = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < 5; c++) s += lr.a.data[i * 5 + c]! * lr.b.data[c * n + j]!;
      err += (data[i * n + j]! - s) ** 2;
    }
    assert.ok(Math.abs(Math.sqrt(err) - Math.sqrt(20 * 1e-4)) <= 1e-5, `‖A − ab‖ = ${Math.sqrt(err)}`);
    for (let c = 0; c < 5; c++) {
      let na = 0, nb = 0;
      for (let i = 0; i < m; i++) na += lr.a.data[i * 5 + c]! ** 2;
      for (let j = 0; j < n; j++) nb += lr.b.data[c * n + j]! ** 2;
      assert.ok(Math.abs(Math.sqrt(na) - Math.sqrt(sigma[c]!)) <= 1e-5 && Math.abs(Math.sqrt(nb) - Math.sqrt(sigma[c]!)) <= 1e-5, `column ${c}: √σ split`);
    }
    const batched = await h.mk.lowRank({ data: new Float32Array([...data, ...data.map((v) => 2 * v)]), shape: [2, m, n] }, { rank: 2 });
    assert.equal(batched.a.shape, [2, m, 2]);
    allClose(batched.s, [5, 4, 10, 8], { atol: 1e-5 }, 'batched s');
    const zero = await h.mk.lowRank({ data: new Float32Array(6), shape: [2, 3] }, { rank: 1 });
    allClose(zero.energy, [1], { atol: 0 }, 'the zero matrix keeps all of its (zero) energy');
  });

  test('bad input: non-finite, wrong rank, k out of range, empty dimension, unknown options', async () => {
    const ok: Tensor = { data: new Float32Array(6), shape: [2, 3] };
    await rejects(() => h.mk.svd({ data: new Float32Array([1, NaN, 0, 0]), shape: [2, 2] }), 'NON_FINITE', ['a']);
    await rejects(() => h.mk.svd({ data: new Float32Array([1, Infinity, 0, 0]), shape: [2, 2] }), 'NON_FINITE', ['a']);
    await rejects(() => h.mk.svd({ data: new Float32Array(4), shape: [4] }), 'INVALID_SHAPE', ['a', 'rank']);
    await rejects(() => h.mk.svd({ data: new Float32Array(4), shape: [1, 1, 2, 2] }), 'INVALID_SHAPE', ['a']);
    await rejects(() => h.mk.svd(ok, { k: 0 }), 'INVALID_OPTION', ['k']);
    await rejects(() => h.mk.svd(ok, { k: 3 }), 'INVALID_OPTION', ['k', '2']);
    await rejects(() => h.mk.svd(ok, { k: 1.5 }), 'INVALID_OPTION', ['k']);
    await rejects(() => h.mk.svd({ data: new Float32Array(0), shape: [0, 3] }), 'INVALID_SHAPE', ['a']);
    await rejects(() => h.mk.svd({ data: new Float32Array(0), shape: [2, 0, 3] }), 'INVALID_SHAPE', ['a']);
    await rejects(() => h.mk.svd(ok, { kk: 1 } as never), 'INVALID_OPTION', ['kk', "'k'"]);
    await rejects(() => h.mk.svd(ok, { method: 'qr' } as never), 'INVALID_OPTION', ['method']);
    await rejects(() => h.mk.svd(ok, { oversample: -1 }), 'INVALID_OPTION', ['oversample']);
    await rejects(() => h.mk.svd(ok, { seed: 0.5 }), 'INVALID_OPTION', ['seed']);
    await rejects(() => h.mk.lowRank(ok, {} as never), 'INVALID_OPTION', ['rank']);
    await rejects(() => h.mk.lowRank(ok, { rank: 3 }), 'INVALID_OPTION', ['rank']);
    await rejects(() => h.mk.lowRank(ok, undefined as never), 'INVALID_OPTION', ['options']);
    const gone = await init({ backend: h.backend, gpu: h.gpu });
    gone.dispose();
    await rejects(() => gone.svd(ok), 'DISPOSED', ['disposed']);
    await rejects(() => gone.lowRank(ok, { rank: 1 }), 'DISPOSED', ['disposed']);
  });

  test('the reference itself: the round-robin rounds pair every two players exactly once', () => {
    for (const players of [2, 4, 6, 10]) {
      const seen = new Set<string>();
      for (let r = 0; r < players - 1; r++) {
        const pairs = reference.svd.roundRobinPairs(players, r);
        const used = pairs.flat();
        assert.is(new Set(used).size, players, `round ${r} of ${players}: disjoint pairs`);
        for (const [i, j] of pairs) seen.add(`${Math.min(i, j)},${Math.max(i, j)}`);
      }
      assert.is(seen.size, (players * (players - 1)) / 2, `${players} players: every pair once`);
    }
  });

  test('measured accuracy (printed)', () => {
    h.print(`svd accuracy [${h.runtime} / ${h.backend}]: worst reconstruction ${worst.reconstruction.toExponential(2)}, max|UᵀU−I| ${worst.orthU.toExponential(2)}, max|VᵀV−I| ${worst.orthV.toExponential(2)}, max|σ−known|/σ₁ ${worst.sigma.toExponential(2)} (bound ${tol})`);
  });

  test.run();
}
