// A strict JSON scanner for safetensors headers: it accepts exactly the JSON that the reference
// reader (huggingface/safetensors, which parses with serde_json's `from_str` into a struct with a
// flattened map, so every value of the header is parsed) accepts, and keeps what JSON.parse loses:
//   - integers stay apart from floats: `2` is a u64, `2.0`, `2e0`, `-0` and `-2` are not (serde_json
//     makes them f64 / i64, which a `usize` field refuses);
//   - u64 integers are exact: a number up to 2^53 − 1, a bigint above (up to 2^64 − 1; larger
//     integers are f64 in serde_json);
//   - objects keep every key in order, repeated ones included (the caller decides about those);
//   - nesting deeper than serde_json's recursion limit is refused: its budget of 128 is spent one
//     per array or object entered and fails when it reaches 0, so at most 127 may be open at once;
//   - \u escapes must form Unicode scalar values: a lone surrogate (\ud800 without a following
//     \udc00–\udfff escape, or a lone \udc00) is refused, as serde_json does for strings;
//   - a number that serde_json's float parser (the default one, without `float_roundtrip`) finds
//     out of range (1e400) is refused, whether or not the field it is in is read.
// Iterative where input controls the length (strings, numbers, whitespace); recursive only per
// open container, which the depth limit bounds.

/** A JSON object: keys and values in document order, repeated keys kept. */
export class JsonObject {
  constructor(readonly keys: string[], readonly values: JsonValue[]) {}
}

/** A JSON number that is not a u64 integer (a fraction, an exponent, a sign, -0, or beyond 2^64 − 1): its source text. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

/** A u64 integer: a number when at most 2^53 − 1, else a bigint (so equal values have equal types). */
export type U64 = number | bigint;

export type JsonValue = null | boolean | string | U64 | JsonNumber | JsonValue[] | JsonObject;

/** The most arrays and objects open at once (serde_json: remaining_depth 128, an error on reaching 0). */
export const MAX_JSON_DEPTH = 127;

const U64_MAX = 2n ** 64n - 1n;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Parses `text` as one JSON value surrounded by optional whitespace. On invalid input calls
 * `bad(what, at)` (which must throw) with a short description and the character offset. With
 * `onMember`, the members of a top-level object are handed to it as they are parsed instead of
 * being kept (the object returned is then empty): each can be checked and dropped while young,
 * which spares the garbage collector on headers of many MB.
 */
