"""Identity density ID² — Pose2ID eqs. 20-21 (supplementary Sec. 6.2).

    c_i  = (1/n_i) sum_j f_ij / ||f_ij||                                  (eq. 21, then L2-normalised)
    ID²  = (1/N) sum_i (1/n_i) sum_j || f_ij/||f_ij|| - c_i ||_2          (eq. 20)

N is the number of identities: the paper averages the per-identity mean distance over *identities*
(``average="id"``, the default).  The official ``ID2.py`` returns per-sample distances and its README's
"global density" is their mean over *samples* (``average="sample"``); the two differ when identities have
different sample counts.  As the paper states, both the features and the centres are L2-normalised.
Lower is denser.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..centralization.centralize import l2_normalize

__all__ = ["id2", "id2_per_sample"]


def id2_per_sample(feats: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """Distance of every normalised feature to its identity's normalised centre, shape (N,) float64."""
    f = np.asarray(feats)
    pids = np.asarray(pids).ravel()
    if f.ndim != 2 or f.shape[0] != pids.shape[0]:
        raise ValueError(f"feats (N, d) and pids (N,) disagree: {f.shape} vs {pids.shape}")
    if f.shape[0] == 0:
        raise ValueError("ID² of an empty set is undefined")
    fn = l2_normalize(f).astype(np.float64)
    _, inv = np.unique(pids, return_inverse=True)
    inv = inv.ravel()
    centres = np.zeros((inv.max() + 1, f.shape[1]))
    np.add.at(centres, inv, fn)
    centres /= np.bincount(inv)[:, None]
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    return np.linalg.norm(fn - centres[inv], axis=1)


def id2(feats: np.ndarray, pids: np.ndarray, average: Literal["id", "sample"] = "id") -> float:
    """ID² (eq. 20): mean over identities of the mean distance of each sample to its identity centre.

    Args:
        feats: (N, d) features (normalised here).
        pids: (N,) identity labels.
        average: ``"id"`` (paper eq. 20) or ``"sample"`` (the official code's README global density).

    Returns:
        ID² as a float (0 = every identity collapsed onto its centre; at most 2).
    """
    dist = id2_per_sample(feats, pids)
    if average == "sample":
        return float(dist.mean())
    if average != "id":
        raise ValueError(f"average must be 'id' or 'sample', got {average!r}")
    _, inv = np.unique(np.asarray(pids).ravel(), return_inverse=True)
    inv = inv.ravel()
    per_id = np.bincount(inv, weights=dist) / np.bincount(inv)
    return float(per_id.mean())
