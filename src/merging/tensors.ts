// The in-memory model-merging API behind mk.mergeTensors, mk.trimTopK, mk.electSign and
// mk.disjointMerge: checks every argument once, then runs the streaming methods (through the same
// chunk driver as the file runner) or the fused primitives on the context's backend.
import type { Backend } from '../backends.ts';
import { MergeKernelsError, describe } from '../errors.ts';
import { checkFinite, checkOut, checkTensor, numel, type Tensor } from '../tensor.ts';
import { integer, oneOf, options } from '../validate.ts';
import type { DisjointMergeRule, TrimConvention, ZeroSignRule } from '../reference/model-merging.ts';
import { chunksOf, mergeTensor } from './driver.ts';
import { resolveParams } from './params.ts';
import { METHODS } from './registry.ts';
import { TrimSet, trimArrays, trimPlan } from './streaming.ts';
import type { ParamValue, TensorInfo } from './types.ts';

const ANY_RANK = [0, 1, 2, 3, 4, 5, 6, 7, 8];
/** Default chunk of mk.mergeTensors: 1 Mi entries (4 MiB per input). */
export const DEFAULT_CHUNK = 1 << 20;

export interface MergeTensorsOptions {
  /** The base (pre-trained) tensor; required by every task-vector method. */
  base?: Tensor;
  /** The fine-tuned tensors (not task vectors), all of the base's shape. */
  models: Tensor[];
  /** Global parameters (mergekit's names); a per-model parameter given here applies to every model. */
  parameters?: Record<string, ParamValue>;
  /** Per-model parameters, one object (or undefined) per model. */
  modelParameters?: Array<Record<string, ParamValue> | undefined>;
  /** Seed of the random masks (DARE, DELLA); default 0. */
  seed?: number;
  /** The tensor's name, which keys its random masks with the seed (as the file runner does); default ''. */
  name?: string;
  /** Entries per chunk (rounded to whole rows for row-wise methods); the result does not depend on it. Default 2^20. */
  chunkSize?: number;
}

function tensorList(name: string, value: unknown): Tensor[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new MergeKernelsError('INVALID_TYPE', `${name}: expected a non-empty array of tensors, got ${describe(value)}`, name);
  }
  const list = value.map((v, i) => checkTensor(`${name}[${i}]`, v, ANY_RANK));
  list.forEach((x, i) => sameShape(`${name}[${i}]`, x, list[0]!, `${name}[0]`));
  return list;
}

function sameShape(name: string, x: Tensor, like: Tensor, likeName: string): void {
  if (x.shape.length !== like.shape.length || x.shape.some((d, i) => d !== like.shape[i])) {
    throw new MergeKernelsError('SHAPE_MISMATCH', `${name}: expected the shape of ${likeName} [${like.shape.join(', ')}], got [${x.shape.join(', ')}]`, name);
  }
}

/** Merges one tensor with a registered method; see MergeTensorsOptions. */
export async function mergeTensors(backend: Backend, method: unknown, opts: MergeTensorsOptions): Promise<Tensor> {
  if (typeof method !== 'string' || !Object.hasOwn(METHODS, method)) {
    throw new MergeKernelsError('INVALID_OPTION', `method: expected one of ${Object.keys(METHODS).join(', ')}, got ${describe(method)}`, 'method');
  }
  const spec = METHODS[method]!;
  const o = options('options', opts, ['base', 'models', 'parameters', 'modelParameters', 'seed', 'name', 'chunkSize'], true);
  const models = tensorList('models', o.models);
  const shape = models[0]!.shape;
  let base: Tensor | undefined;
  if (o.base !== undefined) {
    base = checkTensor('base', o.base, ANY_RANK);
    sameShape('base', base, models[0]!, 'models[0]');
  } else if (spec.needsBase) {
    throw new MergeKernelsError('INVALID_OPTION', `base: method '${method}' merges task vectors (model − base) and needs a base tensor`, 'base');
  }
  const seed = integer('seed', o.seed ?? 0, 0, 0xffffffff);
  const chunkSize = integer('chunkSize', o.chunkSize ?? DEFAULT_CHUNK, 1, 2 ** 31);
  const name = o.name ?? '';
  if (typeof name !== 'string') throw new MergeKernelsError('INVALID_OPTION', `name: expected a string, got ${describe(name)}`, 'name');
  const params = resolveParams(spec, models.length, o.parameters ?? {}, o.modelParameters);
  const info: TensorInfo = { name, shape: [...shape], numel: numel(shape) };
  const run = spec.create({ models: models.length, seed, backend, global: params.global });
  const data = models.map((m) => m.data);
  // The inputs stay as they are until the merge returns: a backend may upload each chunk once for
  // all the passes over it (see Backend.holdInputs).
  backend.holdInputs?.(base ? [...data, base.data] : data);
  try {
    for (let pass = 0; pass < run.modelPasses; pass++) {
      for (const chunk of chunksOf(info.numel, chunkSize, base?.data, data)) await run.observeModel(pass, info, params, chunk);
    }
    return { data: await mergeTensor(run, info, params, base?.data, data, chunkSize), shape: [...shape] };
  } finally {
    backend.releaseInputs?.();
  }
}

