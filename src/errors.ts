/** Stable error codes. A code never changes meaning; new failures get new codes. */
export type ErrorCode =
  | 'INVALID_TYPE'          // an argument has the wrong JavaScript type (e.g. number[] for Float32Array)
  | 'INVALID_SHAPE'         // a shape is malformed or does not match the data length / expected rank
  | 'SHAPE_MISMATCH'        // two arguments' shapes disagree (e.g. different feature sizes)
  | 'NON_FINITE'            // NaN or ±Infinity where it would break the math
  | 'INVALID_OPTION'        // an option is out of range, of the wrong type, or unknown
  | 'BACKEND_UNAVAILABLE'   // the requested backend cannot run here (the message says why)
  | 'DEVICE_LOST'           // the GPU device was lost; create a new context with init()
  | 'DISPOSED'              // the context, or a device tensor, was disposed
  | 'WRONG_DEVICE'          // a device tensor of another context, or a GPUBuffer of another device
  | 'ON_DEVICE'             // a plan's indices are on the GPU (matched from a device metric): await plan.read() first
  | 'OUT_OF_MEMORY'         // wasm memory could not grow to the size the call needs
  | 'TOO_LARGE'             // the problem exceeds a hard limit of the backend even after splitting
  | 'INVALID_SAFETENSORS'   // a safetensors file or shard index violates the format; `violation` says which rule
  | 'MISSING_TENSOR'        // a tensor is in some of the models to merge but not in others
  | 'MISSING_FILE'          // a file the merge needs does not exist: a model path, a config file, an input not given, a tokenizer_source without tokenizer files
  | 'DTYPE_MISMATCH'        // the models' tensors of one name have dtypes that cannot be merged together (a float and an integer, two integer dtypes)
  | 'UNSUPPORTED_DTYPE'     // a tensor's dtype cannot be merged (float8): the message names the tensor, the model and the dtype
  | 'GPU_ERROR'             // WebGPU reported a validation or internal error (a bug: please report)
  | 'IO_ERROR'              // a file or folder could not be read, created or written (path and the system's reason in the message)
  | 'WASM_ABORT'            // the wasm module aborted (a bug: please report)
  | 'WASM_BROKEN';          // the kernels' wasm failed to compile or instantiate where wasm works (a broken build or wrong bytes)

/** Every error merge-kernels throws. `code` is stable; `argument` names the offending argument. */
export class MergeKernelsError extends Error {
  readonly code: ErrorCode;
  readonly argument: string | undefined;

  constructor(code: ErrorCode, message: string, argument?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MergeKernelsError';
    this.code = code;
    this.argument = argument;
  }
}

/** Describes a received value in an error message: its type, and for arrays their class and length. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a plain Array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as ArrayLike<unknown>).length}`;
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  return `${typeof value} ${String(value)}`;
}
