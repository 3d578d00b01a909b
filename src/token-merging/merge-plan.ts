// Token merging's public surface: the merge plan returned by mk.bipartiteSoftMatching and the
// checks of its arguments. The scoring step (each A token's best B match) runs on the context's
// backend, and so do merge / unmerge (src/token-merging/groups.ts); the ranking is the reference's
// (src/reference/bipartite-soft-matching.ts), shared by every backend.
import type { Backend } from '../backends.ts';
import { DeviceTensor } from '../device-tensor.ts';
import { MergeKernelsError } from '../errors.ts';
import { kernelsOf } from '../kernel-table.ts';
import * as ref from '../reference/bipartite-soft-matching.ts';
import { checkOut, checkTensor, type Tensor } from '../tensor.ts';
import { groupKernels, jsGroupKernels, type GroupKernels } from './groups.ts';
import type { DevicePlan, DevicePlanBuffers } from './plan-webgpu.ts';
import { boolean, integer, oneOf, options as checkOptions } from '../validate.ts';

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
  #indices: PlanIndices | undefined;
  #device: DevicePlan | undefined;
  #backend: Backend | undefined;
  #kernels: GroupKernels;

  /**
   * @internal built by mk.bipartiteSoftMatching and its variants, for the context of `backend`;
   * a plan matched on the GPU (`device`) has its indices there until `read()`.
   */
  constructor(plan: ref.MergePlan | DevicePlanInit, requestedR: number, method: TokenMergeMethod = 'bipartite', backend?: Backend) {
    this.#backend = backend;
    this.#kernels = backend ? kernelsOf(backend, groupKernels) : jsGroupKernels;
    this.method = method;
    this.batch = plan.batch;
    this.tokens = plan.tokens;
    this.r = plan.r;
    this.requestedR = requestedR;
    this.classToken = plan.classToken;
    this.distillToken = plan.distillToken;
    if ('device' in plan) this.#device = plan.device;
    else this.#indices = indicesOf(plan);
  }

  /** [B, |A| − r]: A indices kept, in output order. */
  get unmergedIdx(): Int32Array { return this.#host().unmergedIdx; }
  /** [B, r]: A indices merged away, best-matching first. */
  get srcIdx(): Int32Array { return this.#host().srcIdx; }
  /** [B, r]: the B index each source merges into. */
  get dstIdx(): Int32Array { return this.#host().dstIdx; }
  /** [B, |A|]: token positions of set A. */
  get aIdx(): Int32Array { return this.#host().aIdx; }
  /** [B, |B|]: token positions of set B. */
  get bIdx(): Int32Array { return this.#host().bIdx; }
  /** [B, N]: the output row of every token; merge and unmerge both follow it. */
  get outputRow(): Int32Array { return this.#host().outputRow; }

  /** False for a plan matched from a device metric on webgpu until `read()`: its indices are on the GPU. */
  get onHost(): boolean {
    return this.#indices !== undefined;
  }

  /**
   * Brings the indices of a plan matched on the GPU to the host (one readback), so that the index
   * arrays can be read and host tensors merged; a no-op for other plans. Device tensors merge
   * without it.
   */
  async read(): Promise<this> {
    if (!this.#indices && this.#device) {
      this.kernels();
      this.#indices = indicesOf(await this.#device.read());
    }
    return this;
  }

  /** Frees a GPU-matched plan's device buffers now rather than when it is collected. Idempotent. */
  dispose(): void {
    this.#device?.dispose();
    this.#device = undefined;
  }

  #host(): PlanIndices {
    if (this.#indices) return this.#indices;
    throw new MergeKernelsError('ON_DEVICE', 'plan: its indices are on the GPU (it was matched from a device metric); merge device tensors with it, or `await plan.read()` first (one readback)', 'plan');
  }

  /** @internal the buffers of a plan matched on the GPU (undefined for other plans); DISPOSED once freed. */
  deviceBuffers(): DevicePlanBuffers | undefined {
    if (this.#indices) return undefined;
    if (!this.#device) throw new MergeKernelsError('DISPOSED', 'plan: this plan was disposed', 'plan');
    return this.#device.buffers;
  }

  /**
   * `x [B, N, D]` → `[B, N - r, D]`: kept A tokens, then all B tokens with their sources reduced in.
   * Runs on the plan's context (wasm, or WGSL for device tensors); a device tensor in gives a
   * device tensor out, without leaving the device.
   */
  merge(x: Tensor, options?: { mode?: MergeMode }, out?: Tensor): Tensor;
  merge(x: DeviceTensor, options?: { mode?: MergeMode }): DeviceTensor;
  merge(x: Tensor | DeviceTensor, options: { mode?: MergeMode } = {}, out?: Tensor): Tensor | DeviceTensor {
    const mode = checkMode(options);
    const kernels = this.kernels();
    if (x instanceof DeviceTensor) {
      const [d] = this.checkDeviceTokens('x', x, this.tokens, out);
      const merged = kernels.mergeOnDevice(this, DeviceTensor.storageOf(x, this.#backend!, 'x'), d, mode, undefined);
      return new DeviceTensor(this.#backend!, this.#backend!, merged.x, [this.batch, this.tokens - this.r, d]);
    }
    const [d] = this.checkTokens('x', x, this.tokens);
    const shape = [this.batch, this.tokens - this.r, d];
    if (out === undefined) return { data: kernels.merge(this, x.data, d, mode), shape };
    kernels.merge(this, x.data, d, mode, checkOut('out', out, shape, [x.data]));
    return out;
  }

  /**
   * `y [B, N - r, D]` → `[B, N, D]`: every source position gets the row of the token it merged into.
   * `out` (merge's too): a tensor of the result's shape to write into and return, not sharing memory with the input.
   */
  unmerge(y: Tensor, out?: Tensor): Tensor;
  unmerge(y: DeviceTensor): DeviceTensor;
  unmerge(y: Tensor | DeviceTensor, out?: Tensor): Tensor | DeviceTensor {
    const kernels = this.kernels();
    if (y instanceof DeviceTensor) {
      const [d] = this.checkDeviceTokens('y', y, this.tokens - this.r, out);
      const storage = kernels.unmergeOnDevice(this, DeviceTensor.storageOf(y, this.#backend!, 'y'), d);
      return new DeviceTensor(this.#backend!, this.#backend!, storage, [this.batch, this.tokens, d]);
    }
    const [d] = this.checkTokens('y', y, this.tokens - this.r);
    const shape = [this.batch, this.tokens, d];
    if (out === undefined) return { data: kernels.unmerge(this, y.data, d), shape };
    kernels.unmerge(this, y.data, d, checkOut('out', out, shape, [y.data]));
    return out;
  }

  /** @internal this plan's merges (its context's backend); DISPOSED once that context is gone. */
  kernels(): GroupKernels {
    if (this.#backend && !this.#backend.alive) {
      throw new MergeKernelsError('DISPOSED', `this plan's merge-kernels context (${this.#backend.name}) was disposed; create a new one with init()`);
    }
    return this.#kernels;
  }

  /** @internal the backend whose device tensors this plan merges (throws for a plan made without a context). */
  deviceBackend(name: string): Backend {
    if (!this.#backend) throw new MergeKernelsError('INVALID_TYPE', `${name}: device tensors need a plan made by a context (mk.bipartiteSoftMatching)`, name);
    return this.#backend;
  }

  /** @internal checks a device tensor [B, n, D] against the plan (and that no host `out` was given); returns [D]. */
  checkDeviceTokens(name: string, t: DeviceTensor, n: number, out?: unknown): [number] {
    this.deviceBackend(name);
    if (out !== undefined) throw new MergeKernelsError('INVALID_OPTION', 'out: a host output, for host inputs; with device tensors the result is a device tensor', 'out');
    const [b, tokens, d] = t.shape;
    if (t.shape.length !== 3 || b !== this.batch || tokens !== n) {
      throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected [${this.batch}, ${n}, D] to match the plan (B = ${this.batch}, N = ${this.tokens}, r = ${this.r}), got [${t.shape.join(', ')}]`, name);
    }
    return [d!];
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

/** A plan's index arrays on the host. */
interface PlanIndices {
  unmergedIdx: Int32Array;
  srcIdx: Int32Array;
  dstIdx: Int32Array;
  aIdx: Int32Array;
  bIdx: Int32Array;
  outputRow: Int32Array;
}

/** A plan matched on the GPU: its sizes, and the device buffers holding the rest. */
export interface DevicePlanInit {
  batch: number;
  tokens: number;
  r: number;
  classToken: boolean;
  distillToken: boolean;
  device: DevicePlan;
}

function indicesOf(plan: ref.MergePlan): PlanIndices {
  const parity = (p: number) => {
    const n = Math.floor((plan.tokens + 1 - p) / 2);
    return Int32Array.from({ length: plan.batch * n }, (_, i) => 2 * (i % n) + p);
  };
  return {
    unmergedIdx: plan.unmergedIdx,
    srcIdx: plan.srcIdx,
    dstIdx: plan.dstIdx,
    outputRow: ref.outputRows(plan),
    aIdx: plan.aIdx ?? parity(0),
    bIdx: plan.bIdx ?? parity(1),
  };
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
