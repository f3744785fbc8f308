"""Models and other heavy resources, loaded lazily, once and thread-safely: ReID backbones, the generation
pipeline (the embedded tiny IPG or the official release), the representative poses, the feature caches.

This is the only module that imports heavy third-party packages lazily — torch, diffusers (through
:mod:`pose2id_demo.ipg`), and everything the ReID registry pulls in — and it does so in one helper,
:func:`needs`, which turns a missing package into :class:`~pose2id_demo.engine.errors.DependencyMissing`
with a sentence for the user. The project's light modules are imported normally.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pose2id_demo.data.market import IMAGE_SUFFIXES, SPLITS
from pose2id_demo.paths import cache_dir
from pose2id_demo.poses import draw, representative

from .errors import DependencyMissing, Pose2IDError
from .scheduler import CPU

__all__ = ["Models", "folder_key", "needs"]

log = logging.getLogger(__name__)


@contextmanager
def needs(what: str) -> Iterator[None]:
    """``with needs("The ReID backbones"): from pose2id_demo import reid`` — the one place heavy packages
    (torch, diffusers, …) are imported on first use; an ImportError becomes :class:`DependencyMissing`."""
    try:
        yield
    except ImportError as exc:
        raise DependencyMissing(f"{what} is not available in this installation ({exc}).") from None


def folder_key(root: str | Path) -> str:
    """A key of a Market-layout folder's benchmark content: SHA-256 over the sorted relative path, size and
    modification time (ns) of every image in ``query/`` and ``bounding_box_test/`` — cheap (no file is read),
    and any added, removed, renamed, resized or rewritten image changes it."""
    root = Path(root)
    h = hashlib.sha256()
    for sub in (SPLITS["query"], SPLITS["gallery"]):
        for p in sorted((root / sub).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                st = p.stat()
                h.update(f"{sub}/{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Models:
    """The loaded resources, each made once per key even under concurrent callers (:meth:`once`)."""

    def __init__(self, device: str | None = None) -> None:
        self._device = device
        self.lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}
        self.store: dict[Any, Any] = {}
        self.cpu = CPU  # every heavy computation holds it (taken before any lock here; :mod:`.scheduler`)
        self.gen_lock = threading.Lock()  # one diffusion run at a time (attention processors hold state)
        self.extract_lock = threading.Lock()
        self._pipeline_factory: Callable[[], Any] | None = None

    def once(self, key: Any, factory: Callable[[], Any]) -> Any:
        """Compute ``factory()`` once per key, even under concurrent callers (per-key lock)."""
        with self.lock:
            if key in self.store:
                return self.store[key]
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self.lock:
                if key in self.store:
                    return self.store[key]
            value = factory()
            with self.lock:
                self.store[key] = value
            return value

    @property
    def device(self) -> str:
        if self._device is None:
            with needs("PyTorch"):
                import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    # ---------------------------------------------------------------- ReID
    def backbones(self) -> list[str]:
        """Names of the available ReID backbones."""
        with needs("The ReID backbones"):
            from pose2id_demo import reid
        return list(reid.list_backbones())

    def backbone(self, name: str) -> Any:
        """The loaded backbone ``name`` (once; ``name`` already checked)."""

        def load() -> Any:
            with needs("The ReID backbones"):
                from pose2id_demo import reid
            t = time.perf_counter()
            bb = reid.get_backbone(name, device=self.device)
            log.info("loaded backbone %s in %.1f s", name, time.perf_counter() - t)
            return bb

        return self.once(("backbone", name), load)

    def dataset_features(self, backbone: str, task: str, progress: bool = True) -> dict[str, Any]:
        """Raw benchmark features of ``(task, backbone)`` (:func:`pose2id_demo.reid.features.dataset_features`)."""
        with needs("The benchmark feature cache"):
            from pose2id_demo.reid import features
        return features.dataset_features(backbone, task, progress=progress)

    def folder_features(self, backbone: str, name: str, root: str | Path, progress: bool = True) -> dict[str, Any]:
        """Raw features of the Market-layout folder ``root`` (a ``--dataset``), extracted once per backbone.

        The feature file (:func:`pose2id_demo.reid.extract.extract_features`: resumable, progress bar, junk
        dropped) lives under ``cache_dir()/datasets/``, named by ``name``, :func:`folder_key` and the backbone's
        weights, so a restart reuses it and a changed folder or new weights extract again. Paths come back
        absolute, in the reader's order.
        """
        with needs("The ReID backbones"):
            from pose2id_demo.reid import extract, features
        bb = self.backbone(backbone)
        root = Path(root)
        out = cache_dir() / "datasets" / f"{name}-{folder_key(root)[:20]}-{backbone}-{bb.weights_id[:16]}.npz"
        with self.extract_lock:
            if not out.is_file():
                log.info("dataset %s: extracting %s features into %s", name, backbone, out)
                extract.extract_features(root, backbone, out, progress=progress, device=self.device)
        d = features.load_feature_file(out)
        for s in ("q", "g"):
            d[f"{s}_paths"] = np.array([str(root / p) for p in d[f"{s}_paths"]])
        return d

    def features_for_paths(self, backbone: str, paths: Sequence[str]) -> np.ndarray:
        """Raw features of image files (disk-cached by :mod:`pose2id_demo.reid.features`)."""
        with needs("The feature cache"):
            from pose2id_demo.reid import features
        with self.extract_lock:
            return np.asarray(features.features_for_paths(backbone, list(paths), progress=True), np.float32)

    # ---------------------------------------------------------------- generation
    def use_official_ipg(self, directory: str | Path, reid_extractor: str | None = None) -> None:
        """Serve generations from the official Pose2ID release in ``directory`` instead of the tiny IPG.

        IFR's 3840-d ReID feature comes from ``directory/transformer_20.pth`` (TransReID, built in). Optionally
        ``reid_extractor`` is ``"module:callable"``: a factory returning another extractor to use instead
        (see :func:`pose2id_demo.ipg.official.load_official`). The folder is checked now; the weights load
        lazily on the first generation, like the embedded model.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise Pose2IDError(f"--ipg-weights: {directory} is not a folder.")
        with needs("The official Pose2ID loader"):
            from pose2id_demo.ipg import official

        missing = [f for f in official.OFFICIAL_FILES.values() if not (directory / f).exists()]
        if missing:
            raise Pose2IDError(f"--ipg-weights: {directory} lacks {', '.join(missing)}.")
        if reid_extractor and ":" not in reid_extractor:
            raise Pose2IDError("--reid-extractor must be MODULE:CALLABLE (a factory of the 3840-d extractor).")
        if not reid_extractor and not (directory / official.REID_FILE).exists():
            raise Pose2IDError(f"--ipg-weights: {directory} lacks {official.REID_FILE} (the TransReID weights "
                               "feeding IFR); add it or pass --reid-extractor MODULE:CALLABLE.")

        def load() -> Any:
            reid = None
            if reid_extractor:
                module_name, attr = reid_extractor.split(":", 1)
                reid = getattr(importlib.import_module(module_name), attr)()  # the operator's own module
            return official.load_official(directory, device=self.device, reid=reid)

        with self.lock:
            self.store.pop("pipeline", None)
            self._pipeline_factory = load

    def pipeline(self) -> Any:
        """The identity-guided generation pipeline, loaded once: the embedded tiny IPG (assets/models/ipg-tiny)
        unless :meth:`use_official_ipg` chose the official release."""
        if self._pipeline_factory is not None:
            return self.once("pipeline", self._pipeline_factory)

        def load() -> Any:
            with needs("The identity-guided generator (IPG)"):
                from pose2id_demo.ipg.pipeline import load_embedded
            t = time.perf_counter()
            try:
                pipe = load_embedded(device=self.device)
            except FileNotFoundError as exc:
                raise DependencyMissing(f"The embedded generator's weights are missing: {exc}") from None
            log.info("loaded IPG pipeline in %.1f s", time.perf_counter() - t)
            return pipe

        return self.once("pipeline", load)

    def representative_poses(self) -> list[tuple[str, Any]]:
        """The 8 representative poses (eqs. 7-8) as ``(name, Pose)``."""

        def load() -> list[tuple[str, Any]]:
            try:
                poses = list(representative.load_representative_poses())
            except FileNotFoundError as exc:
                raise DependencyMissing(f"The 8 representative poses are not shipped in this installation "
                                        f"({exc}).") from None
            if not poses:
                raise DependencyMissing("No representative poses are shipped in assets/poses/.")
            return poses

        return self.once("poses", load)

    def skeletons(self, width: int = 128, height: int = 256) -> list[tuple[np.ndarray, str]]:
        """The representative poses drawn as OpenPose skeletons, ``(image, name)``."""
        return [(draw.draw_pose(p, width, height), n) for n, p in self.representative_poses()]
