"""Who is drawn: the colour palettes and the per-person :class:`Identity` (body build, skin, hair,
clothes, bags), with deliberate near-duplicates of earlier identities as hard negatives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pose2id_demo.data.synthped.constants import NEAR_DUPLICATE_FRACTION

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
_HAIR_W = np.array([6, 4, 3, 1.5, 1, 0.8, 0.6])
_HAIR_W /= _HAIR_W.sum()
SHOES = [_hex(h) for h in ("151515", "ececec", "5a3b24", "6e6e6e", "a52626", "2b3f7a")]
_SHOE_W = np.array([5, 3, 2, 1.5, 0.6, 0.6])
_SHOE_W /= _SHOE_W.sum()

TOP_PATTERNS = ("solid", "stripes", "logo", "two_tone_v", "two_tone_h", "open_jacket", "back_print")
_TOP_W = np.array([5, 2, 2, 1.2, 1.2, 1.5, 1])
_TOP_W /= _TOP_W.sum()
BOTTOMS = ("trousers", "shorts", "skirt")
_BOTTOM_W = np.array([7, 2, 1.5])
_BOTTOM_W /= _BOTTOM_W.sum()
HAIR_STYLES = ("short", "long", "ponytail", "buzz", "cap")
_HAIRSTYLE_W = np.array([5, 2.5, 1.2, 1, 1])
_HAIRSTYLE_W /= _HAIRSTYLE_W.sum()
BAGS = ("none", "backpack", "shoulder_bag", "handbag")
_BAG_W = np.array([4, 2.5, 1.5, 1])
_BAG_W /= _BAG_W.sum()
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
