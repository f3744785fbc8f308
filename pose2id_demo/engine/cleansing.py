"""Data cleansing of a benchmark's train split (Supplementary 7.1): Mahalanobis outliers of each identity
(eqs. 29-31, :func:`pose2id_demo.cleansing.mahalanobis_filter`) and PoseValid rejects (eq. 32,
:func:`pose2id_demo.poses.posevalid.pose_valid`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pose2id_demo import shipped_features
from pose2id_demo.centralization import l2_normalize
from pose2id_demo.cleansing import mahalanobis_filter, removed_per_identity
from pose2id_demo.data import load_market
from pose2id_demo.data.synthped import ensure_benchmark
from pose2id_demo.poses.keypoints import load_pose_json
from pose2id_demo.poses.posevalid import pose_valid

from .errors import Pose2IDError
from .models import Models

__all__ = ["cleanse_train_split", "train_features"]


def train_features(models: Models, task: str, backbone: str, progress: Any) -> tuple[list[Any], np.ndarray]:
    """Train-split records and their raw features: the float16 ones shipped in assets/features when they match
    this installation (:mod:`pose2id_demo.shipped_features`), else the on-disk feature cache."""
    shipped = shipped_features.train_features(backbone, task)
    if shipped is not None:
        ensure_benchmark(task, progress=False)  # PoseValid reads the keypoint files beside the images
        return shipped
    recs = list(load_market(ensure_benchmark(task, progress=False)).train)
    if not recs:
        raise Pose2IDError(f"The {task} benchmark has no train split.")
    progress(0.1, f"Train features of {len(recs)} images ({backbone}; extracted once, then cached) …")
    return recs, models.features_for_paths(backbone, [r.path for r in recs])


def cleanse_train_split(models: Models, task: str, backbone: str, quantile: float, progress: Any,
                        band: str = "pooled") -> dict[str, Any]:
    """The cleansing report of ``task``'s train split with ``backbone``'s features (arguments checked).

    ``band`` is :func:`pose2id_demo.cleansing.mahalanobis_filter`'s: ``pooled`` (the default — one upper
    quantile of all identities' median-scaled distances, which removes real outliers) or ``per_identity`` (the
    literal reading, which with 12 images per identity removes each identity's minimum and maximum, 2 of 12,
    whatever the data).

    Returns:
        ``{"n_train", "n_ids", "outliers": [dict(path, pid, distance)], "removed_per_id": {pid: count},
        "pose_rejects": [dict(path, pid, reason)], "n_no_pose": int, "quantile": float, "band": str}``.
    """
    recs, feats = train_features(models, task, backbone, progress)
    pids = np.asarray([r.pid for r in recs])
    progress(0.7, "Mahalanobis filter …")
    keep, dists = mahalanobis_filter(l2_normalize(feats), pids, quantile=quantile, band=band)
    out_idx = np.flatnonzero(~keep)
    out_idx = out_idx[np.argsort(-np.nan_to_num(dists[out_idx], nan=0.0), kind="stable")]
    outliers = [{"path": recs[i].path, "pid": int(recs[i].pid), "distance": round(float(dists[i]), 3)}
                for i in out_idx]
    progress(0.85, "PoseValid …")
    rejects, n_no_pose = [], 0
    for r in recs:
        jp = Path(r.path).with_suffix(".json")
        if not jp.is_file():
            n_no_pose += 1
            rejects.append({"path": r.path, "pid": int(r.pid), "reason": "no keypoints (pose estimation failed)"})
            continue
        ok, reason = pose_valid(load_pose_json(jp))
        if not ok:
            rejects.append({"path": r.path, "pid": int(r.pid), "reason": reason})
    return {"n_train": len(recs), "n_ids": int(len(np.unique(pids))), "outliers": outliers,
            "removed_per_id": removed_per_identity(keep, pids), "pose_rejects": rejects, "n_no_pose": n_no_pose,
            "quantile": quantile, "band": band}
