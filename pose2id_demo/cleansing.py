"""Data cleansing by per-identity Mahalanobis distance — Pose2ID supplementary Sec. 7.1.1, eqs. 29-31.

For the n samples f_1..f_n of one identity (eq. 29)::

    mu = (1/n) sum_k f_k,     Sigma = (1/n) sum_k (f_k - mu)(f_k - mu)^T
    dis_k = sqrt((f_k - mu)^T Sigma^{-1} (f_k - mu))                                   (eq. 30)
    S^ref = {f_k : dis_k in [Q_p, Q_{1-p}]}                                             (eq. 31)

The paper filters Market-1501 with p = 0.005 (Fig. 11).  Which distances Q_p is the quantile *of* is the
one choice eq. 31 leaves open, and it decides what is removed (``band``):

- ``"pooled"`` (the default): one threshold for all identities, upper tail only.  Under the normal model
  behind eq. 30 the squared distance of a sample to its identity is chi²-distributed with the same d for
  every identity, so one quantile of all identities' distances together serves all of them, and an
  identity loses only samples that are far out in the whole population.  Two corrections make that hold
  on real features: (1) with n_i <= d the Ledoit-Wolf distances are not chi²_d and their *scale* differs
  between identities (SynthPed train, synthped-reid, d = 256, 12 images per id: mean distances 3.95 to
  5.56), so pooling raw distances trims whole identities at the ends of that scale (two identities lost 8
  of 12 images, 36 removed in all); each identity's distances are therefore divided by their median
  first.  (2) A small distance means a sample close to its identity's centre — the most typical image,
  never an outlier — so the lower bound Q_p is not applied: samples whose scaled distance exceeds the
  pooled Q_{1-p} are removed.  With p = 0.005 that is 0.5 % of the samples: 18 of 3,600 on SynthPed
  train (synthped-reid), from 14 identities, at most 3 from one.
- ``"per_identity"``: the literal reading, quantiles of each identity's own n_i distances.  With
  ``numpy.quantile``'s linear interpolation and n_i < 1/p (e.g. 12 samples, p = 0.005), Q_p lies strictly
  between the smallest and second-smallest distance, so every identity loses exactly its minimum and its
  maximum — 2 of 12 images each, the most central one counted as an "outlier" — whatever the data.

Covariance when the identity has few samples: with n <= d the empirical Sigma of eq. 29 is singular, and its
Moore-Penrose pseudo-inverse is useless here — every sample then gets exactly the same distance
sqrt(n - 1) (x_k^T Sigma^+ x_k = n * [centring projector]_kk), so nothing could ever be filtered.  We
therefore use **Ledoit-Wolf shrinkage** (Sigma_LW = (1 - s) Sigma + s * tr(Sigma)/d * I, with the
Ledoit-Wolf optimal s, as scikit-learn's ``ledoit_wolf``) when n <= d, and the exact eq. 29 covariance when
n > d (``covariance="auto"``).  With n <= d the inverse is applied through the n x n Gram matrix
(Woodbury identity), so high-dimensional features cost O(n^2 d) per identity.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple

import numpy as np

__all__ = ["BANDS", "CleansingResult", "ledoit_wolf_shrinkage", "mahalanobis_distances", "mahalanobis_filter",
           "removed_per_identity", "scaled_distances"]

log = logging.getLogger(__name__)

Covariance = Literal["auto", "ledoit_wolf", "empirical"]
Band = Literal["pooled", "per_identity"]
BANDS = ("pooled", "per_identity")


class CleansingResult(NamedTuple):
    """``keep`` (N,) bool — True for samples eq. 31 keeps (the band as ``mahalanobis_filter`` says);
    ``distances`` (N,) float64 — each sample's Mahalanobis distance to its identity (eq. 30)."""

    keep: np.ndarray
    distances: np.ndarray


