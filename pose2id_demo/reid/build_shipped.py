"""Write the shipped SynthPed feature files, ``assets/features/synthped-<backbone>.npz`` (float16), that
:mod:`pose2id_demo.shipped_features` reads::

    python -m pose2id_demo.reid.build_shipped [--backbone synthped-reid --backbone imagenet-mobilenetv2]

Renders SynthPed into the cache if needed and extracts through the disk feature cache
(:func:`pose2id_demo.reid.features.features_for_paths`); a few CPU-minutes per backbone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pose2id_demo import shipped_features
from pose2id_demo.data import load_market
from pose2id_demo.data.synthped import TASKS, ensure_benchmark
from pose2id_demo.reid.features import features_for_paths


def build(backbone: str, out: Path | None = None) -> Path:
    """Extract (through the disk feature cache) and write the shipped file of ``backbone``: every task's
    queries, the shared gallery and the train split, in the reader's order."""
    arrays: dict[str, np.ndarray] = {}
    for task in TASKS:
        ds = load_market(ensure_benchmark(task, progress=True))
        arrays[f"{task}_q_feats"] = features_for_paths(backbone, [r.path for r in ds.query]).astype(np.float16)
        arrays[f"{task}_q_names"] = np.array([Path(r.path).name for r in ds.query])
        if task == TASKS[0]:
            for key, recs in (("g", ds.gallery), ("train", ds.train)):
                arrays[f"{key}_feats"] = features_for_paths(backbone, [r.path for r in recs]).astype(np.float16)
                arrays[f"{key}_names"] = np.array([Path(r.path).name for r in recs])
    path = out or shipped_features.shipped_path(backbone)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(json.dumps(shipped_features.meta(backbone))), **arrays)
    shipped_features.forget(backbone)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rebuild assets/features/synthped-<backbone>.npz (float16 features)")
    ap.add_argument("--backbone", action="append",
                    help=f"default: {', '.join(shipped_features.SHIPPED_BACKBONES)}")
    args = ap.parse_args(argv)
    for bb in args.backbone or shipped_features.SHIPPED_BACKBONES:
        path = build(bb)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
