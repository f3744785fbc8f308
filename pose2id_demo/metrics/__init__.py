"""Evaluation: the Market-1501 protocol (mAP, CMC, mINP) and Pose2ID's identity density ID² (eqs. 20-21)."""

from .id2 import ID2_VARIANTS, id2, id2_label, id2_per_sample, identity_density
from .rank import distance_matrix, evaluate, evaluate_loop, per_query_ap

__all__ = [
    "per_query_ap",
    "ID2_VARIANTS",
    "distance_matrix",
    "evaluate",
    "evaluate_loop",
    "id2",
    "id2_label",
    "id2_per_sample",
    "identity_density",
]