def ledoit_wolf_shrinkage(gram: np.ndarray, d: int) -> tuple[float, float]:
    """Ledoit-Wolf shrinkage from the Gram matrix ``G = Xc Xc^T`` of n centred samples in R^d.

    Returns:
        ``(s, mu)``: the shrinkage intensity s in [0, 1] and mu = tr(Sigma) / d, so that
        ``Sigma_LW = (1 - s) Sigma + s mu I`` with Sigma = Xc^T Xc / n.
    """
    n = gram.shape[0]
    tr = np.trace(gram) / n
    mu = tr / d
    s_fro2 = float((gram**2).sum()) / n**2  # ||Sigma||_F^2 = ||G||_F^2 / n^2
    sum_x4 = float((np.diag(gram) ** 2).sum())  # sum_k ||x_k||^4
    beta = (sum_x4 / n - s_fro2) / (d * n)
    delta = s_fro2 / d - mu**2  # ||Sigma - mu I||_F^2 / d
    if delta <= 0:
        return 0.0, float(mu)
    return float(min(max(beta, 0.0), delta) / delta), float(mu)


def _id_distances(x: np.ndarray, covariance: Covariance) -> np.ndarray:
    """Squared Mahalanobis distances of the rows of x (n, d) to their mean."""
    n, d = x.shape
    xc = x - x.mean(axis=0)
    method = covariance if covariance != "auto" else ("empirical" if n > d else "ledoit_wolf")
    small = n <= d  # work in the n x n Gram space
    gram = xc @ xc.T
    if np.trace(gram) <= 0:  # all samples identical
        return np.zeros(n)
    if method == "ledoit_wolf":
        s, mu = ledoit_wolf_shrinkage(gram, d)
        a, b = s * mu, (1.0 - s) / n  # Sigma_LW = a I + b Xc^T Xc
        if a > 0:
            if small:  # Woodbury: x^T Sigma^-1 x = (G_kk - g_k^T (a/b I + G)^-1 g_k) / a
                if b == 0:
                    return np.diag(gram) / a
                m = np.linalg.solve(gram + (a / b) * np.eye(n), gram)
                return np.maximum(np.diag(gram) - (gram * m).sum(axis=0), 0.0) / a
            cov = b * (xc.T @ xc) + a * np.eye(d)
            return np.maximum((xc * np.linalg.solve(cov, xc.T).T).sum(axis=1), 0.0)
        method = "empirical"  # no shrinkage chosen: eq. 29 as is
    if method != "empirical":
        raise ValueError(f"covariance must be 'auto', 'ledoit_wolf' or 'empirical', got {covariance!r}")
    if small:  # pseudo-inverse through the Gram matrix: x_k^T Sigma^+ x_k = n [G G^+]_kk
        proj = gram @ np.linalg.pinv(gram, hermitian=True)
        return np.maximum(n * np.diag(proj), 0.0)
    cov = (xc.T @ xc) / n
    return np.maximum((xc * (np.linalg.pinv(cov, hermitian=True) @ xc.T).T).sum(axis=1), 0.0)


def mahalanobis_distances(feats: np.ndarray, pids: np.ndarray, covariance: Covariance = "auto") -> np.ndarray:
    """Eq. 30 for every sample, each against its own identity's mean and covariance; shape (N,) float64."""
    f = np.asarray(feats, dtype=np.float64)
    pids = np.asarray(pids).ravel()
    if f.ndim != 2 or f.shape[0] != pids.shape[0]:
        raise ValueError(f"feats (N, d) and pids (N,) disagree: {f.shape} vs {pids.shape}")
    if not np.isfinite(f).all():
        raise ValueError("feats contains NaN or inf")
    out = np.zeros(f.shape[0])
    if f.shape[0] == 0:
        return out
    for idx in _identity_groups(pids):
        out[idx] = np.sqrt(_id_distances(f[idx], covariance))
    return out


