"""Neighbor Feature Centralization (NFC) — Pose2ID Algorithm 1, eqs. 26-28 (supplementary Sec. 6.4).

For features z_1..z_N (rows as given) with Euclidean distances d_ij, self excluded (d_ii = C):

* eq. 26  N_i = TopK_k1({d_ij}_j)                       — the k1 nearest neighbours of z_i
* eq. 27  M_i = {j in N_i : i in N_j^{k2}}              — mutual neighbours (i among j's k2 nearest)
* eq. 28  z_i^c = z_i + sum_{j in M_i} z_j               — centralization; we return it L2-normalised.

Exact ranking rule: neighbours are ordered by (distance, index), so ties go to the lower index and the
result is deterministic.  ``k1``/``k2`` larger than N-1 are clamped to N-1; ``k1 == 0`` or ``k2 == 0``
returns the normalised input.

Official code (``NFC.py`` in github.com/yuanc3/Pose2ID): j is taken as mutual when i is among the first
k2 entries *of j's top-k1 list*, so there k2 > k1 behaves like k2 = k1.  We follow the paper's eq. 27; the
official behaviour is ``nfc(z, k1, min(k1, k2))``.  Its TransReID evaluation copy normalises features
before and after and applies NFC to the query and gallery sets separately — :func:`nfc_sets` with
``mode="separate"`` (the setting of the published numbers); ``mode="joint"`` searches neighbours in
query + gallery together (Fig. 9 "combined").

Scale: distances are computed block by block (a GEMM of a row block against all rows), and the k nearest
of each row are selected without sorting the row: the row is cut into chunks, the K-th smallest chunk
minimum bounds the K-th smallest value from above, and only chunks whose minimum is below that bound are
looked at.  The full N x N matrix never exists; see ``bench/bench_nfc.py`` for time and peak memory at
Market-1501 scale (N = 19,281, d = 768).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import scipy.sparse as sp

from .centralize import l2_normalize

__all__ = ["mutual_mask", "nfc", "nfc_sets", "topk_neighbors"]

log = logging.getLogger(__name__)

_PAD = np.float32(1e30)  # score of padding columns: larger than any real score (features are rescaled to norm <= 1)


def _as_features(feats: np.ndarray, name: str = "feats") -> np.ndarray:
    x = np.asarray(feats)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, d), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _chunk_size(n: int, k: int) -> int:
    """Columns per chunk for the chunk-minimum pre-selection: up to 128, and at least ~4k chunks per row."""
    c = 128
    while c > 1 and n < 4 * k * c:
        c //= 2
    return c


def topk_neighbors(feats: np.ndarray, k: int, block: int = 1024, return_dist: bool = False, workers: int | None = None):
    """The k nearest other rows of every row, by Euclidean distance, ordered by (distance, index).

    Never materialises the N x N distance matrix: rows are processed in blocks of ``block``.

    Args:
        feats: (N, d) features, compared as given (not normalised).
        k: neighbours per row; clamped to N - 1.
        block: rows per GEMM block (memory ~ block * N * 4 bytes).
        return_dist: also return the squared Euclidean distances (float32, computed in float32).
        workers: row blocks processed concurrently by threads, so one block's (single-threaded) selection
            overlaps another's GEMM.  Default 1 (serial): on the 2-core machine the benchmark was run on, 2
            was ~10% slower; it may pay off on many cores.  Memory grows by ``block * N * 4`` bytes per worker.

    Returns:
        ``idx`` (N, k') int64 with k' = min(k, N - 1), self excluded; with ``return_dist``, ``(idx, d2)``.
    """
    x = _as_features(feats)
    n, d = x.shape
    k = int(max(0, min(int(k), n - 1)))
    if k == 0:
        idx = np.zeros((n, 0), np.int64)
        return (idx, np.zeros((n, 0), np.float32)) if return_dist else idx
    # Euclidean ranking is invariant to a global scale: rescale by a power of two (exact) so norms <= 1.
    max_norm = float(np.sqrt((x.astype(np.float64) ** 2).sum(1).max()))
    if max_norm > 0:
        x = x * np.float32(2.0 ** -np.ceil(np.log2(max_norm)))
    sq = np.einsum("ij,ij->i", x, x)
    c = _chunk_size(n, k)
    n_pad = -(-n // c) * c
    n_chunks = n_pad // c
    # Augmented GEMM: [-2 x_i, 1] . [x_j, |x_j|^2] = |x_j|^2 - 2 x_i.x_j = d_ij^2 - |x_i|^2 (same order in row i).
    keys = np.zeros((n_pad, d + 1), np.float32)
    keys[:n, :d] = x
    keys[:n, d] = sq
    keys[n:, d] = _PAD
    keys_t = keys.T
    block = int(max(1, block))
    out_idx = np.empty((n, k), np.int64)
    out_d = np.empty((n, k), np.float32) if return_dist else None
    ar_c = np.arange(c)
    local = threading.local()

    def run_block(s: int) -> None:
        e = min(n, s + block)
        b = e - s
        if not hasattr(local, "buf"):  # per-thread buffers
            local.buf = np.empty((min(block, n), n_pad), np.float32)
            local.qbuf = np.empty((min(block, n), d + 1), np.float32)
        q = local.qbuf[:b]
        np.multiply(x[s:e], np.float32(-2.0), out=q[:, :d])
        q[:, d] = 1.0
        score = local.buf[:b]
        np.matmul(q, keys_t, out=score)
        score[np.arange(b), np.arange(s, e)] = np.inf  # d_ii = C (Alg. 1 line 3)
        chunks = score.reshape(b, n_chunks, c)
        cmin = chunks.min(axis=2)
        if n_chunks > k:
            bound = np.partition(cmin, k - 1, axis=1)[:, k - 1]
        else:
            bound = cmin.max(axis=1)
        # every value <= bound lies in a chunk whose minimum is <= bound; there are >= k such values
        r, ch = np.nonzero(cmin <= bound[:, None])
        vals = chunks[r, ch]  # (P, c)
        keep = vals <= bound[r, None]
        rows = np.broadcast_to(r[:, None], vals.shape)[keep]
        cols = (ch[:, None] * c + ar_c)[keep]
        v = vals[keep]
        order = np.lexsort((cols, v, rows))
        rows, cols, v = rows[order], cols[order], v[order]
        starts = np.searchsorted(rows, np.arange(b))
        take = starts[:, None] + np.arange(k)
        out_idx[s:e] = cols[take]
        if return_dist:
            out_d[s:e] = np.maximum(v[take] + sq[s:e, None], 0.0)

    starts = range(0, n, block)
    workers = max(1, int(workers or 1))
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run_block, starts))
    else:
        for s in starts:
            run_block(s)
    if return_dist:
        # undo the power-of-two rescale
        scale = np.float32(2.0 ** np.ceil(np.log2(max_norm))) if max_norm > 0 else np.float32(1.0)
        return out_idx, out_d * (scale * scale)
    return out_idx


def mutual_mask(neighbors: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Eq. 27 on precomputed ordered neighbour lists: ``mask[i, m]`` is True iff ``j = neighbors[i, m]``
    (m < k1) has i among its first k2 neighbours.

    Args:
        neighbors: (N, K) int, row i = neighbours of i ordered nearest first, K >= max(k1, k2).
        k1, k2: as in Algorithm 1 (already clamped to K).

    Returns:
        (N, k1) bool.
    """
    n = neighbors.shape[0]
    if k1 == 0 or k2 == 0 or n == 0:
        return np.zeros((n, k1), bool)
    nk1 = neighbors[:, :k1]
    back = neighbors[:, :k2][nk1]  # (N, k1, k2): the k2 nearest of each of i's k1 nearest
    return (back == np.arange(n)[:, None, None]).any(axis=2)


def nfc(feats: np.ndarray, k1: int, k2: int, block: int = 1024) -> np.ndarray:
    """Neighbor Feature Centralization, Algorithm 1 (eqs. 26-28), L2-normalised output.

    Args:
        feats: (N, d) features z_i; distances are Euclidean between the rows *as given*.
        k1: size of each row's neighbour list N_i (eq. 26); clamped to N - 1.
        k2: the reciprocity depth of eq. 27 (i must be among j's k2 nearest); clamped to N - 1.
        block: rows per distance block (peak memory ~ block * N * 4 bytes plus a few (N, d) arrays).

    Returns:
        (N, d) float32: ``normalize(z_i + sum_{j in M_i} z_j)``.  With ``k1 == 0`` or ``k2 == 0`` (or
        N <= 1) the normalised input.
    """
    z = _as_features(feats)
    n = z.shape[0]
    k1 = int(max(0, min(int(k1), n - 1)))
    k2 = int(max(0, min(int(k2), n - 1)))
    if k1 == 0 or k2 == 0:
        return l2_normalize(z)
    nbr = topk_neighbors(z, max(k1, k2), block=block)
    mask = mutual_mask(nbr, k1, k2)
    rows, pos = np.nonzero(mask)
    cols = nbr[rows, pos]
    adj = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, n))
    log.debug("NFC: N=%d k1=%d k2=%d, %.2f mutual neighbours per row", n, k1, k2, rows.size / max(n, 1))
    return l2_normalize(z + adj @ z)


