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
  bestMatchEvenOdd(metric: number, a: number, b: number, scratch: number, bestScore: number, bestIdx: number, batch: number, tokens: number, c: number, maskFirstA: number, maskFirstB: number): void;
  absHistogram(x: number, n: number, hist: number, level: number, prefix: number, span: number): void;
  subtractInPlace(x: number, base: number, n: number): void;
  tiesMerge(models: number, T: number, weights: number, thr: number, budget: number, base: number, out: number, n: number,
    vote: number, merge: number, output: number, zeroSign: number, lambda: number, scratch: number, counts: number): void;
  dropAndRescale(x: number, n: number, offLo: number, offHi: number, key: number, cut: number, scale: number, out: number, sums: number): void;
  findNonFinite(x: number, n: number): number;
  bf16ToF32(src: number, dst: number, n: number): number;
  kvCluster(keys: number, values: number, size: number, heads: number, tokens: number, d: number, dv: number,
    sinks: number, recent: number, chunks: number, nChunks: number, slots: number,
    outKeys: number, outValues: number, outSize: number, outPosition: number, assignment: number, scratch: number, maxLen: number): void;
  kvAttention(q: number, keys: number, values: number, logSize: number, out: number, logits: number,
    queryHeads: number, kvHeads: number, queries: number, tk: number, d: number, dv: number,
    causal: number, keyPosition: number, queryStart: number): void;
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
  /** End of the kept blocks (device tensors); each call's arena starts here. */
  private heapTop: number;
  private top: number;
  /** Freed kept blocks, by address: reused first-fit, merged with neighbours. */
  private holes: Array<{ ptr: number; bytes: number }> = [];

  private constructor(instance: WebAssembly.Instance, memory: WebAssembly.Memory) {
    this.exports = instance.exports as unknown as KernelExports;
    this.memory = memory;
    this.base = this.exports.heapBase();
    this.heapTop = this.base;
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

  /** Frees the arena (start of each call: kernels keep nothing there between calls). */
  reset(): void {
    this.top = this.heapTop;
  }

  /**
   * Reserves `bytes` that outlive calls (a device tensor's data) until `release`. Call it before
   * `reset()` in a wrapper: the arena starts above the kept blocks.
   */
  keep(bytes: number, what: string): number {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const i = this.holes.findIndex((h) => h.bytes >= size);
    if (i >= 0) {
      const hole = this.holes[i]!;
      const ptr = hole.ptr;
      if (hole.bytes === size) this.holes.splice(i, 1);
      else { hole.ptr += size; hole.bytes -= size; }
      return ptr;
    }
    const ptr = this.heapTop;
    this.ensure(ptr + size, bytes, what);
    this.heapTop = ptr + size;
    this.top = Math.max(this.top, this.heapTop);
    return ptr;
  }

  /** Returns a kept block; the top of the kept region shrinks when the last block goes. */
  release(ptr: number, bytes: number): void {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    this.holes.push({ ptr, bytes: size });
    this.holes.sort((a, b) => a.ptr - b.ptr);
    const merged: Array<{ ptr: number; bytes: number }> = [];
    for (const h of this.holes) {
      const last = merged[merged.length - 1];
      if (last && last.ptr + last.bytes === h.ptr) last.bytes += h.bytes;
      else merged.push({ ...h });
    }
    const last = merged[merged.length - 1];
    if (last && last.ptr + last.bytes === this.heapTop) {
      this.heapTop = last.ptr;
      merged.pop();
    }
    this.holes = merged;
  }

  /** Reserves `bytes` (16-byte aligned) in this call's arena, growing memory as needed; returns the byte offset. */
  alloc(bytes: number, what: string): number {
    const ptr = this.top;
    const end = ptr + Math.ceil(bytes / 16) * 16;
    this.ensure(end, bytes, what);
    this.top = end;
    return ptr;
  }

  private ensure(end: number, bytes: number, what: string): void {
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
    this.heapTop = this.base;
    this.top = this.base;
    this.holes = [];
  }
}

/** Decodes the inlined base64 wasm bytes (atob exists in every runtime we support). */
export function decodeBase64(text: string): Uint8Array {
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}
