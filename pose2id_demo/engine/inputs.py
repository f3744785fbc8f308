"""Every check of user input, and every file opened on a request's behalf.

Parameters from the UI or the API are validated here (:func:`check_float`, :func:`check_int`,
:func:`check_choice`, :func:`check_settings`) — the UI's slider limits are not the only guard. Uploaded
images (:func:`load_image`), custom poses (:func:`load_custom_pose`) and feature files
(:func:`open_feature_file`) are decoded here with bounded work, and every file path a request names passes
through :func:`resolve_request_file` first: the one place where rules on which paths a request may read
belong. Bad input raises :class:`~pose2id_demo.engine.errors.Pose2IDError` with a sentence for the user.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pose2id_demo import poses
from pose2id_demo.ablation import Settings
from pose2id_demo.featurefile import ArrayHeader, FeatureSet, load_feature_npz

from .errors import Pose2IDError

TASKS = ("standard", "occluded", "infrared")
IFR_CHOICES = ("on", "off", "both")
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
ETA_RANGE = Settings.knob("eta")["limits"]
K_RANGE = Settings.knob("k1")["limits"]
N_IDS_RANGE = (2, 30)
QUERY_TOP = 10



# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


def shown_value(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a refusal's sentence (a request may send 100,000)."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long for str()
        text = "a number too long to print"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise Pose2IDError(f"{name} must be a number, got {value!r}.")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise Pose2IDError(f"{name} must be a number, got {shown_value(value)}.") from None
    if math.isinf(x) and not str(value).strip().lstrip("+-").lower().startswith("inf"):
        raise Pose2IDError(f"{name} is far out of range, got {shown_value(value)}.")
    if not math.isfinite(x):
        raise Pose2IDError(f"{name} must be a finite number, got {shown_value(value)}.")
    return x


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a finite float in ``[lo, hi]``, else :class:`Pose2IDError`."""
    x = _as_float(name, value)
    if not lo <= x <= hi:
        got = shown_value(int(value)) if isinstance(value, (int, np.integer)) else f"{x:g}"
        raise Pose2IDError(f"{name} must be between {_bound(lo)} and {_bound(hi)}; got {got}.")
    return x


def _bound(x: float) -> str:
    """A range's end as people write it: 4294967295, not 4.29497e+09; 0.25 stays 0.25."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an integer in ``[lo, hi]`` (integral floats accepted), else :class:`Pose2IDError`."""
    x = _whole(name, value)
    if not lo <= x <= hi:
        raise Pose2IDError(f"{name} must be between {lo} and {hi}; got {x}.")
    return x


