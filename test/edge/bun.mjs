// Bun smoke test of the built package through its own exports map (default condition).
import { init, reference, MergeKernelsError } from 'merge-kernels';

const mk = await init();
if (mk.backend !== 'wasm') throw new Error(`expected wasm in Bun (no WebGPU), got ${mk.backend}`);
const [M, N, C] = [37, 29, 21];
const a = Float32Array.from({ length: M * C }, (_, i) => Math.sin(i * 1.3));
const b = Float32Array.from({ length: N * C }, (_, i) => Math.cos(i * 0.7));
const got = await mk.cosineSimilarity({ data: a, shape: [M, C] }, { data: b, shape: [N, C] });
const want = reference.cosineSimilarity(a, b, 1, M, N, C);
for (let i = 0; i < want.length; i++) {
  if (!(Math.abs(got.data[i] - want[i]) <= 1e-5)) throw new Error(`mismatch at ${i}: ${got.data[i]} vs ${want[i]}`);
}
let threw = false;
try { await mk.cosineSimilarity({ data: [1, 2], shape: [1, 2] }, { data: b, shape: [N, C] }); } catch (e) { threw = e instanceof MergeKernelsError && e.code === 'INVALID_TYPE'; }
if (!threw) throw new Error('expected INVALID_TYPE');
mk.dispose();
console.log('bun smoke: ok');
