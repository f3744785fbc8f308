"""The benchmark's features: per (task, backbone), loaded once and kept in memory, with their generated-image
features (IPG, eq. 9) attached when a file matches their image lists.

The tasks are SynthPed's three and the extra datasets — Market-layout folders added with
:meth:`FeatureStore.add_dataset` (``python app.py --dataset NAME=ROOT``) — whose features are extracted once per
backbone (:meth:`~.models.Models.folder_features`) and whose generated features are the ones ``python -m
pose2id_demo generate`` wrote into the folder. A SynthPed task's generated features are the shipped
``assets/features/synthped-<task>-<backbone>-gen.npz``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pose2id_demo.centralization import l2_normalize as _l2n
from pose2id_demo.data import load_market, synthped
from pose2id_demo.data.synthped import ensure_benchmark
from pose2id_demo.featurefile import DEFAULT_MAX_BYTES, FeatureSet
from pose2id_demo.ipg.precompute import read_generated, synthped_generated_name
from pose2id_demo.paths import ASSETS

from .errors import Pose2IDError
from .inputs import TASKS, check_choice
from .models import Models
from .scheduler import INTERACTIVE, ProgressFn, noop_progress

__all__ = ["BenchData", "FeatureStore", "shipped_generated_path"]

log = logging.getLogger(__name__)

#: A ``--dataset`` name: what the task radio shows.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
#: At most this many ``.npz`` files in a dataset folder are looked at for generated features.
MAX_GEN_CANDIDATES = 32


@dataclass
class BenchData(FeatureSet):
    """Benchmark features of one (task, backbone) — a :class:`FeatureSet` (L2-normalised; ``q_gen``/``g_gen``
    the shipped generated-image features, if any) plus the image paths and a note on the generated ones."""

    q_paths: list[str] = field(default_factory=list)
    g_paths: list[str] = field(default_factory=list)
    gen_note: str = ""


class FeatureStore:
    """The tasks and their features, shared by every user.

    Args:
        models: where features are extracted and kept once (:class:`~.models.Models`).
        check_backbone: validates a backbone name (raises ``Pose2IDError``) and returns it.
    """

    def __init__(self, models: Models, check_backbone: Callable[[str], str]) -> None:
        self.models = models
        self.check_backbone = check_backbone
        self.datasets: dict[str, Path] = {}  # extra tasks: name → Market-layout root

    def add_dataset(self, name: str, root: str | Path) -> dict[str, Any]:
        """Add the Market-layout folder ``root`` as the task ``name`` (``python app.py --dataset NAME=ROOT``).

        The folder is read now (:func:`pose2id_demo.data.load_market`, strict: junk, pid −1, dropped;
        distractors, pid 0, kept in the gallery; a file not named ``{pid}_c{cam}…`` is an error naming it);
        features are extracted on first use.

        Returns:
            ``{"name", "root", "n_query", "n_gallery", "n_train"}``.

        Raises:
            Pose2IDError: a bad name (taken, or not 1-40 letters, digits, ``_.-``), a missing folder, a folder
                not in Market layout or one with a badly named image.
        """
        name = str(name).strip()
        if not DATASET_NAME.fullmatch(name):
            raise Pose2IDError(f"dataset name {name[:40]!r} must be 1-40 letters, digits, '_', '.' or '-' "
                               "(starting with a letter or digit).")
        if name.lower() in (t.lower() for t in self.tasks()):
            raise Pose2IDError(f"dataset name {name!r} is taken (tasks: {', '.join(self.tasks())}).")
        if not Path(root).is_dir():
            raise Pose2IDError(f"dataset folder {root} does not exist or is not a folder.")
        try:
            ds = load_market(root, strict=True)
        except (ValueError, OSError) as exc:
            raise Pose2IDError(str(exc)) from None
        self.datasets[name] = Path(ds.root)
        log.info("dataset %s: %s", name, ds)
        return {"name": name, "root": str(ds.root), "n_query": len(ds.query), "n_gallery": len(ds.gallery),
                "n_train": len(ds.train)}

    def tasks(self) -> list[str]:
        """The task names: SynthPed's three, then the extra datasets in the order they were added."""
        return [*TASKS, *self.datasets]

    def n_queries(self, task: str) -> int:
        """How many queries ``task`` has, read from file names only (no features): the query slider's range."""
        task = check_choice("task", task, self.tasks())
        if task in self.datasets:
            return self.models.once(("n_queries", task), lambda: len(load_market(self.datasets[task]).query))
        return int(synthped.NUM_TEST_IDS * synthped.QUERIES_PER_ID)

    def images(self, task: str) -> None:
        """Make sure the image files behind ``task``'s paths exist: a SynthPed task's features come shipped
        (no rendering needed for the tables), but ranked lists and the query index open the images, which
        are rendered once into the cache (about a minute; the app's warm-up does it at launch)."""
        if task in TASKS:
            self.models.once(("images", task), lambda: ensure_benchmark(task, progress=False))

    def bench_data(self, task: str, backbone: str, progress: ProgressFn = noop_progress) -> BenchData:
        """Benchmark features of ``(task, backbone)``: extracted once (disk-cached by DATA), kept here."""
        task = check_choice("task", task, self.tasks())
        backbone = self.check_backbone(backbone)
        hit = self.models.store.get(("bench", task, backbone))
        if hit is not None:  # loaded: no need to wait for the CPU
            return hit
        with self.models.cpu.hold(INTERACTIVE, f"loading the {task} features", progress):
            return self.models.once(("bench", task, backbone), lambda: self._load(task, backbone, progress))

    def _load(self, task: str, backbone: str, progress: ProgressFn) -> BenchData:
        """The features of ``(task, backbone)`` as :meth:`bench_data` keeps them."""
        t = time.perf_counter()
        if task in self.datasets:
            progress(0.05, f"Features of {task} ({backbone}): extracted once, then read from the disk cache …")
            d = self.models.folder_features(backbone, task, self.datasets[task], progress=True)
        else:
            progress(0.05, f"Loading {task} benchmark features ({backbone}) …")
            d = self.models.dataset_features(backbone, task, progress=True)
        data = BenchData(
            q=_l2n(d["q_feats"]), g=_l2n(d["g_feats"]),
            q_pids=np.asarray(d["q_pids"]), g_pids=np.asarray(d["g_pids"]),
            q_camids=np.asarray(d["q_camids"]), g_camids=np.asarray(d["g_camids"]),
            q_paths=[str(p) for p in d["q_paths"]], g_paths=[str(p) for p in d["g_paths"]],
        )
        if task in self.datasets:
            attach_folder_generated(data, self.datasets[task], task, backbone)
        else:
            attach_shipped_generated(data, task, backbone)
        log.info("benchmark %s/%s: %d query, %d gallery in %.1f s", task, backbone, len(data.q),
                 len(data.g), time.perf_counter() - t)
        return data


