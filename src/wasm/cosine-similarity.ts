import type { WasmRuntime } from './runtime.ts';

/** Thin wrapper over assembly/cosine-similarity.ts: copy in, run, copy out. */
export function cosineSimilarity(
  rt: WasmRuntime, a: Float32Array, b: Float32Array, batch: number, m: number, n: number, c: number, out?: Float32Array,
): Float32Array {
  rt.reset();
  const pa = rt.put(a, 'a');
  const pb = rt.put(b, 'b');
  const po = rt.alloc(batch * m * n * 4, 'the similarity matrix');
  rt.exports.cosineSimilarity(pa, pb, po, batch, m, n, c);
  if (!out) return rt.take(po, batch * m * n);
  out.set(rt.f32(po, batch * m * n));
  return out;
}

/**
 * Inputs already in wasm memory (device tensors), the result written at `out` (kept memory).
 * The kernel normalises its inputs in place, so they are copied into the arena first.
 */
export function cosineSimilarityAt(
  rt: WasmRuntime, a: { ptr: number; length: number }, b: { ptr: number; length: number }, out: number,
  batch: number, m: number, n: number, c: number,
): void {
  rt.reset();
  const pa = rt.alloc(a.length * 4, 'a');
  const pb = rt.alloc(b.length * 4, 'b');
  const bytes = new Uint8Array(rt.memory.buffer);
  bytes.copyWithin(pa, a.ptr, a.ptr + a.length * 4);
  bytes.copyWithin(pb, b.ptr, b.ptr + b.length * 4);
  rt.exports.cosineSimilarity(pa, pb, out, batch, m, n, c);
}