def _whole(name: str, value: Any) -> int:
    """``value`` as an integer of any size (integral floats accepted), else :class:`Pose2IDError`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    f = _as_float(name, value)
    if f != int(f):
        raise Pose2IDError(f"{name} must be a whole number; got {f:g}.")
    return int(f)


def _some_ids(ids: Sequence[int]) -> str:
    """``1001, 1002, 1003 … 1056``: the first three and the last of ``ids`` (all of them when at most four)."""
    return ", ".join(map(str, ids)) if len(ids) <= 4 else f"{ids[0]}, {ids[1]}, {ids[2]} … {ids[-1]}"


def check_identity(pid: Any, images_per_id: dict[int, int], task: str) -> int:
    """``pid`` if it is an identity of ``task`` with at least two images (``images_per_id``: query + gallery
    images per identity), the identities the Fig. 2 view can centre; else :class:`Pose2IDError` saying which are
    valid, e.g. "identity 7 is not an identity of the standard task; choose one of its 56 identities with two
    or more images: 1001, 1002, 1003 … 1056."."""
    x = _whole("identity", pid)
    valid = sorted(p for p, n in images_per_id.items() if n >= 2)
    if x in valid:
        return x
    if not valid:
        raise Pose2IDError(f"the {task} task has no identity with two or more images.")
    choose = f"choose one of its {len(valid)} identities with two or more images: {_some_ids(valid)}."
    if images_per_id.get(x) == 1:
        raise Pose2IDError(f"identity {x} has only one image in the {task} task's query and gallery; {choose}")
    raise Pose2IDError(f"identity {shown_value(x)} is not an identity of the {task} task; {choose}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (case-insensitive), else :class:`Pose2IDError`."""
    v = str(value).strip().lower() if value is not None else ""
    for c in choices:
        if v == c.lower():
            return c
    raise Pose2IDError(f"{name} must be one of {', '.join(choices)}; got {str(value)[:40]!r}.")


#: The fields of :class:`pose2id_demo.ablation.Settings` a request may set (the others keep their defaults).
REQUEST_SETTINGS = ("eta", "k1", "k2", "nfc_on", "ipg_on", "nfc_mode", "rerank", "id2_variant")


def check_settings(settings: Settings | None = None, **raw: Any) -> Settings:
    """The :class:`~pose2id_demo.ablation.Settings` a request asks for: ``settings`` (default: the defaults) with
    the raw values of ``raw`` (from the UI or the API; None keeps the field) applied and every field a request may
    set checked against the limits and choices :meth:`~pose2id_demo.ablation.Settings.knob` gives; raises
    :class:`Pose2IDError` with a sentence naming the field."""
    base = settings if settings is not None else Settings()
    unknown = set(raw) - set(REQUEST_SETTINGS)
    if unknown:
        raise Pose2IDError(f"unknown setting(s): {', '.join(sorted(unknown))}.")
    values = {k: getattr(base, k) for k in REQUEST_SETTINGS}
    values.update({k: v for k, v in raw.items() if v is not None})
    checked: dict[str, Any] = {}
    for field_name, value in values.items():
        knob = Settings.knob(field_name)
        if knob["choices"] is not None:
            checked[field_name] = check_choice(knob["name"], value, knob["choices"])
        elif isinstance(knob["default"], bool):
            if not isinstance(value, (bool, np.bool_)):  # "yes", 1 or "false" are not read as a switch
                raise Pose2IDError(f"{knob['name']} must be true or false; got {shown_value(value)}.")
            checked[field_name] = bool(value)
        elif isinstance(knob["default"], int):
            checked[field_name] = check_int(knob["name"], value, *knob["limits"])
        else:
            checked[field_name] = check_float(knob["name"], value, *knob["limits"])
    return replace(base, **checked)


# --------------------------------------------------------------------------------------------------
# Files a request names
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFileRule:
    """Which files a web request may make the engine open (the UI sets one per request: :func:`request_files`).

    A named path is resolved first (symlinks and ``..``); it is accepted when it is a regular file inside
    ``uploads`` that ``uploaded(path)`` confirms was moved there for a request, or a file inside one of the
    ``shipped`` folders (the examples). Anything else — a file elsewhere on the server, a missing one, one
    planted in the cache — gets the same sentence, so an answer never tells whether a path exists.

    Attributes:
        uploads: the upload cache folder, resolved.
        uploaded: resolved path → whether it is one of the uploads (Gradio's own record of them).
        shipped: folders, resolved, whose files any request may name.
    """

    uploads: Path
    uploaded: Callable[[Path], bool]
    shipped: tuple[Path, ...] = ()

    def allows(self, path: Path) -> Path | None:
        """The resolved ``path`` if the rule accepts it, else None."""
        try:
            real = Path(os.path.realpath(path))
            if not real.is_file():
                return None
        except (OSError, ValueError):  # e.g. an embedded NUL byte, a name too long
            return None
        if any(real.is_relative_to(folder) for folder in self.shipped):
            return real
        if real.is_relative_to(self.uploads) and self.uploaded(real):
            return real
        return None


#: The sentence for a file a request may not name, by ``what`` (the same whether or not the path exists).
NOT_UPLOADED = {"feature": "Please upload a feature file (.npz).", "custom pose": "Please upload a pose file."}
NOT_UPLOADED_IMAGE = "Please upload an image."

_REQUEST_RULE: contextvars.ContextVar[RequestFileRule | None] = contextvars.ContextVar("pose2id_request_rule",
                                                                                       default=None)


@contextlib.contextmanager
def request_files(rule: RequestFileRule) -> Iterator[None]:
    """Within the block, every path through :func:`resolve_request_file` must pass ``rule`` (the app wraps
    each callback that takes files; local callers — the CLI, tests, ``bench/`` — set none and open their own
    files)."""
    token = _REQUEST_RULE.set(rule)
    try:
        yield
    finally:
        _REQUEST_RULE.reset(token)


def resolve_request_file(value: Any, what: str = "file") -> Path:
    """The path of a file a request names: a path string, an ``os.PathLike`` or a Gradio FileData dict.

    Every file opened on a request's behalf (images, poses, feature files) goes through this function. Inside
    :func:`request_files` the path must pass the request's :class:`RequestFileRule`, and the resolved path
    is returned.

    Raises:
        Pose2IDError: when no file is named, or the rule refuses it.
    """
    if isinstance(value, dict):  # a Gradio FileData payload
        value = value.get("path") or value.get("name")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise Pose2IDError(f"Please provide a {what} file.")
    if not isinstance(value, (str, os.PathLike)):
        raise Pose2IDError(f"The {what} must be a file, got {type(value).__name__}.")
    path = Path(os.fspath(value))
    rule = _REQUEST_RULE.get()
    if rule is None:
        return path
    allowed = rule.allows(path)
    if allowed is None:
        raise Pose2IDError(NOT_UPLOADED.get(what, NOT_UPLOADED_IMAGE))
    return allowed


def _article(noun: str) -> str:
    """"an" before a vowel sound (by its first letter), "a" otherwise."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


def feature_file_path(value: Any) -> Path:
    """The path of the feature file a request names (:func:`resolve_request_file`)."""
    if value is None or (isinstance(value, dict) and not (value.get("path") or value.get("name"))):
        raise Pose2IDError(NOT_UPLOADED["feature"])
    return resolve_request_file(value, "feature")


def open_feature_file(value: Any, price: Callable[[dict[str, ArrayHeader]], None] | None = None) -> FeatureSet:
    """A user's feature file (``.npz``) as a :class:`~pose2id_demo.featurefile.FeatureSet`.

    Read by :func:`pose2id_demo.featurefile.load_feature_npz` (member names checked exactly, no pickles; keys,
    dtypes, shapes, finiteness checked) with a limit of :data:`MAX_FEATURE_BYTES` on the file and on its
    uncompressed arrays; ``price`` sees the arrays' headers before any array is decompressed and may refuse.
    """
    path = feature_file_path(value)
    try:
        return FeatureSet.from_arrays(load_feature_npz(path, max_bytes=MAX_FEATURE_BYTES, price=price))
    except Pose2IDError:
        raise
    except ValueError as exc:
        raise Pose2IDError(f"The feature file cannot be used: {exc}.") from None


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
        raise Pose2IDError(f"Please provide {_article(what)} {what}.")
    if isinstance(source, dict):  # a Gradio FileData payload
        source = source.get("path") or source.get("name")
        if source is None:
            raise Pose2IDError(f"Please provide {_article(what)} {what}.")
    if isinstance(source, np.ndarray):
        source = _array_image(source, what)
    if isinstance(source, Image.Image):
        im = source
        fmt = None
    else:
        im = _open_image(source, what)
        fmt = im.format
    w, h = im.size
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        raise Pose2IDError(f"The {what} is only {w}×{h} pixels; it needs to be at least "
                           f"{MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE}.")
    rgb = _decode_bounded(im, fmt, what)
    if max(rgb.size) > WORK_MAX_SIDE:
        rgb = rgb.copy()
        rgb.thumbnail((WORK_MAX_SIDE, WORK_MAX_SIDE), Image.Resampling.LANCZOS)
    return rgb


def _array_image(arr: np.ndarray, what: str) -> Image.Image:
    """A uint8 / uint16 H×W or H×W×C (C = 1, 3, 4) array as a PIL image (16 bits scaled to 8)."""
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise Pose2IDError(f"The {what} array has shape {arr.shape}; expected H×W or H×W×C.")
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    if arr.dtype != np.uint8:
        raise Pose2IDError(f"The {what} array must be uint8 or uint16, got {arr.dtype}.")
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise Pose2IDError(f"The {what} array has {arr.shape[2]} channels; expected 1, 3 or 4.")
    return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)


def _open_image(source: Any, what: str) -> Image.Image:
    """Bytes or a request's file (:func:`resolve_request_file`) of at most :data:`MAX_IMAGE_BYTES`, opened by
    Pillow: the header only, nothing decoded yet."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if len(data) > MAX_IMAGE_BYTES:
            raise Pose2IDError(f"The {what} is {len(data) / 2**20:.0f} MB; the limit is "
                               f"{MAX_IMAGE_BYTES // 2**20} MB.")
        fp: Any = io.BytesIO(data)
    else:
        p = resolve_request_file(source, what)
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
            return Image.open(fp)  # reads the header only
    except Image.DecompressionBombError:
        raise Pose2IDError(f"The {what} is far too large to decode safely (limit "
                           f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels).") from None
    except UnidentifiedImageError:
        raise Pose2IDError(f"The {what} is not an image file Pillow can read (corrupt, or another "
                           f"kind of file renamed). Please upload a JPEG, PNG, WebP or GIF.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise Pose2IDError(f"The {what} is damaged or truncated and could not be read ({exc}).") from None


def _decode_bounded(im: Image.Image, fmt: str | None, what: str) -> Image.Image:
    """The first frame of ``im`` decoded as RGB, EXIF orientation applied, with at most
    :data:`MAX_IMAGE_PIXELS` decoded (a JPEG above it is decoded at reduced scale, any other is refused)."""
    w, h = im.size
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
            return _to_rgb(im)
    except Pose2IDError:
        raise
    except Exception as exc:  # truncated data, broken chunks, decoder errors
        raise Pose2IDError(f"The {what} is damaged and could not be decoded ({type(exc).__name__}).") from None


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
    p = resolve_request_file(source, "custom pose")
    if not p.is_file():
        raise Pose2IDError("The custom pose file could not be found.")
    if p.suffix.lower() == ".json":
        if p.stat().st_size > MAX_POSE_JSON_BYTES:
            raise Pose2IDError("The pose json is larger than 1 MB; a pose is 18 keypoints.")
        try:
            return poses.check_target_pose(poses.load_pose_json(p)), "keypoint json"
        except (ValueError, UnicodeDecodeError) as exc:
            raise Pose2IDError(f"The pose json is not valid: {exc}") from None
    im = load_image(p, what="pose image")
    try:
        pose, kind = poses.pose_from_upload(im)
        poses.check_target_pose(pose)
    except poses.NoPersonFound:
        raise Pose2IDError("No person was found in the pose photo; the pose step needs a clearly "
                           "visible person (or upload a skeleton image or keypoint json).") from None
    except ValueError as exc:
        raise Pose2IDError(f"No pose could be read from the pose image: {exc}.") from None
    how = {"skeleton": "skeleton image", "photo": "pose estimated from the photo"}.get(kind, kind)
    return pose, how