# ------------------------------------------------------------------------------------- generated features
def shipped_generated_path(task: str, backbone: str) -> Path:
    """Where the shipped generated-image features of a SynthPed task and a backbone are."""
    return ASSETS / "features" / synthped_generated_name(task, backbone)


def attach_shipped_generated(data: BenchData, task: str, backbone: str) -> None:
    """Attach the shipped generated-image features (IPG) when they match this image list."""
    path = shipped_generated_path(task, backbone)
    if not path.is_file():
        data.gen_note = (f"No generated features are shipped for {task}/{backbone} "
                         f"({path.name}); the IPG rows are not available.")
        return
    if not use_generated(data, path):
        data.gen_note = (f"The shipped generated features {path.name} do not match the current "
                         f"{task} image list; the IPG rows are not available.")
        log.warning(data.gen_note)


def attach_folder_generated(data: BenchData, root: Path, task: str, backbone: str) -> None:
    """Generated features of an extra dataset: the first ``ROOT/*.npz`` (name order) that ``python -m
    pose2id_demo generate`` wrote for this backbone and this folder's image list; else a note on how to
    make them."""
    candidates = sorted(p for p in root.glob("*.npz") if p.is_file())[:MAX_GEN_CANDIDATES]
    for path in candidates:
        if path.stat().st_size > DEFAULT_MAX_BYTES:
            continue
        try:
            if use_generated(data, path, backbone):
                data.gen_note = f"Generated features: {path.name}."
                log.info("dataset %s/%s: generated features from %s", task, backbone, path)
                return
        except Exception as exc:  # noqa: BLE001 — any .npz in the folder: unreadable means "not one of ours"
            log.warning("dataset %s: %s is not a generated-feature file (%s)", task, path.name, exc)
    data.gen_note = (f"No generated features for {task}/{backbone} in {root}; the IPG rows are not available. "
                     f"Make them with: python -m pose2id_demo generate --data {root} --backbone {backbone} "
                     f"--out {root / f'gen-{backbone}.npz'} (then restart the app).")


def use_generated(data: BenchData, path: Path, backbone: str | None = None) -> bool:
    """Attach ``path``'s ``q_gen``/``g_gen`` if they match ``data``'s image lists (and, when given, were
    made with ``backbone``: the ``settings`` the generate command writes); False otherwise."""
    try:
        z = read_generated(path)
    except ValueError as exc:
        log.info("%s: not usable as generated features (%s)", path.name, exc)
        return False
    if backbone is not None and z["settings"].get("backbone") != backbone:
        return False
    q_gen, g_gen = z["q_gen"], z["g_gen"]
    lists = {k: z[k] for k in ("q_paths", "g_paths") if k in z}
    ok = q_gen.ndim == 3 and g_gen.ndim == 3
    ok = ok and q_gen.shape[:1] == data.q.shape[:1] and g_gen.shape[:1] == data.g.shape[:1]
    ok = ok and q_gen.shape[-1] == data.q.shape[1] and g_gen.shape[-1] == data.g.shape[1]
    for k, mine in (("q_paths", data.q_paths), ("g_paths", data.g_paths)):
        if ok and k in lists:
            ok = [Path(p).name for p in lists[k]] == [Path(p).name for p in mine]
    if not ok:
        return False
    # Unit-length per generated image, like the originals: η then weighs unit vectors (eq. 9's ‖·‖), instead
    # of being rescaled by the backbone's raw feature norm (≈ 19 for synthped-reid, ≈ 27 for MobileNetV2).
    data.q_gen, data.g_gen = _l2n(q_gen), _l2n(g_gen)
    return True
