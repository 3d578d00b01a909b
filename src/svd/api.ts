// The SVD family's public functions (MergeKernels.svd and .lowRank forward here): options and
// shapes checked once, wide input transposed, the method chosen, the kernels of this context's
// backend called, the sign convention applied. See src/reference/svd.ts for the method.
import type { Backend } from '../backends.ts';
import { MergeKernelsError } from '../errors.ts';
import { kernelsOf } from '../kernel-table.ts';
import * as ref from '../reference/svd.ts';
import type { SvdFactors } from '../reference/svd.ts';
import { checkFinite, checkTensor, type Tensor } from '../tensor.ts';
import { integer, oneOf, options as checkOptions } from '../validate.ts';
import { svdKernels } from './kernels.ts';

export type SvdMethod = ref.SvdMethod;

export interface SvdOptions {
  /** How many singular triplets, 1 ≤ k ≤ min(m, n) (default min(m, n)). */
  k?: number;
  /**
   * 'exact' (Householder QR + one-sided Jacobi), 'randomized' (Halko–Martinsson–Tropp) or 'auto'
   * (default): randomized when k + oversample ≤ min(m, n) / 4 and min(m, n) ≥ 128, else exact.
   */
  method?: SvdMethod;
  /** Randomized: extra test vectors beyond k (default 10). */
  oversample?: number;
  /** Randomized: power (subspace) iterations (default 2); more sharpens slowly decaying spectra. */
  powerIters?: number;
  /** Randomized: seed of the Gaussian test matrix, our own generator (default 0): the same result on every backend and runtime. */
  seed?: number;
}

export interface SvdResult {
  /** Left singular vectors as columns: [m, k] (batched [B, m, k]). */
  u: Tensor;
  /** Singular values, descending: k values (batched: B·k, item after item). */
  s: Float32Array;
  /** Right singular vectors as rows: [k, n] (batched [B, k, n]). */
  vt: Tensor;
}

export interface LowRankOptions extends Omit<SvdOptions, 'k'> {
  /** The rank r of the approximation, 1 ≤ r ≤ min(m, n). */
  rank: number;
}

export interface LowRankResult {
  /** U·√S: [m, r] (batched [B, m, r]); as LoRA's B (the up projection). */
  a: Tensor;
  /** √S·Vᵀ: [r, n] (batched [B, r, n]); as LoRA's A (the down projection). */
  b: Tensor;
  /** The singular values kept (r per item). */
  s: Float32Array;
  /**
   * The share of ‖A‖²_F kept by ranks 1..j: Σ_{i≤j} σᵢ² / ‖A‖²_F (r per item, non-decreasing;
   * 1 for the zero matrix, which is kept exactly).
   */
  energy: Float32Array;
}

const SVD_KEYS = ['k', 'method', 'oversample', 'powerIters', 'seed'] as const;
const LOW_RANK_KEYS = ['rank', 'method', 'oversample', 'powerIters', 'seed'] as const;
const METHODS: readonly SvdMethod[] = ['auto', 'exact', 'randomized'];

interface Plan { batch: number; m: number; n: number; batched: boolean; k: number; method: 'exact' | 'randomized'; oversample: number; powerIters: number; seed: number }

function plan(a: Tensor, o: Record<string, unknown>, kName: string, k: unknown): Plan {
  const batched = a.shape.length === 3;
  const [batch, m, n] = batched ? a.shape as [number, number, number] : [1, ...a.shape as [number, number]];
  if (batch === 0 || m === 0 || n === 0) {
    throw new MergeKernelsError('INVALID_SHAPE', `a: expected every dimension ≥ 1, got [${a.shape.join(', ')}]`, 'a');
  }
  const small = Math.min(m, n);
  const kk = k === undefined && kName === 'k' ? small : integer(kName, k, 1, small, `min(m, n) = ${small} for a [${a.shape.join(', ')}]`);
  const requested = oneOf('method', o.method, METHODS, 'auto');
  const oversample = o.oversample === undefined ? 10 : integer('oversample', o.oversample, 0, 1 << 20);
  const powerIters = o.powerIters === undefined ? 2 : integer('powerIters', o.powerIters, 0, 100);
  const seed = o.seed === undefined ? 0 : integer('seed', o.seed, 0, 0xffffffff);
  const method = requested === 'auto' ? ref.chooseMethod(m, n, kk, oversample) : requested;
  return { batch, m, n, batched, k: kk, method, oversample, powerIters, seed };
}

async function factor(backend: Backend, data: Float32Array, p: Plan): Promise<SvdFactors> {
  const kernels = kernelsOf(backend, svdKernels);
  const { batch, m, n, k } = p;
  const l = Math.min(k + p.oversample, m, n);
  let f: SvdFactors;
  if (p.method === 'randomized' && l < Math.min(m, n)) {
    f = await kernels.randomized(data, batch, m, n, k, l, p.powerIters, ref.gaussianTestMatrix(p.seed, batch, n, l));
  } else if (m >= n) {
    f = await kernels.exactTall(data, batch, m, n, k);
  } else {
    // Wide: the SVD of the transpose, its sides swapped.
    f = ref.swapSides(await kernels.exactTall(ref.transposeItems(data, batch, m, n), batch, n, m, k), batch, n, m, k);
  }
  ref.fixSigns(f, batch, m, n, k);
  return f;
}

/** mk.svd: see MergeKernels.svd. */
export async function svd(backend: Backend, a: Tensor, options?: SvdOptions): Promise<SvdResult> {
  const t = checkTensor('a', a, [2, 3]);
  const o = checkOptions('options', options, SVD_KEYS);
  const p = plan(t, o, 'k', o.k);
  checkFinite('a', t.data);
  const f = await factor(backend, t.data, p);
  const lead = p.batched ? [p.batch] : [];
  return { u: { data: f.u, shape: [...lead, p.m, p.k] }, s: f.s, vt: { data: f.vt, shape: [...lead, p.k, p.n] } };
}

/** mk.lowRank: see MergeKernels.lowRank. */
export async function lowRank(backend: Backend, a: Tensor, options: LowRankOptions): Promise<LowRankResult> {
  const t = checkTensor('a', a, [2, 3]);
  const o = checkOptions('options', options, LOW_RANK_KEYS, true);
  if (o.rank === undefined) throw new MergeKernelsError('INVALID_OPTION', 'rank: required (an integer ≥ 1, the rank of the approximation)', 'rank');
  const p = plan(t, o, 'rank', o.rank);
  checkFinite('a', t.data);
  const f = await factor(backend, t.data, p);
  return splitFactors(t.data, f, p.batch, p.m, p.n, p.k, p.batched);
}

/** The LoRA-style split of a rank-r SVD: a = U·√S, b = √S·Vᵀ, and the energy each rank keeps. */
export function splitFactors(data: Float32Array, f: SvdFactors, batch: number, m: number, n: number, r: number, batched: boolean): LowRankResult {
  const a = new Float32Array(batch * m * r), b = new Float32Array(batch * r * n), energy = new Float32Array(batch * r);
  for (let item = 0; item < batch; item++) {
    let total = 0;
    for (let i = item * m * n; i < (item + 1) * m * n; i++) total += data[i]! * data[i]!;
    let kept = 0;
    for (let j = 0; j < r; j++) {
      const sigma = f.s[item * r + j]!, root = Math.sqrt(sigma);
      for (let i = 0; i < m; i++) a[(item * m + i) * r + j] = f.u[(item * m + i) * r + j]! * root;
      for (let c = 0; c < n; c++) b[(item * r + j) * n + c] = f.vt[(item * r + j) * n + c]! * root;
      kept += sigma * sigma;
      energy[item * r + j] = total === 0 ? 1 : Math.min(1, kept / total);
    }
  }
  const lead = batched ? [batch] : [];
  return { a: { data: a, shape: [...lead, m, r] }, b: { data: b, shape: [...lead, r, n] }, s: f.s, energy };
}
