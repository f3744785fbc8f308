"""The one API the user interface calls.

:class:`Engine` ties the project's parts together for the demo: it loads every model lazily, once and
thread-safely; it keeps the benchmark features per (task, backbone) and the shipped generated features in
memory; it caches the expensive intermediate results (NFC, re-ranking distances, t-SNE) so that moving a
slider answers in well under a second; and it validates *every* input itself (the UI's slider limits are
not the only guard), raising :class:`Pose2IDError` with a sentence a user understands.

Paper references (Pose2ID, CVPR 2025):

- eq. 9, feature centralization with generated images: ``f~ = ||f|| + eta/M * sum_i f_i``
  (:func:`pose2id_demo.centralization.centralize`); the generated features are L2-normalised per image
  first, like the originals, so that η weighs unit vectors whatever the backbone's feature norm;
- Alg. 1 / eqs. 26-28, Neighbor Feature Centralization (:func:`pose2id_demo.centralization.nfc_sets`),
  used here in the *separate* mode of the published numbers (neighbours searched within the query set
  and within the gallery set);
- eqs. 20-21, identity density ID² (:func:`pose2id_demo.metrics.id2`), computed over query ∪ gallery;
- eqs. 29-31, Mahalanobis data cleansing and eq. 32, PoseValid (:meth:`Engine.cleansing`);
- Fig. 8 (η curve), Fig. 9 (k1 × k2 grid) and Table 6 (number M of generated images) for a user's own
  feature file (:meth:`Engine.evaluate_features`).
"""

from __future__ import annotations

import hashlib
import io
import importlib
import logging
import math
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pose2id_demo import ablation
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import ID2_VARIANTS, id2, id2_label
from pose2id_demo.metrics import identity_density as _identity_density
from pose2id_demo.visualize import tsne_2d

log = logging.getLogger(__name__)

TASKS = ("standard", "occluded", "infrared")
APPLY_CHOICES = ("none", "query", "gallery", "both")
IFR_CHOICES = ("on", "off", "both")
ROW_NAMES = ("baseline", "+NFC", "+IPG", "+NFC+IPG")
METRIC_COLUMNS = ("mAP", "Rank-1", "Rank-5", "Rank-10", "mINP", "ID²")

#: Uploaded images: at most this many pixels are ever decoded (a 12,000 × 12,000 "decompression bomb"
#: is refused, or — for JPEG — decoded at 1/2…1/8 scale by the decoder itself, so memory stays bounded).
MAX_IMAGE_PIXELS = 40_000_000
#: Uploaded images larger than this many bytes are refused before decoding.
MAX_IMAGE_BYTES = 30 * 1024 * 1024
#: Smallest accepted image side (pixels).
MIN_IMAGE_SIDE = 16
#: Decoded images are downscaled (aspect kept) so that their longer side is at most this.
WORK_MAX_SIDE = 1024
#: Feature files (.npz) from the UI/API: limit on the file size and on its uncompressed arrays.
MAX_FEATURE_BYTES = 512 * 1024 * 1024
#: Pose json uploads larger than this are refused.
MAX_POSE_JSON_BYTES = 1024 * 1024

# Parameter ranges enforced by the engine (inclusive).
STEPS_RANGE = (1, 50)
CFG_RANGE = (1.0, 10.0)
SEED_RANGE = (0, 2**32 - 1)
ETA_RANGE = (0.0, 10.0)
K_RANGE = (1, 20)
N_IDS_RANGE = (2, 30)
QUERY_TOP = 10


class Pose2IDError(ValueError):
    """A problem with the user's input or with what this installation provides.

    Its message is a complete sentence meant to be shown to the user as is (the UI turns it into
    ``gr.Error``).
    """


class DependencyMissing(Pose2IDError):
    """A part of the project this feature needs is not available in this installation."""


