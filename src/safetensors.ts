// safetensors — a validating reader and a writer for the huggingface/safetensors format
// (https://github.com/huggingface/safetensors, "Format" in its README), written from that
// description. Runtime-neutral: only Uint8Array, DataView, TextDecoder/TextEncoder and Blob, so
// it runs unchanged in Node, Deno, browsers, Bun and workerd (no node:fs, no Buffer).
//
// Layout of a file:
//   bytes 0..8      N, the header length: an unsigned 64-bit little-endian integer
//   bytes 8..8+N    the header: UTF-8 JSON
//                     { "<tensor>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] },
//                       ...,
//                       "__metadata__": { "<key>": "<string value>" } }          (optional)
//   bytes 8+N..     the data buffer; [begin, end) are relative to its start, little-endian values.
//
// The reader treats the file as untrusted: every length is checked against the file's real size
// before anything is allocated or decoded, so a hostile header cannot make it allocate more than
// the file holds. Everything it rejects throws MergeKernelsError with code 'INVALID_SAFETENSORS',
// argument 'file', and a `violation` property (SafetensorsViolation) saying which rule failed.
// It accepts what the reference reader (Rust, serde_json) accepts, with one deliberate
// difference: a repeated tensor name or metadata key is refused (the reference keeps the last).

import { MergeKernelsError, describe } from './errors.ts';
import { JsonNumber, JsonObject, parseStrictJson, type JsonValue, type U64 } from './strict-json.ts';

/** Which rule of the format a rejected file (or shard index) breaks; attached to the error as `violation`. */
export type SafetensorsViolation =
  | 'FILE_TOO_SHORT'        // fewer than the 8 bytes of the header length
  | 'HEADER_TOO_LARGE'      // N > 100,000,000 (the reference parser's limit)
  | 'HEADER_OUT_OF_BOUNDS'  // the file ends before the header, or before the data the header describes (a truncated file)
  | 'HEADER_NOT_UTF8'       // the header bytes are not valid UTF-8
  | 'HEADER_NOT_JSON'       // not JSON that serde_json accepts: syntax (a byte-order mark or NUL padding counts), > 127 levels, a lone surrogate escape, a number beyond f64
  | 'HEADER_NOT_OBJECT'     // the header's JSON is not an object
  | 'BAD_ENTRY'             // a tensor entry is not an object (or a [dtype, shape, data_offsets] array), or names one of its fields twice
  | 'UNKNOWN_DTYPE'         // dtype missing or not a safetensors dtype
  | 'BAD_SHAPE'             // shape not an array of u64 integers (2.0, 2e0, -0 are not), numel × bits overflows u64, or is not whole bytes
  | 'BAD_OFFSETS'           // data_offsets not [begin, end] of u64 integers with begin ≤ end
  | 'OFFSETS_NOT_TILED'     // the tensors, sorted by offset, leave a gap or overlap in [0, buffer end)
  | 'BYTE_COUNT_MISMATCH'   // end − begin ≠ numel × bits / 8
  | 'TRAILING_BYTES'        // the file continues past the end of the last tensor
  | 'BAD_METADATA'          // __metadata__ is not an object of string → string (or a key appears twice)
  | 'DUPLICATE_TENSOR'      // two entries with the same name (the reference keeps the last; refused here: the name is ambiguous)
  | 'UNSUPPORTED_DTYPE'     // a known dtype that decodeToFloat32 / encodeFromFloat32 cannot convert
  | 'BAD_INDEX';            // a model.safetensors.index.json that is malformed

/** A MergeKernelsError thrown for a malformed file or index. */
export type SafetensorsErrorInfo = MergeKernelsError & { readonly violation: SafetensorsViolation };

function fail(violation: SafetensorsViolation, message: string, argument = 'file'): never {
  throw Object.assign(new MergeKernelsError('INVALID_SAFETENSORS', `${violation}: ${message}`, argument), { violation });
}

/** The violation of an error thrown by this module, or undefined for any other value. */
export function safetensorsViolation(error: unknown): SafetensorsViolation | undefined {
  if (!(error instanceof MergeKernelsError) || (error.code as string) !== 'INVALID_SAFETENSORS') return undefined;
  return (error as SafetensorsErrorInfo).violation;
}

// ---------------------------------------------------------------------------------------------
// dtypes

// Bits per element of every dtype of the reference format (its `Dtype::bitsize`). The first ten
// decode to float32; the others are read and written as opaque bytes (decodeToFloat32 refuses
// them with UNSUPPORTED_DTYPE). F4 and F6_* pack several elements per byte: a tensor of them must
// hold a whole number of bytes (numel × bits divisible by 8), as the reference requires.
const ELEMENT_BITS = {
  F64: 64, F32: 32, F16: 16, BF16: 16, I64: 64, I32: 32, I16: 16, I8: 8, U8: 8, BOOL: 8,
  U16: 16, U32: 32, U64: 64, C64: 64,
  F8_E4M3: 8, F8_E5M2: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
} as const;

