"""Reading and validating a feature file (``.npz``) for evaluation — used by the CLI and by UI uploads — and
:class:`FeatureSet`, the normalised query/gallery features the ablation (:mod:`pose2id_demo.ablation`) takes.

Layout (``numpy.savez`` / ``savez_compressed``; Market-1501 naming):

=============  ===============  ====================================================
key            shape            meaning
=============  ===============  ====================================================
``q_feats``    (nq, d) float    query features
``g_feats``    (ng, d) float    gallery features
``q_pids``     (nq,) int        query identity labels
``g_pids``     (ng,) int        gallery identity labels
``q_camids``   (nq,) int        query camera ids
``g_camids``   (ng,) int        gallery camera ids
``q_gen``      (nq, M, d) float optional: features of M generated images per query (eq. 9)
``g_gen``      (ng, M, d) float optional: same for the gallery
=============  ===============  ====================================================

Other keys are ignored by :func:`load_feature_npz` (not even read).  ``extract`` also writes ``q_paths`` /
``g_paths`` (the images, relative to the dataset folder) and ``settings`` (a JSON string: backbone, folder);
:func:`read_file_info` reads them, and :func:`attach_generated` uses them to check that a file of generated
features (``generate``'s output) belongs to these features before it adds its ``q_gen`` / ``g_gen``.  The file is opened with ``allow_pickle=False``; object arrays,
pickles, non-zip files, NaN/inf, empty sets, wrong shapes or dtypes, and archives whose *uncompressed*
arrays total more than ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 1 GiB — Market-1501 with 8
generated features per image at d = 768 is ~0.5 GiB) are refused with a one-sentence ``ValueError``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .centralization.centralize import l2_normalize

__all__ = ["DEFAULT_MAX_BYTES", "OPTIONAL_KEYS", "REQUIRED_KEYS", "FeatureSet", "attach_generated",
           "load_feature_npz", "read_file_info"]

DEFAULT_MAX_BYTES = 1 << 30
REQUIRED_KEYS = ("q_feats", "g_feats", "q_pids", "g_pids", "q_camids", "g_camids")
OPTIONAL_KEYS = ("q_gen", "g_gen")


def _read(npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        arr = npz[key]
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise ValueError(f"'{key}' holds Python objects (pickled data), which are not accepted") from None
        raise ValueError(f"'{key}' cannot be read: {e}") from None
    except MemoryError:
        raise ValueError(f"'{key}' is too large to load") from None
    except Exception as e:  # noqa: BLE001 — corrupt member: zlib.error, BadZipFile, EOFError, ...
        raise ValueError(f"'{key}' cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):  # NpzFile hands back raw bytes for members that are not .npy
        raise ValueError(f"'{key}' is not a stored numpy array")  # noqa: TRY004 — the contract is ValueError
    if arr.dtype.hasobject:
        raise ValueError(f"'{key}' holds Python objects, which are not accepted")
    return arr


def _float_array(key: str, arr: np.ndarray, ndim: int) -> np.ndarray:
    if arr.ndim != ndim:
        want = "(N, d)" if ndim == 2 else "(N, M, d)"
        raise ValueError(f"'{key}' must have shape {want}, got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"'{key}' must hold real numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"'{key}' contains NaN or inf (or values too large for float32)")
    return out


def _int_array(key: str, arr: np.ndarray, n: int) -> np.ndarray:
    if arr.ndim != 1:
        raise ValueError(f"'{key}' must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"'{key}' must hold integers, got dtype {arr.dtype}")
    if arr.shape[0] != n:
        raise ValueError(f"'{key}' has {arr.shape[0]} entries but there are {n} feature rows")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"'{key}' has values too large for int64")
    return arr.astype(np.int64)


def load_feature_npz(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, np.ndarray]:
    """Load and validate a feature file (layout in the module docstring).

    Args:
        path: the ``.npz`` file.
        max_bytes: limit on the file size and on the total uncompressed size of its arrays.

    Returns:
        dict with the six required arrays (features float32, labels int64) and ``q_gen`` / ``g_gen``
        (float32) when present.

    Raises:
        ValueError: with a one-sentence reason for anything unusable.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file")
    if not p.is_file():
        raise ValueError(f"{p}: not a regular file")
    size = p.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{p.name}: {size} bytes is over the {max_bytes}-byte limit")
    if size == 0:
        raise ValueError(f"{p.name}: the file is empty")
    if not zipfile.is_zipfile(p):
        raise ValueError(f"{p.name}: not an .npz archive (expected the output of numpy.savez)")
    try:
        with zipfile.ZipFile(p) as zf:
            members = {i.filename: i.file_size for i in zf.infolist()}
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"{p.name}: unreadable archive ({e})") from None
    total = sum(members.get(f"{k}.npy", 0) for k in REQUIRED_KEYS + OPTIONAL_KEYS)
    if total > max_bytes:
        raise ValueError(f"{p.name}: its arrays need {total} bytes uncompressed, over the {max_bytes}-byte limit")
    present = {name[:-4] for name in members if name.endswith(".npy")}
    missing = [k for k in REQUIRED_KEYS if k not in present]
    if missing:
        raise ValueError(f"{p.name}: missing key(s) {', '.join(missing)} (need {', '.join(REQUIRED_KEYS)})")
    try:
        npz = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 — any failure to open is a bad file
        raise ValueError(f"{p.name}: cannot be opened as .npz ({type(e).__name__}: {e})") from None
    with npz:
        raw = {k: _read(npz, k) for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in present}
    out: dict[str, np.ndarray] = {}
    for side in ("q", "g"):
        f = _float_array(f"{side}_feats", raw[f"{side}_feats"], 2)
        if f.shape[0] == 0:
            raise ValueError(f"'{side}_feats' is empty: need at least one {'query' if side == 'q' else 'gallery'} row")
        if f.shape[1] == 0:
            raise ValueError(f"'{side}_feats' has zero feature dimensions")
        out[f"{side}_feats"] = f
        out[f"{side}_pids"] = _int_array(f"{side}_pids", raw[f"{side}_pids"], f.shape[0])
        out[f"{side}_camids"] = _int_array(f"{side}_camids", raw[f"{side}_camids"], f.shape[0])
    if out["q_feats"].shape[1] != out["g_feats"].shape[1]:
        raise ValueError(
            f"query and gallery features differ in dimension: {out['q_feats'].shape[1]} vs {out['g_feats'].shape[1]}"
        )
    d = out["q_feats"].shape[1]
    for side in ("q", "g"):
        key = f"{side}_gen"
        if key in raw:
            gen = _float_array(key, raw[key], 3)
            n = out[f"{side}_feats"].shape[0]
            if gen.shape[0] != n or gen.shape[2] != d:
                raise ValueError(f"'{key}' must have shape ({n}, M, {d}), got {gen.shape}")
            out[key] = gen
    return out


