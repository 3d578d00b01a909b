// Owns (or borrows) one GPUDevice: acquisition, limits, error scopes, buffer helpers, readback.
// Pipelines are built once per runtime by each kernel's module and cached in `pipelines`.
import { MergeKernelsError } from '../errors.ts';

/** Optional features requested when the adapter has them. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups' as GPUFeatureName, 'timestamp-query'];

/** Timestamps per submission when timing (a begin and an end per compute pass); passes beyond it go untimed. */
const MAX_TIMESTAMPS = 256;

/** Bytes of idle buffers the pool keeps for reuse; beyond it, returned buffers are destroyed. */
const POOL_BYTES = 256 * 1024 * 1024;

/** What a pooled buffer is for: its usage flags. */
export type PoolKind = 'storage' | 'uniform' | 'readback';
// A function: GPUBufferUsage may be defined only after this module loads (Node's "webgpu" globals).
const poolUsage = (kind: PoolKind): number => (kind === 'storage' ? GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST
  : kind === 'uniform' ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);

/** Why WebGPU is unavailable, or the device it gave. */
export type DeviceResult = { device: GPUDevice; owned: boolean; keepAlive: unknown[] } | { reason: string };

/**
 * Gets a device from `gpu` (navigator.gpu, or the npm `webgpu` package's create([]) in Node).
 * A null adapter and a thrown requestAdapter both mean "no WebGPU" (with the reason).
 */
/**
 * Names a software adapter (the browser's fallback adapter, SwiftShader, lavapipe/llvmpipe), or
 * undefined for hardware. On the same CPU such an adapter is slower than wasm SIMD, so 'auto'
 * does not pick it.
 */
export function softwareAdapter(adapter: GPUAdapter): string | undefined {
  const info = adapter.info as (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | undefined;
  const fallback = info?.isFallbackAdapter === true || (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const words = `${info?.vendor ?? ''} ${info?.architecture ?? ''} ${info?.device ?? ''} ${info?.description ?? ''}`;
  const name = words.match(/swiftshader|llvmpipe|lavapipe|software/i)?.[0];
  if (!fallback && !name) return undefined;
  return (info?.description || [info?.vendor, info?.architecture].filter(Boolean).join(' ') || name || 'a fallback adapter').trim();
}

export async function acquireDevice(gpu: GPU | undefined, label: string, allowSoftware = true): Promise<DeviceResult> {
  if (!gpu) {
    const hint = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string'
      ? ' (in Node, pass { gpu: create([]) } from the npm package "webgpu")'
      : '';
    return { reason: `no WebGPU implementation: navigator.gpu is undefined and no "gpu" option was given${hint}` };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { reason: `requestAdapter() threw: ${(e as Error)?.message ?? e}` };
  }
  if (!adapter) return { reason: 'requestAdapter() returned null: no WebGPU adapter (no GPU or Vulkan/Metal/D3D12 driver was found)' };
  const software = allowSoftware ? undefined : softwareAdapter(adapter);
  if (software) return { reason: `the adapter is a software one (${software}), slower than wasm SIMD on the same CPU; pass backend: 'webgpu' to use it anyway` };
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter!.features.has(f));
  const al = adapter.limits;
  // Ask for the adapter's full storage sizes: the defaults (128 MiB bindings) would force
  // splitting far earlier than the hardware needs.
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
  };
  try {
    const device = await adapter.requestDevice({ label, requiredFeatures, requiredLimits });
    return { device, owned: true, keepAlive: [gpu, adapter] };
  } catch (e) {
    return { reason: `requestDevice() failed: ${(e as Error)?.message ?? e}` };
  }
}

/** What a context has asked of the GPU so far: instrumentation for tests and benchmarks. */
export interface GpuCounters {
  /** queue.submit calls. */
  submits: number;
  /** Buffers mapped for reading (results copied back to the host). */
  readbacks: number;
  /** Storage buffers written from host data (at creation or by writeBuffer), and their bytes. */
  uploads: number;
  uploadBytes: number;
}

/** A kernel's `struct Params`: [field, type] in order (generated into src/gen/wgsl.ts). */
export type ParamsLayout = readonly (readonly [string, 'u32' | 'i32' | 'f32'])[];
/** The values of a Params layout by name; `_`-prefixed padding is left out (0). */
export type ParamValues<L extends ParamsLayout> = { [F in L[number] as F[0] extends `_${string}` ? never : F[0]]: number };

