// Small merge methods for testing the runner (the package's real methods are tested on their
// own): each is simple enough that the expected output is written out by hand in the tests.
import type { Chunk, MethodSpec, TensorParams } from 'merge-kernels';

/** Σ wᵢ xᵢ / Σ wᵢ (or without the division when normalize is false). No base. */
export const linear: MethodSpec = {
  name: 'linear',
  needsBase: false,
  globalParams: { normalize: true },
  modelParams: { weight: 1 },
  create: () => ({
    name: 'linear', needsBase: false, modelPasses: 0,
    async observeModel() {},
    tensor: (_info, params: TensorParams) => {
      const w = params.models.map((m) => m.weight as number);
      const div = params.global.normalize ? w.reduce((a, b) => a + b, 0) : 1;
      return {
        passes: 0, rowAlign: 1,
        async observe() {},
        async apply(chunk: Chunk, out: Float32Array) {
          for (let i = 0; i < chunk.length; i++) {
            let s = 0;
            for (let m = 0; m < w.length; m++) s += w[m]! * chunk.models[m]![i]!;
            out[i] = s / div;
          }
        },
      };
    },
  }),
};

/**
 * base + Σ wᵢ δᵢ − mean(δ₀) where mean(δ₀) is the mean of the first task vector over the WHOLE
 * tensor (one observation pass): a chunked run gives the same bytes only if every chunk is seen
 * before apply. Chunks must hold whole rows of the last dimension; apply throws otherwise.
 */
export const centered: MethodSpec = {
  name: 'centered',
  needsBase: true,
  globalParams: {},
  modelParams: { weight: 1 },
  create: () => ({
    name: 'centered', needsBase: true, modelPasses: 0,
    async observeModel() {},
    tensor: (info, params) => {
      const row = info.shape.length > 0 ? info.shape[info.shape.length - 1]! : 1;
      let sum = 0;
      let seen = 0;
      return {
        passes: 1, rowAlign: Math.max(1, row),
        async observe(_pass, chunk) {
          for (let i = 0; i < chunk.length; i++) sum += chunk.models[0]![i]! - chunk.base![i]!;
          seen += chunk.length;
        },
        async apply(chunk, out) {
          if (seen !== info.numel) throw new Error(`apply before the observation pass saw every entry (${seen} of ${info.numel})`);
          if (chunk.length % Math.max(1, row) !== 0 && chunk.offset + chunk.length !== info.numel) throw new Error(`chunk of ${chunk.length} is not whole rows of ${row}`);
          const mean = info.numel > 0 ? sum / info.numel : 0;
          for (let i = 0; i < chunk.length; i++) {
            let s = chunk.base![i]!;
            chunk.models.forEach((m, k) => { s += (params.models[k]!.weight as number) * (m[i]! - chunk.base![i]!); });
            out[i] = s - mean;
          }
        },
      };
    },
  }),
};

/** x₀ − (mean of x₀ over every float tensor of the model): a statistic that needs a model pass. */
export const modelCentered: MethodSpec = {
  name: 'model_centered',
  needsBase: false,
  globalParams: {},
  modelParams: {},
  create: () => {
    let sum = 0;
    let count = 0;
    return {
      name: 'model_centered', needsBase: false, modelPasses: 1,
      async observeModel(_pass, _tensor, _params, chunk) {
        for (const v of chunk.models[0]!) sum += v;
        count += chunk.length;
      },
      tensor: () => ({
        passes: 0, rowAlign: 1,
        async observe() {},
        async apply(chunk, out) {
          for (let i = 0; i < chunk.length; i++) out[i] = chunk.models[0]![i]! - sum / count;
        },
      }),
    };
  },
};

export const TEST_METHODS: Record<string, MethodSpec> = { linear, centered, model_centered: modelCentered };
