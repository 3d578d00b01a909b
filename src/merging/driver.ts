// Feeds one in-memory tensor through a method, chunk by chunk: the same protocol the file runner
// follows, plus revisiting chunks (the output is in memory), so a method gives the same result on
// arrays and on files, whatever the chunk size.
import type { Chunk, MergeMethod, TensorInfo, TensorParams } from './types.ts';

/** Rounds a chunk size (in entries) down to whole rows, never below one row. */
export function alignChunk(chunkSize: number, rowAlign: number): number {
  return Math.max(rowAlign, Math.floor(chunkSize / rowAlign) * rowAlign);
}

/** The chunk of `[0, numel)` of size `size` that starts at `offset`, as views into the inputs. */
function chunkAt(numel: number, size: number, offset: number, base: Float32Array | undefined, models: readonly Float32Array[]): Chunk {
  const end = Math.min(numel, offset + size);
  return { offset, length: end - offset, base: base?.subarray(offset, end), models: models.map((m) => m.subarray(offset, end)) };
}

/** The chunks of `[0, numel)` of size `size` (the last one shorter), as views into the inputs. */
export function* chunksOf(numel: number, size: number, base: Float32Array | undefined, models: readonly Float32Array[]): Generator<Chunk> {
  for (let offset = 0; offset < numel || (numel === 0 && offset === 0); offset += size) {
    yield chunkAt(numel, size, offset, base, models);
    if (numel === 0) return;
  }
}

/**
 * Merges one tensor held in memory: every observation pass, then apply, over chunks of at most
 * `chunkSize` entries (rounded to whole rows), then apply again for the chunks the method revisits
 * (the output is in memory, so it can). Model passes must have run already.
 */
export async function mergeTensor(
  method: MergeMethod, info: TensorInfo, params: TensorParams,
  base: Float32Array | undefined, models: readonly Float32Array[], chunkSize: number,
): Promise<Float32Array> {
  const plan = method.tensor(info, params, { revisit: true });
  const size = alignChunk(chunkSize, plan.rowAlign);
  for (let pass = 0; pass < plan.passes; pass++) {
    for (const chunk of chunksOf(info.numel, size, base, models)) await plan.observe(pass, chunk);
  }
  const out = new Float32Array(info.numel);
  const apply = (chunk: Chunk) => plan.apply(chunk, out.subarray(chunk.offset, chunk.offset + chunk.length));
  for (const chunk of chunksOf(info.numel, size, base, models)) await apply(chunk);
  for (const offset of plan.revisit?.() ?? []) await apply(chunkAt(info.numel, size, offset, base, models));
  return out;
}
