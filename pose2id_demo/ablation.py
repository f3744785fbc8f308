"""The Table-2 ablation of Pose2ID, once: every surface (CLI, the app's Benchmark and Your-features tabs,
``bench/``) computes its metric rows here.

Given a :class:`~pose2id_demo.featurefile.FeatureSet` (normalised query/gallery features, optionally the
features of generated images) and :class:`Settings`, the functions below give

- the rows of Table 2 — ``baseline``, ``+NFC`` (Alg. 1, eqs. 26-28), ``+IPG`` (eq. 9) and ``+NFC+IPG``
  (IPG first, then NFC) — with or without k-reciprocal re-ranking (:func:`table`, :func:`metric_row`);
- the k1 × k2 mAP grid of Fig. 9 (:func:`k_grid`), the η curve of Fig. 8 (:func:`eta_curve`) and the curve
  over the number M of generated images of Table 6 (:func:`m_curve`);
- each query's AP and first-correct rank under the baseline and under the current setting
  (:func:`per_query`), and a rule that picks a *typical* query of that change (:func:`typical_query`);
- each query's ranked list with its AP, every gallery item's distance, camera and match, worst AP first
  (:func:`ranked_rows`);
- the same-identity vs different-identity distance histograms of every row, with their overlap
  (:func:`distance_distributions`), and one identity's feature dimension around its centre before and after
  (:func:`identity_view`, Fig. 2).

Metrics are the Market-1501 protocol of :func:`pose2id_demo.metrics.evaluate`; ID² is
:func:`pose2id_demo.metrics.identity_density` over query ∪ gallery with distractors (pid 0) and junk
(pid -1) left out, in the variant the settings name (``paper`` or ``official``, see
:mod:`pose2id_demo.metrics.id2`).

Every stage's output is L2-normalised.  The functions are pure: the same inputs give the same numbers.  An
optional ``cache`` (any object with ``get(key)`` → value or None and ``put(key, value)`` → value) keeps the
intermediate features, distance matrices and rows, keyed by exactly the settings each depends on — so that
moving η leaves the +NFC row's cache entry valid (the engine passes its bounded caches here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np

from .centralization import centralize, l2_normalize, nfc_sets, nfc_sets_grid, rerank
from .feature_distribution import identity_dimension
from .featurefile import FeatureSet
from .metrics import (
    ID2_VARIANTS,
    distance_matrix,
    evaluate,
    identity_density,
    pair_distance_histograms,
    per_query_ap,
    ranked_lists,
)

__all__ = [
    "APPLY_CHOICES",
    "DEFAULT_ETA",
    "ETAS",
    "NFC_MODES",
    "RANK_ORDERS",
    "ROW_NAMES",
    "TYPICAL_RULE",
    "Settings",
    "after_row",
    "default_identity",
    "distance_distributions",
    "distances",
    "eta_curve",
    "has_generated",
    "identity_view",
    "k_grid",
    "m_curve",
    "m_points",
    "metric_row",
    "per_query",
    "percent_row",
    "ranked_rows",
    "row_names",
    "stage_features",
    "table",
    "typical_query",
]

ROW_NAMES = ("baseline", "+NFC", "+IPG", "+NFC+IPG")
APPLY_CHOICES = ("none", "query", "gallery", "both")
NFC_MODES = ("separate", "joint")
#: The η values of the Fig. 8 curve.
ETAS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
#: η of eq. 9 wherever none is given — the app's controls, ``python -m pose2id_demo eval`` and ``bench/``.
#: 0.5, not the paper's Market-1501 value 2: eq. 9 adds η times the mean of the 8 generated features to the
#: original, and η = 2 suits the official generator, whose images are close to real ones, not the shipped CPU
#: one (the README's "Paper tables" compare both; ``bench/bench_paper_tables.py`` prints them).  Pass the
#: paper's η (Market 2, Occluded-REID 1, SYSU-MM01 1/4) with the official weights.
DEFAULT_ETA = 0.5
#: Most values of M the Table 6 curve evaluates (every M from 0 when there are at most this many).
MAX_M_POINTS = 12
#: k-reciprocal re-ranking parameters (Zhong et al. 2017, as the paper uses them).
RERANK_K1, RERANK_K2, RERANK_LAMBDA = 20, 6, 0.3

ProgressFn = Callable[[float, str], None]


class Cache(Protocol):
    def get(self, key: Any) -> Any: ...

    def put(self, key: Any, value: Any) -> Any: ...


def _knob(default: Any, label: str, name: str, *, choices: Sequence[Any] | None = None,
          limits: tuple[Any, Any] | None = None, step: float | None = None) -> Any:
    """A settings field with what a control needs to show it: its label, the short name sentences about it
    use, and its choices or its limits and step."""
    return field(default=default, metadata={"label": label, "name": name, "choices": choices, "limits": limits,
                                            "step": step})


@dataclass(frozen=True)
class Settings:
    """One ablation setting: every parameter of the Table-2 rows, with its default (the paper's, η the app's).

    The one settings object: the CLI, ``bench/`` and the app build it, the engine's sessions take it, and the
    rows are computed from it. Each field's metadata (:meth:`knob`) gives its label, and its choices or the
    limits a request may ask for, so that the app's controls show exactly these defaults and ranges.

    Attributes:
        eta: η of eq. 9.
        k1, k2: NFC neighbourhood sizes (Alg. 1).
        nfc_on, ipg_on: the set(s) NFC / IPG centralize: ``none``, ``query``, ``gallery`` or ``both``.
        nfc_mode: ``separate`` (neighbours within the query set and within the gallery set — the
            published setting) or ``joint`` (neighbours in query ∪ gallery).
        rerank: k-reciprocal re-ranking (k1=20, k2=6, λ=0.3) instead of the Euclidean distance.
        id2_variant: ``paper`` or ``official`` (:mod:`pose2id_demo.metrics.id2`).
        id2_over: ``query+gallery`` (the tables) or ``gallery`` (the set eq. 9's generations centralize in
            ``bench/ipg_quality.py``); pid <= 0 is left out either way.
        nfc_index: NFC's neighbour search, ``exact`` or ``faiss`` (approximate, for 10^6 images; optional).
    """

    eta: float = _knob(DEFAULT_ETA, "η (eq. 9)", "η", limits=(0.0, 10.0), step=0.25)
    k1: int = _knob(2, "k1 (NFC)", "k1", limits=(1, 20), step=1)
    k2: int = _knob(2, "k2 (NFC)", "k2", limits=(1, 20), step=1)
    nfc_on: str = _knob("both", "NFC on", "NFC on", choices=APPLY_CHOICES)
    ipg_on: str = _knob("both", "IPG on", "IPG on", choices=APPLY_CHOICES)
    nfc_mode: str = _knob("separate", "NFC neighbours (separate: within query / gallery, as published; "
                          "joint: query ∪ gallery)", "NFC mode", choices=NFC_MODES)
    rerank: bool = _knob(False, "k-reciprocal re-ranking (k1=20, k2=6, λ=0.3)", "re-ranking")
    id2_variant: str = _knob("paper", "ID² variant", "ID² variant", choices=ID2_VARIANTS)
    id2_over: str = _knob("query+gallery", "ID² over", "ID² over", choices=("query+gallery", "gallery"))
    nfc_index: str = _knob("exact", "NFC neighbour search", "NFC index", choices=("exact", "faiss"))

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata["choices"]
            if choices is not None and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}; got {getattr(self, f.name)!r}")
        if not np.isfinite(self.eta):
            raise ValueError(f"eta must be finite, got {self.eta}")
        if int(self.k1) < 0 or int(self.k2) < 0:
            raise ValueError(f"k1 and k2 must be >= 0, got {self.k1}, {self.k2}")

    @classmethod
    def knob(cls, name: str) -> dict[str, Any]:
        """``{"default", "label", "name", "choices", "limits", "step"}`` of field ``name`` (what a control
        shows, and the name a sentence about it uses)."""
        f = next((f for f in fields(cls) if f.name == name), None)
        if f is None:
            raise KeyError(f"Settings has no field {name!r}")
        return {"default": f.default, **f.metadata}


# ----------------------------------------------------------------------------------------- the stages
def _sides(apply: str) -> tuple[bool, bool]:
    return apply in ("query", "both"), apply in ("gallery", "both")


def has_generated(fs: FeatureSet, apply: str = "both") -> bool:
    """Whether eq. 9 can act on at least one of the sets ``apply`` names (it has generated features)."""
    on_q, on_g = _sides(apply)
    return (on_q and fs.q_gen is not None) or (on_g and fs.g_gen is not None)


def _ipg(fs: FeatureSet, eta: float, apply: str, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 9 on the set(s) ``apply`` names, with the first ``m`` generated images (all when None)."""
    on_q, on_g = _sides(apply)
    out = []
    for on, f, gen in ((on_q, fs.q, fs.q_gen), (on_g, fs.g, fs.g_gen)):
        if on and gen is not None:
            gen = gen if m is None else gen[:, :m]
            out.append(l2_normalize(centralize(f, gen, eta)) if gen.shape[1] else f)
        else:
            out.append(f)
    return out[0], out[1]


