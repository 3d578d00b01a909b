// mergekit-style merge configurations (arcee-ai/mergekit, `mergekit/config.py` and the planner in
// `mergekit/plan.py`): YAML text → a checked MergeConfig → the parameters of each tensor.
//
// Supported keys: merge_method, base_model, models[{model, parameters}] or
// slices[{sources[{model, layer_range, parameters}], parameters, base_model}], parameters, dtype,
// out_dtype, tokenizer_source. Any other key (modules, tokenizer, chat_template, ...) is
// an error naming the key and its line, never silently ignored: a merge that quietly drops part
// of its config gives a different model than the one asked for.
//
// A parameter is a scalar, a gradient (a list of numbers interpolated over the layer index), a
// list of non-numeric values (one picked by the layer index), or a list of conditions
// `[{filter, value}, ...]` where the first whose filter is a substring of the tensor name (or is
// absent or "*") gives the value. A model's (or a slice source's) own setting wins over a slice's
// `parameters`, which win over the global `parameters`, which win over the method's default; a
// filter list that matches nothing falls through to the next level, as in mergekit's
// ConfigReader.parameter (combineParams in params.ts).
import { LineCounter, isMap, isScalar, isSeq, parseDocument, stringify, type Node as YamlNode, type Pair } from 'yaml';
import { MergeKernelsError, describe } from '../errors.ts';
import type { MethodSpec, ParamValue, TensorParams } from './types.ts';
import { combineParams, type ParamLevel } from './params.ts';

/** A parameter value that does not depend on the tensor's layer. */
export type ScalarSetting = { kind: 'scalar'; value: ParamValue };
/** A list of numbers, linearly interpolated over the layer position t ∈ [0, 1]. */
export type GradientSetting = { kind: 'gradient'; values: number[] };
/** A list of non-numeric values: the one at index floor(t · (n − 1)). */
export type StepSetting = { kind: 'steps'; values: ParamValue[] };
/** Conditions tried in order: the first filter that is a substring of the tensor name wins. */
export type FilterSetting = { kind: 'filters'; conditions: Array<{ filter: string | undefined; value: ScalarSetting | GradientSetting | StepSetting }> };
export type ParamSetting = ScalarSetting | GradientSetting | StepSetting | FilterSetting;

/** The dtypes a config may name (mergekit's names). */
export type ConfigDtype = 'float32' | 'float16' | 'bfloat16';

export interface ModelEntry {
  /** The model reference as written in the config (a path, relative to the config file in the CLI). */
  model: string;
  parameters: Record<string, ParamSetting>;
}

/** One source of a slice: layers [start, end) of a model. */
export interface SliceSource {
  model: string;
  layerRange: [number, number];
  parameters: Record<string, ParamSetting>;
}

/** One output slice: its sources' layer ranges (of one length) merged layer by layer. */
export interface SliceEntry {
  sources: SliceSource[];
  /** Settings of every source of the slice (below a source's own, above the global `parameters`). */
  parameters: Record<string, ParamSetting>;
  /** The slice's own base model (mergekit's `slices[].base_model`), else the config's. */
  baseModel: string | undefined;
}

export interface MergeConfig {
  mergeMethod: string;
  baseModel: string | undefined;
  /** The models to merge, base model excluded, in config order (empty for a slices config). */
  models: ModelEntry[];
  /**
   * mergekit's `slices` (instead of `models`): the output's layers, slice after slice, each
   * merged from its sources' layer ranges and renumbered; undefined for a models config.
   */
  slices: SliceEntry[] | undefined;
  parameters: Record<string, ParamSetting>;
  /** mergekit's `dtype`: inputs are rounded to it before merging (the arithmetic itself is float32). */
  dtype: ConfigDtype | undefined;
  /** The output dtype; by default `dtype`, else the dtype of the base (or first) model's tensor. */
  outDtype: ConfigDtype | undefined;
  /**
   * mergekit's `tokenizer_source`: the model of the config whose tokenizer files the output gets
   * (`base` is resolved to the base model). Undefined: the base (or first) model's, which mergekit
   * copies by default.
   */
  tokenizerSource: string | undefined;
  /** The config as YAML (the text given, or the object written as YAML): the model card carries it. */
  yaml: string;
}