def read_file_info(path: str | os.PathLike) -> dict[str, Any]:
    """``q_paths`` / ``g_paths`` (lists of str, or None when absent) and ``settings`` (a dict, empty when absent
    or unreadable) of a feature file written by ``extract`` or ``generate``; ``path`` should already have
    passed :func:`load_feature_npz` (or ``read_generated``)."""
    out: dict[str, Any] = {"q_paths": None, "g_paths": None, "settings": {}}
    with np.load(path, allow_pickle=False) as z:
        for key in ("q_paths", "g_paths"):
            if key in z.files:
                arr = _read(z, key)
                if arr.ndim == 1 and arr.dtype.kind == "U":
                    out[key] = [str(p) for p in arr]
        if "settings" in z.files:
            try:
                settings = json.loads(str(_read(z, "settings")))
                out["settings"] = settings if isinstance(settings, dict) else {}
            except ValueError:
                pass
    return out


def attach_generated(data: dict[str, np.ndarray], gen: Mapping[str, Any], info: Mapping[str, Any] | None = None,
                     name: str = "the generated features") -> dict[str, np.ndarray]:
    """``data`` (:func:`load_feature_npz`'s dict) with ``q_gen`` / ``g_gen`` taken from ``gen`` — a file of
    generated features as ``pose2id_demo.ipg.precompute.read_generated`` returns it — once they are shown to
    belong to the same images: one generation set per query and gallery row and the feature dimension, and,
    where both files record them (:func:`read_file_info`), the same image lists in the same order and the same
    backbone.

    Raises:
        ValueError: a sentence naming what does not match (``name`` is the generated file's name).
    """
    info = info or {}
    if "q_gen" in data or "g_gen" in data:
        raise ValueError(f"the feature file already holds generated features (q_gen / g_gen); {name} would replace "
                         "them: evaluate it without --gen, or extract it again with --no-generated")
    out = dict(data)
    for side, label in (("q", "query"), ("g", "gallery")):
        key = f"{side}_gen"
        if gen.get(key) is None:
            raise ValueError(f"{name} has no {key}")
        g = _float_array(key, np.asarray(gen[key]), 3)
        n, d = data[f"{side}_feats"].shape
        if g.shape[0] != n:
            raise ValueError(f"{name} has generations of {g.shape[0]} {label} images, the feature file {n}: "
                             "they were made from another folder")
        if g.shape[2] != d:
            raise ValueError(f"{name} has {g.shape[2]}-d features, the feature file {d}-d: they were made with "
                             "another backbone")
        mine, theirs = info.get(f"{side}_paths"), gen.get(f"{side}_paths")
        if mine is not None and theirs is not None and list(mine) != list(theirs):
            i = next(i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b)
            raise ValueError(f"{name} lists other {label} images than the feature file (row {i}: {theirs[i]} vs "
                             f"{mine[i]}): they were made from another folder")
        out[key] = g
    ours, theirs = (info.get("settings") or {}).get("backbone"), (gen.get("settings") or {}).get("backbone")
    if ours and theirs and ours != theirs:
        raise ValueError(f"{name} holds {theirs} features, the feature file {ours} features: generate with "
                         f"--backbone {ours}")
    return out


