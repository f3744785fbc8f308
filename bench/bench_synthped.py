"""Render time, determinism and test-split statistics of SynthPed (all three tasks).

    python -m bench.bench_synthped [--out DIR] [--twice]

Renders the three tasks as ``python -m pose2id_demo.data.synthped --out DIR`` does (train and gallery
rendered once, copied for the other tasks), prints CPU and wall time with the machine's load, the
``--stats`` table beside Market-1501's, and a sha256 over every file written; ``--twice`` renders again
into a second folder and says whether the two trees are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from pose2id_demo.data.synthped import TASKS, VERSION, format_statistics, render_benchmark, split_statistics


def render_all(out: Path) -> tuple[float, float]:
    """Render every task into ``out/<task>``; returns (wall seconds, CPU seconds of this process)."""
    t, c = time.perf_counter(), time.process_time()
    done = None
    for task in TASKS:
        done = render_benchmark(out / task, task=task, seed=0, reuse=done)
    return time.perf_counter() - t, time.process_time() - c


def tree_digest(root: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
            n += 1
    return h.hexdigest(), n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="folder to render into (default: a temporary one)")
    ap.add_argument("--twice", action="store_true", help="render again and compare the bytes")
    args = ap.parse_args(argv)
    base = args.out or Path(tempfile.mkdtemp(prefix="synthped-bench-"))
    load0 = os.getloadavg()[0]
    wall, cpu = render_all(base / "a")
    print(f"SynthPed v{VERSION}, tasks {', '.join(TASKS)}: {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(load {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end; {os.cpu_count()} CPUs)")
    digest, n = tree_digest(base / "a")
    print(f"{n} files, sha256 {digest[:16]}")
    if args.twice:
        render_all(base / "b")
        print("second render byte-identical:", tree_digest(base / "b") == (digest, n))
    print()
    print(format_statistics(split_statistics(base / "a" / "standard"), name="SynthPed standard"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
