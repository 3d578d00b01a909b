import type { WasmRuntime } from './runtime.ts';

/** Thin wrapper over assembly/best-match.ts: copy in, run, copy out. */
export function bestMatch(
  rt: WasmRuntime, a: Float32Array, b: Float32Array, batch: number, nA: number, nB: number, c: number,
  maskFirstA: boolean, maskFirstB: boolean,
): { score: Float32Array; index: Int32Array } {
  rt.reset();
  const pa = rt.put(a, 'the A tokens');
  const pb = rt.put(b, 'the B tokens');
  const scratch = rt.alloc(16 * nB * 4, 'a block of scores');
  const ps = rt.alloc(batch * nA * 4, 'best scores');
  const pi = rt.alloc(batch * nA * 4, 'best indices');
  rt.exports.bestMatch(pa, pb, scratch, ps, pi, batch, nA, nB, c, maskFirstA, maskFirstB);
  return { score: rt.take(ps, batch * nA), index: rt.takeI32(pi, batch * nA) };
}

/** ToMe's even/odd split and best match in one call: the metric is copied in once, the split happens in wasm memory. */
export function bestMatchEvenOdd(
  rt: WasmRuntime, metric: Float32Array, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean,
): { score: Float32Array; index: Int32Array } {
  rt.reset();
  return bestMatchEvenOddAt(rt, rt.put(metric, 'the metric'), batch, tokens, c, maskFirstA, maskFirstB);
}

/** bestMatchEvenOdd of a metric already in wasm memory at `pm` (a device tensor, or the arena after reset()). */
export function bestMatchEvenOddAt(
  rt: WasmRuntime, pm: number, batch: number, tokens: number, c: number, maskFirstA: boolean, maskFirstB: boolean,
): { score: Float32Array; index: Int32Array } {
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  const pa = rt.alloc(batch * nA * c * 4, 'the A tokens');
  const pb = rt.alloc(batch * nB * c * 4, 'the B tokens');
  const scratch = rt.alloc(16 * nB * 4, 'a block of scores');
  const ps = rt.alloc(batch * nA * 4, 'best scores');
  const pi = rt.alloc(batch * nA * 4, 'best indices');
  rt.exports.bestMatchEvenOdd(pm, pa, pb, scratch, ps, pi, batch, tokens, c, maskFirstA, maskFirstB);
  return { score: rt.take(ps, batch * nA), index: rt.takeI32(pi, batch * nA) };
}
