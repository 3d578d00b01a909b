// The public context: init() resolves a backend and returns a MergeKernels object that owns the
// GPU device and/or the wasm instance and their memory until dispose().
import { JsBackend, WasmBackend, WebGpuBackend, type Backend, type BackendName } from './backends.ts';
import { MergeKernelsError, describe } from './errors.ts';
import { checkFinite, checkOut, checkTensor, type Tensor } from './tensor.ts';
import type { TokenMergePlan, BipartiteSoftMatchingOptions } from './token-merging/merge-plan.ts';
import * as variants from './token-merging/variants.ts';
import * as tm from './token-merging/api.ts';
import type { BatchLevelMatchingOptions, BatchLevelMergePlan, PitomeMatchingOptions, Random2dMatchingOptions, ThresholdMatchingOptions, ThresholdMergePlan } from './token-merging/variants.ts';
import { MergePrimitives } from './merging/primitives.ts';
import * as merging from './merging/tensors.ts';
import type { TrimConvention, ZeroSignRule, DisjointMergeRule } from './reference/model-merging.ts';
import { WasmRuntime } from './wasm/runtime.ts';
import { DeviceTensor } from './device-tensor.ts';
import { boolean, integer, oneOf, options as checkOptions } from './validate.ts';
import { GpuRuntime, acquireDevice, type GpuCounters } from './webgpu/runtime.ts';
import * as svdFamily from './svd/api.ts';
import type { LowRankOptions, LowRankResult, SvdOptions, SvdResult } from './svd/api.ts';
import * as kv from './kv/api.ts';
import { KvCompressor, type KvCompressorOptions } from './kv/online.ts';

export type BackendOption = 'auto' | BackendName;

export interface InitOptions {
  /**
   * Which backend to use. 'auto' (default): WebGPU when a hardware adapter is available (a
   * software one, such as SwiftShader or lavapipe, is passed over: wasm is faster on the same
   * CPU), else wasm; `fallbackReasons` says why.
   */
  backend?: BackendOption;
  /** A WebGPU implementation to use instead of navigator.gpu (in Node: create([]) from the npm package "webgpu"). */
  gpu?: GPU;
  /** A device to use; the context borrows it and does not destroy it on dispose(). */
  device?: GPUDevice;
  /** The kernels' wasm as a precompiled module or its bytes (for runtimes that forbid compiling embedded bytes). */
  wasm?: WebAssembly.Module | BufferSource;
  /**
   * WebGPU only: timestamp every compute pass, so that `gpuTimeMs` reports the time the GPU spent
   * in our kernels (needs the adapter's 'timestamp-query' feature; costs one small readback per call).
   */
  gpuTiming?: boolean;
}

/** Supplies the wasm module when InitOptions.wasm is not given (the entry point decides how). */
export type WasmSource = () => Promise<WebAssembly.Module>;

const BACKENDS: readonly BackendOption[] = ['auto', 'webgpu', 'wasm', 'js'];
const INIT_OPTIONS: readonly (keyof InitOptions)[] = ['backend', 'gpu', 'device', 'wasm', 'gpuTiming'];

export class MergeKernels {
  /** The backend that was resolved. */
  readonly backend: BackendName;
  /** Why backends tried before the resolved one were not used ('auto' only; empty otherwise). */
  readonly fallbackReasons: readonly string[];
  #impl: Backend | undefined;

  /** @internal use init() */
  constructor(impl: Backend, fallbackReasons: string[]) {
    this.#impl = impl;
    this.backend = impl.name;
    this.fallbackReasons = fallbackReasons;
  }

  get #backend(): Backend {
    if (!this.#impl) throw new MergeKernelsError('DISPOSED', `this merge-kernels context (${this.backend}) was disposed; create a new one with init()`);
    return this.#impl;
  }

  /** @internal The backend of a context, for the file runner (src/merging/runner.ts); throws DISPOSED after dispose(). */
  static backendOf(mk: MergeKernels): Backend {
    return mk.#backend;
  }

