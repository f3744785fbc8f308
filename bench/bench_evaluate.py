"""Market-1501 evaluation at Market scale: vectorised ``evaluate`` vs the per-query loop, in one run.

    python -m bench.bench_evaluate       # from the repo root; 3,368 queries x 15,913 gallery, 751 ids, 6 cameras

The distance matrix is the float32 ``distance_matrix`` of synthetic ReID-like features (identity centres
plus noise).  Prints median times of the vectorised version (default threads, and single-threaded) and
of the straightforward per-query loop, their ratio, and the largest absolute difference over mAP, mINP,
Rank-1/5/10 and the whole CMC curve.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pose2id_demo.metrics import distance_matrix, evaluate, evaluate_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nq", type=int, default=3368)
    ap.add_argument("--ng", type=int, default=15913)
    ap.add_argument("--ids", type=int, default=751)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.ids, a.d)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, a.ids, a.nq), rng.integers(0, a.ids, a.ng)
    q_cams, g_cams = rng.integers(0, 6, a.nq), rng.integers(0, 6, a.ng)
    noise = 1.3
    q = centres[q_pids] + noise * rng.standard_normal((a.nq, a.d), dtype=np.float32)
    g = centres[g_pids] + noise * rng.standard_normal((a.ng, a.d), dtype=np.float32)
    dist = distance_matrix(q, g)
    args = (dist, q_pids, g_pids, q_cams, g_cams)
    print(f"evaluate benchmark: {a.nq} x {a.ng} float32 distances, {a.ids} ids, 6 cameras")
    times = {"vectorised": [], "vectorised (1 thread)": [], "per-query loop": []}
    res = {}
    for _ in range(a.repeats):
        for name, fn in (
            ("vectorised", lambda: evaluate(*args)),
            ("vectorised (1 thread)", lambda: evaluate(*args, workers=1)),
            ("per-query loop", lambda: evaluate_loop(*args)),
        ):
            t = time.perf_counter()
            res[name] = fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:<24} median {v:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[k])})")
    print(
        f"time ratio vectorised / loop: {med['vectorised'] / med['per-query loop']:.3f} "
        f"(1 thread: {med['vectorised (1 thread)'] / med['per-query loop']:.3f}); target <= 1"
    )
    ref = res["per-query loop"]
    diff = 0.0
    for name in ("vectorised", "vectorised (1 thread)"):
        r = res[name]
        diff = max(diff, *(abs(r[k] - ref[k]) for k in ("mAP", "mINP", "Rank-1", "Rank-5", "Rank-10")))
        diff = max(diff, float(np.abs(r["cmc"] - ref["cmc"]).max()))
    print(f"max |difference| over mAP, mINP, Rank-1/5/10, CMC[0:50]: {diff:.3e} (target <= 1e-9)")
    print(
        f"mAP {100 * ref['mAP']:.2f}  Rank-1 {100 * ref['Rank-1']:.2f}  mINP {100 * ref['mINP']:.2f}  "
        f"queries evaluated {ref['num_valid_queries']} of {ref['num_queries']}"
    )


if __name__ == "__main__":
    main()
