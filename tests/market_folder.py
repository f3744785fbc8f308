"""A small Market-1501-layout folder rendered by SynthPed, as a user's dataset would be: images only (no
keypoint jsons), one query per camera of each test identity, their gallery, distractors (pid 0) and junk (-1)."""

from __future__ import annotations

from pathlib import Path

from pose2id_demo.data import synthped as sp


def write_market(folder: Path, num_test_ids: int, num_distractors: int = 3, num_junk: int = 4) -> Path:
    items = sp.plan(0, num_train_ids=1, num_test_ids=num_test_ids, train_per_id=1, num_distractors=num_distractors,
                    num_junk=num_junk)
    root = sp.render_benchmark(folder / "Market-tiny", items=items)
    for j in root.rglob("*.json"):
        j.unlink()  # a user's folder has images only
    return root
