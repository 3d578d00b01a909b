// The edge-runtime smoke check, shared by workerd (worker.ts) and Bun (bun.mjs): the built
// package must resolve to wasm, match the reference, and throw its typed errors.
export async function smoke({ init, reference, MergeKernelsError }) {
  const mk = await init();
  if (mk.backend !== 'wasm') throw new Error(`expected the wasm backend (no WebGPU here), got ${mk.backend}`);
  const [M, N, C] = [37, 29, 21];
  const a = Float32Array.from({ length: M * C }, (_, i) => Math.sin(i * 1.3));
  const b = Float32Array.from({ length: N * C }, (_, i) => Math.cos(i * 0.7));
  const got = await mk.cosineSimilarity({ data: a, shape: [M, C] }, { data: b, shape: [N, C] });
  const want = reference.cosineSimilarity(a, b, 1, M, N, C);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got.data[i] - want[i]) <= 1e-5)) throw new Error(`mismatch at ${i}: ${got.data[i]} vs ${want[i]}`);
  }
  for (const [bad, code] of [[{ data: [1, 2], shape: [1, 2] }, 'INVALID_TYPE'], [{ data: b, shape: [N * C] }, 'INVALID_SHAPE']]) {
    let threw;
    try { await mk.cosineSimilarity(bad, { data: b, shape: [N, C] }); } catch (e) { threw = e; }
    if (!(threw instanceof MergeKernelsError) || threw.code !== code) throw new Error(`expected MergeKernelsError ${code}, got ${threw}`);
  }
  mk.dispose();
}