/** A dtype string of the safetensors format. */
export type SafetensorsDtype = keyof typeof ELEMENT_BITS;
/** The dtypes decodeToFloat32 converts. */
export type DecodableDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DECODABLE: ReadonlySet<string> = new Set<DecodableDtype>(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);

/** Bits per element of `dtype`, or undefined when it is not a safetensors dtype string. */
export function dtypeBits(dtype: unknown): number | undefined {
  // hasOwnProperty, not `in`: "toString" or "__proto__" must not look like a dtype.
  return typeof dtype === 'string' && Object.prototype.hasOwnProperty.call(ELEMENT_BITS, dtype)
    ? ELEMENT_BITS[dtype as SafetensorsDtype] : undefined;
}

/**
 * Bytes per element of `dtype` (0.5 for F4, 0.75 for F6_E2M3 and F6_E3M2), or undefined when it
 * is not a safetensors dtype string.
 */
export function dtypeSize(dtype: unknown): number | undefined {
  const bits = dtypeBits(dtype);
  return bits === undefined ? undefined : bits / 8;
}

// ---------------------------------------------------------------------------------------------
// reading

/** The reference parser's limit on N; larger headers are refused before anything is read. */
export const MAX_HEADER_LENGTH = 100_000_000;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end): byte range in the data buffer, which starts at `dataOffset` in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N: the header's length in bytes (padding included). */
  headerLength: number;
  /** 8 + N: where the data buffer starts in the file. */
  dataOffset: number;
  /** `__metadata__`, or {} when the file has none. */
  metadata: Record<string, string>;
  /** In file order: sorted by `begin` (then `end`; ties keep header order). */
  tensors: SafetensorsTensorInfo[];
}

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** A view into the bytes given to readSafetensors (no copy): little-endian, any byteOffset. */
  bytes: Uint8Array;
}

/**
 * Parses and validates the header of a complete safetensors file held in memory. Checks every
 * rule of the format, including that the tensors tile the data buffer and that the file ends
 * exactly where the last tensor does; throws INVALID_SAFETENSORS with a `violation` otherwise.
 */
export function parseSafetensorsHeader(bytes: Uint8Array): SafetensorsHeader {
  checkBytes(bytes, 'bytes');
  return parseHeader(bytes, bytes.length);
}

/**
 * Parses and validates the header of a file given as a Blob (a browser File, a fetch() body's
 * blob()), reading only its first 8 + N bytes. The data itself is not read: tensor `t` is
 * `blob.slice(header.dataOffset + t.begin, header.dataOffset + t.end)`.
 */
export async function parseSafetensorsHeaderFromBlob(blob: Blob): Promise<SafetensorsHeader> {
  if (typeof Blob === 'undefined' || !(blob instanceof Blob)) {
    throw new MergeKernelsError('INVALID_TYPE', `blob: expected a Blob, got ${describe(blob)}`, 'blob');
  }
  return parseSafetensorsHeaderFromReader(blob.size, async (begin, end) => new Uint8Array(await blob.slice(begin, end).arrayBuffer()));
}

/**
 * Parses and validates the header of a file of `size` bytes that can be read by byte range
 * (`read(begin, end)` resolves with bytes [begin, end) of the file): a Node FileHandle, an HTTP
 * range request. Reads the first 8 bytes, checks the header length against `size`, then reads
 * the header; the data is not read.
 */
export async function parseSafetensorsHeaderFromReader(size: number, read: (begin: number, end: number) => Promise<Uint8Array>): Promise<SafetensorsHeader> {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new MergeKernelsError('INVALID_TYPE', `size: expected a file size in bytes, got ${describe(size)}`, 'size');
  }
  if (size < 8) fail('FILE_TOO_SHORT', `the file has ${size} bytes; a safetensors file starts with an 8-byte header length`);
  const first = await read(0, 8);
  // Check N against the file size before reading N bytes.
  const n = headerLengthField(first, size);
  const prefix = await read(0, 8 + n);
  if (prefix.length !== 8 + n) fail('HEADER_OUT_OF_BOUNDS', `reading the ${n}-byte header gave ${prefix.length - 8} bytes: the file is truncated`);
  return parseHeader(prefix, size);
}

/**
 * Reads a complete safetensors file held in memory. Tensor bytes are views into `bytes` (no
 * copy); decode them with decodeToFloat32. Validation is that of parseSafetensorsHeader.
 */
export function readSafetensors(bytes: Uint8Array): { metadata: Record<string, string>; tensors: Map<string, SafetensorsTensor> } {
  checkBytes(bytes, 'bytes');
  const header = parseHeader(bytes, bytes.length);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of header.tensors) {
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, bytes: bytes.subarray(header.dataOffset + t.begin, header.dataOffset + t.end) });
  }
  return { metadata: header.metadata, tensors };
}

function checkBytes(bytes: unknown, name: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new MergeKernelsError('INVALID_TYPE', `${name}: expected a Uint8Array, got ${describe(bytes)}`, name);
  }
}

