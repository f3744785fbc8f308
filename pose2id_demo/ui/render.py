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
    border), then the top list — correct identity green, wrong red — each labelled with rank and id, and below
    with its camera and distance to the query."""
    if not ranks:
        return None
    from PIL import ImageDraw

    q = ranks["query"]
    tiles = [(q["path"], BLUE, (f"query {q['pid']}", f"cam {q['camid']}" if "camid" in q else ""))]
    tiles += [(r["path"], GREEN if r["match"] else RED,
               (f"#{i} id {r['pid']}", f"c{r['camid']} · {r['distance']:.3f}" if "distance" in r else ""))
              for i, r in enumerate(ranks[which], 1)]
    tw, th = THUMB[0] + 2 * border, THUMB[1] + 2 * border
    width = tile_origin(len(tiles) - 1, border)[0] + tw + STRIP_PAD
    canvas = Image.new("RGB", (width, th + 2 * LABEL_H + 2 * STRIP_PAD), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for i, (path, colour, labels) in enumerate(tiles):
        x, y = tile_origin(i, border)
        canvas.paste(Image.fromarray(bordered(path, colour, border)), (x, y))
        for line, label in enumerate(labels):
            tw_text = draw.textlength(label, font=font)
            draw.text((x + (tw - tw_text) / 2, y + th + 2 + line * LABEL_H), label,
                      fill=(colour if i else BLUE) if line == 0 else (60, 60, 60), font=font)
    return np.asarray(canvas)


def ranked_strip_files(ranks: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The before and after :func:`ranked_strip` images of ``ranks``, as :func:`image_file` paths."""
    return image_file(ranked_strip(ranks, "before")), image_file(ranked_strip(ranks, "after"))


def hits(ranks: dict[str, Any] | None, which: str) -> int:
    """Number of correct matches in a ranked list."""
    return sum(r["match"] for r in ranks[which]) if ranks else 0


def metrics_frame(rows: Sequence[dict[str, Any]]) -> Any:
    """The ablation rows as a table (column order fixed; numbers shown evenly: :func:`styled`)."""
    import pandas as pd

    cols = ["setting", "mAP", "Rank-1", "Rank-5", "Rank-10", "mINP", "ID²"]
    present = [c for c in cols if any(c in r for r in rows)] if rows else cols
    return styled(pd.DataFrame([[r.get(c) for c in present] for r in rows], columns=present))


def tsne_figure(res: dict[str, Any]) -> Any:
    """Two side-by-side scatter plots (before / after), one colour per identity; queries as diamonds, gallery
    images as circles (the legend says both)."""
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
    for symbol, label, edge in (("circle", "circle: gallery image", 0), ("diamond", "diamond: query", 1)):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label, legendgroup="shape",
                                 marker=dict(color="#999", symbol=symbol, size=9, line=dict(width=edge, color="#222")),
                                 hoverinfo="skip"), row=1, col=1)
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                      legend=dict(title="colour: identity", groupclick="toggleitem"))
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

    return styled(pd.DataFrame([[r[c] if c != "id" else r["pid"] for c in PER_QUERY_COLUMNS] for r in res["rows"]],
                               columns=PER_QUERY_COLUMNS))


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