const TOP_KEYS = ['merge_method', 'base_model', 'models', 'slices', 'parameters', 'dtype', 'out_dtype', 'tokenizer_source'];
const WHY_UNSUPPORTED: Record<string, string> = {
  modules: 'per-module configs are not supported; use `models`, or `slices` over the layers of a model with one layer stack',
  tokenizer: 'tokenizers are not merged: use tokenizer_source (base, or a model of the config) to copy one model\'s tokenizer (vocabularies must match)',
  chat_template: 'chat templates are not written: the tokenizer files (tokenizer_config.json) are copied from tokenizer_source',
};
const DTYPES: Record<string, ConfigDtype> = {
  float32: 'float32', float16: 'float16', bfloat16: 'bfloat16',
  'torch.float32': 'float32', 'torch.float16': 'float16', 'torch.bfloat16': 'bfloat16',
};

function configError(message: string, argument: string, cause?: unknown): never {
  throw new MergeKernelsError('INVALID_OPTION', message, argument, cause === undefined ? undefined : { cause });
}

/**
 * Parses a mergekit YAML config (or the equivalent plain object) and checks its structure. Keys
 * this package does not implement are errors naming the key and, for YAML text, its line.
 */
export function parseMergeConfig(source: string | object): MergeConfig {
  if (typeof source === 'string') {
    const lines = new LineCounter();
    const doc = parseDocument(source, { lineCounter: lines, uniqueKeys: true });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      // The yaml package's first line ends "at line L, column C:" before a code excerpt; the
      // position goes last, in the form the other config errors use.
      const what = e.message.split('\n')[0]!.replace(/\s*at line \d+, column \d+:?\s*$/, '');
      const at = e.linePos ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
      configError(`config: not valid YAML: ${what}${at}`, 'config', e);
    }
    return checkConfig(doc.contents, source, (node) => {
      const offset = (node as { range?: [number, number, number] } | null)?.range?.[0];
      return offset === undefined ? '' : ` (line ${lines.linePos(offset).line})`;
    });
  }
  if (source === null || typeof source !== 'object' || Array.isArray(source)) {
    throw new MergeKernelsError('INVALID_TYPE', `config: expected YAML text or an object, got ${describe(source)}`, 'config');
  }
  const checked = checkConfig(source, '', () => '');
  return { ...checked, yaml: stringify(source) };
}

// A config is checked over either YAML nodes (which know their line) or plain values; this view
// gives both the same shape.
type At = (node: unknown) => string;
interface View { kind: 'map' | 'seq' | 'scalar'; node: unknown; value?: unknown; entries?: Array<[string, View, unknown]>; items?: View[] }

function view(node: unknown): View {
  if (isMap(node)) {
    return { kind: 'map', node, entries: (node.items as Pair[]).map((p) => [String(isScalar(p.key) ? p.key.value : p.key), view(p.value), p.key]) };
  }
  if (isSeq(node)) return { kind: 'seq', node, items: (node.items as YamlNode[]).map(view) };
  if (isScalar(node)) return { kind: 'scalar', node, value: node.value };
  if (node === null || node === undefined) return { kind: 'scalar', node, value: null };
  if (Array.isArray(node)) return { kind: 'seq', node, items: node.map(view) };
  if (typeof node === 'object') return { kind: 'map', node, entries: Object.entries(node).map(([k, v]) => [k, view(v), undefined]) };
  return { kind: 'scalar', node, value: node };
}

