"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017), in the form of its released code (the default) or of the paper's formulas.

Pose2ID (Sec. 1, Sec. 5) stresses that feature centralization keeps the feature distribution, so re-ranking
still applies after NFC/IPG: call :func:`rerank` on the centralized features.

Common to both forms (all neighbourhoods are over the union P = query + gallery, as in Zhong et al.):

* features are L2-normalised; the distance is the **squared Euclidean** distance
  d(p, g) = ||p - g||^2 = 2 - 2 cos(p, g) in [0, 4];
* N(p, k): p itself followed by its k nearest other samples, ordered by (distance, index);
* R(p, k) = {g in N(p, k) : p in N(g, k)} (k-reciprocal neighbours, Zhong eq. 3; contains p);
* R*(p, k1) = R(p, k1) united with every R(q, h), q in R(p, k1), that overlaps R(p, k1) enough (eq. 6);
* V_p: weights exp(-distance) on R*(p, k1), 0 elsewhere (eq. 7, Gaussian kernel);
* local query expansion: V_p <- mean of V_q over the k2 nearest of p *including p* (eq. 12; k2 = 1 off);
* Jaccard distance d_J(p, g) = 1 - sum_j min(V_pj, V_gj) / sum_j max(V_pj, V_gj) (eq. 10);
* final distance d* = (1 - lambda) d_J + lambda d' (eq. 11).

``variant="released"`` (default) — what ``re_ranking`` in Zhong et al.'s release computes, the function
torchreid, TransReID and the official Pose2ID evaluation call, i.e. the numbers papers report:

1. every row of the distance matrix (over P) is divided by its largest entry:
   d'(p, g) = d(p, g) / max_j d(p, j) — this d' is the kernel's argument *and* the final eq. 11 term;