# --------------------------------------------------------------------------------------------------
# Parameter validation
# --------------------------------------------------------------------------------------------------


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise Pose2IDError(f"{name} must be a number, got {value!r}.")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise Pose2IDError(f"{name} must be a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(x):
        raise Pose2IDError(f"{name} must be a finite number, got {value!r}.")
    return x


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a finite float in ``[lo, hi]``, else :class:`Pose2IDError`."""
    x = _as_float(name, value)
    if not lo <= x <= hi:
        raise Pose2IDError(f"{name} must be between {lo:g} and {hi:g}; got {x:g}.")
    return x


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an integer in ``[lo, hi]`` (integral floats accepted), else :class:`Pose2IDError`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        x = int(value)
    else:
        f = _as_float(name, value)
        if f != int(f):
            raise Pose2IDError(f"{name} must be a whole number; got {f:g}.")
        x = int(f)
    if not lo <= x <= hi:
        raise Pose2IDError(f"{name} must be between {lo} and {hi}; got {x}.")
    return x


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (case-insensitive), else :class:`Pose2IDError`."""
    v = str(value).strip().lower() if value is not None else ""
    for c in choices:
        if v == c.lower():
            return c
    raise Pose2IDError(f"{name} must be one of {', '.join(choices)}; got {str(value)[:40]!r}.")


@dataclass(frozen=True)
class BenchSettings:
    """One user's benchmark settings (validated).

    Attributes:
        task: SynthPed task (``standard``, ``occluded`` or ``infrared``).
        backbone: ReID backbone name (:func:`pose2id_demo.reid.list_backbones`).
        eta: η of eq. 9.
        k1, k2: NFC neighbourhood sizes (Alg. 1).
        nfc_on, ipg_on: which set NFC / IPG centralization is applied to (``query``/``gallery``/``both``).
        rerank: k-reciprocal re-ranking (k1=20, k2=6, λ=0.3) instead of the Euclidean distance.
    """

    task: str = "standard"
    backbone: str = "synthped-reid"
    eta: float = 0.5
    k1: int = 2
    k2: int = 2
    nfc_on: str = "both"
    ipg_on: str = "both"
    rerank: bool = False

    @classmethod
    def make(cls, **kw: Any) -> BenchSettings:
        """Validate raw values (from the UI or the API) into settings; raises :class:`Pose2IDError`."""
        d = asdict(cls())
        d.update({k: v for k, v in kw.items() if v is not None})
        rr = d["rerank"]
        if isinstance(rr, str):
            rr = rr.strip().lower() in ("1", "true", "on", "yes")
        return cls(
            task=check_choice("task", d["task"], TASKS),
            backbone=str(d["backbone"])[:64],
            eta=check_float("η", d["eta"], *ETA_RANGE),
            k1=check_int("k1", d["k1"], *K_RANGE),
            k2=check_int("k2", d["k2"], *K_RANGE),
            nfc_on=check_choice("NFC on", d["nfc_on"], APPLY_CHOICES),
            ipg_on=check_choice("IPG on", d["ipg_on"], APPLY_CHOICES),
            rerank=bool(rr),
        )


# --------------------------------------------------------------------------------------------------
# Untrusted images
# --------------------------------------------------------------------------------------------------


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB (16-bit and float scaled, transparency composited on white)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16"):
            a = a / 257.0
        elif a.size and a.max() > 255:  # 32-bit int / float greyscale: stretch to 0..255
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / max(hi - lo, 1e-12) * 255.0
        a8 = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(a8, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode == "RGB":
        return im
    return im.convert("RGB")


def load_image(source: Any, what: str = "image") -> Image.Image:
    """Decode an untrusted image upload into a bounded 8-bit RGB PIL image.

    Accepts a file path, bytes, a PIL image or a uint8/uint16 numpy array. Handles greyscale, RGBA,
    CMYK, 16-bit PNG and animated GIF (first frame). Refuses corrupt or non-image files, images smaller
    than :data:`MIN_IMAGE_SIDE` and images above :data:`MAX_IMAGE_PIXELS` (JPEGs above it are decoded
    at reduced scale by the decoder instead, so memory stays bounded). The result's longer side is at
    most :data:`WORK_MAX_SIDE`.

    Raises:
        Pose2IDError: with a message naming ``what`` and the problem.
    """
    if source is None:
        raise Pose2IDError(f"Please provide an {what}.")
    if isinstance(source, dict):  # a Gradio FileData payload
        source = source.get("path") or source.get("name")
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim not in (2, 3) or arr.size == 0:
            raise Pose2IDError(f"The {what} array has shape {arr.shape}; expected H×W or H×W×C.")
        if arr.dtype == np.uint16:
            arr = (arr / 257.0).round().astype(np.uint8)
        if arr.dtype != np.uint8:
            raise Pose2IDError(f"The {what} array must be uint8 or uint16, got {arr.dtype}.")
        if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
            raise Pose2IDError(f"The {what} array has {arr.shape[2]} channels; expected 1, 3 or 4.")
        source = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    if isinstance(source, Image.Image):
        im = source
        fmt = None
    else:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
            if len(data) > MAX_IMAGE_BYTES:
                raise Pose2IDError(f"The {what} is {len(data) / 2**20:.0f} MB; the limit is "
                                   f"{MAX_IMAGE_BYTES // 2**20} MB.")
            fp: Any = io.BytesIO(data)
        else:
            p = Path(str(source))
            if not p.is_file():
                raise Pose2IDError(f"The {what} file could not be found.")
            size = p.stat().st_size
            if size == 0:
                raise Pose2IDError(f"The {what} file is empty.")
            if size > MAX_IMAGE_BYTES:
                raise Pose2IDError(f"The {what} file is {size / 2**20:.0f} MB; the limit is "
                                   f"{MAX_IMAGE_BYTES // 2**20} MB.")
            fp = p
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(fp)  # reads the header only
        except Image.DecompressionBombError:
            raise Pose2IDError(f"The {what} is far too large to decode safely (limit "
                               f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels).") from None
        except UnidentifiedImageError:
            raise Pose2IDError(f"The {what} is not an image file Pillow can read (corrupt, or another "
                               f"kind of file renamed). Please upload a JPEG, PNG, WebP or GIF.") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise Pose2IDError(f"The {what} is damaged or truncated and could not be read ({exc}).") from None
        fmt = im.format
    w, h = im.size
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        raise Pose2IDError(f"The {what} is only {w}×{h} pixels; it needs to be at least "
                           f"{MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE}.")
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # animated GIF / APNG / multi-page TIFF: the first frame
        if w * h > MAX_IMAGE_PIXELS:
            if fmt == "JPEG":
                # The JPEG decoder can scale by 1/2, 1/4 or 1/8 while decoding: bounded memory.
                # draft() picks the smallest of those scales that still covers the requested size.
                scale = WORK_MAX_SIDE / max(w, h)
                im.draft(im.mode if im.mode in ("L", "RGB") else "RGB",
                         (max(1, int(w * scale)), max(1, int(h * scale))))
                if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:
                    raise Pose2IDError(f"The {what} is {w}×{h} pixels; the limit is "
                                       f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels.")
            else:
                raise Pose2IDError(f"The {what} is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); the "
                                   f"limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Please downscale it.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
            im = ImageOps.exif_transpose(im) or im
            rgb = _to_rgb(im)
    except Pose2IDError:
        raise
    except Exception as exc:  # truncated data, broken chunks, decoder errors
        raise Pose2IDError(f"The {what} is damaged and could not be decoded ({type(exc).__name__}).") from None
    if max(rgb.size) > WORK_MAX_SIDE:
        rgb = rgb.copy()
        rgb.thumbnail((WORK_MAX_SIDE, WORK_MAX_SIDE), Image.Resampling.LANCZOS)
    return rgb


def image_digest(im: Image.Image) -> str:
    """Content hash of an RGB image (size + pixels); identifies benchmark images however they arrive."""
    a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    h = hashlib.sha1(f"{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Untrusted poses
# --------------------------------------------------------------------------------------------------


def load_custom_pose(source: Any) -> tuple[Any, str]:
    """A custom target pose from a keypoint json, an OpenPose skeleton image or a photo of a person.

    Images are decoded by :func:`load_image` (bounded, validated) and then handed to
    :func:`pose2id_demo.poses.pose_from_upload`, which tells skeleton renders from photos (photos go
    through the offline pose estimator).

    Returns:
        ``(Pose, how)`` where ``how`` says how the pose was obtained.

    Raises:
        Pose2IDError: unreadable file, invalid keypoints, or no person found in the photo.
    """
    if isinstance(source, dict):
        source = source.get("path") or source.get("name")
    if source is None:
        raise Pose2IDError("Please provide a custom pose file.")
    p = Path(str(source))
    if not p.is_file():
        raise Pose2IDError("The custom pose file could not be found.")
    poses = _import("pose2id_demo.poses", "Pose handling")
    if p.suffix.lower() == ".json":
        if p.stat().st_size > MAX_POSE_JSON_BYTES:
            raise Pose2IDError("The pose json is larger than 1 MB; a pose is 18 keypoints.")
        try:
            return poses.load_pose_json(p), "keypoint json"
        except (ValueError, UnicodeDecodeError) as exc:
            raise Pose2IDError(f"The pose json is not valid: {exc}") from None
    im = load_image(p, what="pose image")
    try:
        pose, kind = poses.pose_from_upload(im)
    except poses.NoPersonFound:
        raise Pose2IDError("No person was found in the pose photo; the pose step needs a clearly "
                           "visible person (or upload a skeleton image or keypoint json).") from None
    except ValueError as exc:
        raise Pose2IDError(f"No pose could be read from the pose image: {exc}.") from None
    how = {"skeleton": "skeleton image", "photo": "pose estimated from the photo"}.get(kind, kind)
    return pose, how


# --------------------------------------------------------------------------------------------------
# Caching
# --------------------------------------------------------------------------------------------------


class _LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._d)


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _pct(v: Any) -> float:
    """Metrics come as fractions in [0, 1]; shown as percentages."""
    return round(float(v) * 100.0, 2)


def _import(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyMissing(f"{what} is not available in this installation ({module}: {exc}).") from None


@dataclass
class BenchData(FeatureSet):
    """Benchmark features of one (task, backbone) — a :class:`FeatureSet` (L2-normalised; ``q_gen``/``g_gen``
    the shipped generated-image features, if any) plus the image paths and a note on the generated ones."""

    q_paths: list[str] = field(default_factory=list)
    g_paths: list[str] = field(default_factory=list)
    gen_note: str = ""


class _ScopedCache:
    """The engine's bounded caches as an ablation cache for one feature set: keys are prefixed with
    ``scope`` and routed by their kind (rows, features, distance matrices)."""

    def __init__(self, scope: tuple, lrus: dict[str, _LRU]) -> None:
        self.scope, self.lrus = scope, lrus

    def get(self, key: tuple) -> Any:
        return self.lrus[key[0]].get(self.scope + key)

    def put(self, key: tuple, value: Any) -> Any:
        return self.lrus[key[0]].put(self.scope + key, value)


ProgressFn = Callable[[float, str], None]


def _noop_progress(frac: float, desc: str) -> None:  # noqa: ARG001
    return None


class Engine:
    """Lazily loaded models and cached benchmark computations shared by all users of the demo.

    Every public method validates its arguments and raises :class:`Pose2IDError` for bad input.
    All state here is shared and read-mostly (models, features, caches keyed by the full settings);
    per-user state lives in the UI's ``gr.State``.
    """

    def __init__(self, device: str | None = None) -> None:
        self._device = device
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}
        self._store: dict[Any, Any] = {}
        self._gen_lock = threading.Lock()  # one diffusion run at a time (attention processors hold state)
        self._extract_lock = threading.Lock()
        self._results = _LRU(512)  # metrics rows
        self._feats = _LRU(24)  # centralized feature sets (≤ ~5 MB each on SynthPed)
        self._dists = _LRU(12)  # distance matrices (re-ranking is the slow one)
        self._tsne = _LRU(32)

    # ---------------------------------------------------------------- lazy resources
    def _once(self, key: Any, factory: Callable[[], Any]) -> Any:
        """Compute ``factory()`` once per key, even under concurrent callers (per-key lock)."""
        with self._lock:
            if key in self._store:
                return self._store[key]
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self._lock:
                if key in self._store:
                    return self._store[key]
            value = factory()
            with self._lock:
                self._store[key] = value
            return value

    @property
    def device(self) -> str:
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    def backbones(self) -> list[str]:
        """Names of the available ReID backbones."""
        reid = _import("pose2id_demo.reid", "The ReID backbones")
        if not hasattr(reid, "list_backbones"):
            raise DependencyMissing("The ReID backbone registry is not available in this installation.")
        return list(reid.list_backbones())

    def _check_backbone(self, name: str) -> str:
        names = self.backbones()
        if name not in names:
            raise Pose2IDError(f"Unknown backbone {name!r}; available: {', '.join(names)}.")
        return name

    def backbone(self, name: str) -> Any:
        """The loaded backbone ``name`` (once)."""
        name = self._check_backbone(name)

        def load() -> Any:
            reid = _import("pose2id_demo.reid", "The ReID backbones")
            t = time.perf_counter()
            bb = reid.get_backbone(name, device=self.device)
            log.info("loaded backbone %s in %.1f s", name, time.perf_counter() - t)
            return bb

        return self._once(("backbone", name), load)

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
        from pose2id_demo.ipg.official import OFFICIAL_FILES, REID_FILE

        missing = [f for f in OFFICIAL_FILES.values() if not (directory / f).exists()]
        if missing:
            raise Pose2IDError(f"--ipg-weights: {directory} lacks {', '.join(missing)}.")
        if reid_extractor and ":" not in reid_extractor:
            raise Pose2IDError("--reid-extractor must be MODULE:CALLABLE (a factory of the 3840-d extractor).")
        if not reid_extractor and not (directory / REID_FILE).exists():
            raise Pose2IDError(f"--ipg-weights: {directory} lacks {REID_FILE} (the TransReID weights feeding IFR); "
                               "add it or pass --reid-extractor MODULE:CALLABLE.")

        def load() -> Any:
            from pose2id_demo.ipg.official import load_official

            reid = None
            if reid_extractor:
                module_name, attr = reid_extractor.split(":", 1)
                reid = getattr(importlib.import_module(module_name), attr)()
            return load_official(directory, device=self.device, reid=reid)

        with self._lock:
            self._store.pop("pipeline", None)
            self._pipeline_factory = load

    def pipeline(self) -> Any:
        """The identity-guided generation pipeline, loaded once: the embedded tiny IPG (assets/models/ipg-tiny)
        unless :meth:`use_official_ipg` chose the official release."""
        factory = getattr(self, "_pipeline_factory", None)
        if factory is not None:
            return self._once("pipeline", factory)

        def load() -> Any:
            ipg = _import("pose2id_demo.ipg", "The identity-guided generator (IPG)")
            if not hasattr(ipg, "load_embedded"):
                raise DependencyMissing("The identity-guided generator (IPG) is not available in this "
                                        "installation (pose2id_demo.ipg.load_embedded is missing).")
            t = time.perf_counter()
            try:
                pipe = ipg.load_embedded(device=self.device)
            except FileNotFoundError as exc:
                raise DependencyMissing(f"The embedded generator's weights are missing: {exc}") from None
            log.info("loaded IPG pipeline in %.1f s", time.perf_counter() - t)
            return pipe

        return self._once("pipeline", load)

    def representative_poses(self) -> list[tuple[str, Any]]:
        """The 8 representative poses (eqs. 7-8) as ``(name, Pose)``."""

        def load() -> list[tuple[str, Any]]:
            rep = _import("pose2id_demo.poses.representative", "The representative poses")
            try:
                poses = list(rep.load_representative_poses())
            except FileNotFoundError as exc:
                raise DependencyMissing(f"The 8 representative poses are not shipped in this installation "
                                        f"({exc}).") from None
            if not poses:
                raise DependencyMissing("No representative poses are shipped in assets/poses/.")
            return poses

        return self._once("poses", load)

    def skeletons(self, width: int = 128, height: int = 256) -> list[tuple[np.ndarray, str]]:
        """The representative poses drawn as OpenPose skeletons, ``(image, name)``."""
        draw = _import("pose2id_demo.poses.draw", "Skeleton drawing")
        return [(draw.draw_pose(p, width, height), n) for n, p in self.representative_poses()]

    # ---------------------------------------------------------------- benchmark data
    def bench_data(self, task: str, backbone: str, progress: ProgressFn = _noop_progress) -> BenchData:
        """Benchmark features of ``(task, backbone)``: extracted once (disk-cached by DATA), kept here."""
        task = check_choice("task", task, TASKS)
        backbone = self._check_backbone(backbone)

        def load() -> BenchData:
            feats_mod = _import("pose2id_demo.reid.features", "The benchmark feature cache")
            progress(0.05, f"Loading {task} benchmark features ({backbone}) …")
            t = time.perf_counter()
            d = feats_mod.dataset_features(backbone, task, progress=True)
            data = BenchData(
                q=_l2n(d["q_feats"]), g=_l2n(d["g_feats"]),
                q_pids=np.asarray(d["q_pids"]), g_pids=np.asarray(d["g_pids"]),
                q_camids=np.asarray(d["q_camids"]), g_camids=np.asarray(d["g_camids"]),
                q_paths=[str(p) for p in d["q_paths"]], g_paths=[str(p) for p in d["g_paths"]],
            )
            self._attach_generated(data, task, backbone)
            log.info("benchmark %s/%s: %d query, %d gallery in %.1f s", task, backbone, len(data.q),
                     len(data.g), time.perf_counter() - t)
            return data

        return self._once(("bench", task, backbone), load)

    def _attach_generated(self, data: BenchData, task: str, backbone: str) -> None:
        """Attach the shipped generated-image features (IPG) when they match this image list."""
        from pose2id_demo.paths import ASSETS

        path = ASSETS / "features" / f"synthped-{task}-{backbone}-gen.npz"
        if not path.is_file():
            data.gen_note = (f"No generated features are shipped for {task}/{backbone} "
                             f"({path.name}); the IPG rows are not available.")
            return
        with np.load(path, allow_pickle=False) as z:
            q_gen, g_gen = np.asarray(z["q_gen"], np.float32), np.asarray(z["g_gen"], np.float32)
            lists = {k: [str(s) for s in z[k]] for k in ("q_paths", "g_paths") if k in z.files}
        ok = q_gen.shape[:1] == data.q.shape[:1] and g_gen.shape[:1] == data.g.shape[:1]
        ok = ok and q_gen.shape[-1] == data.q.shape[1] and g_gen.shape[-1] == data.g.shape[1]
        for k, mine in (("q_paths", data.q_paths), ("g_paths", data.g_paths)):
            if ok and k in lists:
                ok = [Path(p).name for p in lists[k]] == [Path(p).name for p in mine]
        if not ok:
            data.gen_note = (f"The shipped generated features {path.name} do not match the current "
                             f"{task} image list; the IPG rows are not available.")
            log.warning(data.gen_note)
            return
        # Unit-length per generated image, like the originals: η then weighs unit vectors (eq. 9's ‖·‖), instead
        # of being rescaled by the backbone's raw feature norm (≈ 19 for synthped-reid, ≈ 27 for MobileNetV2).
        data.q_gen, data.g_gen = _l2n(q_gen), _l2n(g_gen)

    # ---------------------------------------------------------------- centralization stages
    def _cache(self, key: tuple) -> _ScopedCache:
        return _ScopedCache(key, {"row": self._results, "feats": self._feats, "dist": self._dists})

    @staticmethod
    def _ablation_settings(s: BenchSettings, id2_variant: str = "paper") -> ablation.Settings:
        return ablation.Settings(eta=s.eta, k1=s.k1, k2=s.k2, nfc_on=s.nfc_on, ipg_on=s.ipg_on, rerank=s.rerank,
                                 id2_variant=id2_variant)

    # ---------------------------------------------------------------- public API: benchmark
    def benchmark(self, task: str = "standard", backbone: str = "synthped-reid", eta: float = 0.5,
                  k1: int = 2, k2: int = 2, nfc_on: str = "both", ipg_on: str = "both",
                  rerank: bool = False, id2_variant: str = "paper",
                  progress: ProgressFn = _noop_progress) -> dict[str, Any]:
        """The ablation table of Table 2 on a SynthPed task: baseline, +NFC, +IPG, +NFC+IPG
        (:func:`pose2id_demo.ablation.table`).

        Returns:
            ``{"rows": [dict(setting, mAP, Rank-1, Rank-5, Rank-10, mINP, ID²)], "notes": [str],
            "settings": dict, "n_query": int, "n_gallery": int, "id2_variant": str, "id2_label": str}``;
            metrics in percent, ID² in the variant named (``paper``: eqs. 20-21; ``official``: ID2.py).
            Rows that cannot be computed (no generated features for the task) are left out and a note
            says why.
        """
        s = BenchSettings.make(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on,
                               ipg_on=ipg_on, rerank=rerank)
        id2_variant = check_choice("ID² variant", id2_variant, ID2_VARIANTS)
        data = self.bench_data(s.task, s.backbone, progress)
        notes = []
        if s.nfc_on == "none":
            notes.append("NFC is switched off: the +NFC rows are left out.")
        if s.ipg_on == "none":
            notes.append("IPG is switched off: the +IPG rows are left out.")
        elif data.q_gen is None:
            notes.append(data.gen_note)
        rows = ablation.table(data, self._ablation_settings(s, id2_variant), self._cache((s.task, s.backbone)),
                              progress)
        return {"rows": [ablation.percent_row(r) for r in rows], "notes": notes, "settings": asdict(s),
                "n_query": int(len(data.q)), "n_gallery": int(len(data.g)), "id2_variant": id2_variant,
                "id2_label": id2_label(id2_variant)}

    def ranks(self, task: str = "standard", backbone: str = "synthped-reid", query_index: int = 0,
              eta: float = 0.5, k1: int = 2, k2: int = 2, nfc_on: str = "both", ipg_on: str = "both",
              rerank: bool = False, top: int = QUERY_TOP) -> dict[str, Any]:
        """Top-``top`` gallery list of one query before (baseline) and after (+NFC+IPG, or what is on).

        Gallery images of the query's identity from the query's camera are left out, as in the
        Market-1501 protocol the metrics use.

        Returns:
            ``{"query": dict(path, pid, camid), "before": [dict(path, pid, camid, distance, match)],
            "after": [...], "after_setting": str}``.
        """
        s = BenchSettings.make(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on,
                               ipg_on=ipg_on, rerank=rerank)
        data = self.bench_data(s.task, s.backbone)
        qi = check_int("query index", query_index, 0, len(data.q) - 1)
        top = check_int("top", top, 1, 50)
        a, cache = self._ablation_settings(s), self._cache((s.task, s.backbone))
        after_row = ablation.after_row(data, a)
        out = {"query": {"path": data.q_paths[qi], "pid": int(data.q_pids[qi]), "camid": int(data.q_camids[qi])},
               "after_setting": after_row}
        for name, row in (("before", "baseline"), ("after", after_row)):
            if s.rerank:
                dist = ablation.distances(data, a, row, cache)[qi]
            else:
                q, g = ablation.stage_features(data, a, row, cache)
                dist = np.linalg.norm(g - q[qi][None], axis=1)
            out[name] = self._top_list(data, qi, dist, top)
        return out

    def per_query(self, task: str = "standard", backbone: str = "synthped-reid", eta: float = 0.5, k1: int = 2,
                  k2: int = 2, nfc_on: str = "both", ipg_on: str = "both", rerank: bool = False,
                  progress: ProgressFn = _noop_progress) -> dict[str, Any]:
        """Every query's AP (%) and first-correct rank under the baseline and under the current setting
        (:func:`pose2id_demo.ablation.per_query`), and the typical query of that change
        (:func:`pose2id_demo.ablation.typical_query`: AP change closest to the mean change; ties → the
        baseline first-correct rank closest to the median).

        Returns:
            ``{"rows": [dict(query, pid, AP before, AP after, ΔAP, rank before, rank after)],
            "typical": int | None, "mean_delta_ap": float, "after_setting": str, "rule": str}``.
        """
        s = BenchSettings.make(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on,
                               ipg_on=ipg_on, rerank=rerank)
        data = self.bench_data(s.task, s.backbone, progress)
        a, key = self._ablation_settings(s), (s.task, s.backbone)
        ck = ("per_query", key) + ablation.row_key(a, ablation.after_row(data, a)) + (s.rerank,)
        hit = self._results.get(ck)
        if hit is not None:
            return hit
        pq = ablation.per_query(data, a, self._cache(key))
        delta = pq["ap_after"] - pq["ap_before"]
        rows = [{"query": int(i), "pid": int(pq["pid"][i]), "AP before": float(pq["ap_before"][i]),
                 "AP after": float(pq["ap_after"][i]), "ΔAP": round(float(delta[i]), 2),
                 "rank before": int(pq["rank_before"][i]), "rank after": int(pq["rank_after"][i])}
                for i in range(len(data.q))]
        valid = np.isfinite(delta)
        out = {"rows": rows, "typical": ablation.typical_query(pq), "after_setting": pq["after_setting"],
               "mean_delta_ap": round(float(delta[valid].mean()), 2) if valid.any() else float("nan"),
               "rule": ablation.TYPICAL_RULE}
        return self._results.put(ck, out)

    @staticmethod
    def _top_list(data: BenchData, qi: int, dist: np.ndarray, top: int) -> list[dict[str, Any]]:
        keep = ~((data.g_pids == data.q_pids[qi]) & (data.g_camids == data.q_camids[qi]))
        idx = np.flatnonzero(keep)
        order = idx[np.argsort(dist[idx], kind="stable")[:top]]
        return [{"path": data.g_paths[j], "pid": int(data.g_pids[j]), "camid": int(data.g_camids[j]),
                 "distance": round(float(dist[j]), 4), "match": bool(data.g_pids[j] == data.q_pids[qi])}
                for j in order]

    def tsne(self, task: str = "standard", backbone: str = "synthped-reid", eta: float = 0.5, k1: int = 2,
             k2: int = 2, nfc_on: str = "both", ipg_on: str = "both", n_ids: int = 10, id2_variant: str = "paper",
             progress: ProgressFn = _noop_progress) -> dict[str, Any]:
        """2-D t-SNE of ``n_ids`` identities' query+gallery features before and after centralization (Fig. 4).

        PCA to at most 50 dimensions first; perplexity clamped below the number of samples; fixed
        ``random_state`` so that the picture is reproducible. The identities are the ``n_ids`` with the
        most images (ties by id), the same for every setting.

        Returns:
            ``{"before": (n, 2), "after": (n, 2), "pids": (n,), "is_query": (n,), "after_setting": str,
            "id2_before": float, "id2_after": float}``.
        """
        s = BenchSettings.make(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on,
                               ipg_on=ipg_on)
        n_ids = check_int("number of identities", n_ids, *N_IDS_RANGE)
        id2_variant = check_choice("ID² variant", id2_variant, ID2_VARIANTS)
        data = self.bench_data(s.task, s.backbone, progress)
        key = (s.task, s.backbone)
        a, cache = self._ablation_settings(s, id2_variant), self._cache(key)
        after_row = ablation.after_row(data, a)
        ck = ("tsne", key, n_ids, id2_variant) + ablation.row_key(a, after_row)
        hit = self._tsne.get(ck)
        if hit is not None:
            return hit
        pids = np.concatenate([data.q_pids, data.g_pids])
        is_query = np.concatenate([np.ones(len(data.q), bool), np.zeros(len(data.g), bool)])
        uniq, counts = np.unique(pids[pids > 0], return_counts=True)  # no distractors (0) / junk (-1)
        chosen = uniq[np.lexsort((uniq, -counts))][:n_ids]
        sel = np.flatnonzero(np.isin(pids, chosen))
        out: dict[str, Any] = {"pids": pids[sel], "is_query": is_query[sel], "after_setting": after_row,
                               "id2_variant": id2_variant}
        for i, (name, row) in enumerate((("before", "baseline"), ("after", after_row))):
            progress(0.3 + 0.35 * i, f"t-SNE {name} …")
            q, g = ablation.stage_features(data, a, row, cache)
            x = np.concatenate([q, g])[sel]
            out[name] = tsne_2d(x)
            out[f"id2_{name}"] = round(float(id2(x, pids[sel], variant=id2_variant)), 4)
        return self._tsne.put(ck, out)

    # ---------------------------------------------------------------- public API: cleansing
    def cleansing(self, task: str = "standard", backbone: str = "synthped-reid", quantile: float = 0.005,
                  progress: ProgressFn = _noop_progress) -> dict[str, Any]:
        """Data cleansing of the train split (Supplementary 7.1): Mahalanobis outliers (eqs. 29-31)
        and PoseValid rejects (eq. 32).

        Returns:
            ``{"n_train", "n_ids", "outliers": [dict(path, pid, distance)], "pose_rejects":
            [dict(path, pid, reason)], "n_no_pose": int, "quantile": float}``.
        """
        task = check_choice("task", task, TASKS)
        backbone = self._check_backbone(backbone)
        quantile = check_float("quantile p", quantile, 0.0, 0.5)  # keeps [Q_p, Q_1-p] (eq. 31; paper: 0.005)
        return self._once(("cleansing", task, backbone, quantile),
                          lambda: self._cleansing(task, backbone, quantile, progress))

    def _train_features(self, task: str, backbone: str, progress: ProgressFn) -> tuple[list[Any], np.ndarray]:
        """Train-split records and their raw features (DATA's on-disk feature cache)."""
        data_mod = _import("pose2id_demo.data", "The SynthPed benchmark")
        synth = _import("pose2id_demo.data.synthped", "The SynthPed benchmark")
        feats_mod = _import("pose2id_demo.reid.features", "The feature cache")
        ds = data_mod.load_market(synth.ensure_benchmark(task, progress=False))
        recs = list(ds.train)
        if not recs:
            raise Pose2IDError(f"The {task} benchmark has no train split.")
        progress(0.1, f"Train features of {len(recs)} images ({backbone}; extracted once, then cached) …")
        with self._extract_lock:
            feats = feats_mod.features_for_paths(backbone, [r.path for r in recs], progress=True)
        return recs, np.asarray(feats, np.float32)

    def _cleansing(self, task: str, backbone: str, quantile: float, progress: ProgressFn) -> dict[str, Any]:
        cl = _import("pose2id_demo.cleansing", "Data cleansing")
        recs, feats = self._train_features(task, backbone, progress)
        pids = np.asarray([r.pid for r in recs])
        progress(0.7, "Mahalanobis filter …")
        res = cl.mahalanobis_filter(_l2n(feats), pids, quantile=quantile)
        if isinstance(res, tuple):
            keep, dists = np.asarray(res[0], bool), np.asarray(res[1], np.float64)
        else:
            keep, dists = np.asarray(res, bool), np.full(len(recs), np.nan)
        out_idx = np.flatnonzero(~keep)
        out_idx = out_idx[np.argsort(-np.nan_to_num(dists[out_idx], nan=0.0), kind="stable")]
        outliers = [{"path": recs[i].path, "pid": int(recs[i].pid), "distance": round(float(dists[i]), 3)}
                    for i in out_idx]
        progress(0.85, "PoseValid …")
        pv = _import("pose2id_demo.poses.posevalid", "PoseValid")
        from pose2id_demo.poses.keypoints import load_pose_json

        rejects, n_no_pose = [], 0
        for r in recs:
            jp = Path(r.path).with_suffix(".json")
            if not jp.is_file():
                n_no_pose += 1
                rejects.append({"path": r.path, "pid": int(r.pid), "reason": "no keypoints (pose estimation failed)"})
                continue
            ok, reason = pv.pose_valid(load_pose_json(jp))
            if not ok:
                rejects.append({"path": r.path, "pid": int(r.pid), "reason": reason})
        return {"n_train": len(recs), "n_ids": int(len(np.unique(pids))), "outliers": outliers,
                "pose_rejects": rejects, "n_no_pose": n_no_pose, "quantile": quantile}

    # ---------------------------------------------------------------- public API: generation
    def benchmark_query_index(self, image: Image.Image, task: str = "standard",
                              backbone: str = "synthped-reid") -> int | None:
        """The benchmark query index of ``image`` if it is (pixel for pixel) a benchmark query image."""
        try:
            data = self.bench_data(task, backbone)
        except DependencyMissing:
            return None

        def index() -> dict[str, int]:
            out = {}
            for i, p in enumerate(data.q_paths):
                try:
                    with Image.open(p) as im:
                        out.setdefault(image_digest(im.convert("RGB")), i)
                except OSError:
                    continue
            return out

        return self._once(("qindex", task, backbone), index).get(image_digest(image))

    def generate(self, image: Any, use_ifr: str = "both", steps: int = 20, cfg: float = 3.5, seed: int = 42,
                 eta: float = 0.5, custom_pose: Any = None, backbone: str = "synthped-reid",
                 progress: ProgressFn = _noop_progress) -> dict[str, Any]:
        """Generate the reference person in the 8 representative poses (+ a custom pose) and, for a
        benchmark query image, rank the gallery before/after eq. 9 with these generations.

        Args:
            image: the reference image (path, bytes, PIL or array) — validated by :func:`load_image`.
            use_ifr: ``on``, ``off`` or ``both`` (IFR ablation, Fig. 5: same seed, side by side).
            steps, cfg, seed: denoising steps, classifier-free guidance scale, seed.
            eta: η of eq. 9 for the ranked lists.
            custom_pose: optional keypoint json / skeleton image / photo (:func:`load_custom_pose`).
            backbone: ReID backbone used for the ranked lists.

        Returns:
            ``{"images": {"on"|"off": [PIL]}, "poses": [name], "skeletons": [(array, name)],
            "reference": PIL, "query_index": int | None, "ranks": dict | None, "gen_feats": (M, d) | None,
            "seconds": float, "notes": [str]}``.
        """
        use_ifr = check_choice("IFR", use_ifr, IFR_CHOICES)
        steps = check_int("steps", steps, *STEPS_RANGE)
        cfg = check_float("CFG scale", cfg, *CFG_RANGE)
        seed = check_int("seed", seed, *SEED_RANGE)
        eta = check_float("η", eta, *ETA_RANGE)
        ref = load_image(image, what="reference image")
        notes: list[str] = []
        poses = list(self.representative_poses())
        if custom_pose is not None:
            pose, how = load_custom_pose(custom_pose)
            poses.append((f"custom ({how})", pose))
        draw = _import("pose2id_demo.poses.draw", "Skeleton drawing")
        skeletons = [(draw.draw_pose(p, 128, 256), n) for n, p in poses]
        pipe = self.pipeline()
        modes = ("on", "off") if use_ifr == "both" else (use_ifr,)
        images: dict[str, list[Image.Image]] = {}
        t0 = time.perf_counter()
        with self._gen_lock:
            for mi, mode in enumerate(modes):
                def cb(_pipe: Any, step: int, _t: Any, kw: dict, mi: int = mi, mode: str = mode) -> dict:
                    progress((mi + (step + 1) / steps) / len(modes), f"Generating (IFR {mode}) step {step + 1}/{steps}")
                    return kw

                progress(mi / len(modes), f"Generating (IFR {mode}) …")
                out = pipe(reference_image=ref, poses=[p for _, p in poses], num_inference_steps=steps,
                           guidance_scale=cfg, seed=seed, use_ifr=(mode == "on"), callback_on_step_end=cb)
                images[mode] = list(out.images)
        seconds = time.perf_counter() - t0
        result: dict[str, Any] = {"images": images, "poses": [n for n, _ in poses], "skeletons": skeletons,
                                  "reference": ref, "query_index": None, "ranks": None, "gen_feats": None,
                                  "seconds": round(seconds, 2), "notes": notes, "backbone": backbone}
        qi = None
        try:
            qi = self.benchmark_query_index(ref, "standard", backbone)
        except Pose2IDError as exc:
            notes.append(f"Ranked lists unavailable: {exc}")
        if qi is None:
            notes.append("This image is not a benchmark query image, so there is no gallery to rank; pick "
                         "one of the examples to see the top-10 before/after eq. 9.")
            return result
        bb = self.backbone(backbone)
        imgs = images["on"] if "on" in images else images["off"]
        with self._extract_lock:
            gen = _l2n(bb.extract(imgs, batch_size=16))
        result["query_index"] = qi
        result["gen_feats"] = gen
        result["ranks"] = self.ranks_with_generations(qi, gen, eta, backbone)
        return result

    def ranks_with_generations(self, query_index: int, gen_feats: np.ndarray, eta: float = 0.5,
                               backbone: str = "synthped-reid", task: str = "standard") -> dict[str, Any]:
        """Top-10 of a benchmark query before and after eq. 9 with the user's own generations.

        The query feature becomes ``||f|| + eta/M * sum_i f_i`` over the ``M`` generated images'
        features; the gallery is left as it is.
        """
        eta = check_float("η", eta, *ETA_RANGE)
        data = self.bench_data(task, backbone)
        qi = check_int("query index", query_index, 0, len(data.q) - 1)
        gen = np.asarray(gen_feats, np.float32)
        if gen.ndim != 2 or gen.shape[1] != data.q.shape[1] or not np.all(np.isfinite(gen)):
            raise Pose2IDError("The generated features do not fit this backbone; please generate again.")
        cen = _import("pose2id_demo.centralization", "Feature centralization (eq. 9)")
        q_after = _l2n(cen.centralize(data.q[qi][None], gen[None], eta))[0]
        before = np.linalg.norm(data.g - data.q[qi][None], axis=1)
        after = np.linalg.norm(data.g - q_after[None], axis=1)
        return {"query": {"path": data.q_paths[qi], "pid": int(data.q_pids[qi]), "camid": int(data.q_camids[qi])},
                "before": self._top_list(data, qi, before, QUERY_TOP),
                "after": self._top_list(data, qi, after, QUERY_TOP), "after_setting": f"eq. 9, η={eta:g}"}

    def benchmark_examples(self, n: int = 6, task: str = "standard") -> list[str]:
        """Paths of ``n`` benchmark query images of distinct identities (for the UI's examples)."""
        data_mod = _import("pose2id_demo.data", "The SynthPed benchmark")
        synth = _import("pose2id_demo.data.synthped", "The SynthPed benchmark")
        ds = data_mod.load_market(synth.ensure_benchmark(task, progress=False))
        seen, out = set(), []
        for r in ds.query:
            if r.pid not in seen:
                seen.add(r.pid)
                out.append(r.path)
            if len(out) >= n:
                break
        return out

    def export_features(self, task: str, backbone: str, path: str | Path) -> Path:
        """Write the benchmark's features as a feature file (the CLI's keys; ``q_gen``/``g_gen`` if shipped)."""
        task, backbone = check_choice("task", task, TASKS), self._check_backbone(backbone)
        data = self.bench_data(task, backbone)
        feats_mod = _import("pose2id_demo.reid.features", "The benchmark feature cache")
        raw = feats_mod.dataset_features(backbone, task, progress=False)
        # Raw features (as the backbone gave them): evaluating the file repeats exactly the benchmark's steps.
        arrays = {"q_feats": np.asarray(raw["q_feats"], np.float32), "g_feats": np.asarray(raw["g_feats"], np.float32),
                  "q_pids": data.q_pids, "g_pids": data.g_pids, "q_camids": data.q_camids, "g_camids": data.g_camids}
        if data.q_gen is not None and data.g_gen is not None:  # as shipped (raw), so evaluation repeats our steps
            from pose2id_demo.paths import ASSETS

            with np.load(ASSETS / "features" / f"synthped-{task}-{backbone}-gen.npz", allow_pickle=False) as z:
                arrays.update(q_gen=np.asarray(z["q_gen"], np.float32), g_gen=np.asarray(z["g_gen"], np.float32))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path

    # ---------------------------------------------------------------- public API: your features
    def evaluate_features(self, npz_path: Any, k1: int = 2, k2: int = 2, eta: float = 0.5,
                          nfc_on: str = "both", ipg_on: str = "both", grid_max: int = 6,
                          id2_variant: str = "paper", progress: ProgressFn = _noop_progress) -> dict[str, Any]:
        """Evaluate a user's feature file: ablation table, k1×k2 mAP grid (Fig. 9) and — when generated
        features are included — the η curve (Fig. 8) and the M-images curve (Table 6).

        The file is read by :func:`pose2id_demo.featurefile.load_feature_npz` (no pickles; keys, dtypes,
        shapes, finiteness checked) with a limit of :data:`MAX_FEATURE_BYTES` on the file and on its
        uncompressed arrays.

        Returns:
            ``{"rows": [...], "grid": {"k": [..], "map": (K, K)}, "eta_curve": {"eta", "mAP", "Rank-1"} | None,
            "m_curve": {"M", "gallery"/"query"/"both": {"mAP","Rank-1","ID²"}} | None, "notes": [str]}``.
        """
        k1 = check_int("k1", k1, *K_RANGE)
        k2 = check_int("k2", k2, *K_RANGE)
        eta = check_float("η", eta, *ETA_RANGE)
        nfc_on = check_choice("NFC on", nfc_on, APPLY_CHOICES)
        ipg_on = check_choice("IPG on", ipg_on, APPLY_CHOICES)
        grid_max = check_int("grid size", grid_max, 1, 10)
        id2_variant = check_choice("ID² variant", id2_variant, ID2_VARIANTS)
        if isinstance(npz_path, dict):
            npz_path = npz_path.get("path") or npz_path.get("name")
        if npz_path is None:
            raise Pose2IDError("Please upload a feature file (.npz).")
        ff = _import("pose2id_demo.featurefile", "The feature-file reader")
        try:
            arrays = ff.load_feature_npz(npz_path, max_bytes=MAX_FEATURE_BYTES)
        except ValueError as exc:
            raise Pose2IDError(f"The feature file cannot be used: {exc}.") from None
        progress(0.05, "Features loaded")
        return self._evaluate_loaded(SimpleNamespace(**arrays), k1, k2, eta, nfc_on, ipg_on, grid_max, progress,
                                     id2_variant)

    def _evaluate_loaded(self, fs: Any, k1: int, k2: int, eta: float, nfc_on: str, ipg_on: str,
                         grid_max: int, progress: ProgressFn, id2_variant: str = "paper") -> dict[str, Any]:
        """The Your-features report of raw feature-file arrays (attributes ``q_feats`` … ``g_gen``)."""
        feats = FeatureSet.from_arrays({k: getattr(fs, k, None) for k in ("q_feats", "g_feats", "q_pids", "g_pids",
                                                                          "q_camids", "g_camids", "q_gen", "g_gen")})
        a = ablation.Settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, id2_variant=id2_variant)
        notes: list[str] = []
        if feats.q_gen is None or feats.g_gen is None:
            notes.append("No generated features (q_gen, g_gen) in the file: the IPG rows, the η curve and "
                         "the M curve need them.")
        rows = [ablation.percent_row(r) for r in ablation.table(feats, a)]
        progress(0.15, "k1 × k2 grid …")
        grid = ablation.k_grid(feats, a, range(1, grid_max + 1), lambda f, d: progress(0.15 + 0.5 * f, d))
        out: dict[str, Any] = {"rows": rows, "grid": grid, "eta_curve": ablation.eta_curve(feats, a),
                               "m_curve": None, "notes": notes, "n_query": int(len(feats.q)),
                               "n_gallery": int(len(feats.g)), "id2_variant": id2_variant,
                               "id2_label": id2_label(id2_variant)}
        progress(0.8, "M curve …")
        out["m_curve"] = ablation.m_curve(feats, a)
        progress(1.0, "done")
        return out


def identity_density(q: np.ndarray, g: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                     variant: str = "paper") -> float:
    """ID² over query ∪ gallery as the tables show it (4 decimals): :func:`pose2id_demo.metrics.identity_density`
    (distractors, pid 0, and junk, pid -1, left out)."""
    return round(_identity_density(q, g, q_pids, g_pids, variant=variant), 4)


def shipped_assets(task: str = "standard", backbone: str = "synthped-reid") -> dict[str, bool]:
    """Which shipped assets are present (for the UI's notices and for tests): the representative poses,
    the embedded generator, the generated features of ``task``/``backbone`` and the ReID weights."""
    from pose2id_demo.paths import ASSETS, MODELS_DIR, POSES_DIR

    return {
        "poses": POSES_DIR.is_dir() and any(POSES_DIR.glob("*.json")),
        "generator": (MODELS_DIR / "ipg-tiny" / "model_index.json").is_file(),
        "generated_features": (ASSETS / "features" / f"synthped-{task}-{backbone}-gen.npz").is_file(),
        "reid": (MODELS_DIR / "reid" / "synthped-reid.safetensors").is_file(),
    }


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (created on first use; nothing is loaded until a method needs it)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE
