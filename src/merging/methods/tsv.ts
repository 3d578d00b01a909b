// TSV-Merge (Gargiulo et al. 2025, "Task Singular Vectors: Reducing Task Interference in Model
// Merging", CVPR; §4 and the authors' compute_and_sum_svd_mem_reduction). Per 2-D weight, each
// task vector τᵢ = θᵢ − θ₀ keeps its top r = ⌊k·min(m, n)⌋ singular triplets (the paper's code:
// k = 1/T, sv_reduction); their bases are concatenated, U = [U₁ … U_T] [m, T·r] and
// V = [V₁ … V_T] [n, T·r], and decorrelated by the orthogonal Procrustes / polar step: with
// svd(U) = P Σ Qᵀ the nearest matrix with orthonormal columns is U⊥ = P·Qᵀ (the same for V);
// the merged task vector is U⊥·diag(σ)·V⊥ᵀ and the model θ₀ + λ·that (λ = alpha, 1 in the
// paper's TSV-M). Tensors that are not 2-D (biases, norms) take the mean of the task vectors, as
// the paper's code does (θ₀ + λ·mean τᵢ).
//
// The SVD needs the whole matrix: a 2-D tensor is gathered in one observation pass (one copy per
// model, the tensor's size each), merged when its apply pass starts, then written chunk by chunk.
import { svd } from '../../svd/api.ts';
import { Params } from '../params.ts';
import type { Chunk, MergeMethod, MethodContext, MethodSpec, TensorInfo, TensorMerge, TensorParams } from '../types.ts';

/** The columns [from, from + count) of a row-major [rows, cols] matrix, written into `out` at column `at` of `outCols`. */
function copyColumns(src: Float32Array, rows: number, cols: number, from: number, count: number, out: Float32Array, outCols: number, at: number): void {
  for (let i = 0; i < rows; i++) for (let j = 0; j < count; j++) out[i * outCols + at + j] = src[i * cols + from + j]!;
}

/** The polar factor P·Qᵀ of a [rows, cols] matrix (svd = P Σ Qᵀ): the nearest matrix with orthonormal columns (rows when wide). */
async function polar(ctx: MethodContext, x: Float32Array, rows: number, cols: number): Promise<Float32Array> {
  const q = Math.min(rows, cols);
  const f = await svd(ctx.backend, { data: x, shape: [rows, cols] }, { k: q, method: 'exact' });
  const p = f.u.data, qt = f.vt.data, out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let l = 0; l < q; l++) {
      const pil = p[i * q + l]!;
      if (pil === 0) continue;
      for (let j = 0; j < cols; j++) out[i * cols + j]! += pil * qt[l * cols + j]!;
    }
  }
  return out;
}

/** TSV-M of T task vectors [m, n]: the merged task vector (before λ). */
export async function tsvMergeMatrix(ctx: MethodContext, tasks: readonly Float32Array[], m: number, n: number, k: number): Promise<Float32Array> {
  const T = tasks.length, small = Math.min(m, n);
  // At least one triplet per task (the paper's ⌊min(m, n)/T⌋ is 0 for a matrix narrower than T).
  const r = Math.max(1, Math.min(small, Math.floor(k * small)));
  const width = T * r;
  const uCat = new Float32Array(m * width), vCat = new Float32Array(width * n), sigma = new Float32Array(width);
  for (let t = 0; t < T; t++) {
    const f = await svd(ctx.backend, { data: tasks[t]!, shape: [m, n] }, { k: r });
    copyColumns(f.u.data, m, r, 0, r, uCat, width, t * r);
    vCat.set(f.vt.data, t * r * n); // Vᵀ's rows, stacked
    sigma.set(f.s, t * r);
  }
  const uPerp = await polar(ctx, uCat, m, width); // [m, T·r]
  const vtPerp = await polar(ctx, vCat, width, n); // [T·r, n]: (V⊥)ᵀ, the polar factor of the stacked rows
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let l = 0; l < width; l++) {
      const a = uPerp[i * width + l]! * sigma[l]!;
      if (a === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += a * vtPerp[l * n + j]!;
    }
  }
  return out;
}

class TsvMatrix implements TensorMerge {
  passes = 1;
  readonly rowAlign = 1;
  readonly #tasks: Float32Array[];
  readonly #base: Float32Array;
  #merged: Float32Array | undefined;

  constructor(readonly ctx: MethodContext, readonly info: TensorInfo, readonly k: number, readonly lambda: number) {
    this.#tasks = Array.from({ length: ctx.models }, () => new Float32Array(info.numel));
    this.#base = new Float32Array(info.numel);
  }

  async observe(_pass: number, chunk: Chunk): Promise<void> {
    const base = chunk.base!;
    this.#base.set(base.subarray(0, chunk.length), chunk.offset);
    chunk.models.forEach((x, t) => {
      const tau = this.#tasks[t]!;
      for (let i = 0; i < chunk.length; i++) tau[chunk.offset + i] = x[i]! - base[i]!;
    });
  }

  async apply(chunk: Chunk, out: Float32Array): Promise<void> {
    if (!this.#merged) {
      const [m, n] = this.info.shape as [number, number];
      this.#merged = await tsvMergeMatrix(this.ctx, this.#tasks, m, n, this.k);
      this.#tasks.length = 0;
    }
    for (let i = 0; i < chunk.length; i++) out[i] = this.#base[chunk.offset + i]! + this.lambda * this.#merged[chunk.offset + i]!;
  }
}

function meanTaskVector(ctx: MethodContext, lambda: number): TensorMerge {
  return {
    passes: 0, rowAlign: 1,
    async observe() {},
    async apply(chunk, out) {
      const base = chunk.base!;
      for (let i = 0; i < chunk.length; i++) {
        let s = 0;
        for (const x of chunk.models) s += x[i]! - base[i]!;
        out[i] = base[i]! + lambda * (s / ctx.models);
      }
    },
  };
}

export const TSV: MethodSpec = {
  name: 'tsv',
  needsBase: true,
  // k: the share of each task's singular values kept, in (0, 1]; 0 = 1/T, the paper's. lambda: the merged task vector's scale (the paper's alpha, 1).
  globalParams: { k: 0, lambda: 1 },
  modelParams: {},
  create(ctx: MethodContext): MergeMethod {
    return {
      name: 'tsv', needsBase: true, modelPasses: 0,
      async observeModel() {},
      tensor(info: TensorInfo, params: TensorParams): TensorMerge {
        const p = new Params(params);
        const k = p.range('k', 0, 1);
        const lambda = p.number('lambda');
        if (info.shape.length !== 2 || info.numel === 0) return meanTaskVector(ctx, lambda);
        return new TsvMatrix(ctx, info, k === 0 ? 1 / ctx.models : k, lambda);
      },
    };
  },
};