/** N from the first 8 bytes, checked against the limit and the file length (the first three rules). */
function headerLengthField(prefix: Uint8Array, fileLength: number): number {
  if (fileLength < 8) fail('FILE_TOO_SHORT', `the file has ${fileLength} bytes; a safetensors file starts with an 8-byte header length`);
  const field = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (field > BigInt(MAX_HEADER_LENGTH)) {
    fail('HEADER_TOO_LARGE', `the header length field says ${field} bytes; at most ${MAX_HEADER_LENGTH} are allowed`);
  }
  const n = Number(field);
  if (8 + n > fileLength) {
    fail('HEADER_OUT_OF_BOUNDS', `the header length field says ${n} bytes but only ${fileLength - 8} follow it: the file is truncated or not safetensors`);
  }
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A tensor entry as checked, before tiling: offsets may still be bigints (beyond 2^53 − 1). */
interface CheckedEntry { name: string; dtype: SafetensorsDtype; shape: U64[]; begin: U64; end: U64 }

/** `prefix` holds at least the first 8 + N bytes of a file of `fileLength` bytes. */
function parseHeader(prefix: Uint8Array, fileLength: number): SafetensorsHeader {
  const n = headerLengthField(prefix, fileLength);
  let headerBytes = prefix.subarray(8, 8 + n);
  // TextDecoder refuses views of a SharedArrayBuffer; copy those (N bytes, already checked).
  if (typeof SharedArrayBuffer !== 'undefined' && headerBytes.buffer instanceof SharedArrayBuffer) headerBytes = new Uint8Array(headerBytes);
  let text: string;
  try {
    // fatal: invalid UTF-8 throws instead of becoming U+FFFD; ignoreBOM: a BOM is kept, and JSON rejects it.
    text = utf8.decode(headerBytes);
  } catch {
    fail('HEADER_NOT_UTF8', `the ${n}-byte header is not valid UTF-8`);
  }
  let metadata: Record<string, string> = {};
  let sawMetadata = false;
  const entries: CheckedEntry[] = [];
  // Repeated names are refused, a deliberate difference from the reference reader (its map keeps
  // the last): a name that means two things is read differently by readers that keep the first,
  // and a checker could be shown one tensor while a loader gets the other.
  const names = new Set<string>();
  // Members are checked as they are parsed, but the first failure is thrown only once the whole
  // header has parsed: invalid JSON anywhere is reported as such, before any rule about tensors.
  let firstFailure: unknown;
  const onMember = (name: string, value: JsonValue) => {
    if (firstFailure !== undefined) return;
    try {
      if (name === '__metadata__') {
        if (sawMetadata) fail('BAD_METADATA', '__metadata__ appears twice in the header');
        sawMetadata = true;
        metadata = checkMetadata(value);
        return;
      }
      if (names.has(name)) fail('DUPLICATE_TENSOR', `tensor ${quote(name)} appears twice in the header`);
      names.add(name);
      entries.push(checkEntry(name, value));
    } catch (e) {
      firstFailure = e;
    }
  };
  // Our own scanner, not JSON.parse: it accepts exactly what serde_json accepts (see strict-json.ts)
  // and keeps 2 apart from 2.0 and exact u64 values.
  const json = parseStrictJson(text, (what, at) => fail('HEADER_NOT_JSON', `the ${n}-byte header is not valid JSON: ${what} at character ${at}`), onMember);
  if (!(json instanceof JsonObject)) fail('HEADER_NOT_OBJECT', `the header must be a JSON object, got ${show(json)}`);
  if (firstFailure !== undefined) throw firstFailure;

  // Sorted by (begin, end) the tensors must cover [0, bufferEnd) exactly once: no gaps (bytes that
  // belong to nothing) and no overlaps (bytes aliased by two tensors). Empty tensors sort before a
  // tensor starting at the same offset, so they may sit at any boundary but not inside a tensor.
  // Offsets are canonical U64s (number up to 2^53 − 1, else bigint): < and === compare them exactly.
  const byOffsets = (a: CheckedEntry, b: CheckedEntry) => a.begin < b.begin ? -1 : a.begin > b.begin ? 1 : a.end < b.end ? -1 : a.end > b.end ? 1 : 0;
  // Writers usually list tensors in file order: sort only when they are not (the sort is stable).
  let sorted = true;
  for (let i = 1; i < entries.length && sorted; i++) sorted = byOffsets(entries[i - 1]!, entries[i]!) <= 0;
  if (!sorted) entries.sort(byOffsets);
  let bufferEnd: U64 = 0;
  for (const t of entries) {
    if (t.begin !== bufferEnd) {
      const what = t.begin > bufferEnd ? `a gap: bytes [${bufferEnd}, ${t.begin}) belong to no tensor` : `an overlap with the previous tensor, which ends at ${bufferEnd}`;
      fail('OFFSETS_NOT_TILED', `tensor ${quote(t.name)} starts at ${t.begin}: ${what}`);
    }
    bufferEnd = t.end;
  }
  const available = fileLength - 8 - n;
  if (bufferEnd > available) {
    // Reported like a truncated header: the header points past the end of the file.
    fail('HEADER_OUT_OF_BOUNDS', `the tensors need ${bufferEnd} bytes of data but only ${available} follow the header: the file is truncated`);
  }
  if (bufferEnd < available) {
    fail('TRAILING_BYTES', `the tensors end at data byte ${bufferEnd} but ${available - (bufferEnd as number)} more bytes follow`);
  }
  // Every offset is now at most the file length: a number. A dimension beyond 2^53 − 1 can only
  // be in an empty tensor (a 0 elsewhere in its shape): it becomes the nearest double.
  for (const t of entries) if (t.shape.some((d) => typeof d === 'bigint')) t.shape = t.shape.map(Number);
  return { headerLength: n, dataOffset: 8 + n, metadata, tensors: entries as SafetensorsTensorInfo[] };
}

function checkMetadata(value: JsonValue): Record<string, string> {
  // The reference reader types it Option<map>: null means absent.
  if (value === null) return {};
  if (!(value instanceof JsonObject)) fail('BAD_METADATA', `__metadata__ must be an object of string values, got ${show(value)}`);
  // Repeated keys are refused (the reference keeps the last), for the reason repeated tensor names are.
  const seen = new Set<string>();
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < value.keys.length; i++) {
    const key = value.keys[i]!, v = value.values[i]!;
    if (typeof v !== 'string') fail('BAD_METADATA', `__metadata__[${quote(key)}] must be a string, got ${show(v)}`);
    if (seen.has(key)) fail('BAD_METADATA', `__metadata__ has the key ${quote(key)} twice`);
    seen.add(key);
    pairs.push([key, v]);
  }
  // fromEntries defines own properties: a key "__proto__" stays data, never a prototype.
  return Object.fromEntries(pairs) as Record<string, string>;
}

