"""Poses: OpenPose-18 keypoints, skeleton drawing, PoseValid, an offline estimator, representative poses.

The representative poses (eqs. 7-8) and the view directions live in :mod:`pose2id_demo.poses.representative`,
imported from there: that module is also a script (``python -m pose2id_demo.poses.representative``), and a
package that imported it would make ``runpy`` load it twice.
"""

from .convert import from_coco17, from_mediapipe33
from .draw import draw_pose, skeleton_to_pose
from .estimator import NoPersonFound, estimate_pose
from .keypoints import KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS, Pose, load_pose_json, save_pose_json
from .posevalid import normalize_pose, pose_valid
from .upload import check_target_pose, pose_from_upload

__all__ = [
    "KEYPOINT_NAMES", "LIMBS", "NUM_KEYPOINTS", "NoPersonFound", "Pose", "check_target_pose", "draw_pose",
    "estimate_pose", "from_coco17", "from_mediapipe33", "load_pose_json", "normalize_pose", "pose_from_upload",
    "pose_valid", "save_pose_json", "skeleton_to_pose",
]
