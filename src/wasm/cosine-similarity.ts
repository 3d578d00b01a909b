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
