"""The views of the ablation the app shows, as pure functions of a feature set and
:class:`~pose2id_demo.ablation.Settings`: the table, one query's ranked lists, every query's AP, every query's
ranked list, the distance distributions, the identities and the t-SNE.

A view takes a :class:`~pose2id_demo.featurefile.FeatureSet` (a :class:`~.features.BenchData` where it names
image paths), the settings (already checked) and optionally the ablation's cache (:class:`~.cache.ScopedCache`),
so that it recomputes only the rows its settings moved. A view that the benchmark session keeps has its key
beside it (``*_key``): the settings its result depends on. The numbers are :mod:`pose2id_demo.ablation`'s; the
views only shape them. The benchmark session (:mod:`.benchmark`) and a user's feature file
(:mod:`.user_features`) share the table and the distance distributions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pose2id_demo import ablation
from pose2id_demo.ablation import Cache, Settings
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import id2, id2_label
from pose2id_demo.visualize import tsne_2d

from .features import BenchData
from .scheduler import ProgressFn, noop_progress

__all__ = ["distributions", "distributions_key", "identities", "per_query", "per_query_key", "ranked_rows",
           "ranked_rows_key", "ranks", "table_notes", "table_rows", "table_summary", "top_list", "tsne", "tsne_key"]


def _paper(s: Settings) -> Settings:
    """The settings of a before/after view: its AP and ranks do not depend on the ID² variant."""
    return replace(s, id2_variant="paper")


def _features_only(s: Settings) -> Settings:
    """The settings of a view of the features themselves (Euclidean distances: no re-ranking, no ID²)."""
    return replace(s, rerank=False, id2_variant="paper")


# ----------------------------------------------------------------------------------------------- table
def table_rows(fs: FeatureSet, s: Settings, cache: Cache | None = None, progress: ProgressFn | None = None
               ) -> list[dict[str, Any]]:
    """Table 2's rows that ``s`` allows (:func:`pose2id_demo.ablation.table`) as the tables show them: setting,
    mAP, Rank-1, Rank-5, Rank-10, mINP in percent, ID² in ``s.id2_variant`` (paper: eqs. 20-21; official:
    ID2.py)."""
    return [ablation.percent_row(r) for r in ablation.table(fs, s, cache, progress)]


def table_summary(fs: FeatureSet, s: Settings) -> dict[str, Any]:
    """What a table is shown with: ``{"n_query", "n_gallery", "id2_variant", "id2_label"}``."""
    return {"n_query": int(len(fs.q)), "n_gallery": int(len(fs.g)), "id2_variant": s.id2_variant,
            "id2_label": id2_label(s.id2_variant)}


def table_notes(data: BenchData, s: Settings) -> list[str]:
    """Why rows are missing from the benchmark's table: NFC or IPG switched off, or no generated features."""
    notes = []
    if s.nfc_on == "none":
        notes.append("NFC is switched off: the +NFC rows are left out.")
    if s.ipg_on == "none":
        notes.append("IPG is switched off: the +IPG rows are left out.")
    elif data.q_gen is None:
        notes.append(data.gen_note)
    return notes


# ------------------------------------------------------------------------------------------ ranked lists
def top_list(data: BenchData, qi: int, dist: np.ndarray, top: int) -> list[dict[str, Any]]:
    """The ``top`` nearest gallery items of query ``qi`` by ``dist`` (ng,), ties by gallery index; gallery images
    of the query's identity from the query's camera left out (the Market-1501 protocol)."""
    keep = ~((data.g_pids == data.q_pids[qi]) & (data.g_camids == data.q_camids[qi]))
    idx = np.flatnonzero(keep)
    order = idx[np.argsort(dist[idx], kind="stable")[:top]]
    return [{"path": data.g_paths[j], "pid": int(data.g_pids[j]), "camid": int(data.g_camids[j]),
             "distance": round(float(dist[j]), 4), "match": bool(data.g_pids[j] == data.q_pids[qi])}
            for j in order]


def ranks(data: BenchData, s: Settings, qi: int, top: int, cache: Cache | None = None) -> dict[str, Any]:
    """Top-``top`` gallery list of query ``qi`` before (baseline) and after (+NFC+IPG, or what is on:
    :func:`pose2id_demo.ablation.after_row`), by re-ranking's distances when ``s.rerank``.

    Returns:
        ``{"query": dict(path, pid, camid), "after_setting": str, "before": [dict(path, pid, camid, distance,
        match)], "after": [...]}``.
    """
    a = _paper(s)
    after_row = ablation.after_row(data, a)
    out = {"query": {"path": data.q_paths[qi], "pid": int(data.q_pids[qi]), "camid": int(data.q_camids[qi])},
           "after_setting": after_row}
    for name, row in (("before", "baseline"), ("after", after_row)):
        if s.rerank:
            dist = ablation.distances(data, a, row, cache)[qi]
        else:
            q, g = ablation.stage_features(data, a, row, cache)
            dist = np.linalg.norm(g - q[qi][None], axis=1)
        out[name] = top_list(data, qi, dist, top)
    return out


def per_query_key(fs: FeatureSet, s: Settings) -> tuple:
    return ablation.row_key(_paper(s), ablation.after_row(fs, _paper(s))) + (s.rerank,)


