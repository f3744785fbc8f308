"""Hand-made OpenPose-18 poses shared by the tests/test_poses_*.py files (64 × 128 px, like SynthPed)."""

from __future__ import annotations

import numpy as np

from pose2id_demo.poses.keypoints import Pose

W, H = 64, 128

# A person facing the camera: their right side is on the image's left.
FRONT = np.array([
    [32, 14, 1], [32, 26, 1], [20, 27, 1], [18, 42, 1], [17, 56, 1], [44, 27, 1], [46, 42, 1], [47, 56, 1],
    [25, 60, 1], [25, 84, 1], [25, 108, 1], [39, 60, 1], [39, 84, 1], [39, 108, 1],
    [30, 12, 1], [34, 12, 1], [28, 13, 1], [36, 13, 1]], np.float32)


def mirror(kp: np.ndarray, width: float = W) -> np.ndarray:
    """Flip x (the same body seen from behind has left and right sides swapped in the image)."""
    out = kp.copy()
    out[:, 0] = np.where(out[:, 2] > 0, width - out[:, 0], 0)
    return out


def back_view() -> np.ndarray:
    """The FRONT body seen from behind: face keypoints hidden, left/right order reversed."""
    kp = mirror(FRONT)
    kp[[0, 14, 15]] = 0
    return kp


def side_view(facing_right: bool = True, stride: float = 8.0) -> np.ndarray:
    """A walker seen from the side: shoulders and hips overlap, legs apart, nose ahead of the neck."""
    s = 1 if facing_right else -1
    kp = np.array([
        [32 + 5 * s, 14, 1], [32, 26, 1], [31, 27, 1], [32 - 4 * s, 42, 1], [33 - 2 * s, 55, 1],
        [33, 27, 1], [32 + 4 * s, 42, 1], [33 + 6 * s, 55, 1],
        [31, 60, 1], [32 + stride * s, 84, 1], [32 + stride * s, 108, 1],
        [33, 60, 1], [32 - stride * s * 0.5, 84, 1], [32 - stride * s, 108, 1],
        [32 + 6 * s, 12, 1], [32 + 6 * s, 12, 0], [32, 13, 1], [32, 13, 0]], np.float32)
    kp[kp[:, 2] == 0] = 0
    return kp


def pose(kp: np.ndarray) -> Pose:
    return Pose(kp, W, H)