  /** The streaming model-merging primitives on this context's backend (see src/reference/merge-primitives.ts). */
  readonly primitives = new MergePrimitives(() => this.#backend);

  /** The GPU device's limits when the backend is webgpu, else undefined. */
  get gpuLimits(): GPUSupportedLimits | undefined {
    const impl = this.#backend;
    return impl instanceof WebGpuBackend ? impl.runtime.limits : undefined;
  }

  /**
   * Milliseconds the GPU has spent in this context's compute passes so far (timestamp queries),
   * when it was created with `gpuTiming: true` on a device that has 'timestamp-query'; else
   * undefined. Read it before and after a call to time that call's kernels alone, without the
   * uploads, readbacks and host work around them.
   */
  get gpuTimeMs(): number | undefined {
    const impl = this.#backend;
    const ns = impl instanceof WebGpuBackend ? impl.runtime.gpuNs : undefined;
    return ns === undefined ? undefined : ns / 1e6;
  }

  /**
   * The GPUDevice this context runs on (webgpu only, else undefined): create buffers on it to
   * hand to `wrap`, or give it to another library (see README, "Device tensors").
   */
  get gpuDevice(): GPUDevice | undefined {
    const impl = this.#backend;
    return impl instanceof WebGpuBackend ? impl.runtime.device : undefined;
  }

  /**
   * Copies a host tensor to this context's backend: a GPUBuffer on webgpu, a block of wasm memory
   * on wasm, an array on js. Kernels given device tensors return device tensors.
   */
  upload(tensor: Tensor): DeviceTensor {
    const impl = this.#backend;
    const t = checkTensor('tensor', tensor, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    return new DeviceTensor(impl, impl, impl.upload(t.data), t.shape);
  }

  /**
   * Adopts a GPUBuffer another library made on this context's device (webgpu only): `shape`
   * float32 values from byte `offset` (a multiple of the device's minStorageBufferOffsetAlignment,
   * default 0). The buffer needs STORAGE usage (and COPY_SRC to be read back); it stays its
   * owner's: disposing the tensor does not destroy it. A buffer of another device is WRONG_DEVICE.
   */
  async wrap(options: { buffer: GPUBuffer; shape: number[]; offset?: number }): Promise<DeviceTensor> {
    const impl = this.#backend;
    const o = checkOptions('options', options, ['buffer', 'shape', 'offset'], true);
    if (!(impl instanceof WebGpuBackend)) {
      throw new MergeKernelsError('INVALID_OPTION', `wrap: adopting a GPUBuffer needs a webgpu context; this one is ${impl.name} (use upload)`, 'buffer');
    }
    const rt = impl.runtime;
    const buffer = o.buffer as GPUBuffer;
    if (buffer === null || typeof buffer !== 'object' || typeof (buffer as { usage?: unknown }).usage !== 'number' || typeof (buffer as { size?: unknown }).size !== 'number') {
      throw new MergeKernelsError('INVALID_TYPE', `buffer: expected a GPUBuffer, got ${describe(buffer)}`, 'buffer');
    }
    if (!Array.isArray(o.shape) || !o.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new MergeKernelsError('INVALID_SHAPE', `shape: expected an array of non-negative integers, got ${describe(o.shape)}`, 'shape');
    }
    const shape = o.shape as number[];
    const align = rt.limits.minStorageBufferOffsetAlignment;
    const offset = o.offset === undefined ? 0 : integer('offset', o.offset, 0, buffer.size, `a byte offset, a multiple of ${align}`);
    if (offset % align !== 0) throw new MergeKernelsError('INVALID_OPTION', `offset: expected a multiple of minStorageBufferOffsetAlignment (${align}), got ${offset}`, 'offset');
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    if (offset + bytes > buffer.size) {
      throw new MergeKernelsError('INVALID_SHAPE', `shape: [${shape.join(', ')}] needs ${bytes} bytes from offset ${offset}, but the buffer holds ${buffer.size}`, 'shape');
    }
    if ((buffer.usage & GPUBufferUsage.STORAGE) === 0) {
      throw new MergeKernelsError('INVALID_OPTION', 'buffer: needs GPUBufferUsage.STORAGE to be bound by our kernels', 'buffer');
    }
    // A buffer of another device fails validation when bound: find out now, not in a kernel.
    rt.device.pushErrorScope('validation');
    const probe = rt.device.createBindGroupLayout({ label: 'merge-kernels:wrap:probe', entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } }] });
    rt.device.createBindGroup({ label: 'merge-kernels:wrap:probe', layout: probe, entries: [{ binding: 0, resource: { buffer, offset, size: Math.max(4, bytes) } }] });
    const err = await rt.device.popErrorScope();
    if (err) throw new MergeKernelsError('WRONG_DEVICE', `buffer: cannot be used on this context's device (${err.message.split('\n')[0]}); create it on mk.gpuDevice`, 'buffer');
    return new DeviceTensor(impl, impl, { kind: 'gpu', buffer, offset, bytes, owned: false }, shape);
  }

  /**
   * What this context has asked of the GPU so far (webgpu only, else undefined): submits,
   * readbacks, and host data uploaded into storage buffers (count and bytes). A snapshot: read it
   * before and after a call to see what that call cost in transfers.
   */
  get gpuCounters(): GpuCounters | undefined {
    const impl = this.#backend;
    return impl instanceof WebGpuBackend ? { ...impl.runtime.counters } : undefined;
  }

  /**
   * Cosine similarity of every row of `a` with every row of `b`.
   * `a: [M, C]`, `b: [N, C]` → `[M, N]`; batched `[B, M, C]` × `[B, N, C]` → `[B, M, N]`.
   * Rows are L2-normalised; a zero row has similarity 0 with everything (not NaN).
   * `out`: a tensor of the result's shape to write into and return (not sharing memory with a or b).
   * Given a device tensor (the other may be a host tensor, uploaded for the call), the result is
   * a device tensor of this context; device inputs are not checked for NaN (that would read them back).
   */
  async cosineSimilarity(a: Tensor, b: Tensor, out?: Tensor): Promise<Tensor>;
  async cosineSimilarity(a: Tensor | DeviceTensor, b: Tensor | DeviceTensor): Promise<DeviceTensor>;
  async cosineSimilarity(a: Tensor | DeviceTensor, b: Tensor | DeviceTensor, out?: Tensor): Promise<Tensor | DeviceTensor> {
    const impl = this.#backend;
    if (a instanceof DeviceTensor || b instanceof DeviceTensor) return this.#cosineOnDevice(impl, a, b, out);
    const ta = checkTensor('a', a, [2, 3]);
    const tb = checkTensor('b', b, [2, 3]);
    const [batch, m, c, n] = cosineShapes(ta.shape, tb.shape);
    checkFinite('a', ta.data);
    checkFinite('b', tb.data);
    const shape = ta.shape.length === 3 ? [batch, m, n] : [m, n];
    const into = out === undefined ? undefined : checkOut('out', out, shape, [ta.data, tb.data]);
    const data = await impl.cosineSimilarity(ta.data, tb.data, batch, m, n, c, into);
    return out ?? { data, shape };
  }

  async #cosineOnDevice(impl: Backend, a: Tensor | DeviceTensor, b: Tensor | DeviceTensor, out: Tensor | undefined): Promise<DeviceTensor> {
    if (out !== undefined) throw new MergeKernelsError('INVALID_OPTION', 'out: a host output, for host inputs; with device tensors the result is a device tensor', 'out');
    const shapeOf = (name: string, t: Tensor | DeviceTensor) => {
      if (!(t instanceof DeviceTensor)) return checkTensor(name, t, [2, 3]).shape;
      if (t.shape.length !== 2 && t.shape.length !== 3) throw new MergeKernelsError('INVALID_SHAPE', `${name}: expected rank 2 or 3, got [${t.shape.join(', ')}]`, name);
      return [...t.shape];
    };
    const sa = shapeOf('a', a), sb = shapeOf('b', b);
    const [batch, m, c, n] = cosineShapes(sa, sb);
    // A host operand is uploaded for this call only.
    const uploaded: DeviceTensor[] = [];
    const storage = (name: string, t: Tensor | DeviceTensor) => {
      if (t instanceof DeviceTensor) return DeviceTensor.storageOf(t, impl, name);
      checkFinite(name, t.data);
      const d = this.upload(t);
      uploaded.push(d);
      return DeviceTensor.storageOf(d, impl, name);
    };
    try {
      const result = await impl.cosineSimilarityOnDevice(storage('a', a), storage('b', b), batch, m, n, c);
      return new DeviceTensor(impl, impl, result, sa.length === 3 ? [batch, m, n] : [m, n]);
    } finally {
      for (const d of uploaded) d.dispose();
    }
  }

  /**
   * ToMe's bipartite soft matching (Bolya et al. 2023, §3): `metric [B, N, C]` → a plan that
   * merges the `r` most similar (even, odd) token pairs of each batch item. Each even token's
   * best odd match is found on this context's backend (fused similarity + running argmax);
   * ties go to the lowest odd index, and equal best scores rank the lower even index first.
   * A device-tensor metric is matched where it lives and is not checked for NaN. On webgpu the
   * whole plan (split, match, ranking, output groups) is recorded on the GPU and submitted with
   * the next call that submits: a ToMe step on device tensors (match, then mergeWavg) is one
   * submit and no readback; the plan's index arrays need `await plan.read()` (one readback).
   */
  async bipartiteSoftMatching(metric: Tensor | DeviceTensor, options: BipartiteSoftMatchingOptions): Promise<TokenMergePlan> {
    return tm.bipartiteSoftMatching(this.#backend, metric, options);
  }

  /**
   * tomesd's random 2-D matching (Bolya & Hoffman 2023, "Token Merging for Fast Stable Diffusion",
   * §4.1): `metric [B, w·h, C]`; one destination per sy × sx cell (a random cell position drawn
   * from `seed` by our own generator — the same on every backend and runtime, not torch's
   * stream — or the top-left with `noRand`), every other token a source (also rows and columns
   * past floor(h/sy)·sy, floor(w/sx)·sx). Both sets in raster order (tomesd's argsort leaves
   * that order to the backend); then ToMe's ranking, no protected tokens, r clamped to the
   * number of sources. merge → [unmerged sources (best-first order of the rest), destinations];
   * unmerge scatters back to the original positions, as tomesd's unmerge after attention/MLP.
   */
  async bipartiteSoftMatchingRandom2d(metric: Tensor | DeviceTensor, options: Random2dMatchingOptions): Promise<TokenMergePlan> {
    return variants.random2d(this.#backend, metric, options);
  }

  /**
   * ToMe's kth_bipartite_soft_matching (Bolya et al. 2023, appendix ablation of the split): in
   * every group of k consecutive tokens the first k − 1 merge into their best match among the
   * groups' last tokens; merge → the last tokens, N // k of them (a tail of N mod k is dropped;
   * unmerge gives it zeros). k = 1 is the identity; k > N is an error.
   */
  async kthBipartiteSoftMatching(metric: Tensor | DeviceTensor, options: { k: number }): Promise<TokenMergePlan> {
    return variants.kth(this.#backend, metric, options);
  }

  /**
   * ToMe's random_bipartite_soft_matching (Bolya et al. 2023, appendix): per batch item r tokens
   * chosen by a seeded permutation (ours, the same on every backend and runtime; ToMe uses
   * torch.rand) all merge into their best match among the others; merge → the others in
   * permutation order. r is clamped to N − 1.
   */
  async randomBipartiteSoftMatching(metric: Tensor | DeviceTensor, options: { r: number; seed?: number }): Promise<TokenMergePlan> {
    return variants.random(this.#backend, metric, options);
  }

  /**
   * DToMe threshold merging (Wang et al. 2025, "DyMU", §3.1): ToMe's sets and scores; each batch
   * item b merges its r_b = min(#(best score > threshold), (N − protected) // 2, maxR) best edges.
   * Items differ in length: the plan's `r` is per item, `merge` returns one `[1, N − r_b, D]`
   * tensor per item and `unmerge` takes that array back.
   */
  async thresholdSoftMatching(metric: Tensor | DeviceTensor, options: ThresholdMatchingOptions): Promise<ThresholdMergePlan> {
    return variants.threshold(this.#backend, metric, options);
  }

  /**
   * DyMU's batch-level matching (its training path, §3.1): the best r·B edges over the whole
   * batch merge (or those above `threshold`), so items merge different numbers of tokens while
   * shapes stay `[B, N]`: merge returns the even then the odd tokens of every item with merged
   * slots zeroed, and a padding mask (1 = empty slot). `plan.batchThreshold` is the score DyMU
   * averages into its learned threshold.
   */
  async batchLevelSoftMatching(metric: Tensor | DeviceTensor, options: BatchLevelMatchingOptions): Promise<BatchLevelMergePlan> {
    return variants.batchLevel(this.#backend, metric, options);
  }

  /**
   * PiToMe (Tran et al. 2024, "Accelerating Transformers with Spectrum-Preserving Token
   * Merging", §4): the class token is left out; every other token's energy is the mean over all
   * tokens j of ELU(cos_ij − margin); the 2r highest-energy tokens alternate into A and B and
   * every A merges into its most similar B; merge → [cls, the rest by descending energy, B].
   * `useBsm` is PiToMe's use_bsm_pitome. Needs the full T × T similarity per batch item (on this
   * context's backend): O(B·N²) memory, for this variant only.
   */
  async pitomeSoftMatching(metric: Tensor | DeviceTensor, options: PitomeMatchingOptions): Promise<TokenMergePlan> {
    return variants.pitome(this.#backend, metric, options);
  }

  /**
   * ToMe's merge_wavg: size-weighted average of `x [B, N, D]` with token sizes `size [B, N, 1]`
   * (default ones), on the plan's context. `out` (as wgpu-matrix's `dst`): tensors of shapes
   * [B, N − r, D] and [B, N − r, 1] to write into and return, so that a model calling this layer
   * after layer allocates no output arrays; they must not overlap `x` or `size`. Given a device
   * tensor `x` (and `size`, when given, on the same context), the results are device tensors.
   */
  mergeWavg(plan: TokenMergePlan, x: Tensor, size?: Tensor, out?: { x: Tensor; size: Tensor }): { x: Tensor; size: Tensor };
  mergeWavg(plan: TokenMergePlan, x: DeviceTensor, size?: DeviceTensor): { x: DeviceTensor; size: DeviceTensor };
  mergeWavg(plan: TokenMergePlan, x: Tensor | DeviceTensor, size?: Tensor | DeviceTensor, out?: { x: Tensor; size: Tensor }): { x: Tensor | DeviceTensor; size: Tensor | DeviceTensor } {
    return tm.mergeWavg(this.#backend, plan, x, size, out);
  }

  /** ToMe's merge_source: which original tokens each merged token holds, `[B, N - r, N0]` (one-hot columns). */
  mergeSource(plan: TokenMergePlan, source?: Tensor): Tensor {
    this.#backend; // throws DISPOSED after dispose(), like every other method
    return tm.mergeSource(plan, source);
  }

  /**
   * Merges one tensor with a registered method (mergekit's `merge_method` names: task_arithmetic,
   * ties, dare_ties, dare_linear, breadcrumbs, breadcrumbs_ties, della, della_linear, sce, linear,
   * slerp, nuslerp, multislerp, model_stock, karcher, nearswap, ram, ramplus_tl, arcee_fusion,
   * passthrough; and ours: consensus, metrics_weighted), streamed in
   * chunks through the same code as the file runner. See MergeTensorsOptions.
   */
  async mergeTensors(method: string, options: merging.MergeTensorsOptions): Promise<Tensor> {
    return merging.mergeTensors(this.#backend, method, options);
  }

  /** TIES' trim: keeps the top-`density` fraction of `x` by magnitude (convention 'mergekit' default: exactly ⌊d·n⌋ entries; or 'paper'). */
  async trimTopK(x: Tensor, options: { density: number; convention?: TrimConvention }, out?: Tensor): Promise<Tensor> {
    return merging.trimTopK(this.#backend, x, options, out);
  }

  /** TIES' sign election over task vectors: ±1 per entry (method 'sum' default or 'count'; zeroSign 'mergekit' default: a zero total elects +; or 'paper'). */
  async electSign(deltas: Tensor[], options?: { method?: 'sum' | 'count'; zeroSign?: ZeroSignRule; weights?: number[] }, out?: Tensor): Promise<Tensor> {
    return merging.electSign(this.#backend, deltas, options, out);
  }

  /**
   * TIES' disjoint merge of task vectors (merge 'mean' default, 'normalize', 'sum', 'max'; method
   * 'none' merges every entry; zeroSign as in electSign). 'mean' and mergekit's 'normalize' agree
   * without `weights`; with weights, mergekit's TIES is 'normalize'.
   */
  async disjointMerge(deltas: Tensor[], options?: { method?: 'sum' | 'count' | 'none'; merge?: DisjointMergeRule; zeroSign?: ZeroSignRule; weights?: number[] }, out?: Tensor): Promise<Tensor> {
    return merging.disjointMerge(this.#backend, deltas, options, out);
  }

  /**
   * Thin singular value decomposition: `a [m, n]` → `{ u [m, k], s (k values), vt [k, n] }`, or
   * batched `[B, m, n]` → `u [B, m, k]`, `s` (B·k), `vt [B, k, n]`; k defaults to min(m, n).
   * Singular values descending; each column of u has its largest-magnitude entry positive (the
   * first on ties), the row of vt flipped with it. method 'exact': Householder QR, then one-sided
   * Jacobi on R (never AᵀA); 'randomized': Halko–Martinsson–Tropp with `oversample` (10) and
   * `powerIters` (2), its test matrix from `seed` by our own generator; 'auto' (default):
   * randomized when k + oversample ≤ min(m, n)/4 and min(m, n) ≥ 128. See src/reference/svd.ts.
   */
  async svd(a: Tensor, options?: SvdOptions): Promise<SvdResult> {
    return svdFamily.svd(this.#backend, a, options);
  }

  /**
   * The best rank-r approximation as two factors, LoRA-style: `a [m, n]` → `{ a [m, r], b [r, n] }`
   * with a·b = U_r·S_r·V_rᵀ, √S split between them (a = U√S, b = √S·Vᵀ), plus the singular
   * values kept and `energy`, the share of ‖a‖²_F kept by ranks 1..j. Batched as svd. Takes
   * svd's method options.
   */
  async lowRank(a: Tensor, options: LowRankOptions): Promise<LowRankResult> {
    return svdFamily.lowRank(this.#backend, a, options);
  }

  /**
   * KV-cache clustering (Chelsea, "Efficient Long-Context LLM Inference via KV Cache Clustering",
   * 2025): per head of `keys [H, T, D]`, `values [H, T, Dv]`, the `sinkTokens` first and
   * `recentTokens` last tokens stay single slots; the middle is cut into chunks of `chunkSize`
   * and each chunk merged by rounds of bipartite soft matching on key cosine similarity down to
   * ceil(len · ratio) slots (keys and values as size-weighted means; sizes add). Every head gets
   * the same M slots, in ascending position of their representative token (a merge's destination).
   * `method` runs an eviction baseline at the same budget instead ('streaming', 'stride', 'scores').
   * Attend over the result with `attention(q, r.keys, r.values, { size: r.size })`.
   * `keys` and `values` may be device tensors of this context (`mk.upload`, `mk.wrap`: the cache
   * stays where it lives, is not copied in and not scanned for NaN). Given both as device tensors,
   * chunked soft matching returns the merged keys and values as device tensors too (attend over
   * them without a copy; dispose them); size, position and assignment are host tensors.
   */
  async clusterKV(keys: Tensor, values: Tensor, options: kv.ClusterKVOptions): Promise<kv.KvClusterResult>;
  async clusterKV(keys: DeviceTensor, values: DeviceTensor, options: kv.ClusterKVOptions): Promise<kv.KvClusterResult<Tensor | DeviceTensor>>;
  async clusterKV(keys: Tensor | DeviceTensor, values: Tensor | DeviceTensor, options: kv.ClusterKVOptions): Promise<kv.KvClusterResult<Tensor | DeviceTensor>>;
  async clusterKV(keys: Tensor | DeviceTensor, values: Tensor | DeviceTensor, options: kv.ClusterKVOptions): Promise<kv.KvClusterResult<Tensor | DeviceTensor>> {
    return kv.clusterKV(this.#backend, keys, values, options);
  }

  /**
   * Proportional attention softmax(q·kᵀ/√D + log size)·V: `q [Hq, Tq, D]` over `keys [Hkv, Tk, D]`,
   * `values [Hkv, Tk, Dv]` → `[Hq, Tq, Dv]`. Grouped-query when Hq is a multiple of Hkv (query head
   * h reads KV head floor(h·Hkv/Hq)). `size` (a compressed cache's sizes) adds log(size) to the
   * logits, so that a slot standing for n tokens weighs as n copies; without it, plain attention.
   * `causal` masks keys after each query (positions: `position`, `queryStart`). `keys` and
   * `values` may be device tensors (a cache resident in wasm memory or on the GPU).
   */
  async attention(q: Tensor, keys: Tensor | DeviceTensor, values: Tensor | DeviceTensor, options?: kv.AttentionOptions): Promise<Tensor> {
    return kv.attention(this.#backend, q, keys, values, options);
  }

  /**
   * Online KV-cache clustering for decoding (Chelsea's online mode): `append` keys [H, n, D] and
   * values [H, n, Dv] as they are produced; every chunk of `chunkSize` tokens is clustered on this
   * context's backend once it has aged past the recent window. `state()` is the cache to attend
   * over (with its size); it equals clusterKV's result when the middle length is a multiple of
   * chunkSize. Cost per appended token: O(chunkSize · D) amortised (one chunk per chunkSize tokens).
   */
  kvCompressor(options: KvCompressorOptions): KvCompressor {
    return new KvCompressor(() => this.#backend, options);
  }

  /**
   * MiniCache (Liu et al. 2024): merges one tensor of a KV cache (keys, or values) across two
   * adjacent layers, `a` (layer l − 1) and `b` (layer l), both [H, T, D]: each token keeps one
   * shared direction SLERP(â, b̂, t) (t = 0.6 by default) plus each layer's norm; the `retain`
   * fraction (default 0.05) of tokens whose two states differ most in angle stay unmerged.
   * Returns the directions, norms, the retained mask and both layers restored from the merge.
   */
  async miniCache(a: Tensor, b: Tensor, options?: kv.MiniCacheOptions): Promise<kv.MiniCacheResult> {
    return kv.miniCache(this.#backend, a, b, options);
  }

  /** Releases the GPU device (when the context created it), the buffers and the wasm memory. Idempotent. */
  dispose(): void {
    this.#impl?.dispose();
    this.#impl = undefined;
  }
}

/** cosineSimilarity's shapes: a [M, C] and b [N, C], or [B, M, C] and [B, N, C] → [batch, m, c, n]. */
function cosineShapes(sa: readonly number[], sb: readonly number[]): [number, number, number, number] {
  if (sa.length !== sb.length) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `b: expected rank ${sa.length} like a [${sa.join(', ')}], got [${sb.join(', ')}]`, 'b');
  }
  const batched = sa.length === 3;
  const [batch, m, c] = batched ? sa as [number, number, number] : [1, ...sa as [number, number]];
  const [batchB, n, cb] = batched ? sb as [number, number, number] : [1, ...sb as [number, number]];
  if (cb !== c) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `b: expected feature size C = ${c} (the last dimension of a [${sa.join(', ')}]), got ${cb} in [${sb.join(', ')}]`, 'b');
  }
  if (batchB !== batch) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `b: expected batch size ${batch} like a [${sa.join(', ')}], got ${batchB} in [${sb.join(', ')}]`, 'b');
  }
  return [batch, m, c, n];
}

async function compileWasm(source: WebAssembly.Module | BufferSource | undefined, fallback: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source !== undefined) {
    if (!(source instanceof ArrayBuffer) && !ArrayBuffer.isView(source)) {
      throw new MergeKernelsError('INVALID_OPTION', `wasm: expected a WebAssembly.Module, ArrayBuffer or typed array, got ${describe(source)}`, 'wasm');
    }
    return WebAssembly.compile(source);
  }
  return fallback();
}

async function createWasm(opts: InitOptions, source: WasmSource): Promise<Backend | string> {
  if (typeof WebAssembly !== 'object') return 'WebAssembly is not available in this runtime';
  // A minimal module using one v128 instruction: SIMD support is required by every kernel.
  const simdProbe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  if (!WebAssembly.validate(simdProbe)) return 'this runtime\'s WebAssembly has no SIMD (fixed-width v128) support';
  try {
    const module = await compileWasm(opts.wasm, source);
    return new WasmBackend(await WasmRuntime.create(module));
  } catch (e) {
    if (e instanceof MergeKernelsError) throw e;
    const why = (e as Error)?.message ?? String(e);
    // Only the runtime may make wasm unavailable (a CSP without 'wasm-unsafe-eval', an embedder
    // that forbids code generation): then the probe does not compile either. When the probe
    // compiles, our module is at fault (a broken build, wrong bytes) and that is an error, never
    // a silent fallback to a slower backend.
    try {
      await WebAssembly.compile(simdProbe);
    } catch {
      return `this runtime refuses to compile WebAssembly (${why})`;
    }
    const given = opts.wasm !== undefined;
    throw new MergeKernelsError('WASM_BROKEN', `${given ? 'the wasm option' : 'the bundled kernels.wasm'} failed to compile or instantiate where WebAssembly works: ${why}${given ? '' : '; this is a bug in merge-kernels (a broken build)'}`, given ? 'wasm' : undefined, { cause: e });
  }
}

async function createWebGpu(opts: InitOptions, allowSoftware: boolean): Promise<Backend | string> {
  if (opts.device) return new WebGpuBackend(new GpuRuntime(opts.device, false, [], opts.gpuTiming === true));
  const gpu = opts.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const got = await acquireDevice(gpu, 'merge-kernels', allowSoftware);
  if ('reason' in got) return got.reason;
  return new WebGpuBackend(new GpuRuntime(got.device, got.owned, got.keepAlive, opts.gpuTiming === true));
}

/** Builds `init` for an entry point that knows how to obtain the wasm module. */
export function createInit(wasmSource: WasmSource) {
  /**
   * Creates a context. Calling it again with the same options is safe and gives an equivalent,
   * independent context (each owns its own memory and, unless one was passed, its own device).
   */
  return async function init(options: InitOptions = {}): Promise<MergeKernels> {
    checkOptions('options', options, INIT_OPTIONS, true);
    const backend = oneOf('backend', options.backend, BACKENDS, 'auto');
    boolean('gpuTiming', options.gpuTiming);
    if (backend === 'js') return new MergeKernels(new JsBackend(), []);
    const reasons: string[] = [];
    if (backend === 'webgpu' || backend === 'auto') {
      // 'auto' passes over software adapters (slower than wasm); asked for by name, any adapter goes.
      const got = await createWebGpu(options, backend === 'webgpu');
      if (typeof got !== 'string') return new MergeKernels(got, reasons);
      if (backend === 'webgpu') throw new MergeKernelsError('BACKEND_UNAVAILABLE', `backend 'webgpu' is unavailable: ${got}`, 'backend');
      reasons.push(`webgpu: ${got}`);
    }
    const got = await createWasm(options, wasmSource);
    if (typeof got !== 'string') return new MergeKernels(got, reasons);
    if (backend === 'wasm') throw new MergeKernelsError('BACKEND_UNAVAILABLE', `backend 'wasm' is unavailable: ${got}`, 'backend');
    reasons.push(`wasm: ${got}`);
    return new MergeKernels(new JsBackend(), reasons);
  };
}