function checkEntry(name: string, entry: JsonValue): CheckedEntry {
  let dtypeValue: JsonValue | undefined, shape: JsonValue | undefined, offsets: JsonValue | undefined;
  if (entry instanceof JsonObject) {
    // Unknown extra fields are ignored, as the reference reader does; a field named twice is not.
    let seen = 0; // bit 0: dtype, 1: shape, 2: data_offsets
    for (let i = 0; i < entry.keys.length; i++) {
      const key = entry.keys[i]!;
      const bit = key === 'dtype' ? 1 : key === 'shape' ? 2 : key === 'data_offsets' ? 4 : 0;
      if (bit === 0) continue;
      if ((seen & bit) !== 0) fail('BAD_ENTRY', `tensor ${quote(name)} has the field ${quote(key)} twice`);
      seen |= bit;
      if (bit === 1) dtypeValue = entry.values[i];
      else if (bit === 2) shape = entry.values[i];
      else offsets = entry.values[i];
    }
  } else if (Array.isArray(entry) && entry.length === 3) {
    // serde's sequence form of a struct, which the reference reader accepts: [dtype, shape, data_offsets].
    [dtypeValue, shape, offsets] = entry;
  } else {
    fail('BAD_ENTRY', `tensor ${quote(name)} must be an object { dtype, shape, data_offsets } (or an array of those three), got ${show(entry)}`);
  }
  const dtype = dtypeOf(dtypeValue);
  if (dtype === undefined) {
    fail('UNKNOWN_DTYPE', `tensor ${quote(name)} has dtype ${show(dtypeValue)}; known: ${Object.keys(ELEMENT_BITS).join(' ')}`);
  }
  // Dimensions and offsets are u64 integers: not 2.0, 2e0, -0 or -1 (the reference's usize fields
  // refuse what serde_json reads as a float or a signed integer).
  if (!Array.isArray(shape) || !shape.every(isU64)) {
    fail('BAD_SHAPE', `tensor ${quote(name)}: shape must be an array of integers in [0, 2^64) written without a sign, fraction or exponent, got ${show(shape)}`);
  }
  const byteCount = byteCountOf(shape as U64[], ELEMENT_BITS[dtype]);
  if (byteCount === 'overflow') fail('BAD_SHAPE', `tensor ${quote(name)}: shape [${shape.join(', ')}] × ${ELEMENT_BITS[dtype]} bits overflows 2^64`);
  if (byteCount === 'misaligned') fail('BAD_SHAPE', `tensor ${quote(name)}: ${dtype} [${shape.join(', ')}] is not a whole number of bytes (${ELEMENT_BITS[dtype]} bits per element)`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isU64(offsets[0]) || !isU64(offsets[1]) || offsets[0] > offsets[1]) {
    fail('BAD_OFFSETS', `tensor ${quote(name)}: data_offsets must be [begin, end], integers in [0, 2^64) with begin ≤ end, written without a sign, fraction or exponent, got ${show(offsets)}`);
  }
  const begin = offsets[0] as U64, end = offsets[1] as U64;
  const span = typeof begin === 'number' && typeof end === 'number' ? end - begin : canonical(BigInt(end) - BigInt(begin));
  if (span !== byteCount) {
    fail('BYTE_COUNT_MISMATCH', `tensor ${quote(name)}: ${dtype} [${shape.join(', ')}] needs ${byteCount} bytes but data_offsets [${begin}, ${end}) span ${span}`);
  }
  return { name, dtype, shape: shape as U64[], begin, end }; // the fields of SafetensorsTensorInfo, in its order
}

