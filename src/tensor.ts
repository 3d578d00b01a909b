import { MergeKernelsError, describe } from './errors.ts';

/** A dense float32 tensor, row-major (the last dimension is contiguous). */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** Product of the dimensions (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(data: Float32Array, shape: number[]): Tensor {
  return { data, shape };
}

/**
 * Checks that `value` is a Tensor of one of the allowed ranks whose shape matches its data,
 * and returns it typed. Every public kernel calls this once, at the boundary.
 */
export function checkTensor(name: string, value: unknown, ranks: readonly number[]): Tensor {
  if (value === null || typeof value !== 'object') {
    throw new MergeKernelsError('INVALID_TYPE', `${name}: expected a tensor { data: Float32Array, shape: number[] }, got ${describe(value)}`, name);
  }
  const { data, shape } = value as { data?: unknown; shape?: unknown };
  if (!(data instanceof Float32Array)) {
    throw new MergeKernelsError('INVALID_TYPE', `${name}.data: expected a Float32Array, got ${describe(data)}`, name);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new MergeKernelsError('INVALID_SHAPE', `${name}.shape: expected an array of non-negative integers, got ${describe(shape)}${Array.isArray(shape) ? ` [${shape.join(', ')}]` : ''}`, name);
  }
  if (!ranks.includes(shape.length)) {
    throw new MergeKernelsError('INVALID_SHAPE', `${name}: expected rank ${ranks.join(' or ')} (${ranks.map(rankHint).join(' or ')}), got rank ${shape.length} [${shape.join(', ')}]`, name);
  }
  if (numel(shape) !== data.length) {
    throw new MergeKernelsError('INVALID_SHAPE', `${name}: shape [${shape.join(', ')}] holds ${numel(shape)} values but data has ${data.length}`, name);
  }
  return value as Tensor;
}

function rankHint(rank: number): string {
  return ['[]', '[N]', '[N, C]', '[B, N, C]', '[B, H, N, C]'][rank] ?? `${rank} dims`;
}

/** Throws NON_FINITE naming the first NaN or ±Infinity in `data`. */
export function checkFinite(name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    // v - v is NaN exactly for NaN and ±Infinity; one comparison in the hot loop.
    if (v - v !== 0) {
      throw new MergeKernelsError('NON_FINITE', `${name}: expected finite values, found ${v} at flat index ${i}`, name);
    }
  }
}

/** An output tensor given by the caller: a Float32Array tensor of exactly `shape`; returns its data. */
export function checkOutput(name: string, value: unknown, shape: readonly number[]): Float32Array {
  const t = checkTensor(name, value, [shape.length]);
  if (t.shape.some((d, i) => d !== shape[i])) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected an output of shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`, name);
  }
  return t.data;
}

/** `checkOutput`, and the output shares no memory with any of `inputs`. */
export function checkOut(name: string, value: unknown, shape: readonly number[], inputs: readonly ArrayBufferView[]): Float32Array {
  const data = checkOutput(name, value, shape);
  if (inputs.some((i) => overlaps(data, i))) {
    throw new MergeKernelsError('INVALID_OPTION', `${name}: must not share memory with the inputs`, name);
  }
  return data;
}

/** Whether two typed arrays share any byte of memory. */
export function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
