"""Ranked-list strips in torchreid's ``visrank`` style: the query, then its top-k gallery images left to right,
each framed green when it shows the query's identity and red when it does not.

The lists come from :func:`pose2id_demo.ablation.ranked_rows` (the ranking the metrics score: same-pid
same-camera gallery items left out, ties by gallery index); this module only draws them (PIL) and picks the
queries to draw (:func:`split_queries`: the worst and best lists never share a query).  ``python -m
pose2id_demo visrank`` writes one PNG per query with the baseline's strip above the current setting's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["MATCH", "MISMATCH", "query_panel", "rank_strip", "select_queries", "split_queries"]

MATCH, MISMATCH, QUERY = (40, 170, 70), (210, 40, 50), (60, 60, 60)
CELL = (64, 128)  # width, height of one image (Market-1501 crops are 2 : 1)
BORDER, GAP, QUERY_GAP, CAPTION = 4, 6, 24, 26


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _framed(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    w, h = CELL
    out = Image.new("RGB", (w + 2 * BORDER, h + 2 * BORDER), colour)
    out.paste(img.convert("RGB").resize(CELL, Image.BILINEAR), (BORDER, BORDER))
    return out


def _label_width(label: str) -> int:
    font = _font()
    return 8 + int(max((font.getlength(line) for line in label.split("\n")), default=0)) if label else 0


def rank_strip(query: Image.Image, gallery: Sequence[Image.Image], matches: Sequence[bool],
               captions: Sequence[str] = (), query_caption: str = "query", label: str = "",
               label_width: int | None = None) -> Image.Image:
    """One strip: ``label`` (left, in ``label_width`` pixels: default its own width), the query (grey frame),
    then ``gallery`` in rank order, framed green where ``matches`` is true and red where not; ``captions``
    (one per gallery image, up to two short lines) under the images."""
    fw, fh = CELL[0] + 2 * BORDER, CELL[1] + 2 * BORDER
    font = _font()
    label_w = _label_width(label) if label_width is None else int(label_width)
    width = label_w + fw + QUERY_GAP + len(gallery) * (fw + GAP)
    strip = Image.new("RGB", (width, fh + CAPTION), "white")
    draw = ImageDraw.Draw(strip)
    if label:
        draw.multiline_text((4, fh // 2 - 12), label, fill=(0, 0, 0), font=font)
    strip.paste(_framed(query, QUERY), (label_w, 0))
    draw.multiline_text((label_w + 2, fh + 2), query_caption, fill=(0, 0, 0), font=font)
    x = label_w + fw + QUERY_GAP
    captions = list(captions) + [""] * (len(gallery) - len(captions))
    for img, ok, cap in zip(gallery, matches, captions):
        strip.paste(_framed(img, MATCH if ok else MISMATCH), (x, 0))
        draw.multiline_text((x + 2, fh + 2), cap, fill=(0, 0, 0), font=font)
        x += fw + GAP
    return strip


def query_panel(query_path: str | Path, lists: Sequence[tuple[str, dict[str, Any]]],
                gallery_paths: Sequence[str | Path], title: str = "") -> Image.Image:
    """One query's strips stacked: ``lists`` holds ``(label, row)`` pairs, ``row`` a
    :func:`pose2id_demo.ablation.ranked_rows` entry of this query; each gallery image is captioned with its
    rank, distance and camera, each strip labelled with its setting and the query's AP."""
    with Image.open(query_path) as im:
        query = im.convert("RGB")
    labels = [f"{label}\n" + ("no valid match" if not np.isfinite(row["AP"]) else f"AP {row['AP']:.1f}")
              for label, row in lists]
    label_width = max(_label_width(label) for label in labels) if labels else 0
    strips = []
    for (_, row), label in zip(lists, labels):
        items = row["gallery"]
        images = []
        for it in items:
            with Image.open(gallery_paths[it["index"]]) as im:
                images.append(im.convert("RGB"))
        strips.append(rank_strip(query, images, [it["match"] for it in items],
                                 [f"{r + 1}: {it['distance']:.3f}\ncam {it['camid']}" for r, it in enumerate(items)],
                                 query_caption=f"cam {row['camid']}", label=label, label_width=label_width))
    font = _font()
    head = 18 if title else 0
    width = max(s.width for s in strips)
    panel = Image.new("RGB", (width, head + sum(s.height + 4 for s in strips)), "white")
    if title:
        ImageDraw.Draw(panel).text((4, 3), title, fill=(0, 0, 0), font=font)
    y = head
    for s in strips:
        panel.paste(s, (0, y))
        y += s.height + 4
    return panel


def split_queries(ap: np.ndarray, num: int, kinds: Sequence[str]) -> dict[str, np.ndarray]:
    """The queries to draw for each of ``kinds`` (``"worst"``, ``"best"`` or both), ``num`` each, never one query
    in two lists: among the ``Q`` queries with a valid match, when both are asked and ``Q < 2 · num``, the worst
    list gets ``ceil(Q / 2)`` and the best list the other ``floor(Q / 2)``; the best are picked among the queries
    the worst list left (so equal APs cannot put a query in both). Each list is in its own order (lowest or
    highest AP first, equal APs in query order)."""
    for k in kinds:
        if k not in ("worst", "best"):
            raise ValueError(f"which must be 'worst' or 'best', got {k!r}")
    ap = np.asarray(ap, np.float64)
    q, num = int(np.isfinite(ap).sum()), max(0, int(num))
    both = "worst" in kinds and "best" in kinds
    n_worst = min(num, -(-q // 2)) if both and q < 2 * num else min(num, q)
    out = {"worst": select_queries(ap, n_worst, "worst")} if "worst" in kinds else {}
    if "best" in kinds:
        rest = ap.copy()
        rest[out.get("worst", [])] = np.nan  # taken by the worst list
        out["best"] = select_queries(rest, min(num, int(np.isfinite(rest).sum())), "best")
    return {k: out[k] for k in kinds}


def select_queries(ap: np.ndarray, num: int, which: str) -> np.ndarray:
    """Indices of the ``num`` queries with the lowest (``which="worst"``) or highest (``"best"``) AP, among
    those with a valid match; equal APs in query order."""
    ap = np.asarray(ap, np.float64)
    valid = np.flatnonzero(np.isfinite(ap))
    if which not in ("worst", "best"):
        raise ValueError(f"which must be 'worst' or 'best', got {which!r}")
    key = ap[valid] if which == "worst" else -ap[valid]
    return valid[np.argsort(key, kind="stable")[:max(0, int(num))]]
