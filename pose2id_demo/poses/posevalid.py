"""PoseValid: reject poses whose estimation "completely failed" (paper supplementary §7.1.2, eq. 32).

Eq. 32 keeps a training target ``x_i`` only if ``PoseValid(x_i)`` holds (and its feature is not a
Mahalanobis outlier, see :mod:`pose2id_demo.cleansing`). The paper normalises a pose before checking it:

1. body height ``h = ||k_Neck − k_LHip||`` (OpenPose keypoints 1 and 11),
2. translate so the neck is at the origin, ``k'_i = k_i − k_Neck``,
3. scale, ``k_i^norm = k'_i / h``,

and then applies constraints on "occlusion, keypoint positions, angles, and limb proportions". The paper
gives no thresholds; ours (:class:`PoseValidConfig`) are set for upright pedestrians, in units of ``h``
(image ``y`` points down), and were checked against SynthPed's keypoints and MediaPipe's estimates on
real photos (tests/test_poses_posevalid.py). When the left hip is not visible we use the right hip for
``h`` (the paper's formula assumes it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .keypoints import KEYPOINT_NAMES, Pose

NOSE, NECK, R_SHO, R_ELB, R_WRI, L_SHO, L_ELB, L_WRI = 0, 1, 2, 3, 4, 5, 6, 7
R_HIP, R_KNE, R_ANK, L_HIP, L_KNE, L_ANK, R_EYE, L_EYE, R_EAR, L_EAR = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17
HEAD = (NOSE, R_EYE, L_EYE, R_EAR, L_EAR)

# Limb segments checked for length (name, a, b, maximum length in units of h).
SEGMENTS = (
    ("r_upper_arm", R_SHO, R_ELB), ("r_forearm", R_ELB, R_WRI), ("l_upper_arm", L_SHO, L_ELB),
    ("l_forearm", L_ELB, L_WRI), ("r_thigh", R_HIP, R_KNE), ("r_shin", R_KNE, R_ANK),
    ("l_thigh", L_HIP, L_KNE), ("l_shin", L_KNE, L_ANK), ("r_collar", NECK, R_SHO), ("l_collar", NECK, L_SHO),
    ("head", NECK, NOSE), ("hip_width", R_HIP, L_HIP),
)
# (right, left) pairs compared for symmetry.
SYMMETRIC = (("r_upper_arm", "l_upper_arm"), ("r_forearm", "l_forearm"), ("r_thigh", "l_thigh"),
             ("r_shin", "l_shin"))


@dataclass(frozen=True)
class PoseValidConfig:
    """Thresholds of :func:`pose_valid` (lengths in units of the neck–hip height ``h``)."""

    min_visible: int = 8              # of 18 keypoints
    min_height_px: float = 4.0        # h below this (in the pose's own pixels) is a collapsed pose
    max_segment: tuple[tuple[str, float], ...] = (
        ("r_upper_arm", 1.0), ("r_forearm", 1.0), ("l_upper_arm", 1.0), ("l_forearm", 1.0),
        ("r_thigh", 1.2), ("r_shin", 1.2), ("l_thigh", 1.2), ("l_shin", 1.2),
        ("r_collar", 0.7), ("l_collar", 0.7), ("head", 0.8), ("hip_width", 0.8),
    )
    min_leg_segment: float = 0.2      # a thigh or shin shorter than this is a collapsed leg
    max_arm_asymmetry: float = 3.0    # longer / shorter of a left/right arm pair (foreshortening is common)
    max_leg_asymmetry: float = 2.2
    symmetry_floor: float = 0.1       # lengths are floored at this before taking ratios
    max_torso_tilt_deg: float = 45.0  # angle of neck → hip centre from vertical
    head_below_neck: float = 0.25     # any head keypoint lower than this (y, in h) is impossible
    knee_above_hip: float = 0.1       # a knee this far above the hips' level is impossible
    max_extent: float = 4.5           # any keypoint farther than this from the neck is impossible
    lr_min_separation: float = 0.15   # shoulder/hip left-right order is compared only above this width


DEFAULT_CONFIG = PoseValidConfig()


def body_height(pose: Pose) -> float:
    """The paper's ``h = ||k_Neck − k_LHip||`` in pixels (right hip if the left is not visible; 0 if neither)."""
    kp, vis = pose.keypoints, pose.visible
    if not vis[NECK]:
        return 0.0
    hip = L_HIP if vis[L_HIP] else R_HIP if vis[R_HIP] else None
    if hip is None:
        return 0.0
    return float(np.linalg.norm(kp[NECK, :2] - kp[hip, :2]))


def normalize_pose(pose: Pose) -> np.ndarray:
    """Normalised keypoints ``(18, 3)``: neck at the origin, divided by ``h`` (§7.1.2 steps 1–3).

    Column 2 keeps the confidence; invisible keypoints are (0, 0, 0). Raises ``ValueError`` when the
    neck or both hips are missing, or ``h`` is 0.
    """
    h = body_height(pose)
    if h <= 0:
        raise ValueError("cannot normalise a pose without a visible neck and hip at distinct positions")
    kp = pose.keypoints.copy()
    vis = pose.visible
    kp[:, :2] = (kp[:, :2] - kp[NECK, :2]) / h
    kp[~vis] = 0.0
    return kp


