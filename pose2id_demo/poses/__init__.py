"""Poses: OpenPose-18 keypoints, skeleton drawing, PoseValid, an offline estimator, representative poses."""

from .keypoints import KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS, Pose, load_pose_json, save_pose_json

__all__ = ["KEYPOINT_NAMES", "LIMBS", "NUM_KEYPOINTS", "Pose", "load_pose_json", "save_pose_json"]
