"""How large the largest feature file the app's limits speak of is on disk, compressed, against the upload limit.

    nice -n 10 python -m bench.feature_file_size [--rows 50000] [--dim 4096] [--query 10000]

Writes one ``.npz`` of ``--rows`` float32 features × ``--dim`` (the app's :data:`MAX_ROWS` × :data:`MAX_DIM`)
with ``numpy.savez_compressed`` — the most a user can squeeze it — for two value distributions: Gaussian
(BN-neck features, as most ReID backbones export them) and post-ReLU (half the values exactly zero, pooled CNN
features at their most compressible). For each it prints the file's size against the app's upload limit
(``pose2id_demo.ui.common.MAX_UPLOAD``) and what the app answers: the sentence of the same reader the *Your
features* tab uses (``engine.inputs.open_feature_file``'s reader and the tab's price), or Gradio's size refusal when the
file is over the upload limit. It also prints the compression ratio of the shipped real feature files
(``assets/features``), re-saved the same way. One temporary file at a time; the machine's load is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from pose2id_demo.engine.errors import Pose2IDError
from pose2id_demo.engine.inputs import MAX_FEATURE_BYTES
from pose2id_demo.engine.user_features import MAX_DIM, MAX_ROWS, check_cost, price_headers
from pose2id_demo.featurefile import load_feature_npz
from pose2id_demo.ui.common import MAX_UPLOAD

REPO = Path(__file__).resolve().parent.parent
MIB = 2**20


def load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def features(kind: str, rows: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((rows, dim), np.float32)
    for i in range(0, rows, 2048):  # in blocks: no float64 copy of the whole array
        block = rng.standard_normal((min(2048, rows - i), dim), dtype=np.float32)
        out[i:i + len(block)] = np.maximum(block, 0) if kind == "post-ReLU" else block
    return out


def write(path: Path, feats: np.ndarray, nq: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    pids = rng.integers(1, 1500, len(feats)).astype(np.int64)
    cams = rng.integers(0, 6, len(feats)).astype(np.int64)
    t = time.perf_counter()
    np.savez_compressed(path, q_feats=feats[:nq], g_feats=feats[nq:], q_pids=pids[:nq], g_pids=pids[nq:],
                        q_camids=cams[:nq], g_camids=cams[nq:])
    return time.perf_counter() - t


def app_answer(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_UPLOAD:
        return f"refused by the upload limit before the app sees it ({size / MIB:.0f} > {MAX_UPLOAD / MIB:.0f} MiB)"
    try:  # what engine.inputs.open_feature_file runs once the upload's path is resolved
        load_feature_npz(path, max_bytes=MAX_FEATURE_BYTES, price=price_headers)
    except Pose2IDError as exc:
        return f"refused by the app: {exc}"
    except ValueError as exc:
        return f"refused by the app: The feature file cannot be used: {exc}."
    return "accepted"


def price_answer(nq: int, ng: int, d: int, m: int = 0) -> str:
    try:
        check_cost(nq, ng, d, m)
    except Pose2IDError as exc:
        return f"refused: {exc}"
    return "accepted"


def largest_rows(d: int) -> int:
    """The most query + gallery rows (split 1 : 4) whose table the app's price accepts at ``d`` dimensions."""
    lo, hi = 1, MAX_ROWS
    while lo < hi:
        mid = (lo + hi + 1) // 2
        nq = mid // 5
        if price_answer(nq, mid - nq, d) == "accepted":
            lo = mid
        else:
            hi = mid - 1
    return lo


def real_ratios() -> list[tuple[str, int, int]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted((REPO / "assets" / "features").glob("*.npz")):
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("q_feats", "g_feats") if k in z.files}
            raw = sum(a.size * 4 for a in arrays.values())  # as float32 (the shipped files may be float16)
            if not raw:  # a generated-features file: its arrays are q_gen / g_gen
                continue
            out = Path(tmp) / "x.npz"
            np.savez_compressed(out, **{k: a.astype(np.float32) for k, a in arrays.items()})
            rows.append((f.name, raw, out.stat().st_size))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=MAX_ROWS)
    ap.add_argument("--dim", type=int, default=MAX_DIM)
    ap.add_argument("--query", type=int, default=10_000, help="rows that are queries (the rest: gallery)")
    ap.add_argument("--tmp", default=None, help="folder for the temporary file (default: the system's)")
    args = ap.parse_args(argv)
    print(f"{load()}; {os.cpu_count()} cores; upload limit {MAX_UPLOAD / MIB:.0f} MiB, arrays limit "
          f"{MAX_FEATURE_BYTES / MIB:.0f} MiB")
    for name, raw, packed in real_ratios():
        print(f"shipped {name}: features as float32 {raw / MIB:.1f} MiB → {packed / MIB:.1f} MiB compressed "
              f"({packed / raw:.3f})")
    for kind in ("Gaussian", "post-ReLU"):
        feats = features(kind, args.rows, args.dim)
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            path = Path(tmp) / "features.npz"
            secs = write(path, feats, args.query)
            size = path.stat().st_size
            with zipfile.ZipFile(path) as zf:
                arrays = sum(i.file_size for i in zf.infolist())
            print(f"{kind}: {args.rows:,} × {args.dim:,} float32 ({args.query:,} queries): arrays "
                  f"{arrays / MIB:.0f} MiB, file {size / MIB:.0f} MiB ({size / arrays:.3f}) written in {secs:.0f} s; "
                  f"{'under' if size <= MAX_UPLOAD else 'over'} the {MAX_UPLOAD / MIB:.0f} MiB upload limit")
            print(f"  the app: {app_answer(path)}")
            print(f"  its table's price alone: {price_answer(args.query, args.rows - args.query, args.dim)}")
        del feats
    n = largest_rows(args.dim)
    print(f"the largest table the price accepts at d = {args.dim:,}: {n:,} rows (1 : 4 query : gallery), "
          f"{n * args.dim * 4 / MIB:.0f} MiB of float32 features")
    nq, ng, d, m = 3368, 15913, 768, 8
    size = (nq + ng) * (1 + m) * d * 4
    print(f"a Market-1501-size file with {m} generated features per image ({nq:,} + {ng:,} × (1 + {m}) × {d} float32): "
          f"{size / MIB:.0f} MiB of arrays; price: {price_answer(nq, ng, d, m)}")
    print(load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
