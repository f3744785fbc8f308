"""Same-identity and different-identity distance distributions: the most direct picture of "features pulled
towards their identity centre" (fast-reid's visualizer draws the same two histograms).

Pairs are the (query, gallery) pairs the Market-1501 protocol ranks (:mod:`pose2id_demo.metrics.rank`): a
gallery item with the query's pid *and* camera is left out, as is junk (gallery pid -1) and any query with
pid <= 0.  A pair is *same-identity* when the pids agree and *different-identity* otherwise (distractors,
pid 0, are never the query's identity).  The distance is the one the ranking uses,
:func:`pose2id_demo.metrics.distance_matrix` (Euclidean between L2-normalised rows, in [0, 2]).

Overlap: the shared area of the two normalised histograms, ``sum_b min(p_same[b], p_diff[b])`` — 1 when the
two distributions are the same, 0 when every same-identity pair is nearer than every different-identity
pair (at the histogram's resolution).  Centralization that works moves the same-identity histogram left
and lowers the overlap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .rank import distance_matrix

__all__ = ["DISTANCE_RANGE", "histogram_overlap", "pair_distance_histograms"]

#: Euclidean distances between unit vectors lie in [0, 2]: the histograms' fixed range.
DISTANCE_RANGE = (0.0, 2.0)


def histogram_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Shared area of two histograms over the same bins, each normalised to sum 1 (0 if either is empty)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.sum() <= 0 or b.sum() <= 0:
        return 0.0
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def pair_distance_histograms(
    q: np.ndarray,
    g: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    bins: int = 100,
    chunk: int = 256,
) -> dict[str, Any]:
    """Histograms of the same-identity and different-identity query-gallery distances (module docstring).

    Args:
        q (numpy.ndarray): (num_query, d) features (any scale; compared L2-normalised).
        g (numpy.ndarray): (num_gallery, d) features.
        q_pids, g_pids, q_camids, g_camids (numpy.ndarray): labels, as for :func:`~.rank.evaluate`.
        bins (int): equal-width bins over [0, 2].
        chunk (int): query rows per distance block (memory ~ chunk * num_gallery * 8 bytes).

    Returns:
        dict with ``edges`` (bins + 1,), ``same`` and ``different`` (bins,) int64 pair counts, ``n_same``,
        ``n_different``, ``mean_same``, ``mean_different``, ``std_same``, ``std_different`` (over the
        pairs themselves, not the bins; NaN for an empty class) and ``overlap`` (:func:`histogram_overlap`).
    """
    q_pids, g_pids, q_camids, g_camids = (np.asarray(a).ravel() for a in (q_pids, g_pids, q_camids, g_camids))
    q, g = np.asarray(q), np.asarray(g)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"q and g must be (nq, d) and (ng, d), got {q.shape} and {g.shape}")
    if len(q_pids) != len(q) or len(q_camids) != len(q) or len(g_pids) != len(g) or len(g_camids) != len(g):
        raise ValueError("labels must have one entry per feature row")
    bins = int(bins)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    lo, hi = DISTANCE_RANGE
    edges = np.linspace(lo, hi, bins + 1)
    counts = {True: np.zeros(bins, np.int64), False: np.zeros(bins, np.int64)}
    sums = {True: [0.0, 0.0], False: [0.0, 0.0]}
    rows = np.flatnonzero(q_pids > 0)
    g_ok = g_pids != -1
    gv = g[g_ok]
    gp, gc = g_pids[g_ok], g_camids[g_ok]
    for s in range(0, rows.size, chunk):
        r = rows[s:s + chunk]
        d = distance_matrix(q[r], gv)
        same = gp[None, :] == q_pids[r, None]
        keep = ~(same & (gc[None, :] == q_camids[r, None]))
        for is_same in (True, False):
            v = d[keep & (same if is_same else ~same)]
            idx = np.minimum(((v - lo) * (bins / (hi - lo))).astype(np.int64), bins - 1)
            counts[is_same] += np.bincount(idx, minlength=bins)
            sums[is_same][0] += float(v.sum())
            sums[is_same][1] += float(np.square(v).sum())

    def moments(is_same: bool) -> tuple[float, float]:
        n = int(counts[is_same].sum())
        if n == 0:
            return float("nan"), float("nan")
        mean = sums[is_same][0] / n
        return mean, float(np.sqrt(max(sums[is_same][1] / n - mean * mean, 0.0)))

    (m_s, s_s), (m_d, s_d) = moments(True), moments(False)
    return {"edges": edges, "same": counts[True], "different": counts[False],
            "n_same": int(counts[True].sum()), "n_different": int(counts[False].sum()),
            "mean_same": m_s, "mean_different": m_d, "std_same": s_s, "std_different": s_d,
            "overlap": histogram_overlap(counts[True], counts[False])}