/** The dtype named by a header value: a string, or serde's one-key map form of an enum variant, {"F32": null}. */
function dtypeOf(value: JsonValue | undefined): SafetensorsDtype | undefined {
  if (typeof value === 'string') return dtypeBits(value) === undefined ? undefined : value as SafetensorsDtype;
  if (value instanceof JsonObject && value.keys.length === 1 && value.values[0] === null) return dtypeOf(value.keys[0]);
  return undefined;
}

function isU64(value: JsonValue | undefined): value is U64 {
  return typeof value === 'number' || typeof value === 'bigint';
}

const U64_MAX = 2n ** 64n - 1n;

/** A bigint in [0, 2^64) as a canonical U64: a number when it is at most 2^53 − 1. */
function canonical(value: bigint): U64 {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * numel × bits / 8 with the reference's checked u64 arithmetic: the product of the dimensions in
 * order (an intermediate product beyond 2^64 − 1 overflows even if a later dimension is 0), times
 * the bits per element, which must be a whole number of bytes.
 */
function byteCountOf(shape: readonly U64[], bits: number): U64 | 'overflow' | 'misaligned' {
  let numel = 1;
  let exact = true;
  for (const d of shape) {
    if (typeof d !== 'number') { exact = false; break; }
    numel *= d;
    if (numel > Number.MAX_SAFE_INTEGER) { exact = false; break; }
  }
  if (exact && numel * bits <= Number.MAX_SAFE_INTEGER) {
    const nbits = numel * bits;
    return nbits % 8 === 0 ? nbits / 8 : 'misaligned';
  }
  let big = 1n;
  for (const d of shape) {
    big *= BigInt(d);
    if (big > U64_MAX) return 'overflow';
  }
  const nbits = big * BigInt(bits);
  if (nbits > U64_MAX) return 'overflow';
  return nbits % 8n === 0n ? canonical(nbits / 8n) : 'misaligned';
}

/**
 * A header value for a message, bounded in length and depth (never JSON.stringify of what the
 * file holds: that recurses as deep as the file nests, and fails on bigints).
 */
function show(value: JsonValue | undefined): string {
  const sketch = (v: JsonValue, depth: number): string => {
    if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint') return String(v);
    if (typeof v === 'string') return quote(v);
    if (v instanceof JsonNumber) return clip(v.text, 40);
    if (Array.isArray(v)) {
      if (depth >= 2) return v.length === 0 ? '[]' : '[…]';
      return `[${v.slice(0, 4).map((x) => sketch(x, depth + 1)).join(', ')}${v.length > 4 ? ', …' : ''}]`;
    }
    if (depth >= 2) return v.keys.length === 0 ? '{}' : '{…}';
    return `{${v.keys.slice(0, 3).map((k, i) => `${quote(k)}: ${sketch(v.values[i]!, depth + 1)}`).join(', ')}${v.keys.length > 3 ? ', …' : ''}}`;
  };
  if (value === undefined) return '(missing)';
  const kind = value === null ? '' : Array.isArray(value) ? 'an array ' : value instanceof JsonObject ? 'an object '
    : typeof value === 'string' ? 'a string ' : typeof value === 'boolean' ? 'a boolean ' : 'a number ';
  return kind + clip(sketch(value, 0), 160);
}

function quote(name: string): string {
  return JSON.stringify(clip(name, 80));
}

function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) + '…' : s;
}

// ---------------------------------------------------------------------------------------------
// decoding and encoding values

// Every supported runtime is little-endian in practice; on a big-endian host the copies below
// are byte-swapped so that the typed-array views still read little-endian file data correctly.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A copy of `bytes` in a fresh, aligned ArrayBuffer, in host byte order for elements of `size` bytes. */
function hostOrderCopy(bytes: Uint8Array, size: number): Uint8Array<ArrayBuffer> {
  // new Uint8Array(view) always copies (Buffer#slice would not) and starts at offset 0, so any
  // typed array can view the result whatever bytes.byteOffset was.
  const copy = alloc(bytes.length, (n) => new Uint8Array(n));
  copy.set(bytes);
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  return copy;
}

function alloc<T>(n: number, make: (n: number) => T): T {
  try {
    return make(n);
  } catch (e) {
    if (e instanceof RangeError) throw new MergeKernelsError('TOO_LARGE', `cannot allocate ${n} elements in this runtime (${e.message})`, 'bytes', { cause: e });
    throw e;
  }
}

let f16Table: Uint32Array | undefined;

/** float32 bit patterns of all 65536 float16 values (payloads of NaNs kept), built on first use. */
export function float16Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16, exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
    if (exp === 0x1f) table[h] = sign | 0x7f800000 | (mant << 13);          // ±Inf, NaN
    else if (exp !== 0) table[h] = sign | ((exp + 112) << 23) | (mant << 13); // normal: rebias 15 → 127
    else { f[0] = mant * 2 ** -24; table[h] = sign | u[0]!; }                 // zero, subnormal (exact in f32)
  }
  return (f16Table = table);
}