function checkConfig(root: unknown, yaml: string, at: At): MergeConfig {
  const top = view(root);
  if (top.kind !== 'map') configError(`config: expected a mapping with merge_method and models, got ${top.kind === 'seq' ? 'a list' : describe(top.value)}`, 'config');
  const fields = new Map<string, View>();
  for (const [key, value, keyNode] of top.entries!) {
    if (!TOP_KEYS.includes(key)) {
      const why = WHY_UNSUPPORTED[key] ?? `supported keys: ${TOP_KEYS.join(', ')}`;
      configError(`config: unsupported key "${key}"${at(keyNode)}: ${why}`, key);
    }
    fields.set(key, value);
  }
  const method = fields.get('merge_method');
  if (!method || method.kind !== 'scalar' || typeof method.value !== 'string' || method.value === '') {
    configError(`merge_method: expected a method name${method ? at(method.node) : ' (missing)'}`, 'merge_method');
  }
  const base = fields.get('base_model');
  let baseModel: string | undefined;
  if (base && base.value !== null) {
    if (base.kind !== 'scalar' || typeof base.value !== 'string' || base.value === '') configError(`base_model: expected a model path${at(base.node)}`, 'base_model');
    baseModel = base.value;
  }
  const modelsView = fields.get('models');
  const slicesView = fields.get('slices');
  if (modelsView && slicesView) configError(`slices${at(slicesView.node)}: a config has either models or slices, not both`, 'slices');
  const paramsView = fields.get('parameters');
  const parameters = paramsView && paramsView.value !== null ? checkParameters(paramsView, 'parameters', at) : {};
  const dtype = checkDtype(fields.get('dtype'), 'dtype', at);
  const outDtype = checkDtype(fields.get('out_dtype'), 'out_dtype', at);
  if (slicesView) {
    const slices = checkSlices(slicesView, baseModel, at);
    const named = slices.flatMap((s) => s.sources.map((x) => x.model));
    const tokenizerSource = checkTokenizerSource(fields.get('tokenizer_source'), baseModel, named, at);
    return { mergeMethod: method.value, baseModel, models: [], slices, parameters, dtype, outDtype, tokenizerSource, yaml };
  }
  if (!modelsView || modelsView.kind !== 'seq' || modelsView.items!.length === 0) {
    configError(`models: expected a non-empty list of { model, parameters }${modelsView ? at(modelsView.node) : ' (missing; or give slices)'}`, 'models');
  }
  const models: ModelEntry[] = [];
  modelsView.items!.forEach((item, i) => {
    const name = `models[${i}]`;
    if (item.kind !== 'map') configError(`${name}: expected { model, parameters }${at(item.node)}`, name);
    let model: string | undefined;
    let parameters: Record<string, ParamSetting> = {};
    for (const [key, value, keyNode] of item.entries!) {
      if (key === 'model') {
        if (value.kind !== 'scalar' || typeof value.value !== 'string' || value.value === '') configError(`${name}.model: expected a model path${at(value.node)}`, `${name}.model`);
        model = value.value;
      } else if (key === 'parameters') {
        parameters = checkParameters(value, `${name}.parameters`, at);
      } else {
        configError(`${name}: unsupported key "${key}"${at(keyNode)}: a model entry has only model and parameters`, `${name}.${key}`);
      }
    }
    if (model === undefined) configError(`${name}.model: missing${at(item.node)}`, `${name}.model`);
    models.push({ model, parameters });
  });
  // mergekit lists the base model among `models` in most TIES/DARE examples; it is the base, not a model to merge.
  const merged = baseModel === undefined ? models : models.filter((m) => m.model !== baseModel);
  const baseEntry = models.find((m) => m.model === baseModel);
  if (baseEntry && Object.keys(baseEntry.parameters).length > 0) {
    configError(`models: the base model "${baseModel}" has parameters, but the base is not weighted; remove them`, 'models');
  }
  if (merged.length === 0) configError('models: every listed model is the base model; nothing to merge', 'models');
  const tokenizerSource = checkTokenizerSource(fields.get('tokenizer_source'), baseModel, [...models.map((m) => m.model)], at);
  return { mergeMethod: method.value, baseModel, models: merged, slices: undefined, parameters, dtype, outDtype, tokenizerSource, yaml };
}

