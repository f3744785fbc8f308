"""Training pairs of the IPG (paper §3.2.2 "Training strategy"): a reference and a target of one identity.

Per identity i: S_i^ref, its Mahalanobis-cleansed images (eq. 31 of the supplementary,
:mod:`pose2id_demo.cleansing`), and S_i^trg, the cleansed images whose pose is PoseValid (eq. 32,
:mod:`pose2id_demo.poses.posevalid`). A pair is a reference from S_i^ref and a different target from S_i^trg;
the target's keypoints are drawn as an OpenPose skeleton. Augmentation on the reference only: a random
horizontal flip and random erasing (Zhong et al.). The IFR input is the frozen ReID feature of the (possibly
flipped) reference, computed once and cached. Optionally (``render_pairs`` > 0, SynthPed roots) a share of
the targets is rendered: the reference's own person in another training image's pose
(:mod:`pose2id_demo.ipg.rendered_pairs`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from pose2id_demo.cleansing import mahalanobis_filter
from pose2id_demo.data import load_market
from pose2id_demo.ipg.pipeline import render_pose
from pose2id_demo.ipg.rendered_pairs import RenderedPairs
from pose2id_demo.poses.keypoints import Pose, load_pose_json
from pose2id_demo.poses.posevalid import pose_valid
from pose2id_demo.poses.representative import DIRECTIONS, classify_direction, frontal_width_from

logger = logging.getLogger(__name__)


class PairData:
    """In-memory training set: images (at the model's size), skeletons, ReID features, ref/target sets."""

    def __init__(self, root: str | Path, image_size: tuple[int, int], pose_size: tuple[int, int], reid,
                 cache: Path, quantile: float = 0.005, pair_views: str = "any",
                 cleanse_band: str = "per_identity", render_pairs: float = 0.0, render_per_reference: int = 4,
                 seed: int = 0, render_background: str = "reference") -> None:
        records = load_market(root).train
        if not records:
            raise ValueError(f"{root}: no training images (bounding_box_train/)")
        h, w = image_size
        ph, pw = pose_size
        self.pids = np.array([r.pid for r in records])
        full = [PIL.Image.open(r.path).convert("RGB") for r in records]
        self.images = np.stack([np.asarray(im.resize((w, h), PIL.Image.BOX)) for im in full])  # (N, h, w, 3) uint8
        poses: list[Pose | None] = []
        for r in records:
            js = Path(r.path).with_suffix(".json")
            poses.append(load_pose_json(js) if js.exists() else None)
        self.skeletons = np.stack([render_pose(p, pw, ph) if p is not None else np.zeros((ph, pw, 3), np.uint8)
                                   for p in poses])
        fw = frontal_width_from(poses)
        self.directions = np.array([DIRECTIONS.index(d) if p is not None and (d := classify_direction(p, fw))
                                    else -1 for p in poses])
        if pair_views not in ("any", "different"):
            raise ValueError(f"pair_views must be 'any' or 'different', got {pair_views!r}")
        self.pair_views = pair_views
        feats = self._reid_features(reid, full, cache)
        self.feats, self.feats_flip, self.zero_feat = feats
        keep = mahalanobis_filter(self.feats, self.pids, quantile=quantile, band=cleanse_band).keep
        valid = np.array([p is not None and pose_valid(p)[0] for p in poses])
        self.ref_sets: list[np.ndarray] = []
        self.trg_sets: list[np.ndarray] = []
        for pid in np.unique(self.pids):
            idx = np.flatnonzero(self.pids == pid)
            ref, trg = idx[keep[idx]], idx[keep[idx] & valid[idx]]
            if len(ref) >= 1 and len(trg) >= 1 and len(np.union1d(ref, trg)) >= 2:
                self.ref_sets.append(ref)
                self.trg_sets.append(trg)
        logger.info("training data: %d images, %d identities; kept %d/%d (cleansing), %d/%d PoseValid",
                    len(records), len(self.ref_sets), int(keep.sum()), len(keep), int(valid.sum()), len(valid))
        logger.info("pair sampler (%s views): P(reference and target face the same way) = %.3f", pair_views,
                    self.same_view_rate())
        if not 0.0 <= render_pairs <= 1.0:
            raise ValueError(f"render_pairs must be in [0, 1], got {render_pairs}")
        self.render_pairs = render_pairs
        self.rendered = None
        if render_pairs > 0:
            self.rendered = RenderedPairs([r.path for r in records], np.concatenate(self.ref_sets),
                                          np.concatenate(self.trg_sets), image_size, render_per_reference, seed, cache,
                                          background=render_background)

    def reference_choices(self, i: int, t: int) -> np.ndarray:
        """Reference candidates of identity ``i`` for target ``t``: its S_ref without ``t`` (and, with
        ``pair_views="different"``, without images facing the target's direction, when any are left)."""
        choices = self.ref_sets[i][self.ref_sets[i] != t]
        if self.pair_views == "different":
            other = choices[self.directions[choices] != self.directions[t]]
            if len(other):
                choices = other
        return choices

    def same_view_rate(self) -> float:
        """Probability that a sampled (reference, target) pair shares the view direction (exact, not sampled)."""
        p = []
        for i, trg in enumerate(self.trg_sets):
            for t in trg:
                c = self.reference_choices(i, int(t))
                c = c if len(c) else self.ref_sets[i]
                p.append(np.mean(self.directions[c] == self.directions[t]) / len(trg))
        return float(np.sum(p) / len(self.trg_sets))

    @staticmethod
    @torch.no_grad()
    def _reid_features(reid, images: list[PIL.Image.Image], cache: Path):
        path = cache / "reid_features.npz"
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if z["feats"].shape[0] == len(images) and str(z["backbone"]) == str(getattr(reid, "name", "")):
                return z["feats"], z["feats_flip"], z["zero"]
        out, out_flip = [], []
        for s in range(0, len(images), 128):
            chunk = images[s:s + 128]
            out.append(reid.model(reid.preprocess(chunk)).float().numpy())
            out_flip.append(reid.model(reid.preprocess([im.transpose(PIL.Image.FLIP_LEFT_RIGHT) for im in chunk]))
                            .float().numpy())
        h, w = getattr(reid, "input_size", (256, 128))
        zero = reid.model(torch.zeros(1, 3, h, w)).float().numpy()[0]
        feats, feats_flip = np.concatenate(out), np.concatenate(out_flip)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, feats=feats, feats_flip=feats_flip, zero=zero, backbone=str(getattr(reid, "name", "")))
        return feats, feats_flip, zero

    def batch(self, rng: np.random.Generator, b: int, uncond_ratio: float):
        """One training batch as tensors (reference in [-1, 1] augmented, target in [-1, 1], skeleton in [0, 1])."""
        ids = rng.integers(0, len(self.ref_sets), b)
        refs, trgs, skels, feats = [], [], [], []
        for i in ids:
            if self.render_pairs > 0 and rng.random() < self.render_pairs:  # the pool exists iff P > 0
                # the reference's own camera and background in another image's pose: no flip (the rendered
                # background is the unflipped one), random erasing on the reference as for real pairs
                r = int(rng.choice(self.ref_sets[i]))
                j = int(rng.integers(self.rendered.target_of.shape[1]))
                refs.append(random_erasing(self.images[r].astype(np.float32) / 127.5 - 1.0, rng))
                feats.append(self.zero_feat if rng.random() < uncond_ratio else self.feats[r])
                trgs.append(self.rendered.image_of(r, j).astype(np.float32) / 127.5 - 1.0)
                skels.append(self.skeletons[self.rendered.target_of[r, j]].astype(np.float32) / 255.0)
                continue
            t = int(rng.choice(self.trg_sets[i]))
            choices = self.reference_choices(i, t)
            r = int(rng.choice(choices)) if len(choices) else int(rng.choice(self.ref_sets[i]))
            img = self.images[r].astype(np.float32) / 127.5 - 1.0
            flip = rng.random() < 0.5
            if flip:
                img = img[:, ::-1]
            img = random_erasing(img, rng)
            refs.append(img)
            feats.append(self.zero_feat if rng.random() < uncond_ratio else (self.feats_flip if flip else self.feats)[r])
            trgs.append(self.images[t].astype(np.float32) / 127.5 - 1.0)
            skels.append(self.skeletons[t].astype(np.float32) / 255.0)

        def nchw(xs):
            return torch.from_numpy(np.ascontiguousarray(np.stack(xs))).permute(0, 3, 1, 2).contiguous()

        return nchw(refs), nchw(trgs), nchw(skels), torch.from_numpy(np.stack(feats)).float()


def random_erasing(img: np.ndarray, rng: np.random.Generator, p: float = 0.5, area=(0.02, 0.2),
                   ratio=(0.3, 3.3)) -> np.ndarray:
    """Random erasing (Zhong et al. 2020): one rectangle of random area/aspect filled with uniform noise."""
    if rng.random() >= p:
        return img
    h, w = img.shape[:2]
    for _ in range(10):
        a = rng.uniform(*area) * h * w
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        eh, ew = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < eh < h and 0 < ew < w:
            y, x = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
            img = img.copy()
            img[y:y + eh, x:x + ew] = rng.uniform(-1, 1, (eh, ew, 3)).astype(np.float32)
            return img
    return img
