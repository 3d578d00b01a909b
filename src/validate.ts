// Argument checks shared by every public call: each names the argument and what was expected,
// and an options object with a key the call does not know is an error (with the closest known
// key suggested), so a typo never silently falls back to a default.
import { MergeKernelsError, describe } from './errors.ts';

/** Edit distance between two short strings (Levenshtein), for "did you mean" hints. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The known key closest to `key` (case-insensitive, at most 2 edits or a third of its length), if any. */
export function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) { best = k; bestD = d; }
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Throws INVALID_OPTION for the first key of `o` not in `keys`, suggesting the closest known one. */
export function onlyKeys(name: string, o: object, keys: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (keys.includes(key)) continue;
    const hint = closest(key, keys);
    const listed = keys.length ? `expected ${keys.join(', ')}` : 'this call takes none';
    throw new MergeKernelsError('INVALID_OPTION', `${name}.${key}: unknown option${hint ? ` (did you mean '${hint}'?)` : ''}; ${listed}`, key);
  }
}

/**
 * An options object with only the given keys. `undefined` is `{}` unless `required`; anything
 * else that is not a plain object (null, an array, a number) is INVALID_OPTION.
 */
export function options(name: string, value: unknown, keys: readonly string[], required = false): Record<string, unknown> {
  if (value === undefined && !required) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MergeKernelsError('INVALID_OPTION', `${name}: expected an options object { ${keys.join(', ')} }, got ${describe(value)}`, name);
  }
  onlyKeys(name, value, keys);
  return value as Record<string, unknown>;
}

/** An integer in [lo, hi]; `what` says what it counts. */
export function integer(name: string, v: unknown, lo: number, hi = Number.MAX_SAFE_INTEGER, what?: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    const range = hi === Number.MAX_SAFE_INTEGER ? (lo === 0 ? 'a non-negative integer' : `an integer >= ${lo}`) : `an integer in [${lo}, ${hi}]`;
    throw new MergeKernelsError('INVALID_OPTION', `${name}: expected ${range}${what ? ` (${what})` : ''}, got ${describe(v)}`, name);
  }
  return v;
}

/** A finite number; `what` says what it is. */
export function finite(name: string, v: unknown, what?: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new MergeKernelsError('INVALID_OPTION', `${name}: expected a finite number${what ? ` (${what})` : ''}, got ${describe(v)}`, name);
  }
  return v;
}

/** A boolean; `undefined` gives `fallback`. */
export function boolean(name: string, v: unknown, fallback = false): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new MergeKernelsError('INVALID_OPTION', `${name}: expected a boolean (true or false), got ${describe(v)}`, name);
  return v;
}

/** One of `allowed`; `undefined` gives `fallback` when there is one. */
export function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[], fallback?: T): T {
  if (v === undefined && fallback !== undefined) return fallback;
  if (!allowed.includes(v as T)) {
    const hint = typeof v === 'string' ? closest(v, allowed) : undefined;
    throw new MergeKernelsError('INVALID_OPTION', `${name}: expected ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}${hint ? ` (did you mean '${hint}'?)` : ''}`, name);
  }
  return v as T;
}

/** A Float32Array, of `length` values when given. */
export function float32(name: string, v: unknown, length?: number): Float32Array {
  if (!(v instanceof Float32Array)) throw new MergeKernelsError('INVALID_TYPE', `${name}: expected a Float32Array, got ${describe(v)}`, name);
  if (length !== undefined && v.length !== length) throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected ${length} values, got ${v.length}`, name);
  return v;
}
