// The edge-runtime smoke check, shared by workerd (worker.ts) and Bun (bun.mjs): the built
// package must resolve to wasm, match the reference, and throw its typed errors.
export async function smoke({ init, reference, MergeKernelsError, parseMergeConfig }) {
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
  // Model merging: the wasm primitives under DARE + TIES equal the js reference, and a mergekit
  // YAML config parses (the yaml dependency resolves in this runtime).
  const js = await init({ backend: 'js' });
  const n = 1001;
  const t = (k) => ({ data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * (k + 1.1))), shape: [n] });
  const opts = { base: t(0), models: [t(1), t(2), t(3)], parameters: { density: 0.3 }, name: 'layers.0.w', seed: 7 };
  const merged = await mk.mergeTensors('dare_ties', opts);
  const expected = await js.mergeTensors('dare_ties', opts);
  for (let i = 0; i < n; i++) {
    if (!(Math.abs(merged.data[i] - expected.data[i]) <= 1e-6 * (1 + Math.abs(expected.data[i])))) throw new Error(`dare_ties mismatch at ${i}: ${merged.data[i]} vs ${expected.data[i]}`);
  }
  const config = parseMergeConfig('merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: { density: 0.5, weight: 1 }\n');
  if (config.mergeMethod !== 'ties' || config.models.length !== 1) throw new Error(`config parsed wrong: ${JSON.stringify(config)}`);
  js.dispose();
  mk.dispose();
}
