"""``python -m pose2id_demo.data.synthped``: render tasks (and a montage) into a folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pose2id_demo.data.synthped.benchmark import make_montage, render_benchmark
from pose2id_demo.data.synthped.constants import TASKS
from pose2id_demo.data.synthped.stats import format_statistics, split_statistics

DESCRIPTION = "SynthPed: a deterministic procedural pedestrian benchmark in Market-1501 layout."


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pose2id_demo.data.synthped", description=DESCRIPTION)
    ap.add_argument("--out", help="output folder; each task goes to OUT/<task>/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", choices=TASKS, action="append", help="task(s) to render (default: all)")
    ap.add_argument("--montage", help="also write a PNG contact sheet of a few identities to this path")
    ap.add_argument("--stats", metavar="ROOT", help="print the test split's per-identity statistics of a "
                    "Market-layout ROOT beside Market-1501's, and exit")
    args = ap.parse_args(argv)
    if args.stats:
        print(format_statistics(split_statistics(args.stats), name=Path(args.stats).name or str(args.stats)))
        return 0
    if not args.out:
        ap.error("--out is required (or --stats ROOT)")
    done: Path | None = None
    for task in args.task or TASKS:
        root = render_benchmark(Path(args.out) / task, task=task, seed=args.seed, progress=True, reuse=done)
        done = root
        print(f"{task}: {root}")
    if args.montage:
        tasks = args.task or TASKS
        make_montage({t: Path(args.out) / t for t in tasks}).save(args.montage, optimize=True)
        print(f"montage: {args.montage}")
    return 0