export function parseStrictJson(text: string, bad: (what: string, at: number) => never, onMember?: (key: string, value: JsonValue) => void): JsonValue {
  const n = text.length;
  let at = 0;

  const skipSpace = () => {
    while (at < n) {
      const c = text.charCodeAt(at);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      at++;
    }
  };
  const expect = (what: string): never => bad(at < n ? `expected ${what}, found ${describeChar(text, at)}` : `expected ${what}, found the end of the header`, at);

  const hex4 = (): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = at < n ? text.charCodeAt(at) : -1;
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (d < 0) expect('four hex digits after \\u');
      v = v * 16 + d;
      at++;
    }
    return v;
  };

  const parseString = (): string => {
    const start = ++at; // past the opening quote
    // Fast path: no escapes, the string is a slice of the text.
    for (;;) {
      if (at >= n) bad('unterminated string', start - 1);
      const c = text.charCodeAt(at);
      if (c === 0x22) return text.slice(start, at++);
      if (c === 0x5c) break;
      if (c < 0x20) bad('a control character inside a string (it must be escaped)', at);
      at++;
    }
    // With escapes: concatenation (V8 builds a rope, flattened once) is faster than parts + join.
    let out = text.slice(start, at);
    let runStart = at;
    for (;;) {
      if (at >= n) bad('unterminated string', start - 1);
      const c = text.charCodeAt(at);
      if (c === 0x22) return out + text.slice(runStart, at++);
      if (c < 0x20) bad('a control character inside a string (it must be escaped)', at);
      if (c !== 0x5c) { at++; continue; }
      if (at > runStart) out += text.slice(runStart, at);
      const escapeAt = at;
      at++;
      const e = at < n ? text.charCodeAt(at++) : -1;
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          const unit = hex4();
          if (unit >= 0xdc00 && unit <= 0xdfff) bad(`a lone surrogate escape \\u${hex(unit)} (not a Unicode character)`, escapeAt);
          if (unit >= 0xd800 && unit <= 0xdbff) {
            // A high surrogate must be followed at once by an escaped low one.
            if (text.charCodeAt(at) !== 0x5c || text.charCodeAt(at + 1) !== 0x75) bad(`a lone surrogate escape \\u${hex(unit)} (not a Unicode character)`, escapeAt);
            at += 2;
            const low = hex4();
            if (low < 0xdc00 || low > 0xdfff) bad(`a lone surrogate escape \\u${hex(unit)} (not a Unicode character)`, escapeAt);
            out += String.fromCharCode(unit, low);
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          bad('an invalid escape in a string', escapeAt);
      }
      runStart = at;
    }
  };

  const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

  const parseNumber = (): U64 | JsonNumber => {
    const start = at;
    const negative = text.charCodeAt(at) === 0x2d;
    if (negative) at++;
    const first = at < n ? text.charCodeAt(at) : -1;
    if (first === 0x30) at++;
    else if (first >= 0x31 && first <= 0x39) { while (at < n && isDigit(text.charCodeAt(at))) at++; }
    else expect('a digit');
    let integer = true;
    if (text.charCodeAt(at) === 0x2e) {
      at++;
      if (!isDigit(text.charCodeAt(at))) expect('a digit after the decimal point');
      while (at < n && isDigit(text.charCodeAt(at))) at++;
      integer = false;
    }
    const e = text.charCodeAt(at);
    if (e === 0x65 || e === 0x45) {
      at++;
      const sign = text.charCodeAt(at);
      if (sign === 0x2b || sign === 0x2d) at++;
      if (!isDigit(text.charCodeAt(at))) expect('a digit in the exponent');
      while (at < n && isDigit(text.charCodeAt(at))) at++;
      integer = false;
    }
    const source = text.slice(start, at);
    if (integer && !negative) {
      if (source.length <= 15) return +source; // below 10^15 < 2^53: exact as a number
      if (source.length <= 20) {
        const big = BigInt(source);
        if (big <= SAFE_MAX) return Number(big);
        if (big <= U64_MAX) return big;
      }
    }
    if (serdeOutOfRange(source)) bad(`the number ${source.length > 40 ? source.slice(0, 40) + '…' : source} is out of range for a 64-bit float`, start);
    return new JsonNumber(source);
  };

  const parseValue = (depth: number): JsonValue => {
    skipSpace();
    if (at >= n) expect('a value');
    const c = text.charCodeAt(at);
    if (c === 0x22) return parseString();
    if (c === 0x7b) {
      if (depth >= MAX_JSON_DEPTH) bad(`arrays and objects nested more than ${MAX_JSON_DEPTH} deep (serde_json's recursion limit)`, at);
      at++;
      const keys: string[] = [], values: JsonValue[] = [];
      skipSpace();
      if (text.charCodeAt(at) === 0x7d) { at++; return new JsonObject(keys, values); }
      for (;;) {
        skipSpace();
        if (text.charCodeAt(at) !== 0x22) expect('a string key');
        const key = parseString();
        skipSpace();
        if (text.charCodeAt(at) !== 0x3a) expect("':'");
        at++;
        const member = parseValue(depth + 1);
        if (depth === 0 && onMember) onMember(key, member);
        else { keys.push(key); values.push(member); }
        skipSpace();
        const d = text.charCodeAt(at);
        if (d === 0x2c) { at++; continue; }
        if (d === 0x7d) { at++; return new JsonObject(keys, values); }
        expect("',' or '}'");
      }
    }
    if (c === 0x5b) {
      if (depth >= MAX_JSON_DEPTH) bad(`arrays and objects nested more than ${MAX_JSON_DEPTH} deep (serde_json's recursion limit)`, at);
      at++;
      const items: JsonValue[] = [];
      skipSpace();
      if (text.charCodeAt(at) === 0x5d) { at++; return items; }
      for (;;) {
        items.push(parseValue(depth + 1));
        skipSpace();
        const d = text.charCodeAt(at);
        if (d === 0x2c) { at++; continue; }
        if (d === 0x5d) { at++; return items; }
        expect("',' or ']'");
      }
    }
    if (c === 0x2d || isDigit(c)) return parseNumber();
    if (text.startsWith('true', at)) { at += 4; return true; }
    if (text.startsWith('false', at)) { at += 5; return false; }
    if (text.startsWith('null', at)) { at += 4; return null; }
    return expect('a value');
  };

  const value = parseValue(0);
  skipSpace();
  if (at < n) bad(`unexpected ${describeChar(text, at)} after the JSON value`, at);
  return value;
}