def nfc_sets(
    q: np.ndarray,
    g: np.ndarray,
    k1: int,
    k2: int,
    mode: Literal["separate", "joint"] = "separate",
    apply_to: Literal["query", "gallery", "both"] = "both",
    block: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """NFC on a query and a gallery set (paper Tables 2-4, Fig. 9).

    Args:
        q: (nq, d) query features.  g: (ng, d) gallery features.
        k1, k2: NFC parameters (Algorithm 1).
        mode: ``"separate"`` — neighbours are searched within the set being centralized (query among
            queries, gallery among gallery; the official TransReID evaluation and the published numbers);
            ``"joint"`` — neighbours are searched in query + gallery together, and the centralized rows of
            the requested set(s) are returned.
        apply_to: which set(s) are centralized ("Query^NFC" / "Gallery^NFC" columns of Table 3); the other
            set is returned L2-normalised but otherwise unchanged.
        block: see :func:`nfc`.

    Returns:
        ``(q', g')`` float32, rows L2-normalised.
    """
    if mode not in ("separate", "joint"):
        raise ValueError(f"mode must be 'separate' or 'joint', got {mode!r}")
    if apply_to not in ("query", "gallery", "both"):
        raise ValueError(f"apply_to must be 'query', 'gallery' or 'both', got {apply_to!r}")
    q = _as_features(q, "q")
    g = _as_features(g, "g")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery dimensions differ: {q.shape[1]} vs {g.shape[1]}")
    do_q = apply_to in ("query", "both")
    do_g = apply_to in ("gallery", "both")
    if mode == "separate":
        q_out = nfc(q, k1, k2, block=block) if do_q else l2_normalize(q)
        g_out = nfc(g, k1, k2, block=block) if do_g else l2_normalize(g)
        return q_out, g_out
    both = nfc(np.concatenate([q, g]), k1, k2, block=block)
    nq = q.shape[0]
    q_out = both[:nq] if do_q else l2_normalize(q)
    g_out = both[nq:] if do_g else l2_normalize(g)
    return q_out, g_out