def _identity_groups(pids: np.ndarray) -> list[np.ndarray]:
    """Row indices of each identity (in order of first sorted pid), found with one stable sort."""
    _, inv = np.unique(np.asarray(pids).ravel(), return_inverse=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(inv.max() + 2))
    return [order[bounds[i] : bounds[i + 1]] for i in range(inv.max() + 1)]


def scaled_distances(dist: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """Each identity's distances divided by their median (1.0 for identities of fewer than 3 samples, and
    for an identity whose median is 0): the identity-independent scale the pooled band thresholds."""
    out = np.ones(dist.shape[0], np.float64)
    for idx in _identity_groups(np.asarray(pids).ravel()):
        med = float(np.median(dist[idx]))
        if idx.size >= 3 and med > 0:
            out[idx] = dist[idx] / med
    return out


def mahalanobis_filter(
    feats: np.ndarray,
    pids: np.ndarray,
    quantile: float = 0.005,
    covariance: Covariance = "auto",
    band: Band = "pooled",
) -> CleansingResult:
    """Drop the samples whose Mahalanobis distance to their identity is an outlier (eq. 31).

    ``band="pooled"`` (default) removes samples whose median-scaled distance exceeds the pooled Q_{1-p};
    ``band="per_identity"`` keeps, per identity, the distances within that identity's [Q_p, Q_{1-p}].

    Args:
        feats: (N, d) features (e.g. ReID features of the training images).
        pids: (N,) identity labels.
        quantile: p of eq. 31, or equivalently its upper bound 1 - p: ``quantile`` and ``1 - quantile``
            name the same band, so 0.9 keeps [Q_0.1, Q_0.9] and 0.005 (the paper's Fig. 11) keeps
            [Q_0.005, Q_0.995].  0 or 1 keeps everything.
        covariance: ``"auto"`` (eq. 29 when n_i > d, Ledoit-Wolf when n_i <= d), ``"ledoit_wolf"`` or
            ``"empirical"`` (eq. 29 with a pseudo-inverse; degenerate when n_i <= d, see module doc).
        band: ``"pooled"`` (default: the upper quantile of all identities' median-scaled distances) or
            ``"per_identity"`` (the literal reading: each identity's own two-sided quantiles); see the
            module docstring for why.

    Returns:
        :class:`CleansingResult` ``(keep, distances)``.  Quantiles use linear interpolation
        (``numpy.quantile``); bounds are inclusive.
    """
    if not 0.0 <= float(quantile) <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if band not in BANDS:
        raise ValueError(f"band must be 'pooled' or 'per_identity', got {band!r}")
    p = min(float(quantile), 1.0 - float(quantile))
    dist = mahalanobis_distances(feats, pids, covariance)
    pids = np.asarray(pids).ravel()
    keep = np.ones(dist.shape[0], bool)
    if dist.size == 0 or p == 0.0:
        return CleansingResult(keep, dist)
    if band == "pooled":
        scaled = scaled_distances(dist, pids)
        keep = scaled <= np.quantile(scaled, 1.0 - p)
    else:
        for idx in _identity_groups(pids):
            lo, hi = np.quantile(dist[idx], [p, 1.0 - p])
            keep[idx] = (dist[idx] >= lo) & (dist[idx] <= hi)
    log.info("mahalanobis_filter: kept %d of %d samples (p=%.4g, %s)", int(keep.sum()), keep.size, p, band)
    return CleansingResult(keep, dist)


def removed_per_identity(keep: np.ndarray, pids: np.ndarray) -> dict[int, int]:
    """How many samples of each identity the filter removed: ``{pid: count}`` over every pid (0 included)."""
    pids = np.asarray(pids).ravel()
    uniq, inv = np.unique(pids, return_inverse=True)
    removed = np.bincount(inv.ravel(), weights=~np.asarray(keep, bool).ravel(), minlength=uniq.size)
    return {int(p): int(c) for p, c in zip(uniq, removed)}