function hex(unit: number): string {
  return unit.toString(16).padStart(4, '0');
}

function describeChar(text: string, at: number): string {
  const c = text.codePointAt(at)!;
  return c >= 0x21 && c <= 0x7e ? `'${String.fromCodePoint(c)}'` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

let pow10: Float64Array | undefined;

/**
 * Whether serde_json (default features) refuses the JSON number `source` as out of range. A port
 * of its parser: up to 2^64 − 1 of the digits form the significand (further integer digits raise
 * the exponent; further fraction digits are dropped), then f64_from_parts multiplies the rounded
 * significand by 10^exponent, one correctly rounded power of ten (≤ 1e308) at most, and fails if
 * the product is infinite or the exponent is beyond 308 with a nonzero significand. Negative
 * exponents only underflow (to 0), never fail.
 */
function serdeOutOfRange(source: string): boolean {
  const n = source.length;
  // Without an exponent, fewer than 300 digits stay below 2^64 × 10^281: finite.
  if (n < 300 && !/[eE]/.test(source)) return false;
  let i = source.charCodeAt(0) === 0x2d ? 1 : 0;
  const digit = (k: number) => source.charCodeAt(k) - 0x30;
  const isDigit = (k: number) => k < n && source.charCodeAt(k) >= 0x30 && source.charCodeAt(k) <= 0x39;
  let significand = 0n;
  let exponent = 0;
  // Integer part: digits while the significand fits u64; once one would overflow, every further
  // integer digit (that one included) only raises the exponent.
  let long = false;
  while (isDigit(i)) {
    const next = significand * 10n + BigInt(digit(i));
    if (!long && next <= U64_MAX) significand = next;
    else { long = true; exponent++; }
    i++;
  }
  if (source.charCodeAt(i) === 0x2e) {
    i++;
    // Fraction digits join the significand until one would overflow; the rest are dropped.
    let dropped = false;
    while (isDigit(i)) {
      if (!dropped) {
        const next = significand * 10n + BigInt(digit(i));
        if (next <= U64_MAX) { significand = next; exponent--; } else dropped = true;
      }
      i++;
    }
  }
  if (i < n) { // the exponent
    i++;
    let positive = true;
    if (source.charCodeAt(i) === 0x2b) i++;
    else if (source.charCodeAt(i) === 0x2d) { positive = false; i++; }
    let exp = 0;
    while (isDigit(i)) {
      const next = exp * 10 + digit(i);
      // Exponent digits beyond i32: serde_json fails for a nonzero significand and a positive exponent, else gives 0.
      if (next > 2147483647) return significand !== 0n && positive;
      exp = next;
      i++;
    }
    exponent = positive ? Math.min(exponent + exp, 2147483647) : Math.max(exponent - exp, -2147483648);
  }
  if (exponent < 0) return false;
  const f = Number(significand); // u64 → f64 rounds to nearest, ties to even, as Rust's `as f64`
  if (exponent > 308) return f !== 0;
  pow10 ??= Float64Array.from({ length: 309 }, (_, k) => Number(`1e${k}`));
  return !Number.isFinite(f * pow10[exponent]!);
}
