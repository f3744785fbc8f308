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

__all__ = ["EMBEDDED_SEED", "Models", "folder_key", "needs"]

log = logging.getLogger(__name__)

#: The default seed of the embedded generator (with the official weights: their inference's 12580).
EMBEDDED_SEED = 42


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


class _Download:
    """One run of ``fetch`` in its own thread: every caller waits on the same download (none starts a second)."""

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        threading.Thread(target=self._run, args=(fetch,), name="pose2id-download", daemon=True).start()

    def _run(self, fetch: Callable[[], Any]) -> None:
        try:
            fetch()
        except BaseException as exc:  # noqa: BLE001 — handed to every caller that waits for it
            self.error = exc
        finally:
            self.done.set()


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
        self.official: Any = None  # the official release's handle (use_official_ipg)
        self._download: _Download | None = None  # its download (fetch_generator)
        #: The seed generation uses when none is given: 42 with the embedded generator (the setting it was
        #: trained and benchmarked with), the official inference's 12580 with the official weights.
        self.default_seed = EMBEDDED_SEED

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

    def add_backbone(self, name: str) -> str:
        """Register ``name`` (``hf:<model id or folder>``, or an already registered name) with the ReID registry."""
        with needs("The ReID backbones"):
            from pose2id_demo import reid
        try:
            return reid.resolve_backbone(str(name).strip())
        except ValueError as exc:
            raise Pose2IDError(f"--backbone: {exc}") from None

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
            from pose2id_demo import reid
            from pose2id_demo.reid import extract, features
        bb = self.backbone(backbone)
        root = Path(root)
        slug = reid.backbone_slug(backbone)
        out = cache_dir() / "datasets" / f"{name}-{folder_key(root)[:20]}-{slug}-{bb.weights_id[:16]}.npz"
        with self.extract_lock:
            if not out.is_file():
                log.info("dataset %s: extracting %s features into %s", name, backbone, out)
                extract.extract_features(root, backbone, out, progress=progress, device=self.device, generated=False)
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
    def use_official_ipg(self, source: str | Path, reid_extractor: str | None = None) -> None:
        """Serve generations from the official Pose2ID release instead of the tiny IPG.

        ``source`` is ``hub[:REPO[@REVISION]]`` (the Hugging Face Hub, fetched into its cache on first use) or a
        folder (:func:`pose2id_demo.ipg.official.open_release`). It is checked now — a folder completely, the Hub
        for which files exist and how large they are (offline: the cache) — so that a bad source stops the app at
        start with one sentence; the download, if any, and the weights' loading happen lazily on the first
        generation (or in the launch-time warm-up), with :meth:`generator_status` saying how far the download is.

        IFR's 3840-d ReID feature comes from the release's ``transformer_20.pth`` (TransReID, built in). Optionally
        ``reid_extractor`` is ``"module:callable"``: a factory returning another extractor to use instead.
        """
        if reid_extractor and ":" not in reid_extractor:
            raise Pose2IDError("--reid-extractor must be MODULE:CALLABLE (a factory of the 3840-d extractor).")
        with needs("The official Pose2ID loader"):
            from pose2id_demo.ipg import hub, official
        try:
            handle = official.open_release(source, need_reid=not reid_extractor)
        except (official.ReleaseFileError, hub.HubError) as exc:
            raise Pose2IDError(f"--ipg-weights: {exc}") from None
        if handle.download_bytes:
            log.info("official Pose2ID weights: %s to download on first use", hub.human_bytes(handle.download_bytes))

        def load() -> Any:
            reid = None
            if reid_extractor:
                module_name, attr = reid_extractor.split(":", 1)
                reid = getattr(importlib.import_module(module_name), attr)()  # the operator's own module
            self.fetch_generator()  # the shared download (at once when it is done)
            t = time.perf_counter()
            try:
                release = handle.fetch()
                pipe = official.load_official(release, device=self.device, reid=reid)
            except (official.ReleaseFileError, hub.HubError) as exc:
                raise Pose2IDError(f"The official Pose2ID weights are not usable: {exc}") from None
            pipe.set_progress_bar_config(disable=True)
            log.info("loaded the official Pose2ID IPG (%s) in %.1f s", release.source, time.perf_counter() - t)
            return pipe

        with self.lock:
            self.store.pop("pipeline", None)
            self._pipeline_factory = load
            self.official, self._download = handle, None
            self.default_seed = official.OFFICIAL_SEED

    def fetch_generator(self, progress: Callable[[float, str], None] | None = None, wait: bool = True) -> None:
        """Make sure the official weights are on disk before the generator loads: start their download (in its own
        thread, holding no CPU slot: it is the network's time, not the CPU's) unless it runs or is done, and with
        ``wait`` wait for it, telling ``progress`` every second how far it is. Nothing to do with the embedded
        generator or a release already on disk. A failed download raises one sentence; the next call starts it
        again (it resumes)."""
        handle = self.official
        if handle is None:
            return
        with self.lock:
            dl = self._download
            if dl is None or (dl.done.is_set() and dl.error is not None):
                dl = self._download = _Download(handle.fetch)
        if not wait:
            return
        said = ""
        while not dl.done.wait(1.0):
            msg = f"Waiting for the generator: {handle.progress.describe() or 'checking the official weights'} …"
            if progress is not None and msg != said:
                progress(0.0, msg)
                said = msg
        if dl.error is not None:
            from pose2id_demo.ipg import hub, official

            if isinstance(dl.error, (official.ReleaseFileError, hub.HubError)):
                raise Pose2IDError(f"The official Pose2ID weights are not usable: {dl.error}") from None
            raise dl.error

    @property
    def generator_download_pending(self) -> bool:
        """Whether the official weights still have bytes to download (the warm-up then loads the generator last)."""
        handle = self.official
        return handle is not None and bool(handle.download_bytes) and not (
            self._download is not None and self._download.done.is_set() and self._download.error is None)

    def generator_status(self) -> str | None:
        """While the official weights download: ``"downloading the official Pose2ID weights: 1.2 GB of 7.8 GB
        (15 %)"``; else None."""
        handle = self.official
        return None if handle is None else handle.progress.describe()

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
