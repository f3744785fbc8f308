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

Besides these, an archive may hold only ``q_paths`` / ``g_paths`` (the images, relative to the dataset folder)
and ``settings`` (a JSON string: backbone, folder) — what ``python -m pose2id_demo extract`` and ``generate``
write. :func:`load_feature_npz` never reads them; :func:`read_file_info` does (priced the same way), and
:func:`attach_generated` uses them to check that a file of generated features belongs to these features before
it adds its ``q_gen`` / ``g_gen``. Every member name is checked exactly before anything is decompressed — a
name not in this list (``q_feats`` without ``.npy``, ``./q_feats.npy``, ``Q_FEATS.npy``), a name twice, a
directory or a pickle is refused — and each array is read from the very member whose header was priced, by its
exact name (``numpy.load`` would read an extensionless twin of a member instead). The archive's directory is
bounded before :mod:`zipfile` parses it (:func:`zip_directory`). The file is read with ``allow_pickle=False``;
object arrays, NaN/inf, empty sets, wrong shapes or dtypes, and archives whose *uncompressed* arrays total
more than ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 1 GiB — Market-1501 with 8 generated features per
image at d = 768 is ~0.5 GiB) are refused with a one-sentence ``ValueError``.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .centralization.centralize import l2_normalize

__all__ = ["DEFAULT_MAX_BYTES", "IGNORED_KEYS", "MAX_DIRECTORY_BYTES", "MAX_MEMBERS", "OPTIONAL_KEYS",
           "REQUIRED_KEYS", "ArrayHeader", "FeatureSet", "attach_generated", "load_feature_npz", "read_file_info",
           "read_headers", "zip_directory"]

DEFAULT_MAX_BYTES = 1 << 30
REQUIRED_KEYS = ("q_feats", "g_feats", "q_pids", "g_pids", "q_camids", "g_camids")
OPTIONAL_KEYS = ("q_gen", "g_gen")
#: Members a feature file may also hold, which the loader does not read: the image paths and the settings that
#: the extract and generate commands write (:func:`read_file_info` reads them).
IGNORED_KEYS = ("q_paths", "g_paths", "settings")
#: The only member names a feature file may have.
MEMBER_NAMES = tuple(f"{k}.npy" for k in REQUIRED_KEYS + OPTIONAL_KEYS + IGNORED_KEYS)
#: Most entries a feature file's zip directory may list (it needs at most 10).
MAX_MEMBERS = 16
#: Largest zip directory read (each entry is 46 bytes plus its name and extra fields; 10 entries need ~1 KB).
MAX_DIRECTORY_BYTES = 64 * 1024
#: Largest ``.npy`` header read (numpy's own default limit).
MAX_HEADER_BYTES = 10_000

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


@dataclass(frozen=True)
class ArrayHeader:
    """What a member's ``.npy`` header declares: its shape, dtype and (uncompressed) size in bytes."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def zip_directory(path: str | os.PathLike) -> tuple[int, int]:
    """``(entries, directory bytes)`` of a zip archive, read from its end record (the last 64 KB at most)
    before :mod:`zipfile` parses the directory — which it reads whole, however many entries it lists.

    Finds the end record as :mod:`zipfile` does (the last one in the file); a zip64 end record, which only an
    archive over 2 GiB or with 65,535 entries needs, is refused.

    Raises:
        ValueError: no end record, or a zip64 one.
    """
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail_len = min(size, _END.size + 0xFFFF)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        raise ValueError("not a zip archive (no end record)")
    if at >= 20 and tail[at - 20: at - 16] == _ZIP64_LOCATOR:
        raise ValueError("a zip64 archive, which a feature file never needs")
    _, _, _, _, entries, dir_bytes, _, _ = _END.unpack(tail[at: at + _END.size])
    return entries, dir_bytes


def _read_header(f: Any, name: str) -> ArrayHeader:
    """The header of the ``.npy`` stream ``f`` (positioned at its start), checked: no objects, a sane shape."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(f)
        if version not in readers:
            raise ValueError(f"format version {version}, not 1.0 or 2.0")
        shape, _, dtype = readers[version](f, max_header_size=MAX_HEADER_BYTES)
    except ValueError as e:
        raise ValueError(f"'{name}' has no valid .npy header ({str(e)[:200]})") from None
    if dtype.hasobject:
        raise ValueError(f"'{name}' holds Python objects (pickled data), which are not accepted")
    shape = tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"'{name}' has a negative dimension in its header")
    count = 1
    for n in shape:
        count *= n  # Python integers: no overflow, however large the declared shape
    return ArrayHeader(shape, dtype, count * dtype.itemsize)


