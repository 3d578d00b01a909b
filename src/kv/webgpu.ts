// The KV-cache family on WebGPU: kernels/kv-cluster.wgsl (every chunk of every head in one
// workgroup, all rounds in one dispatch) and kernels/kv-attention.wgsl (one workgroup per query
// and head, online softmax over tiles of keys). One submit and one readback per call.
import { MergeKernelsError } from '../errors.ts';
import { kvAttention as ATTENTION_WGSL, kvCluster as CLUSTER_WGSL } from '../gen/wgsl.ts';
import type { GpuRuntime } from '../webgpu/runtime.ts';
import type { KvInput, KvKernels } from './kernels.ts';

/** The longest chunk kv-cluster.wgsl holds in workgroup memory. */
const MAX_CHUNK = 256;
/** The widest value row kv-attention.wgsl accumulates (4 dimensions per thread of 64). */
const MAX_VALUE_DIM = 256;

interface Pipelines {
  cluster: GPUComputePipeline;
  clusterLayout: GPUBindGroupLayout;
  attention: GPUComputePipeline;
  attentionLayout: GPUBindGroupLayout;
}

/** A layout of a uniform at binding 0, then `reads` read-only storage buffers, then `writes` read-write ones. */
function layout(rt: GpuRuntime, label: string, reads: number, writes: number): GPUBindGroupLayout {
  const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }];
  for (let i = 0; i < reads + writes; i++) {
    entries.push({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: i < reads ? 'read-only-storage' : 'storage' } });
  }
  return rt.device.createBindGroupLayout({ label: `merge-kernels:${label}:bindGroupLayout`, entries });
}

function pipelines(rt: GpuRuntime): Pipelines {
  const cached = rt.pipelines.get('kv') as Pipelines | undefined;
  if (cached) return cached;
  const make = (label: string, code: string, bgl: GPUBindGroupLayout) => rt.device.createComputePipeline({
    label: `merge-kernels:${label}:pipeline`,
    layout: rt.device.createPipelineLayout({ label: `merge-kernels:${label}:pipelineLayout`, bindGroupLayouts: [bgl] }),
    compute: { module: rt.device.createShaderModule({ label: `merge-kernels:${label}`, code }), entryPoint: 'main' },
  });
  const clusterLayout = layout(rt, 'kvCluster', 4, 2);
  const attentionLayout = layout(rt, 'kvAttention', 5, 1);
  const p = { cluster: make('kvCluster', CLUSTER_WGSL, clusterLayout), clusterLayout, attention: make('kvAttention', ATTENTION_WGSL, attentionLayout), attentionLayout };
  rt.pipelines.set('kv', p);
  return p;
}

function checkBinding(rt: GpuRuntime, what: string, bytes: number, argument: string): void {
  if (bytes > rt.maxBinding) {
    throw new MergeKernelsError('TOO_LARGE', `webgpu backend: ${what} needs ${bytes} bytes, over this device's storage binding limit of ${rt.maxBinding} bytes; use the wasm backend or fewer heads per call`, argument);
  }
}

/** A cache input as a binding: a device tensor's buffer range as it is, host values uploaded (to be destroyed after the call). */
function bind(rt: GpuRuntime, label: string, x: KvInput, temps: GPUBuffer[]): GPUBufferBinding {
  if (x instanceof Float32Array) {
    const buffer = rt.storage(label, x.byteLength, x);
    temps.push(buffer);
    return { buffer };
  }
  if (x.kind !== 'gpu') throw new Error(`internal: expected GPU storage, got ${x.kind}`);
  return { buffer: x.buffer, offset: x.offset, size: Math.max(4, x.bytes) };
}

const bytesOf = (x: KvInput) => (x instanceof Float32Array ? x.byteLength : x.kind === 'gpu' ? x.bytes : 0);

