// Test helpers shared by every suite: a seeded RNG, random tensors, float comparison, error checks.
import * as assert from 'uvu/assert';
import { MergeKernelsError, type ErrorCode, type Tensor } from 'merge-kernels';

/** mulberry32: a small, seeded, platform-independent PRNG (uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A tensor of uniform values in [lo, hi). */
export function randomTensor(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  const next = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * next();
  return { data, shape };
}

/** Asserts |got - want| <= atol + rtol·|want| everywhere, naming the worst index and both values. */
export function allClose(got: ArrayLike<number>, want: ArrayLike<number>, { rtol = 0, atol = 0 }: { rtol?: number; atol?: number }, what = 'values'): void {
  assert.is(got.length, want.length, `${what}: length ${got.length} vs expected ${want.length}`);
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    const excess = Math.abs(g - w) - (atol + rtol * Math.abs(w));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) { worst = i; worstExcess = excess; }
  }
  if (worst >= 0) {
    assert.unreachable(`${what}: worst mismatch at index ${worst}: got ${got[worst]}, expected ${want[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Asserts that `fn` rejects/throws a MergeKernelsError with `code`, whose message mentions `mentions`. */
export async function rejects(fn: () => unknown, code: ErrorCode, mentions: string[] = []): Promise<MergeKernelsError> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof MergeKernelsError)) assert.unreachable(`expected MergeKernelsError ${code}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    const err = e as MergeKernelsError;
    assert.is(err.code, code, `error code (message: ${err.message})`);
    for (const m of mentions) assert.ok(err.message.includes(m), `message should mention "${m}": ${err.message}`);
    return err;
  }
  return assert.unreachable(`expected MergeKernelsError ${code}, but nothing was thrown`) as never;
}

/** Prints the reason a test did not run its check; the runner counts these lines as skips. */
export function skip(print: (line: string) => void, test: string, reason: string): void {
  print(`SKIP: ${test}: ${reason}`);
}
