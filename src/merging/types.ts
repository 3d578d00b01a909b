// The contract between merge methods (src/merging/methods/*.ts) and whatever feeds them tensors:
// the in-memory API (mk.mergeTensors), the file runner (src/merging/runner.ts) and the CLI.
//
// A method merges one tensor at a time, streamed in chunks: first `passes` observation passes
// over the tensor's chunks (to gather statistics such as a magnitude histogram or norms), then
// one apply pass that writes the merged chunk (and, where the driver keeps its output in memory,
// the chunks the method asks to revisit). Peak memory is therefore one chunk per input,
// whatever the tensor or model size. Methods that need a statistic of the whole model (TIES
// with scope 'model') declare `modelPasses`: the runner first streams every tensor through
// `observeModel`, then merges tensor by tensor.
import type { Backend } from '../backends.ts';

/** Parameter values as they come from a config (mergekit's YAML) or the API. */
export type ParamValue = number | boolean | string;

/** Parameters resolved for one tensor: global ones, and one record per model (in config order). */
export interface TensorParams {
  global: Readonly<Record<string, ParamValue>>;
  models: ReadonlyArray<Readonly<Record<string, ParamValue>>>;
}

/** One tensor being merged. */
export interface TensorInfo {
  /** The tensor's name in the checkpoint (also keys DARE's random stream). */
  name: string;
  shape: readonly number[];
  numel: number;
}

/**
 * A contiguous slice [offset, offset + length) of one tensor, in every input. `models` are the
 * fine-tuned tensors (not task vectors: a method subtracts `base` itself when it needs δ).
 * Arrays may be views into reused buffers: copy what must outlive the call.
 */
export interface Chunk {
  offset: number;
  length: number;
  base: Float32Array | undefined;
  models: readonly Float32Array[];
}

/** A method's work on one tensor. */
export interface TensorMerge {
  /**
   * Observation passes over the tensor's chunks before apply (0 for element-wise methods). It may
   * drop after a pass (a statistic found early), never grow: drivers read it again after each pass.
   */
  readonly passes: number;
  /** Chunks hold whole rows of this many entries (1: any split). Row-wise methods set the last dimension. */
  readonly rowAlign: number;
  /** Sees every chunk of the tensor, in order, once per pass (pass = 0 .. passes-1). */
  observe(pass: number, chunk: Chunk): Promise<void>;
  /**
   * Writes the merged values of `chunk` into `out` (length chunk.length), in order: every entry
   * (`out` may be a reused buffer holding an earlier chunk's values).
   */
  apply(chunk: Chunk, out: Float32Array): Promise<void>;
  /**
   * Only for drivers that can revisit their output (TensorDriver.revisit), once the apply pass is
   * done: the offsets of the chunks whose apply must run again, now that a statistic of the whole
   * tensor is known (the TIES paper's zero sign, guessed during the apply pass). The driver calls
   * apply once more for each, with the same chunk. Absent or empty: nothing to redo.
   */
  revisit?(): number[];
}

/** What the code feeding a TensorMerge can do besides one apply per chunk, in order. */
export interface TensorDriver {
  /** apply may run again for chunks already applied (the output is in memory, not a written stream). */
  revisit: boolean;
}

/** A configured merge method (one merge run). */
export interface MergeMethod {
  /** mergekit's `merge_method` name. */
  readonly name: string;
  /** Whether inputs include a base model (task-vector methods, SLERP's first model, ...). */
  readonly needsBase: boolean;
  /** Observation passes over the whole model before any tensor is merged (0 unless a statistic spans tensors). */
  readonly modelPasses: number;
  /** Sees every chunk of every tensor, in the runner's tensor order, once per model pass. */
  observeModel(pass: number, tensor: TensorInfo, params: TensorParams, chunk: Chunk): Promise<void>;
  /** Starts merging one tensor (`driver`: what its driver can do; none beyond the protocol when absent). */
  tensor(info: TensorInfo, params: TensorParams, driver?: TensorDriver): TensorMerge;
}

/** What a method needs to know at creation: the number of models, the seed, and the backend's primitives. */
export interface MethodContext {
  models: number;
  /** Seed of every random stream (DARE, DELLA); with the tensor name it fixes every mask. */
  seed: number;
  backend: Backend;
  /**
   * The run's resolved global parameters, for methods whose model passes depend on them (TIES with
   * scope 'model'). A method that needs them and is created without them says so when a tensor asks.
   */
  global?: Readonly<Record<string, ParamValue>>;
}

/** Describes one method: its mergekit name, parameters it accepts (anything else is an error), and a factory. */
export interface MethodSpec {
  name: string;
  needsBase: boolean;
  /** Whether a base is used when given although not required (nuslerp then interpolates task vectors). */
  optionalBase?: boolean;
  /** Global parameters with their defaults (mergekit's names). */
  globalParams: Readonly<Record<string, ParamValue>>;
  /** Per-model parameters with their defaults. A value given globally applies to every model unless the model overrides it. */
  modelParams: Readonly<Record<string, ParamValue>>;
  create(ctx: MethodContext): MergeMethod;
}
