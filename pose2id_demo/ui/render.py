"""Turning engine results into what Gradio shows: bordered thumbnails, tables and plotly figures.

No maths here: the numbers come from :mod:`pose2id_demo.engine`; this module only draws them.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from pose2id_demo.ui import tempfiles

GREEN = (22, 163, 74)
RED = (220, 38, 38)
GREY = (120, 120, 120)
BLUE = (37, 99, 235)
THUMB = (64, 128)  # (W, H) like Market-1501 crops

# A qualitative palette with enough distinct colours for 30 identities.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
    "#756bb1", "#636363", "#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc", "#fd8d3c", "#74c476", "#6baed6",
    "#969696", "#e7ba52", "#ce6dbd",
)


def image_file(image: Any) -> str | None:
    """``image`` (PIL or uint8 array; ``None`` passes through) as a PNG file path for a Gradio output.

    Gradio writes images it is handed as arrays into its cache in place (truncate, then write), at a path
    named by their content: when two users get the same picture at once (the same example, seed and
    settings), one of them can download the file while the other request rewrites it, and receives an
    empty body. Files are copied into the cache by a write-then-rename instead, so the app hands Gradio
    files, written here the same way: content-addressed, atomically renamed into place, in the app's
    temporary folder (:func:`.tempfiles.images_dir`; swept after an hour and within the app's quota).
    """
    if image is None:
        return None
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = buf.getvalue()
    folder = tempfiles.images_dir()
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return str(path)


def bordered(image: Any, colour: tuple[int, int, int], border: int = 5, size: tuple[int, int] = THUMB
             ) -> np.ndarray:
    """``image`` (path, PIL or array) fitted into ``size`` with a coloured border, as uint8 HxWx3."""
    if isinstance(image, np.ndarray):
        im = Image.fromarray(image)
    elif isinstance(image, Image.Image):
        im = image
    else:
        with Image.open(image) as f:
            im = f.convert("RGB")
    im = ImageOps.pad(im.convert("RGB"), size, color=(255, 255, 255))
    return np.asarray(ImageOps.expand(im, border=border, fill=colour))


STRIP_PAD = 4  # space between tiles
STRIP_GAP = 14  # extra space after the query tile
LABEL_H = 16


def _font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def tile_origin(i: int, border: int = 5) -> tuple[int, int]:
    """Top-left pixel (x, y) of tile ``i`` (0 = query) in a :func:`ranked_strip` image."""
    w = THUMB[0] + 2 * border
    return STRIP_PAD + i * (w + STRIP_PAD) + (STRIP_GAP if i > 0 else 0), STRIP_PAD


def ranked_strip(ranks: dict[str, Any] | None, which: str, border: int = 5) -> np.ndarray | None:
    """One picture of a ranked list, like torchreid's ``visualize_ranked_results``: the query (blue
    border), then the top list — correct identity green, wrong red — each labelled with rank and id."""
    if not ranks:
        return None
    from PIL import ImageDraw

    q = ranks["query"]
    tiles = [(q["path"], BLUE, f"query {q['pid']}")]
    tiles += [(r["path"], GREEN if r["match"] else RED, f"#{i} id {r['pid']}") for i, r in enumerate(ranks[which], 1)]
    tw, th = THUMB[0] + 2 * border, THUMB[1] + 2 * border
    width = tile_origin(len(tiles) - 1, border)[0] + tw + STRIP_PAD
    canvas = Image.new("RGB", (width, th + LABEL_H + 2 * STRIP_PAD), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for i, (path, colour, label) in enumerate(tiles):
        x, y = tile_origin(i, border)
        canvas.paste(Image.fromarray(bordered(path, colour, border)), (x, y))
        tw_text = draw.textlength(label, font=font)
        draw.text((x + (tw - tw_text) / 2, y + th + 2), label, fill=colour if i else BLUE, font=font)
    return np.asarray(canvas)


def ranked_strip_files(ranks: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The before and after :func:`ranked_strip` images of ``ranks``, as :func:`image_file` paths."""
    return image_file(ranked_strip(ranks, "before")), image_file(ranked_strip(ranks, "after"))


def hits(ranks: dict[str, Any] | None, which: str) -> int:
    """Number of correct matches in a ranked list."""
    return sum(r["match"] for r in ranks[which]) if ranks else 0


def metrics_frame(rows: Sequence[dict[str, Any]]) -> Any:
    """The ablation rows as a pandas DataFrame (column order fixed)."""
    import pandas as pd

    cols = ["setting", "mAP", "Rank-1", "Rank-5", "Rank-10", "mINP", "ID²"]
    present = [c for c in cols if any(c in r for r in rows)] if rows else cols
    return pd.DataFrame([[r.get(c) for c in present] for r in rows], columns=present)