/**
 * Decodes little-endian `bytes` of `dtype` into a new Float32Array. Exact for F32, F16, BF16,
 * I8, U8, I16 and BOOL (nonzero → 1); F64, I32 and I64 round to nearest float32 (I64 is exact
 * up to 2^53 in magnitude before that rounding). `bytes` may start at any byteOffset.
 * Other dtypes throw INVALID_SAFETENSORS / UNSUPPORTED_DTYPE.
 */
export function decodeToFloat32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  checkBytes(bytes, 'bytes');
  const size = dtypeSize(dtype);
  if (size === undefined || !DECODABLE.has(dtype)) {
    fail('UNSUPPORTED_DTYPE', `cannot decode dtype ${describe(dtype)} to float32; supported: ${[...DECODABLE].join(' ')}`, 'dtype');
  }
  if (bytes.length % size !== 0) {
    throw new MergeKernelsError('INVALID_SHAPE', `bytes: ${bytes.length} bytes is not a whole number of ${size}-byte ${dtype} elements`, 'bytes');
  }
  const n = bytes.length / size;
  const out = alloc(n, (k) => new Float32Array(k));
  switch (dtype as DecodableDtype) {
    case 'U8': out.set(bytes); break;
    case 'I8': out.set(new Int8Array(bytes.buffer, bytes.byteOffset, n)); break;
    case 'BOOL': for (let i = 0; i < n; i++) out[i] = bytes[i] !== 0 ? 1 : 0; break;
    case 'F32': out.set(new Float32Array(hostOrderCopy(bytes, 4).buffer)); break;
    case 'F64': out.set(new Float64Array(hostOrderCopy(bytes, 8).buffer)); break; // set() rounds to nearest even
    case 'I32': out.set(new Int32Array(hostOrderCopy(bytes, 4).buffer)); break;
    case 'I16': out.set(new Int16Array(hostOrderCopy(bytes, 2).buffer)); break;
    case 'I64': {
      const copy = hostOrderCopy(bytes, 8);
      const lo = new Uint32Array(copy.buffer), hi = new Int32Array(copy.buffer);
      const loIndex = LITTLE_ENDIAN ? 0 : 1; // host order: which 32-bit half is the low one
      for (let i = 0; i < n; i++) out[i] = hi[2 * i + 1 - loIndex]! * 4294967296 + lo[2 * i + loIndex]!;
      break;
    }
    case 'F16': {
      const h = new Uint16Array(hostOrderCopy(bytes, 2).buffer);
      const table = float16Table(), o = new Uint32Array(out.buffer);
      // Copy bit patterns, not numbers: NaN payloads and -0 survive.
      for (let i = 0; i < n; i++) o[i] = table[h[i]!]!;
      break;
    }
    case 'BF16': {
      const h = new Uint16Array(hostOrderCopy(bytes, 2).buffer);
      const o = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) o[i] = h[i]! << 16; // bfloat16 is the top half of a float32
      break;
    }
  }
  return out;
}

/** float32 bits → float16 bits, round to nearest even; overflow → ±Inf; NaN stays NaN (quieted). */
export function float16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const e = exp - 112; // float16 biased exponent (bias 15 vs 127)
  if (e >= 0x1f) return sign | 0x7c00; // ≥ 2^16: beyond every rounding of 65504
  if (e <= 0) {
    // Subnormal in float16 (or zero): the value in units of 2^-24 is m · 2^(e − 14).
    if (e < -10) return sign; // below 2^-25 (half the smallest subnormal): rounds to ±0
    const m = mant | 0x800000, shift = 14 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1) !== 0)) r++; // may carry into the smallest normal: still right
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) !== 0)) r++; // a carry into the exponent is right, up to Inf
  return sign | r;
}

