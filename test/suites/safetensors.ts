// safetensors reader/writer: hand-built files checked field by field, write → read round trips,
// float16/bfloat16 bit patterns (hand-worked, exhaustive, and against a brute-force rounding
// reference), every violation, truncation at every length, seeded fuzzing, the shard index.
// The module is plain TypeScript with no backend: the suite runs the same on every backend.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Harness } from '../harness.ts';
import { rng } from '../util.ts';
import {
  MergeKernelsError,
  decodeToFloat32, encodeFromFloat32, encodeSafetensorsHeader, parseSafetensorsHeader, parseSafetensorsHeaderFromBlob, parseShardIndex,
  readSafetensors, safetensorsViolation, writeSafetensors,
  type SafetensorsDtype, type SafetensorsTensorInput, type SafetensorsViolation,
} from 'merge-kernels';

const enc = new TextEncoder();

function concat(...parts: ArrayLike<number>[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** 8-byte little-endian length field, then the header (a string verbatim, or an object as JSON), then data. */
function file(header: string | object | Uint8Array, data: ArrayLike<number> = [], lengthField?: number | bigint): Uint8Array<ArrayBuffer> {
  const h = header instanceof Uint8Array ? header : enc.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(lengthField ?? h.length), true);
  return concat(len, h, data);
}

/** A tensor entry for a header. */
const T = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

/** Little-endian uint16 values of `bytes`. */
function u16(bytes: Uint8Array): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 2 }, (_, i) => v.getUint16(2 * i, true));
}

/** Bytes of little-endian uint16 values. */
function fromU16(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 2), v = new DataView(b.buffer);
  values.forEach((x, i) => v.setUint16(2 * i, x, true));
  return b;
}

const f16 = (x: number) => u16(encodeFromFloat32('F16', new Float32Array([x])))[0]!;
const bf16 = (x: number) => u16(encodeFromFloat32('BF16', new Float32Array([x])))[0]!;
const fromF16 = (bits: number) => decodeToFloat32('F16', fromU16([bits]))[0]!;
const fromBF16 = (bits: number) => decodeToFloat32('BF16', fromU16([bits]))[0]!;
const hex = (n: number) => '0x' + n.toString(16).padStart(4, '0');

/** Runs fn and expects INVALID_SAFETENSORS with `violation` (and the violation's name leading the message). */
async function violates(fn: () => unknown, violation: SafetensorsViolation, what: string, mentions: string[] = []): Promise<MergeKernelsError> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof MergeKernelsError)) return assert.unreachable(`${what}: expected MergeKernelsError, got ${(e as Error)?.name}: ${(e as Error)?.message}`) as never;
    assert.is(e.code as string, 'INVALID_SAFETENSORS', `${what}: code (message: ${e.message})`);
    assert.is((e as MergeKernelsError & { violation: string }).violation, violation, `${what}: violation (message: ${e.message})`);
    assert.is(safetensorsViolation(e), violation);
    assert.ok(e.message.startsWith(`${violation}: `), `${what}: message starts with the violation: ${e.message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `${what}: message should mention "${m}": ${e.message}`);
    return e;
  }
  return assert.unreachable(`${what}: expected ${violation}, but nothing was thrown`) as never;
}

/** Runs fn and expects a plain MergeKernelsError with `code` (argument errors). */
function throwsCode(fn: () => unknown, code: string, mentions: string[] = []): MergeKernelsError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof MergeKernelsError)) return assert.unreachable(`expected MergeKernelsError ${code}, got ${(e as Error)?.name}: ${(e as Error)?.message}`) as never;
    assert.is(e.code as string, code, `code (message: ${e.message})`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message should mention "${m}": ${e.message}`);
    return e;
  }
  return assert.unreachable(`expected MergeKernelsError ${code}, but nothing was thrown`) as never;
}

/** Element-wise identity that treats NaN as equal to NaN and tells -0 from 0. */
function sameValues(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Object.is(got[i], want[i]), `${what}[${i}]: got ${got[i]}, expected ${want[i]}`);
}