2. V_p is row-normalised to sum 1: V_pg = exp(-d'(p, g)) / sum_{j in R*(p)} exp(-d'(p, j));
3. the half-size sets use h = round-half-to-even(k1 / 2) (numpy's ``around``: 10 for k1 = 20, 2 for k1 = 5);
4. the expansion test is strict: |R(p, k1) ∩ R(q, h)| > 2/3 |R(q, h)|.

``variant="paper"`` — the paper's formulas: d' = d (no rescaling), V_pg = exp(-d(p, g)) unnormalised,
h = ceil(k1 / 2), and the test ``>= 2/3``.

Distance form: both take the squared Euclidean distance of the L2-normalised features — what TransReID's
(and the Pose2ID evaluation's) ``re_ranking(query_feats, gallery_feats, ...)`` computes itself, and what
torchreid's ``re_ranking(q_g, q_q, g_g)`` computes from *plain* Euclidean matrices (it squares its inputs).
torchreid's own engine passes it squared distances, which it squares again (d^2 of d^2); that changes
the kernel and the final term (not the neighbour sets) and gives somewhat different numbers.

The released code sorts with numpy's default (unstable) ``argsort``; here neighbours are ordered by
(distance, index) with p first, so results are deterministic (they differ only on exact distance ties).
The final distances are computed in float64, rounded to :data:`pose2id_demo.metrics.rank.TIE_GRID` and
returned as float32, so float64 rounding noise (which follows the BLAS thread count) does not reach them
unless a value lies within that noise of a half step of the grid; equal float32 values rank by gallery index
in :func:`pose2id_demo.metrics.evaluate`.

Scale: neighbour lists and row maxima come from the blocked top-k of :mod:`.nfc`, V is sparse, the V
weights are computed in bounded slices and the Jaccard term is accumulated per query chunk with a bounded
number of entries — nothing of size (nq + ng)^2 is allocated (``bench/bench_rerank.py``).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import scipy.sparse as sp

from ..metrics.rank import snap_to_tie_grid
from .centralize import l2_normalize
from .nfc import _as_features, _torch, mutual_mask, topk_neighbors

__all__ = ["k_reciprocal_sets", "rerank"]

log = logging.getLogger(__name__)

_WEIGHT_BYTES = 1 << 24  # bound of the gathered feature rows in the V-weight step (two float64 slices)
_JACCARD_ENTRIES = 1 << 19  # bound of the (query, column, gallery) triples handled at once


def _ordered_lists(feats: np.ndarray, k: int, block: int, want_max: bool = False):
    """N(p, k) for all p: self first, then the k nearest others; shape (N, k + 1) (and each row's max distance)."""
    n = feats.shape[0]
    nbr, rmax = topk_neighbors(feats, k, block=block, return_max=True) if want_max else (
        topk_neighbors(feats, k, block=block), None)
    lists = np.concatenate([np.arange(n, dtype=np.int64)[:, None], nbr], axis=1)
    return (lists, rmax) if want_max else lists


def _reciprocal(lists: np.ndarray, k: int) -> sp.csr_matrix:
    """R(p, k) as a sparse 0/1 matrix (N, N) from ordered lists N(p, .) (self first)."""
    n = lists.shape[0]
    m = min(k + 1, lists.shape[1])
    mask = mutual_mask(lists, m, m)
    rows, pos = np.nonzero(mask)
    cols = lists[rows, pos]
    return sp.csr_matrix((np.ones(rows.size, np.float64), (rows, cols)), shape=(n, n))


def _half(k1: int, variant: str) -> int:
    return int(np.around(k1 / 2.0)) if variant == "released" else (k1 + 1) // 2


def k_reciprocal_sets(
    feats: np.ndarray, k1: int = 20, block: int = 2048, variant: Literal["released", "paper"] = "released"
) -> sp.csr_matrix:
    """R*(p, k1) for every row of ``feats`` (compared L2-normalised) as a sparse 0/1 (N, N) matrix."""
    f = l2_normalize(_as_features(feats))
    n = f.shape[0]
    k1 = int(max(1, min(int(k1), n - 1))) if n > 1 else 0
    lists = _ordered_lists(f, k1, block)
    return _expanded(lists, k1, variant)


def _expanded(lists: np.ndarray, k1: int, variant: str = "released") -> sp.csr_matrix:
    kh = _half(k1, variant)
    a = _reciprocal(lists, k1)
    ah = _reciprocal(lists, kh)
    size_h = np.asarray(ah.sum(axis=1)).ravel()
    inter = a.multiply(a @ ah.T).tocoo()  # |R(p,k1) ∩ R(q,h)| at every q in R(p,k1) (always >= 1: q itself)
    if variant == "released":
        ok = 3.0 * inter.data > 2.0 * size_h[inter.col]
    else:
        ok = 3.0 * inter.data >= 2.0 * size_h[inter.col]
    sel = sp.csr_matrix((np.ones(int(ok.sum())), (inter.row[ok], inter.col[ok])), shape=a.shape)
    rstar = a + sel @ ah
    rstar.data[:] = 1.0
    rstar.eliminate_zeros()
    return rstar.tocsr()


def _pair_sqdist(feats: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of unit rows (float64 products) for the given pairs, in bounded slices."""
    out = np.empty(rows.size)
    step = max(1, _WEIGHT_BYTES // (16 * feats.shape[1]))
    for s in range(0, rows.size, step):
        a = feats[rows[s : s + step]].astype(np.float64)
        b = feats[cols[s : s + step]].astype(np.float64)
        out[s : s + step] = np.maximum(2.0 - 2.0 * np.einsum("ij,ij->i", a, b), 0.0)
    return out


def rerank(
    q_feats: np.ndarray,
    g_feats: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    block: int = 2048,
    query_chunk: int = 256,
    variant: Literal["released", "paper"] = "released",
) -> np.ndarray:
    """k-reciprocal re-ranked query-gallery distances (Zhong et al. 2017; see the module doc).

    Args:
        q_feats: (nq, d) query features (any scale: they are L2-normalised here).
        g_feats: (ng, d) gallery features.
        k1: k of the k-reciprocal sets (default 20); clamped to nq + ng - 1.
        k2: size of the local query-expansion neighbourhood, p included (default 6; 1 = off).
        lambda_value: weight of the original distance in the final distance (default 0.3).
        block: tile side of the neighbour search.
        query_chunk: at most this many queries per chunk of the Jaccard accumulation.
        variant: ``"released"`` (default: the released code's numbers — row-max-scaled distances,
            row-normalised V, h = round(k1/2), strict ``> 2/3``) or ``"paper"`` (the paper's formulas).

    Returns:
        (nq, ng) float32 distances, lower = more similar; feed them to :func:`pose2id_demo.metrics.evaluate`.
        ``"released"``: (1 - lambda) * Jaccard + lambda * d / (row maximum of d);
        ``"paper"``: (1 - lambda) * Jaccard + lambda * d, with d the squared Euclidean distance of the
        L2-normalised features.
    """
    if variant not in ("released", "paper"):
        raise ValueError(f"variant must be 'released' or 'paper', got {variant!r}")
    q = l2_normalize(_as_features(q_feats, "q_feats"))
    g = l2_normalize(_as_features(g_feats, "g_feats"))
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery dimensions differ: {q.shape[1]} vs {g.shape[1]}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    nq, ng = q.shape[0], g.shape[0]
    if nq == 0 or ng == 0:
        return np.zeros((nq, ng), np.float32)
    released = variant == "released"
    feats = np.concatenate([q, g])
    n = nq + ng
    k1 = int(max(1, min(int(k1), n - 1)))
    k2 = int(max(1, min(int(k2), n)))
    lists, rmax = _ordered_lists(feats, max(k1, k2 - 1), block, want_max=True)
    # the released code's d' = d / row max; a row of identical points (max 0) keeps d' = d = 0
    scale = 1.0 / np.where(rmax > 0, rmax.astype(np.float64), 1.0) if released else np.ones(n)
    rstar = _expanded(lists, k1, variant)
    v = _encoding(feats, rstar, lists, scale, k2, released)
    out = _combined_distances(q, g, v, scale, lambda_value, query_chunk)
    log.debug("rerank (%s): nq=%d ng=%d k1=%d k2=%d, |R*| %.1f per sample", variant, nq, ng, k1, k2, rstar.nnz / n)
    return out


def _encoding(feats: np.ndarray, rstar: sp.csr_matrix, lists: np.ndarray, scale: np.ndarray, k2: int,
              released: bool) -> sp.csr_matrix:
    """V (n, n): V[p, j] = exp(-d'(p, j)) on R*(p, k1) (eq. 7), row-normalised in the released form, then
    averaged over the k2 nearest neighbours of p, p included (local query expansion, eq. 12)."""
    n = len(feats)
    coo = rstar.tocoo()
    w = np.exp(-_pair_sqdist(feats, coo.row, coo.col) * scale[coo.row])
    if released:
        w /= np.bincount(coo.row, weights=w, minlength=n)[coo.row]
    v = sp.csr_matrix((w, (coo.row, coo.col)), shape=(n, n))
    if k2 > 1:
        qe_rows = np.repeat(np.arange(n), k2)
        qe = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (qe_rows, lists[:, :k2].ravel())), shape=(n, n))
        v = (qe @ v).tocsr()
    return v


def _combined_distances(q: np.ndarray, g: np.ndarray, v: sp.csr_matrix, scale: np.ndarray, lambda_value: float,
                        query_chunk: int) -> np.ndarray:
    """(nq, ng) float32: (1 - λ) · Jaccard distance of the V rows + λ · d'(q, g), by chunks of queries.

    Jaccard(p, g) = 1 - Σ_j min(V_pj, V_gj) / Σ_j max(V_pj, V_gj), with Σ max = ΣV_p + ΣV_g - Σ min, summed
    only over the columns j where both are non-zero (the sparse triples (p, j, g))."""
    nq, ng = len(q), len(g)
    vq = v[:nq].tocsr()
    vg = v[nq:].tocsc()  # columns: union index j; rows: gallery
    sum_q = np.asarray(vq.sum(axis=1)).ravel()
    sum_g = np.asarray(vg.sum(axis=1)).ravel()
    col_len = np.diff(vg.indptr)
    # (query, column, gallery) triples per query; chunks are cut so that each holds a bounded number
    triples = np.bincount(vq.tocoo().row, weights=col_len[vq.indices], minlength=nq)
    cum = np.concatenate([[0.0], np.cumsum(triples)])
    g64 = g.astype(np.float64)
    torch = _torch()
    out = np.empty((nq, ng), np.float32)
    s = 0
    while s < nq:
        e = int(np.searchsorted(cum, cum[s] + _JACCARD_ENTRIES, side="right")) - 1
        e = min(nq, s + query_chunk, max(e, s + 1))
        part = vq[s:e].tocoo()
        lens = col_len[part.col]
        total = int(lens.sum())
        # every (query p, union column j, gallery g) with V_pj > 0 and V_gj > 0
        offs = np.repeat(vg.indptr[part.col] - np.cumsum(lens) + lens, lens) + np.arange(total)
        mins = np.minimum(np.repeat(part.data, lens), vg.data[offs])
        smin = np.bincount(np.repeat(part.row, lens) * ng + vg.indices[offs], weights=mins, minlength=(e - s) * ng)
        del offs, mins
        smin = smin.reshape(e - s, ng)
        smax = sum_q[s:e, None] + sum_g[None, :] - smin  # min + max = a + b for every coordinate
        d_jac = 1.0 - smin / smax
        q64 = q[s:e].astype(np.float64)
        dots = (torch.from_numpy(q64) @ torch.from_numpy(g64).T).numpy() if torch else q64 @ g64.T
        d_orig = np.maximum(2.0 - 2.0 * dots, 0.0)
        d_orig *= scale[s:e, None]
        final = (1.0 - lambda_value) * d_jac + lambda_value * d_orig
        out[s:e] = snap_to_tie_grid(final)  # float64 noise removed before float32 (metrics' tie rule)
        s = e
    return out
