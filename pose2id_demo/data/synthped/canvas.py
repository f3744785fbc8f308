"""The signed-distance painter: a float image on which anti-aliased capsules, ellipses and rounded
convex polygons are painted (the distance itself gives the anti-aliasing)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pose2id_demo.data.synthped.constants import W

ColourLike = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]


class Canvas:
    """A float image painted with anti-aliased signed-distance primitives.

    ``cmap`` maps every colour (arrays ``(..., 3)``) before it is painted — the infrared task passes a
    near-infrared reflectance map here.
    """

    def __init__(self, img: np.ndarray, cmap: Callable[[np.ndarray], np.ndarray] | None = None,
                 light: float = 0.0, light_x: float = W / 2):
        self.img = img
        self.h, self.w = img.shape[:2]
        self.cmap = cmap
        self.light = light
        self.light_x = light_x

    def _window(self, x0: float, x1: float, y0: float, y1: float):
        ix0, ix1 = max(math.floor(x0) - 1, 0), min(math.ceil(x1) + 1, self.w)
        iy0, iy1 = max(math.floor(y0) - 1, 0), min(math.ceil(y1) + 1, self.h)
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        ys = np.arange(iy0, iy1, dtype=np.float32)[:, None] + 0.5
        xs = np.arange(ix0, ix1, dtype=np.float32)[None, :] + 0.5
        return (slice(iy0, iy1), slice(ix0, ix1)), xs, ys

    def _paint(self, win, xs, ys, d: np.ndarray, colour: ColourLike, shade: np.ndarray | None = None,
               opacity: float = 1.0) -> np.ndarray:
        alpha = np.clip(0.5 - d, 0.0, 1.0) * opacity
        if not np.any(alpha > 0):
            return alpha
        col = colour(xs, ys) if callable(colour) else np.broadcast_to(np.asarray(colour, np.float32), (1, 1, 3))
        if self.cmap is not None:
            col = self.cmap(col)
        factor = 1.0 + self.light * np.clip((xs - self.light_x) / 16.0, -1, 1)
        if shade is not None:
            factor = factor * shade
        col = col * factor[..., None] if np.ndim(factor) else col * factor
        a = alpha[..., None]
        region = self.img[win]
        self.img[win] = region * (1 - a) + col * a
        return alpha

    def capsule(self, p0, p1, r0: float, r1: float | None = None, colour: ColourLike = None,
                shade: bool = True, opacity: float = 1.0) -> None:
        """A limb: segment p0→p1 with radius r0 at p0 and r1 at p1, cylindrically shaded."""
        r1 = r0 if r1 is None else r1
        (ax, ay), (bx, by) = p0, p1
        rm = max(r0, r1)
        got = self._window(min(ax, bx) - rm, max(ax, bx) + rm, min(ay, by) - rm, max(ay, by) + rm)
        if got is None:
            return
        win, xs, ys = got
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy + 1e-6
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / L2, 0.0, 1.0)
        px, py = xs - (ax + t * dx), ys - (ay + t * dy)
        dist = np.sqrt(px * px + py * py)
        r = r0 + (r1 - r0) * t
        d = dist - r
        sh = (0.72 + 0.28 * np.sqrt(np.clip(1 - dist / np.maximum(r, 0.5), 0, 1))) if shade else None
        self._paint(win, xs, ys, d, colour, sh, opacity)

    def ellipse(self, c, rx: float, ry: float, colour: ColourLike, shade: bool = False,
                opacity: float = 1.0, clip_above: float | None = None) -> None:
        """An axis-aligned ellipse (approximate SDF); ``clip_above`` keeps only y < that value."""
        cx, cy = c
        got = self._window(cx - rx, cx + rx, cy - ry, cy + ry)
        if got is None:
            return
        win, xs, ys = got
        q = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
        d = (q - 1.0) * min(rx, ry)
        if clip_above is not None:
            d = np.maximum(d, ys - clip_above)
        sh = (0.75 + 0.25 * np.sqrt(np.clip(1 - q, 0, 1))) if shade else None
        self._paint(win, xs, ys, d, colour, sh, opacity)

    def polygon(self, pts: np.ndarray, colour: ColourLike, rounding: float = 0.0, shade_axis=None,
                opacity: float = 1.0) -> np.ndarray | None:
        """A convex polygon (vertices in order), optionally rounded. Returns its alpha on its window."""
        pts = np.asarray(pts, np.float32)
        got = self._window(pts[:, 0].min() - rounding, pts[:, 0].max() + rounding,
                           pts[:, 1].min() - rounding, pts[:, 1].max() + rounding)
        if got is None:
            return None
        win, xs, ys = got
        centre = pts.mean(0)
        d = np.full((ys.shape[0], xs.shape[1]), -1e9, np.float32)
        n = len(pts)
        for i in range(n):
            a, b = pts[i], pts[(i + 1) % n]
            e = b - a
            nrm = np.array([e[1], -e[0]], np.float32)
            nrm /= np.linalg.norm(nrm) + 1e-9
            if np.dot(centre - a, nrm) > 0:
                nrm = -nrm
            d = np.maximum(d, (xs - a[0]) * nrm[0] + (ys - a[1]) * nrm[1])
        d = d - rounding
        sh = None
        if shade_axis is not None:  # (x_centre, half_width): cylindrical shading across the body
            xc, hw = shade_axis
            sh = 0.75 + 0.25 * np.sqrt(np.clip(1 - ((xs - xc) / max(hw, 1.0)) ** 2, 0, 1))
            sh = np.broadcast_to(sh, d.shape)
        return self._paint(win, xs, ys, d, colour, sh, opacity)