def column_title(name: str, width: float, font: Any) -> list[str]:
    """``name`` in lines of at most ``width`` pixels, broken at spaces (a word longer than that keeps its own
    line): a column title is never cut ("custom (photo)" is two lines, not "custom (")."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for word in name.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def pose_sheet(names: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]], tile: tuple[int, int] = THUMB,
               pad: int = 6, label_w: int = 64, header_h: int = 18) -> np.ndarray:
    """One figure like the paper's Fig. 5: a column per target pose, a row per kind of picture (the pose
    skeleton, generated with IFR, generated without IFR), each tile fitted into ``tile`` (W, H)."""
    from PIL import ImageDraw

    ncol = max(len(names), max((len(imgs) for _, imgs in rows), default=0))
    font = _font(10)
    titles = [column_title(n, tile[0] + pad, font) for n in names]
    header_h = max(header_h, 6 + 12 * max((len(t) for t in titles), default=1))
    width = label_w + ncol * (tile[0] + pad) + pad
    height = header_h + len(rows) * (tile[1] + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, lines in enumerate(titles):
        x = label_w + j * (tile[0] + pad) + pad
        for k, line in enumerate(lines):
            draw.text((x + (tile[0] - draw.textlength(line, font=font)) / 2, 3 + 12 * k), line, fill=(60, 60, 60),
                      font=font)
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


# ----------------------------------------------------------------------------------- formatting and settings
#: Decimals of every percentage the tables and messages show (mAP, Rank-k, mINP, AP, ΔAP), and of ID².
PCT_DECIMALS, ID2_DECIMALS = 2, 4


def pct(value: float) -> str:
    """A percentage as every table and message shows it (``61.90``; ``—`` for NaN: no valid match)."""
    return "—" if value != value else f"{float(value):.{PCT_DECIMALS}f}"


def styled(frame: Any, id2_columns: Sequence[str] = ("ID²",), text_columns: Sequence[str] = ()) -> Any:
    """``frame`` with every number shown to :data:`PCT_DECIMALS` decimals (ID² to :data:`ID2_DECIMALS`), as a
    pandas Styler: the table sorts by the values, and shows them evenly (61.90 beside 59.13, never 61.9)."""
    fmt: dict[str, Any] = {}
    for c in frame.columns:
        if c in text_columns or frame[c].dtype == object:
            continue
        if c in id2_columns:
            fmt[c] = f"{{:.{ID2_DECIMALS}f}}"
        elif frame[c].dtype.kind == "f":
            fmt[c] = lambda v: pct(v)
    return frame.style.format(fmt) if fmt else frame


def _sides(apply: str) -> str:
    return {"both": "query and gallery", "query": "the query set only", "gallery": "the gallery set only"}[apply]


def describe_setting(row: str, settings: Any) -> str:
    """What a row of Table 2 is under ``settings`` (an :class:`pose2id_demo.ablation.Settings`), in words: which
    step acts on which set with which parameters, and whether the distances are re-ranked."""
    s = settings
    parts = []
    if "IPG" in row:
        parts.append(f"IPG (eq. 9, η={s.eta:g}) on {_sides(s.ipg_on)}")
    if "NFC" in row:
        parts.append(f"NFC (k1={s.k1}, k2={s.k2}, {s.nfc_mode} neighbour sets) on {_sides(s.nfc_on)}")
    what = f"{row}: " + ", then ".join(parts) if parts else "the baseline features"
    return what + (", ranked by k-reciprocal re-ranking" if s.rerank else "")


# --------------------------------------------------------------------------------------- distance views
def distance_figure(dd: dict[str, Any]) -> Any:
    """One panel per row (baseline, +NFC, +IPG, +NFC+IPG): the density of same-identity (green) and
    different-identity (red) query-gallery distances, the panel title giving their overlap (lower = better
    separated) and means — :func:`pose2id_demo.ablation.distance_distributions`' numbers, drawn."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = dd["rows"]
    edges = np.asarray(dd["edges"], float)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    titles = [f"{name}<br>overlap {h['overlap']:.3f} · mean {h['mean_same']:.3f} / {h['mean_different']:.3f}"
              for name, h in rows.items()]
    fig = make_subplots(rows=1, cols=len(rows), shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.03)
    for col, h in enumerate(rows.values(), 1):
        for key, colour, label in (("same", GREEN, "same identity"), ("different", RED, "different identity")):
            counts = np.asarray(h[key], float)
            density = counts / max(counts.sum(), 1.0) / width
            rgb = "rgb({},{},{})".format(*colour)
            fig.add_trace(go.Scatter(x=centres, y=density, mode="lines", line=dict(color=rgb, shape="hvh", width=1.5),
                                     fill="tozeroy", opacity=0.6, name=label, legendgroup=key, showlegend=col == 1,
                                     hovertemplate=f"{label}: distance %{{x:.2f}}, density %{{y:.2f}}<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(title_text="distance", range=[0, 1.6], row=1, col=col)
    fig.update_yaxes(title_text="density", row=1, col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=330, template="plotly_white", margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def identity_figure(view: dict[str, Any]) -> Any:
    """The paper's Fig. 2 for one identity (:func:`pose2id_demo.ablation.identity_view`): left, the identity's
    values in one feature dimension before and after, each with its centre μ (dashed) and spread σ; right, each
    sample's distance to the identity centre in the full feature space, samples ranked by it before."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    b, a = view["before"], view["after"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        f"identity {view['pid']}, dimension {view['dim']}: values around the centre μ",
        "distance of each sample to the identity centre"))
    n = len(b["values"])
    for st, colour, name, y in ((b, GREY, "baseline", 1.0), (a, BLUE, view["row"], 0.0)):
        rgb = "rgb({},{},{})".format(*colour)
        fig.add_trace(go.Scatter(x=st["values"], y=np.full(n, y), mode="markers", name=name, legendgroup=name,
                                 marker=dict(color=rgb, size=8, opacity=0.7, symbol="line-ns-open", line=dict(width=2)),
                                 hovertemplate=f"{name}: %{{x:.4f}}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[st["centre"] - st["std"], st["centre"] + st["std"]], y=[y, y], mode="lines",
                                 line=dict(color=rgb, width=6), opacity=0.35, showlegend=False, legendgroup=name,
                                 hovertemplate=f"μ ± σ = {st['centre']:.4f} ± {st['std']:.4f}<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=[st["centre"]] * 2, y=[y - 0.3, y + 0.3], mode="lines", showlegend=False,
                                 line=dict(color=rgb, dash="dash"), legendgroup=name, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(x=np.arange(1, n + 1), y=st["distance_to_centre"], mode="lines+markers",
                                 name=f"{name}: mean {st['mean_distance_to_centre']:.3f}", line=dict(color=rgb),
                                 marker=dict(size=5), legendgroup=name,
                                 hovertemplate="sample %{x}: %{y:.3f}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(tickvals=[0, 1], ticktext=["after", "before"], range=[-0.6, 1.6], row=1, col=1)
    fig.update_xaxes(title_text=f"feature dimension {view['dim']} (σ {b['std']:.4f} → {a['std']:.4f})", row=1, col=1)
    fig.update_xaxes(title_text="sample, ranked by its baseline distance", row=1, col=2)
    fig.update_yaxes(title_text="distance", rangemode="tozero", row=1, col=2)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=340, template="plotly_white", margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


RANKED_COLUMNS = ["query", "id", "cam", "AP before", "AP after", "first match"]


def ranked_rows_frame(res: dict[str, Any]) -> Any:
    """Every query's ranked list as a table (:func:`pose2id_demo.engine.views.ranked_rows`):
    the query, its AP before and after, the rank of its first match, then one column per listed gallery item
    (``✓``/``✗``: same identity or not, its id, camera and distance)."""
    import pandas as pd

    top = max((len(r["gallery"]) for r in res["rows"]), default=0)
    data = []
    for r in res["rows"]:
        items = [f"{'✓' if g['match'] else '✗'} id {g['pid']} · c{g['camid']} · {g['distance']:.3f}"
                 for g in r["gallery"]]
        data.append([r["query"], r["pid"], r["camid"], round(r["AP before"], PCT_DECIMALS),
                     round(r["AP"], PCT_DECIMALS), r["first match"],
                     *items, *[""] * (top - len(items))])
    cols = RANKED_COLUMNS + [f"#{i}" for i in range(1, top + 1)]
    return styled(pd.DataFrame(data, columns=cols))


def paper_frame(tables: Sequence[tuple[str, list[str], list[list[Any]]]]) -> Any:
    """The paper's quoted numbers (:mod:`pose2id_demo.paper_reference`) as one table: the paper's table, the
    setting, mAP, Rank-1 and ID², as the paper prints them."""
    import pandas as pd

    data = []
    for title, headers, rows in tables:
        for row in rows:
            by = dict(zip(headers, row))
            data.append([title, by["setting"], f"{by['mAP']:.2f}", f"{by['Rank-1']:.2f}", f"{by['ID²']:.4f}"])
    return pd.DataFrame(data, columns=["paper", "setting", "mAP", "Rank-1", "ID²"])


def distance_note(dd: dict[str, Any], settings: Any) -> str:
    """The distance distributions in one sentence per row: overlap and mean distances, before → after."""
    rows = dd["rows"]
    parts = [f"{name} {h['overlap']:.3f} (same {h['mean_same']:.3f} / different {h['mean_different']:.3f})"
             for name, h in rows.items()]
    after = describe_setting(dd["after_setting"], settings)
    return (f"Overlap of the same-identity and different-identity distance histograms (shared area; lower = "
            f"better separated) and mean distances: {'; '.join(parts)}. After = {after}; Euclidean distances of "
            "each row's features" + (" (re-ranking does not apply here)." if settings.rerank else "."))
