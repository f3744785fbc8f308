"""Where the project keeps shipped assets and its on-disk cache.

Shipped (committed) files live under ``assets/``; anything derived at run time (the rendered SynthPed
benchmark, extracted features) goes to the cache folder, ``$POSE2ID_CACHE`` or ``~/.cache/pose2id-demo``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"
POSES_DIR = ASSETS / "poses"
MODELS_DIR = ASSETS / "models"
#: A small feature file to try ``eval`` and the Your-features tab with: what ``extract --backbone synthped-reid``
#: writes for the README's demo folder (``demo-dataset demo``; 18 queries, 62 gallery images, d = 256).
SAMPLE_FEATURES = ASSETS / "features" / "sample-demo-synthped-reid.npz"


def cache_dir() -> Path:
    """The cache root (created on demand)."""
    root = Path(os.environ.get("POSE2ID_CACHE", Path.home() / ".cache" / "pose2id-demo"))
    root.mkdir(parents=True, exist_ok=True)
    return root
