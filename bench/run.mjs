// npm run bench: measures this machine's limits, then runs every bench (or the ones named on the
// command line) against the peers a user would otherwise pick, in the same process. Every
// contender is validated (✔/✘) before it is timed. Each bench's results are printed and written
// to bench/results/<bench>.json (to a temporary name, then renamed).
//   node bench/run.mjs [--quick] [cosine-similarity] [token-merging] [model-merging] [svd] [kv-clustering] [gpu]
// `gpu` times the WebGPU backend against PyTorch on CUDA; it runs only on a hardware GPU adapter.
import { init } from '../dist/index.js';
import { describeMachine, measureLimits, loadTfWasm, writeResult } from './lib.mjs';
import cosineSimilarity from './cosine-similarity.mjs';
import tokenMerging from './token-merging.mjs';
import modelMerging from './model-merging.mjs';
import gpu from './gpu.mjs';
import svd from './svd.mjs';
import kvClustering from './kv-clustering.mjs';

const BENCHES = { 'cosine-similarity': cosineSimilarity, 'token-merging': tokenMerging, 'model-merging': modelMerging, svd, 'kv-clustering': kvClustering, gpu };
/** The benches whose peer is TensorFlow.js (loaded only for them). */
const NEEDS_TF = ['cosine-similarity', 'token-merging'];
const quick = process.argv.includes('--quick');
const named = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const name of named) {
  if (!(name in BENCHES)) { console.error(`unknown bench ${JSON.stringify(name)}: expected ${Object.keys(BENCHES).join(', ')}`); process.exit(2); }
}

const machine = describeMachine();
const limits = await measureLimits(quick);
console.log(`merge-kernels bench — ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, ${machine.date.slice(0, 10)}, load average ${machine.loadAverage1m.toFixed(1)}${quick ? ' (--quick)' : ''}\n`);
console.log('machine limits (one thread, fastest of the repeats)');
console.log(`  memory copy bandwidth   ${limits.copyBandwidthGBs.toFixed(1)} GB/s   (wasm memory.copy of 256 MiB; read + write bytes)`);
console.log(`  wasm SIMD f32 rate      ${limits.wasmSimdGflops.toFixed(1)} GFLOP/s (8 f32x4 accumulators of products)\n`);

const selected = Object.keys(BENCHES).filter((name) => named.length === 0 || named.includes(name));
const { tf, flags: tfFlags } = selected.some((name) => NEEDS_TF.includes(name)) ? await loadTfWasm() : {};
const mk = await init({ backend: 'wasm' });
for (const name of selected) {
  const bench = BENCHES[name];
  const result = await bench({ quick, limits, machine, mk, tf, tfFlags });
  writeResult(name, { machine, quick, limits, ...result });
  console.log(`\nwritten: bench/results/${name}.json\n`);
}
mk.dispose();
process.exit(0);
