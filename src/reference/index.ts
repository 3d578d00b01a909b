// The plain TypeScript reference kernels, exported for users who want the oracle itself.
export { cosineSimilarity } from './cosine-similarity.ts';