def tsne_figure(res: dict[str, Any]) -> Any:
    """Two side-by-side scatter plots (before / after), one colour per identity; queries as diamonds."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = (f"before (baseline) · ID² {res['id2_before']:.3f}",
              f"after ({res['after_setting']}) · ID² {res['id2_after']:.3f}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.06)
    pids = np.asarray(res["pids"])
    isq = np.asarray(res["is_query"], bool)
    for k, pid in enumerate(np.unique(pids)):
        colour = PALETTE[k % len(PALETTE)]
        for col, name in ((1, "before"), (2, "after")):
            xy = np.asarray(res[name])
            for qmask, symbol, label in ((~isq, "circle", "gallery"), (isq, "diamond", "query")):
                m = (pids == pid) & qmask
                if not m.any():
                    continue
                fig.add_trace(go.Scatter(
                    x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"id {pid}", legendgroup=str(pid),
                    showlegend=(col == 1 and label == "gallery"),
                    marker=dict(color=colour, symbol=symbol, size=9 if label == "query" else 7,
                                line=dict(width=1, color="#222") if label == "query" else dict(width=0)),
                    hovertemplate=f"id {pid} ({label})<extra></extra>"), row=1, col=col)
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10), legend=dict(title="identity"),
                      template="plotly_white")
    return fig


def heatmap_figure(grid: dict[str, Any]) -> Any:
    """k1 × k2 mAP heatmap (paper Fig. 9)."""
    import plotly.graph_objects as go

    ks = list(grid["k"])
    z = np.asarray(grid["map"], dtype=float)
    fig = go.Figure(go.Heatmap(z=z, x=[str(k) for k in ks], y=[str(k) for k in ks], colorscale="Viridis",
                               colorbar=dict(title="mAP %"), text=np.round(z, 1), texttemplate="%{text}",
                               hovertemplate="k1=%{y}, k2=%{x}: mAP %{z:.2f}<extra></extra>"))
    fig.update_layout(title=f"NFC k1 × k2 → mAP (NFC on {grid.get('apply', 'both')}, Fig. 9)",
                      xaxis_title="k2", yaxis_title="k1", height=420, template="plotly_white",
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def eta_figure(curve: dict[str, Any] | None, baseline: dict[str, Any] | None = None) -> Any:
    """mAP and Rank-1 against η (paper Fig. 8); the baseline's mAP and Rank-1 as dashed lines named in the
    legend (two text labels on nearby horizontal lines would overlap)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if curve:
        colours = {"mAP": PALETTE[0], "Rank-1": PALETTE[1]}
        for key in ("mAP", "Rank-1"):
            fig.add_trace(go.Scatter(x=curve["eta"], y=curve[key], mode="lines+markers", name=key,
                                     line=dict(color=colours[key])))
        if baseline:
            x = [min(curve["eta"]), max(curve["eta"])]
            for key in ("mAP", "Rank-1"):
                fig.add_trace(go.Scatter(x=x, y=[baseline[key]] * 2, mode="lines", name=f"baseline {key}",
                                         line=dict(color=colours[key], dash="dash", width=1.5),
                                         hovertemplate=f"baseline {key} {baseline[key]:.2f}<extra></extra>"))
        fig.update_layout(title=dict(text=f"η of eq. 9 (IPG on {curve.get('apply', 'both')}, Fig. 8)", x=0.02))
    else:
        fig.update_layout(title=dict(text="η curve: no generated features (q_gen, g_gen)", x=0.02))
    fig.update_layout(xaxis_title="η", yaxis_title="%", height=400, template="plotly_white",
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def m_figure(curve: dict[str, Any] | None) -> Any:
    """mAP / Rank-1 and ID² against the number M of generated images per image (paper Table 6): two panels
    stacked (side by side their titles collide in a half-width column), the legend below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("mAP (solid) / Rank-1 (dotted), %", "ID² (lower is denser)"))
    if curve:
        for k, apply in enumerate(("gallery", "query", "both")):
            c = PALETTE[k]
            fig.add_trace(go.Scatter(x=curve["M"], y=curve[apply]["mAP"], mode="lines+markers",
                                     name=f"{apply}: mAP", legendgroup=apply, line=dict(color=c)), row=1, col=1)
            fig.add_trace(go.Scatter(x=curve["M"], y=curve[apply]["Rank-1"], mode="lines+markers",
                                     name=f"{apply}: Rank-1", legendgroup=apply, line=dict(color=c, dash="dot")),
                          row=1, col=1)
            fig.add_trace(go.Scatter(x=curve["M"], y=curve[apply]["ID²"], mode="lines+markers",
                                     name=f"{apply}: ID²", legendgroup=apply, line=dict(color=c, dash="dash")),
                          row=2, col=1)
        fig.update_layout(title=dict(text=f"M generated images (η={curve['eta']:g}, Table 6)", x=0.02))
    else:
        fig.update_layout(title=dict(text="M curve: no generated features (q_gen, g_gen)", x=0.02))
    fig.update_xaxes(title_text="M", row=2, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=560, template="plotly_white", margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", y=-0.12))
    return fig


PER_QUERY_COLUMNS = ["query", "id", "AP before", "AP after", "ΔAP", "rank before", "rank after"]


def per_query_frame(res: dict[str, Any]) -> Any:
    """Every query's AP (%) and first-correct rank before / after as a DataFrame (the engine's rows)."""
    import pandas as pd

    return pd.DataFrame([[r[c] if c != "id" else r["pid"] for c in PER_QUERY_COLUMNS] for r in res["rows"]],
                        columns=PER_QUERY_COLUMNS)


def per_query_figure(res: dict[str, Any]) -> Any:
    """AP after against AP before, one point per query (above the diagonal = improved); the typical query
    ringed in blue."""
    import plotly.graph_objects as go

    rows = res["rows"]
    before = np.array([r["AP before"] for r in rows], float)
    after = np.array([r["AP after"] for r in rows], float)
    q = np.array([r["query"] for r in rows])
    delta = after - before
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line=dict(color="#999", dash="dot"),
                             name="no change", hoverinfo="skip"))
    for name, mask, colour in (("improved", delta > 1e-9, GREEN), ("worse", delta < -1e-9, RED),
                               ("unchanged", np.abs(delta) <= 1e-9, GREY)):
        mask = mask & np.isfinite(delta)
        if mask.any():
            fig.add_trace(go.Scatter(
                x=before[mask], y=after[mask], mode="markers", name=f"{name} ({int(mask.sum())})",
                marker=dict(color="rgb({},{},{})".format(*colour), size=6, opacity=0.75), customdata=q[mask],
                hovertemplate="query #%{customdata}: AP %{x:.1f} → %{y:.1f}<extra></extra>"))
    t = res.get("typical")
    if t is not None:
        r = rows[int(t)]
        fig.add_trace(go.Scatter(x=[r["AP before"]], y=[r["AP after"]], mode="markers", name=f"typical #{t}",
                                 marker=dict(size=15, color="rgba(0,0,0,0)",
                                             line=dict(color="rgb({},{},{})".format(*BLUE), width=2.5)),
                                 hoverinfo="skip"))
    fig.update_layout(xaxis_title="AP before (baseline), %", yaxis_title=f"AP after ({res['after_setting']}), %",
                      xaxis=dict(range=[-3, 103]), yaxis=dict(range=[-3, 103]), height=400, template="plotly_white",
                      margin=dict(l=10, r=10, t=20, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def pose_sheet(names: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]], tile: tuple[int, int] = THUMB,
               pad: int = 6, label_w: int = 64, header_h: int = 18) -> np.ndarray:
    """One figure like the paper's Fig. 5: a column per target pose, a row per kind of picture (the pose
    skeleton, generated with IFR, generated without IFR), each tile fitted into ``tile`` (W, H)."""
    from PIL import ImageDraw

    ncol = max(len(names), max((len(imgs) for _, imgs in rows), default=0))
    width = label_w + ncol * (tile[0] + pad) + pad
    height = header_h + len(rows) * (tile[1] + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(10)
    for j, name in enumerate(names):
        x = label_w + j * (tile[0] + pad) + pad
        short = name if draw.textlength(name, font=font) <= tile[0] + pad else name[: max(3, tile[0] // 6)] + "…"
        draw.text((x + (tile[0] - draw.textlength(short, font=font)) / 2, 3), short, fill=(60, 60, 60), font=font)
    for i, (label, imgs) in enumerate(rows):
        y = header_h + i * (tile[1] + pad) + pad
        draw.text((4, y + tile[1] / 2 - 6), label, fill=(30, 30, 30), font=_font(11))
        for j, im in enumerate(imgs):
            x = label_w + j * (tile[0] + pad) + pad
            pil = Image.fromarray(im) if isinstance(im, np.ndarray) else im.convert("RGB")
            bg = (0, 0, 0) if i == 0 and label == "pose" else (255, 255, 255)
            canvas.paste(ImageOps.pad(pil.convert("RGB"), tile, method=Image.Resampling.LANCZOS, color=bg), (x, y))
    return np.asarray(canvas)


def tile_grid(items: Sequence[tuple[Any, tuple[int, int, int], str]], cols: int = 12, border: int = 4
              ) -> np.ndarray | None:
    """Bordered, labelled thumbnails ``(image, colour, label)`` in rows of ``cols`` (None if empty)."""
    if not items:
        return None
    from PIL import ImageDraw

    tw, th = THUMB[0] + 2 * border, THUMB[1] + 2 * border
    cell_w, cell_h = tw + STRIP_PAD, th + LABEL_H + STRIP_PAD
    ncols = min(cols, len(items))
    nrows = -(-len(items) // cols)
    canvas = Image.new("RGB", (STRIP_PAD + ncols * cell_w, STRIP_PAD + nrows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(10)
    for k, (img, colour, label) in enumerate(items):
        x, y = STRIP_PAD + (k % cols) * cell_w, STRIP_PAD + (k // cols) * cell_h
        canvas.paste(Image.fromarray(bordered(img, colour, border)), (x, y))
        if draw.textlength(label, font=font) > tw + STRIP_PAD:
            label = label[: max(4, (tw + STRIP_PAD) // 6 - 1)] + "…"
        draw.text((x + (tw - draw.textlength(label, font=font)) / 2, y + th + 2), label, fill=(40, 40, 40), font=font)
    return np.asarray(canvas)
