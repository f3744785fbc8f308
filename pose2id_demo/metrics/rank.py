"""Market-1501 retrieval protocol: CMC, mAP and mINP over a query x gallery distance matrix.

Protocol (as in torchreid / TransReID / fast-reid): for each query, gallery items with the query's pid
*and* camera id are ignored (same-camera views are not a re-identification); the gallery is ranked by
ascending distance, ties broken by gallery index (a stable sort); queries without any valid match are
skipped.  AP is the mean precision at the ranks of the valid matches; INP = (#matches) / (rank of the
hardest match) (Ye et al., TPAMI 2021); CMC(k) = fraction of queries with a match in the top k.

One number per file. A float32 GEMM rounds differently with 1 or 2 BLAS threads, and feature centralization
makes exact ties common (after NFC two mutual neighbours with no other mutual neighbour have the same feature,
z_i + z_j). So a tie would be broken by rounding noise, and the same file would give other numbers in the app
(which pins one thread) and the CLI. :func:`distance_matrix` therefore makes its dot products exact: each
L2-normalised row u is rounded to integers r = rint(u * 2^26) (:data:`EXACT_SCALE`; a step of 1.5e-8, finer
than float32 features carry), and R_q @ R_g.T is one float64 GEMM on those integers. Every product is an
integer below 2^52 and every partial sum of a row pair is bounded by
|r_q| |r_g| <= (2^26 + sqrt(d) / 2)^2 < 2^53 (Cauchy-Schwarz, for any d below 10^15), so every addition is
exact and the result is the same integer whatever order the BLAS sums in — any thread count, any BLAS. The
squared distance (|r_q|^2 + |r_g|^2 - 2 r_q.r_g) / 2^52 (the norms are exact sums too) and its square root
are element-wise IEEE operations, equally reproducible. Equal distances then rank by gallery index (the
stable sort). It is the distance between the rounded unit vectors, each within sqrt(d) / 2^27 of its own, so
it is within sqrt(d) / 2^26 (4e-7 at d = 768) of the unrounded features' distance, and 0 for equal rows.
``tests/test_determinism.py`` runs a file with 1 and 2 threads through the library, the CLI and the app's
engine and compares every cell; the cost at Market-1501 size is printed by ``bench/bench_evaluate.py``.
Re-ranking rounds its float64 result to :data:`TIE_GRID` instead (:mod:`pose2id_demo.centralization.rerank`),
and :func:`evaluate_features`, for 10^5-10^6 images, stays in float32 (see there).

:func:`evaluate` is vectorised over row chunks: for each query it finds the ranking positions of the
gallery items with the query's pid — either by sorting the row once, or (cheaper when identities have few
gallery images, as in Market-1501) by counting the items ranked before each of them — and computes
AP/INP/CMC from those positions alone.  It agrees with the straightforward per-query
loop (:func:`evaluate_loop`, kept as the reference) to 1e-9 — see ``tests/test_metrics.py`` and
``bench/bench_evaluate.py``.

:func:`evaluate_features` is the same protocol from the features themselves, for galleries too large for
a (num_query, num_gallery) matrix (MSMT17, Market-1501 + 10^6 distractors): the distances of one query
chunk at a time are a GEMM (torch when available), the positives' ranks are counted in that chunk, and
the chunk is dropped — memory ~ chunk * num_gallery * 4 bytes (``bench/bench_scale.py``).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from pose2id_demo import lazy

__all__ = ["EXACT_SCALE", "TIE_GRID", "distance_matrix", "evaluate", "evaluate_features", "evaluate_loop",
           "per_query_ap", "ranked_lists", "snap_to_tie_grid"]

log = logging.getLogger(__name__)

_COUNT_MAX_ITEMS = 32  # "auto": count when a chunk's queries have at most this many same-pid items on average


#: Re-ranking's float64 distances are rounded to this grid before float32: 2^-32, exact in float64.
TIE_GRID = 2.0**-32

#: :func:`distance_matrix` rounds unit rows to multiples of 1 / EXACT_SCALE so that its GEMM is exact.
EXACT_SCALE = 2.0**26


def snap_to_tie_grid(sq: np.ndarray) -> np.ndarray:
    """Round float64 values, in place, to the nearest multiple of :data:`TIE_GRID`: differences of float64
    rounding noise (~1e-15) vanish unless a value lies within that noise of a half step."""
    sq *= 1.0 / TIE_GRID
    np.rint(sq, out=sq)
    sq *= TIE_GRID
    return sq


def _unit_rows(x: np.ndarray, dtype) -> np.ndarray:
    x = x.astype(dtype, copy=True)
    x /= np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x))[:, None], 1e-12)
    return x


def _integer_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows scaled by :data:`EXACT_SCALE` and rounded to integers (held in float64)."""
    r = _unit_rows(x, np.float64)
    r *= EXACT_SCALE
    return np.rint(r, out=r)


