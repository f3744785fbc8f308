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

Scale: the full N x N matrix never exists.  Exact search walks the upper triangle of the distance matrix
in square tiles, one torch GEMM each (d_ij = d_ji, so half the work of one N x N GEMM), and every tile
serves its rows and, transposed, its columns; each row keeps a running top-k.  Within a tile the k
nearest are found without sorting: rows are cut into chunks, the K-th smallest chunk minimum bounds the
K-th smallest value from above, and only chunks whose minimum is below that bound are looked at.  Without
torch, row blocks are multiplied against all rows with numpy's GEMM.  ``index="faiss"`` takes neighbour
candidates from a faiss index (optional, for N >= 10^6) and re-ranks them exactly.  Time and peak memory
at Market-1501 scale (N = 19,281) are in ``bench/bench_nfc.py``, at MSMT17 and 10^6 in ``bench/bench_scale.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from pose2id_demo import lazy

from .centralize import l2_normalize

__all__ = ["centralize_neighbors", "mutual_mask", "nfc", "nfc_sets", "topk_neighbors"]

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


def _torch():
    """torch if it can be imported (it is a core requirement; the numpy path is a fallback), else None."""
    global _TORCH
    if _TORCH is None:
        _TORCH = lazy.optional("torch") or False
        if not _TORCH:  # pragma: no cover - torch is in requirements.txt
            log.warning("torch is not importable; NFC distances use numpy's GEMM (slower on some CPUs)")
    return _TORCH or None


_TORCH = None


def topk_neighbors(
    feats: np.ndarray,
    k: int,
    block: int = 2048,
    return_dist: bool = False,
    workers: int | None = None,
    return_max: bool = False,
    backend: Literal["auto", "torch", "numpy"] = "auto",
    index: Literal["exact", "faiss"] = "exact",
    faiss_index: str | None = None,
    nprobe: int | None = None,
    progress: bool = False,
):
    """The k nearest other rows of every row, by Euclidean distance, ordered by (distance, index).

    Never materialises the N x N distance matrix.  Exact search (``index="exact"``) with torch walks the
    upper triangle of the distance matrix in ``block`` x ``block`` tiles: each tile is one GEMM (half the
    work of ``X @ X.T``, as d_ij = d_ji) and serves both its rows and, transposed, its columns; every
    row keeps a running top-k, merged per tile under the exact (distance, index) rule.  Without torch
    (``backend="numpy"``) row blocks are multiplied against all rows with numpy's GEMM.

    Args:
        feats: (N, d) features, compared as given (not normalised).
        k: neighbours per row; clamped to N - 1.
        block: tile side (torch) or rows per block (numpy); memory ~ block^2 (torch) or block * N
            (numpy) float32.
        return_dist: also return the squared Euclidean distances (float32, computed in float32).
        return_max: also return each row's largest squared distance to any row (exact search only).
        workers: numpy path only: row blocks processed by concurrent threads (default 1).
        backend: ``"auto"`` (torch when importable), ``"torch"`` or ``"numpy"``; exact search only.
        index: ``"exact"`` or ``"faiss"`` (approximate candidates from a faiss index, re-ranked with exact
            float32 distances; needs ``faiss-cpu``, see ``requirements-scale.txt``; for N >= 10^6).
        faiss_index: faiss ``index_factory`` string; ``nprobe``: IVF lists searched (HNSW: search beam);
            defaults from :func:`faiss_default` (HNSW32, beam 128).
        progress: show a tqdm progress bar over the tiles (or search batches).

    Returns:
        ``idx`` (N, k') int64 with k' = min(k, N - 1), self excluded; with ``return_dist`` and/or
        ``return_max``, the tuple ``(idx, d2, row_max)`` without the ones not asked for.
    """
    x = _as_features(feats)
    n = x.shape[0]
    k = int(max(0, min(int(k), n - 1)))

    def result(idx, d2, rmax):
        out = (idx,) + ((d2,) if return_dist else ()) + ((rmax,) if return_max else ())
        return out if len(out) > 1 else idx

    if index == "faiss":
        if return_max:
            raise ValueError("return_max needs the exact search")
        if k == 0:
            return result(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), None)
        factory, probe = faiss_default()
        idx, d2 = _topk_faiss(x, k, faiss_index or factory, nprobe or probe, progress)
        return result(idx, d2, None)
    if index != "exact":
        raise ValueError(f"index must be 'exact' or 'faiss', got {index!r}")
    if backend not in ("auto", "torch", "numpy"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numpy', got {backend!r}")
    torch = _torch() if backend != "numpy" else None
    if k == 0:  # N <= 1 or k <= 0: no neighbours (the row maximum is still exact: a pass with k = 1)
        rmax = np.zeros(n, np.float32)
        if return_max and n > 1:
            rmax = topk_neighbors(x, 1, block=block, backend=backend, return_max=True)[1]
        return result(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), rmax)
    if torch is None:
        if backend == "torch":
            raise ValueError("backend='torch' but torch cannot be imported")
        return result(*_topk_numpy(x, k, block, workers, return_max))
    return result(*_topk_torch(torch, x, k, block, progress, return_max))


