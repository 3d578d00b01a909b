"""The TIES paper's merge (Yadav et al. 2023, Algorithm 1) in numpy or PyTorch, as the native
anchor of bench/model-merging.mjs. Written from the paper's description and its code's
conventions (global top-k keeping |x| >= the k-th magnitude, sign of the sum with the majority
sign on zero sums, disjoint mean): the way a Python user runs TIES today.

usage: python3 ties_reference.py numpy|torch TASKS.f32 T N DENSITY OUT.f32
prints one line of JSON: {"impl", "seconds", "threads"}
"""
import json
import sys
import time

import numpy as np


def ties_numpy(tv, density):
    t, n = tv.shape
    k = n - int(n * density)  # the k-th smallest magnitude is the cut (1-based, as kthvalue)
    mags = np.abs(tv)
    kth = np.partition(mags, k - 1, axis=1)[:, k - 1:k] if k >= 1 else np.zeros((t, 1), tv.dtype)
    trimmed = tv * (mags >= kth)
    sign = np.sign(trimmed.sum(axis=0))
    majority = np.sign(sign.sum())
    sign[sign == 0] = majority
    agree = np.where(sign > 0, trimmed > 0, trimmed < 0)
    selected = trimmed * agree
    counts = (selected != 0).sum(axis=0)
    return selected.sum(axis=0) / np.maximum(counts, 1)


def ties_torch(tv, density):
    import torch
    t, n = tv.shape
    k = n - int(n * density)
    mags = tv.abs()
    kth = mags.kthvalue(k, dim=1, keepdim=True).values if k >= 1 else torch.zeros((t, 1))
    trimmed = tv * (mags >= kth)
    sign = torch.sign(trimmed.sum(dim=0))
    majority = torch.sign(sign.sum())
    sign[sign == 0] = majority
    agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
    selected = trimmed * agree
    counts = (selected != 0).sum(dim=0).float()
    return selected.sum(dim=0) / torch.clamp(counts, min=1)


def main():
    impl, path, t, n, density, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    tv = np.fromfile(path, dtype=np.float32).reshape(t, n)
    threads = 1
    if impl == 'torch':
        import torch
        torch.set_num_threads(2)
        threads = torch.get_num_threads()
        x = torch.from_numpy(tv)
        start = time.perf_counter()
        merged = ties_torch(x, density).numpy()
    else:
        start = time.perf_counter()
        merged = ties_numpy(tv, density)
    seconds = time.perf_counter() - start
    merged.astype(np.float32).tofile(out)
    print(json.dumps({'impl': impl, 'seconds': seconds, 'threads': threads}))


if __name__ == '__main__':
    main()
