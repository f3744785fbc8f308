"""SynthPed: a deterministic procedural pedestrian benchmark in Market-1501 layout.

No real ReID data can be downloaded here, so the demo renders its own labelled pedestrians. Every image
is a 128 × 64 (H × W) crop like Market-1501's, written with its ground-truth OpenPose-18 keypoints
(:class:`pose2id_demo.poses.keypoints.Pose` json beside the image).

What tells identities apart is what ReID models really look at — body build (shoulder/hip width, leg
length, head size), skin, hair style and colour, top and bottom colours and patterns (horizontal
stripes, a chest logo, two-tone halves, an open jacket), trousers / shorts / skirt, shoes and bags
(backpack, shoulder bag, handbag) — and about a third of the identities are deliberate near-duplicates
of another one (same outfit, one or two attributes changed) so the task is not trivial.

Each image shows a walking person in one of 8 view directions (the direction the person faces:
front, front-right, right, back-right, back, back-left, left, front-left) at a random gait phase. The
body is a small 3-D skeleton rotated about the vertical axis and projected orthographically; limbs,
torso, head, hair and bags are drawn far-to-near (painter's algorithm on their rotated depth), so far
limbs are hidden behind the torso. Primitives are signed-distance shapes evaluated on numpy grids
(anti-aliased by the distance itself), so a whole benchmark renders in well under a minute.

Six cameras each have their own background texture, colour cast and light, blur, sensor noise, scale
jitter, JPEG quality and preferred walking directions.

Tasks (they share the train split and the gallery; only the query images differ):

- ``standard``: Market-1501-like.
- ``occluded``: the same queries partly covered by occluders (cars/boxes, poles, bushes, other
  pedestrians, signs) like Occluded-REID; keypoints under an occluder get confidence 0.
- ``infrared``: the same queries rendered as near-infrared grey images (grey levels mostly from luminance
  but perturbed by a dye reflectance unrelated to hue, illuminator vignette, extra noise and blur) like
  SYSU-MM01's IR cameras, against a visible gallery — colour is no longer available, shape, pattern and
  brightness structure are. (With pure dye reflectances both shipped backbones were at chance level.)

Determinism: every image is drawn from its own ``numpy.random.default_rng([seed, split, pid, k])`` and
written with fixed PIL settings, so rendering is byte-for-byte reproducible and independent of render
order.  Usage::

    python -m pose2id_demo.data.synthped --out DIR --seed 0 [--task standard]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from pose2id_demo.paths import cache_dir
from pose2id_demo.poses.keypoints import Pose

logger = logging.getLogger(__name__)

VERSION = 3
H, W = 128, 64
TASKS = ("standard", "occluded", "infrared")
NUM_CAMERAS = 6
NUM_TRAIN_IDS = 300
TRAIN_IMAGES_PER_ID = 12
NUM_TEST_IDS = 100
QUERIES_PER_ID = 2
GALLERY_PER_ID = (5, 8)  # inclusive range
NUM_DISTRACTORS = 100
TRAIN_PID0 = 1
TEST_PID0 = 1001
NEAR_DUPLICATE_FRACTION = 0.35
DIRECTIONS = ("front", "front-right", "right", "back-right", "back", "back-left", "left", "front-left")
MANIFEST = "synthped.json"

_SPLIT_CODE = {"train": 1, "query": 2, "gallery": 3, "distractor": 4}
_TASK_CODE = {"standard": 0, "occluded": 1, "infrared": 2}

# ----------------------------------------------------------------------------------------------------
# Colour palettes (sRGB in [0, 1]).  Clothing colours are biased to the dark / neutral tones that
# dominate real street scenes, which is what makes colour alone insufficient.
# ----------------------------------------------------------------------------------------------------


def _hex(h: str) -> np.ndarray:
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


CLOTH = {name: _hex(h) for name, h in {
    "black": "1c1c20", "charcoal": "3a3b40", "grey": "7d7f84", "light_grey": "b8b9bc", "white": "e8e8e4",
    "navy": "1f2a4a", "denim": "3c5a86", "light_blue": "8fb3d9", "royal": "2d4fb0", "teal": "1f7a7a",
    "green": "2f6b35", "olive": "6b6b2f", "mint": "9fd6b5", "yellow": "e2c23a", "mustard": "b8922a",
    "orange": "d9732a", "red": "b52a2a", "maroon": "6a1f2a", "pink": "e59ab4", "purple": "5e3a86",
    "beige": "cdb894", "khaki": "a8996a", "brown": "6b4a2f", "tan": "b08a5c",
}.items()}
_CLOTH_NAMES = tuple(CLOTH)
# sampling weights: dark/neutral colours are common
_CLOTH_W = np.array([6, 4, 4, 2, 4, 4, 4, 1.5, 1.5, 1, 1, 1, 0.7, 1, 0.7, 0.8, 1.5, 1, 0.8, 0.8, 2, 1.5, 1.5, 1],
                    np.float64)
_CLOTH_W /= _CLOTH_W.sum()
SKIN = [_hex(h) for h in ("f1d0b4", "e3b48f", "c98f66", "a86d47", "7a4b2e", "5a3522")]
HAIR = [_hex(h) for h in ("141210", "2e2118", "54392a", "8a6a45", "c9a86a", "9a9a9a", "7a3a1e")]
_HAIR_W = np.array([6, 4, 3, 1.5, 1, 0.8, 0.6]); _HAIR_W /= _HAIR_W.sum()
SHOES = [_hex(h) for h in ("151515", "ececec", "5a3b24", "6e6e6e", "a52626", "2b3f7a")]
_SHOE_W = np.array([5, 3, 2, 1.5, 0.6, 0.6]); _SHOE_W /= _SHOE_W.sum()

TOP_PATTERNS = ("solid", "stripes", "logo", "two_tone_v", "two_tone_h", "open_jacket", "back_print")
_TOP_W = np.array([5, 2, 2, 1.2, 1.2, 1.5, 1]); _TOP_W /= _TOP_W.sum()
BOTTOMS = ("trousers", "shorts", "skirt")
_BOTTOM_W = np.array([7, 2, 1.5]); _BOTTOM_W /= _BOTTOM_W.sum()
HAIR_STYLES = ("short", "long", "ponytail", "buzz", "cap")
_HAIRSTYLE_W = np.array([5, 2.5, 1.2, 1, 1]); _HAIRSTYLE_W /= _HAIRSTYLE_W.sum()
BAGS = ("none", "backpack", "shoulder_bag", "handbag")
_BAG_W = np.array([4, 2.5, 1.5, 1]); _BAG_W /= _BAG_W.sum()
LOGO_SHAPES = ("circle", "square", "diamond", "bar")


def _pick_colour(rng: np.random.Generator, exclude: str | None = None) -> str:
    while True:
        name = _CLOTH_NAMES[rng.choice(len(_CLOTH_NAMES), p=_CLOTH_W)]
        if name != exclude:
            return name


def _jitter(c: np.ndarray, rng: np.random.Generator, amount: float = 0.05) -> np.ndarray:
    return np.clip(c * (1.0 + rng.normal(0, amount, 3)) + rng.normal(0, amount / 2), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Identity
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Everything that stays fixed for one person (body units: total height = 1)."""

    shoulder: float          # shoulder half-width
    hip: float               # hip half-width
    depth: float             # torso half-depth
    leg: float               # hip height above the soles
    head: float              # head radius
    limb: float              # limb thickness multiplier
    skin: np.ndarray
    hair: np.ndarray
    hair_style: str
    cap: np.ndarray          # cap colour (hair_style == "cap")
    top: np.ndarray
    top2: np.ndarray         # second colour of the top pattern
    top_pattern: str
    logo_shape: str
    long_sleeves: bool
    bottom: np.ndarray
    bottom_style: str
    shoes: np.ndarray
    bag: str
    bag_colour: np.ndarray
    bag_side: int            # -1 = person's right, +1 = left
    stripe_period: float     # in body units
    gait_amp: float          # stride amplitude (radians)

    def describe(self) -> dict:
        """A short json-able description (used in manifests and the montage)."""
        return {"top_pattern": self.top_pattern, "bottom_style": self.bottom_style, "bag": self.bag,
                "hair_style": self.hair_style, "long_sleeves": self.long_sleeves}


