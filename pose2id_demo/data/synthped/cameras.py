"""Where a person is seen: the six cameras (background kind, colour cast, light, optics, JPEG quality,
preferred walking directions), their background canvases, and the per-image :class:`Shot` drawn for a
camera (view direction, gait phase, scale, placement, crop window, exposure, noise seed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from pose2id_demo.data.synthped.constants import H, W
from pose2id_demo.data.synthped.identities import _hex

# ----------------------------------------------------------------------------------------------------
# Cameras and backgrounds
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """Per-camera appearance: background kind, light, optics and compression."""

    camid: int
    background: str
    gain: tuple[float, float, float]   # colour cast (multiplicative RGB)
    brightness: float
    contrast: float
    blur: float                        # Gaussian blur radius (px)
    noise: float                       # sensor noise std (0..255 scale)
    jpeg: int                          # JPEG quality
    height_frac: tuple[float, float]   # person height / image height
    dir_weights: tuple[float, ...]     # preference over the 8 directions
    light: float                       # left/right light gradient strength


CAMERAS = (
    Camera(1, "brick", (1.05, 0.98, 0.92), 1.00, 1.00, 0.3, 3.0, 90, (0.78, 0.90), (3, 1, 1, 1, 3, 1, 1, 1), 0.10),
    Camera(2, "grass", (0.95, 1.03, 0.95), 1.08, 0.95, 0.6, 4.0, 80, (0.74, 0.88), (1, 1, 3, 1, 1, 1, 3, 1), -0.12),
    Camera(3, "corridor", (1.08, 1.02, 0.86), 0.92, 0.90, 0.9, 5.0, 70, (0.80, 0.93), (2, 2, 1, 2, 2, 2, 1, 2), 0.05),
    Camera(4, "street", (0.92, 0.97, 1.08), 0.95, 1.05, 0.5, 6.0, 75, (0.72, 0.86), (1, 3, 1, 3, 1, 3, 1, 3), 0.15),
    Camera(5, "shop", (1.02, 0.96, 1.02), 1.05, 1.10, 0.4, 3.5, 85, (0.76, 0.90), (2, 1, 2, 1, 2, 1, 2, 1), -0.08),
    Camera(6, "park", (0.98, 1.0, 0.96), 0.85, 0.85, 1.1, 7.0, 60, (0.74, 0.90), (1, 1, 1, 1, 1, 1, 1, 1), 0.0),
)

_BG_H, _BG_W = 192, 256  # each camera's background canvas; images crop a window of it
BG_DESATURATE = 0.35   # fraction of colour removed from backgrounds
BG_CONTRAST = 0.55     # background texture contrast
BG_BLUR = 1.2          # background blur radius (px, depth of field)


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth noise in [0, 1]: bilinear upsampling of a coarse random grid."""
    gh, gw = h // cell + 2, w // cell + 2
    g = rng.random((gh, gw)).astype(np.float32)
    y = np.arange(h, dtype=np.float32) / cell
    x = np.arange(w, dtype=np.float32) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a, b = g[y0][:, x0], g[y0][:, x0 + 1]
    c, d = g[y0 + 1][:, x0], g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


