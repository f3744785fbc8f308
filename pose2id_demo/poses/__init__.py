"""Poses: OpenPose-18 keypoints, skeleton drawing, PoseValid, an offline estimator, representative poses."""

from .convert import from_coco17, from_mediapipe33
from .draw import draw_pose, skeleton_to_pose
from .estimator import NoPersonFound, estimate_pose
from .keypoints import KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS, Pose, load_pose_json, save_pose_json
from .posevalid import normalize_pose, pose_valid
from .upload import check_target_pose, pose_from_upload

_LAZY = {"DIRECTIONS", "classify_direction", "load_representative_poses"}  # from .representative


def __getattr__(name: str):
    # representative.py is also a CLI (python -m); importing it lazily avoids runpy's double-import warning
    if name in _LAZY:
        from . import representative

        return getattr(representative, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DIRECTIONS", "KEYPOINT_NAMES", "LIMBS", "NUM_KEYPOINTS", "NoPersonFound", "Pose", "classify_direction",
    "draw_pose", "estimate_pose", "from_coco17", "from_mediapipe33", "load_pose_json", "load_representative_poses",
    "check_target_pose", "normalize_pose", "pose_from_upload", "pose_valid", "save_pose_json", "skeleton_to_pose",
]
