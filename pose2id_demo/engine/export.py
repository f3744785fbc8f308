"""The benchmark's features written as a feature file (the keys ``python -m pose2id_demo eval`` reads), so that
the Your-features tab and the CLI can be tried on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pose2id_demo.ipg.precompute import read_generated

from .features import FeatureStore, shipped_generated_path
from .inputs import TASKS, check_choice
from .scheduler import LONG

__all__ = ["export_benchmark_features"]


def export_benchmark_features(features: FeatureStore, task: str, backbone: str, path: str | Path) -> Path:
    """Write the benchmark's features of a SynthPed ``task`` as a feature file: the raw features as the backbone
    gave them, and ``q_gen``/``g_gen`` as shipped if they are attached, so that evaluating the file repeats
    exactly the benchmark's steps."""
    task, backbone = check_choice("task", task, TASKS), features.check_backbone(backbone)
    models = features.models
    with models.cpu.hold(LONG, "an export of the benchmark features"):
        data = features.bench_data(task, backbone)
        raw = models.dataset_features(backbone, task, progress=False)
        arrays = {"q_feats": np.asarray(raw["q_feats"], np.float32),
                  "g_feats": np.asarray(raw["g_feats"], np.float32), "q_pids": data.q_pids,
                  "g_pids": data.g_pids, "q_camids": data.q_camids, "g_camids": data.g_camids}
        if data.q_gen is not None and data.g_gen is not None:
            z = read_generated(shipped_generated_path(task, backbone))
            arrays.update(q_gen=z["q_gen"], g_gen=z["g_gen"])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path