/** TIES' trim of one tensor: its top-`density` fraction by magnitude, the rest 0 (see TrimConvention). */
export async function trimTopK(backend: Backend, x: Tensor, opts: { density: number; convention?: TrimConvention }, into?: Tensor): Promise<Tensor> {
  const t = checkTensor('x', x, ANY_RANK);
  const target = into === undefined ? undefined : checkOut('out', into, t.shape, [t.data]);
  const o = options('options', opts, ['density', 'convention'], true);
  const density = o.density;
  if (typeof density !== 'number' || !(density >= 0 && density <= 1)) {
    throw new MergeKernelsError('INVALID_OPTION', `density: expected a number in [0, 1], got ${describe(density)}`, 'density');
  }
  const convention = oneOf('convention', o.convention, ['paper', 'mergekit'] as const, 'mergekit');
  checkFinite('x', t.data);
  const plan = trimPlan(t.data.length, density, convention);
  const trims = new TrimSet(backend, [plan.kind === 'select'], [{ vector: 0, plan }]);
  if (trims.needsPasses) {
    await trims.observe0(0, t.data);
    await trims.observe1(0, t.data);
  }
  const { thr, budget } = trimArrays(trims.trims());
  const out = target ?? new Float32Array(t.data.length);
  await backend.tiesMerge([t.data], new Float32Array([1]), thr, budget, undefined, out, { vote: 'none', zeroSign: 1, merge: 'sum', lambda: 1, output: 'merged' });
  return into ?? { data: out, shape: [...t.shape] };
}

interface SignOptions {
  method: 'sum' | 'count' | 'none';
  zeroSign: ZeroSignRule;
  weights: Float32Array;
}

function signOptions(deltas: Tensor[], opts: unknown, keys: string[], methods: readonly ('sum' | 'count' | 'none')[]): SignOptions & Record<string, unknown> {
  const o = options('options', opts, keys);
  const method = oneOf('method', o.method, methods, 'sum');
  const zeroSign = oneOf('zeroSign', o.zeroSign, ['paper', 'mergekit'] as const, 'mergekit');
  let weights = new Float32Array(deltas.length).fill(1);
  if (o.weights !== undefined) {
    const w = o.weights;
    if (!Array.isArray(w) || w.length !== deltas.length || !w.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw new MergeKernelsError('INVALID_OPTION', `weights: expected an array of ${deltas.length} finite numbers (one per task vector), got ${describe(w)}`, 'weights');
    }
    weights = Float32Array.from(w as number[]);
  }
  deltas.forEach((d, t) => checkFinite(`deltas[${t}]`, d.data));
  return { ...o, method, zeroSign, weights };
}

/** The elected signs under `zero`: for 'paper', the majority of the signs of the non-zero totals decides. */
async function elect(backend: Backend, deltas: Float32Array[], o: SignOptions, into?: Float32Array): Promise<{ signs: Float32Array; zeroSign: 1 | -1 }> {
  const T = deltas.length;
  const n = deltas[0]!.length;
  const run = async (zeroSign: 1 | -1) => {
    const out = zeroSign === 1 && into ? into : new Float32Array(n);
    await backend.tiesMerge(deltas, o.weights, new Int32Array(T).fill(-1), new Float64Array(T), undefined, out, { vote: o.method as 'sum' | 'count', zeroSign, merge: 'sum', lambda: 1, output: 'sign', counts: false });
    return out;
  };
  const plus = await run(1);
  if (o.zeroSign === 'mergekit') return { signs: plus, zeroSign: 1 };
  const minus = await run(-1);
  // Where the two runs differ the total was 0; elsewhere both hold the sign of the total.
  let majority = 0;
  for (let i = 0; i < n; i++) if (plus[i] === minus[i]) majority += plus[i]!;
  if (majority > 0) return { signs: plus, zeroSign: 1 };
  if (into) into.set(minus);
  return { signs: into ?? minus, zeroSign: -1 };
}

/** TIES' sign election per entry over task vectors (±1; see reference electSign for the zero rules). */
export async function electSign(backend: Backend, deltas: unknown, opts?: unknown, into?: Tensor): Promise<Tensor> {
  const list = tensorList('deltas', deltas);
  const o = signOptions(list, opts, ['method', 'zeroSign', 'weights'], ['sum', 'count']);
  const target = into === undefined ? undefined : checkOut('out', into, list[0]!.shape, list.map((d) => d.data));
  const { signs } = await elect(backend, list.map((d) => d.data), o, target);
  return into ?? { data: signs, shape: [...list[0]!.shape] };
}

/** TIES' disjoint merge of task vectors: combines the entries agreeing with the elected sign (method 'none': every entry). */
export async function disjointMerge(backend: Backend, deltas: unknown, opts?: unknown, into?: Tensor): Promise<Tensor> {
  const list = tensorList('deltas', deltas);
  const target = into === undefined ? undefined : checkOut('out', into, list[0]!.shape, list.map((d) => d.data));
  const o = signOptions(list, opts, ['method', 'merge', 'zeroSign', 'weights'], ['sum', 'count', 'none']);
  const merge = oneOf<DisjointMergeRule>('merge', o.merge, ['mean', 'normalize', 'sum', 'max'], 'mean');
  const data = list.map((d) => d.data);
  const T = data.length;
  const zeroSign = o.method === 'none' ? 1 : (await elect(backend, data, o)).zeroSign;
  const out = target ?? new Float32Array(data[0]!.length);
  await backend.tiesMerge(data, o.weights, new Int32Array(T).fill(-1), new Float64Array(T), undefined, out, { vote: o.method, zeroSign, merge, lambda: 1, output: 'merged', counts: false });
  return into ?? { data: out, shape: [...list[0]!.shape] };
}
