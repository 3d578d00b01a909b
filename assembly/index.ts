// The single wasm module: every kernel's exports, plus where free memory starts.
// The host owns the memory (imported) and places all arrays above heapBase().
export { l2NormalizeRows, rowDots, cosineSimilarity } from "./cosine-similarity";
export { bestMatch, bestMatchEvenOdd } from "./best-match";
export { absHistogram, subtractInPlace, tiesMerge, dropAndRescale, findNonFinite, bf16ToF32 } from "./merge-primitives";
export { mergeGroups, ungroupRows } from "./merge-groups";
export { clusterKV as kvCluster, attention as kvAttention } from "./kv-clustering";
export { simdFlopProbe, copyBytes, streamProbe } from "./probe";

/** First byte past the module's static data; the host allocates from here (16-byte aligned). */
export function heapBase(): usize {
  return (__heap_base + 15) & ~<usize>15;
}
export { householderQR, applyQ, multiply, transpose, jacobiSweeps } from "./svd";
