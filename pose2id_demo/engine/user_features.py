"""A user's own feature file: the Table-2 rows, the k1 × k2 mAP grid (Fig. 9), the η curve (Fig. 8) and the
M curve (Table 6), all from :mod:`pose2id_demo.ablation` — the numbers the CLI prints for the same file.

**What the app takes on its 2 CPU cores** (the CLI, ``python -m pose2id_demo eval FILE``, has no such limits).
Before any work, the shapes are read from the ``.npy`` headers inside the archive (nothing else is
decompressed) and priced: one evaluation of N_q × N_g pairs at d dimensions costs N_q·N_g·(d + 400) work units
(multiply-adds, plus sorting and AP per pair), an NFC step (N_q² + N_g²)·(d + 400). The table must fit
:data:`MAX_DIM`, :data:`MAX_ROWS` and :data:`TABLE_WORK` (a Market-1501-size file, 3,368 × 15,913 × 768, is
0.43·10¹² without generated features) or it is refused with a sentence; the curves (36 NFC evaluations for the
grid, 9 for η, 3·(M+1) for M) run on a random subset of identities when they would exceed :data:`CURVE_WORK`,
and say so. Each call stops after :data:`TIME_BUDGET_S` seconds, checked between evaluations: without the
table it is refused; curves not reached are left out, with a note.
"""

from __future__ import annotations

import math
import time
import zipfile
from typing import Any

import numpy as np

from pose2id_demo import ablation
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import ID2_VARIANTS, id2_label

from .benchmark import ProgressFn, noop_progress
from .errors import Pose2IDError
from .inputs import (APPLY_CHOICES, ETA_RANGE, K_RANGE, check_choice, check_float, check_int, open_feature_file,
                     resolve_request_file)

__all__ = ["CURVE_WORK", "MAX_DIM", "MAX_ROWS", "TABLE_WORK", "TIME_BUDGET_S", "check_cost", "curve_work",
           "evaluate_feature_file", "evaluate_feature_set", "header_shapes", "table_work"]

#: Feature dimensions the app evaluates at most.
MAX_DIM = 4096
#: Query + gallery features the app evaluates at most.
MAX_ROWS = 50_000
#: Work units the table may cost (2.3 × a Market-1501-size file without generated features).
TABLE_WORK = 1.0e12
#: Work units above which the curves run on a subset of identities.
CURVE_WORK = 1.5e11
#: Seconds one evaluation call may run; checked between evaluations.
TIME_BUDGET_S = 300.0
#: Work units per (query, gallery) pair besides the d multiply-adds (sorting, AP).
PAIR_COST = 400
CLI_HINT = "`python -m pose2id_demo eval FILE` on your own machine has no such limit"


def header_shapes(path: Any) -> dict[str, tuple[int, ...]]:
    """Shapes of ``q_feats``, ``g_feats``, ``q_gen``, ``g_gen`` from the ``.npy`` headers inside an ``.npz``
    (only the headers are decompressed); ``{}`` for what cannot be read (the full reader says why)."""
    out: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for key in ("q_feats", "g_feats", "q_gen", "g_gen"):
                if f"{key}.npy" not in names:
                    continue
                with zf.open(f"{key}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape = np.lib.format.read_array_header_1_0(f)[0]
                    elif version == (2, 0):
                        shape = np.lib.format.read_array_header_2_0(f)[0]
                    else:
                        continue
                out[key] = tuple(int(n) for n in shape)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError):
        return {}
    return out


def _eval_work(nq: int, ng: int, d: int) -> float:
    return float(nq) * ng * (d + PAIR_COST)


def _nfc_work(nq: int, ng: int, d: int) -> float:
    return (float(nq) * nq + float(ng) * ng) * (d + PAIR_COST)


