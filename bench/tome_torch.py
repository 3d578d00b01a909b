"""PyTorch CPU anchor for bench/token-merging.mjs: ToMe's bipartite soft matching + merge_wavg
(Bolya et al., "Token Merging: Your ViT but Faster", ICLR 2023, §3), written from the method's
description in ../shared/METHODS.md, timed with torch.set_num_threads(t) for each t in "threads".

Reads a JSON manifest on stdin: {"reps": int, "threads": [int], "cases": [{"B", "N", "C", "r",
"class_token", "metric", "x", "size", "out", "reps"?}]}, where metric, x ([B, N, C] float32) and
size ([B, N, 1] float32) are raw little-endian files. For each case writes to "out": unm_idx,
src_idx, dst_idx (int32), then the merged x and size (float32). Prints one JSON line: the median
(and fastest) times in ms per thread count, and the BLAS library the process loaded.
"""
import json
import math
import statistics
import sys
import time

import torch


def bipartite_soft_matching(metric, r, class_token=False, distill_token=False):
    """Returns (merge, (unm_idx, src_idx, dst_idx)); merge(x, mode) reduces x [B, N, D] to [B, N - r, D]."""
    protected = int(class_token) + int(distill_token)
    r = min(r, (metric.shape[1] - protected) // 2)
    if r <= 0:
        return (lambda x, mode="mean": x), None
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, 0::2], metric[:, 1::2]  # A = even tokens, B = odd tokens
        scores = a @ b.transpose(1, 2)
        if class_token:
            scores[:, 0, :] = -math.inf  # the class token is never a source
        if distill_token:
            scores[:, :, 0] = -math.inf  # the distillation token is never a destination
        node_max, node_idx = scores.max(dim=-1)
        edges = node_max.argsort(dim=-1, descending=True).unsqueeze(-1)
        src_idx = edges[:, :r]
        unm_idx = edges[:, r:]
        dst_idx = node_idx.unsqueeze(-1).gather(1, src_idx)
        if class_token:
            unm_idx = unm_idx.sort(dim=1).values

    def merge(x, mode="mean"):
        src, dst = x[:, 0::2], x[:, 1::2]
        batch, n_a, dim = src.shape
        unm = src.gather(1, unm_idx.expand(batch, n_a - r, dim))
        moved = src.gather(1, src_idx.expand(batch, r, dim))
        dst = dst.scatter_reduce(1, dst_idx.expand(batch, r, dim), moved, reduce=mode)
        if distill_token:
            return torch.cat([unm[:, :1], dst[:, :1], unm[:, 1:], dst[:, 1:]], dim=1)
        return torch.cat([unm, dst], dim=1)

    return merge, (unm_idx, src_idx, dst_idx)


def merge_wavg(merge, x, size):
    """Size-weighted average: merge(x * size, 'sum') / merge(size, 'sum'), and the merged sizes."""
    x = merge(x * size, mode="sum")
    size = merge(size, mode="sum")
    return x / size, size


def load(path, shape):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape)


def time_ms(fn, reps):
    """Median and fastest wall time in ms over reps runs after one warm-up."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def blas_library():
    """The BLAS shared library this process mapped (Debian picks it through update-alternatives)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    return sorted(paths)


def main():
    spec = json.load(sys.stdin)
    results = []
    for case in spec["cases"]:
        b, n, c, r, cls = case["B"], case["N"], case["C"], case["r"], case["class_token"]
        metric = load(case["metric"], (b, n, c))
        x = load(case["x"], (b, n, c))
        size = load(case["size"], (b, n, 1))
        merge, (unm_idx, src_idx, dst_idx) = bipartite_soft_matching(metric, r, cls)
        merged, merged_size = merge_wavg(merge, x, size)
        with open(case["out"], "wb") as f:
            for t in (unm_idx, src_idx, dst_idx):
                f.write(t.to(torch.int32).contiguous().numpy().tobytes())
            for t in (merged, merged_size):
                f.write(t.contiguous().numpy().tobytes())
        reps = case.get("reps", spec["reps"])
        timings = {}
        for threads in spec["threads"]:
            torch.set_num_threads(threads)
            ms, ms_min = time_ms(lambda: merge_wavg(bipartite_soft_matching(metric, r, cls)[0], x, size), reps)
            timings[threads] = {
                "ms": ms,
                "msMin": ms_min,
                "msMatch": time_ms(lambda: bipartite_soft_matching(metric, r, cls), reps)[0],
                "msMerge": time_ms(lambda: merge_wavg(merge, x, size), reps)[0],
            }
        results.append(timings)
    print(json.dumps({"torch": torch.__version__, "blas": blas_library(), "cases": results}))


if __name__ == "__main__":
    main()
