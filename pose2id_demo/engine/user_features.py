"""A user's own feature file: the Table-2 rows, the k1 × k2 mAP grid (Fig. 9), the η curve (Fig. 8) and the
M curve (Table 6), all from :mod:`pose2id_demo.ablation` — the numbers the CLI prints for the same file."""

from __future__ import annotations

from typing import Any

from pose2id_demo import ablation
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import ID2_VARIANTS, id2_label

from .benchmark import ProgressFn, noop_progress
from .inputs import APPLY_CHOICES, ETA_RANGE, K_RANGE, check_choice, check_float, check_int, open_feature_file

__all__ = ["evaluate_feature_file", "evaluate_feature_set"]


def evaluate_feature_set(fs: FeatureSet, s: ablation.Settings, grid_max: int,
                         progress: ProgressFn = noop_progress) -> dict[str, Any]:
    """The Your-features report of a feature set (settings already checked).

    Returns:
        ``{"rows": [...], "grid": {"k", "map": (K, K), "apply"}, "eta_curve": {"eta", "mAP", "Rank-1",
        "apply"} | None, "m_curve": {"M", "eta", "gallery"/"query"/"both": {"mAP", "Rank-1", "ID²"}} | None,
        "notes": [str], "n_query", "n_gallery", "id2_variant", "id2_label"}``.
    """
    notes: list[str] = []
    if fs.q_gen is None or fs.g_gen is None:
        notes.append("No generated features (q_gen, g_gen) in the file: the IPG rows, the η curve and "
                     "the M curve need them.")
    rows = [ablation.percent_row(r) for r in ablation.table(fs, s)]
    progress(0.15, "k1 × k2 grid …")
    grid = ablation.k_grid(fs, s, range(1, grid_max + 1), lambda f, d: progress(0.15 + 0.5 * f, d))
    eta_curve = ablation.eta_curve(fs, s)
    progress(0.8, "M curve …")
    m_curve = ablation.m_curve(fs, s)
    progress(1.0, "done")
    return {"rows": rows, "grid": grid, "eta_curve": eta_curve, "m_curve": m_curve, "notes": notes,
            "n_query": int(len(fs.q)), "n_gallery": int(len(fs.g)), "id2_variant": s.id2_variant,
            "id2_label": id2_label(s.id2_variant)}


def evaluate_feature_file(npz_path: Any, k1: int = 2, k2: int = 2, eta: float = 0.5, nfc_on: str = "both",
                          ipg_on: str = "both", grid_max: int = 6, id2_variant: str = "paper",
                          progress: ProgressFn = noop_progress) -> dict[str, Any]:
    """Check the parameters, open the file (:func:`~.inputs.open_feature_file`) and report on it."""
    k1, k2 = check_int("k1", k1, *K_RANGE), check_int("k2", k2, *K_RANGE)
    eta = check_float("η", eta, *ETA_RANGE)
    nfc_on, ipg_on = check_choice("NFC on", nfc_on, APPLY_CHOICES), check_choice("IPG on", ipg_on, APPLY_CHOICES)
    grid_max = check_int("grid size", grid_max, 1, 10)
    s = ablation.Settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on,
                          id2_variant=check_choice("ID² variant", id2_variant, ID2_VARIANTS))
    fs = open_feature_file(npz_path)
    progress(0.05, "Features loaded")
    return evaluate_feature_set(fs, s, grid_max, progress)
