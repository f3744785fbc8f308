"""Benchmark features, extracted once and cached on disk so sliders never re-extract.

:func:`dataset_features` returns the query/gallery features of a SynthPed task (or any Market-1501
root) for a registered backbone. The query and gallery sets are cached separately, each under a key made
of the backbone name, its weights hash and a digest of the image list (file names *and* file bytes), so
the gallery shared by the three SynthPed tasks is extracted only once and a re-rendered or edited image
invalidates exactly the sets that contain it. Cache files are plain ``.npy`` arrays (no pickle) under
``cache_dir()/features/``, written atomically.

External features (e.g. from TransReID or CLIP-ReID run elsewhere) plug in without a model: save an
``.npz`` with the keys of :data:`FEATURE_KEYS` and either load it with :func:`load_feature_file` or make
:func:`dataset_features` return it for a (name, task) with :func:`register_feature_file`. External *models*
plug in with :func:`pose2id_demo.reid.register_backbone`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pose2id_demo import shipped_features
from pose2id_demo.data import load_market
from pose2id_demo.data.synthped import ensure_benchmark
from pose2id_demo.paths import cache_dir
from pose2id_demo.reid.backbones import backbone_slug, get_backbone

logger = logging.getLogger(__name__)

FEATURE_KEYS = ("q_feats", "g_feats", "q_pids", "g_pids", "q_camids", "g_camids", "q_paths", "g_paths")
_FEATURE_FILES: dict[tuple[str, str], Path] = {}


def image_list_digest(paths: Sequence[str | Path]) -> str:
    """SHA-256 over the ordered (file name, file bytes) of ``paths``."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def features_for_paths(backbone_name: str, paths: Sequence[str | Path], batch_size: int = 64,
                       progress: bool = True, use_cache: bool = True, device: str = "cpu") -> np.ndarray:
    """Raw features (N, dim) of the images at ``paths``, from the disk cache when present."""
    backbone = get_backbone(backbone_name, device=device)
    key = hashlib.sha256(f"{backbone_name}|{backbone.weights_id}|{image_list_digest(paths)}".encode()).hexdigest()
    cache = cache_dir() / "features" / backbone_slug(backbone_name) / f"{key[:32]}.npy"
    if use_cache and cache.exists():
        feats = np.load(cache, allow_pickle=False)
        if feats.shape == (len(paths), backbone.dim):
            return feats
        logger.warning("ignoring feature cache %s with shape %s", cache, feats.shape)
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    feats = backbone.extract(images, batch_size=batch_size, progress=progress)
    if use_cache:
        _atomic_save(cache, feats)
    return feats


def register_feature_file(backbone_name: str, task: str, path: str | Path) -> None:
    """Make ``dataset_features(backbone_name, task)`` return the features stored in ``path``."""
    load_feature_file(path)  # validate now
    _FEATURE_FILES[(backbone_name, task)] = Path(path)


def load_feature_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` of precomputed features with the keys :data:`FEATURE_KEYS` (``*_paths``
    optional). Raises ``ValueError`` for missing keys or inconsistent shapes."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in FEATURE_KEYS if k not in z.files and not k.endswith("_paths")]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}; expected {FEATURE_KEYS}")
        d = {k: np.asarray(z[k]) for k in FEATURE_KEYS if k in z.files}
    for s in ("q", "g"):
        n = len(d[f"{s}_feats"])
        if d[f"{s}_feats"].ndim != 2 or len(d[f"{s}_pids"]) != n or len(d[f"{s}_camids"]) != n:
            raise ValueError(f"{path}: {s}_feats, {s}_pids and {s}_camids must have the same length")
        d.setdefault(f"{s}_paths", np.array([f"{s}{i}" for i in range(n)]))
    if d["q_feats"].shape[1] != d["g_feats"].shape[1]:
        raise ValueError(f"{path}: query and gallery features differ in dimension")
    d["q_feats"] = d["q_feats"].astype(np.float32)
    d["g_feats"] = d["g_feats"].astype(np.float32)
    return d


def dataset_features(backbone_name: str, task: str = "standard", root: str | Path | None = None,
                     batch_size: int = 64, progress: bool = True, device: str = "cpu", shipped: bool = True
                     ) -> dict[str, np.ndarray]:
    """Query and gallery features of a SynthPed ``task`` (or of the Market-1501 folder ``root``).

    Returns a dict with ``q_feats, g_feats`` (raw, float32), ``q_pids, g_pids, q_camids, g_camids`` (int
    arrays) and ``q_paths, g_paths`` (string arrays), in the reader's (sorted file name) order. For SynthPed,
    the float16 features shipped in ``assets/features/`` are used when they match this installation
    (:mod:`pose2id_demo.shipped_features`; no rendering or extraction needed); ``shipped=False`` extracts.
    """
    if root is None and (backbone_name, task) in _FEATURE_FILES:
        return load_feature_file(_FEATURE_FILES[(backbone_name, task)])
    if root is None and shipped:
        hit = shipped_features.dataset_features(backbone_name, task)
        if hit is not None:
            return hit
    if root is None:
        root = ensure_benchmark(task, progress=progress)
    ds = load_market(root)
    out: dict[str, np.ndarray] = {}
    for s, recs in (("q", ds.query), ("g", ds.gallery)):
        paths = [r.path for r in recs]
        out[f"{s}_feats"] = features_for_paths(backbone_name, paths, batch_size=batch_size, progress=progress,
                                               device=device)
        out[f"{s}_pids"] = np.array([r.pid for r in recs], np.int64)
        out[f"{s}_camids"] = np.array([r.camid for r in recs], np.int64)
        out[f"{s}_paths"] = np.array(paths)
    return out


def save_feature_file(path: str | Path, feats: dict[str, np.ndarray]) -> None:
    """Write a features dict (as returned by :func:`dataset_features`) to an ``.npz`` (no pickle)."""
    np.savez(path, **{k: np.asarray(feats[k]) for k in FEATURE_KEYS if k in feats})
