// Method parameters: resolving what a config or the API gives (global values, per-model overrides,
// defaults) into TensorParams, and reading them back typed and range-checked. Unknown names and
// wrong types are INVALID_OPTION errors naming the key, never ignored.
import { MergeKernelsError, describe } from '../errors.ts';
import type { MethodSpec, ParamValue, TensorParams } from './types.ts';
import { closest } from '../validate.ts';

function checkValue(where: string, value: unknown, like: ParamValue): ParamValue {
  if (typeof value !== typeof like || (typeof value === 'number' && !Number.isFinite(value))) {
    const expected = typeof like === 'number' ? 'a finite number' : typeof like === 'boolean' ? 'a boolean' : 'a string';
    throw new MergeKernelsError('INVALID_OPTION', `${where}: expected ${expected}, got ${describe(value)}`, where);
  }
  return value as ParamValue;
}

function checkRecord(where: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new MergeKernelsError('INVALID_OPTION', `${where}: expected an object of parameter values, got ${describe(value)}`, where);
  }
  return value as Record<string, unknown>;
}

/** Where a parameter may be set: a function from its name to its value there, or undefined when not set there. */
export type ParamLevel = (key: string) => ParamValue | undefined;

/**
 * mergekit's rule for what a parameter is (ConfigReader.parameter), in one place for configs
 * (resolveTensorParams) and the API (resolveParams): a per-model parameter is the model's own
 * value, else the first of `shared` that sets it (a slice's parameters, then the global ones:
 * a global value applies to every model), else the method's default; a global parameter skips
 * the models' own values.
 */
export function combineParams(spec: MethodSpec, shared: readonly ParamLevel[], own: readonly ParamLevel[]): TensorParams {
  const first = (key: string): ParamValue | undefined => {
    for (const level of shared) {
      const v = level(key);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const global: Record<string, ParamValue> = {};
  for (const [key, def] of Object.entries(spec.globalParams)) global[key] = first(key) ?? def;
  const models = own.map((mine) => {
    const p: Record<string, ParamValue> = {};
    for (const [key, def] of Object.entries(spec.modelParams)) p[key] = mine(key) ?? first(key) ?? def;
    return p;
  });
  return { global, models };
}

/**
 * Resolves a method's parameters for `models` models. A global value of a per-model parameter
 * applies to every model that does not set its own (mergekit's rule); every name must be one the
 * method declares, and every value must have its default's type.
 */
export function resolveParams(spec: MethodSpec, models: number, global: unknown = {}, perModel: unknown = undefined): TensorParams {
  const g = checkRecord('parameters', global);
  for (const [key, value] of Object.entries(g)) {
    const where = `parameters.${key}`;
    if (Object.hasOwn(spec.globalParams, key)) checkValue(where, value, spec.globalParams[key]!);
    else if (Object.hasOwn(spec.modelParams, key)) checkValue(where, value, spec.modelParams[key]!);
    else throw unknownKey(spec, where, key, true);
  }
  if (perModel !== undefined && (!Array.isArray(perModel) || perModel.length !== models)) {
    throw new MergeKernelsError('INVALID_OPTION', `modelParameters: expected an array of ${models} objects (one per model), got ${describe(perModel)}`, 'modelParameters');
  }
  const own = Array.from({ length: models }, (_, t) => {
    const mine = perModel === undefined || perModel[t] === undefined ? {} : checkRecord(`modelParameters[${t}]`, perModel[t]);
    for (const [key, value] of Object.entries(mine)) {
      const where = `modelParameters[${t}].${key}`;
      if (!Object.hasOwn(spec.modelParams, key)) throw unknownKey(spec, where, key, false);
      checkValue(where, value, spec.modelParams[key]!);
    }
    return mine;
  });
  const level = (values: Record<string, unknown>): ParamLevel => (key) => (Object.hasOwn(values, key) ? values[key] as ParamValue : undefined);
  return combineParams(spec, [level(g)], own.map(level));
}

function unknownKey(spec: MethodSpec, where: string, key: string, global: boolean): MergeKernelsError {
  const names = [...(global ? Object.keys(spec.globalParams) : []), ...Object.keys(spec.modelParams)];
  const hint = closest(key, names);
  return new MergeKernelsError('INVALID_OPTION', `${where}: method '${spec.name}' has no parameter ${JSON.stringify(key)}${hint ? ` (did you mean '${hint}'?)` : ''}; it takes ${names.length ? names.join(', ') : 'none'}`, where);
}

/** Typed, range-checked reads of resolved parameters; errors name the parameter and the model. */
export class Params {
  constructor(readonly params: TensorParams) {}

  number(key: string, model?: number): number {
    const v = this.#get(key, model);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.#bad(key, model, 'a finite number', v);
    return v;
  }

  /** A number in [lo, hi]. */
  range(key: string, lo: number, hi: number, model?: number): number {
    const v = this.number(key, model);
    if (v < lo || v > hi) throw this.#bad(key, model, `a number in [${lo}, ${hi}]`, v);
    return v;
  }

  integer(key: string, lo: number, hi: number, model?: number): number {
    const v = this.number(key, model);
    if (!Number.isInteger(v) || v < lo || v > hi) throw this.#bad(key, model, `an integer in [${lo}, ${hi}]`, v);
    return v;
  }

  boolean(key: string): boolean {
    const v = this.#get(key);
    if (typeof v !== 'boolean') throw this.#bad(key, undefined, 'a boolean', v);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.#get(key);
    if (!allowed.includes(v as T)) throw this.#bad(key, undefined, allowed.map((a) => `'${a}'`).join(' or '), v);
    return v as T;
  }

  /** An error about parameter `key` (of model `model`), for checks that involve several values. */
  error(key: string, model: number | undefined, message: string): MergeKernelsError {
    return new MergeKernelsError('INVALID_OPTION', `${key}${model === undefined ? '' : ` (model ${model})`}: ${message}`, key);
  }

  #get(key: string, model?: number): ParamValue | undefined {
    return model === undefined ? this.params.global[key] : this.params.models[model]?.[key];
  }

  #bad(key: string, model: number | undefined, expected: string, got: unknown): MergeKernelsError {
    return this.error(key, model, `expected ${expected}, got ${describe(got)}`);
  }
}
