"""A user's own feature file: the Table-2 rows, the k1 × k2 mAP grid (Fig. 9), the η curve (Fig. 8) and the
M curve (Table 6) and the same / different identity distance distributions, all from :mod:`pose2id_demo.ablation`
— the numbers the CLI prints for the same file.

**What the app takes on its 2 CPU cores** (the CLI, ``python -m pose2id_demo eval FILE``, has no such limits).
Before any array is decompressed, the archive's members are checked and each array's shape is read from its own
``.npy`` header (:func:`pose2id_demo.featurefile.read_headers`) and priced: one evaluation of N_q × N_g pairs at
d dimensions costs N_q·N_g·(d + 400) work units (multiply-adds, plus sorting and AP per pair), an NFC step
(N_q² + N_g²)·(d + 400), eq. 9 with M generated features per image (N_q·M_q + N_g·M_g)·d. The table must fit
:data:`MAX_DIM`, :data:`MAX_ROWS` and :data:`TABLE_WORK` (a Market-1501-size file, 3,368 × 15,913 × 768, is
0.43·10¹² without generated features) or it is refused with a sentence; the curves (36 NFC evaluations for the
grid, 9 for η, 3 per value of M — at most :data:`pose2id_demo.ablation.MAX_M_POINTS` values — for M) run on a
random subset of identities when they would exceed :data:`CURVE_WORK`, and say so. Each call stops after
:data:`TIME_BUDGET_S` seconds of its own computing, checked before every evaluation of the table and of every
curve: without the table it is refused; curves not finished are left out, with a note. Between evaluations a
waiting generation or interactive request takes the CPU first (:meth:`~.scheduler.CpuPool.checkpoint`; that time
does not count).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from pose2id_demo import ablation
from pose2id_demo.featurefile import ArrayHeader, FeatureSet, read_headers

from .errors import Pose2IDError
from .inputs import (
    MAX_FEATURE_BYTES,
    check_int,
    feature_file_path,
    open_feature_file,
)
from .scheduler import CPU, LONG, ProgressFn, noop_progress
from .views import distributions, table_rows, table_summary

__all__ = ["CURVE_WORK", "MAX_DIM", "MAX_ROWS", "TABLE_WORK", "TIME_BUDGET_S", "check_cost", "curve_work",
           "evaluate_feature_file", "evaluate_feature_set", "price_headers", "table_work"]

#: Feature dimensions the app evaluates at most.
MAX_DIM = 4096
#: Query + gallery features the app evaluates at most.
MAX_ROWS = 50_000
#: Work units the table may cost (2.3 × a Market-1501-size file without generated features).
TABLE_WORK = 1.0e12
#: Work units above which the curves run on a subset of identities.
CURVE_WORK = 1.5e11
#: Seconds one evaluation call may compute; checked before every evaluation.
TIME_BUDGET_S = 300.0
#: Work units per (query, gallery) pair besides the d multiply-adds (sorting, AP).
PAIR_COST = 400
CLI_HINT = "`python -m pose2id_demo eval FILE` on your own machine has no such limit"


def _eval_work(nq: int, ng: int, d: int) -> float:
    return float(nq) * ng * (d + PAIR_COST)


def _nfc_work(nq: int, ng: int, d: int) -> float:
    return (float(nq) * nq + float(ng) * ng) * (d + PAIR_COST)


def _ipg_work(nq: int, ng: int, d: int, mq: int, mg: int) -> float:
    """Eq. 9 on both sets: the mean of each image's M generated features."""
    return (float(nq) * mq + float(ng) * mg) * d


