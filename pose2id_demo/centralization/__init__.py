"""Feature centralization (Pose2ID Sec. 3): NFC (Alg. 1), eq. 9 with generated features, and re-ranking."""

from .centralize import centralize, l2_normalize
from .nfc import centralize_neighbors, nfc, nfc_sets, nfc_sets_grid, topk_neighbors
from .rerank import rerank

__all__ = ["centralize", "centralize_neighbors", "l2_normalize", "nfc", "nfc_sets", "nfc_sets_grid", "rerank",
           "topk_neighbors"]
