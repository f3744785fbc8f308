"""Evaluation: the Market-1501 protocol (mAP, CMC, mINP) and Pose2ID's identity density ID² (eqs. 20-21)."""

from .id2 import id2, id2_per_sample
from .rank import distance_matrix, evaluate, evaluate_loop

__all__ = ["distance_matrix", "evaluate", "evaluate_loop", "id2", "id2_per_sample"]
