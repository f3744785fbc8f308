"""OpenPose-style skeleton images: drawing a :class:`Pose`, and reading one back from an image.

IPG's pose encoder is conditioned on these pictures (paper §3.2.1, ``E_pose``): the standard OpenPose
body rendering — 17 limbs as filled ellipses in OpenPose's colour order at 60 % intensity, then 18
joint dots in full colour, on black.

Why not controlnet-aux's ``open_pose/util.py::draw_bodypose`` (0.0.10)? Its drawing code needs no
weights, but importing any ``controlnet_aux`` module runs the package ``__init__``, which imports every
detector and with them torchvision, timm and einops (none installed here; torchvision is excluded from
this project), and its stick width and dot radius are fixed at 4 px, which smears a 128×64 skeleton.
So we draw the same picture ourselves with OpenCV (installed with MediaPipe), scaling the line width
with the canvas height (4 px at 512 px high, as in the OpenPose/ControlNet renders).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .keypoints import LIMBS, NUM_KEYPOINTS, Pose

# OpenPose's 18 colours (RGB). Limb i uses COLORS[i] * 0.6; joint k uses COLORS[k].
COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]], dtype=np.int32)
LIMB_COLORS = (COLORS[: len(LIMBS)] * 0.6).astype(np.int32)
REFERENCE_HEIGHT = 512  # canvas height at which OpenPose's stick width and dot radius are 4 px


def stroke_width(width: int, height: int) -> int:
    """Half-width of a limb (and radius of a joint dot) in pixels for a ``width`` × ``height`` canvas."""
    return max(1, round(4 * min(height, 2 * width) / REFERENCE_HEIGHT))


def draw_pose(pose: Pose, width: int, height: int) -> np.ndarray:
    """Render ``pose`` as an OpenPose colour skeleton on a black ``height`` × ``width`` RGB canvas.

    The pose is rescaled from its own image size to the canvas; keypoints with confidence 0 and limbs
    touching them are skipped. Returns ``uint8`` of shape ``(height, width, 3)``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas size must be positive, got {width}x{height}")
    kp = pose.resized(width, height).keypoints
    canvas = np.zeros((height, width, 3), np.uint8)
    sw = stroke_width(width, height)
    for (a, b), color in zip(LIMBS, LIMB_COLORS):
        if kp[a, 2] <= 0 or kp[b, 2] <= 0:
            continue
        (xa, ya), (xb, yb) = kp[a, :2], kp[b, :2]
        length = math.hypot(xb - xa, yb - ya)
        angle = math.degrees(math.atan2(yb - ya, xb - xa))
        centre = (round((xa + xb) / 2), round((ya + yb) / 2))
        polygon = cv2.ellipse2Poly(centre, (round(length / 2), sw), round(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, [int(c) for c in color])
    for k in range(NUM_KEYPOINTS):
        if kp[k, 2] <= 0:
            continue
        cv2.circle(canvas, (round(kp[k, 0]), round(kp[k, 1])), sw, [int(c) for c in COLORS[k]],
                   thickness=-1)
    return canvas


def _to_rgb_array(img) -> np.ndarray:
    """A PIL image or an array (H, W[, C]) as uint8 RGB (H, W, 3)."""
    if hasattr(img, "convert"):
        img = np.asarray(img.convert("RGB"))
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"a skeleton image must be (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr[:, :, :3]


def skeleton_to_pose(img, tolerance: float = 30.0) -> Pose:
    """Best-effort inverse of :func:`draw_pose`: read an uploaded OpenPose skeleton image back into a Pose.

    Every pixel is matched to the nearest of the 18 joint colours and 17 (60 %) limb colours (within
    ``tolerance`` in RGB distance, so mild JPEG or resizing noise is tolerated). A joint is the centroid
    of its dot's pixels. A joint whose dot is hidden (drawn over by another) is recovered from a limb
    blob that touches it: the limb pixel farthest from the limb's other, known joint. Confidence is 1
    for dots, 0.5 for joints recovered from limbs, 0 for joints not found. Single-person images only.
    """
    arr = _to_rgb_array(img)
    h, w = arr.shape[:2]
    step = max(1, math.ceil(max(h, w) / 1024))  # bound the work on huge uploads (nearest subsampling)
    arr = arr[::step, ::step]
    palette = np.concatenate([COLORS, LIMB_COLORS]).astype(np.float32)  # (35, 3)
    bright = arr.max(axis=2) > 40
    ys, xs = np.nonzero(bright)
    kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    if len(ys) == 0:
        return Pose(kp, w, h)
    pix = arr[ys, xs].astype(np.float32)
    d2 = ((pix[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)  # (P, 35)
    label = d2.argmin(axis=1)
    label[d2[np.arange(len(label)), label] > tolerance ** 2] = -1
    xs, ys = xs * step, ys * step
    min_pixels = 1 if stroke_width(w, h) <= 1 or step > 1 else 3
    for k in range(NUM_KEYPOINTS):
        sel = label == k
        if sel.sum() >= min_pixels:
            kp[k] = (xs[sel].mean(), ys[sel].mean(), 1.0)
    # Recover hidden joints from limbs with one known end (repeat: a recovered joint can unlock the next).
    for _ in range(3):
        changed = False
        for i, (a, b) in enumerate(LIMBS):
            known_a, known_b = kp[a, 2] > 0, kp[b, 2] > 0
            if known_a == known_b:
                continue
            sel = label == NUM_KEYPOINTS + i
            if sel.sum() < 2:
                continue
            src, dst = (a, b) if known_a else (b, a)
            px, py = xs[sel].astype(np.float32), ys[sel].astype(np.float32)
            far = np.argmax((px - kp[src, 0]) ** 2 + (py - kp[src, 1]) ** 2)
            kp[dst] = (px[far], py[far], 0.5)
            changed = True
        if not changed:
            break
    return Pose(kp, w, h)
