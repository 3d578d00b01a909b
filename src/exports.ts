// Everything both entry points export besides init().
export { MergeKernels } from './api.ts';
export type { InitOptions, BackendOption } from './api.ts';
export type { BackendName } from './backends.ts';
export { MergeKernelsError } from './errors.ts';
export type { ErrorCode } from './errors.ts';
export type { Tensor } from './tensor.ts';
export { numel } from './tensor.ts';
export * as reference from './reference/index.ts';
