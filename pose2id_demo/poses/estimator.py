"""An offline pose estimator for uploaded photos: MediaPipe BlazePose → OpenPose-18 :class:`Pose`.

The paper extracts poses with DWpose (supplementary §7.1.2); its weights come from a model hub, which
this demo never touches at run time. MediaPipe 0.10.21's legacy ``mp.solutions.pose`` graph ships the
BlazePose detector and the *full* landmark model (``model_complexity=1``) inside the wheel, so it runs
with no network; ``model_complexity`` 0 and 2 would try to download their models and are not used.

Pedestrian crops are small (128 × 64 in Market-1501), far below what BlazePose's person detector
expects, so the image is upscaled (long side → ``target`` px) and padded onto a square canvas with a
margin before inference; landmarks are mapped back to the original pixels. Any PIL mode is accepted
(greyscale, palette, RGBA composited on grey, 16-bit, CMYK) and EXIF rotation is applied.

MediaPipe is imported lazily (it is slow to import) and one graph is shared by all callers behind a
lock (MediaPipe graphs are not re-entrant), so :func:`estimate_pose` is thread-safe.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from pose2id_demo import lazy

from .convert import from_mediapipe33
from .keypoints import Pose

logger = logging.getLogger(__name__)

MIN_SIDE = 8            # smaller images cannot hold a person
MAX_PIXELS = 40_000_000  # refuse decompression-bomb sized inputs
_LOCK = threading.Lock()
_GRAPH: Any = None


class NoPersonFound(ValueError):
    """No person could be found in the image (or the image is unusable)."""


def _get_graph() -> Any:
    """The shared MediaPipe Pose graph, created on first use (call with ``_LOCK`` held)."""
    global _GRAPH
    if _GRAPH is None:
        mp = lazy.load("mediapipe")
        _GRAPH = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                        enable_segmentation=False, min_detection_confidence=0.5)
        logger.info("MediaPipe BlazePose (full) loaded from the mediapipe wheel")
    return _GRAPH


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as RGB, EXIF rotation applied, transparency composited on mid-grey."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _letterbox(image: Image.Image, target: int, margin: float) -> tuple[np.ndarray, float, int, int]:
    """Scale the long side to ``target`` px and pad to a square with ``margin`` (fraction) on each side.

    Returns the uint8 canvas and ``(scale, x_offset, y_offset)`` mapping original pixels to canvas pixels.
    """
    w, h = image.size
    scale = target / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image.resize((nw, nh), Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    side = round(target * (1 + 2 * margin))
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    ox, oy = (side - nw) // 2, (side - nh) // 2
    canvas.paste(resized, (ox, oy))
    return np.asarray(canvas), scale, ox, oy


def estimate_pose(image: Image.Image, target: int = 512, margins: tuple[float, ...] = (0.15, 0.0, 0.3),
                  min_visible: int = 4) -> Pose:
    """Estimate the body pose of the (main) person in ``image`` with MediaPipe BlazePose, fully offline.

    Returns an OpenPose-18 :class:`Pose` in the image's own pixel coordinates (neck = shoulder midpoint,
    confidence = BlazePose visibility, joints outside the image marked invisible). Raises
    :class:`NoPersonFound` if no person is detected, fewer than ``min_visible`` keypoints are visible,
    or the image is unusable (too small, too large, not an image). BlazePose's person detector is
    sensitive to framing, so the image is tried with each padding margin in ``margins`` in turn until
    a person is found.
    """
    if not isinstance(image, Image.Image):
        raise NoPersonFound(f"expected a PIL image, got {type(image).__name__}")
    w, h = image.size
    if min(w, h) < MIN_SIDE:
        raise NoPersonFound(f"image is too small to find a person in ({w}x{h} px)")
    if w * h > MAX_PIXELS:
        raise NoPersonFound(f"image is too large ({w}x{h} px)")
    try:
        rgb = to_rgb(image)
    except (OSError, ValueError) as exc:
        raise NoPersonFound(f"could not read the image: {exc}") from None
    w, h = rgb.size  # EXIF rotation may swap the sides
    result = None
    for margin in margins:
        canvas, scale, ox, oy = _letterbox(rgb, target, margin)
        with _LOCK:
            result = _get_graph().process(np.ascontiguousarray(canvas))
        if result.pose_landmarks is not None:
            break
    if result is None or result.pose_landmarks is None:
        raise NoPersonFound("no person found in the image")
    side = canvas.shape[0]
    lm = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark], np.float32)
    # canvas-normalised → original-image-normalised coordinates
    lm[:, 0] = (lm[:, 0] * side - ox) / scale / w
    lm[:, 1] = (lm[:, 1] * side - oy) / scale / h
    pose = from_mediapipe33(lm, w, h)
    n_vis = int(pose.visible.sum())
    if n_vis < min_visible:
        raise NoPersonFound(f"no person found in the image (only {n_vis} body keypoints visible)")
    return pose