/** mergekit's OutputSliceDefinition list: sources with layer ranges of one length per slice. */
function checkSlices(v: View, baseModel: string | undefined, at: At): SliceEntry[] {
  if (v.kind !== 'seq' || v.items!.length === 0) configError(`slices: expected a non-empty list of { sources: [{ model, layer_range }] }${at(v.node)}`, 'slices');
  return v.items!.map((item, i) => {
    const name = `slices[${i}]`;
    if (item.kind !== 'map') configError(`${name}: expected { sources, parameters }${at(item.node)}`, name);
    let sources: SliceSource[] | undefined;
    let parameters: Record<string, ParamSetting> = {};
    let sliceBase = baseModel;
    for (const [key, value, keyNode] of item.entries!) {
      if (key === 'sources') {
        if (value.kind !== 'seq' || value.items!.length === 0) configError(`${name}.sources: expected a non-empty list of { model, layer_range }${at(value.node)}`, `${name}.sources`);
        sources = value.items!.map((src, j) => checkSource(src, `${name}.sources[${j}]`, at));
      } else if (key === 'parameters') {
        if (value.value !== null) parameters = checkParameters(value, `${name}.parameters`, at);
      } else if (key === 'base_model') {
        if (value.kind !== 'scalar' || typeof value.value !== 'string' || value.value === '') configError(`${name}.base_model: expected a model path${at(value.node)}`, `${name}.base_model`);
        sliceBase = value.value;
      } else {
        const why = key === 'residual_weight' ? ' (mergekit reads it nowhere either; remove it)' : ': a slice has sources, parameters and base_model';
        configError(`${name}: unsupported key "${key}"${at(keyNode)}${why}`, `${name}.${key}`);
      }
    }
    if (!sources) configError(`${name}.sources: missing${at(item.node)}`, `${name}.sources`);
    const lengths = sources.map((s) => s.layerRange[1] - s.layerRange[0]);
    if (lengths.some((n) => n !== lengths[0])) {
      configError(`${name}.sources: every source of a slice must have as many layers; the layer_ranges give ${lengths.join(', ')}${at(item.node)}`, `${name}.sources`);
    }
    return { sources, parameters, baseModel: sliceBase };
  });
}

function checkSource(v: View, name: string, at: At): SliceSource {
  if (v.kind !== 'map') configError(`${name}: expected { model, layer_range, parameters }${at(v.node)}`, name);
  let model: string | undefined;
  let layerRange: [number, number] | undefined;
  let parameters: Record<string, ParamSetting> = {};
  for (const [key, value, keyNode] of v.entries!) {
    if (key === 'model') {
      if (value.kind !== 'scalar' || typeof value.value !== 'string' || value.value === '') configError(`${name}.model: expected a model path${at(value.node)}`, `${name}.model`);
      model = value.value;
    } else if (key === 'layer_range') {
      const ends = value.kind === 'seq' ? value.items!.map((x) => x.value) : [];
      if (ends.length !== 2 || !ends.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) || (ends[0] as number) >= (ends[1] as number)) {
        configError(`${name}.layer_range: expected [start, end] with 0 ≤ start < end (layers start to end − 1), got ${value.kind === 'seq' ? `[${ends.join(', ')}]` : describe(value.value)}${at(value.node)}`, `${name}.layer_range`);
      }
      layerRange = [ends[0] as number, ends[1] as number];
    } else if (key === 'parameters') {
      if (value.value !== null) parameters = checkParameters(value, `${name}.parameters`, at);
    } else {
      configError(`${name}: unsupported key "${key}"${at(keyNode)}: a source has model, layer_range and parameters`, `${name}.${key}`);
    }
  }
  if (model === undefined) configError(`${name}.model: missing${at(v.node)}`, `${name}.model`);
  if (layerRange === undefined) configError(`${name}.layer_range: missing${at(v.node)}`, `${name}.layer_range`);
  return { model, layerRange, parameters };
}

/** `base`, or a model the config names; `union` (a merged vocabulary, embeddings permuted) is refused. */
function checkTokenizerSource(v: View | undefined, baseModel: string | undefined, models: string[], at: At): string | undefined {
  if (!v || v.value === null) return undefined;
  if (v.kind !== 'scalar' || typeof v.value !== 'string' || v.value === '') configError(`tokenizer_source: expected base or a model path${at(v.node)}`, 'tokenizer_source');
  const name = v.value;
  if (name === 'union') {
    configError(`tokenizer_source: union (one vocabulary built from every model's, with the embeddings permuted to it) is not supported${at(v.node)}: use base, or a model of the config, whose vocabulary the other models share`, 'tokenizer_source');
  }
  if (name === 'base') {
    if (baseModel === undefined) configError(`tokenizer_source: base, but the config has no base_model${at(v.node)}; name a model instead`, 'tokenizer_source');
    return baseModel;
  }
  if (name !== baseModel && !models.includes(name)) {
    configError(`tokenizer_source: "${name}" is not a model of the config${at(v.node)}; expected base or one of ${[...new Set([...(baseModel === undefined ? [] : [baseModel]), ...models])].map((m) => `"${m}"`).join(', ')}`, 'tokenizer_source');
  }
  return name;
}

