"""A reader for any dataset in Market-1501 layout (Market-1501, DukeMTMC-reID, converted Occluded-REID,
SynthPed, ...).

Layout::

    ROOT/bounding_box_train/   training images (optional)
    ROOT/query/                query images
    ROOT/bounding_box_test/    gallery images

File names start with ``{pid}_c{cam}`` — e.g. ``0002_c1s1_000451_03.jpg`` — where ``pid`` is the identity
(``-1`` = junk, ``0000`` = distractor) and ``cam`` the camera number. As in the Market-1501 protocol,
junk images (pid −1) are dropped everywhere, distractors (pid 0) are kept in the gallery (they can only
ever be false matches) and dropped from train and query, which need a real identity.

Camera ids are kept exactly as written in the file name (1-based for Market-1501); the evaluation only
compares them for equality. Keypoints, when present, live in ``X.json`` beside image ``X.jpg``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_NAME = re.compile(r"^(-?\d+)_c(\d+)")
SPLITS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@dataclass(frozen=True)
class Record:
    """One image: its path, identity and camera."""

    path: str
    pid: int
    camid: int


@dataclass
class MarketDataset:
    """The three splits of a Market-1501-format root, as lists of :class:`Record` sorted by file name."""

    root: Path
    train: list[Record] = field(default_factory=list)
    query: list[Record] = field(default_factory=list)
    gallery: list[Record] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"MarketDataset({str(self.root)!r}, train={len(self.train)} images/"
                f"{len({r.pid for r in self.train})} ids, query={len(self.query)}, gallery={len(self.gallery)})")


def parse_name(name: str) -> tuple[int, int] | None:
    """``(pid, camid)`` from a Market-style file name, or None if it does not follow the pattern."""
    m = _NAME.match(name)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


def _bad_name(path: Path) -> ValueError:
    return ValueError(f"{path}: file name does not start with '{{pid}}_c{{camera}}' (like "
                      f"'0002_c1s1_000451_03.jpg'; pid -1 = junk, 0 = distractor); rename or remove it")


def _read_split(folder: Path, split: str, strict: bool = False) -> list[Record]:
    records: list[Record] = []
    skipped = junk = 0
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        parsed = parse_name(p.name)
        if parsed is None or parsed[0] < -1:
            if strict:
                raise _bad_name(p)
            skipped += 1
            continue
        pid, camid = parsed
        if pid == -1 or (pid == 0 and split != "gallery"):
            junk += 1
            continue
        records.append(Record(str(p), pid, camid))
    if skipped:
        logger.warning("%s: skipped %d files whose names are not '{pid}_c{cam}...'", folder, skipped)
    if junk:
        logger.debug("%s: dropped %d junk/distractor images", folder, junk)
    return records


def _find_root(root: Path) -> Path:
    if (root / "query").is_dir() and (root / "bounding_box_test").is_dir():
        return root
    # an archive extracted one level down (e.g. Market-1501-v15.09.15/)
    if root.is_dir():
        subs = [d for d in root.iterdir()
                if d.is_dir() and (d / "query").is_dir() and (d / "bounding_box_test").is_dir()]
        if len(subs) == 1:
            return subs[0]
    raise ValueError(
        f"{root} is not a Market-1501-format folder: expected subfolders 'query/' and 'bounding_box_test/' "
        f"(and optionally 'bounding_box_train/') holding images named like '0002_c1s1_000451_03.jpg'")


def load_market(root: str | Path, strict: bool = False) -> MarketDataset:
    """Read a Market-1501-format root into records.

    ``strict``: an image whose name does not follow ``{pid}_c{cam}...`` is an error naming the file
    (the default skips it with one warning per folder).

    Raises:
        ValueError: if ``root`` does not exist, lacks ``query/`` or ``bounding_box_test/``, or its query or
            gallery folder holds no image named ``{pid}_c{cam}...``; with ``strict``, for a badly named image.
    """
    root = Path(root)
    if not root.exists():
        raise ValueError(f"dataset folder {root} does not exist")
    root = _find_root(root)
    ds = MarketDataset(root=root)
    for split, sub in SPLITS.items():
        folder = root / sub
        if folder.is_dir():
            setattr(ds, split, _read_split(folder, split, strict))
    if not ds.query or not ds.gallery:
        raise ValueError(f"{root}: no usable images in query/ ({len(ds.query)}) or bounding_box_test/ "
                         f"({len(ds.gallery)}); file names must look like '0002_c1s1_000451_03.jpg'")
    logger.info("loaded %r", ds)
    return ds