@dataclass
class FeatureSet:
    """Query and gallery features in the form every ablation function takes (:mod:`pose2id_demo.ablation`).

    ``q`` (nq, d) and ``g`` (ng, d) are L2-normalised rows; ``q_gen`` (nq, M, d) / ``g_gen`` (ng, M, d), when
    present, are the features of the M generated images of each image (eq. 9), each L2-normalised *per
    generated image* like the originals, so that η weighs unit vectors whatever the backbone's feature norm.
    Labels are int arrays; Market-1501's distractors (pid 0) and junk (pid -1) may be present.
    """

    q: np.ndarray
    g: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    q_gen: np.ndarray | None = None
    g_gen: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> FeatureSet:
        """From the raw arrays of a feature file (the keys of :func:`load_feature_npz`): normalises the rows."""

        def gen(key: str) -> np.ndarray | None:
            v = arrays.get(key)
            return None if v is None else l2_normalize(v)

        return cls(q=l2_normalize(arrays["q_feats"]), g=l2_normalize(arrays["g_feats"]),
                   q_pids=np.asarray(arrays["q_pids"]), g_pids=np.asarray(arrays["g_pids"]),
                   q_camids=np.asarray(arrays["q_camids"]), g_camids=np.asarray(arrays["g_camids"]),
                   q_gen=gen("q_gen"), g_gen=gen("g_gen"))

    @classmethod
    def load(cls, path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> FeatureSet:
        """:func:`load_feature_npz` then :meth:`from_arrays`."""
        return cls.from_arrays(load_feature_npz(path, max_bytes=max_bytes))
