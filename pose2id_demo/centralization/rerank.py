"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017), written from the paper's description.

Pose2ID (Sec. 1, Sec. 5) stresses that feature centralization keeps the feature distribution, so re-ranking
still applies after NFC/IPG: call :func:`rerank` on the centralized features.

Definitions used here (all neighbourhoods are over the union P = query + gallery, as in Zhong et al.):

* features are L2-normalised; the original distance is the **squared Euclidean** distance
  d(p, g) = ||p - g||^2 = 2 - 2 cos(p, g) in [0, 4];
* N(p, k): p itself followed by its k nearest other samples, ordered by (distance, index);
* R(p, k) = {g in N(p, k) : p in N(g, k)} (k-reciprocal neighbours, Zhong eq. 3; contains p);
* R*(p, k1) = R(p, k1) united with every R(q, ceil(k1/2)), q in R(p, k1), for which
  |R(p, k1) ∩ R(q, ceil(k1/2))| >= 2/3 |R(q, ceil(k1/2))| (Zhong eq. 6);
* V[p, g] = exp(-d(p, g)) for g in R*(p, k1), else 0 (Zhong eq. 7, Gaussian kernel);
* local query expansion: V_p <- mean of V_q over the k2 nearest of p *including p* (Zhong eq. 12; k2 = 1
  switches it off);
* Jaccard distance d_J(p, g) = 1 - sum_j min(V_pj, V_gj) / sum_j max(V_pj, V_gj) (Zhong eq. 10);
* final distance d* = (1 - lambda) d_J + lambda d (Zhong eq. 11).

Differences from the widely copied reference script (``re_ranking(q_g_dist, q_q_dist, g_g_dist, ...)``):
that script takes squared distances, divides them by each column's maximum, row-normalises V to sum 1
and tests ``> 2/3``; here V keeps the paper's unnormalised kernel weights, the distances are not rescaled
and the test is the paper's ``>=``.  Numbers are therefore close to, not identical with, that script's.

Scale: neighbour lists come from the blocked top-k of :mod:`.nfc`, V is sparse, and the Jaccard term is
accumulated per query chunk — nothing of size (nq + ng)^2 is allocated.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from .centralize import l2_normalize
from .nfc import _as_features, mutual_mask, topk_neighbors

__all__ = ["k_reciprocal_sets", "rerank"]

log = logging.getLogger(__name__)


def _ordered_lists(feats: np.ndarray, k: int, block: int) -> np.ndarray:
    """N(p, k) for all p: self first, then the k nearest others; shape (N, k + 1)."""
    n = feats.shape[0]
    nbr = topk_neighbors(feats, k, block=block)
    return np.concatenate([np.arange(n, dtype=np.int64)[:, None], nbr], axis=1)


def _reciprocal(lists: np.ndarray, k: int) -> sp.csr_matrix:
    """R(p, k) as a sparse 0/1 matrix (N, N) from ordered lists N(p, .) (self first)."""
    n = lists.shape[0]
    m = min(k + 1, lists.shape[1])
    mask = mutual_mask(lists, m, m)
    rows, pos = np.nonzero(mask)
    cols = lists[rows, pos]
    return sp.csr_matrix((np.ones(rows.size, np.float64), (rows, cols)), shape=(n, n))


def k_reciprocal_sets(feats: np.ndarray, k1: int = 20, block: int = 1024) -> sp.csr_matrix:
    """R*(p, k1) for every row of ``feats`` (compared L2-normalised) as a sparse 0/1 (N, N) matrix."""
    f = l2_normalize(_as_features(feats))
    n = f.shape[0]
    k1 = int(max(1, min(int(k1), n - 1))) if n > 1 else 0
    lists = _ordered_lists(f, k1, block)
    return _expanded(lists, k1)


def _expanded(lists: np.ndarray, k1: int) -> sp.csr_matrix:
    kh = (k1 + 1) // 2  # ceil(k1 / 2)
    a = _reciprocal(lists, k1)
    ah = _reciprocal(lists, kh)
    size_h = np.asarray(ah.sum(axis=1)).ravel()
    inter = a.multiply(a @ ah.T).tocoo()  # |R(p,k1) ∩ R(q,k1/2)| at every q in R(p,k1) (always >= 1: q itself)
    ok = 3.0 * inter.data >= 2.0 * size_h[inter.col]
    sel = sp.csr_matrix((np.ones(int(ok.sum())), (inter.row[ok], inter.col[ok])), shape=a.shape)
    rstar = a + sel @ ah
    rstar.data[:] = 1.0
    rstar.eliminate_zeros()
    return rstar.tocsr()