def _random_identity(rng: np.random.Generator) -> Identity:
    top_name = _pick_colour(rng)
    top2_name = _pick_colour(rng, exclude=top_name)
    return Identity(
        shoulder=float(rng.uniform(0.095, 0.135)),
        hip=float(rng.uniform(0.075, 0.105)),
        depth=float(rng.uniform(0.055, 0.08)),
        leg=float(rng.uniform(0.46, 0.53)),
        head=float(rng.uniform(0.058, 0.07)),
        limb=float(rng.uniform(0.85, 1.25)),
        skin=_jitter(SKIN[rng.integers(len(SKIN))], rng, 0.04),
        hair=_jitter(HAIR[rng.choice(len(HAIR), p=_HAIR_W)], rng, 0.05),
        hair_style=HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=_HAIRSTYLE_W)],
        cap=_jitter(CLOTH[_pick_colour(rng)], rng),
        top=_jitter(CLOTH[top_name], rng),
        top2=_jitter(CLOTH[top2_name], rng),
        top_pattern=TOP_PATTERNS[rng.choice(len(TOP_PATTERNS), p=_TOP_W)],
        logo_shape=LOGO_SHAPES[rng.integers(len(LOGO_SHAPES))],
        long_sleeves=bool(rng.random() < 0.55),
        bottom=_jitter(CLOTH[_pick_colour(rng)], rng),
        bottom_style=BOTTOMS[rng.choice(len(BOTTOMS), p=_BOTTOM_W)],
        shoes=_jitter(SHOES[rng.choice(len(SHOES), p=_SHOE_W)], rng, 0.04),
        bag=BAGS[rng.choice(len(BAGS), p=_BAG_W)],
        bag_colour=_jitter(CLOTH[_pick_colour(rng)], rng),
        bag_side=int(rng.choice([-1, 1])),
        stripe_period=float(rng.uniform(0.035, 0.07)),
        gait_amp=float(rng.uniform(0.3, 0.5)),
    )


