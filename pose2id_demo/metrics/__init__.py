"""Evaluation: the Market-1501 protocol (mAP, CMC, mINP, ranked lists), Pose2ID's identity density ID²
(eqs. 20-21) and the same-identity / different-identity distance distributions."""

from .id2 import ID2_VARIANTS, id2, id2_label, id2_per_sample, identity_density
from .pair_distances import histogram_overlap, pair_distance_histograms
from .rank import (
    EXACT_SCALE,
    TIE_GRID,
    distance_matrix,
    evaluate,
    evaluate_loop,
    per_query_ap,
    ranked_lists,
)

__all__ = [
    "EXACT_SCALE",
    "ID2_VARIANTS",
    "TIE_GRID",
    "distance_matrix",
    "evaluate",
    "evaluate_loop",
    "histogram_overlap",
    "id2",
    "id2_label",
    "id2_per_sample",
    "identity_density",
    "pair_distance_histograms",
    "per_query_ap",
    "ranked_lists",
]
