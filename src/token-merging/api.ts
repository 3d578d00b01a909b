// Token merging's API (ToMe and its descendants; src/api.ts forwards the context's calls here):
// the matching that makes a plan, and the merges through it. The kernels behind them live in this
// folder's kernel tables (groups.ts) and in the backends (the fused similarity + best match).
import type { Backend } from '../backends.ts';
import { WebGpuBackend } from '../backends.ts';
import { DeviceTensor } from '../device-tensor.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import * as tome from '../reference/bipartite-soft-matching.ts';
import { checkFinite, checkOutput, checkTensor, overlaps, type Tensor } from '../tensor.ts';
import { options as checkOptions } from '../validate.ts';
import { TokenMergePlan, checkMatchingOptions, checkSize, type BipartiteSoftMatchingOptions } from './merge-plan.ts';
import { bipartiteSoftMatchingOnDevice } from './plan-webgpu.ts';
import { planFromMatches } from './ranking.ts';

/** MergeKernels.bipartiteSoftMatching on the context's backend `impl`. */
export async function bipartiteSoftMatching(impl: Backend, metric: Tensor | DeviceTensor, options: BipartiteSoftMatchingOptions): Promise<TokenMergePlan> {
  const { r, classToken, distillToken } = checkMatchingOptions(options);
  let shape: readonly number[];
  if (metric instanceof DeviceTensor) {
    if (metric.shape.length !== 3) throw new MergeKernelsError('INVALID_SHAPE', `metric: expected rank 3 [B, N, C], got [${metric.shape.join(', ')}]`, 'metric');
    shape = metric.shape;
  } else {
    const m = checkTensor('metric', metric, [3]);
    checkFinite('metric', m.data);
    shape = m.shape;
  }
  const [batch, tokens, c] = shape as [number, number, number];
  const rEff = tome.effectiveR(r, tokens, classToken, distillToken);
  if (rEff === 0) {
    if (metric instanceof DeviceTensor) DeviceTensor.storageOf(metric, impl, 'metric'); // the same checks as a real match
    return new TokenMergePlan(planFromMatches(batch, tokens, 0, classToken, distillToken, new Float32Array(0), new Int32Array(0)), r, 'bipartite', impl);
  }
  if (metric instanceof DeviceTensor && impl instanceof WebGpuBackend) {
    // Matched, ranked and grouped on the GPU; recorded, not submitted (see plan-webgpu.ts).
    const g = DeviceTensor.storageOf(metric, impl, 'metric');
    if (g.kind !== 'gpu') throw new Error('internal: expected gpu storage');
    const device = bipartiteSoftMatchingOnDevice(impl.runtime, { buffer: g.buffer, offset: g.offset, size: Math.max(4, g.bytes) }, batch, tokens, c, rEff, classToken, distillToken);
    return new TokenMergePlan({ batch, tokens, r: rEff, classToken, distillToken, device }, r, 'bipartite', impl);
  }
  const { score, index } = metric instanceof DeviceTensor
    ? await impl.bestMatchEvenOddOnDevice(DeviceTensor.storageOf(metric, impl, 'metric'), batch, tokens, c, classToken, distillToken)
    : await impl.bestMatchEvenOdd(metric.data, batch, tokens, c, classToken, distillToken);
  return new TokenMergePlan(planFromMatches(batch, tokens, rEff, classToken, distillToken, score, index), r, 'bipartite', impl);
}

/** MergeKernels.mergeWavg. */
export function mergeWavg(impl: Backend, plan: TokenMergePlan, x: Tensor | DeviceTensor, size?: Tensor | DeviceTensor, out?: { x: Tensor; size: Tensor }): { x: Tensor | DeviceTensor; size: Tensor | DeviceTensor } {
  if (!(plan instanceof TokenMergePlan)) throw new MergeKernelsError('INVALID_TYPE', `plan: expected a plan from mk.bipartiteSoftMatching, got ${describe(plan)}`, 'plan');
  const kernels = plan.kernels();
  const rows = plan.tokens - plan.r;
  if (x instanceof DeviceTensor) {
    const [d] = plan.checkDeviceTokens('x', x, plan.tokens, out);
    if (plan.deviceBackend('x') !== impl) throw new MergeKernelsError('WRONG_DEVICE', 'plan: made by another context than this one; match on this context', 'plan');
    if (size !== undefined && !(size instanceof DeviceTensor)) throw new MergeKernelsError('INVALID_TYPE', 'size: expected a device tensor like x (upload it to this context)', 'size');
    if (size !== undefined) plan.checkDeviceTokens('size', size, plan.tokens);
    if (size !== undefined && size.shape[2] !== 1) throw new MergeKernelsError('SHAPE_MISMATCH', `size: expected [${plan.batch}, ${plan.tokens}, 1] (one size per token), got [${size.shape.join(', ')}]`, 'size');
    const merged = kernels.mergeOnDevice(plan, DeviceTensor.storageOf(x, impl, 'x'), d, 'wavg', size && DeviceTensor.storageOf(size, impl, 'size'));
    return {
      x: new DeviceTensor(impl, impl, merged.x, [plan.batch, rows, d]),
      size: new DeviceTensor(impl, impl, merged.size!, [plan.batch, rows, 1]),
    };
  }
  if (size instanceof DeviceTensor) throw new MergeKernelsError('INVALID_TYPE', 'size: a device tensor, but x is a host tensor; pass both on the same side', 'size');
  const [d] = plan.checkTokens('x', x, plan.tokens);
  if (size !== undefined) checkSize(plan, size);
  const shapeX = [plan.batch, rows, d], shapeSize = [plan.batch, rows, 1];
  if (out !== undefined) {
    const o = checkOptions('out', out, ['x', 'size'], true);
    const ox = checkOutput('out.x', o.x, shapeX), osize = checkOutput('out.size', o.size, shapeSize);
    const inputs = size === undefined ? [x.data] : [x.data, size.data];
    if ([ox, osize].some((t) => inputs.some((i) => overlaps(t, i))) || overlaps(ox, osize)) {
      throw new MergeKernelsError('INVALID_OPTION', 'out: its arrays must not share memory with x, size or each other', 'out');
    }
    kernels.mergeWavg(plan, x.data, d, size?.data, { x: ox, size: osize });
    return out;
  }
  const merged = kernels.mergeWavg(plan, x.data, d, size?.data);
  return { x: { data: merged.x, shape: shapeX }, size: { data: merged.size, shape: shapeSize } };
}

/** MergeKernels.mergeSource. */
export function mergeSource(plan: TokenMergePlan, source?: Tensor): Tensor {
  if (!(plan instanceof TokenMergePlan)) throw new MergeKernelsError('INVALID_TYPE', `plan: expected a plan from mk.bipartiteSoftMatching, got ${describe(plan)}`, 'plan');
  let n0 = plan.tokens;
  if (source !== undefined) {
    const s = checkTensor('source', source, [3]);
    if (s.shape[0] !== plan.batch || s.shape[1] !== plan.tokens) {
      throw new MergeKernelsError('SHAPE_MISMATCH', `source: expected [${plan.batch}, ${plan.tokens}, N0], got [${s.shape.join(', ')}]`, 'source');
    }
    n0 = s.shape[2]!;
  }
  return { data: plan.kernels().mergeSource(plan, source?.data, n0), shape: [plan.batch, plan.tokens - plan.r, n0] };
}