def _merge(best_v, best_i, rows, cols, vals, k):
    """Replace ``best_*[rows']`` by the k smallest (value, index) pairs of themselves and the candidates."""
    urows = np.unique(rows)
    kk = best_v.shape[1]
    all_r = np.concatenate([np.repeat(urows, kk), rows])
    all_c = np.concatenate([best_i[urows].ravel(), cols])
    all_v = np.concatenate([best_v[urows].ravel(), vals])
    order = np.lexsort((all_c, all_v, all_r))
    all_r, all_c, all_v = all_r[order], all_c[order], all_v[order]
    take = np.searchsorted(all_r, urows)[:, None] + np.arange(k)
    best_i[urows] = all_c[take]
    best_v[urows] = all_v[take]


def _tile_candidates(cmin: np.ndarray, gather, k: int):
    """Every value <= the k-th smallest chunk minimum of each row (so >= k values, ties included).

    ``cmin`` (R, n_chunks) chunk minima; ``gather(r, ch)`` returns the (P, c) values of those chunks.
    Returns (rows, positions in the row, values)."""
    r_n, n_ch = cmin.shape
    if n_ch > k:
        bound = np.partition(cmin, k - 1, axis=1)[:, k - 1]
    else:  # too few chunks: every value is a candidate
        bound = np.full(r_n, np.inf, np.float32)
    r, ch = np.nonzero(cmin <= bound[:, None])
    vals = gather(r, ch)
    c = vals.shape[1]
    keep = vals <= bound[r, None]
    return np.broadcast_to(r[:, None], vals.shape)[keep], (ch[:, None] * c + np.arange(c))[keep], vals[keep]