/** The words of a kernel's uniform block, by field name (see GpuRuntime.params). */
export function packParams<L extends ParamsLayout>(layout: L, values: ParamValues<L>): Uint32Array {
  const words = new Uint32Array(Math.max(4, Math.ceil(layout.length / 4) * 4));
  const f32 = new Float32Array(words.buffer), i32 = new Int32Array(words.buffer);
  const given = values as Record<string, number>;
  layout.forEach(([name, type], k) => {
    const v = given[name] ?? 0;
    if (type === 'f32') f32[k] = v;
    else if (type === 'i32') i32[k] = v;
    else words[k] = v;
  });
  return words;
}

/** A compute pipeline and its bind-group layout (GpuRuntime.kernel). */
export interface GpuKernel {
  name: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

export class GpuRuntime {
  readonly device: GPUDevice;
  readonly limits: GPUSupportedLimits;
  /** Per-kernel pipeline caches, built on first use (shapes travel in uniforms, so one pipeline serves all shapes). */
  readonly pipelines = new Map<string, unknown>();
  private readonly owned: boolean;
  private lostReason: string | undefined;
  private disposed = false;
  // dawn.node (npm "webgpu") tears its instance down when the GPU object is collected, even
  // while a device made from it is in use: hold the GPU and adapter as long as the device.
  private keepAlive: unknown[];
  /**
   * GPU time of every compute pass submitted so far, in nanoseconds, from timestamp queries
   * (only when timing was asked for and the device has 'timestamp-query'; else undefined).
   */
  gpuNs: number | undefined;
  private timestamps: { set: GPUQuerySet; resolve: GPUBuffer; used: number } | undefined;
  /** Counts of submits, readbacks and uploads (uniform parameter blocks are not counted). */
  readonly counters: GpuCounters = { submits: 0, readbacks: 0, uploads: 0, uploadBytes: 0 };
  /** The error scopes of submitNow calls still being resolved, and the first error they found. */
  private pending: Promise<unknown> = Promise.resolve();
  private deferredError: string | undefined;
  /** Passes recorded by `record` and not yet submitted, and the buffers to free once they are. */
  private pendingEncoder: GPUCommandEncoder | undefined;
  private pendingTemps: GPUBuffer[] = [];
  /** Idle pooled buffers by kind and size class, and their total bytes. */
  readonly #pool = new Map<string, GPUBuffer[]>();
  #poolBytes = 0;

