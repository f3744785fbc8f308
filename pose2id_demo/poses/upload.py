"""A user's custom target pose from an upload: a keypoint json, an OpenPose skeleton image, or a photo.

``pose_from_upload`` decides which it got: ``.json`` files are read as :class:`Pose` json; an image that
is mostly black with OpenPose palette colours is parsed as a skeleton (:func:`draw.skeleton_to_pose`);
any other image is a photo and goes through the offline estimator (:func:`estimator.estimate_pose`).
Every failure is a ``ValueError`` (``NoPersonFound`` included) with a sentence a user understands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .draw import COLORS, LIMB_COLORS, skeleton_to_pose
from .keypoints import Pose, load_pose_json

MAX_UPLOAD_BYTES = 20 << 20


def looks_like_skeleton(img: Image.Image | np.ndarray, tolerance: float = 30.0) -> bool:
    """True if the picture is an OpenPose skeleton: ≥ 60 % near-black and ≥ 70 % of the rest palette colours."""
    arr = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img)
    if arr.ndim != 3 or arr.shape[2] < 3:
        return False
    arr = arr[:: max(1, arr.shape[0] // 256), :: max(1, arr.shape[1] // 256), :3].astype(np.float32)
    dark = arr.max(axis=2) <= 40
    if dark.mean() < 0.6 or dark.all():
        return False
    pix = arr[~dark]
    palette = np.concatenate([COLORS, LIMB_COLORS]).astype(np.float32)
    d2 = ((pix[:, None, :] - palette[None]) ** 2).sum(axis=2).min(axis=1)
    return float((d2 <= tolerance ** 2).mean()) >= 0.7


def pose_from_upload(src: str | Path | Image.Image | np.ndarray) -> tuple[Pose, str]:
    """``(pose, kind)`` with ``kind`` in {"json", "skeleton", "photo"}; raises ``ValueError`` on failure."""
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.is_file():
            raise ValueError(f"no such file: {path.name}")
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise ValueError(f"the file is larger than {MAX_UPLOAD_BYTES >> 20} MB")
        if path.suffix.lower() == ".json":
            return load_pose_json(path), "json"
        try:
            with Image.open(path) as im:
                im.load()
                image = im.copy()
        except (OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"not a readable image or pose json ({exc.__class__.__name__})") from None
    elif isinstance(src, np.ndarray):
        try:
            image = Image.fromarray(np.ascontiguousarray(src))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not an image array: {exc}") from None
    elif isinstance(src, Image.Image):
        image = src
    else:
        raise ValueError(f"unsupported upload type {type(src).__name__}")  # noqa: TRY004 (one error type for the UI)
    if looks_like_skeleton(image):
        pose = skeleton_to_pose(image)
        if int(pose.visible.sum()) < 4:
            raise ValueError("the skeleton image has too few recognisable OpenPose joints")
        return pose, "skeleton"
    from .estimator import estimate_pose  # lazy: MediaPipe is slow to import

    return estimate_pose(image), "photo"


#: How far outside its canvas a custom pose's keypoint may lie, in canvas sizes (a limb may leave the frame).
CANVAS_MARGIN = 1.0


def check_target_pose(pose: Pose) -> Pose:
    """A custom target pose that can be drawn, or ``ValueError`` saying why not.

    Confidences must lie in [0, 1]; every keypoint within :data:`CANVAS_MARGIN` canvas sizes of the canvas;
    at least one limb must have both ends visible, and at least one visible keypoint must be on the canvas (a
    pose whose confidences are all 0, or that lies wholly outside, would be drawn as an empty picture).
    """
    from .keypoints import KEYPOINT_NAMES, LIMBS

    kp, w, h = pose.keypoints, pose.width, pose.height
    c = kp[:, 2]
    if (c < 0).any() or (c > 1).any():
        raise ValueError("pose confidences must lie between 0 and 1")
    m = CANVAS_MARGIN
    far = (kp[:, 0] < -m * w) | (kp[:, 0] > (1 + m) * w) | (kp[:, 1] < -m * h) | (kp[:, 1] > (1 + m) * h)
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise ValueError(f"keypoint {KEYPOINT_NAMES[i]} at ({kp[i, 0]:.4g}, {kp[i, 1]:.4g}) lies far outside the "
                         f"{w}×{h} canvas")
    vis = c > 0
    if not vis.any():
        raise ValueError("every keypoint has confidence 0, so there is no pose to draw")
    if not any(vis[a] and vis[b] for a, b in LIMBS):
        raise ValueError("no limb has both of its keypoints visible, so there is no pose to draw")
    inside = vis & (kp[:, 0] >= 0) & (kp[:, 0] <= w) & (kp[:, 1] >= 0) & (kp[:, 1] <= h)
    if not inside.any():
        raise ValueError(f"every visible keypoint lies outside the {w}×{h} canvas")
    return pose
