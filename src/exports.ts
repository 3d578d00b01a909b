// Everything both entry points export besides init().
export { MergeKernels } from './api.ts';
export type { InitOptions, BackendOption } from './api.ts';
export type { BackendName } from './backends.ts';
export type { GpuCounters } from './webgpu/runtime.ts';
export { MergeKernelsError } from './errors.ts';
export { DeviceTensor } from './device-tensor.ts';
export { TokenMergePlan } from './token-merging/merge-plan.ts';
export type { BipartiteSoftMatchingOptions, MergeMode, TokenMergeMethod } from './token-merging/merge-plan.ts';
export { ThresholdMergePlan, BatchLevelMergePlan } from './token-merging/variants.ts';
export type { Random2dMatchingOptions, ThresholdMatchingOptions, BatchLevelMatchingOptions, PitomeMatchingOptions } from './token-merging/variants.ts';
export { pitomeMargin } from './reference/token-merging-variants.ts';
export { parseR } from './reference/bipartite-soft-matching.ts';
export type { ErrorCode } from './errors.ts';
export type { Tensor } from './tensor.ts';
export { numel } from './tensor.ts';
export * as reference from './reference/index.ts';
export {
  parseSafetensorsHeader, parseSafetensorsHeaderFromBlob, readSafetensors, writeSafetensors,
  decodeToFloat32, encodeFromFloat32, parseShardIndex, safetensorsViolation, dtypeSize, dtypeBits, MAX_HEADER_LENGTH,
} from './safetensors.ts';
export type {
  SafetensorsViolation, SafetensorsErrorInfo, SafetensorsDtype, DecodableDtype, SafetensorsTensorInfo,
  SafetensorsHeader, SafetensorsTensor, SafetensorsTensorInput, ShardIndex,
} from './safetensors.ts';
export { MergePrimitives } from './merging/primitives.ts';
export type { HistogramRequest, TiesMergeCounts, TiesMergeOptions } from './merging/primitives.ts';
export type { MergeMethod, MethodSpec, MethodContext, TensorMerge, TensorInfo, TensorParams, Chunk, ParamValue } from './merging/types.ts';
export { mergeTensor } from './merging/driver.ts';
export { INTERPOLATION_METHODS } from './merging/methods/interpolation.ts';
export { SELECTION_METHODS } from './merging/methods/selection.ts';
export { parseSafetensorsHeaderFromReader, encodeSafetensorsHeader } from './safetensors.ts';
export { parseMergeConfig, checkConfigAgainst, resolveTensorParams, resolveSliceParams, evaluateSetting, layerPositions, layerOf } from './merging/config.ts';
export type { MergeConfig, ModelEntry, SliceEntry, SliceSource, ParamSetting, ScalarSetting, GradientSetting, StepSetting, FilterSetting, ConfigDtype } from './merging/config.ts';
// mergeModels itself is exported by each entry point, over its own init() (merging/merge-models.ts).
export { blobOutput } from './merging/runner.ts';
export type { ByteSource, ModelSource, ModelInput, OutputTarget, OutputFile, MergeProgress, MergeModelsResult } from './merging/runner.ts';
export type { MergeModelsOptions } from './merging/merge-models.ts';
export { METHODS } from './merging/registry.ts';
export { extractLora } from './lora/extract.ts';
export type { ExtractLoraOptions, ExtractLoraResult, LoraProgress, LoraTensorReport } from './lora/extract.ts';
export type { MergeTensorsOptions } from './merging/tensors.ts';
export type { TrimConvention, ZeroSignRule, DisjointMergeRule, GtaOptions, TaskParams } from './reference/model-merging.ts';
export type { SvdOptions, SvdResult, SvdMethod, LowRankOptions, LowRankResult } from './svd/api.ts';
export type { ClusterKVOptions, KvClusterResult, KvMethod, AttentionOptions, IndexTensor, MiniCacheOptions, MiniCacheResult } from './kv/api.ts';
export { KvCompressor } from './kv/online.ts';
export type { KvCompressorOptions, KvCacheState } from './kv/online.ts';