def _near_duplicate(base: Identity, rng: np.random.Generator) -> Identity:
    """Same outfit as ``base`` with one or two attributes changed (the hard negatives)."""
    mutations = ["shoes", "bag", "pattern", "hair", "bottom_shade", "sleeves", "top_shade", "build"]
    chosen = rng.choice(len(mutations), size=int(rng.integers(1, 3)), replace=False)
    ident = replace(base, shoulder=float(np.clip(base.shoulder + rng.normal(0, 0.006), 0.09, 0.14)),
                    leg=float(np.clip(base.leg + rng.normal(0, 0.008), 0.45, 0.54)),
                    skin=_jitter(base.skin, rng, 0.02))
    for i in chosen:
        m = mutations[i]
        if m == "shoes":
            ident = replace(ident, shoes=_jitter(SHOES[rng.integers(len(SHOES))], rng, 0.04))
        elif m == "bag":
            new_bag = BAGS[(BAGS.index(base.bag) + int(rng.integers(1, len(BAGS)))) % len(BAGS)]
            ident = replace(ident, bag=new_bag, bag_colour=_jitter(CLOTH[_pick_colour(rng)], rng))
        elif m == "pattern":
            new_pat = TOP_PATTERNS[(TOP_PATTERNS.index(base.top_pattern) + int(rng.integers(1, len(TOP_PATTERNS))))
                                   % len(TOP_PATTERNS)]
            ident = replace(ident, top_pattern=new_pat)
        elif m == "hair":
            ident = replace(ident, hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
                            hair=_jitter(HAIR[rng.integers(len(HAIR))], rng, 0.05))
        elif m == "bottom_shade":
            ident = replace(ident, bottom=np.clip(base.bottom * rng.uniform(0.6, 1.4), 0, 1).astype(np.float32))
        elif m == "sleeves":
            ident = replace(ident, long_sleeves=not base.long_sleeves)
        elif m == "top_shade":
            ident = replace(ident, top=np.clip(base.top * rng.uniform(0.65, 1.35), 0, 1).astype(np.float32))
        elif m == "build":
            ident = replace(ident, shoulder=float(np.clip(base.shoulder * rng.uniform(0.85, 1.15), 0.09, 0.14)),
                            hip=float(np.clip(base.hip * rng.uniform(0.85, 1.15), 0.07, 0.11)),
                            limb=float(np.clip(base.limb * rng.uniform(0.85, 1.15), 0.8, 1.3)))
    return ident


def make_identities(seed: int, pids: Sequence[int], near_dup_fraction: float = NEAR_DUPLICATE_FRACTION
                    ) -> dict[int, Identity]:
    """Identities for ``pids``; a fraction of them are near-duplicates of an earlier pid of the same list."""
    out: dict[int, Identity] = {}
    pids = list(pids)
    for i, pid in enumerate(pids):
        rng = np.random.default_rng([seed, 7, pid])
        if i > 0 and rng.random() < near_dup_fraction:
            base_pid = pids[int(rng.integers(0, i))]
            out[pid] = _near_duplicate(out[base_pid], rng)
        else:
            out[pid] = _random_identity(rng)
    return out


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