def rerank(
    q_feats: np.ndarray,
    g_feats: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    block: int = 1024,
    query_chunk: int = 256,
) -> np.ndarray:
    """k-reciprocal re-ranked query-gallery distances (Zhong et al. 2017, eqs. 3-12; see module doc).

    Args:
        q_feats: (nq, d) query features (any scale: they are L2-normalised here).
        g_feats: (ng, d) gallery features.
        k1: k of the k-reciprocal sets (default 20); clamped to nq + ng - 1.
        k2: size of the local query-expansion neighbourhood, p included (default 6; 1 = off).
        lambda_value: weight of the original distance in the final distance (default 0.3).
        block: rows per block of the neighbour search.
        query_chunk: queries per chunk of the Jaccard accumulation.

    Returns:
        (nq, ng) float32 distances: (1 - lambda) * Jaccard + lambda * squared Euclidean distance of the
        L2-normalised features.  Lower is more similar; feed it to :func:`pose2id_demo.metrics.evaluate`.
    """
    q = l2_normalize(_as_features(q_feats, "q_feats"))
    g = l2_normalize(_as_features(g_feats, "g_feats"))
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery dimensions differ: {q.shape[1]} vs {g.shape[1]}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    nq, ng = q.shape[0], g.shape[0]
    if nq == 0 or ng == 0:
        return np.zeros((nq, ng), np.float32)
    feats = np.concatenate([q, g])
    n = nq + ng
    k1 = int(max(1, min(int(k1), n - 1)))
    k2 = int(max(1, min(int(k2), n)))
    lists = _ordered_lists(feats, max(k1, k2 - 1), block)
    rstar = _expanded(lists, k1)

    # V[p, g] = exp(-d(p, g)) on R*(p, k1)  (Zhong eq. 7)
    coo = rstar.tocoo()
    f64 = feats.astype(np.float64)
    w = np.empty(coo.nnz)
    step = 1 << 16
    for s in range(0, coo.nnz, step):
        r, c = coo.row[s : s + step], coo.col[s : s + step]
        d2 = np.maximum(2.0 - 2.0 * np.einsum("ij,ij->i", f64[r], f64[c]), 0.0)
        w[s : s + step] = np.exp(-d2)
    v = sp.csr_matrix((w, (coo.row, coo.col)), shape=(n, n))
    if k2 > 1:  # local query expansion (Zhong eq. 12)
        qe_rows = np.repeat(np.arange(n), k2)
        qe = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (qe_rows, lists[:, :k2].ravel())), shape=(n, n))
        v = (qe @ v).tocsr()
    vq = v[:nq].tocsr()
    vg = v[nq:].tocsc()  # columns: union index j; rows: gallery
    sum_q = np.asarray(vq.sum(axis=1)).ravel()
    sum_g = np.asarray(vg.sum(axis=1)).ravel()
    col_len = np.diff(vg.indptr)
    out = np.empty((nq, ng), np.float32)
    for s in range(0, nq, query_chunk):
        e = min(nq, s + query_chunk)
        part = vq[s:e].tocoo()
        lens = col_len[part.col]
        total = int(lens.sum())
        # every (query p, union column j, gallery g) with V_pj > 0 and V_gj > 0
        offs = np.repeat(vg.indptr[part.col] - np.cumsum(lens) + lens, lens) + np.arange(total)
        gi = vg.indices[offs]
        mins = np.minimum(np.repeat(part.data, lens), vg.data[offs])
        smin = np.bincount(np.repeat(part.row, lens) * ng + gi, weights=mins, minlength=(e - s) * ng)
        smin = smin.reshape(e - s, ng)
        smax = sum_q[s:e, None] + sum_g[None, :] - smin  # min + max = a + b for every coordinate
        d_jac = 1.0 - smin / smax
        d_orig = np.maximum(2.0 - 2.0 * (q[s:e].astype(np.float64) @ g.T.astype(np.float64)), 0.0)
        out[s:e] = (1.0 - lambda_value) * d_jac + lambda_value * d_orig
    log.debug("rerank: nq=%d ng=%d k1=%d k2=%d, |R*| %.1f per sample", nq, ng, k1, k2, rstar.nnz / n)
    return out
