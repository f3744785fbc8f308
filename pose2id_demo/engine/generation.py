"""Generation: the reference person in the 8 representative poses (+ a custom pose) with IFR on and/or off
(Fig. 5), and — for a benchmark query image — the gallery ranked before and after eq. 9 with those images."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from pose2id_demo.ablation import DEFAULT_ETA
from pose2id_demo.centralization import centralize
from pose2id_demo.centralization import l2_normalize as _l2n
from pose2id_demo.poses import draw

from .errors import Pose2IDError
from .features import FeatureStore
from .inputs import (
    CFG_RANGE,
    ETA_RANGE,
    IFR_CHOICES,
    QUERY_TOP,
    SEED_RANGE,
    STEPS_RANGE,
    check_choice,
    check_float,
    check_int,
    load_custom_pose,
    load_image,
)
from .models import Models
from .query_images import QueryImages
from .scheduler import GENERATION, INTERACTIVE, ProgressFn, noop_progress
from .views import top_list

__all__ = ["Generator"]

log = logging.getLogger(__name__)


def _log_timing(mode: str, n_images: int, size: tuple[int, int], start: float, step_ends: list[float],
                end: float) -> None:
    """One INFO line per pipeline call: the denoising steps' time (steady state: between the first and the last
    step's end, so the encoders and the reference pass are not in it), the time before the first step ends and
    after the last, and the process's peak GPU memory on CUDA (``bench/official_smoke.py`` reads this line)."""
    if not step_ends:
        return
    per_step = (step_ends[-1] - step_ends[0]) / (len(step_ends) - 1) if len(step_ends) > 1 else step_ends[0] - start
    gpu = ""
    torch = sys.modules.get("torch")  # loaded with the pipeline
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        gpu = f"; peak GPU memory so far {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    log.info("generated %d images of %dx%d (IFR %s): %d steps, %.3f s/step, first step done after %.2f s, "
             "decoding %.2f s, %.2f s in all%s", n_images, size[1], size[0], mode, len(step_ends), per_step,
             step_ends[0] - start, end - step_ends[-1], end - start, gpu)