/** A valid file with several dtypes, an empty tensor, a scalar and metadata: the fuzzing seed. */
function sampleFile(): Uint8Array {
  return writeSafetensors([
    { name: 'w', dtype: 'F32', shape: [2, 3], data: encodeFromFloat32('F32', new Float32Array([1, -2, 3.5, NaN, Infinity, -0])) },
    { name: 'h', dtype: 'F16', shape: [3], data: encodeFromFloat32('F16', new Float32Array([0.5, -65504, 2 ** -24])) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
    { name: 'b', dtype: 'BF16', shape: [], data: encodeFromFloat32('BF16', new Float32Array([-3.140625])) },
    { name: 'i', dtype: 'I8', shape: [2], data: new Uint8Array([0x7f, 0x80]) },
  ], { format: 'pt' });
}

export default function (h: Harness) {
  const test = suite(`safetensors [${h.backend}]`);

  test('a hand-built file: every field of the header, views into the bytes, decoded values', () => {
    const header = {
      __metadata__: { format: 'pt', note: 'hand-built' },
      b: T('F16', [2], [8, 12]),      // listed out of file order on purpose
      a: T('F32', [2], [0, 8]),
      s: T('BF16', [], [12, 14]),      // rank-0 scalar
      c: T('U8', [2], [14, 16]),
      e: T('I32', [0, 3], [14, 14]),   // empty tensor at the same offset as c: sorts first
    };
    const text = JSON.stringify(header) + '   '; // trailing spaces are part of the header
    const data = [
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, // a: F32 1.0, -2.0
      0x00, 0x3c, 0xff, 0x7b,                         // b: F16 1.0 (0x3C00), 65504 (0x7BFF)
      0x49, 0xc0,                                     // s: BF16 0xC049 = -3.140625
      0x07, 0xff,                                     // c: U8 7, 255
    ];
    const bytes = file(text, data);
    const hdr = parseSafetensorsHeader(bytes);
    assert.is(hdr.headerLength, text.length);
    assert.is(hdr.dataOffset, 8 + text.length);
    assert.equal(hdr.metadata, { format: 'pt', note: 'hand-built' });
    assert.equal(hdr.tensors, [
      { name: 'a', dtype: 'F32', shape: [2], begin: 0, end: 8 },
      { name: 'b', dtype: 'F16', shape: [2], begin: 8, end: 12 },
      { name: 's', dtype: 'BF16', shape: [], begin: 12, end: 14 },
      { name: 'e', dtype: 'I32', shape: [0, 3], begin: 14, end: 14 },
      { name: 'c', dtype: 'U8', shape: [2], begin: 14, end: 16 },
    ]);

    const { metadata, tensors } = readSafetensors(bytes);
    assert.equal(metadata, hdr.metadata);
    assert.equal([...tensors.keys()], ['a', 'b', 's', 'e', 'c']);
    for (const t of hdr.tensors) {
      const got = tensors.get(t.name)!;
      assert.is(got.bytes.buffer, bytes.buffer, `${t.name} is a view, not a copy`);
      assert.is(got.bytes.byteOffset, hdr.dataOffset + t.begin, `${t.name} byteOffset`);
      assert.is(got.bytes.length, t.end - t.begin, `${t.name} length`);
      assert.equal(got.shape, t.shape);
      assert.is(got.dtype, t.dtype);
    }
    sameValues(decodeToFloat32('F32', tensors.get('a')!.bytes), [1, -2], 'a');
    sameValues(decodeToFloat32('F16', tensors.get('b')!.bytes), [1, 65504], 'b');
    sameValues(decodeToFloat32('BF16', tensors.get('s')!.bytes), [-3.140625], 's');
    sameValues(decodeToFloat32('U8', tensors.get('c')!.bytes), [7, 255], 'c');
    sameValues(decodeToFloat32('I32', tensors.get('e')!.bytes), [], 'e');

    // The same file at an odd byteOffset inside a larger buffer: views and decoding still work.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 1);
    const view = shifted.subarray(1, 1 + bytes.length);
    const again = readSafetensors(view).tensors;
    assert.is(again.get('a')!.bytes.byteOffset % 4, (1 + hdr.dataOffset) % 4);
    sameValues(decodeToFloat32('F32', again.get('a')!.bytes), [1, -2], 'a, unaligned');
    sameValues(decodeToFloat32('F16', again.get('b')!.bytes), [1, 65504], 'b, unaligned');
  });

  test('accepted edge cases: no tensors, null metadata, extra fields, odd names, known-but-undecodable dtypes', () => {
    let hdr = parseSafetensorsHeader(file('{}'));
    assert.equal(hdr.tensors, []);
    assert.equal(hdr.metadata, {});
    hdr = parseSafetensorsHeader(file('  \n{"__metadata__": null}\t '));
    assert.equal(hdr.metadata, {});
    hdr = parseSafetensorsHeader(file({ x: { ...T('F32', [1], [0, 4]), extra: [1, 2] } }, [0, 0, 0, 0]));
    assert.equal(hdr.tensors.map((t) => t.name), ['x']);
    // Names that are also Object.prototype members or empty; "__proto__" as a metadata key.
    const names = file('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"constructor":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},"__metadata__":{"__proto__":"x"}}', [1, 2]);
    const read = readSafetensors(names);
    assert.equal([...read.tensors.keys()], ['__proto__', 'constructor', '']);
    assert.equal(read.tensors.get('')!.shape, [0]);
    assert.is(Object.getPrototypeOf(read.metadata), Object.prototype);
    assert.is(read.metadata['__proto__'], 'x');
    // U16, U32, U64 and float8 parse (their bytes can be read and rewritten) but do not decode.
    hdr = parseSafetensorsHeader(file({ u: T('U16', [1], [0, 2]), v: T('U64', [1], [2, 10]), f: T('F8_E4M3', [2], [10, 12]), g: T('F8_E5M2', [1], [12, 13]), w: T('U32', [1], [13, 17]) }, new Uint8Array(17)));
    assert.equal(hdr.tensors.map((t) => t.dtype), ['U16', 'U64', 'F8_E4M3', 'F8_E5M2', 'U32']);
    // Large but consistent shapes: 2^40 empty rows.
    hdr = parseSafetensorsHeader(file({ big: T('F64', [2 ** 40, 0], [0, 0]) }));
    assert.equal(hdr.tensors[0]!.shape, [2 ** 40, 0]);
  });

  test('write → read round trip: F32/F16/BF16, empty tensors, scalars, NaN/Inf/-0, metadata, order', async () => {
    const f32 = new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 3.4028234663852886e38, 1e-45, -7]);
    const f16v = new Float32Array([0.5, -65504, 2 ** -24, Infinity, NaN, -0]);      // all exact in F16
    const bf16v = new Float32Array([1, -3.140625, 2 ** -133, -Infinity]);           // all exact in BF16
    const input: SafetensorsTensorInput[] = [
      { name: 'model.w', dtype: 'F32', shape: [2, 4], data: encodeFromFloat32('F32', f32) },
      { name: '10', dtype: 'F16', shape: [6], data: encodeFromFloat32('F16', f16v) },   // integer-like names keep their place
      { name: '2', dtype: 'BF16', shape: [2, 2], data: encodeFromFloat32('BF16', bf16v) },
      { name: 'empty', dtype: 'F32', shape: [0], data: new Uint8Array(0) },
      { name: 'empty3', dtype: 'F16', shape: [3, 0, 2], data: new Uint8Array(0) },
      { name: 'scalar', dtype: 'F32', shape: [], data: encodeFromFloat32('F32', new Float32Array([42.25])) },
      { name: 'scalar16', dtype: 'BF16', shape: [], data: encodeFromFloat32('BF16', new Float32Array([-2])) },
      { name: 'ünï\u{1F600}', dtype: 'I8', shape: [3], data: new Uint8Array([1, 255, 128]) },
    ];
    const metadata = { format: 'pt', '0': 'integer-like key', note: 'ünïcødé ✓ "quoted"' };
    const bytes = writeSafetensors(input, metadata);

    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.is(n % 8, 0, 'header padded to a multiple of 8');
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.ok(text.startsWith('{"__metadata__":{'), `metadata first: ${text.slice(0, 40)}`);
    let spaces = 0;
    while (bytes[8 + n - 1 - spaces] === 0x20) spaces++;
    assert.ok(spaces < 8 && bytes[8 + n - 1 - spaces] === 0x7d, `padding is 0–7 spaces after the JSON's closing brace (${spaces})`);
    assert.ok(JSON.parse(text), 'the padded header is JSON');

    const hdr = parseSafetensorsHeader(bytes);
    assert.is(hdr.headerLength, n);
    assert.equal(hdr.metadata, metadata);
    assert.equal(hdr.tensors.map((t) => t.name), input.map((t) => t.name), 'data in the given order');
    let offset = 0;
    for (const [i, t] of hdr.tensors.entries()) {
      assert.is(t.begin, offset, `${t.name} begins where the previous ended`);
      assert.equal(t.shape, input[i]!.shape);
      assert.is(t.dtype, input[i]!.dtype);
      offset = t.end;
    }
    assert.is(bytes.length, 8 + n + offset, 'no trailing bytes');

    const { tensors } = readSafetensors(bytes);
    for (const t of input) assert.equal(Array.from(tensors.get(t.name)!.bytes), Array.from(t.data), `${t.name} bytes`);
    sameValues(decodeToFloat32('F32', tensors.get('model.w')!.bytes), f32, 'F32');
    sameValues(decodeToFloat32('F16', tensors.get('10')!.bytes), f16v, 'F16');
    sameValues(decodeToFloat32('BF16', tensors.get('2')!.bytes), bf16v, 'BF16');
    sameValues(decodeToFloat32('F32', tensors.get('scalar')!.bytes), [42.25], 'scalar');
    sameValues(decodeToFloat32('BF16', tensors.get('scalar16')!.bytes), [-2], 'scalar16');
    sameValues(decodeToFloat32('I8', tensors.get('ünï\u{1F600}')!.bytes), [1, -1, -128], 'I8');
    assert.is(tensors.get('empty3')!.bytes.length, 0);

    // Reading only the header from a Blob gives the same header.
    assert.equal(await parseSafetensorsHeaderFromBlob(new Blob([bytes])), hdr);

    // Without metadata there is no __metadata__ entry; with no tensors the file is 16 bytes.
    const plain = writeSafetensors([input[0]!]);
    assert.not.ok(new TextDecoder().decode(plain).includes('__metadata__'));
    const empty = writeSafetensors([]);
    assert.is(empty.length, 16);
    assert.is(new TextDecoder().decode(empty.subarray(8)), '{}      ');
    assert.equal(parseSafetensorsHeader(empty).tensors, []);
    // A surrogate pair (an emoji) in a name is written as UTF-8 and survives.
    const pair = writeSafetensors([{ name: 'x\uD83D\uDE00', dtype: 'U8', shape: [1], data: new Uint8Array([9]) }]);
    assert.equal([...readSafetensors(pair).tensors.keys()], ['x\u{1F600}']);
  });

  test('F16 and BF16 hand-worked bit patterns, both directions', () => {
    // Encoding: round to nearest, ties to even.
    const halves: Array<[number, number, string]> = [
      [1, 0x3c00, '1.0'], [-2, 0xc000, '-2'], [0.5, 0x3800, '0.5'], [0.1, 0x2e66, '0.1 rounds to 0x2E66'],
      [65504, 0x7bff, 'max finite'], [65519.99, 0x7bff, 'just below the midpoint to 65536'],
      [65520, 0x7c00, 'the midpoint: ties to even (0x7C00) = Inf'], [1e10, 0x7c00, 'overflow'], [-1e10, 0xfc00, '-overflow'],
      [Infinity, 0x7c00, 'Inf'], [-Infinity, 0xfc00, '-Inf'], [0, 0x0000, '0'], [-0, 0x8000, '-0'],
      [2 ** -14, 0x0400, 'smallest normal'], [2 ** -24, 0x0001, 'smallest subnormal'], [1023 * 2 ** -24, 0x03ff, 'largest subnormal'],
      [1023.5 * 2 ** -24, 0x0400, 'largest subnormal + half: tie to even carries into the normals'],
      [2 ** -25, 0x0000, 'half the smallest subnormal: tie to even = 0'], [1.5 * 2 ** -25, 0x0001, 'above the tie'],
      [3 * 2 ** -25, 0x0002, '1.5 units: tie to even = 2'], [5 * 2 ** -25, 0x0002, '2.5 units: tie to even = 2'],
      [2 ** -26, 0x0000, 'underflow'], [-(2 ** -26), 0x8000, 'underflow keeps the sign'], [1e-45, 0x0000, 'float32 subnormal'],
      [1 + 2 ** -11, 0x3c00, '1 + half ulp: tie to even = 1'], [1 + 3 * 2 ** -11, 0x3c02, '1 + 1.5 ulp: tie to even'],
      [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just above the tie'],
    ];
    for (const [x, bits, what] of halves) assert.is(hex(f16(x)), hex(bits), `F16 encode ${x} (${what})`);
    const fnan = f16(NaN);
    assert.ok((fnan & 0x7c00) === 0x7c00 && (fnan & 0x3ff) !== 0, `F16 NaN stays NaN: ${hex(fnan)}`);

    const brains: Array<[number, number, string]> = [
      [1, 0x3f80, '1.0'], [-2, 0xc000, '-2'], [-0, 0x8000, '-0'], [Math.PI, 0x4049, 'pi'],
      [1 + 2 ** -8, 0x3f80, '1 + half ulp: tie to even = 1'], [1 + 3 * 2 ** -8, 0x3f82, '1 + 1.5 ulp: tie to even'],
      [1 + 3 * 2 ** -9, 0x3f81, '1 + 0.75 ulp rounds up'], [1 + 2 ** -9, 0x3f80, '1 + 0.25 ulp rounds down'],
      [3.3895313892515355e38, 0x7f7f, 'max finite'], [3.4028234663852886e38, 0x7f80, 'float32 max rounds to Inf'],
      [-Infinity, 0xff80, '-Inf'], [2 ** -133, 0x0001, 'a float32 subnormal'],
    ];
    for (const [x, bits, what] of brains) assert.is(hex(bf16(x)), hex(bits), `BF16 encode ${x} (${what})`);
    assert.is(hex(bf16(NaN)), '0x7fc0', 'BF16 NaN');
    // A NaN whose payload is only in the low 16 bits must not truncate to Inf.
    const payload = new Float32Array(new Uint32Array([0x7f800001, 0xff800001]).buffer);
    const pb = u16(encodeFromFloat32('BF16', payload));
    assert.ok(pb.every((b) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0), `BF16 low-payload NaN stays NaN: ${pb.map(hex)}`);
    assert.is(pb[1]! & 0x8000, 0x8000, 'NaN keeps its sign');
    const ph = u16(encodeFromFloat32('F16', payload));
    assert.ok(ph.every((b) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0), `F16 low-payload NaN stays NaN: ${ph.map(hex)}`);

    // Decoding.
    const decodes: Array<[number, number]> = [
      [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14],
      [0x7c00, Infinity], [0xfc00, -Infinity], [0x8000, -0], [0x0000, 0], [0x3555, 0.333251953125], [0x8001, -(2 ** -24)],
    ];
    for (const [bits, x] of decodes) assert.ok(Object.is(fromF16(bits), x), `F16 decode ${hex(bits)} → ${fromF16(bits)}, expected ${x}`);
    assert.ok(Number.isNaN(fromF16(0x7e00)) && Number.isNaN(fromF16(0x7c01)) && Number.isNaN(fromF16(0xfe00)), 'F16 NaNs decode to NaN');
    const bdecodes: Array<[number, number]> = [[0x3f80, 1], [0xc049, -3.140625], [0x7f80, Infinity], [0xff80, -Infinity], [0x8000, -0], [0x0001, 2 ** -133], [0x7f7f, 3.3895313892515355e38]];
    for (const [bits, x] of bdecodes) assert.ok(Object.is(fromBF16(bits), x), `BF16 decode ${hex(bits)} → ${fromBF16(bits)}, expected ${x}`);
    assert.ok(Number.isNaN(fromBF16(0x7fc0)) && Number.isNaN(fromBF16(0x7f81)), 'BF16 NaNs decode to NaN');
  });

  test('every F16 and BF16 bit pattern decodes and re-encodes to itself (NaNs stay NaN)', () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    for (const dtype of ['F16', 'BF16'] as const) {
      const values = decodeToFloat32(dtype, fromU16(all));
      const back = u16(encodeFromFloat32(dtype, values));
      const expMask = dtype === 'F16' ? 0x7c00 : 0x7f80;
      for (let b = 0; b < 65536; b++) {
        const isNaN = (b & expMask) === expMask && (b & ~expMask & 0x7fff) !== 0;
        if (isNaN) {
          assert.ok(Number.isNaN(values[b]), `${dtype} ${hex(b)} decodes to NaN`);
          const r = back[b]!;
          assert.ok((r & expMask) === expMask && (r & ~expMask & 0x7fff) !== 0 && (r & 0x8000) === (b & 0x8000), `${dtype} ${hex(b)} re-encodes to a NaN of the same sign, got ${hex(r)}`);
        } else if (back[b] !== b) {
          assert.unreachable(`${dtype} ${hex(b)} → ${values[b]} → ${hex(back[b]!)}`);
        }
      }
    }
  });

  test('F16/BF16 encoding is round-to-nearest-even against a brute-force reference', () => {
    // The reference works on the exact value in float64: scale by the target's ulp, round half
    // to even by hand, scale back; overflow past the last midpoint is Inf.
    const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
    const reference = (x: number, mantBits: number, minExp: number, maxExp: number): number => {
      if (Number.isNaN(x)) return NaN;
      const neg = x < 0 || Object.is(x, -0), a = Math.abs(x);
      const e32 = ((bitsOf(a) >>> 23) & 0xff) - 127;
      const ulp = 2 ** (Math.max(e32, minExp) - mantBits);
      const q = a / ulp, f = Math.floor(q), d = q - f;
      const r = d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
      let mag = r * ulp;
      if (mag >= 2 ** (maxExp + 1)) mag = Infinity;
      return neg ? -mag : mag;
    };
    const next = rng(2024);
    const xs = new Float32Array(40000);
    for (let i = 0; i < xs.length; i++) {
      const kind = i % 4;
      if (kind === 0) xs[i] = new Float32Array(new Uint32Array([Math.floor(next() * 2 ** 32)]).buffer)[0]!; // any float32
      else if (kind === 1) xs[i] = (next() < 0.5 ? -1 : 1) * 2 ** (-28 + 46 * next()) * (1 + next());      // F16 range and around it
      else if (kind === 2) xs[i] = (next() < 0.5 ? -1 : 1) * (Math.floor(next() * 2048) + 0.5) * 2 ** (Math.floor(next() * 40) - 35); // F16 ties
      else xs[i] = (next() < 0.5 ? -1 : 1) * (Math.floor(next() * 256) + 0.5) * 2 ** (Math.floor(next() * 260) - 140); // BF16 ties
    }
    const h = decodeToFloat32('F16', encodeFromFloat32('F16', xs));
    const b = decodeToFloat32('BF16', encodeFromFloat32('BF16', xs));
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!;
      const wantH = Math.fround(reference(x, 10, -14, 15)), wantB = Math.fround(reference(x, 7, -126, 127));
      if (!Object.is(h[i], wantH)) assert.unreachable(`F16 of ${x}: got ${h[i]}, expected ${wantH}`);
      if (!Object.is(b[i], wantB)) assert.unreachable(`BF16 of ${x}: got ${b[i]}, expected ${wantB}`);
    }
  });

  test('decodeToFloat32: every decodable dtype, unaligned input, bad lengths, unsupported dtypes', async () => {
    const le = (n: number, fill: (v: DataView) => void) => { const b = new Uint8Array(n); fill(new DataView(b.buffer)); return b; };
    sameValues(decodeToFloat32('F64', le(32, (v) => { v.setFloat64(0, 1.5, true); v.setFloat64(8, 1e300, true); v.setFloat64(16, -1e-300, true); v.setFloat64(24, 0.1, true); })),
      [1.5, Infinity, -0, Math.fround(0.1)], 'F64 rounds to nearest float32');
    sameValues(decodeToFloat32('I64', le(32, (v) => { v.setBigInt64(0, -1n, true); v.setBigInt64(8, 2n ** 40n + 3n, true); v.setBigInt64(16, -(2n ** 33n), true); v.setBigInt64(24, 2n ** 62n, true); })),
      [-1, Math.fround(2 ** 40 + 3), -(2 ** 33), 2 ** 62], 'I64');
    sameValues(decodeToFloat32('I32', le(8, (v) => { v.setInt32(0, -123456789, true); v.setInt32(4, 2147483647, true); })), [Math.fround(-123456789), 2147483648], 'I32');
    sameValues(decodeToFloat32('I16', le(4, (v) => { v.setInt16(0, -32768, true); v.setInt16(2, 1234, true); })), [-32768, 1234], 'I16');
    sameValues(decodeToFloat32('I8', new Uint8Array([0x80, 0x7f, 0xff])), [-128, 127, -1], 'I8');
    sameValues(decodeToFloat32('U8', new Uint8Array([0, 255])), [0, 255], 'U8');
    sameValues(decodeToFloat32('BOOL', new Uint8Array([0, 1, 2])), [0, 1, 1], 'BOOL');
    // Every dtype from an odd byteOffset (the typed-array views need aligned copies).
    const raw = le(8, (v) => v.setFloat64(0, -2.5, true));
    const odd = new Uint8Array(11);
    odd.set(raw, 3);
    sameValues(decodeToFloat32('F64', odd.subarray(3, 11)), [-2.5], 'F64 at byteOffset 3');
    sameValues(decodeToFloat32('F32', odd.subarray(3, 11)), decodeToFloat32('F32', raw), 'F32 at byteOffset 3');
    sameValues(decodeToFloat32('I16', odd.subarray(3, 11)), decodeToFloat32('I16', raw), 'I16 at byteOffset 3');
    // Decoding returns a copy: changing it leaves the file alone.
    const src = encodeFromFloat32('F32', new Float32Array([1, 2]));
    decodeToFloat32('F32', src)[0] = 99;
    sameValues(decodeToFloat32('F32', src), [1, 2], 'decode copies');

    throwsCode(() => decodeToFloat32('F32', new Uint8Array(6)), 'INVALID_SHAPE', ['6 bytes', '4-byte']);
    throwsCode(() => decodeToFloat32('F32', [0, 0, 0, 0] as never), 'INVALID_TYPE', ['Uint8Array']);
    throwsCode(() => encodeFromFloat32('F16', [1, 2] as never), 'INVALID_TYPE', ['Float32Array']);
    for (const d of ['U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'nope']) await violates(() => decodeToFloat32(d as SafetensorsDtype, new Uint8Array(8)), 'UNSUPPORTED_DTYPE', `decode ${d}`);
    await violates(() => encodeFromFloat32('F64' as never, new Float32Array(1)), 'UNSUPPORTED_DTYPE', 'encode F64', ['F64']);
  });

  test('every violation is reported as its own violation', async () => {
    const f4 = [0, 0, 0x80, 0x3f];
    const one = (entry: object) => file({ a: entry }, f4);
    const cases: Array<[SafetensorsViolation, string, Uint8Array<ArrayBuffer>, string[]?]> = [
      ['FILE_TOO_SHORT', 'empty file', new Uint8Array(0), ['0 bytes']],
      ['FILE_TOO_SHORT', '7 bytes', new Uint8Array(7)],
      ['HEADER_TOO_LARGE', 'N = 100,000,001', file('{}', [], 100_000_001), ['100000001']],
      ['HEADER_TOO_LARGE', 'N = 1e9', file('{}', [], 1e9)],
      ['HEADER_TOO_LARGE', 'N = 2^53', file('{}', [], 2 ** 53)],
      ['HEADER_TOO_LARGE', 'N = 2^63, printed exactly', file('{}', [], 2n ** 63n), ['9223372036854775808']],
      ['HEADER_TOO_LARGE', 'N = 2^64 - 1, printed exactly', file('{}', [], 2n ** 64n - 1n), ['18446744073709551615']],
      ['HEADER_OUT_OF_BOUNDS', 'N = 100,000,000 (the limit) in a tiny file', file('{}', [], 100_000_000)],
      ['HEADER_OUT_OF_BOUNDS', 'N past the end', file('{}', [], 3), ['says 3', 'only 2']],
      ['HEADER_OUT_OF_BOUNDS', 'data truncated', file({ a: T('F32', [2], [0, 8]) }, f4), ['need 8', 'only 4']],
      ['HEADER_NOT_UTF8', 'byte 0xFF', file(concat(enc.encode('{"a'), [0xff], enc.encode('":1}')))],
      ['HEADER_NOT_UTF8', 'overlong encoding of "/"', file(concat(enc.encode('{"'), [0xc0, 0xaf], enc.encode('":1}')))],
      ['HEADER_NOT_UTF8', 'encoded surrogate', file(concat(enc.encode('{"'), [0xed, 0xa0, 0x80], enc.encode('":1}')))],
      ['HEADER_NOT_UTF8', 'truncated sequence', file(concat(enc.encode('{}'), [0xe2, 0x82]))],
      ['HEADER_NOT_JSON', 'unterminated', file('{')],
      ['HEADER_NOT_JSON', 'trailing comma', file('{"__metadata__":{},}')],
      ['HEADER_NOT_JSON', 'garbage after the object', file('{} x')],
      ['HEADER_NOT_JSON', 'NUL padding', file('{}\0\0')],
      ['HEADER_NOT_JSON', 'byte-order mark', file(concat([0xef, 0xbb, 0xbf], enc.encode('{}')))],
      ['HEADER_NOT_JSON', 'N = 0', file('')],
      ['HEADER_NOT_OBJECT', 'array', file('[]'), ['array']],
      ['HEADER_NOT_OBJECT', 'null', file('null')],
      ['HEADER_NOT_OBJECT', 'number', file('42')],
      ['HEADER_NOT_OBJECT', 'string', file('"{}"')],
      ['BAD_ENTRY', 'entry is a number', file({ a: 1 }), ['"a"']],
      ['BAD_ENTRY', 'entry is null', file({ a: null })],
      ['BAD_ENTRY', 'entry is an array of two', file({ a: ['F32', [1]] }, f4)],
      ['BAD_ENTRY', 'entry is an array of four', file({ a: ['F32', [1], [0, 4], 0] }, f4)],
      ['BAD_ENTRY', 'field twice', file('{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', f4), ['"dtype"']],
      ['UNKNOWN_DTYPE', 'F31', one(T('F31', [1], [0, 4])), ['F31']],
      ['UNKNOWN_DTYPE', 'lower case', one(T('f32', [1], [0, 4]))],
      ['UNKNOWN_DTYPE', 'missing', file({ a: { shape: [1], data_offsets: [0, 4] } }, f4), ['missing']],
      ['UNKNOWN_DTYPE', 'a number', one(T(4, [1], [0, 4]))],
      ['UNKNOWN_DTYPE', 'an Object.prototype name', one(T('toString', [1], [0, 4]))],
      ['UNKNOWN_DTYPE', 'C128 (not a safetensors dtype)', one(T('C128', [1], [0, 16]))],
      ['BAD_SHAPE', 'negative', one(T('F32', [-1], [0, 4]))],
      ['BAD_SHAPE', 'fractional', one(T('F32', [1.5], [0, 4]))],
      ['BAD_SHAPE', 'string dim', one(T('F32', ['1'], [0, 4]))],
      ['BAD_SHAPE', 'not an array', one(T('F32', 1, [0, 4]))],
      ['BAD_SHAPE', 'missing', file({ a: { dtype: 'F32', data_offsets: [0, 4] } }, f4), ['missing']],
      ['HEADER_NOT_JSON', '1e400 in a shape (out of range for serde_json)', file('{"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}', f4), ['out of range']],
      ['BYTE_COUNT_MISMATCH', 'dim beyond 2^53 (a valid u64), printed exactly', file('{"a":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,4]}}', f4), ['9007199254740993']],
      ['BAD_SHAPE', 'numel × size overflows', one(T('F32', [2 ** 20, 2 ** 20, 2 ** 20], [0, 4])), ['overflows']],
      ['BAD_SHAPE', 'overflow before a 0 dim (2^80 elements)', one(T('F32', [2 ** 40, 2 ** 40, 0], [0, 0])), ['overflows']],
      ['BAD_OFFSETS', 'begin > end', one(T('F32', [1], [4, 0]))],
      ['BAD_OFFSETS', 'one offset', one(T('F32', [1], [4]))],
      ['BAD_OFFSETS', 'three offsets', one(T('F32', [1], [0, 4, 8]))],
      ['BAD_OFFSETS', 'negative', one(T('F32', [1], [-1, 3]))],
      ['BAD_OFFSETS', 'strings', one(T('F32', [1], ['0', '4']))],
      ['BAD_OFFSETS', 'fractional', one(T('F32', [1], [0, 4.5]))],
      ['BAD_OFFSETS', 'missing', file({ a: { dtype: 'F32', shape: [1] } }, f4), ['missing']],
      ['OFFSETS_NOT_TILED', 'beyond 2^53 (a valid u64), printed exactly', file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[9007199254740993,9007199254740997]}}', f4), ['9007199254740993']],
      ['BAD_OFFSETS', 'beyond 2^64 - 1', file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551616,18446744073709551620]}}', f4)],
      ['OFFSETS_NOT_TILED', 'gap at the start', file({ a: T('F32', [1], [4, 8]) }, [...f4, ...f4]), ['gap', '[0, 4)']],
      ['OFFSETS_NOT_TILED', 'gap between', file({ a: T('F32', [1], [0, 4]), b: T('F32', [1], [8, 12]) }, [...f4, ...f4, ...f4]), ['gap']],
      ['OFFSETS_NOT_TILED', 'overlap', file({ a: T('F32', [2], [0, 8]), b: T('F32', [2], [4, 12]) }, [...f4, ...f4, ...f4]), ['overlap']],
      ['OFFSETS_NOT_TILED', 'two tensors share bytes', file({ a: T('F32', [1], [0, 4]), b: T('F32', [1], [0, 4]) }, f4)],
      ['OFFSETS_NOT_TILED', 'empty tensor inside another', file({ a: T('F32', [2], [0, 8]), e: T('F32', [0], [4, 4]) }, [...f4, ...f4])],
      ['BYTE_COUNT_MISMATCH', 'too many bytes', file({ a: T('F32', [2], [0, 12]) }, [...f4, ...f4, ...f4]), ['needs 8', 'span 12']],
      ['BYTE_COUNT_MISMATCH', 'too few bytes', one(T('F16', [3], [0, 4]))],
      ['BYTE_COUNT_MISMATCH', 'empty tensor with bytes', one(T('F32', [0], [0, 4]))],
      ['TRAILING_BYTES', 'one byte too many', file({ a: T('F32', [1], [0, 4]) }, [...f4, 0]), ['1 more']],
      ['TRAILING_BYTES', 'no tensors but data', file('{}', [1, 2, 3])],
      ['BAD_METADATA', 'number value', file({ __metadata__: { k: 1 } }), ['"k"']],
      ['BAD_METADATA', 'nested object value', file({ __metadata__: { k: { a: 'b' } } })],
      ['BAD_METADATA', 'array', file({ __metadata__: ['a'] })],
      ['BAD_METADATA', 'string', file({ __metadata__: 'pt' })],
      ['BAD_METADATA', 'twice', file('{"__metadata__":{},"__metadata__":{}}'), ['twice']],
      ['BAD_METADATA', 'a key twice', file('{"__metadata__":{"k":"1","k":"2"}}'), ['"k"']],
      ['DUPLICATE_TENSOR', 'same name, same offsets', file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f4), ['"a"']],
      ['DUPLICATE_TENSOR', 'same name via an escape', file('{"ab":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a\\u0062":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', [1, 2]), ['"ab"']],
    ];
    const seen = new Set<string>();
    for (const [violation, what, bytes, mentions] of cases) {
      const err = await violates(() => parseSafetensorsHeader(bytes), violation, what, mentions);
      assert.is(err.argument, 'file');
      await violates(() => readSafetensors(bytes), violation, `${what} (readSafetensors)`);
      await violates(() => parseSafetensorsHeaderFromBlob(new Blob([bytes])), violation, `${what} (Blob)`);
      seen.add(violation);
    }
    await violates(() => decodeToFloat32('U16', new Uint8Array(2)), 'UNSUPPORTED_DTYPE', 'decode U16', ['U16']);
    seen.add('UNSUPPORTED_DTYPE');
    await violates(() => parseShardIndex('{'), 'BAD_INDEX', 'index');
    seen.add('BAD_INDEX');
    assert.is(seen.size, 17, `all 17 violations covered: ${[...seen].join(' ')}`);
    throwsCode(() => parseSafetensorsHeader([1, 2, 3] as never), 'INVALID_TYPE', ['Uint8Array']);
    await parseSafetensorsHeaderFromBlob(new Uint8Array(16) as never).then(() => assert.unreachable('not a Blob'), (e: MergeKernelsError) => assert.is(e.code, 'INVALID_TYPE'));
  });

  // What the reference reader (huggingface/safetensors: serde_json into a struct with a flattened
  // map, then u64 checks) accepts and refuses, one minimal file per rule. Expected outcomes follow
  // from its source: usize fields refuse what serde_json reads as f64 (a fraction, an exponent,
  // -0) or i64; strings must be Unicode (paired surrogates); at most 127 arrays/objects open;
  // numbers out of f64 range are errors; the element count is a checked u64 product.
  const F4B = [0, 0, 0x80, 0x3f]; // 1.0f as F32 bytes
  const entry = (dtype: string, shape: string, offsets: string, extra = '') => `{"dtype":"${dtype}","shape":${shape},"data_offsets":${offsets}${extra}}`;

  test('untyped errors: data_offsets nested 4,100 or 10,000 deep is HEADER_NOT_JSON, not a RangeError', async () => {
    // A message that JSON.stringify-ed such a value would overflow the stack: at 4,100 levels (an
    // 8 KB file) inside the CLI, at 10,000 anywhere.
    for (const levels of [4100, 10_000]) {
      const deep = file(`{"a":${entry('F32', '[1]', '['.repeat(levels) + ']'.repeat(levels))}}`, F4B);
      assert.ok(deep.length > 2 * levels && deep.length < 2 * levels + 100, `${deep.length} bytes`);
      const err = await violates(() => parseSafetensorsHeader(deep), 'HEADER_NOT_JSON', `${levels} levels`, ['127']);
      assert.ok(err.message.length < 300, `a short message: ${err.message.length} characters`);
      await violates(() => parseSafetensorsHeaderFromBlob(new Blob([deep])), 'HEADER_NOT_JSON', `${levels} levels (Blob)`);
    }
    // As deep in a value the reader only reports: 126 levels (the limit) is a BAD_OFFSETS that
    // prints a bounded sketch of the value, not the value.
    const d = 127 - 3; // top-level object, entry object, data_offsets array: 3 levels already open
    const bounded = file(`{"a":${entry('F32', '[1]', '[' + '['.repeat(d) + ']'.repeat(d) + ',4]')}}`, F4B);
    const e2 = await violates(() => parseSafetensorsHeader(bounded), 'BAD_OFFSETS', `${d + 1} levels of data_offsets`);
    assert.ok(e2.message.length < 400, `a short message: ${e2.message}`);
  });

  test('refused like the reference: integer-valued floats, -0 and negatives as dims or offsets', async () => {
    const cases: Array<[SafetensorsViolation, string, string]> = [
      ['BAD_SHAPE', '[2.0, 3e0]', `{"a":${entry('F32', '[2.0,3e0]', '[0,24]')}}`],
      ['BAD_SHAPE', '[1.0]', `{"a":${entry('F32', '[1.0]', '[0,4]')}}`],
      ['BAD_SHAPE', '[1E0]', `{"a":${entry('F32', '[1E0]', '[0,4]')}}`],
      ['BAD_SHAPE', '[10e-1]', `{"a":${entry('F32', '[10e-1]', '[0,4]')}}`],
      ['BAD_SHAPE', '[-0]', `{"a":${entry('F32', '[-0]', '[0,0]')}}`],
      ['BAD_SHAPE', '[-1]', `{"a":${entry('F32', '[-1]', '[0,4]')}}`],
      ['BAD_OFFSETS', '[0, 4.0]', `{"a":${entry('F32', '[1]', '[0,4.0]')}}`],
      ['BAD_OFFSETS', '[0e0, 4]', `{"a":${entry('F32', '[1]', '[0e0,4]')}}`],
      ['BAD_OFFSETS', '[-0, 4]', `{"a":${entry('F32', '[1]', '[-0,4]')}}`],
    ];
    for (const [violation, what, header] of cases) {
      const bytes = file(header, violation === 'BAD_SHAPE' && what.startsWith('[2.0') ? new Uint8Array(24) : F4B);
      await violates(() => parseSafetensorsHeader(bytes), violation, what);
    }
  });

  test('refused like the reference: lone surrogate escapes in names, metadata keys and values', async () => {
    const lone = ['"a\\ud800"', '"\\udc00"', '"a\\ud800\\u0041"', '"a\\ud800\\n"', '"\\ud800"', '"\\udbff\\ud800"'];
    for (const s of lone) {
      await violates(() => parseSafetensorsHeader(file(`{${s}:${entry('F32', '[1]', '[0,4]')}}`, F4B)), 'HEADER_NOT_JSON', `name ${s}`, ['surrogate']);
      await violates(() => parseSafetensorsHeader(file(`{"__metadata__":{${s}:"v"}}`)), 'HEADER_NOT_JSON', `metadata key ${s}`, ['surrogate']);
      await violates(() => parseSafetensorsHeader(file(`{"__metadata__":{"k":${s}}}`)), 'HEADER_NOT_JSON', `metadata value ${s}`, ['surrogate']);
      // In a field the reader ignores too: serde_json parses every string of the header.
      await violates(() => parseSafetensorsHeader(file(`{"a":${entry('F32', '[1]', '[0,4]', `,"x":${s}`)}}`, F4B)), 'HEADER_NOT_JSON', `ignored field ${s}`);
    }
    // A pair, escaped in either case, is one character; escaped ASCII is fine.
    const ok = readSafetensors(file(`{"a\\uD83D\\ude00\\u0062":${entry('F32', '[1]', '[0,4]')},"__metadata__":{"k":"\\ud83d\\ude00"}}`, F4B));
    assert.equal([...ok.tensors.keys()], ['a\u{1F600}b']);
    assert.is(ok.metadata.k, '\u{1F600}');
  });

  test('refused like the reference: nesting past serde_json\'s recursion limit (127 open), also in ignored fields', async () => {
    // An ignored field "x" of an entry: 2 levels (header, entry) are open, then x's own arrays.
    const withX = (levels: number) => file(`{"a":${entry('F32', '[1]', '[0,4]', `,"x":${'['.repeat(levels)}${']'.repeat(levels)}`)}}`, F4B);
    assert.is(parseSafetensorsHeader(withX(125)).tensors.length, 1, '127 open at once is accepted');
    await violates(() => parseSafetensorsHeader(withX(126)), 'HEADER_NOT_JSON', '128 open at once', ['127']);
    await violates(() => parseSafetensorsHeader(withX(5000)), 'HEADER_NOT_JSON', '5002 open at once');
    // Objects count like arrays.
    const objects = (levels: number) => file(`{"a":${entry('F32', '[1]', '[0,4]', `,"x":${'{"k":'.repeat(levels)}0${'}'.repeat(levels)}`)}}`, F4B);
    assert.is(parseSafetensorsHeader(objects(125)).tensors.length, 1);
    await violates(() => parseSafetensorsHeader(objects(126)), 'HEADER_NOT_JSON', '128 objects open');
  });

  test('refused like the reference: numbers out of f64 range anywhere (serde_json NumberOutOfRange); underflow is fine', async () => {
    const withX = (x: string) => file(`{"a":${entry('F32', '[1]', '[0,4]', `,"x":${x}`)}}`, F4B);
    // 2e308 > 1.8e308 (the largest double); 1e309: exponent beyond 308 with a nonzero digit;
    // 1e99999999999: exponent digits beyond i32; a 400-digit integer.
    for (const x of ['1e400', '-1e400', '2e308', '1e309', '1e99999999999', '1' + '0'.repeat(400), '0.1e310']) {
      await violates(() => parseSafetensorsHeader(withX(x)), 'HEADER_NOT_JSON', x.slice(0, 20), ['out of range']);
    }
    for (const x of ['1e308', '1.5e308', '-1e308', '1e-400', '0e400', '0.0e99999999999', '1e-99999999999', '18446744073709551616', '-9223372036854775809', '1' + '0'.repeat(300)]) {
      assert.is(parseSafetensorsHeader(withX(x)).tensors.length, 1, `${x.slice(0, 20)} is accepted`);
    }
  });

  test('accepted like the reference: entries in serde\'s array form, [2^60, 0], exact u64 dims, the map form of a dtype', () => {
    let hdr = parseSafetensorsHeader(file('{"w":["F32",[1],[0,4]]}', F4B));
    assert.equal(hdr.tensors, [{ name: 'w', dtype: 'F32', shape: [1], begin: 0, end: 4 }]);
    hdr = parseSafetensorsHeader(file('{"w":["F16",[2,1],[0,4]],"__metadata__":{"k":"v"},"e":["U8",[0],[4,4]]}', F4B));
    assert.equal(hdr.tensors.map((t) => [t.name, t.dtype, t.shape, t.begin, t.end]), [['w', 'F16', [2, 1], 0, 4], ['e', 'U8', [0], 4, 4]]);
    // The element count is a checked u64 product: 2^60 · 0 = 0 elements; 2^64 − 1 is a u64.
    hdr = parseSafetensorsHeader(file(`{"z":${entry('F32', '[1152921504606846976,0]', '[0,0]')}}`));
    assert.equal(hdr.tensors[0]!.shape, [2 ** 60, 0]);
    hdr = parseSafetensorsHeader(file(`{"z":${entry('F64', '[0,18446744073709551615,7]', '[0,0]')}}`));
    assert.equal(hdr.tensors[0]!.shape, [0, 2 ** 64, 7], 'beyond 2^53 − 1 a dimension is the nearest double');
    // 2^30 · 2^30 = 2^60 elements still fits u64, so a later 0 makes the tensor empty.
    assert.is(parseSafetensorsHeader(file({ z: T('F32', [2 ** 30, 2 ** 30, 0], [0, 0]) })).tensors.length, 1);
    // serde reads an enum variant from a string or from a one-key map with a null value.
    hdr = parseSafetensorsHeader(file(`{"w":${entry('F32', '[1]', '[0,4]').replace('"F32"', '{"F32":null}')}}`, F4B));
    assert.is(hdr.tensors[0]!.dtype, 'F32');
  });

  test('refused: array entries of the wrong length, dtype maps that are not {variant: null}, 2^64 as a dim', async () => {
    await violates(() => parseSafetensorsHeader(file('{"w":["F32",[1]]}', F4B)), 'BAD_ENTRY', 'two items');
    await violates(() => parseSafetensorsHeader(file('{"w":[]}', F4B)), 'BAD_ENTRY', 'no items');
    await violates(() => parseSafetensorsHeader(file('{"w":["F32",[1],[0,4],null]}', F4B)), 'BAD_ENTRY', 'four items');
    await violates(() => parseSafetensorsHeader(file('{"w":[[1],"F32",[0,4]]}', F4B)), 'UNKNOWN_DTYPE', 'items out of order');
    for (const d of ['{"F32":1}', '{"F32":null,"F16":null}', '{}', '["F32"]', '{"F31":null}']) {
      await violates(() => parseSafetensorsHeader(file(`{"w":${entry('F32', '[1]', '[0,4]').replace('"F32"', d)}}`, F4B)), 'UNKNOWN_DTYPE', `dtype ${d}`);
    }
    await violates(() => parseSafetensorsHeader(file(`{"z":${entry('F32', '[18446744073709551616,0]', '[0,0]')}}`)), 'BAD_SHAPE', '2^64 as a dim (an f64 for serde_json)');
  });

  test('duplicates: names and metadata keys are refused, a documented difference from the reference (which keeps the last)', async () => {
    // Same offsets, so the reference's last-wins map would accept it; a duplicate name is ambiguous.
    const twice = file(`{"a":${entry('F32', '[1]', '[0,4]')},"a":${entry('F32', '[1]', '[0,4]')}}`, F4B);
    await violates(() => parseSafetensorsHeader(twice), 'DUPLICATE_TENSOR', 'same name, same bytes', ['"a"', 'twice']);
    const arrayForm = file(`{"a":["F32",[1],[0,4]],"a":${entry('U8', '[4]', '[0,4]')}}`, F4B);
    await violates(() => parseSafetensorsHeader(arrayForm), 'DUPLICATE_TENSOR', 'same name, two dtypes');
    await violates(() => parseSafetensorsHeader(file('{"__metadata__":{"k":"1","k":"1"}}')), 'BAD_METADATA', 'same key, same value', ['"k"', 'twice']);
  });

  test('every dtype of the reference: read as raw bytes with the right size, written back; sub-byte dtypes need whole bytes', async () => {
    // Bits per element from the format's dtype list; byte counts worked out by hand.
    const dtypes: Array<[string, number[], number]> = [
      ['C64', [2], 16], ['F8_E8M0', [3], 3], ['F8_E4M3FNUZ', [2], 2], ['F8_E5M2FNUZ', [1], 1],
      ['F4', [2, 3], 3], ['F6_E2M3', [4], 3], ['F6_E3M2', [8], 6], ['F4', [0], 0],
    ];
    let offset = 0;
    const parts: string[] = [];
    for (const [i, [dtype, shape, bytes]] of dtypes.entries()) {
      parts.push(`"t${i}":${entry(dtype, JSON.stringify(shape), `[${offset},${offset + bytes}]`)}`);
      offset += bytes;
    }
    const data = Uint8Array.from({ length: offset }, (_, i) => i + 1);
    const read = readSafetensors(file(`{${parts.join(',')}}`, data));
    let at = 0;
    for (const [i, [dtype, shape, bytes]] of dtypes.entries()) {
      const t = read.tensors.get(`t${i}`)!;
      assert.is(t.dtype, dtype);
      assert.equal(t.shape, shape);
      assert.equal(Array.from(t.bytes), Array.from(data.subarray(at, at + bytes)), `${dtype} bytes`);
      at += bytes;
      if (bytes > 0) await violates(() => decodeToFloat32(t.dtype, t.bytes), 'UNSUPPORTED_DTYPE', `decode ${dtype}`, [dtype]);
    }
    const again = writeSafetensors([...read.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.bytes })));
    assert.equal([...readSafetensors(again).tensors].map(([n, t]) => [n, t.dtype, t.shape, Array.from(t.bytes)]),
      [...read.tensors].map(([n, t]) => [n, t.dtype, t.shape, Array.from(t.bytes)]));
    // 3 × 4 bits or 3 × 6 bits is not a whole number of bytes (the reference's MisalignedSlice).
    await violates(() => parseSafetensorsHeader(file(`{"a":${entry('F4', '[3]', '[0,2]')}}`, [0, 0])), 'BAD_SHAPE', 'F4 [3]', ['whole number of bytes']);
    await violates(() => parseSafetensorsHeader(file(`{"a":${entry('F6_E2M3', '[3]', '[0,3]')}}`, [0, 0, 0])), 'BAD_SHAPE', 'F6_E2M3 [3]');
    throwsCode(() => writeSafetensors([{ name: 'a', dtype: 'F4', shape: [3], data: new Uint8Array(2) }]), 'INVALID_SHAPE', ['whole number of bytes']);
  });

  test('writeSafetensors refuses what the reader refuses: lone surrogates in names, metadata keys and values', () => {
    const ok: SafetensorsTensorInput = { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) };
    for (const lone of ['x\uD800', '\uDC00', 'a\uDBFFb', '\uDC00\uD800']) {
      throwsCode(() => writeSafetensors([{ ...ok, name: lone }]), 'INVALID_OPTION', ['surrogate']);
      throwsCode(() => encodeSafetensorsHeader([{ name: lone, dtype: 'U8', shape: [1] }]), 'INVALID_OPTION', ['surrogate']);
      throwsCode(() => writeSafetensors([ok], { [lone]: 'v' }), 'INVALID_OPTION', ['surrogate']);
      throwsCode(() => writeSafetensors([ok], { k: lone }), 'INVALID_OPTION', ['surrogate']);
    }
    // What the reader accepts can be written: [2^60, 0], exactly.
    const empty = writeSafetensors([{ name: 'z', dtype: 'F32', shape: [2 ** 60, 0], data: new Uint8Array(0) }]);
    assert.ok(new TextDecoder().decode(empty).includes('"shape":[1152921504606846976,0]'));
    assert.equal(readSafetensors(empty).tensors.get('z')!.shape, [2 ** 60, 0]);
    throwsCode(() => writeSafetensors([{ ...ok, shape: [2 ** 64, 0] }]), 'INVALID_SHAPE', ['2^64']);
  });

  test('truncation at every length is FILE_TOO_SHORT or HEADER_OUT_OF_BOUNDS; one byte more is TRAILING_BYTES', async () => {
    const bytes = sampleFile();
    for (let len = 0; len < bytes.length; len++) {
      await violates(() => parseSafetensorsHeader(bytes.subarray(0, len)), len < 8 ? 'FILE_TOO_SHORT' : 'HEADER_OUT_OF_BOUNDS', `truncated to ${len} of ${bytes.length}`);
    }
    await violates(() => parseSafetensorsHeader(concat(bytes, [0])), 'TRAILING_BYTES', 'one extra byte');
    assert.is(parseSafetensorsHeader(bytes).tensors.length, 5);
  });

  test('fuzz: 400 seeded mutations of a valid file either parse or throw INVALID_SAFETENSORS', () => {
    const base = sampleFile();
    const n0 = Number(new DataView(base.buffer).getBigUint64(0, true));
    const next = rng(7);
    const int = (k: number) => Math.floor(next() * k);
    const pick = <X>(xs: readonly X[]): X => xs[int(xs.length)]!;
    const setLength = (b: Uint8Array, v: number | bigint) => new DataView(b.buffer, b.byteOffset, 8).setBigUint64(0, BigInt(v), true);
    /** Replaces header text and rewrites the length field so the mutation reaches the JSON checks. */
    const withHeader = (text: string) => file(text, base.subarray(8 + n0));
    const headerText = new TextDecoder().decode(base.subarray(8, 8 + n0));
    const lengths = [2 ** 53, 2 ** 53 - 1, 1e9, 2n ** 64n - 1n, 2n ** 63n, 100_000_001, 100_000_000, 0, 1, n0 - 1, n0 + 1, n0 + 8, base.length, 2 ** 32, 2 ** 32 + n0];
    const numbers = ['0', '1', '-1', '1.5', '1e400', '9007199254740993', '4294967296', '-0', '3', '""', 'null', '[]', '{}'];
    const violations = new Map<string, number>();
    let accepted = 0;
    const digitRuns = [...headerText.matchAll(/\d+/g)]; // numbers, and the digits of dtypes (F32)
    // The sample's dimensions and offsets: 6 dimensions and 5 pairs of offsets. Rewriting one as a
    // float, however integer-valued, must be refused.
    const runs = [...headerText.matchAll(/(?<=[[,])\d+(?=[\],])/g)];
    assert.is(runs.length, 16, 'the dimensions and offsets of the sample');
    /** The outcome a generator knows in advance: a set of violations, or 'accept'. */
    let expected: ReadonlySet<string> | 'accept' | undefined;
    for (let trial = 0; trial < 400; trial++) {
      let b: Uint8Array;
      const kind = trial % 10;
      expected = undefined;
      if (kind === 0) { // bit flips, mostly in the header
        b = base.slice();
        for (let k = 1 + int(4); k > 0; k--) { const at = next() < 0.7 ? int(8 + n0) : int(b.length); b[at]! ^= 1 << int(8); }
      } else if (kind === 1) { // header length field set to a huge or off-by-one value
        b = base.slice();
        setLength(b, pick(lengths));
      } else if (kind === 2) { // random bytes overwritten
        b = base.slice();
        const at = int(b.length);
        for (let k = 0; k < 1 + int(8) && at + k < b.length; k++) b[at + k] = int(256);
      } else if (kind === 3) { // one header character replaced by JSON punctuation or a digit
        const at = int(headerText.length);
        b = withHeader(headerText.slice(0, at) + pick([...'{}[]",:0123456789-e. \\x']) + headerText.slice(at + 1));
      } else if (kind === 4) { // a number in the header replaced by an edge value
        const m = pick(digitRuns);
        b = withHeader(headerText.slice(0, m.index) + pick(numbers) + headerText.slice(m.index! + m[0].length));
      } else if (kind === 5) { // a slice of the header deleted
        const at = int(headerText.length), len = 1 + int(12);
        b = withHeader(headerText.slice(0, at) + headerText.slice(at + len));
      } else if (kind === 6) { // truncated, then random bytes appended
        b = concat(base.subarray(0, int(base.length)), Array.from({ length: int(16) }, () => int(256)));
      } else if (kind === 8) { // deep nesting: around a dimension or offset, or in an ignored field of an entry
        const levels = pick([1, 2, 100, 123, 124, 125, 126, 127, 500, 4100]);
        if (next() < 0.5) {
          // Three levels (header, entry, shape or data_offsets) are open around the number.
          const m = pick(runs);
          b = withHeader(headerText.slice(0, m.index) + '['.repeat(levels) + m[0] + ']'.repeat(levels) + headerText.slice(m.index! + m[0].length));
          expected = new Set(3 + levels > 127 ? ['HEADER_NOT_JSON'] : ['BAD_SHAPE', 'BAD_OFFSETS']);
        } else {
          // Two levels (header, entry) are open around the ignored field's value.
          const at = headerText.indexOf('"dtype"');
          b = withHeader(headerText.slice(0, at) + `"x":${'['.repeat(levels)}${']'.repeat(levels)},` + headerText.slice(at));
          expected = 2 + levels > 127 ? new Set(['HEADER_NOT_JSON']) : 'accept';
        }
      } else if (kind === 9) { // a dimension or offset written as an integer-valued float, -0 or negative
        const m = pick(runs);
        const float = pick([`${m[0]}.0`, `${m[0]}e0`, `${m[0]}E+0`, `${m[0]}.000`, `${m[0]}0e-1`, `-${m[0]}`, `${m[0]}.0e0`]);
        b = withHeader(headerText.slice(0, m.index) + float + headerText.slice(m.index! + m[0].length));
        expected = new Set(['BAD_SHAPE', 'BAD_OFFSETS']);
      } else { // random bytes behind a plausible or random length field
        b = new Uint8Array(int(64));
        for (let i = 0; i < b.length; i++) b[i] = int(256);
        if (b.length >= 8 && next() < 0.5) setLength(b, int(b.length - 7));
      }
      let outcome: string;
      let message = '';
      try {
        const { tensors } = readSafetensors(b);
        outcome = 'accept';
        accepted++;
        for (const [name, t] of tensors) {
          // Whatever parsed must decode, or say its dtype is not decodable.
          try { decodeToFloat32(t.dtype, t.bytes); } catch (e) {
            if (safetensorsViolation(e) !== 'UNSUPPORTED_DTYPE') assert.unreachable(`trial ${trial}: decoding ${name} (${t.dtype}) threw ${(e as Error).message}`);
          }
        }
      } catch (e) {
        if (!(e instanceof MergeKernelsError) || (e.code as string) !== 'INVALID_SAFETENSORS') {
          assert.unreachable(`trial ${trial} (kind ${kind}): expected INVALID_SAFETENSORS, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
        }
        outcome = safetensorsViolation(e)!;
        message = (e as Error).message;
        violations.set(outcome, (violations.get(outcome) ?? 0) + 1);
      }
      if (expected !== undefined && (expected === 'accept' ? outcome !== 'accept' : !expected.has(outcome))) {
        assert.unreachable(`trial ${trial} (kind ${kind}): ${outcome}, expected ${expected === 'accept' ? 'accept' : [...expected].join(' or ')} ${message}`);
      }
    }
    // The mutations must reach deep checks, not only the first ones.
    assert.ok(violations.size >= 8, `violations seen: ${[...violations].map(([v, c]) => `${v}×${c}`).join(' ')}; accepted ${accepted}`);
  });

  test('writeSafetensors rejects bad input, naming the tensor', () => {
    const ok: SafetensorsTensorInput = { name: 'a', dtype: 'F32', shape: [1], data: new Uint8Array(4) };
    let err = throwsCode(() => writeSafetensors([ok, { ...ok }]), 'INVALID_OPTION', ['"a"', 'twice']);
    assert.is(err.argument, 'tensors[1]');
    err = throwsCode(() => writeSafetensors([{ ...ok, name: 'b', shape: [2] }]), 'INVALID_SHAPE', ['"b"', 'needs 8', 'has 4']);
    assert.is(err.argument, 'tensors[0]');
    throwsCode(() => writeSafetensors([{ ...ok, shape: [-1] }]), 'INVALID_SHAPE', ['"a"']);
    throwsCode(() => writeSafetensors([{ ...ok, shape: [1.5] as never }]), 'INVALID_SHAPE', ['"a"']);
    throwsCode(() => writeSafetensors([{ ...ok, shape: [2 ** 40, 2 ** 40, 0] }]), 'INVALID_SHAPE', ['overflows']);
    throwsCode(() => writeSafetensors([{ ...ok, shape: undefined as never }]), 'INVALID_SHAPE', ['"a"']);
    throwsCode(() => writeSafetensors([{ ...ok, dtype: 'F31' as never }]), 'INVALID_OPTION', ['"a"', 'F31']);
    throwsCode(() => writeSafetensors([{ ...ok, data: new Float32Array(1) as never }]), 'INVALID_TYPE', ['"a"', 'Float32Array']);
    throwsCode(() => writeSafetensors([{ ...ok, name: 3 as never }]), 'INVALID_TYPE', ['name']);
    throwsCode(() => writeSafetensors([{ ...ok, name: '__metadata__' }]), 'INVALID_OPTION', ['reserved']);
    throwsCode(() => writeSafetensors([null as never]), 'INVALID_TYPE', ['tensors[0]']);
    throwsCode(() => writeSafetensors({} as never), 'INVALID_TYPE', ['array']);
    throwsCode(() => writeSafetensors([ok], { k: 1 as never }), 'INVALID_TYPE', ['"k"']);
    throwsCode(() => writeSafetensors([ok], [] as never), 'INVALID_TYPE', ['metadata']);
    // Raw bytes of dtypes that do not decode can still be written and read back.
    const u16file = writeSafetensors([{ name: 'u', dtype: 'U16', shape: [2], data: new Uint8Array([1, 2, 3, 4]) }]);
    assert.equal(Array.from(readSafetensors(u16file).tensors.get('u')!.bytes), [1, 2, 3, 4]);
  });

  test('shard index: model.safetensors.index.json', async () => {
    const text = JSON.stringify({
      metadata: { total_size: 16060522496, format: 'pt' },
      weight_map: { 'lm_head.weight': 'model-00002-of-00002.safetensors', 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors', '0': 'sub/model-00001-of-00002.safetensors' },
    });
    const idx = parseShardIndex(text);
    assert.equal(idx.metadata, { total_size: 16060522496, format: 'pt' });
    assert.is(idx.weightMap.size, 3);
    assert.is(idx.weightMap.get('lm_head.weight'), 'model-00002-of-00002.safetensors');
    assert.is(idx.weightMap.get('0'), 'sub/model-00001-of-00002.safetensors');
    assert.equal(parseShardIndex(JSON.parse(text)), idx, 'an object parses like its text');
    assert.equal(parseShardIndex({ weight_map: {} }).metadata, {}, 'metadata is optional');

    const bad: Array<[unknown, string[]]> = [
      ['{', ['JSON']],
      ['[]', ['object']],
      ['null', ['object']],
      [{ metadata: {} }, ['weight_map', 'missing']],
      [{ weight_map: [] }, ['weight_map']],
      [{ weight_map: { a: 1 } }, ['"a"']],
      [{ weight_map: { a: '' } }, ['"a"']],
      [{ weight_map: { a: '../x.safetensors' } }, ['relative']],
      [{ weight_map: { a: '/etc/x.safetensors' } }, ['relative']],
      [{ weight_map: { a: 'C:\\x.safetensors' } }, ['relative']],
      [{ metadata: [], weight_map: {} }, ['metadata']],
      [{ metadata: { total_size: '12' }, weight_map: {} }, ['total_size']],
      [{ metadata: { total_size: -1 }, weight_map: {} }, ['total_size']],
    ];
    for (const [json, mentions] of bad) {
      const err = await violates(() => parseShardIndex(json as string | object), 'BAD_INDEX', JSON.stringify(json), mentions);
      assert.is(err.argument, 'index');
    }
  });

  test.run();
}