def _nfc(q: np.ndarray, g: np.ndarray, k1: int, k2: int, apply: str, mode: str, index: str = "exact"
         ) -> tuple[np.ndarray, np.ndarray]:
    if apply == "none":
        return q, g
    qn, gn = nfc_sets(q, g, k1, k2, mode=mode, apply_to=apply, index=index)
    return l2_normalize(qn), l2_normalize(gn)


def _cached(cache: Cache | None, key: tuple, make: Callable[[], Any]) -> Any:
    if cache is None:
        return make()
    hit = cache.get(key)
    if hit is not None:
        return hit
    return cache.put(key, make())


def row_key(s: Settings, row: str) -> tuple:
    """The settings a row's features depend on (its cache key)."""
    nfc = (s.k1, s.k2, s.nfc_on, s.nfc_mode, s.nfc_index)
    ipg = (s.eta, s.ipg_on)
    return {"baseline": (row,), "+NFC": (row, *nfc), "+IPG": (row, *ipg), "+NFC+IPG": (row, *nfc, *ipg)}[row]


def stage_features(fs: FeatureSet, s: Settings, row: str, cache: Cache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery features of one row of Table 2 (IPG first, then NFC)."""
    if row == "baseline":
        return fs.q, fs.g
    if row == "+NFC":
        return _cached(cache, ("feats",) + row_key(s, row),
                       lambda: _nfc(fs.q, fs.g, s.k1, s.k2, s.nfc_on, s.nfc_mode, s.nfc_index))
    if row == "+IPG":
        return _cached(cache, ("feats",) + row_key(s, row), lambda: _ipg(fs, s.eta, s.ipg_on))
    if row != "+NFC+IPG":
        raise ValueError(f"row must be one of {', '.join(ROW_NAMES)}; got {row!r}")
    q, g = stage_features(fs, s, "+IPG", cache)
    return _cached(cache, ("feats",) + row_key(s, row),
                   lambda: _nfc(q, g, s.k1, s.k2, s.nfc_on, s.nfc_mode, s.nfc_index))


def distances(fs: FeatureSet, s: Settings, row: str, cache: Cache | None = None) -> np.ndarray:
    """The (nq, ng) distance matrix a row is ranked by: Euclidean (float64 from exact dot products,
    :func:`pose2id_demo.metrics.distance_matrix`), or k-reciprocal re-ranking when ``s.rerank`` (float32,
    computed in float64 and rounded to :data:`pose2id_demo.metrics.TIE_GRID`) — so a row's numbers do not
    depend on the BLAS thread count."""

    def make() -> np.ndarray:
        q, g = stage_features(fs, s, row, cache)
        if s.rerank:
            return rerank(q, g, k1=RERANK_K1, k2=RERANK_K2, lambda_value=RERANK_LAMBDA)
        return distance_matrix(q, g)

    return _cached(cache, ("dist",) + row_key(s, row) + (s.rerank,), make)


# ----------------------------------------------------------------------------------------- metric rows
def metric_row(fs: FeatureSet, s: Settings, row: str, cache: Cache | None = None, with_id2: bool = True
               ) -> dict[str, Any]:
    """One row: :func:`pose2id_demo.metrics.evaluate`'s dict (fractions in [0, 1], ``cmc``,
    ``num_valid_queries``, ``num_queries``) plus ``setting`` and ``ID²`` (``s.id2_variant``; pid ≤ 0 left out)."""

    def make() -> dict[str, Any]:
        res = evaluate(distances(fs, s, row, cache), fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids)
        out: dict[str, Any] = {"setting": row, **res}
        if with_id2:
            out["ID²"] = _density(*stage_features(fs, s, row, cache), fs, s)
        return out

    id2_key = (s.id2_variant, s.id2_over) if with_id2 else None
    return _cached(cache, ("row",) + row_key(s, row) + (s.rerank, id2_key), make)


def _density(q: np.ndarray, g: np.ndarray, fs: FeatureSet, s: Settings) -> float:
    if s.id2_over == "gallery":
        return identity_density(q[:0], g, fs.q_pids[:0], fs.g_pids, variant=s.id2_variant)
    return identity_density(q, g, fs.q_pids, fs.g_pids, variant=s.id2_variant)


def percent_row(r: dict[str, Any]) -> dict[str, Any]:
    """A row as the tables show it: mAP, Rank-1/5/10, mINP in percent (2 decimals), ID² to 4 decimals."""
    out = {"setting": r["setting"]}
    for k in ("mAP", "Rank-1", "Rank-5", "Rank-10", "mINP"):
        out[k] = round(float(r[k]) * 100.0, 2)
    if "ID²" in r:
        out["ID²"] = round(float(r["ID²"]), 4)
    return out


def row_names(fs: FeatureSet, s: Settings) -> list[str]:
    """The rows of Table 2 that these settings and features allow: NFC rows need ``nfc_on != "none"``,
    IPG rows need ``ipg_on != "none"`` and generated features for a set it names."""
    ipg = s.ipg_on != "none" and has_generated(fs, s.ipg_on)
    return [r for r in ROW_NAMES if not ("NFC" in r and s.nfc_on == "none") and not ("IPG" in r and not ipg)]


def table(fs: FeatureSet, s: Settings, cache: Cache | None = None, progress: ProgressFn | None = None
          ) -> list[dict[str, Any]]:
    """Every row :func:`row_names` allows, as :func:`metric_row` dicts (fractions)."""
    names = row_names(fs, s)
    rows = []
    for i, row in enumerate(names):
        if progress is not None:
            progress(0.2 + 0.8 * i / len(names), f"Evaluating {row} …")
        rows.append(metric_row(fs, s, row, cache))
    return rows


def after_row(fs: FeatureSet, s: Settings) -> str:
    """The row that stands for "the current setting" in before/after views: everything that is on."""
    if s.ipg_on != "none" and has_generated(fs, s.ipg_on):
        return "+NFC+IPG" if s.nfc_on != "none" else "+IPG"
    return "+NFC"


# ----------------------------------------------------------------------------------------- curves
def k_grid(fs: FeatureSet, s: Settings, ks: Sequence[int], progress: ProgressFn | None = None) -> dict[str, Any]:
    """Fig. 9: mAP (%) of +NFC for every (k1, k2) in ``ks`` × ``ks`` (Euclidean distance; NFC on
    ``s.nfc_on``, or both sets when it is off)."""
    apply = s.nfc_on if s.nfc_on != "none" else "both"
    ks = [int(k) for k in ks]
    grid = np.zeros((len(ks), len(ks)), np.float64)
    pairs = [(a, b) for a in ks for b in ks]
    # The +NFC row of every pair, with each set's neighbour lists searched once (to the largest k).
    stages = nfc_sets_grid(fs.q, fs.g, pairs, mode=s.nfc_mode, apply_to=apply, index=s.nfc_index)
    for n, (qn, gn) in enumerate(stages):
        d = distance_matrix(l2_normalize(qn), l2_normalize(gn))
        r = evaluate(d, fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids)
        grid[n // len(ks), n % len(ks)] = round(float(r["mAP"]) * 100.0, 2)
        if progress is not None:  # after every pair: a caller's time limit is checked this often
            progress((n + 1) / len(pairs), f"k1 × k2 grid: {n + 1}/{len(pairs)}")
    return {"k": ks, "map": grid, "apply": apply}


def eta_curve(fs: FeatureSet, s: Settings, etas: Sequence[float] = ETAS, progress: ProgressFn | None = None
              ) -> dict[str, Any] | None:
    """Fig. 8: mAP and Rank-1 (%) of +IPG against η (on ``s.ipg_on``, or both sets when it is off);
    None without generated features. ``progress`` is called before each η."""
    apply = s.ipg_on if s.ipg_on != "none" else "both"
    if not has_generated(fs, apply):
        return None
    rows = []
    for i, e in enumerate(etas):
        if progress is not None:
            progress(i / len(etas), f"η curve: η = {e:g} …")
        rows.append(percent_row(metric_row(fs, replace(s, eta=float(e), ipg_on=apply, rerank=False), "+IPG",
                                           with_id2=False)))
    return {"eta": [float(e) for e in etas], "mAP": [r["mAP"] for r in rows], "Rank-1": [r["Rank-1"] for r in rows],
            "apply": apply}


def m_points(m_max: int, n: int = MAX_M_POINTS) -> list[int]:
    """The values of M the Table 6 curve evaluates: 0 … ``m_max`` when that is at most ``n`` values, else 0 and
    ``n - 1`` values spread geometrically from 1 to ``m_max`` (both included), so that the work stays bounded
    whatever M a file holds."""
    m_max = max(0, int(m_max))
    if m_max < n:
        return list(range(m_max + 1))
    return [0] + sorted({int(round(x)) for x in np.geomspace(1, m_max, n - 1)})


def m_curve(fs: FeatureSet, s: Settings, ms: Sequence[int] | None = None, progress: ProgressFn | None = None
            ) -> dict[str, Any] | None:
    """Table 6: mAP, Rank-1 (%) and ID² of +IPG at η = ``s.eta`` using the first M generated images for each M
    of ``ms`` (default :func:`m_points` of the smaller M_max), eq. 9 on the gallery, the query and both; None
    unless both sets have generated features. ``progress`` is called before each evaluation."""
    if fs.q_gen is None or fs.g_gen is None:
        return None
    m_max = min(fs.q_gen.shape[1], fs.g_gen.shape[1])
    ms = m_points(m_max) if ms is None else [int(m) for m in ms if 0 <= int(m) <= m_max]
    out: dict[str, Any] = {"M": ms, "eta": s.eta}
    for a, apply in enumerate(("gallery", "query", "both")):
        rows = []
        for i, m in enumerate(ms):
            if progress is not None:
                progress((a * len(ms) + i) / (3 * len(ms)), f"M curve: IPG on {apply}, M = {m} …")
            q, g = _ipg(fs, s.eta, apply, m)
            res = evaluate(distance_matrix(q, g), fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids)
            res["setting"] = f"+IPG M={m}"
            res["ID²"] = _density(q, g, fs, s)
            rows.append(percent_row(res))
        out[apply] = {k: [r[k] for r in rows] for k in ("mAP", "Rank-1", "ID²")}
    return out


# ----------------------------------------------------------------------------------------- per query
def per_query(fs: FeatureSet, s: Settings, cache: Cache | None = None) -> dict[str, Any]:
    """Each query's AP (%) and first-correct rank under the baseline and under :func:`after_row`.

    The protocol is :func:`pose2id_demo.metrics.evaluate`'s, applied to one query at a time (same-pid
    same-camera gallery items ignored); a query without a valid match has AP NaN and rank 0.

    Returns:
        ``{"query": (nq,) int, "pid": (nq,), "ap_before", "ap_after": (nq,) float (percent),
        "rank_before", "rank_after": (nq,) int, "after_setting": str}``.
    """
    after = after_row(fs, s)
    out: dict[str, Any] = {"query": np.arange(len(fs.q)), "pid": np.asarray(fs.q_pids), "after_setting": after}
    for name, row in (("before", "baseline"), ("after", after)):
        ap, first = per_query_ap(distances(fs, s, row, cache), fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids)
        out[f"ap_{name}"] = np.round(ap * 100.0, 2)
        out[f"rank_{name}"] = first
    return out


TYPICAL_RULE = ("the query whose AP change is closest to the mean AP change; ties: the one whose baseline "
                "first-correct rank is closest to the median, then the lowest index")


def typical_query(pq: dict[str, Any]) -> int | None:
    """The query whose change is typical of the measured mean change.

    Rule: among the queries with a valid match, the one whose AP change (after − before) is closest to the
    mean AP change; among equally close ones, the one whose baseline first-correct rank is closest to the
    median baseline first-correct rank of all valid queries; then the lowest index.  None when no query is
    valid.
    """
    before, after = np.asarray(pq["ap_before"], np.float64), np.asarray(pq["ap_after"], np.float64)
    valid = np.flatnonzero(np.isfinite(before) & np.isfinite(after))
    if valid.size == 0:
        return None
    delta = after[valid] - before[valid]
    dev = np.abs(delta - delta.mean())
    tied = valid[dev <= dev.min() + 1e-9]
    ranks = np.asarray(pq["rank_before"], np.float64)
    off = np.abs(ranks[tied] - np.median(ranks[valid]))
    return int(tied[np.flatnonzero(off == off.min())[0]])


# ----------------------------------------------------------------------------------------- ranked lists
RANK_ORDERS = ("worst", "best", "query")


def ranked_rows(fs: FeatureSet, s: Settings, row: str | None = None, top: int = 10, order: str = "worst",
                cache: Cache | None = None) -> list[dict[str, Any]]:
    """Every query's ranked list under one row (default :func:`after_row`), as table rows.

    The lists and APs are :func:`pose2id_demo.metrics.ranked_lists`' — the ranking the row's metrics score
    (same-pid same-camera gallery items left out; ties by gallery index).

    Args:
        row: a row of :func:`row_names`; default the current setting's :func:`after_row`.
        top: gallery items per list.
        order: ``worst`` (lowest AP first; queries without a valid match last), ``best`` (highest first) or
            ``query`` (query order).  Equal APs keep query order.

    Returns:
        One dict per query: ``query`` (index), ``pid``, ``camid``, ``AP`` (percent, NaN without a valid
        match), ``first match`` (1-based rank, 0 without one), ``setting`` and ``gallery``: a list of
        ``{"index", "pid", "camid", "distance", "match"}``, nearest first.
    """
    if order not in RANK_ORDERS:
        raise ValueError(f"order must be one of {', '.join(RANK_ORDERS)}; got {order!r}")
    row = row or after_row(fs, s)
    rl = ranked_lists(distances(fs, s, row, cache), fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids, top=top)
    ap = rl["ap"] * 100.0
    if order == "query":
        queries = np.arange(len(ap))
    else:
        key = np.where(np.isfinite(ap), ap if order == "worst" else -ap, np.inf)
        queries = np.argsort(key, kind="stable")
    out = []
    for i in queries:
        items = [{"index": int(j), "pid": int(fs.g_pids[j]), "camid": int(fs.g_camids[j]),
                  "distance": float(d), "match": bool(m)}
                 for j, d, m in zip(rl["index"][i], rl["distance"][i], rl["match"][i]) if j >= 0]
        out.append({"query": int(i), "pid": int(fs.q_pids[i]), "camid": int(fs.q_camids[i]), "AP": float(ap[i]),
                    "first match": int(rl["first"][i]), "setting": row, "gallery": items})
    return out


# ----------------------------------------------------------------------------------------- distributions
def distance_distributions(fs: FeatureSet, s: Settings, bins: int = 60, cache: Cache | None = None
                           ) -> dict[str, Any]:
    """Same-identity vs different-identity query-gallery distance histograms of every row
    :func:`row_names` allows (baseline, +NFC, +IPG, +NFC+IPG), over shared bins on [0, 2]
    (:func:`pose2id_demo.metrics.pair_distance_histograms`; Euclidean distance of the row's features, so
    ``s.rerank`` does not apply).

    Returns:
        ``{"edges": (bins + 1,), "rows": {row name: pair_distance_histograms' dict}}``.
    """
    rows = {}
    for row in row_names(fs, s):
        q, g = stage_features(fs, s, row, cache)
        rows[row] = pair_distance_histograms(q, g, fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids, bins=bins)
    return {"edges": next(iter(rows.values()))["edges"], "rows": rows}


def default_identity(fs: FeatureSet) -> int:
    """The identity with the most query + gallery samples (pid > 0; the lowest pid among equals)."""
    pids = np.concatenate([fs.q_pids, fs.g_pids])
    uniq, counts = np.unique(pids[pids > 0], return_counts=True)
    if uniq.size == 0:
        raise ValueError("no identity with pid > 0 in the query or gallery")
    return int(uniq[np.argmax(counts)])


def identity_view(fs: FeatureSet, s: Settings, pid: int | None = None, row: str | None = None,
                  dim: int | None = None, cache: Cache | None = None) -> dict[str, Any]:
    """Fig. 2 for one identity: its query + gallery features in one dimension, around the identity centre,
    at the baseline and after ``row`` (default :func:`after_row`) —
    :func:`pose2id_demo.feature_distribution.identity_dimension`'s dict plus ``row``; ``samples`` index
    query ∪ gallery (queries first).  ``pid`` defaults to :func:`default_identity`."""
    row = row or after_row(fs, s)
    pid = default_identity(fs) if pid is None else int(pid)
    qa, ga = stage_features(fs, s, row, cache)
    view = identity_dimension(np.concatenate([fs.q, fs.g]), np.concatenate([qa, ga]),
                              np.concatenate([fs.q_pids, fs.g_pids]), pid, dim)
    return {**view, "row": row}