_BG_H, _BG_W = 192, 256
BG_DESATURATE = 0.35   # fraction of colour removed from backgrounds
BG_CONTRAST = 0.55     # background texture contrast
BG_BLUR = 1.2          # background blur radius (px, depth of field)  # each camera's background canvas; images crop a window of it


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth noise in [0, 1]: bilinear upsampling of a coarse random grid."""
    gh, gw = h // cell + 2, w // cell + 2
    g = rng.random((gh, gw)).astype(np.float32)
    y = np.arange(h, dtype=np.float32) / cell
    x = np.arange(w, dtype=np.float32) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = g[y0][:, x0]; b = g[y0][:, x0 + 1]; c = g[y0 + 1][:, x0]; d = g[y0 + 1][:, x0 + 1]
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
        brick = _hex("9a5a44") * (0.85 + 0.3 * n2) * (0.9 + 0.2 * rng.random((h // 9 + 1, w // 20 + 2))[row, ((xx + (row % 2) * 10) // 20).astype(int)][..., None])
        wall = np.where(mortar[..., None], _hex("bdb3a4"), brick)
        pave = _hex("8d8c88") * (0.85 + 0.25 * n2) * np.where(((xx + yy * 0.3) % 24 < 1) | (yy % 12 < 1), 0.8, 1.0)[..., None]
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


# ----------------------------------------------------------------------------------------------------
# Signed-distance painter
# ----------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------
# The walking body
# ----------------------------------------------------------------------------------------------------


def _rot(v: np.ndarray, theta: float) -> np.ndarray:
    """Rotate body-frame points (x right-negative, y up, z forward) about y; returns (u, y, depth)."""
    c, s = math.cos(theta), math.sin(theta)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([x * c + z * s, y, -x * s + z * c], -1)


def _skeleton(ident: Identity, phase: float, amp: float) -> dict[str, np.ndarray]:
    """3-D joints in body units (x: person's left is +x, y: up from the soles, z: forward)."""
    sw, hw, leg = ident.shoulder, ident.hip, ident.leg
    thigh, shin = leg * 0.5, leg * 0.46
    j: dict[str, np.ndarray] = {}
    swing = amp * math.sin(phase)
    legs = {}
    for side, sgn in (("r", 1.0), ("l", -1.0)):
        a = sgn * swing                                     # hip flexion (forward positive)
        k = 0.12 + 0.5 * max(0.0, math.sin(phase * sgn + 1.2)) * amp / 0.4  # knee flexion
        knee = np.array([0, -thigh * math.cos(a), thigh * math.sin(a)])
        ankle = knee + np.array([0, -shin * math.cos(a - k), shin * math.sin(a - k)])
        legs[side] = (knee, ankle)
    drop = max(-legs["r"][1][1], -legs["l"][1][1])          # lowest ankle sits on the ground
    pelvis_y = drop + 0.035
    for side, xs in (("r", -hw), ("l", hw)):
        hip = np.array([xs, pelvis_y, 0.0])
        knee, ankle = legs[side]
        j[side + "_hip"] = hip
        j[side + "_knee"] = hip + knee
        j[side + "_ankle"] = hip + ankle
        j[side + "_toe"] = hip + ankle + np.array([0, -0.02, 0.06])
    neck_y = pelvis_y + (1.0 - ident.leg) * 0.62
    j["neck"] = np.array([0, neck_y, 0.0])
    j["head"] = np.array([0, neck_y + ident.head * 1.35, 0.01])
    upper, fore = 0.15 * (0.9 + 0.2 * ident.leg), 0.14 * (0.9 + 0.2 * ident.leg)
    for side, xs, sgn in (("r", -sw, -1.0), ("l", sw, 1.0)):
        sh = np.array([xs, neck_y - 0.02, 0.0])
        a = sgn * swing * 0.8                               # arms swing against the same-side leg
        e = 0.15 + 0.35 * max(0.0, a)
        elbow = sh + np.array([xs * 0.12, -upper * math.cos(a), upper * math.sin(a)])
        wrist = elbow + np.array([xs * 0.05, -fore * math.cos(a + e), fore * math.sin(a + e)])
        j[side + "_shoulder"], j[side + "_elbow"], j[side + "_wrist"] = sh, elbow, wrist
    return j


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


def _top_field(ident: Identity, theta: float, y_sh: float, y_hip: float, cx: float, hw: float, s: float):
    """Colour field of the top's pattern as seen from direction ``theta``."""
    c, sn = math.cos(theta), math.sin(theta)
    top, top2 = ident.top, ident.top2
    pat = ident.top_pattern
    if pat == "stripes":
        period = max(ident.stripe_period * s, 2.5)

        def f(xs, ys):
            band = (np.floor((ys - y_sh) / period) % 2 == 0)
            return np.where(band[..., None], top, top2) * np.ones_like(xs)[..., None]
        return f
    if pat == "two_tone_h":
        cut = y_sh + 0.45 * (y_hip - y_sh)
        return lambda xs, ys: np.where((ys < cut)[..., None], top2, top) * np.ones_like(xs)[..., None]
    if pat == "two_tone_v":
        # person's right half = top, left half = top2; which image side that is depends on the view
        if abs(c) < 0.35:
            col = top if sn > 0 else top2
            return lambda xs, ys: np.broadcast_to(col, ys.shape[:1] + xs.shape[1:] + (3,))
        right_on_left = c > 0

        def f(xs, ys):
            left = (xs < cx)
            pick = left if right_on_left else ~left
            return np.where(pick[..., None], top, top2) * np.ones_like(ys)[..., None]
        return f
    if pat == "open_jacket" and c > 0.3:
        half = max(1.0, 0.28 * hw * c)
        return lambda xs, ys: np.where((np.abs(xs - cx) < half)[..., None] & (ys > y_sh + 1)[..., None],
                                       top2, top) * np.ones_like(ys)[..., None]
    if (pat == "logo" and c > 0.3) or (pat == "back_print" and c < -0.3):
        lc = cx + sn * hw * 0.15 * (1 if c > 0 else -1)
        ly = y_sh + 0.32 * (y_hip - y_sh)
        size = max(2.0, 0.22 * hw * 2) if pat == "logo" else max(2.5, 0.3 * hw * 2)
        sx = size * abs(c)
        shape = ident.logo_shape

        def f(xs, ys):
            dx, dy = (xs - lc) / max(sx, 0.8), (ys - ly) / size
            if shape == "circle":
                m = dx * dx + dy * dy < 1
            elif shape == "square":
                m = (np.abs(dx) < 0.9) & (np.abs(dy) < 0.9)
            elif shape == "diamond":
                m = np.abs(dx) + np.abs(dy) < 1.1
            else:
                m = (np.abs(dx) < 1.2) & (np.abs(dy) < 0.45)
            return np.where(m[..., None], top2, top)
        return f
    return top


def render_person(canvas: Canvas, ident: Identity, shot: Shot) -> np.ndarray:
    """Paint ``ident`` as seen in ``shot``; returns OpenPose-18 keypoints (18, 3) in pixels."""
    theta = shot.theta
    c, sn = math.cos(theta), math.sin(theta)
    s = shot.height_px / 1.0  # pixels per body unit (total height = 1)
    joints = _skeleton(ident, shot.phase, shot.amp)
    names = list(joints)
    P3 = _rot(np.stack([joints[n] for n in names]), theta)
    proj = {n: (shot.cx + s * P3[i, 0], shot.foot_y - s * P3[i, 1], P3[i, 2]) for i, n in enumerate(names)}

    def uv(n):
        return proj[n][0], proj[n][1]

    def dep(*ns):
        return float(np.mean([proj[n][2] for n in ns]))

    limb = ident.limb
    r_up, r_fore, r_thigh, r_shin = 0.030 * limb * s, 0.024 * limb * s, 0.046 * limb * s, 0.034 * limb * s
    sleeve = ident.top
    ops: list[tuple[float, int, Callable[[], None]]] = []
    seq = [0]

    def add(depth: float, fn: Callable[[], None]) -> None:
        seq[0] += 1
        ops.append((depth, seq[0], fn))

    # ---- legs (trousers / shorts / skirt) and shoes
    for side in ("r", "l"):
        hip, knee, ankle, toe = side + "_hip", side + "_knee", side + "_ankle", side + "_toe"
        thigh_col = ident.bottom
        shin_col = ident.bottom if ident.bottom_style == "trousers" else ident.skin
        if ident.bottom_style == "skirt":
            thigh_col = ident.skin
        d_leg = dep(hip, knee, ankle)

        def legs(hip=hip, knee=knee, ankle=ankle, toe=toe, thigh_col=thigh_col, shin_col=shin_col):
            canvas.capsule(uv(hip), uv(knee), r_thigh, r_thigh * 0.85, thigh_col)
            canvas.capsule(uv(knee), uv(ankle), r_shin, r_shin * 0.8, shin_col)
            if ident.bottom_style == "shorts":
                kx, ky = uv(knee); hx, hy = uv(hip)
                canvas.capsule((hx, hy), (hx + 0.75 * (kx - hx), hy + 0.75 * (ky - hy)), r_thigh * 1.05, r_thigh,
                               ident.bottom)
            canvas.capsule(uv(ankle), uv(toe), 0.028 * s, 0.022 * s, ident.shoes)
        add(d_leg, legs)

    # ---- torso (+ pelvis) as a rounded trapezoid, width from the view
    sh_hw = ident.shoulder * abs(c) + ident.depth * abs(sn)
    hp_hw = (ident.hip + 0.01) * abs(c) + ident.depth * abs(sn)
    nx, ny = uv("neck")
    hx = 0.5 * (proj["r_hip"][0] + proj["l_hip"][0])
    hy = 0.5 * (proj["r_hip"][1] + proj["l_hip"][1])
    y_sh = ny + 0.01 * s
    rt = 0.035 * s  # generous rounding gives sloping shoulders; the polygon is inset by the same amount
    torso_pts = np.array([[nx - sh_hw * s + rt, y_sh + rt * 0.6], [nx + sh_hw * s - rt, y_sh + rt * 0.6],
                          [hx + hp_hw * s - rt * 0.5, hy + 0.01 * s], [hx - hp_hw * s + rt * 0.5, hy + 0.01 * s]])
    pelvis_pts = np.array([[hx - hp_hw * s, hy - 0.03 * s], [hx + hp_hw * s, hy - 0.03 * s],
                           [hx + hp_hw * s * 0.8, hy + 0.07 * s], [hx - hp_hw * s * 0.8, hy + 0.07 * s]])
    field_fn = _top_field(ident, theta, y_sh, hy, 0.5 * (nx + hx), sh_hw * s, s)

    def torso():
        canvas.polygon(pelvis_pts, ident.bottom, rounding=0.012 * s, shade_axis=(hx, hp_hw * s))
        if ident.bottom_style == "skirt":
            sk = np.array([[hx - hp_hw * s, hy - 0.02 * s], [hx + hp_hw * s, hy - 0.02 * s],
                           [hx + hp_hw * s * 1.6, hy + 0.2 * s], [hx - hp_hw * s * 1.6, hy + 0.2 * s]])
            canvas.polygon(sk, ident.bottom, rounding=0.01 * s, shade_axis=(hx, hp_hw * s * 1.5))
        canvas.polygon(torso_pts, field_fn, rounding=rt, shade_axis=(0.5 * (nx + hx), sh_hw * s))
    add(0.0, torso)

    # ---- arms (sleeve colour on the upper arm, forearm sleeve if long sleeves)
    for side in ("r", "l"):
        sh, el, wr = side + "_shoulder", side + "_elbow", side + "_wrist"
        d_arm = dep(sh, el, wr) + (0.01 if dep(sh) > 0 else -0.01)

        def arm(sh=sh, el=el, wr=wr, side=side):
            canvas.capsule(uv(sh), uv(el), r_up, r_up * 0.9, sleeve)
            canvas.capsule(uv(el), uv(wr), r_fore, r_fore * 0.85, sleeve if ident.long_sleeves else ident.skin)
            wx, wy = uv(wr)
            canvas.ellipse((wx, wy + 0.012 * s), 0.022 * s, 0.026 * s, ident.skin, shade=True)
            if ident.bag == "handbag" and (side == "r") == (ident.bag_side < 0):
                bw = 0.06 * s * (abs(c) * 0.5 + 0.5)
                canvas.capsule((wx, wy), (wx, wy + 0.05 * s), 0.004 * s + 0.3, None, ident.bag_colour * 0.6, shade=False)
                canvas.polygon(np.array([[wx - bw, wy + 0.04 * s], [wx + bw, wy + 0.04 * s],
                                         [wx + bw, wy + 0.13 * s], [wx - bw, wy + 0.13 * s]]),
                               ident.bag_colour, rounding=0.01 * s, shade_axis=(wx, bw))
        add(d_arm, arm)

    # ---- bags
    if ident.bag == "backpack":
        off = ident.depth + 0.035
        bx = nx - sn * off * s
        bd = -c * off
        bhw = (0.085 * abs(c) + 0.04 * abs(sn)) * s
        pts = np.array([[bx - bhw, y_sh + 0.02 * s], [bx + bhw, y_sh + 0.02 * s],
                        [bx + bhw, y_sh + 0.24 * s], [bx - bhw, y_sh + 0.24 * s]])
        add(bd, lambda: canvas.polygon(pts, ident.bag_colour, rounding=0.02 * s, shade_axis=(bx, bhw)))
        if c > 0.2:  # straps across the chest
            def straps():
                for k in (-1, 1):
                    x = nx + k * sh_hw * s * 0.55
                    canvas.capsule((x, y_sh), (x + k * 0.5, y_sh + 0.18 * s), 0.012 * s, None,
                                   ident.bag_colour * 0.7, shade=False)
            add(0.001, straps)
    elif ident.bag == "shoulder_bag":
        side_x = ident.bag_side * (ident.hip + 0.04)
        p = _rot(np.array([side_x, 0, 0.0]), theta)
        bx = hx + p[0] * s
        bhw = (0.02 * abs(c) + 0.07 * abs(sn)) * s + 1.0
        pts = np.array([[bx - bhw, hy - 0.04 * s], [bx + bhw, hy - 0.04 * s],
                        [bx + bhw, hy + 0.08 * s], [bx - bhw, hy + 0.08 * s]])
        add(p[2] + 0.002, lambda: canvas.polygon(pts, ident.bag_colour, rounding=0.01 * s, shade_axis=(bx, bhw)))
        shoulder = "l" if ident.bag_side < 0 else "r"   # strap over the opposite shoulder
        sx_, sy_ = uv(shoulder + "_shoulder")
        add(0.002 if c > 0 else -0.002 if c < -0.5 else 0.002,
            lambda: canvas.capsule((sx_, sy_), (bx, hy - 0.04 * s), 0.009 * s, None, ident.bag_colour * 0.7,
                                   shade=False))

    # ---- head, hair, face
    hcx, hcy = uv("head")
    hr = ident.head * s
    d_head = 0.02

    def head():
        canvas.capsule((nx, ny + 0.01 * s), (hcx, hcy), 0.022 * s, None, ident.skin)  # neck
        canvas.ellipse((hcx, hcy), hr * 0.9, hr, ident.skin, shade=True)
    add(d_head, head)
    back_dx = -sn * hr * 0.35
    hair_depth = d_head - c * 0.05
    style = ident.hair_style
    hair_col = ident.hair if style != "buzz" else ident.hair * 0.6 + ident.skin * 0.4
    if style == "long":
        add(-c * 0.08, lambda: canvas.capsule((hcx + back_dx, hcy), (hcx + back_dx * 1.4, hcy + 2.2 * hr),
                                              hr * 0.95, hr * 0.8, ident.hair))
    if style == "ponytail":
        add(-c * 0.08 - 0.001, lambda: canvas.capsule((hcx + back_dx * 2.2, hcy - 0.2 * hr),
                                                      (hcx + back_dx * 2.8, hcy + 1.3 * hr),
                                                      hr * 0.35, hr * 0.25, ident.hair))

    def hair_back():
        canvas.ellipse((hcx + back_dx, hcy - 0.08 * hr), hr * 0.95, hr * 1.02, hair_col, shade=True)
    add(hair_depth, hair_back)

    def hair_top():
        if style == "cap":
            canvas.ellipse((hcx, hcy - 0.15 * hr), hr * 1.0, hr * 0.95, ident.cap, shade=True, clip_above=hcy - 0.2 * hr)
            canvas.ellipse((hcx + sn * hr * 0.7, hcy - 0.25 * hr), hr * (0.45 + 0.6 * abs(sn)), hr * 0.18, ident.cap * 0.8)
        else:
            canvas.ellipse((hcx + back_dx * 0.5, hcy - 0.12 * hr), hr * 1.0, hr * 0.98, hair_col, shade=True,
                           clip_above=hcy - (0.35 if c > 0 else -0.1) * hr)
        if c > 0.35:  # eyes
            for k in (-1, 1):
                ex = hcx + (k * 0.38 * c + sn * 0.5) * hr
                canvas.ellipse((ex, hcy + 0.05 * hr), max(0.5, 0.12 * hr), max(0.5, 0.1 * hr), np.array([0.1, 0.08, 0.07]),
                               opacity=0.7)
    add(max(d_head, hair_depth) + 0.001, hair_top)

    for _, _, fn in sorted(ops, key=lambda t: (t[0], t[1])):
        fn()

    # ---- OpenPose-18 keypoints
    head3 = joints["head"]
    face = {  # body-frame offsets from the head centre (person's right = -x)
        "nose": (np.array([0.0, -0.15, 0.95]), np.array([0.0, 0.0, 1.0])),
        "r_eye": (np.array([-0.38, 0.05, 0.85]), np.array([-0.35, 0.0, 0.94])),
        "l_eye": (np.array([0.38, 0.05, 0.85]), np.array([0.35, 0.0, 0.94])),
        "r_ear": (np.array([-0.92, 0.0, 0.0]), np.array([-1.0, 0.0, -0.1])),
        "l_ear": (np.array([0.92, 0.0, 0.0]), np.array([1.0, 0.0, -0.1])),
    }
    kp = np.zeros((18, 3), np.float32)
    order = {"neck": 1, "r_shoulder": 2, "r_elbow": 3, "r_wrist": 4, "l_shoulder": 5, "l_elbow": 6, "l_wrist": 7,
             "r_hip": 8, "r_knee": 9, "r_ankle": 10, "l_hip": 11, "l_knee": 12, "l_ankle": 13}
    for n, i in order.items():
        kp[i] = (*uv(n), 1.0)
    kp[1, 1] = ny + 0.01 * s
    face_idx = {"nose": 0, "r_eye": 14, "l_eye": 15, "r_ear": 16, "l_ear": 17}
    for n, (off, normal) in face.items():
        p = _rot(head3 + off * ident.head * np.array([0.9, 1.0, 0.9]), theta)
        nz = _rot(normal, theta)[2]
        thresh = 0.1 if n in ("nose", "r_eye", "l_eye") else -0.35
        kp[face_idx[n]] = (shot.cx + s * p[0], shot.foot_y - s * p[1], 1.0 if nz > thresh else 0.0)
    return kp


# ----------------------------------------------------------------------------------------------------
# Occluders and infrared
# ----------------------------------------------------------------------------------------------------


IR_LUMA = 0.9          # share of visible luminance in the near-infrared grey (the rest: dye reflectance)
IR_VIGNETTE = 0.4      # strength of the illuminator's fall-off towards the corners
IR_NOISE = 2.0         # extra sensor noise (0..255 scale)
IR_BACKGROUND = 0.75   # background brightness relative to the lit person


def _ir_map(col: np.ndarray) -> np.ndarray:
    """Near-infrared grey of a colour: partly its visible luminance, partly a dye reflectance that is a
    smooth function of the colour unrelated to its hue order (so colour order is not preserved)."""
    col = np.asarray(col, np.float32)
    r, g, b = col[..., 0], col[..., 1], col[..., 2]
    v = 0.5 + 0.5 * np.sin(5.1 * r - 3.7 * g + 4.3 * b + 1.1) * np.cos(2.3 * r + 3.1 * g - 1.7 * b)
    refl = 0.12 + 0.78 * v * (0.55 + 0.45 * np.maximum(np.maximum(r, g), b))
    lum = 0.1 + 0.85 * (0.3 * r + 0.59 * g + 0.11 * b)
    grey = (1.0 - IR_LUMA) * refl + IR_LUMA * lum
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)


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
            stamp([[x0 + 3, top + 3], [x1 - 3, top + 3], [x1 - 3, top + 9], [x0 + 3, top + 9]], np.array([0.2, 0.25, 0.3]))
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
            mask[win] = np.maximum(mask[win], np.clip(0.5 - (np.sqrt(((xs - x) / 8) ** 2 + ((ys - top - 2) / 9) ** 2) - 1) * 8, 0, 1))
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


