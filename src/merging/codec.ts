// Chunk codecs of the file runner: decode input bytes into, and encode output values into,
// buffers the runner allocates once per run. The bit patterns are those of decodeToFloat32 and
// encodeFromFloat32 (same tables and rounding functions), without their fresh array per call:
// a fresh typed array per chunk costs page faults and garbage collection (issue 15).
import {
  bfloat16Bits, decodeToFloat32, encodeFromFloat32, float16Bits, float16Table, type SafetensorsDtype,
} from '../safetensors.ts';

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Whether `dtype` read into a Float32Array's own bytes is already decoded (F32 on a little-endian host). */
export function readsInPlace(dtype: SafetensorsDtype): boolean {
  return dtype === 'F32' && LITTLE_ENDIAN;
}

/** Decodes little-endian `bytes` of a float dtype into `out` (out.length = entries). `bytes` starts 8-byte aligned. */
export function decodeInto(dtype: SafetensorsDtype, bytes: Uint8Array, out: Float32Array): void {
  const n = out.length;
  if (!LITTLE_ENDIAN || bytes.byteOffset % 8 !== 0) {
    out.set(decodeToFloat32(dtype, bytes));
    return;
  }
  if (dtype === 'F32') {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  } else if (dtype === 'F64') {
    out.set(new Float64Array(bytes.buffer, bytes.byteOffset, n)); // set() rounds to nearest even, as decodeToFloat32
  } else if (dtype === 'BF16') {
    const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n), o = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) o[i] = h[i]! << 16;
  } else if (dtype === 'F16') {
    const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n), o = new Uint32Array(out.buffer, out.byteOffset, n);
    const table = float16Table();
    for (let i = 0; i < n; i++) o[i] = table[h[i]!]!;
  } else {
    out.set(decodeToFloat32(dtype, bytes));
  }
}

/** Rounds `x` in place to the values of a 16-bit float dtype (the config's `dtype`), as encode then decode would. */
export function roundInPlace(dtype: 'F16' | 'BF16', x: Float32Array): void {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < u.length; i++) u[i] = bfloat16Bits(u[i]!) << 16;
  } else {
    const table = float16Table();
    for (let i = 0; i < u.length; i++) u[i] = table[float16Bits(u[i]!)]!;
  }
}

/**
 * The bytes of `x` in an output dtype, written into `scratch` (grown when short) unless F32 on a
 * little-endian host, whose bytes are `x`'s own. Returns a view valid until the next call.
 */
export function encodeInto(dtype: 'F32' | 'F16' | 'BF16', x: Float32Array, scratch: { bytes: Uint8Array }): Uint8Array {
  if (!LITTLE_ENDIAN) return encodeFromFloat32(dtype, x);
  if (dtype === 'F32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const n = x.length;
  if (scratch.bytes.length < 2 * n) scratch.bytes = new Uint8Array(2 * n);
  const bits = new Uint32Array(x.buffer, x.byteOffset, n), out = new Uint16Array(scratch.bytes.buffer, 0, n);
  if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = float16Bits(bits[i]!);
  else for (let i = 0; i < n; i++) out[i] = bfloat16Bits(bits[i]!);
  return scratch.bytes.subarray(0, 2 * n);
}
