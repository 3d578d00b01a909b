// Token merging's public surface: the merge plan returned by mk.bipartiteSoftMatching and the
// checks of its arguments. The scoring step (each A token's best B match) runs on the context's
// backend; ranking, merge and unmerge follow the reference in src/reference/bipartite-soft-matching.ts.
import { MergeKernelsError } from './errors.ts';
import * as ref from './reference/bipartite-soft-matching.ts';
import { checkOut, checkTensor, type Tensor } from './tensor.ts';
import { boolean, integer, oneOf, options as checkOptions } from './validate.ts';

export type MergeMode = ref.MergeMode;
const MODES: readonly MergeMode[] = ['mean', 'sum', 'amax'];

export interface BipartiteSoftMatchingOptions {
  /** Tokens to remove per batch item: a non-negative integer, clamped to (N - protected) / 2 as ToMe does. */
  r: number;
  /** Token 0 is a class token: never merged, and the kept A tokens come out in position order. */
  classToken?: boolean;
  /** Token 1 is a distillation token: never merged into. */
  distillToken?: boolean;
}

/** Which matching made a plan. */
export type TokenMergeMethod = 'bipartite' | 'random2d' | 'kth' | 'random' | 'pitome' | 'pitome-bsm';

/**
 * Which tokens merge where (ToMe's merge/unmerge pair, and its variants'). Holds O(B·N) integers:
 * the plan never stores a similarity matrix. Indices follow the reference: `unmergedIdx` and
 * `srcIdx` index set A, `dstIdx` set B; `aIdx` and `bIdx` give those sets' token positions (ToMe:
 * even and odd tokens) and `outputRow` the row of merge's output every token lands in (-1: dropped).
 */
export class TokenMergePlan implements ref.MergePlan {
  readonly method: TokenMergeMethod;
  readonly batch: number;
  readonly tokens: number;
  /** Tokens removed per batch item (the output has N - r), after clamping: each batch item loses exactly this many. */
  readonly r: number;
  /** r as asked for (for kth: N - N // k; for PiToMe with a ratio: the r the ratio gives before clamping). */
  readonly requestedR: number;
  readonly classToken: boolean;
  readonly distillToken: boolean;
  readonly unmergedIdx: Int32Array;
  readonly srcIdx: Int32Array;
  readonly dstIdx: Int32Array;
  /** [B, |A|]: token positions of set A. */
  readonly aIdx: Int32Array;
  /** [B, |B|]: token positions of set B. */
  readonly bIdx: Int32Array;
  /** [B, N]: the output row of every token; merge and unmerge both follow it. */
  readonly outputRow: Int32Array;

  /** @internal built by mk.bipartiteSoftMatching and its variants */
  constructor(plan: ref.MergePlan, requestedR: number, method: TokenMergeMethod = 'bipartite') {
    this.method = method;
    this.batch = plan.batch;
    this.tokens = plan.tokens;
    this.r = plan.r;
    this.requestedR = requestedR;
    this.classToken = plan.classToken;
    this.distillToken = plan.distillToken;
    this.unmergedIdx = plan.unmergedIdx;
    this.srcIdx = plan.srcIdx;
    this.dstIdx = plan.dstIdx;
    this.outputRow = ref.outputRows(plan);
    const parity = (p: number) => {
      const n = Math.floor((plan.tokens + 1 - p) / 2);
      return Int32Array.from({ length: plan.batch * n }, (_, i) => 2 * (i % n) + p);
    };
    this.aIdx = plan.aIdx ?? parity(0);
    this.bIdx = plan.bIdx ?? parity(1);
  }

  /** `x [B, N, D]` → `[B, N - r, D]`: kept A tokens, then all B tokens with their sources reduced in. */
  merge(x: Tensor, options: { mode?: MergeMode } = {}, out?: Tensor): Tensor {
    const mode = checkMode(options);
    const [d] = this.checkTokens('x', x, this.tokens);
    const shape = [this.batch, this.tokens - this.r, d];
    if (out === undefined) return { data: ref.mergeTokens(this, x.data, d, mode), shape };
    ref.mergeTokens(this, x.data, d, mode, checkOut('out', out, shape, [x.data]));
    return out;
  }

  /**
   * `y [B, N - r, D]` → `[B, N, D]`: every source position gets the row of the token it merged into.
   * `out` (merge's too): a tensor of the result's shape to write into and return, not sharing memory with the input.
   */
  unmerge(y: Tensor, out?: Tensor): Tensor {
    const [d] = this.checkTokens('y', y, this.tokens - this.r);
    const shape = [this.batch, this.tokens, d];
    if (out === undefined) return { data: ref.unmergeTokens(this, y.data, d), shape };
    ref.unmergeTokens(this, y.data, d, checkOut('out', out, shape, [y.data]));
    return out;
  }

  /** @internal checks a [B, n, D] tensor against the plan; returns [D]. */
  checkTokens(name: string, t: Tensor, n: number): [number] {
    const x = checkTensor(name, t, [3]);
    const [b, tokens, d] = x.shape as [number, number, number];
    if (b !== this.batch || tokens !== n) {
      throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected [${this.batch}, ${n}, D] to match the plan (B = ${this.batch}, N = ${this.tokens}, r = ${this.r}), got [${x.shape.join(', ')}]`, name);
    }
    return [d];
  }
}

/** Validates bipartiteSoftMatching's options; returns them complete. */
export function checkMatchingOptions(options: unknown): Required<BipartiteSoftMatchingOptions> {
  const o = checkOptions('options', options, ['r', 'classToken', 'distillToken'], true);
  return {
    r: integer('r', o.r, 0, undefined, 'tokens to remove per batch item'),
    classToken: boolean('classToken', o.classToken),
    distillToken: boolean('distillToken', o.distillToken),
  };
}

/** Validates a plan's merge options ({ mode? }); returns the mode. */
export function checkMode(options: unknown): MergeMode {
  return oneOf('mode', checkOptions('options', options, ['mode']).mode, MODES, 'mean');
}

/** Validates `size` [B, N, 1] for mergeWavg. */
export function checkSize(plan: TokenMergePlan, size: Tensor): void {
  const s = checkTensor('size', size, [3]);
  if (s.shape[0] !== plan.batch || s.shape[1] !== plan.tokens || s.shape[2] !== 1) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `size: expected [${plan.batch}, ${plan.tokens}, 1] (one size per token), got [${s.shape.join(', ')}]`, 'size');
  }
}