def table_work(nq: int, ng: int, d: int, mq: int, mg: int | None = None) -> float:
    """Work units of the table: baseline and +NFC, and with generated features (``mq``, ``mg`` > 0 per query /
    gallery image) +IPG and +NFC+IPG."""
    mg = mq if mg is None else mg
    m = min(mq, mg)
    rows = 2 if m == 0 else 4
    work = rows * _eval_work(nq, ng, d) + (rows // 2) * _nfc_work(nq, ng, d)
    return work + (2 * _ipg_work(nq, ng, d, mq, mg) if m else 0.0)


def curve_work(nq: int, ng: int, d: int, mq: int, grid_max: int, mg: int | None = None) -> float:
    """Work units of the curves: the k1 × k2 grid (NFC each), and with generated features the η curve (eq. 9 on
    all M) and the M curve (three evaluations per value of :func:`pose2id_demo.ablation.m_points`, each with
    eq. 9 on the first M)."""
    mg = mq if mg is None else mg
    work = grid_max * grid_max * (_eval_work(nq, ng, d) + _nfc_work(nq, ng, d))
    m = min(mq, mg)
    if m:
        work += len(ablation.ETAS) * (_eval_work(nq, ng, d) + _ipg_work(nq, ng, d, mq, mg))
        work += sum(3 * (_eval_work(nq, ng, d) + _ipg_work(nq, ng, d, k, k)) for k in ablation.m_points(m))
    return work


def check_cost(nq: int, ng: int, d: int, mq: int, mg: int | None = None) -> None:
    """Refuse, with a sentence saying what to do, a table this app cannot afford (before any work)."""
    mg = mq if mg is None else mg
    m = min(mq, mg)
    if d > MAX_DIM:
        raise Pose2IDError(f"The features have {d:,} dimensions; the app evaluates up to {MAX_DIM:,} on its 2 CPU "
                           f"cores ({CLI_HINT}).")
    if nq + ng > MAX_ROWS:
        raise Pose2IDError(f"The file has {nq:,} query + {ng:,} gallery features = {nq + ng:,}; the app evaluates up "
                           f"to {MAX_ROWS:,} on its 2 CPU cores ({CLI_HINT}).")
    work = table_work(nq, ng, d, mq, mg)
    if work > TABLE_WORK:
        gen = f" with {max(mq, mg):,} generated each" if m else ""
        raise Pose2IDError(f"Evaluating {nq:,} × {ng:,} features at d = {d:,}{gen} is {work / TABLE_WORK:.1f}× the "
                           f"most the app takes on its 2 CPU cores (about 2 × a Market-1501-size file); please use "
                           f"fewer features, or {CLI_HINT}.")


def _sizes(headers: dict[str, ArrayHeader]) -> tuple[int, int, int, int, int] | None:
    """``(nq, ng, d, M_q, M_g)`` from the headers; None when the shapes do not fit together (the loader refuses
    such a file without this price: its arrays' total is already bounded)."""
    q, g = headers["q_feats"].shape, headers["g_feats"].shape
    if len(q) != 2 or len(g) != 2:
        return None
    gens = [headers[k].shape if k in headers else None for k in ("q_gen", "g_gen")]
    if any(s is not None and len(s) != 3 for s in gens):
        return None
    mq, mg = (s[1] if s is not None else 0 for s in gens)
    if not (mq and mg):  # the IPG rows and curves need both sets' generated features
        mq = mg = 0
    return q[0], g[0], max(q[1], g[1]), mq, mg


def price_headers(headers: dict[str, ArrayHeader]) -> None:
    """:func:`check_cost` of a feature file, from its headers (:func:`pose2id_demo.featurefile.read_headers`)."""
    sizes = _sizes(headers)
    if sizes is not None:
        check_cost(*sizes)


def check_labels(fs: FeatureSet) -> None:
    """Refuse a file with nothing to evaluate: every pid −1 (junk), or no query with a valid match (the same
    identity in the gallery from another camera; the Market-1501 protocol ignores same-camera matches)."""
    for side, pids in (("query", fs.q_pids), ("gallery", fs.g_pids)):
        if (pids == -1).all():
            raise Pose2IDError(f"Every {side} identity in the file is −1 (junk), so there is nothing to evaluate.")
    q_ok = fs.q_pids != -1
    g_pc = np.stack([fs.g_pids, fs.g_camids], 1)
    pids, n_pid = np.unique(fs.g_pids, return_counts=True)
    pairs, n_pair = np.unique(g_pc, axis=0, return_counts=True)
    per_pid = dict(zip(pids.tolist(), n_pid.tolist()))
    per_pair = {(int(a), int(b)): int(n) for (a, b), n in zip(pairs, n_pair)}
    valid = [bool(ok) and per_pid.get(int(p), 0) - per_pair.get((int(p), int(c)), 0) > 0
             for ok, p, c in zip(q_ok, fs.q_pids, fs.q_camids)]
    if not any(valid):
        raise Pose2IDError("No query has a valid match: every gallery image of a query's identity is from the "
                           "query's own camera (or absent), and the Market-1501 protocol ignores those, so there "
                           "is nothing to evaluate. Check q_camids / g_camids.")


def _gen_sizes(fs: FeatureSet) -> tuple[int, int]:
    if fs.q_gen is None or fs.g_gen is None:
        return 0, 0
    return fs.q_gen.shape[1], fs.g_gen.shape[1]


def curve_subset(fs: FeatureSet, grid_max: int, budget: float = CURVE_WORK, seed: int = 0
                 ) -> tuple[FeatureSet, str | None]:
    """``fs`` itself when its curves fit ``budget`` work units; else a random subset of its query identities
    (every image of each, and the same share of the other gallery images) that does, and a note saying so."""
    d = fs.q.shape[1]
    mq, mg = _gen_sizes(fs)
    work = curve_work(len(fs.q), len(fs.g), d, mq, grid_max, mg)
    if work <= budget:
        return fs, None
    rng = np.random.default_rng(seed)
    ids = np.unique(fs.q_pids[fs.q_pids != -1])
    share = math.sqrt(budget / work)  # the work grows with the square of the rows
    for _ in range(20):
        keep = rng.choice(ids, size=max(2, min(len(ids), round(share * len(ids)))), replace=False)
        qm = np.isin(fs.q_pids, keep)
        gm = np.isin(fs.g_pids, keep) | (~np.isin(fs.g_pids, ids) & (rng.random(len(fs.g)) < share))
        if curve_work(int(qm.sum()), int(gm.sum()), d, mq, grid_max, mg) <= budget:
            break
        share *= 0.85
    sub = FeatureSet(q=fs.q[qm], g=fs.g[gm], q_pids=fs.q_pids[qm], g_pids=fs.g_pids[gm], q_camids=fs.q_camids[qm],
                     g_camids=fs.g_camids[gm], q_gen=None if fs.q_gen is None else fs.q_gen[qm],
                     g_gen=None if fs.g_gen is None else fs.g_gen[gm])
    note = (f"The k1 × k2 grid, the η curve and the M curve use a random {len(keep)} of the {len(ids)} query "
            f"identities ({int(qm.sum()):,} queries, {int(gm.sum()):,} gallery features) to fit this 2-core "
            f"machine; the table uses every feature ({CLI_HINT} for full curves).")
    return sub, note


class _OutOfTime(Exception):
    """Raised before an evaluation when a call's time budget is spent."""


def _deadline_check(budget_s: float | None, progress: ProgressFn) -> ProgressFn:
    """A progress function that also stops the call (``_OutOfTime``) once ``budget_s`` seconds of its own have
    passed; at each call a waiting generation may take the CPU first, and that time is not counted."""
    end = None if budget_s is None else time.monotonic() + budget_s

    def report(frac: float, desc: str) -> None:
        nonlocal end
        waited = CPU.checkpoint(progress)
        if end is not None:
            end += waited
            if time.monotonic() > end:
                raise _OutOfTime(desc)
        progress(frac, desc)

    return report


def evaluate_feature_set(fs: FeatureSet, s: ablation.Settings, grid_max: int,
                         progress: ProgressFn = noop_progress, budget_s: float | None = None,
                         curve_budget: float | None = None) -> dict[str, Any]:
    """The Your-features report of a feature set (settings already checked).

    ``budget_s``: seconds the call may compute (checked before every evaluation; None = no limit);
    ``curve_budget``: work units above which the curves use a subset of identities (:func:`curve_subset`;
    None = never).

    Returns:
        ``{"rows": [...], "grid": {"k", "map": (K, K), "apply"}, "eta_curve": {"eta", "mAP", "Rank-1",
        "apply"} | None, "m_curve": {"M", "eta", "gallery"/"query"/"both": {"mAP", "Rank-1", "ID²"}} | None,
        "distances": :func:`.views.distributions`' dict (with ``after_setting``) | None,
        "notes": [str], "n_query", "n_gallery", "id2_variant", "id2_label"}``.
    """
    notes: list[str] = []
    if fs.q_gen is None or fs.g_gen is None:
        notes.append("No generated features (q_gen, g_gen) in the file: the IPG rows, the η curve and "
                     "the M curve need them.")
    step = _deadline_check(budget_s, progress)
    t0 = time.perf_counter()
    try:
        rows = table_rows(fs, s, progress=lambda f, d: step(0.05 + 0.1 * f, d))
    except _OutOfTime:
        raise Pose2IDError(f"The table did not finish within the app's {budget_s:.0f}-second limit on this 2-core "
                           f"machine; please use fewer features, or {CLI_HINT}.") from None
    table_s = time.perf_counter() - t0
    sub, note = (fs, None) if curve_budget is None else curve_subset(fs, grid_max, curve_budget)
    if note:
        notes.append(note)
    grid = eta_curve = m_curve = dists = None
    try:
        step(0.12, "same / different identity distances …")
        dists = distributions(sub, s)
        step(0.15, "k1 × k2 grid …")
        grid = ablation.k_grid(sub, s, range(1, grid_max + 1), lambda f, d: step(0.15 + 0.5 * f, d))
        eta_curve = ablation.eta_curve(sub, s, progress=lambda f, d: step(0.65 + 0.15 * f, d))
        m_curve = ablation.m_curve(sub, s, progress=lambda f, d: step(0.8 + 0.2 * f, d))
    except _OutOfTime as stop:
        missing = [n for n, v in (("distance distributions", dists), ("k1 × k2 grid", grid), ("η curve", eta_curve),
                                  ("M curve", m_curve)) if v is None]
        notes.append(f"Stopped at the app's {budget_s:.0f}-second limit (the table took {table_s:.0f} s; at "
                     f"{stop}): the {', '.join(missing)} "
                     f"{'was' if len(missing) == 1 else 'were'} not computed; {CLI_HINT}.")
    progress(1.0, "done")
    return {"rows": rows, "grid": grid, "eta_curve": eta_curve, "m_curve": m_curve, "distances": dists, "notes": notes,
            **table_summary(fs, s)}


def evaluate_feature_file(npz_path: Any, settings: ablation.Settings | None = None, grid_max: int = 6,
                          progress: ProgressFn = noop_progress) -> dict[str, Any]:
    """Check the file — its members, and the price of its arrays from their own headers (:func:`price_headers`)
    — before anything is decompressed; then, holding a CPU slot, load it (priced again from the headers it
    reads: :func:`~.inputs.open_feature_file`), check its labels and report on it at ``settings`` (a request's,
    checked by :func:`~.inputs.check_settings`) within the app's limits."""
    s = settings or ablation.Settings()
    grid_max = check_int("grid size", grid_max, 1, 10)
    path = feature_file_path(npz_path)
    try:
        headers = read_headers(path, MAX_FEATURE_BYTES)
    except ValueError as exc:
        raise Pose2IDError(f"The feature file cannot be used: {exc}.") from None
    price_headers(headers)
    with CPU.hold(LONG, "an evaluation of a feature file", progress):
        fs = open_feature_file(path, price=price_headers)
        check_labels(fs)
        progress(0.05, "Features loaded")
        return evaluate_feature_set(fs, s, grid_max, progress, budget_s=TIME_BUDGET_S, curve_budget=CURVE_WORK)
