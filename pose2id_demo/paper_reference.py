"""The paper's own Market-1501 numbers, to show beside ours (never computed here: they are quoted).

Pose2ID reports its ablation on Market-1501 with TransReID (ViT, without camera ids) in Table 2 (its first
column: baseline, +NFC, +IPG, +NFC+IPG; the same rows as Table 1's TransReID line) and the ImageNet-only backbone
without ReID training in Table 5. Metrics in percent, ID² in the paper's reading (eqs. 20-21).
:data:`TABLES` holds them as the paper prints them; ``tests/test_views.py`` finds every number in the paper's
text.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TABLES", "reference_rows"]

#: ``name -> {"title", "columns", "rows"}``: each row ``(setting, value per column)``, the paper's digits.
TABLES: dict[str, dict[str, Any]] = {
    "table2": {
        "title": "Table 2 (and Table 1): TransReID on Market-1501, without camera ids",
        "columns": ("mAP", "Rank-1", "ID²"),
        "rows": (
            ("baseline", (79.88, 91.48, 0.2193)),
            ("+NFC", (83.92, 91.83, 0.1824)),
            ("+IPG", (88.02, 94.77, 0.1553)),
            ("+NFC+IPG", (90.39, 94.74, 0.1357)),
        ),
    },
    "table5": {
        "title": "Table 5: ImageNet weights only, no ReID training, on Market-1501",
        "columns": ("mAP", "Rank-1", "Rank-5", "Rank-10", "ID²"),
        "rows": (
            ("baseline (w/o training)", (3.34, 11.4, 21.88, 28.0, 0.5135)),
            ("+IPG", (52.81, 78.92, 91.21, 94.27, 0.2158)),
            ("+NFC+IPG (+IPG+NFC)", (57.27, 82.39, 90.17, 92.81, 0.1890)),
        ),
    },
}


def reference_rows(name: str) -> tuple[list[str], list[list[Any]]]:
    """``(headers, rows)`` of one of :data:`TABLES`: the setting, then its columns."""
    t = TABLES[name]
    return ["setting", *t["columns"]], [[setting, *values] for setting, values in t["rows"]]
