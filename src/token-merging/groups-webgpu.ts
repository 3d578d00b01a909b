// WebGPU merges over kernels/merge-groups.wgsl and kernels/unmerge-rows.wgsl. Host arrays are
// merged on the host by the reference: plan.merge is synchronous (a model calls it layer after
// layer), and an upload and a readback would cost more than the merge. Device storage stays on
// the device: one submit per call, no readback, the plan's groups uploaded once per plan.
import { mergeGroups as MERGE_GROUPS_WGSL, mergeGroupsParams, unmergeRows as UNMERGE_ROWS_WGSL, unmergeRowsParams } from '../gen/wgsl.ts';
import type { DeviceStorage } from '../device-tensor.ts';
import type * as ref from '../reference/bipartite-soft-matching.ts';
import type { GpuRuntime } from '../webgpu/runtime.ts';
import { jsGroupKernels, outputGroups, type GroupKernels, type GroupMode } from './groups.ts';
import type { DevicePlanBuffers } from './plan-webgpu.ts';

const MODE = { mean: 0, sum: 1, amax: 2, wavg: 3 } as const;

export function webgpuGroupKernels(rt: GpuRuntime): GroupKernels {
  const merge = rt.kernel('mergeGroups', MERGE_GROUPS_WGSL, ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'storage']);
  const unmerge = rt.kernel('unmergeRows', UNMERGE_ROWS_WGSL, ['uniform', 'read-only-storage', 'read-only-storage', 'storage']);
  // The plan's groups on this device, uploaded on first use (the plan is immutable).
  const uploaded = new WeakMap<ref.MergePlan, { groups?: GPUBuffer; rowOf?: GPUBuffer }>();
  const onDevice = (plan: ref.MergePlan) => {
    let u = uploaded.get(plan);
    if (!u) uploaded.set(plan, (u = {}));
    return u;
  };
  // A plan matched on the GPU brings its own groups and rows (src/token-merging/plan-webgpu.ts).
  const own = (plan: ref.MergePlan) => (plan as { deviceBuffers?: () => DevicePlanBuffers | undefined }).deviceBuffers?.();
  const groupsBuffer = (plan: ref.MergePlan) => {
    const mine = own(plan);
    if (mine) return mine.groups;
    const u = onDevice(plan);
    if (!u.groups) {
      const g = outputGroups(plan);
      const words = new Uint32Array(g.offsets.length + g.members.length);
      words.set(g.offsets);
      words.set(g.members, g.offsets.length);
      u.groups = rt.storage('mergeGroups:groups', words.byteLength, words);
    }
    return u.groups;
  };
  const rowOfBuffer = (plan: ref.MergePlan) => {
    const mine = own(plan);
    if (mine) return mine.rowOf;
    const u = onDevice(plan);
    u.rowOf ??= rt.storage('unmergeRows:rowOf', plan.batch * plan.tokens * 4, new Uint32Array(outputGroups(plan).rowOf.buffer));
    return u.rowOf;
  };
  return {
    ...jsGroupKernels,
    mergeOnDevice(plan, x, dim, mode: GroupMode, size) {
      rt.check();
      const rows = plan.batch * (plan.tokens - plan.r);
      const out = rt.storage('mergeGroups:out', rows * dim * 4);
      const outSize = rt.storage('mergeGroups:outSize', mode === 'wavg' ? rows * 4 : 4);
      const [gx, gy] = rt.grid(rows);
      const params = rt.params('mergeGroups:params', mergeGroupsParams, { rows, dim, mode: MODE[mode], hasSize: size ? 1 : 0, tokens: plan.tokens, gridX: gx, zero: 0 });
      const xs = binding(x), ss = size ? binding(size) : xs;
      rt.submitNow('mergeGroups', (pass) => {
        rt.dispatch(pass, merge, [params, xs, ss, groupsBuffer(plan), out, outSize], [gx, gy]);
      });
      const result: { x: DeviceStorage; size?: DeviceStorage } = { x: { kind: 'gpu', buffer: out, offset: 0, bytes: rows * dim * 4, owned: true } };
      if (mode === 'wavg') result.size = { kind: 'gpu', buffer: outSize, offset: 0, bytes: rows * 4, owned: true };
      else outSize.destroy();
      return result;
    },
    unmergeOnDevice(plan, y, dim) {
      rt.check();
      const total = plan.batch * plan.tokens * dim;
      const out = rt.storage('unmergeRows:out', total * 4);
      const [gx, gy] = rt.grid(Math.ceil(total / 256));
      const params = rt.params('unmergeRows:params', unmergeRowsParams, { total, n: plan.tokens, m: plan.tokens - plan.r, dim, gridX: gx });
      rt.submitNow('unmergeRows', (pass) => {
        rt.dispatch(pass, unmerge, [params, binding(y), rowOfBuffer(plan), out], [gx, gy]);
      });
      return { kind: 'gpu', buffer: out, offset: 0, bytes: total * 4, owned: true };
    },
  };
}

function binding(s: DeviceStorage): { buffer: GPUBuffer; offset: number; size: number } {
  if (s.kind !== 'gpu') throw new Error(`internal: expected gpu storage, got ${s.kind}`);
  return { buffer: s.buffer, offset: s.offset, size: Math.max(4, s.bytes) };
}
