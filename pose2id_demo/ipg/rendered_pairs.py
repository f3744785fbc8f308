"""Rendered training pairs for the IPG on a SynthPed root: the reference's person, camera and background in
another training image's exact pose (:func:`pose2id_demo.data.synthped.render_ground_truth`).

A real training pair (paper §3.2.2) takes its target from another camera of the same identity, so the
target's background, exposure and crop cannot be predicted from the reference: the model learns a blurred
mean background and spends capacity on it. A rendered pair's target is fully determined by the reference
and the target pose, the task the pose bench (``bench/ipg_quality.py``) scores. Only SynthPed has such
pairs; ``python -m pose2id_demo.ipg.train --render-pairs P`` mixes them into a share P of each batch.
With ``background="reference"`` (the default) the target keeps the reference's camera and background; with
``background="canonical"`` it is drawn on one fixed studio shot (the same camera and background for every
reference), so the generations' background is canonical (why that suits eq. 9: ``docs/design-notes.md``).

The pool is drawn once per (root, targets per reference, seed, background) and cached as uint8 arrays (``.npz``, no
pickle) in the run's cache folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import PIL.Image
from tqdm import tqdm

logger = logging.getLogger(__name__)


def synthped_items(paths: list[str], seed: int = 0, items: list | None = None) -> list:
    """The planned SynthPed item of each training image path (``items``: the plan, default ``plan(seed)``);
    ValueError when the root is not SynthPed."""
    from pose2id_demo.data.synthped.ground_truth import _planned

    by_name = _planned(seed)[2] if items is None else {(it.folder, it.filename): it for it in items}
    found = []
    for p in paths:
        it = by_name.get((Path(p).parent.name, Path(p).name))
        if it is None:
            raise ValueError(f"{p} is not an image of the SynthPed plan (seed {seed}); rendered pairs need a "
                             "SynthPed root")
        found.append(it)
    return found


class RenderedPairs:
    """``per_reference`` rendered targets for each reference index: ``target_of[r, j]`` is the training image
    whose pose (and skeleton proportions) target ``j`` of reference ``r`` takes, ``image_of(r, j)`` the
    rendered target at the model's size (box-downsampled as the real images are); ``background``: as in
    :func:`~pose2id_demo.data.synthped.render_ground_truth`."""

    def __init__(self, paths: list[str], references: np.ndarray, targets: np.ndarray, image_size: tuple[int, int],
                 per_reference: int, seed: int, cache: Path, benchmark_seed: int = 0, plan: list | None = None,
                 background: str = "reference") -> None:
        from pose2id_demo.data.synthped import render_ground_truth

        n = len(paths)
        h, w = image_size
        tag = "" if background == "reference" else f"_{background}"
        path = cache / f"rendered_pairs_{per_reference}x_seed{seed}_{h}x{w}{tag}.npz"
        references = np.unique(references)
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if z["target_of"].shape == (n, per_reference) and np.array_equal(z["references"], references):
                self.target_of, self.row_of, self.images = z["target_of"], z["row_of"], z["images"]
                logger.info("rendered pairs: %d from %s", len(self.images), path)
                return
        items = synthped_items(paths, benchmark_seed, plan)
        self._check_root(paths, items, references, benchmark_seed, plan)
        rng = np.random.default_rng([seed, 71])
        self.target_of = np.full((n, per_reference), -1, np.int64)
        self.row_of = np.full(n, -1, np.int64)
        self.images = np.zeros((len(references) * per_reference, h, w, 3), np.uint8)

        for k, r in enumerate(tqdm(references, desc="rendering training pairs", mininterval=10)):
            self.row_of[r] = k * per_reference
            choice = rng.choice(targets[targets != r], per_reference, replace=False)
            self.target_of[r] = choice
            for j, t in enumerate(choice):
                img, _ = render_ground_truth(benchmark_seed, items[r], items[int(t)], plan, background)
                self.images[k * per_reference + j] = np.asarray(PIL.Image.fromarray(img).resize((w, h), PIL.Image.BOX))
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, target_of=self.target_of, row_of=self.row_of, images=self.images, references=references)
        logger.info("rendered pairs: %d rendered into %s", len(self.images), path)

    @staticmethod
    def _check_root(paths: list[str], items: list, references: np.ndarray, benchmark_seed: int, plan) -> None:
        """A render of an item in its own pose is that item's image (up to JPEG): the root is the plan's."""
        from pose2id_demo.data.synthped import render_ground_truth

        r = int(references[0])
        img, _ = render_ground_truth(benchmark_seed, items[r], items[r], plan)
        real = np.asarray(PIL.Image.open(paths[r]).convert("RGB"), dtype=np.float32)
        err = float(np.abs(real - img.astype(np.float32)).mean()) if real.shape == img.shape else np.inf
        if err > 8.0:
            raise ValueError(f"{paths[r]} differs from its render (mean |diff| {err:.1f}); the root is not the "
                             f"SynthPed plan of seed {benchmark_seed}")

    def image_of(self, r: int, j: int) -> np.ndarray:
        return self.images[self.row_of[r] + j]
