// The KV-cache family on wasm: thin wrappers over assembly/kv-clustering.ts (copy in, run, copy
// out). Chunked soft matching runs entirely in wasm (similarity, best match, ranking, merges); so
// does attention.
import { MergeKernelsError } from '../errors.ts';
import type { WasmRuntime } from '../wasm/runtime.ts';
import type { KvInput, KvKernels } from './kernels.ts';

/** Floats of scratch assembly's clusterKV needs for chunks of at most `maxLen` tokens. */
function scratchFloats(maxLen: number, d: number, dv: number): number {
  const half = Math.ceil(maxLen / 2);
  return maxLen * (d + dv + 4) + half * (2 * d + half + 3);
}

/** Copies `x` in and scans it for NaN/±Infinity with SIMD (checkFinite's error, once, where the data is copied anyway). */
function putFinite(rt: WasmRuntime, name: string, x: Float32Array, what: string): number {
  const ptr = rt.put(x, what);
  const bad = rt.exports.findNonFinite(ptr, x.length);
  if (bad >= 0) throw new MergeKernelsError('NON_FINITE', `${name}: expected finite values, found ${x[bad]} at flat index ${bad}`, name);
  return ptr;
}

/** A cache input in wasm memory: a device tensor's block as it is, host values copied in and scanned. */
function place(rt: WasmRuntime, name: string, x: KvInput, what: string): number {
  if (x instanceof Float32Array) return putFinite(rt, name, x, what);
  if (x.kind !== 'wasm') throw new Error(`internal: expected wasm storage, got ${x.kind}`);
  return x.ptr;
}

export function wasmKvKernels(rt: WasmRuntime): KvKernels {
  return {
    checksFinite: true,
    async clusterKV(keys, values, size, shape, layout, resident) {
      const { heads, tokens, keyDim: d, valueDim: dv } = shape;
      const m = layout.slots;
      const maxLen = layout.chunks.reduce((a, c) => Math.max(a, c.length), 0);
      // Resident outputs are kept blocks (device tensors), reserved before the call's arena.
      const ok = resident ? rt.keep(heads * m * d * 4, 'the merged keys') : 0;
      const ov = resident ? rt.keep(heads * m * dv * 4, 'the merged values') : 0;
      try {
        rt.reset();
        const pk = place(rt, 'keys', keys, 'the keys');
        const pv = place(rt, 'values', values, 'the values');
        const ps = size ? rt.put(size, 'the sizes') : 0;
        const chunks = new Int32Array(layout.chunks.flatMap((c) => [c.start, c.length, c.keep]));
        const pc = rt.alloc(chunks.byteLength, 'the chunk table');
        new Int32Array(rt.memory.buffer, pc, chunks.length).set(chunks);
        const pok = resident ? ok : rt.alloc(heads * m * d * 4, 'the merged keys');
        const pov = resident ? ov : rt.alloc(heads * m * dv * 4, 'the merged values');
        const os = rt.alloc(heads * m * 4, 'the slot sizes');
        const op = rt.alloc(heads * m * 4, 'the slot positions');
        const oa = rt.alloc(heads * tokens * 4, 'the assignment');
        const scratch = rt.alloc(scratchFloats(maxLen, d, dv) * 4, 'a chunk\'s scratch');
        rt.exports.kvCluster(pk, pv, ps, heads, tokens, d, dv, layout.sinkTokens, layout.recentTokens, pc, layout.chunks.length, m, pok, pov, os, op, oa, scratch, maxLen);
        return {
          keys: resident ? { kind: 'wasm', ptr: ok, length: heads * m * d } : rt.take(pok, heads * m * d),
          values: resident ? { kind: 'wasm', ptr: ov, length: heads * m * dv } : rt.take(pov, heads * m * dv),
          size: rt.take(os, heads * m),
          position: rt.takeI32(op, heads * m), assignment: rt.takeI32(oa, heads * tokens),
        };
      } catch (e) {
        // A failed call (NaN in the inputs, out of memory) keeps nothing.
        if (resident) { rt.release(ok, heads * m * d * 4); rt.release(ov, heads * m * dv * 4); }
        throw e;
      }
    },
    async attention(q, keys, values, size, shape, causal) {
      const { queryHeads, kvHeads, queries, keys: tk, keyDim: d, valueDim: dv } = shape;
      rt.reset();
      // The same order of checks as the API's: keys, values, then q.
      const pk = place(rt, 'keys', keys, 'the keys');
      const pv = place(rt, 'values', values, 'the values');
      const pq = putFinite(rt, 'q', q, 'the queries');
      const pl = size ? rt.put(size.map(Math.log), 'the log sizes') : 0;
      let pp = 0;
      if (causal?.keyPosition) {
        pp = rt.alloc(causal.keyPosition.byteLength, 'the key positions');
        new Int32Array(rt.memory.buffer, pp, causal.keyPosition.length).set(causal.keyPosition);
      }
      const out = rt.alloc(queryHeads * queries * dv * 4, 'the attention output');
      const logits = rt.alloc(tk * 4, 'a row of logits');
      // Positions are compared as i32: a queryStart beyond its range sees every key or none.
      const start = causal ? Math.max(-(2 ** 31), Math.min(2 ** 31 - 1 - queries, causal.queryStart)) : 0;
      rt.exports.kvAttention(pq, pk, pv, pl, out, logits, queryHeads, kvHeads, queries, tk, d, dv, causal !== undefined, pp, start);
      return rt.take(out, queryHeads * queries * dv);
    },
  };
}
