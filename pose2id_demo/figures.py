"""Static figures (matplotlib, PNG) of the ablation's pictures, for the command line: the same-identity vs
different-identity distance histograms (:func:`pose2id_demo.ablation.distance_distributions`) and one
identity's feature dimension around its centre (:func:`pose2id_demo.ablation.identity_view`, the paper's
Fig. 2).  They draw the dicts those functions return and compute nothing themselves; the command line
imports this module (and so matplotlib) only when a figure is asked for (``Figure`` objects, no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["distance_distribution_figure", "identity_dimension_figure", "save_figure"]

SAME, DIFFERENT = "#2a9d4b", "#d1495b"
BEFORE, AFTER = "#8d99ae", "#1d3557"


def _figure(width: float, height: float):
    return Figure(figsize=(width, height), layout="constrained")


def distance_distribution_figure(dd: dict[str, Any], title: str = "") -> Any:
    """One panel per row: the density of same-identity (green) and different-identity (red) query-gallery
    distances, their shared area (overlap) and means in the panel title."""
    rows = dd["rows"]
    edges = np.asarray(dd["edges"])
    width = np.diff(edges)
    fig = _figure(3.4 * len(rows) + 0.6, 3.2)
    axes = fig.subplots(1, len(rows), sharex=True, sharey=True, squeeze=False)[0]
    for ax, (name, h) in zip(axes, rows.items()):
        for key, colour, label in (("same", SAME, "same identity"), ("different", DIFFERENT, "different identity")):
            counts = np.asarray(h[key], np.float64)
            density = counts / max(counts.sum(), 1.0) / width
            ax.stairs(density, edges, fill=True, alpha=0.35, color=colour, label=f"{label} ({h[f'n_{key}']:,} pairs)")
            ax.stairs(density, edges, color=colour, linewidth=1.2)
        ax.set_title(f"{name}: overlap {h['overlap']:.3f}\nmean {h['mean_same']:.3f} vs {h['mean_different']:.3f}",
                     fontsize=9)
        ax.set_xlabel("Euclidean distance (L2-normalised features)")
        ax.set_xlim(edges[0], edges[-1])
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    std = max(std, 1e-12)
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2.0 * np.pi))


def identity_dimension_figure(view: dict[str, Any], title: str = "") -> Any:
    """Left: the identity's values in one dimension before and after, with the normal fit N(μ, σ²) of each
    and the centre μ marked (Fig. 2's picture).  Right: every sample's distance to the identity centre in the
    full feature space, samples ranked by it before centralization."""
    fig = _figure(10.0, 3.6)
    left, right = fig.subplots(1, 2)
    b, a = view["before"], view["after"]
    values = np.concatenate([b["values"], a["values"]])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * (hi - lo) + 1e-6
    x = np.linspace(lo - pad, hi + pad, 200)
    edges = np.linspace(lo - pad, hi + pad, max(8, min(30, len(b["values"]) // 2 + 4)))
    for st, colour, label in ((b, BEFORE, "baseline"), (a, AFTER, view["row"])):
        left.hist(st["values"], bins=edges, density=True, alpha=0.35, color=colour,
                  label=f"{label}: μ {st['centre']:+.4f}, σ {st['std']:.4f}")
        left.plot(x, _normal_pdf(x, st["centre"], st["std"]), color=colour, linewidth=1.5)
        left.axvline(st["centre"], color=colour, linestyle="--", linewidth=1)
    left.set_xlabel(f"feature dimension {view['dim']}")
    left.set_ylabel("density")
    left.set_title(f"identity {view['pid']}: {len(b['values'])} samples around the centre", fontsize=9)
    left.legend(fontsize=7)
    rank = np.arange(1, len(b["distance_to_centre"]) + 1)
    right.plot(rank, b["distance_to_centre"], "o-", color=BEFORE, markersize=3,
               label=f"baseline (mean {b['mean_distance_to_centre']:.3f})")
    right.plot(rank, a["distance_to_centre"], "o-", color=AFTER, markersize=3,
               label=f"{view['row']} (mean {a['mean_distance_to_centre']:.3f})")
    right.set_xlabel("sample, ranked by its distance to the centre (baseline)")
    right.set_ylabel("distance to the identity centre")
    right.set_ylim(bottom=0)
    right.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG to ``path`` (its folder created), and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
