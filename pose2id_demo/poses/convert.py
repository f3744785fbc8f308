"""Converters from other keypoint layouts to the project's OpenPose-18 :class:`Pose`.

* COCO-17 (DWpose / MMPose / most detectors): 0 nose, 1 l_eye, 2 r_eye, 3 l_ear, 4 r_ear, 5 l_shoulder,
  6 r_shoulder, 7 l_elbow, 8 r_elbow, 9 l_wrist, 10 r_wrist, 11 l_hip, 12 r_hip, 13 l_knee, 14 r_knee,
  15 l_ankle, 16 r_ankle. OpenPose-18 adds the neck, taken as the shoulder midpoint (as DWpose does).
* MediaPipe BlazePose 33 landmarks (normalised ``x, y`` in [0, 1], ``z``, ``visibility``): the body
  subset is mapped to OpenPose-18; hands, feet, mouth and inner/outer eye corners are dropped.

A keypoint below the confidence threshold, or (for MediaPipe, which also guesses joints outside the
frame) outside the image, gets ``(0, 0, 0)``: "not visible" in OpenPose's convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .keypoints import NUM_KEYPOINTS, Pose

# OpenPose-18 index -> COCO-17 index (the neck, OpenPose 1, is computed).
OPENPOSE_FROM_COCO17 = {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 8: 12, 9: 14, 10: 16,
                        11: 11, 12: 13, 13: 15, 14: 2, 15: 1, 16: 4, 17: 3}
COCO17_SHOULDERS = (5, 6)  # left, right
# OpenPose-18 index -> MediaPipe-33 index (the neck, OpenPose 1, is computed).
OPENPOSE_FROM_MEDIAPIPE33 = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28,
                             11: 23, 12: 25, 13: 27, 14: 5, 15: 2, 16: 8, 17: 7}
MEDIAPIPE33_SHOULDERS = (11, 12)  # left, right


def _assemble(xy: np.ndarray, conf: np.ndarray, mapping: dict[int, int], shoulders: tuple[int, int],
              threshold: float, w: int, h: int, inside_only: bool) -> Pose:
    """Build an OpenPose-18 pose from source ``xy`` (pixels) and ``conf`` with an index ``mapping``."""
    ok = conf >= threshold
    if inside_only:  # a small margin: joints on the border still count
        mx, my = 0.02 * w, 0.02 * h
        ok &= (xy[:, 0] >= -mx) & (xy[:, 0] <= w + mx) & (xy[:, 1] >= -my) & (xy[:, 1] <= h + my)
    kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for op_idx, src_idx in mapping.items():
        if ok[src_idx]:
            kp[op_idx] = (xy[src_idx, 0], xy[src_idx, 1], conf[src_idx])
    left, right = shoulders
    if ok[left] and ok[right]:
        kp[1, :2] = (xy[left] + xy[right]) / 2.0
        kp[1, 2] = min(conf[left], conf[right])
    return Pose(kp, int(w), int(h))


def from_coco17(kps: np.ndarray, w: int, h: int, threshold: float = 0.3) -> Pose:
    """COCO-17 keypoints ``(17, 3)`` = (x px, y px, score) on a ``w`` × ``h`` image → OpenPose-18 pose.

    The neck is the midpoint of the two shoulders (visible only if both are); keypoints whose score is
    below ``threshold`` become invisible. A ``(17, 2)`` array is taken as fully confident.
    """
    arr = np.asarray(kps, dtype=np.float32)
    if arr.ndim == 2 and arr.shape == (17, 2):
        arr = np.concatenate([arr, np.ones((17, 1), np.float32)], axis=1)
    if arr.shape != (17, 3):
        raise ValueError(f"COCO-17 keypoints must have shape (17, 3); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("COCO-17 keypoints contain NaN or infinity")
    return _assemble(arr[:, :2], np.clip(arr[:, 2], 0.0, 1.0), OPENPOSE_FROM_COCO17, COCO17_SHOULDERS,
                     threshold, w, h, inside_only=False)


def _landmark_array(landmarks: Any) -> np.ndarray:
    """MediaPipe landmarks as a ``(33, 3)`` array of (x, y, visibility), normalised coordinates.

    Accepts a ``NormalizedLandmarkList`` (anything with ``.landmark``), a list of landmark objects, or
    an array: ``(33, 3)`` is read as (x, y, visibility), ``(33, >=4)`` as (x, y, z, visibility, ...).
    """
    if hasattr(landmarks, "landmark"):
        landmarks = landmarks.landmark
    if len(landmarks) and hasattr(landmarks[0], "x"):
        return np.array([(lm.x, lm.y, getattr(lm, "visibility", 1.0)) for lm in landmarks], np.float32)
    arr = np.asarray(landmarks, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != 33 or arr.shape[1] < 3:
        raise ValueError(f"MediaPipe pose landmarks must have shape (33, >=3); got {arr.shape}")
    if arr.shape[1] == 3:
        return arr.copy()
    return arr[:, [0, 1, 3]].copy()


def from_mediapipe33(landmarks: Any, w: int, h: int, threshold: float = 0.5) -> Pose:
    """MediaPipe BlazePose's 33 normalised landmarks on a ``w`` × ``h`` image → OpenPose-18 pose.

    ``visibility`` becomes the confidence; landmarks with visibility below ``threshold`` or outside the
    image (BlazePose extrapolates joints beyond the frame) become invisible. The neck is the shoulder
    midpoint. See :func:`_landmark_array` for the accepted inputs.
    """
    arr = _landmark_array(landmarks)
    if arr.shape != (33, 3):
        raise ValueError(f"MediaPipe pose landmarks must be 33; got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("MediaPipe landmarks contain NaN or infinity")
    xy = arr[:, :2] * np.array([w, h], np.float32)
    return _assemble(xy, np.clip(arr[:, 2], 0.0, 1.0), OPENPOSE_FROM_MEDIAPIPE33, MEDIAPIPE33_SHOULDERS,
                     threshold, w, h, inside_only=True)