def distance_matrix(q: np.ndarray, g: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Euclidean distance between the L2-normalised rows of ``q`` (nq, d) and ``g`` (ng, d).

    ``||q/|q| - g/|g| || = sqrt(2 - 2 cos)``, with one GEMM.  In float64 (the default, what every metric
    uses) the GEMM multiplies the rows rounded to integers (:data:`EXACT_SCALE`), so its sums are exact and
    the result — and any ranking by it — is bit for bit the same whatever the BLAS and its thread count (the
    module docstring has the bound); the distance is within sqrt(d) / 2^26 of the unrounded features'.
    ``dtype=np.float32`` is the older, faster form: half the memory, but near-ties then depend on the
    BLAS's rounding, and the distance of near-identical rows is only accurate to ~1e-3 (square root).

    Returns:
        (nq, ng) array of ``dtype`` (values in [0, 2]).
    """
    q = np.asarray(q)
    g = np.asarray(g)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"q and g must be (nq, d) and (ng, d), got {q.shape} and {g.shape}")
    if np.dtype(dtype) == np.float64:
        rq, rg = _integer_rows(q), _integer_rows(g)
        sim = rq @ rg.T  # exact: integers, every partial sum below 2^53
        sim *= -2.0
        sim += np.einsum("ij,ij->i", rq, rq)[:, None]  # |r|^2, exact as well
        sim += np.einsum("ij,ij->i", rg, rg)[None, :]
        sim *= 1.0 / (EXACT_SCALE * EXACT_SCALE)  # |r_q - r_g|^2 / S^2: 0 for equal rows
    else:
        sim = _unit_rows(q, dtype) @ _unit_rows(g, dtype).T
        np.multiply(sim, -2.0, out=sim)
        sim += 2.0
    np.maximum(sim, 0.0, out=sim)
    return np.sqrt(sim, out=sim)


def _check(distmat, q_pids, g_pids, q_camids, g_camids):
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be (num_query, num_gallery), got shape {distmat.shape}")
    nq, ng = distmat.shape
    arrays = [np.asarray(a).ravel() for a in (q_pids, g_pids, q_camids, g_camids)]
    for name, a, n in zip(("q_pids", "g_pids", "q_camids", "g_camids"), arrays, (nq, ng, nq, ng)):
        if a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0]} entries, distmat needs {n}")
    if np.isnan(distmat).any():
        raise ValueError("distmat contains NaN")
    return (distmat, *arrays)


def _matches_per_query(q_pids: np.ndarray, g_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same-pid gallery items per query, and the queries ordered by that count (descending, stable): row
    chunks of similar counts, as :func:`_evaluate_rows` takes them."""
    uniq, counts = np.unique(g_pids, return_counts=True)
    if uniq.size == 0:
        m = np.zeros(len(q_pids), np.int64)
    else:
        at = np.minimum(np.searchsorted(uniq, q_pids), uniq.size - 1)
        m = np.where(uniq[at] == q_pids, counts[at], 0)
    return m, np.argsort(-m, kind="stable")


def _summary_of_parts(parts: list, max_rank: int, nq: int, caller: str) -> dict:
    """Join per-chunk (AP, INP, first-correct rank) arrays into the summary; refuse when no query counts."""
    aps, inps, firsts, _ = zip(*parts)
    ap = np.concatenate(aps)
    if ap.size == 0:
        raise ValueError("no query has a valid gallery match (same pid in another camera)")
    if ap.size < nq:
        log.info("%s: %d of %d queries have no valid gallery match and were skipped", caller, nq - ap.size, nq)
    return _summary(ap, np.concatenate(inps), np.concatenate(firsts), max_rank, nq)


def _summary(ap: np.ndarray, inp: np.ndarray, first: np.ndarray, max_rank: int, num_q: int) -> dict:
    cmc = (first[:, None] < np.arange(max_rank)[None, :] + 1).mean(axis=0)

    def rank(k: int) -> float:
        return float(cmc[min(k, max_rank) - 1])

    return {
        "mAP": float(ap.mean()),
        "mINP": float(inp.mean()),
        "cmc": cmc,
        "Rank-1": rank(1),
        "Rank-5": rank(5),
        "Rank-10": rank(10),
        "num_valid_queries": int(ap.size),
        "num_queries": int(num_q),
    }


def _positions_sort(d: np.ndarray, same_pid: np.ndarray):
    """(row, position) of every same-pid gallery item in each row's stable ranking — by sorting the rows."""
    order = np.argsort(d, axis=1, kind="stable")
    r, pos = np.nonzero(np.take_along_axis(same_pid, order, axis=1))
    return r, pos, order[r, pos]


def _positions_count(d: np.ndarray, same_pid: np.ndarray, m: np.ndarray):
    """Same as :func:`_positions_sort` without sorting: the position of item c in row r is
    #{j : d_rj < d_rc} + #{j < c : d_rj == d_rc}, counted with one comparison pass over the row per
    same-pid item.  Rows must come sorted by ``m`` (same-pid items per row) in descending order."""
    b, ng = d.shape
    r, c = np.nonzero(same_pid)
    thr = d[r, c]
    row_start = np.searchsorted(r, np.arange(b))
    slot = np.arange(r.size) - row_start[r]
    m_max = int(m.max(initial=0))
    table = np.zeros((b, m_max), thr.dtype)
    table[r, slot] = thr
    lt = np.zeros((b, m_max), np.int64)
    le = np.zeros((b, m_max), np.int64)
    for j in range(m_max):
        act = int(np.count_nonzero(m > j))  # rows with a j-th item: a prefix, as rows are sorted by m
        t = table[:act, j : j + 1]
        lt[:act, j] = np.count_nonzero(d[:act] < t, axis=1)
        le[:act, j] = np.count_nonzero(d[:act] <= t, axis=1)
    pos = lt[r, slot]
    tied = np.flatnonzero(le[r, slot] - pos > 1)  # other items at exactly the same distance
    cols = np.arange(ng)
    for s in range(0, tied.size, 256):
        t_idx = tied[s : s + 256]
        rr, cc = r[t_idx], c[t_idx]
        pos[t_idx] += np.count_nonzero((d[rr] == thr[t_idx, None]) & (cols < cc[:, None]), axis=1)
    order = np.lexsort((pos, r))
    return r[order], pos[order], c[order]


def _evaluate_rows(distmat, q_pids, g_pids, q_camids, g_camids, rows: np.ndarray, m: np.ndarray, use_count: bool):
    """AP, INP and first-match rank (0-based) of the queries ``rows`` that have a valid match (vectorised),
    and the positions within ``rows`` of those queries."""
    ng = distmat.shape[1]
    d = distmat[rows]
    same_pid = g_pids[None, :] == q_pids[rows, None]
    r, pos, gal = _positions_count(d, same_pid, m) if use_count else _positions_sort(d, same_pid)
    # entries are sorted by (row, position); junk = same pid and same camera (ignored by the protocol)
    junk = g_camids[gal] == q_camids[rows[r]]
    match = ~junk
    b = rows.size
    row_start = np.searchsorted(r, np.arange(b))
    cj = np.cumsum(junk)
    cj_before_row = np.concatenate([[0], cj])[row_start]
    cm = np.cumsum(match)
    cm_before_row = np.concatenate([[0], cm])[row_start]
    rm = r[match]
    rank = pos[match] - (cj[match] - cj_before_row[rm])  # 0-based rank among valid items
    hits = cm[match] - cm_before_row[rm]  # 1-based: how many matches up to and including this one
    num_rel = np.bincount(rm, minlength=b)
    valid = num_rel > 0
    ap_sum = np.bincount(rm, weights=hits / (rank + 1.0), minlength=b)
    last = np.full(b, -1)
    np.maximum.at(last, rm, rank)
    first = np.full(b, ng)
    np.minimum.at(first, rm, rank)
    return ap_sum[valid] / num_rel[valid], num_rel[valid] / (last[valid] + 1.0), first[valid], np.flatnonzero(valid)


def evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    chunk: int = 64,
    workers: int | None = None,
    method: Literal["auto", "sort", "count"] = "auto",
) -> dict:
    """Market-1501 evaluation (vectorised).

    Args:
        distmat (numpy.ndarray): distances of shape (num_query, num_gallery); lower = more similar.
        q_pids, g_pids (numpy.ndarray): identity labels, shapes (num_query,), (num_gallery,).
        q_camids, g_camids (numpy.ndarray): camera ids, same shapes.
        max_rank (int): length of the CMC curve (clamped to num_gallery).
        chunk (int): query rows handled at once (memory ~ chunk * num_gallery * 10 bytes per worker).
        workers (int | None): threads working on row chunks in parallel (default: the CPU count, at most
            8); 1 = serial.
        method (str): how each row's ranking positions of the query's identity are found: ``"sort"``
            sorts the row (stable); ``"count"`` counts, for each same-pid item, the items ranked before it
            (one comparison pass per item — much cheaper when identities have few gallery images);
            ``"auto"`` picks ``"count"`` for chunks averaging <= 32 same-pid items per query.  All give
            identical results.

    Returns:
        dict with ``mAP``, ``mINP``, ``Rank-1``, ``Rank-5``, ``Rank-10`` (fractions in [0, 1]), ``cmc``
        (float array of length max_rank, ``cmc[0]`` = Rank-1), ``num_valid_queries`` (queries that had at
        least one valid match and were evaluated) and ``num_queries``.  Rank-k for k > max_rank reads the
        last CMC entry.

    Raises:
        ValueError: on inconsistent shapes, NaN distances, or when no query has a valid match.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check(distmat, q_pids, g_pids, q_camids, g_camids)
    nq, ng = distmat.shape
    max_rank = int(min(max_rank, ng))
    if max_rank < 1:
        raise ValueError("the gallery is empty")
    if method not in ("auto", "sort", "count"):
        raise ValueError(f"method must be 'auto', 'sort' or 'count', got {method!r}")
    m, by_m = _matches_per_query(q_pids, g_pids)
    tasks = []
    for s in range(0, nq, chunk):
        rows = by_m[s : s + chunk]
        use_count = method == "count" or (method == "auto" and m[rows].mean() <= _COUNT_MAX_ITEMS)
        tasks.append((rows, m[rows], use_count))

    def run(task):
        return _evaluate_rows(distmat, q_pids, g_pids, q_camids, g_camids, *task)

    workers = max(1, min(int(workers) if workers else min(8, os.cpu_count() or 1), len(tasks)))
    if workers > 1:  # sorting and comparisons release the GIL, so row chunks run in parallel
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run, tasks))
    else:
        parts = [run(t) for t in tasks]
    return _summary_of_parts(parts, max_rank, nq, "evaluate")


def per_query_ap(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    chunk: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's AP and first-correct rank under :func:`evaluate`'s protocol, in one pass.

    Returns:
        ``(ap, first)``: ``ap`` (num_query,) float in [0, 1], NaN for a query without a valid match;
        ``first`` (num_query,) int, the 1-based rank of the first valid match, 0 without one.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check(distmat, q_pids, g_pids, q_camids, g_camids)
    nq = distmat.shape[0]
    m, by_m = _matches_per_query(q_pids, g_pids)
    ap, first = np.full(nq, np.nan), np.zeros(nq, np.int64)
    for s in range(0, nq, chunk):
        rows = by_m[s : s + chunk]
        use_count = m[rows].mean() <= _COUNT_MAX_ITEMS
        a, _, f, ok = _evaluate_rows(distmat, q_pids, g_pids, q_camids, g_camids, rows, m[rows], use_count)
        ap[rows[ok]], first[rows[ok]] = a, f + 1
    return ap, first


def ranked_lists(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    top: int = 10,
    chunk: int = 256,
) -> dict[str, np.ndarray]:
    """Each query's top-``top`` gallery list under :func:`evaluate`'s protocol, with its AP.

    The list is the ranking :func:`evaluate` scores: ascending distance, ties by gallery index, gallery
    items with the query's pid *and* camera left out.

    Args:
        distmat (numpy.ndarray): (num_query, num_gallery) distances.
        q_pids, g_pids, q_camids, g_camids (numpy.ndarray): labels, as for :func:`evaluate`.
        top (int): list length (clamped to num_gallery).
        chunk (int): query rows sorted at once.

    Returns:
        dict of arrays: ``index`` (num_query, top) gallery indices, -1 past the end of a short list;
        ``distance`` (num_query, top) float64, NaN past the end; ``match`` (num_query, top) bool (same pid);
        ``ap`` (num_query,) in [0, 1], NaN for a query without a valid match; ``first`` (num_query,) 1-based
        rank of the first valid match, 0 without one.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check(distmat, q_pids, g_pids, q_camids, g_camids)
    nq, ng = distmat.shape
    top = int(max(0, min(int(top), ng)))
    index = np.full((nq, top), -1, np.int64)
    dist = np.full((nq, top), np.nan)
    for s in range(0, nq, chunk):
        d = distmat[s:s + chunk].astype(np.float64)
        ignored = (g_pids[None, :] == q_pids[s:s + chunk, None]) & (g_camids[None, :] == q_camids[s:s + chunk, None])
        d[ignored] = np.inf
        order = np.argsort(d, axis=1, kind="stable")[:, :top]
        od = np.take_along_axis(d, order, axis=1)
        ok = np.isfinite(od)
        index[s:s + chunk] = np.where(ok, order, -1)
        dist[s:s + chunk] = np.where(ok, od, np.nan)
    match = (index >= 0) & (g_pids[np.maximum(index, 0)] == q_pids[:, None])
    ap, first = per_query_ap(distmat, q_pids, g_pids, q_camids, g_camids)
    return {"index": index, "distance": dist, "match": match, "ap": ap, "first": first}


