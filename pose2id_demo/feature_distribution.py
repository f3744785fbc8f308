"""Feature distribution of one identity around its centre — the paper's §3.1 and Fig. 2.

Pose2ID's premise (§3.1): after training, the features of one identity scatter around an *identity centre*,
and each feature dimension k across that identity's samples is close to a normal distribution,
f_{i,k} ~ N(μ_k, σ_k²) (eqs. 3-5).  Fig. 2 shows it with one dimension of one identity, the samples ranked by
their distance to the centre; feature centralization (eq. 9, NFC) pulls every sample towards μ, i.e. it
narrows that distribution.

:func:`identity_dimension` gives what that figure needs for one identity and one dimension, before and after
a centralization step: the samples' values in the dimension, the centre (the mean of the identity's
features, μ), the spread (σ, the standard deviation over the samples), and every sample's Euclidean
distance to the centre in the full feature space, with the samples ranked by it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["identity_dimension"]


def _stats(feats: np.ndarray, dim: int) -> dict[str, Any]:
    centre = feats.mean(axis=0)
    values = feats[:, dim]
    dist = np.sqrt(np.square(feats - centre[None]).sum(axis=1))
    return {"values": values, "centre": float(centre[dim]), "std": float(values.std()),
            "distance_to_centre": dist, "mean_distance_to_centre": float(dist.mean())}


def identity_dimension(before: np.ndarray, after: np.ndarray, pids: np.ndarray, pid: int,
                       dim: int | None = None) -> dict[str, Any]:
    """One identity's values in one feature dimension before and after centralization (Fig. 2).

    Args:
        before (numpy.ndarray): (n, d) features of n samples (e.g. query ∪ gallery), L2-normalised.
        after (numpy.ndarray): (n, d) the same samples' features after a centralization step.
        pids (numpy.ndarray): (n,) identity labels.
        pid (int): the identity to show; it needs at least 2 samples.
        dim (int | None): the feature dimension; default the one in which this identity's features vary most
            before centralization (largest σ_k; lowest k among equals) — where centralization has most to do.

    Returns:
        dict with ``pid``, ``dim``, ``samples`` (indices into the n rows, ranked by distance to the centre
        before centralization, nearest first), and ``before`` / ``after``, each a dict of ``values`` (the
        samples' values in ``dim``, in ``samples`` order), ``centre`` (μ_dim: the identity's mean feature in
        that dimension), ``std`` (σ_dim over the samples), ``distance_to_centre`` (each sample's Euclidean
        distance to the identity's mean feature, in ``samples`` order) and ``mean_distance_to_centre``.

    Raises:
        ValueError: mismatched shapes, an identity with fewer than 2 samples, or a dimension out of range.
    """
    before = np.asarray(before, np.float64)
    after = np.asarray(after, np.float64)
    pids = np.asarray(pids).ravel()
    if before.ndim != 2 or before.shape != after.shape or len(pids) != len(before):
        raise ValueError(f"before and after must be (n, d) with one pid per row, got {before.shape}, "
                         f"{after.shape} and {len(pids)} pids")
    sel = np.flatnonzero(pids == pid)
    if sel.size < 2:
        raise ValueError(f"identity {pid} has {sel.size} sample(s); its distribution needs at least 2")
    if dim is None:
        dim = int(np.argmax(before[sel].std(axis=0)))
    dim = int(dim)
    if not 0 <= dim < before.shape[1]:
        raise ValueError(f"dimension {dim} is out of range: the features have {before.shape[1]}")
    b, a = _stats(before[sel], dim), _stats(after[sel], dim)
    order = np.argsort(b["distance_to_centre"], kind="stable")
    for st in (b, a):
        st["values"] = st["values"][order]
        st["distance_to_centre"] = st["distance_to_centre"][order]
    return {"pid": int(pid), "dim": dim, "samples": sel[order], "before": b, "after": a}