  constructor(device: GPUDevice, owned: boolean, keepAlive: unknown[] = [], timing = false) {
    this.device = device;
    this.owned = owned;
    this.keepAlive = keepAlive;
    this.limits = device.limits;
    if (timing && device.features.has('timestamp-query')) {
      this.gpuNs = 0;
      this.timestamps = {
        set: device.createQuerySet({ label: 'merge-kernels:timestamps', type: 'timestamp', count: MAX_TIMESTAMPS }),
        resolve: device.createBuffer({ label: 'merge-kernels:timestamps:resolve', size: MAX_TIMESTAMPS * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        used: 0,
      };
    }
    device.lost.then((info) => {
      if (!this.disposed) this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  /** Throws DEVICE_LOST once the device is gone: the context cannot recover it, init() again. */
  check(): void {
    if (this.deferredError !== undefined) {
      const why = this.deferredError;
      this.deferredError = undefined;
      throw new MergeKernelsError('GPU_ERROR', `webgpu backend: an earlier call's commands failed: ${why}`);
    }
    if (this.lostReason !== undefined) {
      throw new MergeKernelsError('DEVICE_LOST', `webgpu backend: the GPU device was lost (${this.lostReason}); create a new context with init()`);
    }
  }

  /** Largest byte size one storage binding may have on this device. */
  get maxBinding(): number {
    return Math.min(this.limits.maxStorageBufferBindingSize, this.limits.maxBufferSize);
  }

  /**
   * A storage buffer of `bytes` bytes, initialised with `data` when given. Initial data goes in
   * through mappedAtCreation rather than queue.writeBuffer: one copy instead of two, and on an
   * H100 under Node's dawn.node writeBuffer moved only ~1.4 GB/s (see bench/gpu.mjs).
   */
  storage(label: string, bytes: number, data?: Float32Array | Uint32Array): GPUBuffer {
    const withData = data !== undefined && data.byteLength > 0;
    const buffer = this.device.createBuffer({
      label: `merge-kernels:${label}`,
      size: Math.max(16, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      mappedAtCreation: withData,
    });
    if (withData) {
      this.counters.uploads++;
      this.counters.uploadBytes += data.byteLength;
      new Uint8Array(buffer.getMappedRange(0, Math.ceil(data.byteLength / 4) * 4)).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      buffer.unmap();
    }
    return buffer;
  }

  /** A storage buffer holding `parts` back to back (each a whole number of floats), written at creation like `storage`. */
  storageOf(label: string, parts: readonly Float32Array[]): GPUBuffer {
    const bytes = parts.reduce((sum, p) => sum + p.byteLength, 0);
    const buffer = this.device.createBuffer({
      label: `merge-kernels:${label}`,
      size: Math.max(16, bytes),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    this.counters.uploads++;
    this.counters.uploadBytes += bytes;
    const mapped = new Float32Array(buffer.getMappedRange(0, Math.max(16, bytes)));
    let at = 0;
    for (const p of parts) { mapped.set(p, at); at += p.length; }
    buffer.unmap();
    return buffer;
  }

  /** The size class of a pooled buffer of at least `bytes`: a power of two from 256 B, or whole MiB above 64 MiB. */
  #sizeClass(bytes: number): number {
    if (bytes <= 64 * 1024 * 1024) return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
    const mib = 1024 * 1024;
    return Math.min(Math.ceil(bytes / mib) * mib, Math.max(this.limits.maxBufferSize, Math.ceil(bytes / 4) * 4));
  }

  /**
   * A buffer of at least `bytes` bytes from the pool (contents undefined), made when none is idle:
   * calls reuse their scratch (outputs, histograms, parameters, readback staging) instead of
   * creating and destroying buffers. Give it back with `give` once the call's work is submitted:
   * the queue orders later writes after it.
   */
  take(kind: PoolKind, bytes: number): GPUBuffer {
    const size = this.#sizeClass(bytes);
    const idle = this.#pool.get(`${kind}:${size}`)?.pop();
    if (idle) {
      this.#poolBytes -= size;
      return idle;
    }
    return this.device.createBuffer({ label: `merge-kernels:pool:${kind}:${size}`, size, usage: poolUsage(kind) });
  }

  /** Returns pooled buffers (from `take`) for reuse; kept while the idle total is under POOL_BYTES, else destroyed. */
  give(...buffers: GPUBuffer[]): void {
    for (const b of buffers) {
      const kind = b.usage & GPUBufferUsage.MAP_READ ? 'readback' : b.usage & GPUBufferUsage.UNIFORM ? 'uniform' : 'storage';
      if (this.disposed || this.#poolBytes + b.size > POOL_BYTES || b.size !== this.#sizeClass(b.size)) { b.destroy(); continue; }
      const key = `${kind}:${b.size}`;
      let list = this.#pool.get(key);
      if (!list) this.#pool.set(key, (list = []));
      list.push(b);
      this.#poolBytes += b.size;
    }
  }

  /** A pooled storage buffer holding `data` (written by queue.writeBuffer; counted as an upload). For small host data: large inputs go through `storage`. */
  storageFrom(data: Uint32Array | Float32Array): GPUBuffer {
    const buffer = this.take('storage', data.byteLength);
    this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    this.counters.uploads++;
    this.counters.uploadBytes += data.byteLength;
    return buffer;
  }

  /** A pooled uniform buffer holding `words` (parameter blocks are not counted as uploads). */
  uniformFrom(words: Uint32Array): GPUBuffer {
    const buffer = this.take('uniform', words.byteLength);
    this.device.queue.writeBuffer(buffer, 0, words.buffer, words.byteOffset, words.byteLength);
    return buffer;
  }

  uniform(label: string, words: Uint32Array): GPUBuffer {
    const buffer = this.device.createBuffer({
      label: `merge-kernels:${label}`,
      size: Math.max(16, Math.ceil(words.byteLength / 16) * 16),
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.queue.writeBuffer(buffer, 0, words.buffer, words.byteOffset, words.byteLength);
    return buffer;
  }

  /**
   * The uniform block of a kernel's `struct Params`, packed by field name from its layout (generated
   * from the WGSL by scripts/build.mjs, e.g. `mergeGroupsParams`): every field must be given,
   * except `_`-prefixed padding, which is 0. A field added to the WGSL is a type error here.
   */
  params<L extends ParamsLayout>(label: string, layout: L, values: ParamValues<L>): GPUBuffer {
    return this.uniform(label, packParams(layout, values));
  }

  /** Begins a compute pass; when timing, its begin and end are timestamped. */
  computePass(encoder: GPUCommandEncoder, label: string): GPUComputePassEncoder {
    const ts = this.timestamps;
    if (!ts || ts.used + 2 > MAX_TIMESTAMPS) return encoder.beginComputePass({ label: `merge-kernels:${label}:pass` });
    const at = ts.used;
    ts.used += 2;
    return encoder.beginComputePass({ label: `merge-kernels:${label}:pass`, timestampWrites: { querySet: ts.set, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 } });
  }

  /**
   * Runs `record` inside validation and out-of-memory error scopes, submits, and reads back
   * `bytes` bytes of `result` into a new Float32Array.
   */
  async submitAndRead(label: string, record: (encoder: GPUCommandEncoder) => void, result: GPUBuffer, bytes: number, resultOffset = 0): Promise<Float32Array> {
    await this.pending; // errors of earlier submitNow calls first
    this.check();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const staging = this.take('readback', Math.max(16, bytes));
    const ts = this.timestamps;
    let timing: GPUBuffer | undefined;
    const temps = this.takePendingTemps();
    try {
      let recordError: unknown;
      try {
        const encoder = this.encoder(label);
        if (ts) ts.used = 0;
        record(encoder);
        if (bytes > 0) encoder.copyBufferToBuffer(result, resultOffset, staging, 0, bytes);
        if (ts && ts.used > 0) {
          timing = device.createBuffer({ label: `merge-kernels:${label}:timestamps`, size: ts.used * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
          encoder.resolveQuerySet(ts.set, 0, ts.used, ts.resolve, 0);
          encoder.copyBufferToBuffer(ts.resolve, 0, timing, 0, ts.used * 8);
        }
        device.queue.submit([encoder.finish()]);
        this.counters.submits++;
      } catch (e) {
        recordError = e;
      }
      // Pop both scopes whatever happened, so a failure never leaves them pushed.
      const validation = await device.popErrorScope();
      const oom = await device.popErrorScope();
      if (recordError) throw recordError;
      const err = validation ?? oom;
      if (err) throw new MergeKernelsError('GPU_ERROR', `webgpu backend: ${label} failed: ${err.message}`);
      if (timing) {
        await timing.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(timing.getMappedRange());
        for (let q = 0; q + 1 < t.length; q += 2) if (t[q + 1]! > t[q]!) this.gpuNs! += Number(t[q + 1]! - t[q]!);
        timing.unmap();
      }
      if (bytes === 0) return new Float32Array(0);
      this.counters.readbacks++;
      try {
        await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      } catch (cause) {
        this.check();
        throw new MergeKernelsError('GPU_ERROR', `webgpu backend: ${label}: reading the result back failed`, undefined, { cause });
      }
      const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      return out;
    } finally {
      // A staging buffer left mapped or pending (a failed read) is not reused.
      if (staging.mapState === 'unmapped') this.give(staging);
      else staging.destroy();
      timing?.destroy();
      for (const b of temps) b.destroy();
    }
  }

  /**
   * A kernel's pipeline and bind-group layout, built once per device (one way for every family:
   * `bindings` lists each binding's buffer type, in binding order; the entry point is `main`
   * unless given). `name` is the cache key: one name, one pipeline.
   */
  kernel(name: string, code: string, bindings: readonly GPUBufferBindingType[], options: { entryPoint?: string; constants?: Record<string, number> } = {}): GpuKernel {
    const key = `kernel:${name}`;
    const cached = this.pipelines.get(key) as GpuKernel | undefined;
    if (cached) return cached;
    const layout = this.device.createBindGroupLayout({
      label: `merge-kernels:${name}:layout`,
      entries: bindings.map((type, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } })),
    });
    const pipeline = this.device.createComputePipeline({
      label: `merge-kernels:${name}:pipeline`,
      layout: this.device.createPipelineLayout({ label: `merge-kernels:${name}:pipelineLayout`, bindGroupLayouts: [layout] }),
      compute: { module: this.device.createShaderModule({ label: `merge-kernels:${name}`, code }), entryPoint: options.entryPoint ?? 'main', constants: options.constants },
    });
    const k = { name, pipeline, layout };
    this.pipelines.set(key, k);
    return k;
  }

  /** A 2-D grid of `groups` workgroups within maxComputeWorkgroupsPerDimension: [x, y]. */
  grid(groups: number): [number, number] {
    const gx = Math.max(1, Math.min(groups, this.limits.maxComputeWorkgroupsPerDimension));
    return [gx, Math.max(1, Math.ceil(groups / gx))];
  }

  /** Records one dispatch of `k` over a [gx, gy] grid, binding `buffers` in order. */
  dispatch(pass: GPUComputePassEncoder, k: GpuKernel, buffers: ReadonlyArray<GPUBuffer | { buffer: GPUBuffer; offset?: number; size: number }>, [gx, gy]: [number, number]): void {
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, this.device.createBindGroup({
      label: `merge-kernels:${k.name}:bindGroup`,
      layout: k.layout,
      entries: buffers.map((b, binding) => ({ binding, resource: 'buffer' in b ? { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } : { buffer: b } })),
    }));
    pass.dispatchWorkgroups(gx, gy);
  }

  /**
   * Records one compute pass without submitting it: the next call that submits (any kernel, or a
   * read) sends it in the same command buffer, so a chain of calls on device tensors costs one
   * submit. The buffers `fn` returns are freed after that submit. Errors surface from the submitting call.
   */
  record(label: string, fn: (pass: GPUComputePassEncoder) => readonly GPUBuffer[]): void {
    this.check();
    this.pendingEncoder ??= this.device.createCommandEncoder({ label: `merge-kernels:${label}` });
    const pass = this.pendingEncoder.beginComputePass({ label: `merge-kernels:${label}:pass` });
    const temps = fn(pass);
    pass.end();
    this.pendingTemps.push(...temps);
  }

  /** The encoder to record a submission into: the one holding recorded passes, if any, else a new one. */
  private encoder(label: string): GPUCommandEncoder {
    const pending = this.pendingEncoder;
    this.pendingEncoder = undefined;
    return pending ?? this.device.createCommandEncoder({ label: `merge-kernels:${label}` });
  }

  private takePendingTemps(): GPUBuffer[] {
    const temps = this.pendingTemps;
    this.pendingTemps = [];
    return temps;
  }

  /**
   * Records one compute pass and submits it without waiting: for calls that return device tensors
   * synchronously. A validation or out-of-memory error surfaces as GPU_ERROR from the context's
   * next call (check()) or read, since it is only known once the GPU has seen the commands.
   */
  submitNow(label: string, record: (pass: GPUComputePassEncoder) => void): void {
    this.check();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let recordError: unknown;
    const temps = this.takePendingTemps();
    try {
      const encoder = this.encoder(label);
      const pass = encoder.beginComputePass({ label: `merge-kernels:${label}:pass` });
      record(pass);
      pass.end();
      device.queue.submit([encoder.finish()]);
      this.counters.submits++;
    } catch (e) {
      recordError = e;
    } finally {
      for (const b of temps) b.destroy();
    }
    const validation = device.popErrorScope(), oom = device.popErrorScope();
    this.pending = Promise.all([validation, oom, this.pending]).then(([v, o]) => {
      const err = v ?? o;
      if (err && this.deferredError === undefined) this.deferredError = `${label} failed: ${err.message}`;
    });
    if (recordError) throw recordError;
  }

  /** Records and submits without reading anything back (results stay on the device); errors as submitAndRead. */
  async submit(label: string, record: (encoder: GPUCommandEncoder) => void): Promise<void> {
    await this.submitAndRead(label, record, undefined as unknown as GPUBuffer, 0);
  }

  /** Reads `bytes` of `buffer` from `offset` back to the host (one readback). */
  read(label: string, buffer: GPUBuffer, offset: number, bytes: number): Promise<Float32Array> {
    return this.submitAndRead(`${label}:read`, () => {}, buffer, bytes, offset);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    this.disposed = true;
    this.pipelines.clear();
    for (const list of this.#pool.values()) for (const b of list) b.destroy();
    this.#pool.clear();
    this.#poolBytes = 0;
    this.timestamps?.set.destroy();
    this.timestamps?.resolve.destroy();
    if (this.owned) this.device.destroy();
    this.keepAlive = [];
  }
}