function checkDtype(v: View | undefined, name: string, at: At): ConfigDtype | undefined {
  if (!v || v.value === null) return undefined;
  const d = typeof v.value === 'string' ? DTYPES[v.value] : undefined;
  if (!d) configError(`${name}: expected float32, float16 or bfloat16, got ${describe(v.value)}${at(v.node)}`, name);
  return d;
}

function checkParameters(v: View, name: string, at: At): Record<string, ParamSetting> {
  if (v.kind !== 'map') configError(`${name}: expected a mapping of parameter names to values${at(v.node)}`, name);
  const out: Record<string, ParamSetting> = {};
  for (const [key, value] of v.entries!) out[key] = checkSetting(value, `${name}.${key}`, at, true);
  return out;
}

function isParamValue(x: unknown): x is ParamValue {
  return (typeof x === 'number' && Number.isFinite(x)) || typeof x === 'boolean' || typeof x === 'string';
}

function checkSetting(v: View, name: string, at: At, allowFilters: boolean): ParamSetting {
  if (v.kind === 'scalar') {
    if (!isParamValue(v.value)) configError(`${name}: expected a finite number, boolean or string, got ${describe(v.value)}${at(v.node)}`, name);
    return { kind: 'scalar', value: v.value };
  }
  if (v.kind === 'map') configError(`${name}: a single { filter, value } must be written as a list: [{ filter: ..., value: ... }]${at(v.node)}`, name);
  const items = v.items!;
  if (items.length === 0) configError(`${name}: expected a value, a gradient list or a filter list, got an empty list${at(v.node)}`, name);
  if (items.every((x) => x.kind === 'scalar')) {
    const values = items.map((x) => x.value);
    values.forEach((x, i) => { if (!isParamValue(x)) configError(`${name}[${i}]: expected a finite number, boolean or string, got ${describe(x)}${at(items[i]!.node)}`, name); });
    // Numbers interpolate (a gradient); any other list steps. mergekit would also interpolate a
    // list of booleans (Python's bool is an int); stepping keeps them booleans.
    if (values.every((x) => typeof x === 'number')) return { kind: 'gradient', values: values as number[] };
    return { kind: 'steps', values: values as ParamValue[] };
  }
  if (!allowFilters) configError(`${name}: a filter's value must be a scalar or a list of scalars${at(v.node)}`, name);
  const conditions: FilterSetting['conditions'] = [];
  items.forEach((item, i) => {
    const cname = `${name}[${i}]`;
    if (item.kind !== 'map') configError(`${cname}: expected { filter, value } (a list mixing conditions and values is not a parameter)${at(item.node)}`, name);
    let filter: string | undefined;
    let value: View | undefined;
    for (const [key, x, keyNode] of item.entries!) {
      if (key === 'filter') {
        if (x.value === null) continue;
        if (x.kind !== 'scalar' || typeof x.value !== 'string') configError(`${cname}.filter: expected a string${at(x.node)}`, name);
        filter = x.value;
      } else if (key === 'value') value = x;
      else configError(`${cname}: unsupported key "${key}"${at(keyNode)}: a condition has only filter and value`, name);
    }
    if (!value) configError(`${cname}: missing value${at(item.node)}`, name);
    conditions.push({ filter, value: checkSetting(value, `${cname}.value`, at, false) as ScalarSetting | GradientSetting | StepSetting });
  });
  return { kind: 'filters', conditions };
}

/**
 * The value of a setting for one tensor at layer position `t` (mergekit's evaluate_setting), or
 * undefined when it is a filter list and no filter matches.
 */