# ----------------------------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------------------------


@dataclass
class Rendered:
    image: Image.Image
    keypoints: np.ndarray
    jpeg: int
    meta: dict = field(default_factory=dict)


def render_image(seed: int, ident: Identity | None, camid: int, rng: np.random.Generator,
                 task_rng: np.random.Generator | None = None, mode: str = "visible",
                 distractor: bool = False) -> Rendered:
    """Render one crop. ``mode``: "visible" | "occluded" | "infrared"; ``task_rng`` drives occluders."""
    cam = CAMERAS[camid - 1]
    shot = _draw_shot(rng, camid, ident.gait_amp if ident is not None else 0.4)
    bg = camera_background(seed, camid)[shot.bg_y:shot.bg_y + H, shot.bg_x:shot.bg_x + W].copy()
    cmap = _ir_map if mode == "infrared" else None
    if mode == "infrared":
        bg = _ir_map(bg) * IR_BACKGROUND
    canvas = Canvas(bg, cmap=cmap, light=cam.light, light_x=shot.cx)
    kp = np.zeros((18, 3), np.float32)
    if distractor:  # Market's 0000: bad detections — mostly background, a partial or mis-scaled person
        if ident is not None:
            shot.height_px *= rng.uniform(1.3, 2.2)
            shot.foot_y += rng.uniform(0.2, 0.9) * shot.height_px * rng.choice([-1, 1]) * 0.6
            shot.cx += rng.choice([-1, 1]) * rng.uniform(18, 30)
            canvas.ellipse((shot.cx, shot.foot_y), 0.22 * shot.height_px * 0.5, 3.0, np.zeros(3), opacity=0.3)
            kp = render_person(canvas, ident, shot)
    else:
        canvas.ellipse((shot.cx, shot.foot_y), 0.14 * shot.height_px, 2.5, np.zeros(3), opacity=0.35)
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


