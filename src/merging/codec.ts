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
    bf16Into(bytes, out);
  } else if (dtype === 'F16') {
    f16Into(bytes, out);
  } else {
    out.set(decodeToFloat32(dtype, bytes));
  }
}

// One loop per dtype (monomorphic), reading two 16-bit values per 32-bit load, through Int32
// views (a Uint32Array element above 2^31 is a heap number in V8, several times slower).

/** bfloat16 is the top half of a float32. */
function bf16Into(bytes: Uint8Array, out: Float32Array): void {
  const n = out.length, pairs = n >> 1;
  const w = new Int32Array(bytes.buffer, bytes.byteOffset, pairs), o = new Int32Array(out.buffer, out.byteOffset, n);
  for (let i = 0, j = 0; i < pairs; i++, j += 2) {
    const v = w[i]!;
    o[j] = v << 16;
    o[j + 1] = v & 0xffff0000;
  }
  if (n & 1) o[n - 1] = (bytes[2 * n - 2]! | (bytes[2 * n - 1]! << 8)) << 16;
}

/** float16 through the table of all 65536 bit patterns (NaN payloads and −0 kept, as decodeToFloat32). */
function f16Into(bytes: Uint8Array, out: Float32Array): void {
  const n = out.length, pairs = n >> 1, table = new Int32Array(float16Table().buffer);
  const w = new Int32Array(bytes.buffer, bytes.byteOffset, pairs), o = new Int32Array(out.buffer, out.byteOffset, n);
  for (let i = 0, j = 0; i < pairs; i++, j += 2) {
    const v = w[i]!;
    o[j] = table[v & 0xffff]!;
    o[j + 1] = table[v >>> 16]!;
  }
  if (n & 1) o[n - 1] = table[bytes[2 * n - 2]! | (bytes[2 * n - 1]! << 8)]!;
}

/** Rounds `x` in place to the values of a 16-bit float dtype (the config's `dtype`), as encode then decode would. */
export function roundInPlace(dtype: 'F16' | 'BF16', x: Float32Array): void {
  // Int32 reads and writes (see bf16Encode): the rounding functions' operations are bitwise.
  const u = new Int32Array(x.buffer, x.byteOffset, x.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < u.length; i++) u[i] = bfloat16Bits(u[i]!) << 16;
  } else {
    const table = new Int32Array(float16Table().buffer);
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
  const bits = new Uint32Array(x.buffer, x.byteOffset, n);
  if (dtype === 'F16') {
    // Int32 reads (see bf16Encode); float16Bits takes either, its operations are bitwise.
    const out = new Uint16Array(scratch.bytes.buffer, 0, n), ints = new Int32Array(x.buffer, x.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = float16Bits(ints[i]!);
  } else {
    bf16Encode(bits, scratch.bytes);
  }
  return scratch.bytes.subarray(0, 2 * n);
}

/**
 * float32 bits → bfloat16 bytes, two entries per 32-bit store: bfloat16Bits inlined on int32
 * views (a Uint32Array read above 2^31 is a heap number: 4 ns an entry instead of ~1).
 */
function bf16Encode(bits: Uint32Array, bytes: Uint8Array): void {
  const n = bits.length, pairs = n >> 1;
  const x = new Int32Array(bits.buffer, bits.byteOffset, n), w = new Int32Array(bytes.buffer, 0, pairs);
  for (let i = 0, j = 0; i < pairs; i++, j += 2) {
    const a = x[j]!, b = x[j + 1]!;
    // Round to nearest even; a NaN keeps its top bits with the quiet bit set (never Inf).
    const lo = (a & 0x7fffffff) > 0x7f800000 ? (a >>> 16) | 0x40 : (a + 0x7fff + ((a >>> 16) & 1)) >>> 16;
    const hi = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    w[i] = lo | (hi << 16);
  }
  if (n & 1) new Uint16Array(bytes.buffer, 0, n)[n - 1] = bfloat16Bits(bits[n - 1]!);
}
