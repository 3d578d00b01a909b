// mergekit's `passthrough` (mergekit/merge_methods/passthrough.py): the one input tensor as it
// is, times its `scale` when given. With `slices` it stacks layer ranges of models (a
// "frankenmerge"): every slice has one source, and the runner renumbers the layers.
import { MergeKernelsError, describe } from '../../errors.ts';
import type { MethodSpec } from '../types.ts';

export const PASSTHROUGH: MethodSpec = {
  name: 'passthrough',
  needsBase: false,
  globalParams: {},
  // mergekit's default is None (no multiplication); × 1 is the same bits.
  modelParams: { scale: 1 },
  create(ctx) {
    if (ctx.models !== 1) {
      throw new MergeKernelsError('INVALID_OPTION', `models: passthrough copies exactly one model per tensor (a slice with one source), got ${ctx.models}`, 'models');
    }
    return {
      name: 'passthrough', needsBase: false, modelPasses: 0,
      async observeModel() {},
      tensor(_info, params) {
        const scale = params.models[0]?.scale ?? params.global.scale ?? 1;
        if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new MergeKernelsError('INVALID_OPTION', `scale: expected a finite number, got ${describe(scale)}`, 'scale');
        return {
          passes: 0, rowAlign: 1,
          async observe() {},
          async apply(chunk, out) {
            const x = chunk.models[0]!;
            if (scale === 1) out.set(x.subarray(0, chunk.length));
            else for (let i = 0; i < chunk.length; i++) out[i] = x[i]! * scale;
          },
        };
      },
    };
  },
};
