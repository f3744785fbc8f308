"""One image: background crop, person, task effects (occluders / infrared), camera response, blur,
noise; returns the picture and its keypoints."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from pose2id_demo.data.synthped.cameras import CAMERAS, Shot, _draw_shot, camera_background
from pose2id_demo.data.synthped.canvas import Canvas
from pose2id_demo.data.synthped.constants import DIRECTIONS, H, W
from pose2id_demo.data.synthped.identities import Identity
from pose2id_demo.data.synthped.infrared import IR_BACKGROUND, IR_NOISE, IR_VIGNETTE, _ir_map
from pose2id_demo.data.synthped.occluders import _add_occluders
from pose2id_demo.data.synthped.person import render_person


def _misplace(shot: Shot, rng: np.random.Generator, box: str) -> None:
    """Move / rescale the person of ``shot`` in place the way a bad detector box frames it."""
    if box == "bad_detection":
        shot.height_px *= rng.uniform(1.3, 2.2)
        shot.foot_y += rng.uniform(0.2, 0.9) * shot.height_px * rng.choice([-1, 1]) * 0.6
        shot.cx += rng.choice([-1, 1]) * rng.uniform(18, 30)
        return
    kind = rng.choice(["partial", "background", "tight"], p=[0.45, 0.25, 0.3])
    if kind == "partial":        # half the body outside the box, sideways or vertically
        if rng.random() < 0.5:
            shot.cx += rng.choice([-1, 1]) * rng.uniform(20, 30)
        else:
            shot.foot_y += rng.choice([-1, 1]) * rng.uniform(0.35, 0.6) * shot.height_px
    elif kind == "background":   # a box that is mostly background: a small person off to one side
        shot.height_px *= rng.uniform(0.25, 0.45)
        shot.cx = rng.uniform(4, W - 4)
        shot.foot_y = rng.uniform(0.4, 1.0) * H
    else:                        # far too tight: a torso or legs fill the box
        shot.height_px *= rng.uniform(1.8, 2.8)
        shot.foot_y += rng.uniform(0.3, 0.8) * shot.height_px
        shot.cx += rng.normal(0, 6)


@dataclass
class Rendered:
    image: Image.Image
    keypoints: np.ndarray
    jpeg: int
    meta: dict = field(default_factory=dict)


def render_image(seed: int, ident: Identity | None, camid: int, rng: np.random.Generator,
                 task_rng: np.random.Generator | None = None, mode: str = "visible",
                 box: str = "person", shot: Shot | None = None) -> Rendered:
    """Render one crop. ``mode``: "visible" | "occluded" | "infrared"; ``task_rng`` drives occluders.

    ``box``: how the detector framed the person — "person" (a good box), "bad_detection" (Market's
    distractor-like false detections: mis-scaled and off-centre) or "junk" (Market's pid −1 crops:
    a partial body, mostly background, or a box far too tight); with ``ident=None`` only background.

    ``shot``: the per-image choices to use instead of drawing them from ``rng`` (the ground-truth renders
    of :func:`pose2id_demo.data.synthped.ground_truth.render_ground_truth` combine two items' shots).
    """
    cam = CAMERAS[camid - 1]
    if shot is None:
        shot = _draw_shot(rng, camid, ident.gait_amp if ident is not None else 0.4)
    bg = camera_background(seed, camid)[shot.bg_y:shot.bg_y + H, shot.bg_x:shot.bg_x + W].copy()
    cmap = _ir_map if mode == "infrared" else None
    if mode == "infrared":
        bg = _ir_map(bg) * IR_BACKGROUND
    canvas = Canvas(bg, cmap=cmap, light=cam.light, light_x=shot.cx)
    kp = np.zeros((18, 3), np.float32)
    if box == "person":
        canvas.ellipse((shot.cx, shot.foot_y), 0.14 * shot.height_px, 2.5, np.zeros(3), opacity=0.35)
        kp = render_person(canvas, ident, shot)
    elif ident is not None:
        _misplace(shot, rng, box)
        canvas.ellipse((shot.cx, shot.foot_y), 0.22 * shot.height_px * 0.5, 3.0, np.zeros(3), opacity=0.3)
        kp = render_person(canvas, ident, shot)
    meta = {"direction": DIRECTIONS[shot.direction], "camid": camid}
    if mode == "occluded":
        assert task_rng is not None
        meta["occluded_fraction"] = _add_occluders(canvas, task_rng, kp)
    img = canvas.img
    gain = np.asarray(cam.gain, np.float32) if mode != "infrared" else np.ones(3, np.float32)
    img = img * gain * cam.brightness * shot.brightness
    img = (img - 0.5) * cam.contrast + 0.5
    noise_rng = np.random.default_rng(shot.noise_seed)
    blur = cam.blur
    noise = cam.noise
    jpeg = shot.jpeg
    if mode == "infrared":  # active NIR illuminator: bright centre, dark corners, grainy, soft
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        vig = 1.0 + 0.25 * IR_VIGNETTE / 0.9 - IR_VIGNETTE * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2) * 2.2
        img = img * vig[..., None]
        blur, noise, jpeg = blur + 0.3, noise + IR_NOISE, min(jpeg, 75)
    u8 = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    pil = Image.fromarray(u8, "RGB")
    if blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(radius=blur))
    arr = np.asarray(pil, np.float32)
    nz = noise_rng.normal(0, noise, (H, W, 1 if mode == "infrared" else 3)).astype(np.float32)
    arr = np.clip(arr + nz + 0.5, 0, 255).astype(np.uint8)
    if mode == "infrared":
        arr = np.repeat(arr[..., :1], 3, axis=-1)
    # keypoints outside the crop are not visible
    outside = (kp[:, 0] < 0) | (kp[:, 0] > W - 1) | (kp[:, 1] < 0) | (kp[:, 1] > H - 1)
    kp[outside, 2] = 0.0
    kp[:, 0] = np.clip(kp[:, 0], 0, W - 1)
    kp[:, 1] = np.clip(kp[:, 1], 0, H - 1)
    return Rendered(Image.fromarray(arr, "RGB"), kp, jpeg, meta)