export function evaluateSetting(setting: ParamSetting, tensorName: string, t: number): ParamValue | undefined {
  switch (setting.kind) {
    case 'scalar': return setting.value;
    case 'gradient': {
      const v = setting.values;
      // The same float arithmetic as mergekit, so layer values match it bit for bit.
      const scaled = t * (v.length - 1);
      const i0 = Math.floor(scaled);
      const i1 = Math.min(v.length - 1, i0 + 1);
      const frac = scaled - i0;
      return (1 - frac) * v[i0]! + frac * v[i1]!;
    }
    case 'steps': return setting.values[Math.floor(t * (setting.values.length - 1))];
    case 'filters':
      for (const c of setting.conditions) {
        if (c.filter === undefined || c.filter === '*' || (tensorName !== '' && tensorName.includes(c.filter))) return evaluateSetting(c.value, tensorName, t);
      }
      return undefined;
  }
}

/**
 * A tensor's layer: the first all-digit component of its dotted name that is neither the first
 * nor the last (`model.layers.7.mlp.up_proj.weight` → prefix `model.layers`, index 7, rest
 * `mlp.up_proj.weight`), or undefined outside the layers (embeddings, final norm, lm_head).
 */
export function layerOf(name: string): { prefix: string; index: number; rest: string } | undefined {
  const parts = name.split('.');
  const k = parts.findIndex((p, i) => i > 0 && i < parts.length - 1 && /^\d+$/.test(p));
  if (k < 0) return undefined;
  return { prefix: parts.slice(0, k).join('.'), index: Number(parts[k]), rest: parts.slice(k + 1).join('.') };
}

/**
 * Each tensor's layer position t ∈ [0, 1] for gradients, as mergekit's planner assigns it: the
 * i-th of n layers has t = i / (n − 1) (t = 1 when n = 1); tensors outside the layers
 * (embeddings, final norm, lm_head) have t = 0. mergekit reads the layers from its architecture
 * tables; without them, a tensor's layer is the first all-digit component of its dotted name
 * (`model.layers.7.mlp...` → 7), and n is counted per prefix (`model.layers`), so a vision tower
 * and a language model have their own gradients, like mergekit's modules.
 */
export function layerPositions(names: Iterable<string>): Map<string, number> {
  const parsed = new Map<string, { prefix: string; index: number } | undefined>();
  const layers = new Map<string, number>();
  for (const name of names) {
    const at = layerOf(name);
    parsed.set(name, at);
    if (at) layers.set(at.prefix, Math.max(layers.get(at.prefix) ?? 0, at.index + 1));
  }
  const out = new Map<string, number>();
  for (const [name, p] of parsed) {
    if (!p) { out.set(name, 0); continue; }
    const n = layers.get(p.prefix)!;
    out.set(name, n > 1 ? p.index / (n - 1) : 1);
  }
  return out;
}

function typeOf(v: ParamValue): string {
  return typeof v;
}

function checkSettingType(setting: ParamSetting, expected: string, name: string): void {
  const leaves: ParamValue[] = setting.kind === 'scalar' ? [setting.value]
    : setting.kind === 'gradient' || setting.kind === 'steps' ? setting.values
    : setting.conditions.flatMap((c) => c.value.kind === 'scalar' ? [c.value.value] : c.value.values);
  for (const v of leaves) {
    if (typeOf(v) !== expected) configError(`${name}: expected a ${expected}, got ${describe(v)}`, name);
  }
}

/**
 * Checks a config against the method it names: the method exists, the base model is given when
 * the method needs one (and not otherwise), and every parameter is one the method accepts, of
 * the type of its default. Global `parameters` may set per-model parameters for every model.
 */