@lru_cache(maxsize=32)
def camera_background(seed: int, camid: int) -> np.ndarray:
    """The camera's background canvas (``_BG_H`` × ``_BG_W`` × 3 float32 in [0, 1]); cached."""
    cam = CAMERAS[camid - 1]
    rng = np.random.default_rng([seed, 11, camid])
    h, w = _BG_H, _BG_W
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    n1 = _value_noise(rng, h, w, 16)[..., None]
    n2 = _value_noise(rng, h, w, 4)[..., None]
    horizon = int(h * rng.uniform(0.55, 0.68))
    ground = (yy >= horizon)[..., None]
    kind = cam.background
    if kind == "brick":
        row = (yy // 9).astype(int)
        mortar = ((yy % 9) < 1.2) | (((xx + (row % 2) * 10) % 20) < 1.2)
        brick_tone = rng.random((h // 9 + 1, w // 20 + 2))[row, ((xx + (row % 2) * 10) // 20).astype(int)]
        brick = _hex("9a5a44") * (0.85 + 0.3 * n2) * (0.9 + 0.2 * brick_tone[..., None])
        wall = np.where(mortar[..., None], _hex("bdb3a4"), brick)
        joints = ((xx + yy * 0.3) % 24 < 1) | (yy % 12 < 1)
        pave = _hex("8d8c88") * (0.85 + 0.25 * n2) * np.where(joints, 0.8, 1.0)[..., None]
        img = np.where(ground, pave, wall)
    elif kind == "grass":
        hedge = _hex("3f6b2c") * (0.6 + 0.6 * n1) * (0.8 + 0.4 * n2)
        sky = _hex("c9d8e6") * (0.95 + 0.1 * n1)
        grass = _hex("6f9a3c") * (0.75 + 0.35 * n2) * (0.9 + 0.2 * n1)
        hedge_top = h * 0.25 + 10 * n1[..., 0]
        img = np.where(ground, grass, np.where((yy > hedge_top)[..., None], hedge, sky))
    elif kind == "corridor":
        wall = _hex("d6cdb8") * (0.92 + 0.1 * n1)
        panels = ((xx % 48) < 2)[..., None]
        wall = np.where(panels, wall * 0.75, wall)
        door = ((xx % 96 > 60) & (xx % 96 < 84) & (yy > h * 0.2))[..., None]
        wall = np.where(door, _hex("7a5a3c") * (0.9 + 0.15 * n2), wall)
        floor = _hex("b7a98c") * (0.85 + 0.2 * n2) * np.where((xx % 16 < 1) | (yy % 10 < 1), 0.85, 1.0)[..., None]
        img = np.where(ground, floor, wall)
    elif kind == "street":
        bld = _hex("8b8f96") * (0.85 + 0.2 * n1)
        win = (((xx % 28) > 6) & ((xx % 28) < 20) & ((yy % 30) > 6) & ((yy % 30) < 22))[..., None]
        bld = np.where(win, _hex("3b4552") * (0.8 + 0.5 * n2), bld)
        asphalt = _hex("4d4f52") * (0.8 + 0.35 * n2)
        lane = ((np.abs(yy - (horizon + 30)) < 2) & ((xx % 40) < 22))[..., None]
        img = np.where(ground, np.where(lane, _hex("d8d8cf"), asphalt), bld)
    elif kind == "shop":
        stripe = ((xx // 14) % 2 == 0)[..., None]
        awning = np.where(stripe, _hex("b8323a"), _hex("ece6dc")) * (0.9 + 0.1 * n1)
        glass = _hex("5d7886") * (0.7 + 0.5 * n1) * (0.9 + 0.2 * n2)
        frame = ((xx % 64) < 3)[..., None]
        glass = np.where(frame, _hex("2a2a2a"), glass)
        upper = np.where((yy < h * 0.22)[..., None], awning, glass)
        tiles = _hex("a9a49b") * (0.88 + 0.2 * n2) * np.where((xx % 20 < 1) | (yy % 20 < 1), 0.8, 1.0)[..., None]
        img = np.where(ground, tiles, upper)
    else:  # park
        trees = _hex("355a2a") * (0.5 + 0.9 * n1 * n2 + 0.2 * n2)
        trunks = ((np.abs(((xx + 30 * n1[..., 0]) % 70) - 35) < 4) & (yy > h * 0.3))[..., None]
        trees = np.where(trunks, _hex("4a3526") * (0.8 + 0.3 * n2), trees)
        path = _hex("a38c68") * (0.8 + 0.3 * n2) * (0.9 + 0.15 * n1)
        img = np.where(ground, path, trees)
    # a soft vertical light falloff shared by all kinds
    img = img * (0.9 + 0.15 * (1 - yy / h))[..., None]
    # backgrounds are out of focus and less contrasted than the person in front of them (like real
    # surveillance crops); without this, background texture dominates generic (ImageNet) features
    lum = img.mean(axis=-1, keepdims=True)
    img = lum + (img - lum) * (1.0 - BG_DESATURATE)
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + (img - mean) * BG_CONTRAST
    img = np.clip(img, 0, 1)
    if BG_BLUR > 0:
        pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8)).filter(ImageFilter.GaussianBlur(BG_BLUR))
        img = np.asarray(pil, np.float32) / 255.0
    return img.astype(np.float32)


@dataclass
class Shot:
    """Per-image random choices (everything not fixed by identity or camera)."""

    camid: int
    theta: float
    direction: int
    phase: float
    amp: float
    height_px: float
    cx: float
    foot_y: float
    bg_x: int
    bg_y: int
    brightness: float
    jpeg: int
    noise_seed: int


def _draw_shot(rng: np.random.Generator, camid: int, amp_base: float) -> Shot:
    cam = CAMERAS[camid - 1]
    w = np.asarray(cam.dir_weights, np.float64)
    direction = int(rng.choice(8, p=w / w.sum()))
    theta = direction * math.pi / 4 + rng.normal(0, 0.12)
    hf = rng.uniform(*cam.height_frac)
    height_px = hf * H
    foot_y = H - rng.uniform(1.5, max(2.0, (H - height_px) * 0.7))
    return Shot(
        camid=camid, theta=theta, direction=direction, phase=float(rng.uniform(0, 2 * math.pi)),
        amp=float(amp_base * rng.uniform(0.4, 1.1)), height_px=float(height_px),
        cx=float(W / 2 + rng.normal(0, 2.0)), foot_y=float(foot_y),
        bg_x=int(rng.integers(0, _BG_W - W)), bg_y=int(rng.integers(0, _BG_H - H)),
        brightness=float(rng.normal(1.0, 0.06)), jpeg=int(np.clip(cam.jpeg + rng.integers(-8, 9), 40, 98)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )
