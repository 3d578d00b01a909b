// The plain TypeScript reference kernels, exported for users who want the oracle itself.
export { cosineSimilarity } from './cosine-similarity.ts';
export { bipartiteSoftMatching, mergeTokens, unmergeTokens, mergeWavg, mergeSource, parseR } from './bipartite-soft-matching.ts';
export type { MergePlan, MatchOptions, MergeMode } from './bipartite-soft-matching.ts';
export * as mergePrimitives from './merge-primitives.ts';
export * as modelMerging from './model-merging.ts';