/** float32 bits → bfloat16 bits, round to nearest even; overflow → ±Inf; NaN stays NaN. */
export function bfloat16Bits(x: number): number {
  // Truncating a NaN whose payload sits in the low 16 bits would give Inf: set the quiet bit.
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/**
 * Encodes float32 values as little-endian F32, F16 or BF16 bytes (a new Uint8Array). F16 and
 * BF16 round to nearest, ties to even; values beyond the largest finite one become ±Inf; NaN
 * stays NaN; F16 produces subnormals down to 2^-24.
 */
export function encodeFromFloat32(dtype: 'F32' | 'F16' | 'BF16', data: Float32Array): Uint8Array<ArrayBuffer> {
  if (!(data instanceof Float32Array)) {
    throw new MergeKernelsError('INVALID_TYPE', `data: expected a Float32Array, got ${describe(data)}`, 'data');
  }
  if (dtype === 'F32') return hostOrderCopy(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 4);
  if (dtype !== 'F16' && dtype !== 'BF16') {
    fail('UNSUPPORTED_DTYPE', `cannot encode float32 as ${describe(dtype)}; supported: F32 F16 BF16`, 'dtype');
  }
  const n = data.length;
  const bits = new Uint32Array(data.buffer, data.byteOffset, n);
  const out = alloc(n, (k) => new Uint16Array(k));
  if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = float16Bits(bits[i]!);
  else for (let i = 0; i < n; i++) out[i] = bfloat16Bits(bits[i]!);
  const bytes = new Uint8Array(out.buffer);
  if (!LITTLE_ENDIAN) for (let i = 0; i < bytes.length; i += 2) bytes.subarray(i, i + 2).reverse();
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// writing

export interface SafetensorsTensorInput {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** The tensor's little-endian bytes (encodeFromFloat32 makes them from a Float32Array). */
  data: Uint8Array;
}

const utf8Encoder = new TextEncoder();

/**
 * Writes a safetensors file: the header (with `__metadata__` first when `metadata` is given),
 * padded with spaces to a multiple of 8 bytes so the data buffer is 8-byte aligned, then the
 * tensors' bytes contiguously in the given order. Throws INVALID_TYPE / INVALID_SHAPE /
 * INVALID_OPTION naming the offending tensor, and TOO_LARGE for a header over the 100 MB limit.
 */
export function writeSafetensors(tensors: readonly SafetensorsTensorInput[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const { header, dataLength } = buildHeader(tensors, metadata, true);
  const file = alloc(header.length + dataLength, (k) => new Uint8Array(k));
  file.set(header);
  let at = header.length;
  for (const t of tensors) {
    file.set(t.data, at);
    at += t.data.length;
  }
  return file;
}

/**
 * The first 8 + N bytes of a safetensors file holding `tensors` in this order (the header length
 * and the space-padded header, exactly as writeSafetensors writes them), and the length of the
 * data buffer that must follow: for writers that stream each tensor's bytes after the header.
 */
export function encodeSafetensorsHeader(tensors: readonly Omit<SafetensorsTensorInput, 'data'>[], metadata?: Record<string, string>): { header: Uint8Array<ArrayBuffer>; dataLength: number } {
  return buildHeader(tensors, metadata, false);
}

/** Whether `s` holds a UTF-16 surrogate without its pair: it has no UTF-8 form, and the escaped
 * form JSON.stringify would write (\ud800) is refused by the reference reader and by ours. */
function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function buildHeader(tensors: readonly Partial<SafetensorsTensorInput>[], metadata: Record<string, string> | undefined, withData: boolean): { header: Uint8Array<ArrayBuffer>; dataLength: number } {
  if (!Array.isArray(tensors)) {
    throw new MergeKernelsError('INVALID_TYPE', `tensors: expected an array of { name, dtype, shape${withData ? ', data' : ''} }, got ${describe(tensors)}`, 'tensors');
  }
  // The header is assembled as text, not via an object, so its order is exactly the given order
  // (an object would move integer-like names such as "0" to the front).
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new MergeKernelsError('INVALID_TYPE', `metadata: expected an object of string values, got ${describe(metadata)}`, 'metadata');
    }
    const fields: string[] = [];
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new MergeKernelsError('INVALID_TYPE', `metadata[${quote(key)}]: expected a string, got ${describe(value)}`, 'metadata');
      }
      if (hasLoneSurrogate(key) || hasLoneSurrogate(value)) {
        throw new MergeKernelsError('INVALID_OPTION', `metadata[${quote(key)}]: the ${hasLoneSurrogate(key) ? 'key' : 'value'} holds a lone surrogate, which no valid header can encode`, 'metadata');
      }
      fields.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`"__metadata__":{${fields.join(',')}}`);
  }
  const names = new Set<string>();
  let offset = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i] as Partial<SafetensorsTensorInput> | null;
    const arg = `tensors[${i}]`;
    if (t === null || typeof t !== 'object') {
      throw new MergeKernelsError('INVALID_TYPE', `${arg}: expected { name, dtype, shape, data }, got ${describe(t)}`, arg);
    }
    const { name, dtype, shape, data } = t;
    if (typeof name !== 'string') throw new MergeKernelsError('INVALID_TYPE', `${arg}.name: expected a string, got ${describe(name)}`, arg);
    if (name === '__metadata__') throw new MergeKernelsError('INVALID_OPTION', `${arg}: the name "__metadata__" is reserved for the metadata`, arg);
    if (hasLoneSurrogate(name)) throw new MergeKernelsError('INVALID_OPTION', `${arg}: the name ${quote(name)} holds a lone surrogate, which no valid header can encode`, arg);
    if (names.has(name)) throw new MergeKernelsError('INVALID_OPTION', `${arg}: tensor ${quote(name)} appears twice`, arg);
    names.add(name);
    const bits = dtypeBits(dtype);
    if (bits === undefined) throw new MergeKernelsError('INVALID_OPTION', `tensor ${quote(name)}: unknown dtype ${describe(dtype)}; known: ${Object.keys(ELEMENT_BITS).join(' ')}`, arg);
    if (withData && !(data instanceof Uint8Array)) throw new MergeKernelsError('INVALID_TYPE', `tensor ${quote(name)}: data must be a Uint8Array, got ${describe(data)}`, arg);
    // Dimensions are u64 integers, as the reader's; those beyond 2^53 − 1 (only possible in an
    // empty tensor) are written as the exact integer of the double given.
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0 && d < 2 ** 64)) {
      throw new MergeKernelsError('INVALID_SHAPE', `tensor ${quote(name)}: shape must be an array of non-negative integers below 2^64, got ${describe(shape)}`, arg);
    }
    const dims = (shape as number[]).map((d) => d <= Number.MAX_SAFE_INTEGER ? d + 0 : BigInt(d)); // + 0 turns -0 into 0
    const byteCount = byteCountOf(dims, bits);
    // The reader's rules, so everything written here can be read back.
    if (byteCount === 'overflow') throw new MergeKernelsError('INVALID_SHAPE', `tensor ${quote(name)}: shape [${dims.join(', ')}] × ${bits} bits overflows 2^64`, arg);
    if (byteCount === 'misaligned') throw new MergeKernelsError('INVALID_SHAPE', `tensor ${quote(name)}: ${dtype} [${dims.join(', ')}] is not a whole number of bytes (${bits} bits per element)`, arg);
    if (typeof byteCount !== 'number' || offset + byteCount > Number.MAX_SAFE_INTEGER) {
      throw new MergeKernelsError('INVALID_SHAPE', `tensor ${quote(name)}: ${dtype} [${dims.join(', ')}] would end the data at byte ${BigInt(offset) + BigInt(byteCount)}, beyond 2^53`, arg);
    }
    if (withData && byteCount !== data!.length) {
      throw new MergeKernelsError('INVALID_SHAPE', `tensor ${quote(name)}: ${dtype} [${dims.join(', ')}] needs ${byteCount} bytes but data has ${data!.length}`, arg);
    }
    parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${dims.join(',')}],"data_offsets":[${offset},${offset + byteCount}]}`);
    offset += byteCount;
  }
  // No lone surrogates (refused above), so JSON.stringify escapes nothing the reader refuses.
  const header = utf8Encoder.encode(`{${parts.join(',')}}`);
  const n = Math.ceil(header.length / 8) * 8;
  if (n > MAX_HEADER_LENGTH) {
    throw new MergeKernelsError('TOO_LARGE', `the header would be ${n} bytes; readers refuse more than ${MAX_HEADER_LENGTH}`, 'tensors');
  }
  const prefix = new Uint8Array(8 + n);
  new DataView(prefix.buffer).setUint32(0, n, true); // n < 2^32: the high half stays 0
  prefix.set(header, 8);
  prefix.fill(0x20, 8 + header.length, 8 + n);
  return { header: prefix, dataLength: offset };
}

// ---------------------------------------------------------------------------------------------
// sharded models

export interface ShardIndex {
  /** The index's "metadata" ({} when absent); `total_size`, when present, is a non-negative number. */
  metadata: Record<string, unknown>;
  /** Tensor name → shard file name, in the index's order. */
  weightMap: Map<string, string>;
}

/**
 * Parses a `model.safetensors.index.json`: `{"metadata": {"total_size": …}, "weight_map":
 * {tensor: file}}`. Shard names must be relative paths without ".." segments, so a loader can
 * join them to the index's folder safely. Throws INVALID_SAFETENSORS / BAD_INDEX.
 */
export function parseShardIndex(json: string | object): ShardIndex {
  let index: unknown = json;
  if (typeof json === 'string') {
    try {
      index = JSON.parse(json);
    } catch (e) {
      fail('BAD_INDEX', `the index is not valid JSON (${clip(String((e as Error)?.message), 160)})`, 'index');
    }
  }
  if (!isPlainObject(index)) fail('BAD_INDEX', `the index must be a JSON object, got ${describe(index)}`, 'index');
  const { metadata = {}, weight_map: weightMap } = index;
  if (!isPlainObject(metadata)) fail('BAD_INDEX', `"metadata" must be an object, got ${describe(metadata)}`, 'index');
  if (Object.prototype.hasOwnProperty.call(metadata, 'total_size')) {
    const total = metadata.total_size;
    if (typeof total !== 'number' || !Number.isFinite(total) || total < 0) {
      fail('BAD_INDEX', `"metadata.total_size" must be a non-negative number, got ${describe(total)}`, 'index');
    }
  }
  if (!isPlainObject(weightMap)) fail('BAD_INDEX', `"weight_map" must be an object of tensor → file name, got ${weightMap === undefined ? '(missing)' : describe(weightMap)}`, 'index');
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file === '') fail('BAD_INDEX', `weight_map[${quote(tensor)}] must be a file name, got ${describe(file)}`, 'index');
    if (file.startsWith('/') || file.includes('\\') || file.includes('\0') || /^[A-Za-z]:/.test(file) || file.split('/').includes('..')) {
      fail('BAD_INDEX', `weight_map[${quote(tensor)}] = ${quote(file)} is not a relative path inside the model's folder`, 'index');
    }
    map.set(tensor, file);
  }
  return { metadata: Object.fromEntries(Object.entries(metadata)), weightMap: map };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