def _topk_torch(torch, x: np.ndarray, k: int, block: int, progress: bool, want_max: bool = False):
    n, d = x.shape
    # Euclidean ranking is invariant to a global scale: rescale by a power of two (exact) so norms <= ~1.
    max_norm = float(np.sqrt(np.einsum("ij,ij->i", x, x).max()))
    shift = -float(np.ceil(np.log2(max_norm))) if max_norm > 0 else 0.0
    c = min(32, _chunk_size(max(1, int(block)), k))  # small chunks: cheap gathers, also along columns
    tile = max(c, int(block) // c * c)
    n_pad = -(-n // c) * c
    tile = min(tile, n_pad)  # both multiples of c
    xs = np.zeros((n_pad, d), np.float32)
    np.multiply(x, np.float32(2.0**shift), out=xs[:n])
    sq = np.full(n_pad, _PAD, np.float32)  # padding rows/columns: distance ~1e30 to everything
    sq[:n] = np.einsum("ij,ij->i", xs[:n], xs[:n])
    xt, sqt = torch.from_numpy(xs), torch.from_numpy(sq)
    best_v = np.full((n_pad, k), np.inf, np.float32)
    best_i = np.full((n_pad, k), n_pad, np.int64)  # sentinel index: sorts after every real one
    rmax = np.zeros(n_pad, np.float32)  # largest squared distance of each row (over real columns)
    buf = torch.empty(tile * tile)
    starts = list(range(0, n_pad, tile))
    pairs = [(a, b) for ia, a in enumerate(starts) for b in starts[ia:]]
    bar = None
    if progress:
        bar = tqdm(total=len(pairs), desc="NFC distance tiles", unit="tile")
    with torch.inference_mode():
        for i0, j0 in pairs:
            i1, j1 = min(n_pad, i0 + tile), min(n_pad, j0 + tile)
            bi, bj = i1 - i0, j1 - j0
            s = buf[: bi * bj].view(bi, bj)
            # d_ij^2 = |x_i|^2 + |x_j|^2 - 2 x_i.x_j for the tile, one GEMM
            torch.addmm(sqt[None, j0:j1], xt[i0:i1], xt[j0:j1].T, alpha=-2.0, out=s)
            s.add_(sqt[i0:i1, None])
            sn = s.numpy()
            ri, rj = max(0, min(n, i1) - i0), max(0, min(n, j1) - j0)  # real (unpadded) rows / columns
            if want_max and ri and rj:
                np.maximum(rmax[i0 : i0 + ri], sn[:ri, :rj].max(axis=1), out=rmax[i0 : i0 + ri])
                np.maximum(rmax[j0 : j0 + rj], sn[:ri, :rj].max(axis=0), out=rmax[j0 : j0 + rj])
            if i0 == j0:
                s.diagonal().fill_(float("inf"))  # d_ii = C (Alg. 1 line 3)
            # selection in numpy on the tile's memory (single-threaded: cheaper than torch's small ops here)
            v3 = sn.reshape(bi, bj // c, c)
            r, col, val = _tile_candidates(v3.min(axis=2), lambda r, ch: v3[r, ch], k)
            _merge(best_v, best_i, r + i0, col + j0, val, k)
            if i0 != j0:  # the same tile, transposed, for the rows j (d_ji = d_ij)
                w3 = sn.reshape(bi // c, c, bj)
                r, col, val = _tile_candidates(w3.min(axis=1).T, lambda r, ch: w3[ch, :, r], k)
                _merge(best_v, best_i, r + j0, col + i0, val, k)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    unscale = np.float32(2.0 ** (-2 * shift))
    return best_i[:n], np.maximum(best_v[:n], 0.0) * unscale, np.maximum(rmax[:n], 0.0) * unscale


# faiss default: HNSW over exact vectors (bench/bench_scale.py --part faiss compares indexes against exact NFC)
def faiss_default() -> tuple[str, int]:
    """(index_factory string, search beam) used when none is given: HNSW32 searching with a beam of 128.

    It needs no training sample and keeps the float32 vectors (N x d x 4 bytes) beside a graph of 64 links
    per vector (the choice, from ``bench/bench_scale.py --part faiss``: ``docs/design-notes.md``)."""
    return "HNSW32", 128


_FAISS_CANDIDATES = 32  # approximate neighbours per row re-ranked with exact distances


def _faiss():
    try:
        faiss = lazy.load("faiss")
    except ImportError:
        raise ValueError(
            "index='faiss' needs the optional faiss-cpu package: pip install -r requirements-scale.txt"
        ) from None
    return faiss


def _topk_faiss(x: np.ndarray, k: int, factory: str, nprobe: int, progress: bool, batch: int = 16384):
    """k nearest others from faiss candidates, re-ranked by exact float32 distance with the (distance, index) rule.

    The index only proposes candidates (the ``_FAISS_CANDIDATES`` nearest by its own, approximate, distance);
    their distances to the row are recomputed exactly from ``x``, so with a compressed index (PQ) the
    features are not stored twice.  Rows left with fewer than k candidates are searched exactly."""
    faiss = _faiss()
    n, d = x.shape
    xc = np.ascontiguousarray(x)
    index = faiss.index_factory(d, factory, faiss.METRIC_L2)
    if not index.is_trained:  # IVF / PQ / PCA learn from a fixed sample (deterministic); HNSW and Flat need none
        n_train = min(n, max(50_000, 64 * _ivf_lists(factory)))
        sample = np.sort(np.random.default_rng(0).choice(n, n_train, replace=False)) if n_train < n else slice(None)
        index.train(np.ascontiguousarray(xc[sample]))
    for s in range(0, n, 1 << 17):
        index.add(xc[s : s + (1 << 17)])
    if hasattr(index, "nprobe") or "IVF" in factory:
        faiss.extract_index_ivf(index).nprobe = int(nprobe)
    if "HNSW" in factory:
        inner = faiss.downcast_index(index)
        if isinstance(inner, faiss.IndexPreTransform):  # e.g. "PCA64,HNSW32": the graph is the inner index
            inner = faiss.downcast_index(inner.index)
        inner.hnsw.efSearch = max(int(nprobe), 2 * _FAISS_CANDIDATES)
    kc = int(min(n, max(_FAISS_CANDIDATES, 2 * k + 1)))
    sq = np.einsum("ij,ij->i", xc, xc)
    best_i = np.empty((n, k), np.int64)
    best_v = np.empty((n, k), np.float32)
    short = []
    starts = range(0, n, batch)
    if progress:
        starts = tqdm(starts, desc="faiss search", unit="batch")
    for s in starts:
        e = min(n, s + batch)
        _, cand = index.search(xc[s:e], kc)
        rows = np.arange(s, e)
        bad = (cand < 0) | (cand == rows[:, None])
        cand = np.where(bad, 0, cand)
        # exact squared distances |x_i|^2 + |x_j|^2 - 2 x_i.x_j, in slices to bound the gathered rows
        dist = np.empty(cand.shape, np.float32)
        step = max(1, (1 << 22) // (kc * d))
        for a in range(0, e - s, step):
            b = min(e - s, a + step)
            dots = np.einsum("id,ijd->ij", xc[s + a : s + b], xc[cand[a:b]])
            dist[a:b] = sq[s + a : s + b, None] + sq[cand[a:b]] - 2.0 * dots
        dist[bad] = np.inf
        order = _row_lexsort(dist, cand)
        dist = np.take_along_axis(dist, order, 1)
        cand = np.take_along_axis(cand, order, 1)
        dup = np.zeros(cand.shape, bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]  # an id proposed twice counts once
        if dup.any():
            dist[dup] = np.inf
            order = _row_lexsort(dist, cand)
            dist = np.take_along_axis(dist, order, 1)
            cand = np.take_along_axis(cand, order, 1)
        best_i[s:e] = cand[:, :k]
        best_v[s:e] = dist[:, :k]
        short.extend((rows[~np.isfinite(dist[:, k - 1])]).tolist())
    if short:  # too few candidates from the index: exact search for those rows
        log.info("faiss: %d rows had fewer than %d candidates; searched exactly", len(short), k)
        short = np.asarray(short)
        for a in range(0, short.size, 256):
            r = short[a : a + 256]
            dd = sq[r, None] + sq[None, :] - 2.0 * (xc[r] @ xc.T)
            dd[np.arange(r.size), r] = np.inf
            o = _row_lexsort(dd, np.broadcast_to(np.arange(n), dd.shape))[:, :k]
            best_i[r] = o
            best_v[r] = np.take_along_axis(dd, o, 1)
    return best_i, np.maximum(best_v, 0.0)


def _row_lexsort(vals: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per-row argsort by (value, index)."""
    o = np.argsort(idx, axis=1, kind="stable")
    o2 = np.argsort(np.take_along_axis(vals, o, 1), axis=1, kind="stable")
    return np.take_along_axis(o, o2, 1)


def _ivf_lists(factory: str) -> int:
    for part in factory.split(","):
        if part.startswith("IVF"):
            digits = "".join(ch for ch in part[3:] if ch.isdigit())
            if digits:
                return int(digits)
    return 1

def _topk_numpy(x: np.ndarray, k: int, block: int, workers: int | None, want_max: bool = False):
    """Row blocks against all rows, numpy GEMM (the fallback when torch is not importable)."""
    n, d = x.shape
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
    out_d = np.empty((n, k), np.float32)
    out_max = np.zeros(n, np.float32)
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
        if want_max:
            out_max[s:e] = score[:, :n].max(axis=1) + sq[s:e]
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
        out_d[s:e] = np.maximum(v[take] + sq[s:e, None], 0.0)

    starts = range(0, n, block)
    workers = max(1, int(workers or 1))
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run_block, starts))
    else:
        for s in starts:
            run_block(s)
    # undo the power-of-two rescale
    scale2 = np.float32(2.0 ** np.ceil(np.log2(max_norm))) ** 2 if max_norm > 0 else np.float32(1.0)
    return out_idx, out_d * scale2, np.maximum(out_max, 0.0) * scale2


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


def nfc(
    feats: np.ndarray,
    k1: int,
    k2: int,
    block: int = 2048,
    index: Literal["exact", "faiss"] = "exact",
    backend: Literal["auto", "torch", "numpy"] = "auto",
    progress: bool = False,
    **search,
) -> np.ndarray:
    """Neighbor Feature Centralization, Algorithm 1 (eqs. 26-28), L2-normalised output.

    Args:
        feats: (N, d) features z_i; distances are Euclidean between the rows *as given*.
        k1: size of each row's neighbour list N_i (eq. 26); clamped to N - 1.
        k2: the reciprocity depth of eq. 27 (i must be among j's k2 nearest); clamped to N - 1.
        block: distance tile side (peak memory ~ block^2 * 4 bytes with torch, block * N * 4 with numpy,
            plus a few (N, d) arrays).
        index: ``"exact"`` (default) or ``"faiss"`` — approximate neighbour candidates for N >= 10^6
            (optional ``faiss-cpu``; keywords ``faiss_index``/``nprobe`` go to :func:`topk_neighbors`).
        backend: GEMM of the exact search: ``"auto"`` (torch, else numpy), ``"torch"``, ``"numpy"``.
        progress: tqdm progress bar over the distance tiles.

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
    nbr = topk_neighbors(z, max(k1, k2), block=block, index=index, backend=backend, progress=progress, **search)
    return centralize_neighbors(z, nbr, k1, k2)


def centralize_neighbors(feats: np.ndarray, nbr: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Eqs. 27-28 from precomputed ordered neighbour lists ``nbr`` (N, >= max(k1, k2)), L2-normalised output."""
    z = _as_features(feats)
    n = z.shape[0]
    mask = mutual_mask(nbr, k1, k2)
    rows, pos = np.nonzero(mask)
    cols = nbr[rows, pos]
    adj = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n, n))
    log.debug("NFC: N=%d k1=%d k2=%d, %.2f mutual neighbours per row", n, k1, k2, rows.size / max(n, 1))
    out = np.asarray(adj @ z, dtype=np.float32)  # one (N, d) array: sum, then normalise in place
    out += z
    out /= np.maximum(np.sqrt(np.einsum("ij,ij->i", out, out)), 1e-12)[:, None]
    return out


def _checked_sets(q: np.ndarray, g: np.ndarray, mode: str, apply_to: str) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """The query and gallery features as float32 arrays of one dimension, and which of them NFC acts on."""
    if mode not in ("separate", "joint"):
        raise ValueError(f"mode must be 'separate' or 'joint', got {mode!r}")
    if apply_to not in ("query", "gallery", "both"):
        raise ValueError(f"apply_to must be 'query', 'gallery' or 'both', got {apply_to!r}")
    q = _as_features(q, "q")
    g = _as_features(g, "g")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery dimensions differ: {q.shape[1]} vs {g.shape[1]}")
    return q, g, apply_to in ("query", "both"), apply_to in ("gallery", "both")


def nfc_sets(
    q: np.ndarray,
    g: np.ndarray,
    k1: int,
    k2: int,
    mode: Literal["separate", "joint"] = "separate",
    apply_to: Literal["query", "gallery", "both"] = "both",
    block: int = 2048,
    **options,
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
        block, options: passed to :func:`nfc` (``index="faiss"``, ``backend``, ``progress``, ...).

    Returns:
        ``(q', g')`` float32, rows L2-normalised.
    """
    q, g, do_q, do_g = _checked_sets(q, g, mode, apply_to)
    if mode == "separate":
        q_out = nfc(q, k1, k2, block=block, **options) if do_q else l2_normalize(q)
        g_out = nfc(g, k1, k2, block=block, **options) if do_g else l2_normalize(g)
        return q_out, g_out
    both = nfc(np.concatenate([q, g]), k1, k2, block=block, **options)
    nq = q.shape[0]
    q_out = both[:nq] if do_q else l2_normalize(q)
    g_out = both[nq:] if do_g else l2_normalize(g)
    return q_out, g_out


def nfc_sets_grid(
    q: np.ndarray,
    g: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    mode: Literal["separate", "joint"] = "separate",
    apply_to: Literal["query", "gallery", "both"] = "both",
    block: int = 2048,
    **options,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`nfc_sets` for each ``(k1, k2)`` of ``pairs``, in order, with each set's neighbour lists searched
    once, to the largest k (Fig. 9's grid). With the exact search the lists of a smaller k are the prefix of
    the longer ones (the (distance, index) order), so every pair's output equals :func:`nfc_sets`'s."""
    q, g, do_q, do_g = _checked_sets(q, g, mode, apply_to)
    pairs = [(int(a), int(b)) for a, b in pairs]
    kmax = max((max(a, b) for a, b in pairs), default=0)

    def lists(z: np.ndarray) -> np.ndarray | None:
        k = min(kmax, z.shape[0] - 1)
        return topk_neighbors(z, k, block=block, **options) if k > 0 else None

    def centre(z: np.ndarray, nbr: np.ndarray | None, k1: int, k2: int) -> np.ndarray:
        n = z.shape[0]
        k1, k2 = max(0, min(k1, n - 1)), max(0, min(k2, n - 1))
        if nbr is None or k1 == 0 or k2 == 0:
            return l2_normalize(z)
        return centralize_neighbors(z, nbr, k1, k2)

    if mode == "separate":
        nq_, ng_ = (lists(q) if do_q else None), (lists(g) if do_g else None)
        for k1, k2 in pairs:
            yield (centre(q, nq_, k1, k2) if do_q else l2_normalize(q),
                   centre(g, ng_, k1, k2) if do_g else l2_normalize(g))
        return
    both = np.concatenate([q, g])
    nb = lists(both)
    nq = q.shape[0]
    for k1, k2 in pairs:
        out = centre(both, nb, k1, k2)
        yield (out[:nq] if do_q else l2_normalize(q)), (out[nq:] if do_g else l2_normalize(g))