export function checkConfigAgainst(config: MergeConfig, methods: Readonly<Record<string, MethodSpec>>): MethodSpec {
  const spec = Object.prototype.hasOwnProperty.call(methods, config.mergeMethod) ? methods[config.mergeMethod] : undefined;
  if (!spec) {
    const known = Object.keys(methods);
    configError(`merge_method: unknown method "${config.mergeMethod}"; ${known.length ? `known: ${known.join(', ')}` : 'no methods are available in this build'}`, 'merge_method');
  }
  const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  // Settings every model sees (the global ones, a slice's) may be global or per-model parameters.
  const checkShared = (settings: Record<string, ParamSetting>, at: string) => {
    for (const [key, setting] of Object.entries(settings)) {
      const def = has(spec.globalParams, key) ? spec.globalParams[key] : has(spec.modelParams, key) ? spec.modelParams[key] : undefined;
      if (def === undefined) {
        configError(`${at}.${key}: method "${spec.name}" has no parameter "${key}"; it accepts ${[...Object.keys(spec.globalParams), ...Object.keys(spec.modelParams)].join(', ') || 'none'}`, `${at}.${key}`);
      }
      checkSettingType(setting, typeOf(def), `${at}.${key}`);
    }
  };
  const checkOwn = (settings: Record<string, ParamSetting>, at: string) => {
    for (const [key, setting] of Object.entries(settings)) {
      const name = `${at}.${key}`;
      if (!has(spec.modelParams, key)) {
        const hint = has(spec.globalParams, key) ? ` ("${key}" is a global parameter: set it under the top-level parameters)` : `; per-model parameters: ${Object.keys(spec.modelParams).join(', ') || 'none'}`;
        configError(`${name}: method "${spec.name}" has no per-model parameter "${key}"${hint}`, name);
      }
      checkSettingType(setting, typeOf(spec.modelParams[key]!), name);
    }
  };
  const checkBase = (base: string | undefined, at: string) => {
    if (spec.needsBase && base === undefined) configError(`${at}: method "${spec.name}" merges task vectors and needs a base_model`, at);
    if (!spec.needsBase && !spec.optionalBase && base !== undefined) configError(`${at}: method "${spec.name}" does not use a base model; remove base_model (or list it under models)`, at);
  };
  checkShared(config.parameters, 'parameters');
  if (config.slices) {
    config.slices.forEach((slice, i) => {
      checkBase(slice.baseModel, slice.baseModel !== config.baseModel ? `slices[${i}].base_model` : 'base_model');
      if (slice.baseModel !== undefined && !slice.sources.some((s) => s.model === slice.baseModel)) {
        configError(`slices[${i}].sources: the base model "${slice.baseModel}" is not one of them; list it with the layer_range to take its layers from`, `slices[${i}].sources`);
      }
      checkShared(slice.parameters, `slices[${i}].parameters`);
      slice.sources.forEach((src, j) => checkOwn(src.parameters, `slices[${i}].sources[${j}].parameters`));
    });
    return spec;
  }
  checkBase(config.baseModel, 'base_model');
  config.models.forEach((m, i) => checkOwn(m.parameters, `models[${i}].parameters`));
  return spec;
}

/** A level of settings as combineParams reads it: the setting's value for this tensor, undefined when unset or no filter matches. */
function settingsLevel(settings: Record<string, ParamSetting>, tensorName: string, t: number): ParamLevel {
  return (key) => (Object.prototype.hasOwnProperty.call(settings, key) ? evaluateSetting(settings[key]!, tensorName, t) : undefined);
}

/**
 * The parameters of one tensor at layer position `t` in a `models` config: a model's setting,
 * else the global setting, else the method's default (combineParams, mergekit's rule).
 */
export function resolveTensorParams(config: MergeConfig, spec: MethodSpec, tensorName: string, t: number): TensorParams {
  return combineParams(spec, [settingsLevel(config.parameters, tensorName, t)], config.models.map((m) => settingsLevel(m.parameters, tensorName, t)));
}

/**
 * The parameters of one tensor of slice `slice` at position `t` within it: a source's setting,
 * else the slice's, else the global one, else the method's default. `sources`: the slice's
 * sources being merged (the base's source excluded), in order.
 */
export function resolveSliceParams(config: MergeConfig, spec: MethodSpec, slice: SliceEntry, sources: readonly SliceSource[], tensorName: string, t: number): TensorParams {
  return combineParams(
    spec,
    [settingsLevel(slice.parameters, tensorName, t), settingsLevel(config.parameters, tensorName, t)],
    sources.map((s) => settingsLevel(s.parameters, tensorName, t)),
  );
}
