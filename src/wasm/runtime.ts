// Owns one instance of the kernels' wasm module and its memory. The memory is imported (created
// here, not by the module) so that a later threaded backend can hand the same shared memory to
// its workers. Arrays live in a per-call arena above the module's static data.
import { MergeKernelsError } from '../errors.ts';

/** The raw exports of assembly/index.ts (pointers are byte offsets into memory). */
export interface KernelExports {
  heapBase(): number;
  l2NormalizeRows(x: number, rows: number, cols: number): void;
  rowDots(a: number, b: number, out: number, m: number, n: number, c: number): void;
  cosineSimilarity(a: number, b: number, out: number, batch: number, m: number, n: number, c: number): void;
  bestMatch(a: number, b: number, scratch: number, bestScore: number, bestIdx: number, batch: number, nA: number, nB: number, c: number, maskFirstA: number, maskFirstB: number): void;
  absHistogram(x: number, n: number, hist: number, level: number, prefix: number, span: number): void;
  subtractInPlace(x: number, base: number, n: number): void;
  tiesMerge(models: number, T: number, weights: number, thr: number, budget: number, base: number, out: number, n: number,
    vote: number, merge: number, output: number, zeroSign: number, lambda: number, scratch: number, counts: number): void;
  dropAndRescale(x: number, n: number, offLo: number, offHi: number, key: number, cut: number, scale: number, out: number, sums: number): void;
  findNonFinite(x: number, n: number): number;
  bf16ToF32(src: number, dst: number, n: number): number;
  simdFlopProbe(iters: number, seed: number): number;
  copyBytes(dst: number, src: number, bytes: number): void;
  streamProbe(a: number, b: number, c: number, out: number, n: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 ceiling

export class WasmRuntime {
  readonly exports: KernelExports;
  readonly memory: WebAssembly.Memory;
  private readonly base: number;
  private top: number;

  private constructor(instance: WebAssembly.Instance, memory: WebAssembly.Memory) {
    this.exports = instance.exports as unknown as KernelExports;
    this.memory = memory;
    this.base = this.exports.heapBase();
    this.top = this.base;
  }

  static async create(module: WebAssembly.Module): Promise<WasmRuntime> {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES });
    const instance = await WebAssembly.instantiate(module, {
      env: {
        memory,
        abort(msg: number, file: number, line: number, col: number) {
          throw new MergeKernelsError('WASM_ABORT', `wasm kernel aborted at ${line}:${col} (message ptr ${msg}, file ptr ${file}); this is a bug in merge-kernels`);
        },
      },
    });
    return new WasmRuntime(instance, memory);
  }

  /** Frees every allocation (start of each call: kernels do not keep arrays between calls). */
  reset(): void {
    this.top = this.base;
  }

  /** Reserves `bytes` (16-byte aligned), growing memory as needed; returns the byte offset. */
  alloc(bytes: number, what: string): number {
    const ptr = this.top;
    const end = ptr + Math.ceil(bytes / 16) * 16;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        if (have / PAGE + pages > MAX_PAGES) throw new RangeError('beyond 4 GiB');
        this.memory.grow(pages);
      } catch (cause) {
        throw new MergeKernelsError('OUT_OF_MEMORY', `wasm backend: cannot allocate ${bytes} bytes for ${what} (needs ${end} bytes of wasm memory; the wasm32 limit is 4 GiB and the runtime may allow less)`, undefined, { cause });
      }
    }
    this.top = end;
    return ptr;
  }

  /** Allocates room for `src` and copies it in. */
  put(src: Float32Array, what: string): number {
    const ptr = this.alloc(src.byteLength, what);
    this.f32(ptr, src.length).set(src);
    return ptr;
  }

  /** A view of `length` floats at `ptr` (recreate after any alloc: growth detaches old views). */
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  /** Copies `length` floats at `ptr` out of wasm memory. */
  take(ptr: number, length: number): Float32Array {
    return this.f32(ptr, length).slice();
  }

  /** Copies `length` int32 values at `ptr` out of wasm memory. */
  takeI32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length).slice();
  }

  dispose(): void {
    this.top = this.base;
  }
}

/** Decodes the inlined base64 wasm bytes (atob exists in every runtime we support). */
export function decodeBase64(text: string): Uint8Array {
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}
