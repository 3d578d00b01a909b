# numpy's LAPACK on bench/svd.mjs's inputs: np.linalg.svd (sgesdd on float32) for the exact
# shapes, and for top-k Halko–Martinsson–Tropp written in numpy as a skilled user would (the same
# oversample 10 and 2 power iterations, QR re-orthonormalisation), one BLAS thread (the caller
# sets OPENBLAS_NUM_THREADS=1). Prints JSON: version, BLAS, per case the median/min ms and the
# relative reconstruction error.
import json, sys, time
import numpy as np

def blas_name():
    try:
        cfg = np.show_config(mode='dicts')
        return cfg['Build Dependencies']['blas']['name']
    except Exception:
        return 'unknown BLAS'

def randomized(a, k, oversample=10, power=2, seed=0):
    rng = np.random.default_rng(seed)
    l = k + oversample
    q, _ = np.linalg.qr(a @ rng.standard_normal((a.shape[1], l), dtype=np.float32))
    for _ in range(power):
        z, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ z)
    ub, s, vt = np.linalg.svd(q.T @ a, full_matrices=False)
    return (q @ ub)[:, :k], s[:k], vt[:k]

def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for c in cases:
        a = np.fromfile(c['file'], dtype=np.float32).reshape(c['shape'])
        fn = (lambda: randomized(a, c['k'])) if c['k'] else (lambda: np.linalg.svd(a, full_matrices=False))
        u, s, vt = fn()
        rec = np.linalg.norm((u.astype(np.float64) * s[..., None, :]) @ vt.astype(np.float64) - a, axis=(-2, -1)) / np.linalg.norm(a.astype(np.float64), axis=(-2, -1))
        ts = []
        for _ in range(c['reps']):
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
        ts.sort()
        out.append({'median': ts[len(ts) // 2], 'min': ts[0], 'reps': c['reps'], 'error': float(np.max(rec))})
    print(json.dumps({'version': np.__version__, 'blas': blas_name(), 'cases': out}))

main()
