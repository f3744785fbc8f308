"""The occluded task's occluders (cars/boxes, poles, bushes, other pedestrians, signs), like
Occluded-REID; keypoints under an occluder get confidence 0."""

from __future__ import annotations

import numpy as np

from pose2id_demo.data.synthped.canvas import Canvas
from pose2id_demo.data.synthped.constants import H, W
from pose2id_demo.data.synthped.identities import CLOTH, _hex, _jitter, _pick_colour


def _add_occluders(canvas: Canvas, rng: np.random.Generator, kp: np.ndarray) -> float:
    """Cover part of the person; returns the covered fraction of the image. Sets covered keypoints' conf to 0."""
    mask = np.zeros((H, W), np.float32)
    kind = rng.choice(["box", "pole", "bush", "person", "sign", "car"], p=[0.22, 0.13, 0.18, 0.17, 0.1, 0.2])
    colour = _jitter(CLOTH[_pick_colour(rng)], rng, 0.1)

    def paint_poly(pts, col, rounding=1.0):
        a = canvas.polygon(np.asarray(pts, np.float32), col, rounding=rounding, shade_axis=None)
        return a

    def stamp(pts, col, rounding=1.0):
        got = canvas._window(min(p[0] for p in pts) - rounding, max(p[0] for p in pts) + rounding,
                             min(p[1] for p in pts) - rounding, max(p[1] for p in pts) + rounding)
        a = paint_poly(pts, col, rounding)
        if got is not None and a is not None:
            mask[got[0]] = np.maximum(mask[got[0]], a)

    if kind in ("box", "car"):
        top = rng.uniform(0.5, 0.72) * H
        x0, x1 = (-2, W + 2) if rng.random() < 0.6 else (rng.uniform(-4, 20), rng.uniform(44, W + 4))
        stamp([[x0, top], [x1, top], [x1, H + 2], [x0, H + 2]], colour, rounding=3.0 if kind == "car" else 1.0)
        if kind == "car":  # window band and a wheel
            stamp([[x0 + 3, top + 3], [x1 - 3, top + 3], [x1 - 3, top + 9], [x0 + 3, top + 9]],
                  np.array([0.2, 0.25, 0.3]))
            wx = rng.uniform(8, W - 8)
            canvas.ellipse((wx, H - 2), 7, 7, np.array([0.08, 0.08, 0.08]))
        else:  # box edges
            stamp([[x0, top], [x1, top], [x1, top + 2], [x0, top + 2]], colour * 0.7)
    elif kind == "pole":
        x = rng.uniform(14, W - 14)
        wpx = rng.uniform(6, 14)
        stamp([[x - wpx, -2], [x + wpx, -2], [x + wpx, H + 2], [x - wpx, H + 2]], colour * 0.6 + 0.2, rounding=0.5)
    elif kind == "bush":
        base = rng.uniform(0.55, 0.75) * H
        greens = _hex("2f5a25")
        for _ in range(7):
            cx, cy = rng.uniform(-5, W + 5), rng.uniform(base, H + 8)
            r = rng.uniform(9, 16)
            got = canvas._window(cx - r, cx + r, cy - r, cy + r)
            canvas.ellipse((cx, cy), r, r * 0.9, greens * rng.uniform(0.7, 1.4), shade=True)
            if got is not None:
                win, xs, ys = got
                mask[win] = np.maximum(mask[win], np.clip(0.5 - (np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) - r), 0, 1))
    elif kind == "person":  # another pedestrian's back/shoulder in front
        side = rng.choice([-1, 1])
        x = W / 2 + side * rng.uniform(14, 26)
        top = rng.uniform(0.25, 0.45) * H
        stamp([[x - 16, top + 10], [x + 16, top + 10], [x + 14, H + 2], [x - 14, H + 2]], colour, rounding=4)
        hc = _hex("2e2118") * rng.uniform(0.6, 1.5)
        canvas.ellipse((x, top + 2), 8, 9, hc, shade=True)
        got = canvas._window(x - 8, x + 8, top - 7, top + 11)
        if got is not None:
            win, xs, ys = got
            head = np.sqrt(((xs - x) / 8) ** 2 + ((ys - top - 2) / 9) ** 2)
            mask[win] = np.maximum(mask[win], np.clip(0.5 - (head - 1) * 8, 0, 1))
    else:  # sign board on a stand
        y0 = rng.uniform(0.3, 0.6) * H
        x0 = rng.uniform(-6, 20)
        stamp([[x0, y0], [x0 + rng.uniform(30, 44), y0], [x0 + rng.uniform(30, 44), y0 + rng.uniform(26, 40)],
               [x0, y0 + 30]], colour, rounding=1.0)
    xi = np.clip(kp[:, 0].astype(int), 0, W - 1)
    yi = np.clip(kp[:, 1].astype(int), 0, H - 1)
    covered = mask[yi, xi] > 0.5
    kp[covered, 2] = 0.0
    return float(mask.mean())