export function webgpuKvKernels(rt: GpuRuntime): KvKernels {
  return {
    async clusterKV(keys, values, size, shape, kvLayout, resident) {
      const { heads, tokens, keyDim: d, valueDim: dv } = shape;
      const m = kvLayout.slots;
      const nChunks = kvLayout.chunks.length;
      const maxLen = kvLayout.chunks.reduce((a, c) => Math.max(a, c.length), 0);
      if (maxLen > MAX_CHUNK) {
        throw new MergeKernelsError('TOO_LARGE', `webgpu backend: chunkSize ${maxLen} is over the ${MAX_CHUNK} tokens a workgroup holds; use chunkSize ≤ ${MAX_CHUNK} or the wasm backend`, 'chunkSize');
      }
      const maxDim = rt.limits.maxComputeWorkgroupsPerDimension;
      if (nChunks + 1 > maxDim || heads > maxDim) {
        throw new MergeKernelsError('TOO_LARGE', `webgpu backend: ${nChunks} chunks × ${heads} heads is over ${maxDim} workgroups per dimension; use a larger chunkSize or fewer heads per call`, 'keys');
      }
      const valuesAt = heads * m * d, sizeAt = valuesAt + heads * m * dv, positionAt = sizeAt + heads * m, assignmentAt = positionAt + heads * m;
      const outWords = assignmentAt + heads * tokens;
      const sumWords = heads * nChunks * maxLen * (d + dv);
      checkBinding(rt, 'the keys', bytesOf(keys), 'keys');
      checkBinding(rt, 'the values', bytesOf(values), 'values');
      checkBinding(rt, 'the merged cache', outWords * 4, 'keys');
      checkBinding(rt, 'the chunk sums', sumWords * 4, 'keys');
      const p = pipelines(rt);
      let slot = kvLayout.sinkTokens;
      const table = new Uint32Array(Math.max(4, nChunks * 4));
      kvLayout.chunks.forEach((c, i) => { table.set([c.start, c.length, c.keep, slot], i * 4); slot += c.keep; });
      const params = rt.uniform('kvCluster:params', new Uint32Array([tokens, d, dv, m, nChunks, kvLayout.sinkTokens, kvLayout.recentTokens, size ? 1 : 0, maxLen, valuesAt, sizeAt, positionAt, assignmentAt, 0, 0, 0]));
      const temps: GPUBuffer[] = [params];
      const own = (b: GPUBuffer) => (temps.push(b), { buffer: b });
      const out = rt.storage('kvCluster:out', outWords * 4);
      // Resident: the merged keys and values are copied into buffers of their own (device tensors); the rest is read back.
      const keyBuffer = resident ? rt.storage('kvCluster:mergedKeys', valuesAt * 4) : undefined;
      const valueBuffer = resident ? rt.storage('kvCluster:mergedValues', (sizeAt - valuesAt) * 4) : undefined;
      const readFrom = resident ? sizeAt : 0;
      const bindings: GPUBufferBinding[] = [
        bind(rt, 'kvCluster:keys', keys, temps), bind(rt, 'kvCluster:values', values, temps),
        own(rt.storage('kvCluster:size', size ? size.byteLength : 4, size)), own(rt.storage('kvCluster:chunks', table.byteLength, table)),
        own(rt.storage('kvCluster:sums', sumWords * 4)), own(out),
      ];
      try {
        const words = await rt.submitAndRead('kvCluster', (encoder) => {
          const pass = rt.computePass(encoder, 'kvCluster');
          pass.setPipeline(p.cluster);
          pass.setBindGroup(0, rt.device.createBindGroup({
            label: 'merge-kernels:kvCluster:bindGroup', layout: p.clusterLayout,
            entries: [{ buffer: params }, ...bindings].map((resource, binding) => ({ binding, resource })),
          }));
          if (heads > 0) pass.dispatchWorkgroups(nChunks + 1, heads);
          pass.end();
          if (keyBuffer && valuesAt > 0) encoder.copyBufferToBuffer(out, 0, keyBuffer, 0, valuesAt * 4);
          if (valueBuffer && sizeAt > valuesAt) encoder.copyBufferToBuffer(out, valuesAt * 4, valueBuffer, 0, (sizeAt - valuesAt) * 4);
        }, out, (outWords - readFrom) * 4, readFrom * 4);
        const at = (i: number) => i - readFrom;
        const ints = new Int32Array(words.buffer, words.byteOffset, outWords - readFrom);
        return {
          keys: keyBuffer ? { kind: 'gpu', buffer: keyBuffer, offset: 0, bytes: valuesAt * 4, owned: true } : words.slice(0, valuesAt),
          values: valueBuffer ? { kind: 'gpu', buffer: valueBuffer, offset: 0, bytes: (sizeAt - valuesAt) * 4, owned: true } : words.slice(valuesAt, sizeAt),
          size: words.slice(at(sizeAt), at(positionAt)),
          position: ints.slice(at(positionAt), at(assignmentAt)), assignment: ints.slice(at(assignmentAt), at(outWords)),
        };
      } catch (e) {
        keyBuffer?.destroy();
        valueBuffer?.destroy();
        throw e;
      } finally {
        for (const b of temps) b.destroy();
      }
    },

    async attention(q, keys, values, size, shape, causal) {
      const { queryHeads, kvHeads, queries, keys: tk, keyDim: d, valueDim: dv } = shape;
      if (dv > MAX_VALUE_DIM) throw new MergeKernelsError('TOO_LARGE', `webgpu backend: attention over values wider than ${MAX_VALUE_DIM} (got ${dv}); use the wasm backend`, 'values');
      const outWords = queryHeads * queries * dv;
      if (outWords === 0) return new Float32Array(0);
      for (const [what, bytes, arg] of [['the queries', q.byteLength, 'q'], ['the keys', bytesOf(keys), 'keys'], ['the values', bytesOf(values), 'values'], ['the output', outWords * 4, 'q']] as const) checkBinding(rt, what, bytes, arg);
      const p = pipelines(rt);
      const logSize = size ? size.map(Math.log) : undefined;
      const position = causal?.keyPosition ? new Uint32Array(causal.keyPosition.buffer, causal.keyPosition.byteOffset, causal.keyPosition.length) : undefined;
      // Positions are compared as i32: a queryStart beyond its range sees every key or none.
      const queryStart = causal ? Math.max(-(2 ** 31), Math.min(2 ** 31 - 1 - queries, causal.queryStart)) : 0;
      const temps: GPUBuffer[] = [];
      const own = (b: GPUBuffer) => (temps.push(b), { buffer: b });
      const out = rt.storage('kvAttention:out', outWords * 4);
      const bindings: GPUBufferBinding[] = [
        own(rt.storage('kvAttention:q', q.byteLength, q)), bind(rt, 'kvAttention:keys', keys, temps), bind(rt, 'kvAttention:values', values, temps),
        own(rt.storage('kvAttention:logSize', logSize ? logSize.byteLength : 4, logSize)), own(rt.storage('kvAttention:position', position ? position.byteLength : 4, position)),
        own(out),
      ];
      try {
        return await rt.submitAndRead('kvAttention', (encoder) => {
          const pass = rt.computePass(encoder, 'kvAttention');
          pass.setPipeline(p.attention);
          const maxDim = rt.limits.maxComputeWorkgroupsPerDimension;
          for (let first = 0; first < queries; first += maxDim) {
            const words = new Uint32Array(12);
            const f = new Float32Array(words.buffer), i32 = new Int32Array(words.buffer);
            words.set([queryHeads, kvHeads, queries, tk, d, dv, causal ? 1 : 0, position ? 1 : 0, logSize ? 1 : 0]);
            i32[9] = queryStart;
            f[10] = 1 / Math.sqrt(d);
            words[11] = first;
            const params = rt.uniform('kvAttention:params', words);
            temps.push(params);
            pass.setBindGroup(0, rt.device.createBindGroup({
              label: 'merge-kernels:kvAttention:bindGroup', layout: p.attentionLayout,
              entries: [{ buffer: params }, ...bindings].map((resource, binding) => ({ binding, resource })),
            }));
            pass.dispatchWorkgroups(Math.min(maxDim, queries - first), queryHeads);
          }
          pass.end();
        }, out, outWords * 4);
      } finally {
        for (const b of temps) b.destroy();
      }
    },
  };
}
