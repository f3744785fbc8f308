"""Market-1501 evaluation at Market scale: the distances and the vectorised ``evaluate`` vs the per-query loop.

    python -m bench.bench_evaluate       # from the repo root; 3,368 queries x 15,913 gallery, 751 ids, 6 cameras
    python -m bench.bench_evaluate --d 768 --repeats 1

Synthetic ReID-like features (identity centres plus noise).  Times, as medians over ``--repeats``:
``distance_matrix`` in float32 (the form used before the exact distances) and in float64 with exact dot
products (what every metric uses now), ``evaluate`` on each matrix (default threads, and single-threaded on
the float64 one) and the straightforward per-query loop; prints the ratios, the largest absolute difference
between the vectorised and the loop's metrics, how far the two matrices' metrics are apart, and the
machine's load at start and end.
"""

from __future__ import annotations

import argparse
import os
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
    load0 = os.getloadavg()
    times: dict[str, list[float]] = {k: [] for k in (
        "distances float32 (before)", "distances float64 exact (now)", "evaluate on float32 (before)",
        "evaluate on float64 (now)", "evaluate on float64, 1 thread", "per-query loop on float64")}
    res: dict[str, dict] = {}

    def timed(name: str, fn, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        times[name].append(time.perf_counter() - t)
        return out

    print(f"evaluate benchmark: {a.nq} x {a.ng}, d={a.d}, {a.ids} ids, 6 cameras; "
          f"load at start {' '.join(f'{x:.1f}' for x in load0)} (1/5/15 min, {os.cpu_count()} cores)")
    labels = (q_pids, g_pids, q_cams, g_cams)
    for _ in range(a.repeats):
        d32 = timed("distances float32 (before)", distance_matrix, q, g, dtype=np.float32)
        res["before"] = timed("evaluate on float32 (before)", evaluate, d32, *labels)
        del d32
        d64 = timed("distances float64 exact (now)", distance_matrix, q, g)
        res["now"] = timed("evaluate on float64 (now)", evaluate, d64, *labels)
        res["now 1"] = timed("evaluate on float64, 1 thread", evaluate, d64, *labels, workers=1)
        res["loop"] = timed("per-query loop on float64", evaluate_loop, d64, *labels)
        del d64
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:<32} median {v:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[k])})")
    before = med["distances float32 (before)"] + med["evaluate on float32 (before)"]
    now = med["distances float64 exact (now)"] + med["evaluate on float64 (now)"]
    print(f"distances + evaluate: before {before:.2f} s, now {now:.2f} s ({now / before:.2f}x); matrix "
          f"{a.nq * a.ng * 4 / 2**20:.0f} MiB -> {a.nq * a.ng * 8 / 2**20:.0f} MiB")
    print(f"time ratio vectorised / loop: {med['evaluate on float64 (now)'] / med['per-query loop on float64']:.3f} "
          f"(1 thread: {med['evaluate on float64, 1 thread'] / med['per-query loop on float64']:.3f}); target <= 1")
    keys = ("mAP", "mINP", "Rank-1", "Rank-5", "Rank-10")
    ref = res["loop"]
    diff = max(max(abs(res[n][k] - ref[k]) for k in keys) for n in ("now", "now 1"))
    diff = max(diff, *(float(np.abs(res[n]["cmc"] - ref["cmc"]).max()) for n in ("now", "now 1")))
    print(f"max |difference| vectorised vs loop over mAP, mINP, Rank-1/5/10, CMC[0:50]: {diff:.3e} (target <= 1e-9)")
    moved = max(abs(res["before"][k] - res["now"][k]) for k in keys)
    print(f"float32 vs float64 distances: max |metric difference| {moved:.2e} (near-ties ordered differently)")
    print(
        f"mAP {100 * ref['mAP']:.2f}  Rank-1 {100 * ref['Rank-1']:.2f}  mINP {100 * ref['mINP']:.2f}  "
        f"queries evaluated {ref['num_valid_queries']} of {ref['num_queries']}"
    )
    print(f"load at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
