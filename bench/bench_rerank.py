"""k-reciprocal re-ranking: ours (released form and paper form) against the released code's dense form.

    python -m bench.bench_rerank                      # 500 query x 2,000 gallery, 3 interleaved rounds
    python -m bench.bench_rerank --nq 3368 --ng 15913 --repeats 1    # Market-1501 size (long, ~7 GB)

Each method runs in its own child process, which reports its wall time and its peak resident memory above
what it held before (Linux VmHWM) and saves its distances; the parent then prints the largest distance
difference and the mAP / Rank-1 of each against the **released-code form**: ``rerank_dense_released``
below, a dense transcription of how Zhong et al.'s released ``re_ranking`` works (full N x N squared
distance matrix of the L2-normalised features divided by each row's maximum, a full argsort, a Python loop
per sample for the k-reciprocal sets, dense V and query expansion, an inverted index for the Jaccard
term), written here from its description.  Features: identity centres (standard normal, d = 768) plus
``--noise`` x standard normal noise; k1 = 20, k2 = 6, lambda = 0.3.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pose2id_demo.centralization import rerank
from pose2id_demo.centralization.nfc import _torch
from pose2id_demo.metrics import evaluate


def rerank_dense_released(q: np.ndarray, g: np.ndarray, k1: int = 20, k2: int = 6, lam: float = 0.3) -> np.ndarray:
    """The released code's computation, dense (memory ~ 5 N^2 float32)."""
    f = np.concatenate([q, g]).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    nq, n = q.shape[0], f.shape[0]
    dist = f @ f.T
    dist *= -2.0
    dist += 2.0
    np.maximum(dist, 0.0, out=dist)
    dist /= dist.max(axis=1, keepdims=True)  # the released code: transpose(d / column max) on a symmetric d
    rank = np.argsort(dist, axis=1).astype(np.int32)
    v = np.zeros((n, n), np.float32)
    half = int(np.around(k1 / 2.0))

    def reciprocal(i: int, k: int) -> np.ndarray:
        fwd = rank[i, : k + 1]
        back = rank[fwd, : k + 1]
        return fwd[(back == i).any(axis=1)]

    for i in range(n):
        r = reciprocal(i, k1)
        expanded = r
        for c in r:
            rc = reciprocal(int(c), half)
            if len(np.intersect1d(rc, r)) > 2.0 / 3.0 * len(rc):
                expanded = np.append(expanded, rc)
        expanded = np.unique(expanded)
        w = np.exp(-dist[i, expanded])
        v[i, expanded] = w / w.sum()
    dist_q = dist[:nq].copy()
    del dist
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[rank[i, :k2]].mean(axis=0)
        v = v_qe
        del v_qe
    rank = None  # the N×N argsort is not needed any more: free it before the Jaccard stage
    inv = [np.nonzero(v[:, j])[0] for j in range(n)]
    jac = np.zeros((nq, n), np.float32)
    for i in range(nq):
        m = np.zeros(n, np.float32)
        nz = np.nonzero(v[i])[0]
        for j in nz:
            m[inv[j]] += np.minimum(v[i, j], v[inv[j], j])
        jac[i] = 1.0 - m / (2.0 - m)
    return ((1.0 - lam) * jac + lam * dist_q)[:, nq:]


def problem(nq: int, ng: int, d: int, n_ids: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d)).astype(np.float32)
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q = centres[q_pids] + noise * rng.standard_normal((nq, d), dtype=np.float32)
    g = centres[g_pids] + noise * rng.standard_normal((ng, d), dtype=np.float32)
    return q, g, (q_pids, g_pids, rng.integers(0, 6, nq), rng.integers(0, 6, ng))


METHODS = {
    "released-dense": lambda q, g: rerank_dense_released(q, g),
    "ours": lambda q, g: rerank(q, g),
    "ours-paper": lambda q, g: rerank(q, g, variant="paper"),
}


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--ng", type=int, default=2000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--ids", type=int, default=751)
    ap.add_argument("--noise", type=float, default=1.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", choices=tuple(METHODS), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    q, g, ids = problem(a.nq, a.ng, a.d, a.ids, a.noise, a.seed)
    if a.child:
        if a.child != "released-dense":
            _torch()  # import torch (seconds on a busy machine) before the clock starts
        base = _status_kib("VmRSS:")
        t = time.perf_counter()
        dist = METHODS[a.child](q, g)
        sec = time.perf_counter() - t
        np.save(a.out, dist.astype(np.float32))
        print(json.dumps({"seconds": sec, "rss_before_kib": base, "rss_peak_kib": _status_kib("VmHWM:")}))
        return

    print(f"re-ranking benchmark: {a.nq} query x {a.ng} gallery, d={a.d}, {a.ids} ids, noise {a.noise}, "
          f"k1=20 k2=6 lambda=0.3; {os.cpu_count()} CPUs; {_load()}", flush=True)
    times = {m: [] for m in METHODS}
    mem = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for m in METHODS:
                cmd = [sys.executable, "-m", "bench.bench_rerank", "--child", m, "--out", f"{tmp}/{m}.npy"]
                for opt in ("nq", "ng", "d", "ids", "noise", "seed"):
                    cmd += [f"--{opt}", str(getattr(a, opt))]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                     cwd=Path(__file__).resolve().parent.parent)
                rep = json.loads(out.stdout.strip().splitlines()[-1])
                times[m].append(rep["seconds"])
                mem[m].append((rep["rss_peak_kib"] - rep["rss_before_kib"]) / 1024)
            print(f"round {r + 1}: " + ", ".join(f"{m} {v[-1]:.2f} s" for m, v in times.items()) + f"; {_load()}",
                  flush=True)
        dists = {m: np.load(f"{tmp}/{m}.npy") for m in METHODS}
    ref = dists["released-dense"]
    res_ref = evaluate(ref, *ids)
    for m in METHODS:
        res = evaluate(dists[m], *ids)
        top1 = (dists[m].argmin(1) == ref.argmin(1)).mean()
        print(f"{m:<15} median {statistics.median(times[m]):8.2f} s (min {min(times[m]):.2f}), peak "
              f"+{max(mem[m]):7.1f} MiB; mAP {100 * res['mAP']:.2f}, Rank-1 {100 * res['Rank-1']:.2f}; vs released: "
              f"max |d diff| {np.abs(dists[m] - ref).max():.2e}, mAP diff {100 * (res['mAP'] - res_ref['mAP']):+.4f} "
              f"points, same top-1 {100 * top1:.2f} %")
    sp = statistics.median(times["released-dense"]) / statistics.median(times["ours"])
    print(f"ours (default, released form) is {sp:.2f}x faster than the released-code form, at "
          f"{max(mem['ours']):.0f} vs {max(mem['released-dense']):.0f} MiB; {_load()}")


if __name__ == "__main__":
    main()
