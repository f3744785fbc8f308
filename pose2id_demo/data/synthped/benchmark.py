"""The benchmark: which images exist (:func:`plan`), how each is rendered for a task
(:func:`render_item`), and writing a task in Market-1501 layout once into the cache
(:func:`render_benchmark`, :func:`ensure_benchmark`); a contact sheet (:func:`make_montage`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pose2id_demo.data.synthped.cameras import CAMERAS
from pose2id_demo.data.synthped.constants import (
    _SPLIT_CODE,
    _TASK_CODE,
    DISTRACTOR_SHARE,
    GALLERY_PER_ID,
    JUNK_SHARE,
    MANIFEST,
    NUM_CAMERAS,
    NUM_DISTRACTORS,
    NUM_JUNK,
    NUM_TEST_IDS,
    NUM_TRAIN_IDS,
    TASKS,
    TEST_CAMERAS,
    TEST_CAMERAS_P,
    TEST_PID0,
    TRAIN_IMAGES_PER_ID,
    TRAIN_PID0,
    VERSION,
    H,
    W,
)
from pose2id_demo.data.synthped.identities import Identity, make_identities
from pose2id_demo.data.synthped.render import Rendered, render_image
from pose2id_demo.paths import cache_dir
from pose2id_demo.poses.keypoints import Pose

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Item:
    """One image to render."""

    split: str        # "train" | "query" | "gallery" | "distractor" | "junk"
    folder: str       # "bounding_box_train" | "query" | "bounding_box_test"
    pid: int          # identity (0 for distractors, -1 for junk, as in Market-1501)
    source_pid: int   # the identity whose appearance is drawn (-1: none, background only)
    camid: int
    k: int            # per-pid image index, used in the frame number and the seed
    box: str = "person"  # "person" (a detector's good box) | "bad_detection" | "junk"

    @property
    def filename(self) -> str:
        pid = "-1" if self.pid == -1 else f"{self.pid:04d}"   # Market writes junk as '-1_c...'
        return f"{pid}_c{self.camid}s1_{self.k * 25 + _SPLIT_CODE[self.split]:06d}_00.jpg"


def _camera_counts(seed: int, n: int) -> list[int]:
    """How many cameras each of ``n`` test identities appears in: stratified quantiles of
    ``TEST_CAMERAS_P`` (so the mean is the distribution's 4.5 up to 1/n), in a seeded random order."""
    cdf = np.cumsum(TEST_CAMERAS_P)
    counts = [TEST_CAMERAS[int(np.searchsorted(cdf, (i + 0.5) / n))] for i in range(n)]
    order = np.random.default_rng([seed, 19]).permutation(n)
    return [counts[int(j)] for j in order]


def plan(seed: int = 0, num_train_ids: int = NUM_TRAIN_IDS, num_test_ids: int = NUM_TEST_IDS,
         train_per_id: int = TRAIN_IMAGES_PER_ID, num_distractors: int | None = NUM_DISTRACTORS,
         num_junk: int | None = NUM_JUNK) -> list[Item]:
    """The list of images of the benchmark (same for all tasks).

    Train: as in SynthPed v3 (same items, same bytes). Test, with Market-1501's per-identity structure:
    each identity walks past 2–6 cameras and has one query in each of them and 10–16 gallery images,
    at least one per camera (so every query has a true match in another camera). Distractors (pid 0,
    people who are not test identities, some as bad detections) and junk (pid −1: partial bodies,
    mostly-background and badly cropped boxes of the test identities, which the reader drops) default
    to Market's shares of the gallery and of the folder.
    """
    items: list[Item] = []
    for pid in range(TRAIN_PID0, TRAIN_PID0 + num_train_ids):
        rng = np.random.default_rng([seed, 3, pid])
        cams = rng.choice(np.arange(1, NUM_CAMERAS + 1), size=int(rng.integers(3, 6)), replace=False)
        for k in range(train_per_id):
            items.append(Item("train", "bounding_box_train", pid, pid, int(cams[k % len(cams)] if k < len(cams)
                                                                          else rng.choice(cams)), k))
    test_pids = list(range(TEST_PID0, TEST_PID0 + num_test_ids))
    test_cams: dict[int, list[int]] = {}
    n_gallery = 0
    for pid, ncam in zip(test_pids, _camera_counts(seed, num_test_ids)):
        rng = np.random.default_rng([seed, 5, pid])
        cams = sorted(int(c) for c in rng.choice(np.arange(1, NUM_CAMERAS + 1), size=ncam, replace=False))
        ng = int(rng.integers(GALLERY_PER_ID[0], GALLERY_PER_ID[1] + 1))
        gcams = cams + [int(c) for c in rng.choice(cams, size=ng - ncam)]
        test_cams[pid] = cams
        k = 0
        for q in cams:
            items.append(Item("query", "query", pid, pid, q, k))
            k += 1
        for g in gcams:
            items.append(Item("gallery", "bounding_box_test", pid, pid, g, k))
            k += 1
        n_gallery += ng
    if num_distractors is None:  # d / (n_gallery + d) = Market's share
        num_distractors = int(round(DISTRACTOR_SHARE / (1 - DISTRACTOR_SHARE) * n_gallery))
    rng = np.random.default_rng([seed, 13])
    for k in range(num_distractors):
        src = 9000 + k if rng.random() < 0.85 else -1
        box = "person" if src > 0 and rng.random() < 0.7 else "bad_detection"
        items.append(Item("distractor", "bounding_box_test", 0, src, int(rng.integers(1, NUM_CAMERAS + 1)), k, box))
    if num_junk is None:  # j / (n_gallery + d + j) = Market's share
        num_junk = int(round(JUNK_SHARE / (1 - JUNK_SHARE) * (n_gallery + num_distractors))) if test_pids else 0
    rng = np.random.default_rng([seed, 23])
    for k in range(num_junk):
        src = int(test_pids[int(rng.integers(len(test_pids)))]) if rng.random() < 0.9 else -1
        cam = int(rng.choice(test_cams[src])) if src > 0 else int(rng.integers(1, NUM_CAMERAS + 1))
        items.append(Item("junk", "bounding_box_test", -1, src, cam, k, "junk"))
    return items


def _identities_for(seed: int, items: Sequence[Item]) -> dict[int, Identity]:
    train = sorted({it.source_pid for it in items if it.split == "train"})
    test = sorted({it.source_pid for it in items if it.split in ("query", "gallery")})
    extra = sorted({it.source_pid for it in items if it.split == "distractor" and it.source_pid > 0})
    ids = make_identities(seed, train)
    ids.update(make_identities(seed, test))
    ids.update(make_identities(seed, extra, near_dup_fraction=0.0))
    return ids


def _item_rng(seed: int, item: Item) -> np.random.Generator:
    """The generator every random choice of ``item``'s image is drawn from (independent of render order)."""
    return np.random.default_rng([seed, _SPLIT_CODE[item.split], max(item.pid, 0), item.k])


def render_item(seed: int, item: Item, task: str, ident: Identity | None) -> Rendered:
    """Render one planned image for ``task`` (only queries depend on the task)."""
    rng = _item_rng(seed, item)
    mode = "visible"
    task_rng = None
    if item.split == "query" and task != "standard":
        mode = task
        task_rng = np.random.default_rng([seed, 17, item.pid, item.k, _TASK_CODE[task]])
    return render_image(seed, ident, item.camid, rng, task_rng, mode=mode, box=item.box)


def _write(path: Path, r: Rendered) -> None:
    r.image.save(path, format="JPEG", quality=r.jpeg, optimize=False, progressive=False, subsampling=0)
    pose = Pose(r.keypoints, W, H)
    path.with_suffix(".json").write_text(json.dumps(pose.to_json()))


def render_benchmark(out: str | Path, task: str = "standard", seed: int = 0, progress: bool = False,
                     items: Sequence[Item] | None = None, reuse: str | Path | None = None) -> Path:
    """Render ``task`` into ``out`` (a Market-1501 root). Writes ``synthped.json`` last.

    ``reuse``: a complete SynthPed root of another task with the same seed and version (and the default
    plan); its train and gallery files — identical for all tasks by construction — are copied instead
    of rendered again.
    """
    if task not in TASKS:
        raise ValueError(f"unknown SynthPed task {task!r}; choose one of {TASKS}")
    out = Path(out)
    items = plan(seed) if items is None else list(items)
    idents = _identities_for(seed, items)
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    it: Iterator[Item] | Sequence[Item] = items
    if progress:
        it = tqdm(items, desc=f"SynthPed {task}", unit="img")
    for item in it:
        dst = out / item.folder / item.filename
        if reuse is not None and item.split != "query":
            src = Path(reuse) / item.folder / item.filename
            shutil.copyfile(src, dst)
            shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
            continue
        r = render_item(seed, item, task, idents.get(item.source_pid))
        _write(dst, r)
    manifest = {"name": "SynthPed", "version": VERSION, "seed": seed, "task": task, "height": H, "width": W,
                "num_train": sum(i.split == "train" for i in items),
                "num_query": sum(i.split == "query" for i in items),
                "num_gallery": sum(i.split in ("gallery", "distractor") for i in items),
                "num_distractors": sum(i.split == "distractor" for i in items),
                "num_junk": sum(i.split == "junk" for i in items),
                "cameras": [c.background for c in CAMERAS]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out


#: Test identities of :func:`write_demo_market` by default: 4 (18 queries, 62 gallery images with 11 distractors).
DEMO_TEST_IDS = 4


def write_demo_market(out: str | Path, num_test_ids: int = DEMO_TEST_IDS, seed: int = 0,
                      progress: bool = False) -> Path:
    """A small Market-1501-layout folder for trying the own-dataset path end to end: images only, as a user's
    folder would be (no keypoint files, no manifest).

    The first ``num_test_ids`` identities of SynthPed's test split (so the shipped ``synthped-reid`` backbone
    never trained on them) with their queries (one per camera) and gallery, SynthPed's share of distractors
    (pid 0) and junk (pid -1), and 4 train identities × 4 images in ``bounding_box_train/``, rendered by the
    benchmark's own :func:`plan` and :func:`render_benchmark` (a few seconds).  ``out`` must not exist or be
    empty.

    Returns:
        ``out``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder")
    if not 1 <= int(num_test_ids) <= NUM_TEST_IDS:
        raise ValueError(f"the number of identities must be 1 to {NUM_TEST_IDS}, got {num_test_ids}")
    items = plan(seed, num_train_ids=4, num_test_ids=int(num_test_ids), train_per_id=4)
    render_benchmark(out, seed=seed, items=items, progress=progress)
    for extra in [out / MANIFEST, *out.rglob("*.json")]:
        extra.unlink(missing_ok=True)
    return out


def _is_complete(root: Path, task: str, seed: int) -> bool:
    try:
        m = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return m.get("version") == VERSION and m.get("seed") == seed and m.get("task") == task


def ensure_benchmark(task: str = "standard", progress: bool = True, seed: int = 0, root: str | Path | None = None
                     ) -> Path:
    """Render the SynthPed ``task`` once into ``cache_dir()/synthped/<task>`` and return that root.

    Rendering goes to a temporary sibling folder that is renamed into place, so concurrent callers never
    see a half-written benchmark.
    """
    if task not in TASKS:
        raise ValueError(f"unknown SynthPed task {task!r}; choose one of {TASKS}")
    base = Path(root) if root is not None else cache_dir() / "synthped"
    target = base / task
    if _is_complete(target, task, seed):
        return target
    base.mkdir(parents=True, exist_ok=True)
    reuse = next((base / t for t in TASKS if t != task and _is_complete(base / t, t, seed)), None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{task}-", dir=base))
    try:
        logger.info("rendering SynthPed %s into %s", task, target)
        render_benchmark(tmp, task=task, seed=seed, progress=progress, reuse=reuse)
        if target.exists():
            if _is_complete(target, task, seed):  # someone else finished first
                return target
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def make_montage(roots: dict[str, str | Path], num_ids: int = 6, per_id: int = 6, scale: int = 1) -> Image.Image:
    """A contact sheet: one row per test identity — its gallery images across cameras, then its first
    query as rendered by each task in ``roots`` (task name → rendered root)."""
    from pose2id_demo.data.market import load_market

    sets = {t: load_market(r) for t, r in roots.items()}
    first = next(iter(sets.values()))
    pids = sorted({r.pid for r in first.query})[:num_ids]
    rows = []
    gap = np.full((H, 4, 3), 255, np.uint8)
    for pid in pids:
        gal = [r for r in first.gallery if r.pid == pid][:per_id]
        tiles = [np.asarray(Image.open(r.path).convert("RGB")) for r in gal]
        tiles += [np.full((H, W, 3), 255, np.uint8)] * (per_id - len(tiles))
        queries = [np.asarray(Image.open(next(r for r in ds.query if r.pid == pid).path).convert("RGB"))
                   for ds in sets.values()]
        rows.append(np.concatenate(tiles + [gap] + queries, axis=1))
    sheet = np.concatenate([np.concatenate([r, np.full((2, r.shape[1], 3), 255, np.uint8)], 0) for r in rows], 0)
    img = Image.fromarray(sheet)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img