class Generator:
    """Runs the pipeline for the UI's Generate tab.

    Args:
        models: the loaded resources (pipeline, poses, locks).
        features: the benchmark features (to rank a benchmark query's gallery).
        queries: recognises a benchmark query image.
        load_backbone: a checked backbone name → the loaded backbone.
    """

    def __init__(self, models: Models, features: FeatureStore, queries: QueryImages,
                 load_backbone: Callable[[str], Any]) -> None:
        self.models, self.features, self.queries, self.load_backbone = models, features, queries, load_backbone

    def generate(self, image: Any, use_ifr: str = "both", steps: int = 20, cfg: float = 3.5, seed: int | None = None,
                 eta: float = DEFAULT_ETA, custom_pose: Any = None, backbone: str = "synthped-reid",
                 progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """Generate the reference person in the 8 representative poses (+ a custom pose) and, for a
        benchmark query image, rank the gallery before/after eq. 9 with these generations.

        Args:
            image: the reference image (path, bytes, PIL or array) — validated by :func:`load_image`.
            use_ifr: ``on``, ``off`` or ``both`` (IFR ablation, Fig. 5: same seed, side by side).
            steps, cfg, seed: denoising steps, classifier-free guidance scale, seed (None: the generator's default,
                12580 with the official weights, 42 with the embedded one).
            eta: η of eq. 9 for the ranked lists.
            custom_pose: optional keypoint json / skeleton image / photo (:func:`load_custom_pose`).
            backbone: ReID backbone used for the ranked lists.

        Returns:
            ``{"images": {"on"|"off": [PIL]}, "poses": [name], "skeletons": [(array, name)],
            "reference": PIL, "query_index": int | None, "ranks": dict | None, "gen_feats": (M, d) | None,
            "seconds": float, "notes": [str], "seed": int}``.
        """
        use_ifr = check_choice("IFR", use_ifr, IFR_CHOICES)
        steps = check_int("steps", steps, *STEPS_RANGE)
        cfg = check_float("CFG scale", cfg, *CFG_RANGE)
        seed = check_int("seed", self.models.default_seed if seed is None else seed, *SEED_RANGE)
        eta = check_float("η", eta, *ETA_RANGE)
        if backbone not in self.models.backbones():  # checked before any work, not after generating
            raise Pose2IDError(f"Unknown backbone {str(backbone)[:40]!r}; available: "
                               f"{', '.join(self.models.backbones())}.")
        ref = load_image(image, what="reference image")
        poses = list(self.models.representative_poses())
        if custom_pose is not None:
            pose, how = load_custom_pose(custom_pose)
            poses.append((f"custom ({how})", pose))
        # Every input is checked: now wait for the official weights' download if one runs (no CPU slot held),
        # then for the CPU (a generation goes first), then for the models.
        self.models.fetch_generator(progress)
        with self.models.cpu.hold(GENERATION, "a generation", progress):
            return self._generate(ref, poses, use_ifr, steps, cfg, seed, eta, backbone, progress)

    def _generate(self, ref: Image.Image, poses: list[tuple[str, Any]], use_ifr: str, steps: int, cfg: float,
                  seed: int, eta: float, backbone: str, progress: ProgressFn) -> dict[str, Any]:
        """:meth:`generate` once its inputs are checked (and a CPU slot is held)."""
        notes: list[str] = []
        skeletons = [(draw.draw_pose(p, 128, 256), n) for n, p in poses]
        if "pipeline" not in self.models.store:
            progress(0.0, "Loading the generator (once) …")
        pipe = self.models.pipeline()
        modes = ("on", "off") if use_ifr == "both" else (use_ifr,)
        images: dict[str, list[Image.Image]] = {}
        t0 = time.perf_counter()
        with self.models.gen_lock:
            for mi, mode in enumerate(modes):
                step_ends: list[float] = []

                def cb(_pipe: Any, step: int, _t: Any, kw: dict, mi: int = mi, mode: str = mode,
                       step_ends: list[float] = step_ends) -> dict:
                    step_ends.append(time.perf_counter())
                    progress((mi + (step + 1) / steps) / len(modes), f"Generating (IFR {mode}) step {step + 1}/{steps}")
                    return kw

                progress(mi / len(modes), f"Generating (IFR {mode}) …")
                t_mode = time.perf_counter()
                out = pipe(reference_image=ref, poses=[p for _, p in poses], num_inference_steps=steps,
                           guidance_scale=cfg, seed=seed, use_ifr=(mode == "on"), callback_on_step_end=cb)
                images[mode] = list(out.images)
                _log_timing(mode, len(poses), out.images[0].size, t_mode, step_ends, time.perf_counter())
        seconds = time.perf_counter() - t0
        result: dict[str, Any] = {"images": images, "poses": [n for n, _ in poses], "skeletons": skeletons,
                                  "reference": ref, "query_index": None, "ranks": None, "gen_feats": None,
                                  "seconds": round(seconds, 2), "notes": notes, "backbone": backbone, "seed": seed}
        qi = None
        try:
            if ("qindex", "standard", backbone) not in self.models.store:
                progress(1.0, "Recognising a benchmark query: its images are rendered and indexed once …")
            qi = self.queries.index_of(ref, "standard", backbone)
        except Pose2IDError as exc:
            notes.append(f"Ranked lists unavailable: {exc}")
        if qi is None:
            notes.append("This image is not a benchmark query image, so there is no gallery to rank; pick "
                         "one of the examples to see the top-10 before/after eq. 9.")
            return result
        bb = self.load_backbone(backbone)
        imgs = images["on"] if "on" in images else images["off"]
        with self.models.extract_lock:
            gen = _l2n(bb.extract(imgs, batch_size=16))
        result["query_index"] = qi
        result["gen_feats"] = gen
        result["ranks"] = self.ranks_with_generations(qi, gen, eta, backbone)
        return result

    def ranks_with_generations(self, query_index: int, gen_feats: np.ndarray, eta: float = DEFAULT_ETA,
                               backbone: str = "synthped-reid", task: str = "standard") -> dict[str, Any]:
        """Top-10 of a benchmark query before and after eq. 9 with the user's own generations.

        The query feature becomes ``||f|| + eta/M * sum_i f_i`` over the ``M`` generated images'
        features; the gallery is left as it is.
        """
        eta = check_float("η", eta, *ETA_RANGE)
        with self.models.cpu.hold(INTERACTIVE, "re-ranking with the generations"):
            return self._ranks_with_generations(query_index, gen_feats, eta, backbone, task)

    def _ranks_with_generations(self, query_index: int, gen_feats: np.ndarray, eta: float, backbone: str,
                                task: str) -> dict[str, Any]:
        data = self.features.bench_data(task, backbone)
        qi = check_int("query index", query_index, 0, len(data.q) - 1)
        gen = np.asarray(gen_feats, np.float32)
        if gen.ndim != 2 or gen.shape[1] != data.q.shape[1] or not np.all(np.isfinite(gen)):
            raise Pose2IDError("The generated features do not fit this backbone; please generate again.")
        self.features.images(task)
        q_after = _l2n(centralize(data.q[qi][None], gen[None], eta))[0]
        before = np.linalg.norm(data.g - data.q[qi][None], axis=1)
        after = np.linalg.norm(data.g - q_after[None], axis=1)
        return {"query": {"path": data.q_paths[qi], "pid": int(data.q_pids[qi]), "camid": int(data.q_camids[qi])},
                "before": top_list(data, qi, before, QUERY_TOP),
                "after": top_list(data, qi, after, QUERY_TOP), "after_setting": f"eq. 9, η={eta:g}"}
