// A ToMe plan that never leaves the GPU (Foundation v2): split, match, rank, output rows and
// groups recorded into the context's pending command buffer — no submit, no readback. The next
// call that submits (mergeWavg on device tensors, say) sends it all at once: a ToMe step on
// device tensors is one submit and no readback. The indices reach the host only if asked for.
import type * as ref from '../reference/bipartite-soft-matching.ts';
import { planFromMatches } from './ranking.ts';
import { tomeGroups as GROUPS_WGSL, tomeGroupsParams, tomeRank as RANK_WGSL, tomeRankParams, tomeRows as ROWS_WGSL, tomeRowsParams } from '../gen/wgsl.ts';
import { checkSizes, encodeBestMatch, encodeSplitEvenOdd } from '../webgpu/best-match.ts';
import type { GpuRuntime } from '../webgpu/runtime.ts';

/** A device plan's buffers: the matches (score bits, then indices), the output row of every token, the groups. */
export interface DevicePlanBuffers {
  matches: GPUBuffer;
  rowOf: GPUBuffer;
  groups: GPUBuffer;
}

export interface DevicePlan {
  buffers: DevicePlanBuffers;
  /** The plan's indices on the host (one readback of the matches, then the reference's ranking). */
  read(): Promise<ref.MergePlan>;
  dispose(): void;
}

/** Records ToMe's matching of `metric` [B, N, C] on the device (r ≥ 1 after clamping). */
export function bipartiteSoftMatchingOnDevice(
  rt: GpuRuntime, metric: { buffer: GPUBuffer; offset: number; size: number },
  batch: number, tokens: number, c: number, r: number, classToken: boolean, distillToken: boolean,
): DevicePlan {
  const nA = Math.ceil(tokens / 2), nB = Math.floor(tokens / 2);
  const rows = tokens - r;
  checkSizes(rt, batch * nA * c * 4, batch * nB * c * 4, batch * nA * 8);
  const rankK = rt.kernel('tomeRank', RANK_WGSL, ['uniform', 'read-only-storage', 'storage']);
  const rowsK = rt.kernel('tomeRows', ROWS_WGSL, ['uniform', 'read-only-storage', 'read-only-storage', 'storage']);
  const groupsK = rt.kernel('tomeGroups', GROUPS_WGSL, ['uniform', 'read-only-storage', 'storage']);
  const buffers: DevicePlanBuffers = {
    matches: rt.storage('tome:matches', batch * nA * 8),
    rowOf: rt.storage('tome:rowOf', batch * tokens * 4),
    groups: rt.storage('tome:groups', (batch * rows + 1 + batch * tokens) * 4),
  };
  rt.record('bipartiteSoftMatching', (pass) => {
    const bufA = rt.storage('tome:a', batch * nA * c * 4);
    const bufB = rt.storage('tome:b', batch * nB * c * 4);
    const rank = rt.storage('tome:rank', batch * nA * 4);
    const temps = [bufA, bufB, rank];
    temps.push(...encodeSplitEvenOdd(rt, pass, metric, bufA, bufB, batch, tokens, c));
    temps.push(...encodeBestMatch(rt, pass, bufA, bufB, buffers.matches, batch, nA, nB, c, classToken, distillToken));
    const g1 = rt.grid(Math.ceil(batch * nA / 256));
    const p1 = rt.params('tomeRank:params', tomeRankParams, { total: batch * nA, nA, gridX: g1[0] });
    rt.dispatch(pass, rankK, [p1, buffers.matches, rank], g1);
    const g2 = rt.grid(Math.ceil(batch * tokens / 256));
    const p2 = rt.params('tomeRows:params', tomeRowsParams, { total: batch * tokens, tokens, nA, r, classToken: classToken ? 1 : 0, distillToken: distillToken ? 1 : 0, gridX: g2[0] });
    rt.dispatch(pass, rowsK, [p2, buffers.matches, rank, buffers.rowOf], g2);
    const g3 = rt.grid(Math.ceil((batch * tokens + batch * rows + 1) / 256));
    const p3 = rt.params('tomeGroups:params', tomeGroupsParams, { batch, tokens, rows, gridX: g3[0] });
    rt.dispatch(pass, groupsK, [p3, buffers.rowOf, buffers.groups], g3);
    temps.push(p1, p2, p3);
    return temps;
  });
  return {
    buffers,
    async read() {
      const total = batch * nA;
      const words = await rt.read('tome:matches', buffers.matches, 0, total * 8);
      const score = words.slice(0, total);
      for (let i = 0; i < total; i++) if (score[i]! <= -2) score[i] = -Infinity; // the kernel's "masked"
      const index = new Int32Array(words.buffer, words.byteOffset + total * 4, total);
      return planFromMatches(batch, tokens, r, classToken, distillToken, score, index);
    },
    dispose() {
      for (const b of Object.values(buffers)) b.destroy();
    },
  };
}