def evaluate_loop(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> dict:
    """The straightforward per-query implementation of the same protocol (reference for tests/bench)."""
    distmat, q_pids, g_pids, q_camids, g_camids = _check(distmat, q_pids, g_pids, q_camids, g_camids)
    nq, ng = distmat.shape
    max_rank = int(min(max_rank, ng))
    if max_rank < 1:
        raise ValueError("the gallery is empty")
    aps, inps, firsts = [], [], []
    for i in range(nq):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order] == q_pids[i])[keep].astype(np.int64)
        if not matches.any():
            continue
        cum = matches.cumsum()
        pos = np.flatnonzero(matches)
        firsts.append(pos[0])
        inps.append(cum[pos[-1]] / (pos[-1] + 1.0))
        precision = cum / (np.arange(matches.size) + 1.0)
        aps.append((precision * matches).sum() / matches.sum())
    if not aps:
        raise ValueError("no query has a valid gallery match (same pid in another camera)")
    return _summary(np.array(aps), np.array(inps), np.array(firsts), max_rank, nq)


def evaluate_features(
    q_feats: np.ndarray,
    g_feats: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    chunk_bytes: int = 1 << 27,
    progress: bool = False,
) -> dict:
    """Market-1501 evaluation of Euclidean distances between L2-normalised features, without the full matrix.

    Ranks by the squared distance 2 - 2 cos (the order of :func:`distance_matrix`'s Euclidean distance),
    ties by gallery index, and counts for each query the items ranked before each of its positives — the
    (num_query, num_gallery) matrix never exists.  This is the path for galleries of 10^5 to 10^6 images
    (``bench/bench_scale.py``), and it stays in float32 there: a float64 copy of a 10^6-image gallery would
    double its 2.9 GiB.  So its dot products are not exact — near-ties follow the float32 GEMM's
    rounding (torch's, which gave the same neighbours with 1 and 2 threads here, but promises nothing).  The
    app, the CLI and the paper-table bench rank with :func:`distance_matrix` and :func:`evaluate`.

    Args:
        q_feats (numpy.ndarray): (num_query, d) features (any scale).  g_feats: (num_gallery, d).
        q_pids, g_pids, q_camids, g_camids (numpy.ndarray): labels, as for :func:`evaluate`.
        max_rank (int): length of the CMC curve (clamped to num_gallery).
        chunk_bytes (int): size of one query chunk's distance block (default 128 MiB; a few such blocks
            are alive at once).
        progress (bool): tqdm progress bar over the query chunks.

    Returns:
        the dict of :func:`evaluate`.
    """
    q = np.asarray(q_feats, dtype=np.float32)
    g = np.asarray(g_feats, dtype=np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"q_feats and g_feats must be (nq, d) and (ng, d), got {q.shape} and {g.shape}")
    nq, ng = q.shape[0], g.shape[0]
    arrays = [np.asarray(a).ravel() for a in (q_pids, g_pids, q_camids, g_camids)]
    for name, a, n in zip(("q_pids", "g_pids", "q_camids", "g_camids"), arrays, (nq, ng, nq, ng)):
        if a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0]} entries, the features need {n}")
    if not (np.isfinite(q).all() and np.isfinite(g).all()):
        raise ValueError("features contain NaN or inf")
    q_pids, g_pids, q_camids, g_camids = arrays
    max_rank = int(min(max_rank, ng))
    if max_rank < 1:
        raise ValueError("the gallery is empty")
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    inv_g = (1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", g, g)), 1e-12)).astype(np.float32)
    m, by_m = _matches_per_query(q_pids, g_pids)
    b = int(max(1, min(nq, chunk_bytes // (4 * ng))))
    torch = lazy.optional("torch")
    if torch is not None:
        g_t, scale_t = torch.from_numpy(g), torch.from_numpy(inv_g * np.float32(-2.0))
    starts = range(0, nq, b)
    if progress:
        starts = tqdm(starts, desc="evaluate (query chunks)", unit="chunk")
    parts = []
    for s in starts:
        rows = by_m[s : s + b]
        if torch is not None:
            with torch.inference_mode():
                d_t = torch.mm(torch.from_numpy(qn[rows]), g_t.T)
                d_t.mul_(scale_t).add_(2.0)  # |q - g/|g||^2 = 2 - 2 cos
            d = d_t.numpy()
        else:
            d = qn[rows] @ g.T
            d *= inv_g * np.float32(-2.0)
            d += np.float32(2.0)
        local = np.arange(rows.size)
        use_count = m[rows].mean() <= _COUNT_MAX_ITEMS
        parts.append(_evaluate_rows(d, q_pids[rows], g_pids, q_camids[rows], g_camids, local, m[rows], use_count))
        del d
    return _summary_of_parts(parts, max_rank, nq, "evaluate_features")
