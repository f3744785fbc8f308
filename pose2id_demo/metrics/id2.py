"""Identity density ID² — Pose2ID eqs. 20-21 (supplementary Sec. 6.2), in its two published readings.

``variant="paper"`` (the default) — the supplementary's text::

    c_i  = normalise( (1/n_i) sum_j f_ij / ||f_ij|| )                              (eq. 21)
    ID²  = (1/N) sum_i (1/n_i) sum_j || f_ij/||f_ij|| - c_i ||_2                   (eq. 20)

the Euclidean distance of each L2-normalised feature to its identity's L2-normalised centre, averaged per
identity and then over the N identities (``average="id"``; ``average="sample"`` averages over samples).

``variant="official"`` — what the official ``ID2.py`` computes: per sample the *squared* Euclidean distance
to the *un-normalised* mean of the identity's L2-normalised features, ``|| f_ij/||f_ij|| - m_i ||_2^2``
with ``m_i = (1/n_i) sum_j f_ij/||f_ij||``, and its README's "global density" is the mean over *samples*
(the default average of this variant).  The published values (TransReID on Market-1501 0.2193, ImageNet
ViT 0.5135) appear to be on this scale.  For ``f = [[1, 0], [0, 1]]``, one identity, the official reading
gives 0.5 per sample, the paper's 0.7654.

Both readings are offered; every table of this project says which one it shows.  Lower is denser.
:func:`identity_density` is ID² over query ∪ gallery of a ReID test set, Market-1501's distractors
(pid 0) and junk images (pid -1) left out: they are not identities.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..centralization.centralize import l2_normalize

__all__ = ["ID2_VARIANTS", "id2", "id2_label", "id2_per_sample", "identity_density"]

Variant = Literal["paper", "official"]
ID2_VARIANTS = ("paper", "official")


def _check_variant(variant: str) -> str:
    if variant not in ID2_VARIANTS:
        raise ValueError(f"variant must be 'paper' or 'official', got {variant!r}")
    return variant


def id2_label(variant: str = "paper") -> str:
    """A short name of the variant for table headers and captions."""
    _check_variant(variant)
    if variant == "paper":
        return "ID² (paper, eqs. 20-21: distance to the normalised centre, mean over identities)"
    return "ID² (official ID2.py: squared distance to the mean, mean over samples)"


def id2_per_sample(feats: np.ndarray, pids: np.ndarray, variant: Variant = "paper") -> np.ndarray:
    """Per-sample distance to the identity centre, shape (N,) float64.

    ``paper``: ``|| f/||f|| - c ||`` with ``c`` the L2-normalised mean of the identity's normalised
    features; ``official``: ``|| f/||f|| - m ||^2`` with ``m`` that mean, not normalised.
    """
    _check_variant(variant)
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
    if variant == "official":
        return ((fn - centres[inv]) ** 2).sum(axis=1)
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    return np.linalg.norm(fn - centres[inv], axis=1)


def id2(
    feats: np.ndarray,
    pids: np.ndarray,
    average: Literal["id", "sample"] | None = None,
    variant: Variant = "paper",
) -> float:
    """ID² of a set of features.

    Args:
        feats: (N, d) features (normalised here).
        pids: (N,) identity labels.
        average: ``"id"`` (mean over identities of per-identity means, eq. 20) or ``"sample"`` (mean over
            samples); default ``"id"`` for the paper's variant, ``"sample"`` for the official one.
        variant: ``"paper"`` (eqs. 20-21 as written) or ``"official"`` (the official ``ID2.py``); see the
            module docstring.

    Returns:
        ID² as a float (0 = every identity collapsed onto its centre; the paper's variant is at most 2).
    """
    dist = id2_per_sample(feats, pids, variant)
    if average is None:
        average = "id" if variant == "paper" else "sample"
    if average == "sample":
        return float(dist.mean())
    if average != "id":
        raise ValueError(f"average must be 'id' or 'sample', got {average!r}")
    _, inv = np.unique(np.asarray(pids).ravel(), return_inverse=True)
    inv = inv.ravel()
    per_id = np.bincount(inv, weights=dist) / np.bincount(inv)
    return float(per_id.mean())


def identity_density(
    q: np.ndarray, g: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, variant: Variant = "paper"
) -> float:
    """ID² over query ∪ gallery, identities only (pid > 0): distractors (0) and junk (-1) are left out.

    Returns NaN when no sample has a pid > 0.
    """
    pids = np.concatenate([np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()])
    keep = pids > 0
    if not keep.any():
        return float("nan")
    return id2(np.concatenate([q, g])[keep], pids[keep], variant=variant)
