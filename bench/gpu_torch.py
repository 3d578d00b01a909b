"""PyTorch on CUDA: the native GPU anchor of bench/gpu.mjs. The same three workloads as our WebGPU
contenders, written as a PyTorch user writes them: cosine similarity (normalise rows, a @ b.T),
ToMe's bipartite soft matching + merge_wavg (tome_torch.py), and the TIES paper's merge
(ties_reference.py's ties_torch).

Each case is timed two ways, median and fastest of `reps` runs after one warm-up, with
torch.cuda.synchronize() before each clock read:
  - "host": from float32 arrays in host memory to the result back in host memory (the inputs'
    .cuda() and the result's .cpu() included), which is what our API's Float32Array in/out costs;
  - "device": inputs already on the GPU, result left there.

Reads a JSON manifest on stdin: {"reps": int, "cases": [{"kind": "cosine", "a", "b", "m", "n",
"c", "out"} | {"kind": "tome", "metric", "x", "size", "B", "N", "C", "r", "out"} | {"kind": "ties",
"tasks", "t", "n", "density", "out"}]}; inputs are raw little-endian float32 files. Writes each
case's result to its "out" file (ToMe: unm_idx, src_idx, dst_idx as int32, then merged x and size)
and prints one JSON line: the device name and per case {"host": [median, min], "device": [...]}.
"""
import json
import statistics
import sys
import time

import numpy as np
import torch

from tome_torch import bipartite_soft_matching, merge_wavg
from ties_reference import ties_torch


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(times), min(times)]


def load(path, shape):
    return np.fromfile(path, dtype=np.float32).reshape(shape)


def cosine(a, b):
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-30)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return a @ b.T


def tome(metric, x, size, r):
    merge, (unm, src, dst) = bipartite_soft_matching(metric, r, class_token=True)
    mx, ms = merge_wavg(merge, x, size)
    return unm, src, dst, mx, ms


def run_case(case, reps):
    dev = torch.device('cuda')
    kind = case['kind']
    if kind == 'cosine':
        m, n, c = case['m'], case['n'], case['c']
        a, b = load(case['a'], (m, c)), load(case['b'], (n, c))
        host = lambda: cosine(torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)).cpu()
        ga, gb = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
        device = lambda: cosine(ga, gb)
        result = host().numpy()
        result.astype(np.float32).tofile(case['out'])
    elif kind == 'tome':
        shape = (case['B'], case['N'], case['C'])
        metric, x = load(case['metric'], shape), load(case['x'], shape)
        size = load(case['size'], (case['B'], case['N'], 1))
        r = case['r']

        def host():
            out = tome(torch.from_numpy(metric).to(dev), torch.from_numpy(x).to(dev), torch.from_numpy(size).to(dev), r)
            return [t.cpu() for t in out]

        gm, gx, gs = (torch.from_numpy(v).to(dev) for v in (metric, x, size))
        device = lambda: tome(gm, gx, gs, r)
        unm, src, dst, mx, ms = host()
        with open(case['out'], 'wb') as f:
            for idx in (unm, src, dst):
                f.write(idx.to(torch.int32).numpy().tobytes())
            for v in (mx, ms):
                f.write(v.to(torch.float32).numpy().tobytes())
    elif kind == 'ties':
        tv = load(case['tasks'], (case['t'], case['n']))
        density = case['density']
        host = lambda: ties_torch(torch.from_numpy(tv).to(dev), density).cpu()
        gtv = torch.from_numpy(tv).to(dev)
        device = lambda: ties_torch(gtv, density)
        host().numpy().astype(np.float32).tofile(case['out'])
    else:
        raise ValueError(f'unknown case kind {kind!r}')
    return {'host': timed(host, reps), 'device': timed(device, reps)}


def main():
    manifest = json.load(sys.stdin)
    if not torch.cuda.is_available():
        print(json.dumps({'error': 'torch.cuda.is_available() is False'}))
        return
    results = [run_case(case, case.get('reps', manifest['reps'])) for case in manifest['cases']]
    print(json.dumps({'device': torch.cuda.get_device_name(0), 'torch': torch.__version__, 'results': results}))


if __name__ == '__main__':
    main()
