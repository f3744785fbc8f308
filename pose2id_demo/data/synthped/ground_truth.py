"""Ground truth for pose-guided generation: a SynthPed person drawn in another image's exact pose.

The generator (IPG, paper §3.2) is asked to draw the person of a reference image in a target pose. On
SynthPed the answer is known: :func:`render_ground_truth` renders the reference item's identity, camera,
background window, exposure and noise, with the target item's pose — view direction, gait phase and
amplitude, scale and placement in the crop — so its OpenPose-18 keypoints are the target's keypoints.

Which fields come from where (everything else about an image is a function of these):

- from the **target**: the :class:`~pose2id_demo.data.synthped.cameras.Shot` fields ``theta``,
  ``direction``, ``phase``, ``amp``, ``height_px``, ``cx``, ``foot_y``, and the identity's skeleton
  proportions ``shoulder``, ``hip``, ``leg``, ``head`` (the joints, hence the keypoints, are computed from
  them; a pose skeleton carries its limb lengths, so the generator is asked for these proportions too);
- from the **reference**: the rest of the identity (skin, hair, clothes and patterns, bags, torso depth,
  limb thickness) and the shot's camera fields ``camid``, ``bg_x``, ``bg_y``, ``brightness``, ``jpeg``,
  ``noise_seed``.

With ``target == reference`` both sets come from the same item, so the render is the reference image
itself, pixel for pixel (and byte for byte once written with the benchmark's JPEG settings).

``background="canonical"`` replaces the reference's camera fields with one fixed studio shot
(:data:`CANONICAL_CAMID`, the background window at the canvas's centre, unit brightness, a fixed noise
seed): every person is drawn on the same background with the same camera, so the render depends only on
the reference's identity and the target's pose (a training target for a generator that should not redraw
the query's own camera; ``pose2id_demo.ipg.rendered_pairs``).

Example (the representative "front" pose of ``assets/poses/index.json`` names a training image)::

    from pose2id_demo.data.synthped import item_for_file, render_ground_truth

    ref = item_for_file("query/1001_c1s1_000002_00.jpg")          # a query of the standard task
    tgt = item_for_file("bounding_box_train/0237_c1s1_000051_00.jpg")
    image, keypoints = render_ground_truth(0, ref, tgt)           # (128, 64, 3) uint8, (18, 3) float32
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import PurePath

import numpy as np

from pose2id_demo.data.synthped.benchmark import Item, _identities_for, _item_rng, plan
from pose2id_demo.data.synthped.cameras import _BG_H, _BG_W, Shot, _draw_shot
from pose2id_demo.data.synthped.constants import H, W
from pose2id_demo.data.synthped.identities import Identity
from pose2id_demo.data.synthped.render import render_image

POSE_SHOT_FIELDS = ("theta", "direction", "phase", "amp", "height_px", "cx", "foot_y")
SKELETON_FIELDS = ("shoulder", "hip", "leg", "head")
CANONICAL_CAMID = 5  # "shop": near-neutral colour gain, little blur and noise
CANONICAL_SHOT = {"camid": CANONICAL_CAMID, "bg_x": (_BG_W - W) // 2, "bg_y": (_BG_H - H) // 2, "brightness": 1.0,
                  "noise_seed": 0}
BACKGROUNDS = ("reference", "canonical")


@lru_cache(maxsize=4)
def _planned(seed: int) -> tuple[tuple[Item, ...], dict[int, Identity], dict[tuple[str, str], Item]]:
    items = tuple(plan(seed))
    return items, _identities_for(seed, items), {(it.folder, it.filename): it for it in items}


def item_for_file(path: str, seed: int = 0) -> Item:
    """The planned :class:`Item` of a SynthPed file, from ``folder/name.jpg`` (or a longer path ending so).

    A bare file name is looked up in every folder (train names and test names never collide).
    """
    p = PurePath(path)
    _, _, by_name = _planned(seed)
    found = [it for (folder, name), it in by_name.items()
             if name == p.name and (len(p.parts) < 2 or folder == p.parts[-2])]
    if len(found) != 1:
        raise KeyError(f"{path!r} is not an image of the SynthPed plan (seed {seed})")
    return found[0]


def _person_shot(seed: int, item: Item, ident: Identity) -> Shot:
    """The shot that :func:`~pose2id_demo.data.synthped.benchmark.render_item` draws for ``item``."""
    return _draw_shot(_item_rng(seed, item), item.camid, ident.gait_amp)


def render_ground_truth(seed: int, reference: Item, target: Item, items: Sequence[Item] | None = None,
                        background: str = "reference") -> tuple[np.ndarray, np.ndarray]:
    """The reference's person, camera and background in exactly the target's pose.

    Args:
        seed: the benchmark seed (0 for the shipped benchmark).
        reference: a planned item showing a whole person (train, query or gallery; not a distractor or
            junk crop). Queries are drawn as the ``standard`` task shows them (no occluder, visible light).
        target: a planned item showing a whole person (typically the training image a representative
            pose was taken from).
        items: the plan the items belong to (default ``plan(seed)``); identities depend on it.
        background: "reference" (the reference's camera, background window, exposure and noise) or
            "canonical" (:data:`CANONICAL_SHOT` for every reference).

    Returns:
        ``(image, keypoints)``: ``(128, 64, 3)`` uint8 RGB (before JPEG) and ``(18, 3)`` float32 OpenPose-18
        keypoints ``(x, y, confidence)`` in pixels — equal to the target image's keypoints.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    for role, it in (("reference", reference), ("target", target)):
        if it.split not in ("train", "query", "gallery"):
            raise ValueError(f"the {role} must show a whole person; {it.filename} is a {it.split} crop")
    idents = _planned(seed)[1] if items is None else _identities_for(seed, items)
    ref_id, tgt_id = idents[reference.source_pid], idents[target.source_pid]
    ref_shot, tgt_shot = _person_shot(seed, reference, ref_id), _person_shot(seed, target, tgt_id)
    shot = replace(ref_shot, **{f: getattr(tgt_shot, f) for f in POSE_SHOT_FIELDS})
    ident = replace(ref_id, **{f: getattr(tgt_id, f) for f in SKELETON_FIELDS})
    if background == "canonical":
        shot = replace(shot, **CANONICAL_SHOT)
    r = render_image(seed, ident, shot.camid, None, shot=shot)
    return np.asarray(r.image), r.keypoints