# ----------------------------------------------------------------------------------------------------
# The benchmark plan
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One image to render."""

    split: str        # "train" | "query" | "gallery" | "distractor"
    folder: str       # "bounding_box_train" | "query" | "bounding_box_test"
    pid: int          # identity (0 for distractors, as in Market-1501)
    source_pid: int   # the identity whose appearance is drawn (distractors: an unseen identity or -1)
    camid: int
    k: int            # per-pid image index, used in the frame number and the seed

    @property
    def filename(self) -> str:
        return f"{self.pid:04d}_c{self.camid}s1_{self.k * 25 + _SPLIT_CODE[self.split]:06d}_00.jpg"


def plan(seed: int = 0, num_train_ids: int = NUM_TRAIN_IDS, num_test_ids: int = NUM_TEST_IDS,
         train_per_id: int = TRAIN_IMAGES_PER_ID, num_distractors: int = NUM_DISTRACTORS) -> list[Item]:
    """The list of images of the benchmark (same for all tasks)."""
    items: list[Item] = []
    for pid in range(TRAIN_PID0, TRAIN_PID0 + num_train_ids):
        rng = np.random.default_rng([seed, 3, pid])
        cams = rng.choice(np.arange(1, NUM_CAMERAS + 1), size=int(rng.integers(3, 6)), replace=False)
        for k in range(train_per_id):
            items.append(Item("train", "bounding_box_train", pid, pid, int(cams[k % len(cams)] if k < len(cams)
                                                                          else rng.choice(cams)), k))
    for pid in range(TEST_PID0, TEST_PID0 + num_test_ids):
        rng = np.random.default_rng([seed, 5, pid])
        qcams = rng.choice(np.arange(1, NUM_CAMERAS + 1), size=QUERIES_PER_ID, replace=False)
        ng = int(rng.integers(GALLERY_PER_ID[0], GALLERY_PER_ID[1] + 1))
        while True:
            gcams = rng.integers(1, NUM_CAMERAS + 1, size=ng)
            if all(np.sum(gcams != q) >= 2 for q in qcams):
                break
        k = 0
        for q in qcams:
            items.append(Item("query", "query", pid, pid, int(q), k)); k += 1
        for g in gcams:
            items.append(Item("gallery", "bounding_box_test", pid, pid, int(g), k)); k += 1
    rng = np.random.default_rng([seed, 13])
    for k in range(num_distractors):
        src = 9000 + k if rng.random() < 0.6 else -1
        items.append(Item("distractor", "bounding_box_test", 0, src, int(rng.integers(1, NUM_CAMERAS + 1)), k))
    return items


def _identities_for(seed: int, items: Sequence[Item]) -> dict[int, Identity]:
    train = sorted({it.source_pid for it in items if it.split == "train"})
    test = sorted({it.source_pid for it in items if it.split in ("query", "gallery")})
    extra = sorted({it.source_pid for it in items if it.split == "distractor" and it.source_pid > 0})
    ids = make_identities(seed, train)
    ids.update(make_identities(seed, test))
    ids.update(make_identities(seed, extra, near_dup_fraction=0.0))
    return ids


def render_item(seed: int, item: Item, task: str, ident: Identity | None) -> Rendered:
    """Render one planned image for ``task`` (only queries depend on the task)."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[item.split], item.pid, item.k])
    mode = "visible"
    task_rng = None
    if item.split == "query" and task != "standard":
        mode = task
        task_rng = np.random.default_rng([seed, 17, item.pid, item.k, _TASK_CODE[task]])
    return render_image(seed, ident, item.camid, rng, task_rng, mode=mode, distractor=item.split == "distractor")


