// The SVD family on the wasm backend (assembly/svd.ts): Householder QR, the application of Q and
// the randomized range finder's products in float32 SIMD; the Jacobi sweeps on the n × n core in
// float64 SIMD. The O(n²) bookkeeping around the core (the initial row order, σ, normalising and
// completing the right vectors) is the reference's TypeScript.
import type { WasmRuntime } from '../wasm/runtime.ts';
import * as ref from '../reference/svd.ts';
import type { SvdFactors } from '../reference/svd.ts';
import type { SvdKernels } from './kernels.ts';

/**
 * The wasm core stops at |x_p·x_q| ≤ 1e-9·‖x_p‖‖x_q‖: far below float32's resolution (the
 * outputs are float32), a sweep or two short of float64's.
 */
const CORE_TOL = 1e-9;

/** Exact thin SVD of the tall item at `a` (float32 [m, n] in the arena, overwritten), top k. */
function exactItem(rt: WasmRuntime, a: number, m: number, n: number, k: number): { u: Float32Array; s: Float32Array; vt: Float32Array } {
  const x = rt.alloc(n * n * 8, 'the Jacobi core'), v = rt.alloc(n * n * 8, 'the Jacobi rotations');
  const tau = rt.alloc(n * 8, 'the reflectors'), w = rt.alloc(Math.max(n, k) * 12, 'scratch');
  const u = rt.alloc(m * k * 8, 'u'), norms = rt.alloc(n * 8, 'the core\'s row norms');
  rt.exports.householderQR(a, m, n, tau, w);
  const r = rt.f32(a, m * n);
  const start = ref.sortedRows((i, j) => (j >= i ? r[i * n + j]! : 0), n);
  const xs = new Float64Array(rt.memory.buffer, x, n * n), vs = new Float64Array(rt.memory.buffer, v, n * n);
  xs.set(start.rows);
  vs.set(start.v);
  rt.exports.jacobiSweeps(x, v, n, CORE_TOL, ref.MAX_SWEEPS, norms);
  const f = ref.finishCore(new Float64Array(rt.memory.buffer, x, n * n).slice(), new Float64Array(rt.memory.buffer, v, n * n).slice(), n, k);
  const us = new Float64Array(rt.memory.buffer, u, m * k);
  us.fill(0);
  us.set(f.vColumns);
  rt.exports.applyQ(a, tau, m, n, u, k, w);
  return { u: Float32Array.from(new Float64Array(rt.memory.buffer, u, m * k)), s: Float32Array.from(f.sigma), vt: Float32Array.from(f.vt) };
}

function exactTall(rt: WasmRuntime, a: Float32Array, batch: number, m: number, n: number, k: number): SvdFactors {
  const u = new Float32Array(batch * m * k), s = new Float32Array(batch * k), vt = new Float32Array(batch * k * n);
  for (let b = 0; b < batch; b++) {
    rt.reset();
    const item = rt.put(a.subarray(b * m * n, (b + 1) * m * n), 'a');
    const f = exactItem(rt, item, m, n, k);
    u.set(f.u, b * m * k);
    s.set(f.s, b * k);
    vt.set(f.vt, b * k * n);
  }
  return { u, s, vt };
}

/** Q [rows, cols] (float32) at q: Householder QR of y, then Q·I (float64 at q64). */
function orthonormalise(rt: WasmRuntime, y: number, rows: number, cols: number, q: number, q64: number, tau: number, w: number): void {
  rt.exports.householderQR(y, rows, cols, tau, w);
  const qs = new Float64Array(rt.memory.buffer, q64, rows * cols);
  qs.fill(0);
  for (let i = 0; i < cols; i++) qs[i * cols + i] = 1;
  rt.exports.applyQ(y, tau, rows, cols, q64, cols, w);
  rt.f32(q, rows * cols).set(new Float64Array(rt.memory.buffer, q64, rows * cols));
}

/** HMT's randomized SVD (as reference/svd.ts randomizedSvd), every product and QR in wasm. */
function randomized(rt: WasmRuntime, a: Float32Array, batch: number, m: number, n: number, k: number, l: number, powerIters: number, omega: Float32Array): SvdFactors {
  const u = new Float32Array(batch * m * k), s = new Float32Array(batch * k), vt = new Float32Array(batch * k * n);
  for (let b = 0; b < batch; b++) {
    rt.reset();
    const pa = rt.put(a.subarray(b * m * n, (b + 1) * m * n), 'a');
    const po = rt.put(omega.subarray(b * n * l, (b + 1) * n * l), 'the test matrix');
    const y = rt.alloc(m * l * 4, 'Y'), q = rt.alloc(m * l * 4, 'Q');
    const z = rt.alloc(n * l * 4, 'Z'), zq = rt.alloc(n * l * 4, 'orth(Z)');
    const tau = rt.alloc(l * 8, 'the reflectors'), w = rt.alloc(l * 12, 'scratch');
    const q64 = rt.alloc(Math.max(m, n) * l * 8, 'Q in float64');
    // Aᵀ once (m·n floats more): the Aᵀ·X products then run the untransposed micro-kernel, which
    // reads A's rows contiguously (the transposed access is 2–4× slower on large A).
    const pat = rt.alloc(m * n * 4, 'Aᵀ');
    const e = rt.exports;
    e.transpose(pa, pat, m, n);
    e.multiply(pa, po, y, m, n, l, 0);
    orthonormalise(rt, y, m, l, q, q64, tau, w);
    for (let it = 0; it < powerIters; it++) {
      e.multiply(pat, q, z, n, m, l, 0);
      orthonormalise(rt, z, n, l, zq, q64, tau, w);
      e.multiply(pa, zq, y, m, n, l, 0);
      orthonormalise(rt, y, m, l, q, q64, tau, w);
    }
    e.multiply(pat, q, z, n, m, l, 0); // Bᵀ = Aᵀ·Q [n, l]
    const f = exactItem(rt, z, n, l, k);
    // u = Q·V_B: V_B [l, k] is f.vt transposed.
    const vb = rt.alloc(l * k * 4, 'V_B'), pu = rt.alloc(m * k * 4, 'u');
    const vbs = rt.f32(vb, l * k);
    for (let j = 0; j < k; j++) for (let c = 0; c < l; c++) vbs[c * k + j] = f.vt[j * l + c]!;
    e.multiply(q, vb, pu, m, l, k, 0);
    u.set(rt.f32(pu, m * k), b * m * k);
    s.set(f.s, b * k);
    for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) vt[(b * k + j) * n + i] = f.u[i * k + j]!;
  }
  return { u, s, vt };
}

export function wasmSvdKernels(rt: WasmRuntime): SvdKernels {
  return {
    exactTall: async (a, batch, m, n, k) => exactTall(rt, a, batch, m, n, k),
    randomized: async (a, batch, m, n, k, l, q, omega) => randomized(rt, a, batch, m, n, k, l, q, omega),
  };
}