def per_query(fs: FeatureSet, s: Settings, cache: Cache | None = None) -> dict[str, Any]:
    """Every query's AP (%) and first-correct rank under the baseline and under the current setting
    (:func:`pose2id_demo.ablation.per_query`), and the typical query of that change
    (:func:`pose2id_demo.ablation.typical_query`: AP change closest to the mean change; ties → the
    baseline first-correct rank closest to the median).

    Returns:
        ``{"rows": [dict(query, pid, AP before, AP after, ΔAP, rank before, rank after)],
        "typical": int | None, "after_setting": str, "mean_delta_ap": float, "rule": str}``.
    """
    pq = ablation.per_query(fs, _paper(s), cache)
    delta = pq["ap_after"] - pq["ap_before"]
    rows = [{"query": int(i), "pid": int(pq["pid"][i]), "AP before": float(pq["ap_before"][i]),
             "AP after": float(pq["ap_after"][i]), "ΔAP": round(float(delta[i]), 2),
             "rank before": int(pq["rank_before"][i]), "rank after": int(pq["rank_after"][i])}
            for i in range(len(fs.q))]
    valid = np.isfinite(delta)
    return {"rows": rows, "typical": ablation.typical_query(pq), "after_setting": pq["after_setting"],
            "mean_delta_ap": round(float(delta[valid].mean()), 2) if valid.any() else float("nan"),
            "rule": ablation.TYPICAL_RULE}


def ranked_rows_key(fs: FeatureSet, s: Settings, order: str, top: int) -> tuple:
    return (order, top, s.rerank) + ablation.row_key(_paper(s), ablation.after_row(fs, _paper(s)))


def ranked_rows(fs: FeatureSet, s: Settings, order: str, top: int, cache: Cache | None = None) -> dict[str, Any]:
    """Every query's ranked list under the current setting with its AP, and each listed gallery item's
    distance, camera and match (:func:`pose2id_demo.ablation.ranked_rows`, ``order`` worst / best AP first or
    query order), with each query's baseline AP beside it.

    Returns:
        ``{"rows": ablation's rows, each with "AP before" added, "after_setting": str}``.
    """
    a = _paper(s)
    rows = ablation.ranked_rows(fs, a, order=order, top=top, cache=cache)
    base = ablation.ranked_rows(fs, a, row="baseline", order="query", top=1, cache=cache)
    for r in rows:
        r["AP before"] = base[r["query"]]["AP"]
    return {"rows": rows, "after_setting": ablation.after_row(fs, a)}


# ------------------------------------------------------------------------------------- the features' shape
def distributions_key(fs: FeatureSet, s: Settings) -> tuple:
    a = _features_only(s)
    return tuple(ablation.row_key(a, r) for r in ablation.row_names(fs, a))


def distributions(fs: FeatureSet, s: Settings, cache: Cache | None = None) -> dict[str, Any]:
    """Same-identity vs different-identity query-gallery distance histograms of every row the settings allow,
    with their overlap (:func:`pose2id_demo.ablation.distance_distributions`; Euclidean distances of each row's
    features, so re-ranking does not apply).

    Returns:
        ablation's ``{"edges", "rows": {row: {"same", "different", "overlap", "mean_same", …}}}`` plus
        ``"after_setting"`` (the row that stands for the current setting).
    """
    a = _features_only(s)
    return {**ablation.distance_distributions(fs, a, cache=cache), "after_setting": ablation.after_row(fs, a)}


def identities(fs: FeatureSet) -> list[tuple[int, int]]:
    """``(pid, number of query + gallery images)`` of every identity (pid > 0; no distractors, 0, or junk, -1),
    most images first (ties by pid)."""
    pids = np.concatenate([fs.q_pids, fs.g_pids])
    uniq, counts = np.unique(pids[pids > 0], return_counts=True)
    order = np.lexsort((uniq, -counts))
    return [(int(uniq[i]), int(counts[i])) for i in order]


def tsne_key(fs: FeatureSet, s: Settings, n_ids: int) -> tuple:
    a = replace(s, rerank=False)
    return (n_ids, s.id2_variant) + ablation.row_key(a, ablation.after_row(fs, a))


def tsne(fs: FeatureSet, s: Settings, n_ids: int, cache: Cache | None = None,
         progress: ProgressFn = noop_progress) -> dict[str, Any]:
    """2-D t-SNE of ``n_ids`` identities' query+gallery features before and after centralization (Fig. 4).

    PCA to at most 50 dimensions first; perplexity clamped below the number of samples; fixed
    ``random_state`` so that the picture is reproducible (:func:`pose2id_demo.visualize.tsne_2d`). The
    identities are the ``n_ids`` first of :func:`identities` (most images, ties by id), the same for every
    setting.

    Returns:
        ``{"pids": (n,), "is_query": (n,), "after_setting": str, "id2_variant": str, "before": (n, 2),
        "id2_before": float, "after": (n, 2), "id2_after": float}``.
    """
    a = replace(s, rerank=False)
    after_row = ablation.after_row(fs, a)
    pids = np.concatenate([fs.q_pids, fs.g_pids])
    is_query = np.concatenate([np.ones(len(fs.q), bool), np.zeros(len(fs.g), bool)])
    chosen = [pid for pid, _ in identities(fs)[:n_ids]]
    sel = np.flatnonzero(np.isin(pids, chosen))
    out: dict[str, Any] = {"pids": pids[sel], "is_query": is_query[sel], "after_setting": after_row,
                           "id2_variant": s.id2_variant}
    for i, (name, row) in enumerate((("before", "baseline"), ("after", after_row))):
        progress(0.3 + 0.35 * i, f"t-SNE {name} …")
        q, g = ablation.stage_features(fs, a, row, cache)
        x = np.concatenate([q, g])[sel]
        out[name] = tsne_2d(x)
        out[f"id2_{name}"] = round(float(id2(x, pids[sel], variant=s.id2_variant)), 4)
    return out