def pose_valid(pose: Pose, config: PoseValidConfig = DEFAULT_CONFIG) -> tuple[bool, str]:
    """PoseValid (eq. 32): ``(True, "ok")`` or ``(False, reason)`` for the first failed check.

    Checks, in order: enough visible keypoints ("too few visible keypoints"), a torso ("missing torso":
    neck, a hip, a shoulder, a knee or ankle), a non-degenerate size ("collapsed pose"), keypoint
    positions ("keypoint far from the body", "torso not upright", "head below the neck", "knee above
    the hips", "ankle above the knee"), left/right order of shoulders vs hips ("left/right swapped"),
    limb proportions ("limb too long", "leg collapsed") and left/right symmetry ("asymmetric limbs").
    """
    c = config
    vis = pose.visible
    n_vis = int(vis.sum())
    if n_vis < c.min_visible:
        return False, f"too few visible keypoints ({n_vis} < {c.min_visible})"
    if not vis[NECK] or not (vis[L_HIP] or vis[R_HIP]) or not (vis[L_SHO] or vis[R_SHO]):
        return False, "missing torso (neck, a shoulder and a hip must be visible)"
    if not (vis[[R_KNE, L_KNE, R_ANK, L_ANK]].any()):
        return False, "missing torso (no knee or ankle visible)"
    h = body_height(pose)
    if h < c.min_height_px:
        return False, f"collapsed pose (neck-hip height {h:.1f}px < {c.min_height_px}px)"
    kp = normalize_pose(pose)
    x, y = kp[:, 0], kp[:, 1]

    # --- keypoint positions ---
    far = vis & (np.hypot(x, y) > c.max_extent)
    if far.any():
        k = int(np.argmax(np.where(far, np.hypot(x, y), -1)))
        return False, f"keypoint far from the body ({KEYPOINT_NAMES[k]} at {math.hypot(x[k], y[k]):.1f} h)"
    hips = [k for k in (R_HIP, L_HIP) if vis[k]]
    hip_c = kp[hips, :2].mean(axis=0)
    tilt = math.degrees(math.atan2(abs(hip_c[0]), hip_c[1]))  # 0 = hips straight below the neck
    if tilt > c.max_torso_tilt_deg:
        return False, f"torso not upright (tilt {tilt:.0f} deg > {c.max_torso_tilt_deg:.0f})"
    head = [k for k in HEAD if vis[k]]
    if head and y[head].max() > c.head_below_neck:
        return False, "head below the neck"
    hip_y = float(hip_c[1])
    for knee, ankle in ((R_KNE, R_ANK), (L_KNE, L_ANK)):
        if vis[knee] and y[knee] < hip_y - c.knee_above_hip:
            return False, f"knee above the hips ({KEYPOINT_NAMES[knee]})"
        if vis[ankle] and y[ankle] < hip_y:
            return False, f"ankle above the hips ({KEYPOINT_NAMES[ankle]})"
        if vis[ankle] and vis[knee] and y[ankle] < y[knee] - c.knee_above_hip:
            return False, f"ankle above the knee ({KEYPOINT_NAMES[ankle]})"

    # --- left/right order: shoulders and hips must face the same way ---
    if vis[[R_SHO, L_SHO, R_HIP, L_HIP]].all():
        sho = x[L_SHO] - x[R_SHO]
        hip = x[L_HIP] - x[R_HIP]
        if min(abs(sho), abs(hip)) > c.lr_min_separation and np.sign(sho) != np.sign(hip):
            return False, "left/right swapped (shoulders and hips face opposite ways)"

    # --- limb proportions ---
    lengths: dict[str, float] = {}
    for name, a, b in SEGMENTS:
        if vis[a] and vis[b]:
            lengths[name] = float(np.hypot(x[a] - x[b], y[a] - y[b]))
    for name, limit in c.max_segment:
        if lengths.get(name, 0.0) > limit:
            return False, f"limb too long ({name} = {lengths[name]:.2f} h > {limit})"
    for name in ("r_thigh", "l_thigh", "r_shin", "l_shin"):
        if name in lengths and lengths[name] < c.min_leg_segment:
            return False, f"leg collapsed ({name} = {lengths[name]:.2f} h < {c.min_leg_segment})"

    # --- symmetry ---
    for right, left in SYMMETRIC:
        if right in lengths and left in lengths:
            lo, hi = sorted((max(lengths[right], c.symmetry_floor), max(lengths[left], c.symmetry_floor)))
            limit = c.max_arm_asymmetry if "arm" in right else c.max_leg_asymmetry
            if hi / lo > limit:
                return False, f"asymmetric limbs ({right} vs {left}: ratio {hi / lo:.1f} > {limit})"
    return True, "ok"