def _write(path: Path, r: Rendered) -> None:
    r.image.save(path, format="JPEG", quality=r.jpeg, optimize=False, progressive=False, subsampling=0)
    pose = Pose(r.keypoints, W, H)
    path.with_suffix(".json").write_text(json.dumps(pose.to_json()))


def render_benchmark(out: str | Path, task: str = "standard", seed: int = 0, progress: bool = False,
                     items: Sequence[Item] | None = None, reuse: str | Path | None = None) -> Path:
    """Render ``task`` into ``out`` (a Market-1501 root). Writes ``synthped.json`` last.

    ``reuse``: a complete SynthPed root of another task with the same seed and version (and the default
    plan); its train and gallery files — identical for all tasks by construction — are copied instead
    of rendered again.
    """
    if task not in TASKS:
        raise ValueError(f"unknown SynthPed task {task!r}; choose one of {TASKS}")
    out = Path(out)
    items = plan(seed) if items is None else list(items)
    idents = _identities_for(seed, items)
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    it: Iterator[Item] | Sequence[Item] = items
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(items, desc=f"SynthPed {task}", unit="img")
    for item in it:
        dst = out / item.folder / item.filename
        if reuse is not None and item.split != "query":
            src = Path(reuse) / item.folder / item.filename
            shutil.copyfile(src, dst)
            shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
            continue
        r = render_item(seed, item, task, idents.get(item.source_pid))
        _write(dst, r)
    manifest = {"name": "SynthPed", "version": VERSION, "seed": seed, "task": task, "height": H, "width": W,
                "num_train": sum(i.split == "train" for i in items),
                "num_query": sum(i.split == "query" for i in items),
                "num_gallery": sum(i.folder == "bounding_box_test" for i in items),
                "num_distractors": sum(i.split == "distractor" for i in items),
                "cameras": [c.background for c in CAMERAS]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out


def _is_complete(root: Path, task: str, seed: int) -> bool:
    try:
        m = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return m.get("version") == VERSION and m.get("seed") == seed and m.get("task") == task


def ensure_benchmark(task: str = "standard", progress: bool = True, seed: int = 0, root: str | Path | None = None
                     ) -> Path:
    """Render the SynthPed ``task`` once into ``cache_dir()/synthped/<task>`` and return that root.

    Rendering goes to a temporary sibling folder that is renamed into place, so concurrent callers never
    see a half-written benchmark.
    """
    if task not in TASKS:
        raise ValueError(f"unknown SynthPed task {task!r}; choose one of {TASKS}")
    base = Path(root) if root is not None else cache_dir() / "synthped"
    target = base / task
    if _is_complete(target, task, seed):
        return target
    base.mkdir(parents=True, exist_ok=True)
    reuse = next((base / t for t in TASKS if t != task and _is_complete(base / t, t, seed)), None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{task}-", dir=base))
    try:
        logger.info("rendering SynthPed %s into %s", task, target)
        render_benchmark(tmp, task=task, seed=seed, progress=progress, reuse=reuse)
        if target.exists():
            if _is_complete(target, task, seed):  # someone else finished first
                return target
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def make_montage(roots: dict[str, str | Path], num_ids: int = 6, per_id: int = 6, scale: int = 1) -> Image.Image:
    """A contact sheet: one row per test identity — its gallery images across cameras, then its first
    query as rendered by each task in ``roots`` (task name → rendered root)."""
    from pose2id_demo.data.market import load_market

    sets = {t: load_market(r) for t, r in roots.items()}
    first = next(iter(sets.values()))
    pids = sorted({r.pid for r in first.query})[:num_ids]
    rows = []
    gap = np.full((H, 4, 3), 255, np.uint8)
    for pid in pids:
        gal = [r for r in first.gallery if r.pid == pid][:per_id]
        tiles = [np.asarray(Image.open(r.path).convert("RGB")) for r in gal]
        tiles += [np.full((H, W, 3), 255, np.uint8)] * (per_id - len(tiles))
        queries = [np.asarray(Image.open(next(r for r in ds.query if r.pid == pid).path).convert("RGB"))
                   for ds in sets.values()]
        rows.append(np.concatenate(tiles + [gap] + queries, axis=1))
    sheet = np.concatenate([np.concatenate([r, np.full((2, r.shape[1], 3), 255, np.uint8)], 0) for r in rows], 0)
    img = Image.fromarray(sheet)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pose2id_demo.data.synthped", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder; each task goes to OUT/<task>/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", choices=TASKS, action="append", help="task(s) to render (default: all)")
    ap.add_argument("--montage", help="also write a PNG contact sheet of a few identities to this path")
    args = ap.parse_args(argv)
    done: Path | None = None
    for task in args.task or TASKS:
        root = render_benchmark(Path(args.out) / task, task=task, seed=args.seed, progress=True, reuse=done)
        done = root
        print(f"{task}: {root}")
    if args.montage:
        tasks = args.task or TASKS
        make_montage({t: Path(args.out) / t for t in tasks}).save(args.montage, optimize=True)
        print(f"montage: {args.montage}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
