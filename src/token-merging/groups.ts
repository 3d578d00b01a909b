// The merge half of token merging as a kernel family (Foundation v2): ToMe's merge, merge_wavg,
// merge_source and unmerge (Bolya et al. 2023, §3; tome/merge.py) run on the plan's context —
// wasm SIMD or WGSL — over the plan's output groups, which are built here once per plan.
// Semantics: mergeTokens / mergeWavg / mergeSource / ungroupRows in
// src/reference/bipartite-soft-matching.ts (the js backend runs those).
import * as ref from '../reference/bipartite-soft-matching.ts';
import type { DeviceStorage } from '../device-tensor.ts';
import type { KernelTable } from '../kernel-table.ts';
import { wasmGroupKernels } from './groups-wasm.ts';
import { webgpuGroupKernels } from './groups-webgpu.ts';

export type GroupMode = ref.MergeMode | 'wavg';

/**
 * A plan's output groups: output row `row` (over the whole batch, b·M + i) reduces the tokens
 * members[offsets[row] .. offsets[row + 1]) (flat indices b·N + token, ascending), and `rowOf`
 * [B, N] is the row of every token within its item (-1: dropped).
 */
export interface OutputGroups {
  batch: number;
  tokens: number;
  /** Output rows per batch item, N − r. */
  rows: number;
  offsets: Int32Array;
  members: Int32Array;
  rowOf: Int32Array;
}

const groupsCache = new WeakMap<ref.MergePlan, OutputGroups>();

/**
 * The plan's output groups, built once: each item's kept tokens sorted by (output row, token) —
 * the order tome-groups.wgsl computes on the GPU — with each row's first slot as its offset.
 */
export function outputGroups(plan: ref.MergePlan): OutputGroups {
  const cached = groupsCache.get(plan);
  if (cached) return cached;
  const { batch, tokens: n } = plan;
  const m = n - plan.r;
  const rowOf = plan.outputRow ?? ref.outputRows(plan);
  const offsets = new Int32Array(batch * m + 1);
  const sorted: number[] = [];
  for (let t = 0; t < batch; t++) {
    const rows = rowOf.subarray(t * n, (t + 1) * n);
    const kept: number[] = [];
    for (let tok = 0; tok < n; tok++) if (rows[tok]! >= 0) kept.push(tok);
    kept.sort((a, b) => rows[a]! - rows[b]! || a - b);
    // Row R starts at the first kept token whose row is ≥ R (an empty row: where the next begins).
    let k = 0;
    for (let row = 0; row < m; row++) {
      while (k < kept.length && rows[kept[k]!]! < row) k++;
      offsets[t * m + row] = sorted.length + k;
    }
    for (const tok of kept) sorted.push(t * n + tok);
  }
  offsets[batch * m] = sorted.length;
  const g = { batch, tokens: n, rows: m, offsets, members: Int32Array.from(sorted), rowOf };
  groupsCache.set(plan, g);
  return g;
}

/**
 * One backend's merges. Host arrays in and out, synchronously (a model calls these layer after
 * layer); device storage in and out without leaving the device. `into`: the caller's output.
 */
export interface GroupKernels {
  merge(plan: ref.MergePlan, x: Float32Array, dim: number, mode: ref.MergeMode, into?: Float32Array): Float32Array;
  mergeWavg(plan: ref.MergePlan, x: Float32Array, dim: number, size: Float32Array | undefined, into?: { x: Float32Array; size: Float32Array }): { x: Float32Array; size: Float32Array };
  /** ToMe's merge_source: `source` [B, N, n0] (the identity when absent) → [B, N − r, n0]. */
  mergeSource(plan: ref.MergePlan, source: Float32Array | undefined, n0: number): Float32Array;
  unmerge(plan: ref.MergePlan, y: Float32Array, dim: number, into?: Float32Array): Float32Array;
  /** merge (mode) or mergeWavg (mode 'wavg', with `size` or ones) on device storage: new storage for x (and size, for 'wavg'). */
  mergeOnDevice(plan: ref.MergePlan, x: DeviceStorage, dim: number, mode: GroupMode, size: DeviceStorage | undefined): { x: DeviceStorage; size?: DeviceStorage };
  unmergeOnDevice(plan: ref.MergePlan, y: DeviceStorage, dim: number): DeviceStorage;
}

/** The reference's merges, on host arrays (device storage of the js backend is a host array). */
export const jsGroupKernels: GroupKernels = {
  merge: (plan, x, dim, mode, into) => ref.mergeTokens(plan, x, dim, mode, into),
  mergeWavg: (plan, x, dim, size, into) => ref.mergeWavg(plan, x, dim, size, into),
  mergeSource: (plan, source, n0) => ref.mergeSource(plan, source, n0),
  unmerge: (plan, y, dim, into) => ref.unmergeTokens(plan, y, dim, into),
  mergeOnDevice(plan, x, dim, mode, size) {
    if (mode !== 'wavg') return { x: { kind: 'host', data: ref.mergeTokens(plan, host(x), dim, mode) } };
    const r = ref.mergeWavg(plan, host(x), dim, size && host(size));
    return { x: { kind: 'host', data: r.x }, size: { kind: 'host', data: r.size } };
  },
  unmergeOnDevice: (plan, y, dim) => ({ kind: 'host', data: ref.unmergeTokens(plan, host(y), dim) }),
};

function host(s: DeviceStorage): Float32Array {
  if (s.kind !== 'host') throw new Error(`internal: expected host storage, got ${s.kind}`);
  return s.data;
}

export const groupKernels: KernelTable<GroupKernels> = {
  family: 'token merging (merge, unmerge)',
  js: () => jsGroupKernels,
  wasm: (rt) => wasmGroupKernels(rt),
  webgpu: (rt) => webgpuGroupKernels(rt),
};
