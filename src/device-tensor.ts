// Tensors that stay where the work is (Foundation v2, issue 9): a GPUBuffer on webgpu, a block of
// wasm memory on wasm, an array on js. A kernel given device tensors returns device tensors, so a
// chain of calls does not move data to the host until `read()`.
import { MergeKernelsError } from './errors.ts';
import type { Tensor } from './tensor.ts';

/** Where a device tensor's values live; which kind depends on the backend that made it. */
export type DeviceStorage =
  | { kind: 'host'; data: Float32Array }
  | { kind: 'wasm'; ptr: number; length: number }
  | { kind: 'gpu'; buffer: GPUBuffer; offset: number; bytes: number; owned: boolean };

/** What a backend does with device storage (implemented by each backend in src/backends.ts). */
export interface DeviceStore {
  /** Copies host values into new storage. */
  upload(data: Float32Array): DeviceStorage;
  /** Copies storage to a new host array (webgpu: one readback). */
  read(s: DeviceStorage, length: number): Promise<Float32Array>;
  /** Frees storage this context created (an adopted buffer stays its owner's). */
  free(s: DeviceStorage): void;
  /** False once the context is disposed: its device tensors are gone with it. */
  readonly alive: boolean;
}

/**
 * A float32 tensor resident on one context's backend. Made by `mk.upload`, `mk.wrap` and by
 * kernels given device tensors; valid until `dispose()` or until its context is disposed.
 */
export class DeviceTensor {
  readonly shape: readonly number[];
  #owner: object;
  #store: DeviceStore;
  #storage: DeviceStorage | undefined;

  /** @internal made by a context */
  constructor(owner: object, store: DeviceStore, storage: DeviceStorage, shape: readonly number[]) {
    this.#owner = owner;
    this.#store = store;
    this.#storage = storage;
    this.shape = Object.freeze([...shape]);
  }

  /** Number of values. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return this.#storage === undefined || !this.#store.alive;
  }

  /** Copies the values to the host. */
  async read(): Promise<Tensor> {
    const s = this.#live('read');
    return { data: await this.#store.read(s, this.size), shape: [...this.shape] };
  }

  /** Frees the storage (an adopted GPUBuffer is left to its owner). Idempotent. */
  dispose(): void {
    if (this.#storage && this.#store.alive) this.#store.free(this.#storage);
    this.#storage = undefined;
  }

  #live(what: string): DeviceStorage {
    if (!this.#store.alive) throw new MergeKernelsError('DISPOSED', `${what}: the context of this device tensor was disposed`);
    if (!this.#storage) throw new MergeKernelsError('DISPOSED', `${what}: this device tensor was disposed`);
    return this.#storage;
  }

  /** @internal the storage, for a kernel of the context `owner`; throws for another context's tensor. */
  static storageOf(t: DeviceTensor, owner: object, name: string): DeviceStorage {
    if (t.#owner !== owner) {
      throw new MergeKernelsError('WRONG_DEVICE', `${name}: this device tensor belongs to another context; read() it and upload it to this one`, name);
    }
    return t.#live(name);
  }
}