def read_headers(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, ArrayHeader]:
    """Check a feature file's archive and read the header of each array it will load (nothing else is
    decompressed): the file size, the zip directory (:data:`MAX_MEMBERS`, :data:`MAX_DIRECTORY_BYTES`), the
    member names (exactly :data:`MEMBER_NAMES`, each once, the required ones present), then each array's own
    header and their total size against ``max_bytes``.

    Returns:
        ``{key: ArrayHeader}`` for the required keys and the optional ones present.

    Raises:
        ValueError: with a one-sentence reason.
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
    try:
        entries, dir_bytes = zip_directory(p)
    except (ValueError, OSError) as e:
        raise ValueError(f"{p.name}: not an .npz archive (expected the output of numpy.savez): {e}") from None
    if entries > MAX_MEMBERS or dir_bytes > MAX_DIRECTORY_BYTES:
        raise ValueError(f"{p.name}: its zip directory lists {entries:,} entries in {dir_bytes:,} bytes; a feature "
                         f"file has at most {len(MEMBER_NAMES)} members")
    try:
        with zipfile.ZipFile(p) as zf:
            names = [i.filename for i in zf.infolist()]
            _check_members(p.name, names)
            headers = {}
            for key in REQUIRED_KEYS + OPTIONAL_KEYS:
                if f"{key}.npy" in names:
                    with zf.open(f"{key}.npy") as f:
                        headers[key] = _read_header(f, key)
    except ValueError as e:
        raise ValueError(f"{p.name}: {e}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{p.name}: unreadable archive ({type(e).__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001 — zlib.error and the like from a corrupt member
        raise ValueError(f"{p.name}: unreadable archive ({type(e).__name__}: {e})") from None
    total = sum(h.nbytes for h in headers.values())
    if total > max_bytes:
        raise ValueError(f"{p.name}: its arrays need {total} bytes uncompressed, over the {max_bytes}-byte limit")
    return headers


def _check_members(file_name: str, names: list[str]) -> None:
    odd = [n for n in names if n not in MEMBER_NAMES]
    if odd:
        shown = ", ".join(repr(n[:40]) for n in odd[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
        raise ValueError(f"holds {shown}, which a feature file may not: its members are "
                         f"{', '.join(MEMBER_NAMES[:8])} (numpy.savez's names) and optionally "
                         f"{', '.join(MEMBER_NAMES[8:])}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"holds {', '.join(twice)} more than once")
    missing = [k for k in REQUIRED_KEYS if f"{k}.npy" not in names]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)} (need {', '.join(REQUIRED_KEYS)})")


def _read_array(zf: zipfile.ZipFile, key: str, priced: ArrayHeader) -> np.ndarray:
    """Member ``key.npy`` — by its exact name — as an array, after checking that its header is the one priced."""
    try:
        with zf.open(f"{key}.npy") as f:
            if _read_header(f, key) != priced:
                raise ValueError(f"'{key}' changed after it was checked")
        with zf.open(f"{key}.npy") as f:
            arr = np.lib.format.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER_BYTES)
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise ValueError(f"'{key}' holds Python objects (pickled data), which are not accepted") from None
        raise ValueError(f"'{key}' cannot be read: {e}") from None
    except MemoryError:
        raise ValueError(f"'{key}' is too large to load") from None
    except Exception as e:  # noqa: BLE001 — corrupt member: zlib.error, BadZipFile, EOFError, ...
        raise ValueError(f"'{key}' cannot be read ({type(e).__name__}: {e})") from None
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


def load_feature_npz(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES,
                     price: Callable[[dict[str, ArrayHeader]], None] | None = None) -> dict[str, np.ndarray]:
    """Load and validate a feature file (layout in the module docstring).

    Args:
        path: the ``.npz`` file.
        max_bytes: limit on the file size and on the total uncompressed size of its arrays.
        price: called with the arrays' headers (:func:`read_headers`) before any array is decompressed; it may
            raise to refuse the file (the app's cost model does).

    Returns:
        dict with the six required arrays (features float32, labels int64) and ``q_gen`` / ``g_gen``
        (float32) when present.

    Raises:
        ValueError: with a one-sentence reason for anything unusable.
    """
    p = Path(path)
    headers = read_headers(p, max_bytes)
    if price is not None:
        price(headers)
    try:
        with zipfile.ZipFile(p) as zf:
            raw = {k: _read_array(zf, k, h) for k, h in headers.items()}
    except ValueError as e:
        raise ValueError(f"{p.name}: {e}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{p.name}: unreadable archive ({e})") from None
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


def read_file_info(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """``q_paths`` / ``g_paths`` (lists of str, or None when absent) and ``settings`` (a dict, empty when absent
    or unreadable) of a feature file written by ``extract`` or ``generate``. The archive is checked as
    :func:`load_feature_npz` checks it (members, directory, sizes) and each of these members is read by its exact
    name after its header is priced against ``max_bytes``.

    Raises:
        ValueError: with a one-sentence reason, as :func:`read_headers`.
    """
    p = Path(path)
    read_headers(p, max_bytes)
    out: dict[str, Any] = {"q_paths": None, "g_paths": None, "settings": {}}
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            for key in IGNORED_KEYS:
                if f"{key}.npy" not in names:
                    continue
                with zf.open(f"{key}.npy") as f:
                    header = _read_header(f, key)
                if header.nbytes > max_bytes:
                    raise ValueError(f"'{key}' needs {header.nbytes} bytes, over the {max_bytes}-byte limit")
                arr = _read_array(zf, key, header)
                if key != "settings":
                    if arr.ndim == 1 and arr.dtype.kind == "U":
                        out[key] = [str(x) for x in arr]
                    continue
                try:
                    settings = json.loads(str(arr)) if arr.ndim == 0 and arr.dtype.kind == "U" else None
                except ValueError:
                    settings = None
                out["settings"] = settings if isinstance(settings, dict) else {}
    except ValueError as e:
        raise ValueError(f"{p.name}: {e}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{p.name}: unreadable archive ({e})") from None
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
