// One harness for every runtime: resolves the backend under test, applies every suite to it,
// and runs them with uvu. Runtime entries (test/runtimes/*) only supply the GPU and the output.
import { exec } from 'uvu';
import { init, MergeKernelsError, type BackendName, type MergeKernels } from 'merge-kernels';
import cosineSimilarity from './suites/cosine-similarity.ts';
import context from './suites/context.ts';
import tokenMerging from './suites/token-merging.ts';
import safetensors from './suites/safetensors.ts';
import bipartiteSoftMatchingReference from './suites/bipartite-soft-matching.ts';
import tokenMergingVariants from './suites/token-merging-variants.ts';
import tokenMergingVariantsReference from './suites/token-merging-variants-reference.ts';
import modelInterpolation from './suites/model-interpolation.ts';
import modelInterpolationReference from './suites/model-interpolation-reference.ts';
import mergePrimitives, { mergePrimitivesReference } from './suites/merge-primitives.ts';
import mergeRunner from './suites/merge-runner.ts';
import modelMerging from './suites/model-merging.ts';
import modelMergingReference from './suites/model-merging-reference.ts';
import mergePrimitivesGpu from './suites/merge-primitives-gpu.ts';
import options from './suites/options.ts';
import outputs from './suites/outputs.ts';
import deviceTensors from './suites/device-tensors.ts';
import tokenMergingProperties from './suites/token-merging-properties.ts';
import oracles from './suites/oracles.ts';
import tokenMergingDevice from './suites/token-merging-device.ts';
import tiesGpu from './suites/ties-gpu.ts';
import svd from './suites/svd.ts';
import kvClustering from './suites/kv-clustering.ts';
import kvClusteringQuality from './suites/kv-clustering-quality.ts';

export type Runtime = 'node' | 'deno' | 'chromium';

export interface Harness {
  runtime: Runtime;
  backend: BackendName;
  /** The context under test. */
  mk: MergeKernels;
  /** The js reference context: the oracle. */
  ref: MergeKernels;
  /** What init() needs to reach WebGPU in this runtime. */
  gpu: GPU | undefined;
  /** Prints one line to the runner's output. */
  print(line: string): void;
  /**
   * Whether this pass checks `op`, an operation that runs as TypeScript shared by every backend
   * (HOST_CODE): comparing it with the reference on each backend would compare the reference
   * with itself, so such checks are plumbing checks, labelled so and run once, in the js pass.
   * Every other operation is checked on every backend.
   */
  checks(op: string): boolean;
}

/**
 * Operations with no kernel: they run the same TypeScript on every backend. Empty since
 * plan.merge / unmerge / mergeWavg / mergeSource became kernels (src/token-merging/groups.ts);
 * an operation added here must say why it has no kernel.
 */
export const HOST_CODE: ReadonlySet<string> = new Set<string>();

/** Suites applied to every backend. */
const SUITES: Array<(h: Harness) => void> = [
  context, options, outputs, deviceTensors, cosineSimilarity, tokenMerging, tokenMergingVariants, mergePrimitives, mergePrimitivesGpu, tiesGpu, modelMerging, tokenMergingProperties, tokenMergingDevice, svd, kvClustering,
];
/**
 * Suites with no backend (references checked by hand, file formats, the interpolation methods,
 * which are host code over chunks): run once per runtime, in the js pass.
 */
const REFERENCE_SUITES: Array<(h: Harness) => void> = [
  bipartiteSoftMatchingReference, tokenMergingVariantsReference, safetensors, modelInterpolation, modelInterpolationReference, mergePrimitivesReference, mergeRunner, modelMergingReference, oracles, kvClusteringQuality,
];

/** Runs every suite on `backend`; returns 0 when all passed. Prints SKIP-BACKEND when the backend cannot run here. */
export async function run(runtime: Runtime, backend: string, gpu: GPU | undefined, print: (line: string) => void): Promise<number> {
  if (backend !== 'js' && backend !== 'wasm' && backend !== 'webgpu') {
    print(`unknown backend ${JSON.stringify(backend)}: expected js, wasm or webgpu`);
    return 2;
  }
  let mk: MergeKernels;
  try {
    mk = await init({ backend, gpu });
  } catch (e) {
    // Only WebGPU may be missing from a runtime; a js or wasm backend that cannot start is a failure.
    if (backend === 'webgpu' && e instanceof MergeKernelsError && e.code === 'BACKEND_UNAVAILABLE') {
      print(`SKIP-BACKEND: ${e.message}`);
      return 0;
    }
    print(`FAIL-BACKEND: ${(e as Error)?.name}: ${(e as Error)?.message ?? e}`);
    return 1;
  }
  const ref = await init({ backend: 'js' });
  const g = globalThis as { UVU_QUEUE?: unknown[][] };
  g.UVU_QUEUE = [[`${runtime} / ${backend}`]];
  const h: Harness = { runtime, backend, mk, ref, gpu, print, checks: (op) => backend === 'js' || !HOST_CODE.has(op) };
  for (const suite of SUITES) suite(h);
  if (backend === 'js') for (const suite of REFERENCE_SUITES) suite(h);
  await exec();
  mk.dispose();
  ref.dispose();
  return 0;
}