def table_work(nq: int, ng: int, d: int, m: int) -> float:
    """Work units of the table: baseline and +NFC, and with generated features (m > 0) +IPG and +NFC+IPG."""
    rows = 2 if m == 0 else 4
    return rows * _eval_work(nq, ng, d) + (rows // 2) * _nfc_work(nq, ng, d) + 2.0 * m * (nq + ng) * d


def curve_work(nq: int, ng: int, d: int, m: int, grid_max: int) -> float:
    """Work units of the curves: the k1 × k2 grid (NFC each), and with generated features the η and M curves."""
    work = grid_max * grid_max * (_eval_work(nq, ng, d) + _nfc_work(nq, ng, d))
    if m:
        work += (len(ablation.ETAS) + 3 * (m + 1)) * _eval_work(nq, ng, d)
    return work


def check_cost(nq: int, ng: int, d: int, m: int) -> None:
    """Refuse, with a sentence saying what to do, a table this app cannot afford (before any work)."""
    if d > MAX_DIM:
        raise Pose2IDError(f"The features have {d:,} dimensions; the app evaluates up to {MAX_DIM:,} on its 2 CPU "
                           f"cores ({CLI_HINT}).")
    if nq + ng > MAX_ROWS:
        raise Pose2IDError(f"The file has {nq:,} query + {ng:,} gallery features = {nq + ng:,}; the app evaluates up "
                           f"to {MAX_ROWS:,} on its 2 CPU cores ({CLI_HINT}).")
    work = table_work(nq, ng, d, m)
    if work > TABLE_WORK:
        raise Pose2IDError(f"Evaluating {nq:,} × {ng:,} features at d = {d:,}{f' with {m} generated each' if m else ''}"
                           f" is {work / TABLE_WORK:.1f}× the most the app takes on its 2 CPU cores (about 2 × a "
                           f"Market-1501-size file); please use fewer features, or {CLI_HINT}.")


def _shape_cost(shapes: dict[str, tuple[int, ...]]) -> tuple[int, int, int, int] | None:
    q, g = shapes.get("q_feats"), shapes.get("g_feats")
    if not q or not g or len(q) != 2 or len(g) != 2:
        return None
    gens = [shapes[k][1] for k in ("q_gen", "g_gen") if len(shapes.get(k, ())) == 3]
    return q[0], g[0], max(q[1], g[1]), min(gens) if len(gens) == 2 else 0


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


def curve_subset(fs: FeatureSet, grid_max: int, budget: float = CURVE_WORK, seed: int = 0
                 ) -> tuple[FeatureSet, str | None]:
    """``fs`` itself when its curves fit ``budget`` work units; else a random subset of its query identities
    (every image of each, and the same share of the other gallery images) that does, and a note saying so."""
    d = fs.q.shape[1]
    m = 0 if fs.q_gen is None or fs.g_gen is None else min(fs.q_gen.shape[1], fs.g_gen.shape[1])
    work = curve_work(len(fs.q), len(fs.g), d, m, grid_max)
    if work <= budget:
        return fs, None
    rng = np.random.default_rng(seed)
    ids = np.unique(fs.q_pids[fs.q_pids != -1])
    share = math.sqrt(budget / work)  # the work grows with the square of the rows
    for _ in range(20):
        keep = rng.choice(ids, size=max(2, min(len(ids), round(share * len(ids)))), replace=False)
        qm = np.isin(fs.q_pids, keep)
        gm = np.isin(fs.g_pids, keep) | (~np.isin(fs.g_pids, ids) & (rng.random(len(fs.g)) < share))
        if curve_work(int(qm.sum()), int(gm.sum()), d, m, grid_max) <= budget:
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
    """Raised between evaluations when a call's time budget is spent."""


def _deadline_check(budget_s: float | None, progress: ProgressFn) -> ProgressFn:
    """A progress function that also stops the call (``_OutOfTime``) once ``budget_s`` seconds have passed."""
    end = None if budget_s is None else time.monotonic() + budget_s

    def report(frac: float, desc: str) -> None:
        if end is not None and time.monotonic() > end:
            raise _OutOfTime(desc)
        progress(frac, desc)

    return report


def evaluate_feature_set(fs: FeatureSet, s: ablation.Settings, grid_max: int,
                         progress: ProgressFn = noop_progress, budget_s: float | None = None,
                         curve_budget: float | None = None) -> dict[str, Any]:
    """The Your-features report of a feature set (settings already checked).

    ``budget_s``: seconds the call may take (checked between evaluations; None = no limit); ``curve_budget``:
    work units above which the curves use a subset of identities (:func:`curve_subset`; None = never).

    Returns:
        ``{"rows": [...], "grid": {"k", "map": (K, K), "apply"}, "eta_curve": {"eta", "mAP", "Rank-1",
        "apply"} | None, "m_curve": {"M", "eta", "gallery"/"query"/"both": {"mAP", "Rank-1", "ID²"}} | None,
        "notes": [str], "n_query", "n_gallery", "id2_variant", "id2_label"}``.
    """
    notes: list[str] = []
    if fs.q_gen is None or fs.g_gen is None:
        notes.append("No generated features (q_gen, g_gen) in the file: the IPG rows, the η curve and "
                     "the M curve need them.")
    step = _deadline_check(budget_s, progress)
    t0 = time.perf_counter()
    try:
        rows = [ablation.percent_row(r) for r in ablation.table(fs, s, progress=lambda f, d: step(0.05 + 0.1 * f, d))]
    except _OutOfTime:
        raise Pose2IDError(f"The table did not finish within the app's {budget_s:.0f}-second limit on this 2-core "
                           f"machine; please use fewer features, or {CLI_HINT}.") from None
    table_s = time.perf_counter() - t0
    sub, note = (fs, None) if curve_budget is None else curve_subset(fs, grid_max, curve_budget)
    if note:
        notes.append(note)
    grid = eta_curve = m_curve = None
    try:
        step(0.15, "k1 × k2 grid …")
        grid = ablation.k_grid(sub, s, range(1, grid_max + 1), lambda f, d: step(0.15 + 0.5 * f, d))
        if ablation.has_generated(sub, s.ipg_on if s.ipg_on != "none" else "both"):
            parts = []
            for i, e in enumerate(ablation.ETAS):  # one η at a time: the time limit is checked between them
                step(0.65 + 0.15 * i / len(ablation.ETAS), f"η curve: η = {e:g} …")
                parts.append(ablation.eta_curve(sub, s, etas=[e]))
            eta_curve = {**parts[0], "eta": [p["eta"][0] for p in parts], "mAP": [p["mAP"][0] for p in parts],
                         "Rank-1": [p["Rank-1"][0] for p in parts]}
        step(0.8, "M curve …")
        m_curve = ablation.m_curve(sub, s)
    except _OutOfTime as stop:
        missing = [n for n, v in (("k1 × k2 grid", grid), ("η curve", eta_curve), ("M curve", m_curve)) if v is None]
        notes.append(f"Stopped at the app's {budget_s:.0f}-second limit (the table took {table_s:.0f} s; at "
                     f"{stop}): the {', '.join(missing)} "
                     f"{'was' if len(missing) == 1 else 'were'} not computed; {CLI_HINT}.")
    progress(1.0, "done")
    return {"rows": rows, "grid": grid, "eta_curve": eta_curve, "m_curve": m_curve, "notes": notes,
            "n_query": int(len(fs.q)), "n_gallery": int(len(fs.g)), "id2_variant": s.id2_variant,
            "id2_label": id2_label(s.id2_variant)}


def evaluate_feature_file(npz_path: Any, k1: int = 2, k2: int = 2, eta: float = 0.5, nfc_on: str = "both",
                          ipg_on: str = "both", grid_max: int = 6, id2_variant: str = "paper",
                          progress: ProgressFn = noop_progress) -> dict[str, Any]:
    """Check the parameters, price the file from its headers (:func:`check_cost`), open it
    (:func:`~.inputs.open_feature_file`), check its labels and report on it within the app's limits."""
    k1, k2 = check_int("k1", k1, *K_RANGE), check_int("k2", k2, *K_RANGE)
    eta = check_float("η", eta, *ETA_RANGE)
    nfc_on, ipg_on = check_choice("NFC on", nfc_on, APPLY_CHOICES), check_choice("IPG on", ipg_on, APPLY_CHOICES)
    grid_max = check_int("grid size", grid_max, 1, 10)
    s = ablation.Settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on,
                          id2_variant=check_choice("ID² variant", id2_variant, ID2_VARIANTS))
    try:
        sizes = _shape_cost(header_shapes(resolve_request_file(npz_path, "feature")))
    except Pose2IDError:
        sizes = None  # no file named: open_feature_file says so
    if sizes is not None:
        check_cost(*sizes)  # before decompressing the arrays
    fs = open_feature_file(npz_path)
    m = 0 if fs.q_gen is None or fs.g_gen is None else min(fs.q_gen.shape[1], fs.g_gen.shape[1])
    check_cost(len(fs.q), len(fs.g), fs.q.shape[1], m)  # again, from the arrays themselves
    check_labels(fs)
    progress(0.05, "Features loaded")
    return evaluate_feature_set(fs, s, grid_max, progress, budget_s=TIME_BUDGET_S, curve_budget=CURVE_WORK)
