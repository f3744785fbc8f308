"""Per-identity statistics of a Market-layout test split, printed beside Market-1501's.

    python -m pose2id_demo.data.synthped --stats ROOT

Counts come from the file names alone (``{pid}_c{cam}...``), junk (pid −1) included, so the numbers are
what the folder holds before a reader drops anything. Shares are computed the way the protocol sees them:
distractors (pid 0) as a share of the gallery that is evaluated (test identities + distractors), junk as
a share of everything in ``bounding_box_test/`` (junk included).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pose2id_demo.data.market import IMAGE_SUFFIXES, SPLITS, _find_root, parse_name
from pose2id_demo.data.synthped.constants import MARKET


def _names(folder: Path) -> list[tuple[int, int]]:
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and (parsed := parse_name(p.name)) is not None:
            out.append(parsed)
    return out


def split_statistics(root: str | Path) -> dict[str, float]:
    """Counts and per-identity means of a Market-layout root (see the module docstring for the shares)."""
    root = _find_root(Path(root))
    train = _names(root / SPLITS["train"])
    query = [(p, c) for p, c in _names(root / SPLITS["query"]) if p > 0]
    folder = _names(root / SPLITS["gallery"])
    test_ids = sorted({p for p, _ in query})
    gal = [(p, c) for p, c in folder if p > 0]
    n_dis = sum(p == 0 for p, _ in folder)
    n_junk = sum(p == -1 for p, _ in folder)
    cams = {pid: {c for p, c in query + gal if p == pid} for pid in test_ids}
    gal_per = Counter(p for p, _ in gal)
    n_ids = max(len(test_ids), 1)
    return {
        "train_ids": len({p for p, _ in train if p > 0}), "train": sum(p > 0 for p, _ in train),
        "test_ids": len(test_ids), "query": len(query), "query_per_id": len(query) / n_ids,
        "cameras_min": min((len(v) for v in cams.values()), default=0),
        "cameras_max": max((len(v) for v in cams.values()), default=0),
        "cameras_per_id": sum(len(v) for v in cams.values()) / n_ids,
        "gallery": len(gal) + n_dis, "gallery_of_test_ids": len(gal),
        "gallery_per_id": len(gal) / n_ids, "gallery_per_id_min": min(gal_per.values(), default=0),
        "distractors": n_dis, "distractor_share": n_dis / max(len(gal) + n_dis, 1),
        "junk": n_junk, "junk_share": n_junk / max(len(folder), 1), "folder": len(folder),
    }


def market_statistics() -> dict[str, float]:
    """Market-1501's numbers in the same keys (its folders: 750 test ids, 2–6 cameras each)."""
    m = MARKET
    folder = m["gallery"] + m["junk"]
    return {"train_ids": m["train_ids"], "train": m["train"], "test_ids": m["test_ids"], "query": m["query"],
            "query_per_id": m["query"] / m["test_ids"], "cameras_min": 2, "cameras_max": 6,
            "cameras_per_id": float("nan"), "gallery": m["gallery"], "gallery_of_test_ids": m["gallery_of_test_ids"],
            "gallery_per_id": m["gallery_of_test_ids"] / m["test_ids"], "gallery_per_id_min": float("nan"),
            "distractors": m["distractors"], "distractor_share": m["distractors"] / m["gallery"],
            "junk": m["junk"], "junk_share": m["junk"] / folder, "folder": folder}


_ROWS = [
    ("train images / ids", lambda s: f"{s['train']:,} / {s['train_ids']:,}"),
    ("test identities", lambda s: f"{s['test_ids']:,}"),
    ("cameras per test id (min–max, mean)",
     lambda s: f"{s['cameras_min']}–{s['cameras_max']}" + ("" if s["cameras_per_id"] != s["cameras_per_id"]
                                                         else f", {s['cameras_per_id']:.2f}")),
    ("queries (per id)", lambda s: f"{s['query']:,} ({s['query_per_id']:.2f})"),
    ("gallery, evaluated (test ids + distractors)", lambda s: f"{s['gallery']:,}"),
    ("  of test ids (per id)", lambda s: f"{s['gallery_of_test_ids']:,} ({s['gallery_per_id']:.2f})"),
    ("  distractors, pid 0 (share of gallery)",
     lambda s: f"{s['distractors']:,} ({100 * s['distractor_share']:.1f} %)"),
    ("junk, pid -1 (share of bounding_box_test/)", lambda s: f"{s['junk']:,} ({100 * s['junk_share']:.1f} %)"),
    ("bounding_box_test/ files", lambda s: f"{s['folder']:,}"),
]


def format_statistics(stats: dict[str, float], name: str = "this folder") -> str:
    """A Markdown table of ``stats`` beside Market-1501's."""
    ref = market_statistics()
    lines = [f"| | {name} | Market-1501 |", "|---|---:|---:|"]
    lines += [f"| {label} | {fmt(stats)} | {fmt(ref)} |" for label, fmt in _ROWS]
    return "\n".join(lines)
