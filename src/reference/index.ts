// The plain TypeScript reference kernels, exported for users who want the oracle itself.
export { cosineSimilarity } from './cosine-similarity.ts';
export { bipartiteSoftMatching, mergeTokens, unmergeTokens, mergeWavg, mergeSource, parseR } from './bipartite-soft-matching.ts';
export type { MergePlan, MatchOptions, MergeMode } from './bipartite-soft-matching.ts';
export * as mergePrimitives from './merge-primitives.ts';
export {
  bipartiteSoftMatchingRandom2d, random2dSets, kthBipartiteSoftMatching, randomBipartiteSoftMatching, randomSets,
  thresholdSoftMatching, batchLevelSoftMatching, batchLevelMerge, pitomeSoftMatching, pitomeEnergy, pitomeMargin, seededStream,
} from './token-merging-variants.ts';
export type { Random2dOptions, ThresholdOptions, BatchLevelOptions, BatchLevelPlan, PitomeOptions } from './token-merging-variants.ts';
export { groupRows, ungroupRows, outputRows } from './bipartite-soft-matching.ts';
export * as modelInterpolation from './model-interpolation.ts';
export * as modelMerging from './model-merging.ts';
export * as svd from './svd.ts';
export * as kvClustering from './kv-clustering.ts';
export * as kvQuality from './kv-quality.ts';
