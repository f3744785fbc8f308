"""NFC at Market-1501 scale: time relative to one N x N float32 GEMM, and peak memory — in one run.

    python -m bench.bench_nfc            # from the repo root; N = 19,281 (3,368 query + 15,913 gallery), d = 768

Prints the median and best wall time of (a) one GEMM ``A @ B.T`` with A, B (N, d) float32 (distinct
buffers, so BLAS runs a real GEMM and not the half-work SYRK it uses for ``X @ X.T``), (b) ``X @ X.T``
for reference, and (c) ``pose2id_demo.centralization.nfc(X, k1, k2)``, interleaved; then NFC's peak
traced memory (tracemalloc sees every numpy allocation) and, from a child process that only runs NFC, its
peak resident set size (interpreter and libraries included).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from pose2id_demo.centralization import nfc


def features(n: int, d: int, n_ids: int, seed: int) -> np.ndarray:
    """ReID-like features: identity centres plus noise, L2-normalised, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, d)).astype(np.float32)
    x = centres[rng.integers(0, n_ids, n)] + 1.5 * rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _hwm_kib() -> int:
    """Peak resident set size of this process so far (Linux VmHWM; ru_maxrss survives fork+exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=19281)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--ids", type=int, default=1501)
    ap.add_argument("--k1", type=int, default=2)
    ap.add_argument("--k2", type=int, default=2)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    x = features(a.n, a.d, a.ids, a.seed)
    if a.child_rss:
        base = _hwm_kib()
        nfc(x, a.k1, a.k2, block=a.block)
        print(json.dumps({"rss_before_kib": base, "rss_peak_kib": _hwm_kib()}))
        return

    print(f"NFC benchmark: N={a.n}, d={a.d}, k1={a.k1}, k2={a.k2}, block={a.block}, numpy {np.__version__}")
    y = x.copy()
    nfc(x[:2000], a.k1, a.k2)  # warm-up
    t_gemm, t_syrk, t_nfc = [], [], []
    for _ in range(a.repeats):
        t_gemm.append(timed(lambda: x @ y.T))
        t_syrk.append(timed(lambda: x @ x.T))
        t_nfc.append(timed(lambda: nfc(x, a.k1, a.k2, block=a.block)))
    med = {k: statistics.median(v) for k, v in (("gemm", t_gemm), ("syrk", t_syrk), ("nfc", t_nfc))}
    best = {k: min(v) for k, v in (("gemm", t_gemm), ("syrk", t_syrk), ("nfc", t_nfc))}
    for k, label in (
        ("gemm", "GEMM  A @ B.T (N x N float32)"),
        ("syrk", "X @ X.T (numpy uses SYRK)"),
        ("nfc", f"nfc(X, {a.k1}, {a.k2})"),
    ):
        print(f"{label:<34} median {med[k]:7.2f} s   best {min(best[k], med[k]):7.2f} s")
    ratio_med = med["nfc"] / med["gemm"]
    ratio_best = best["nfc"] / best["gemm"]
    print(f"NFC / GEMM time ratio: median {ratio_med:.3f}, best-of-{a.repeats} {ratio_best:.3f}  (target <= 1.3)")
    print(f"NFC / SYRK time ratio: median {med['nfc'] / med['syrk']:.3f} (for reference)")

    tracemalloc.start()
    nfc(x, a.k1, a.k2, block=a.block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"NFC peak traced memory (tracemalloc): {peak / 2**20:.1f} MiB  (target < 1024 MiB; "
        f"the full N x N float32 matrix alone would be {a.n * a.n * 4 / 2**20:.0f} MiB)"
    )
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_nfc",
            "--child-rss",
            "--n",
            str(a.n),
            "--d",
            str(a.d),
            "--ids",
            str(a.ids),
            "--k1",
            str(a.k1),
            "--k2",
            str(a.k2),
            "--block",
            str(a.block),
            "--seed",
            str(a.seed),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    rss = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"NFC-only child process: peak RSS {rss['rss_peak_kib'] / 1024:.1f} MiB "
        f"(before NFC, with the input loaded: {rss['rss_before_kib'] / 1024:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
