// Thin wrappers over assembly/merge-groups.ts: host arrays are copied into the call's arena;
// device storage (kept wasm memory) is read and written in place.
import type { DeviceStorage } from '../device-tensor.ts';
import type * as ref from '../reference/bipartite-soft-matching.ts';
import type { WasmRuntime } from '../wasm/runtime.ts';
import { outputGroups, type GroupKernels, type GroupMode, type OutputGroups } from './groups.ts';

const MODE = { mean: 0, sum: 1, amax: 2, wavg: 3, source: 4 } as const;

export function wasmGroupKernels(rt: WasmRuntime): GroupKernels {
  const putI32 = (a: Int32Array, what: string) => {
    const p = rt.alloc(a.byteLength, what);
    new Int32Array(rt.memory.buffer, p, a.length).set(a);
    return p;
  };
  /** Runs mergeGroups with the plan's groups placed in the arena (call after rt.reset() and any keep()). */
  const mergeGroups = (g: OutputGroups, px: number, dim: number, mode: number, psize: number, pout: number, poutSize: number) => {
    const offsets = putI32(g.offsets, 'the plan\'s group offsets');
    const members = putI32(g.members, 'the plan\'s group members');
    const acc = rt.alloc(Math.max(1, dim) * 8, 'a row of float64 sums');
    rt.exports.mergeGroups(px, dim, offsets, members, g.batch * g.rows, mode, psize, pout, poutSize, acc, g.tokens);
  };
  const copyOut = (pout: number, length: number, into?: Float32Array) => {
    const out = into ?? new Float32Array(length);
    out.set(rt.f32(pout, length));
    return out;
  };
  return {
    merge(plan, x, dim, mode, into) {
      const g = outputGroups(plan);
      rt.reset();
      const px = rt.put(x, 'x');
      const pout = rt.alloc(g.batch * g.rows * dim * 4, 'the merged tokens');
      mergeGroups(g, px, dim, MODE[mode], 0, pout, 0);
      return copyOut(pout, g.batch * g.rows * dim, into);
    },
    mergeWavg(plan, x, dim, size, into) {
      const g = outputGroups(plan);
      const rows = g.batch * g.rows;
      rt.reset();
      const px = rt.put(x, 'x');
      const psize = size ? rt.put(size, 'size') : 0;
      const pout = rt.alloc(rows * dim * 4, 'the merged tokens');
      const poutSize = rt.alloc(rows * 4, 'the merged sizes');
      mergeGroups(g, px, dim, MODE.wavg, psize, pout, poutSize);
      return { x: copyOut(pout, rows * dim, into?.x), size: copyOut(poutSize, rows, into?.size) };
    },
    mergeSource(plan, source, n0) {
      const g = outputGroups(plan);
      rt.reset();
      const px = source ? rt.put(source, 'source') : 0;
      const pout = rt.alloc(g.batch * g.rows * n0 * 4, 'the merged sources');
      mergeGroups(g, px, n0, source ? MODE.amax : MODE.source, 0, pout, 0);
      return copyOut(pout, g.batch * g.rows * n0);
    },
    unmerge(plan, y, dim, into) {
      const g = outputGroups(plan);
      rt.reset();
      const py = rt.put(y, 'y');
      const pout = rt.alloc(g.batch * g.tokens * dim * 4, 'the unmerged tokens');
      const rowOf = putI32(g.rowOf, 'the plan\'s output rows');
      rt.exports.ungroupRows(rowOf, g.batch, g.tokens, g.rows, py, dim, pout);
      return copyOut(pout, g.batch * g.tokens * dim, into);
    },
    mergeOnDevice(plan, x, dim, mode: GroupMode, size) {
      const g = outputGroups(plan);
      const rows = g.batch * g.rows;
      const pout = rt.keep(rows * dim * 4, 'the merged tokens');
      const poutSize = mode === 'wavg' ? rt.keep(rows * 4, 'the merged sizes') : 0;
      rt.reset();
      mergeGroups(g, inWasm(x).ptr, dim, MODE[mode], size ? inWasm(size).ptr : 0, pout, poutSize);
      const out: { x: DeviceStorage; size?: DeviceStorage } = { x: { kind: 'wasm', ptr: pout, length: rows * dim } };
      if (mode === 'wavg') out.size = { kind: 'wasm', ptr: poutSize, length: rows };
      return out;
    },
    unmergeOnDevice(plan: ref.MergePlan, y, dim) {
      const g = outputGroups(plan);
      const pout = rt.keep(g.batch * g.tokens * dim * 4, 'the unmerged tokens');
      rt.reset();
      const rowOf = putI32(g.rowOf, 'the plan\'s output rows');
      rt.exports.ungroupRows(rowOf, g.batch, g.tokens, g.rows, inWasm(y).ptr, dim, pout);
      return { kind: 'wasm', ptr: pout, length: g.batch * g.tokens * dim };
    },
  };
}

function inWasm(s: DeviceStorage): { ptr: number; length: number } {
  if (s.kind !== 'wasm') throw new Error(`internal: expected wasm storage, got ${s.kind}`);
  return s;
}
