"""Features of any Market-layout dataset, written to a feature file the demo's tools read.

    python -m pose2id_demo extract --data ROOT --backbone NAME --out FEATURES.npz [--batch-size 64 --threads 2]

``ROOT`` is a Market-1501-format folder (Market-1501, DukeMTMC-reID, a converted Occluded-REID, SynthPed;
see :mod:`pose2id_demo.data.market`): the query images and the gallery, distractors (pid 0) included and
junk (pid −1) dropped as torchreid and fast-reid drop them. An image whose name does not follow
``{pid}_c{cam}...`` stops the run with an error naming it (no silently missing images).

The output ``.npz`` has the keys of :data:`pose2id_demo.reid.features.FEATURE_KEYS` (``*_paths``
relative to ``ROOT``) plus ``settings`` (a JSON string: backbone, weights id, image counts), so
``python -m pose2id_demo eval FEATURES.npz`` evaluates it. The run is resumable: every ``--chunk``
images the features so far go to ``FEATURES.partial.npz`` (keyed by path and file digest, and by the
backbone's weights), which a rerun picks up and the finished run removes.

Generated images in the official layout. The official Pose2ID inference writes, beside the dataset, the 8
generations of every test image under its own file name (:func:`generated_layout`)::

    ROOT/query_gen/pose1/ … pose8/<query file name>
    ROOT/bounding_box_test_gen/pose1/ … pose8/<gallery file name>

When both folders are there (``--no-generated`` ignores them), their features become ``q_gen (nq, M, d)`` and
``g_gen (ng, M, d)`` in the same file (poses in folder order), so ``eval`` shows the +IPG rows of eq. 9 with
the generations someone made on their own GPUs; put the file in ``ROOT`` and ``python app.py --dataset`` uses
it too. As in the official evaluation, a distractor (pid 0) has no generations and its own image stands in
for every pose; any other missing generated image stops the run with an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pose2id_demo.data.market import IMAGE_SUFFIXES, load_market

logger = logging.getLogger(__name__)


def _digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _save_npz(path: Path, **arrays) -> None:
    """``np.savez`` to a temporary sibling, renamed into place (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


#: Where the official inference puts the generations of each split, beside the split's own folder.
GEN_FOLDERS = {"query": "query_gen", "gallery": "bounding_box_test_gen"}
_POSE_DIR = re.compile(r"^pose(\d+)$")


def _pose_folders(folder: Path) -> list[Path]:
    """``folder/pose1 … poseM`` (exactly those, consecutive from 1); ValueError otherwise."""
    found = {int(m.group(1)): p for p in folder.iterdir() if p.is_dir() and (m := _POSE_DIR.match(p.name))}
    if not found or sorted(found) != list(range(1, len(found) + 1)):
        raise ValueError(f"{folder} should hold pose1/ … poseM/ (the official layout), found "
                         f"{sorted(p.name for p in found.values()) or 'none'}")
    return [found[i] for i in range(1, len(found) + 1)]


def _generated_image(pose_dir: Path, original: str) -> Path | None:
    """The generation of ``original`` in ``pose_dir``: the same file name, or the same stem as another image type."""
    name = Path(original).name
    if (pose_dir / name).is_file():
        return pose_dir / name
    return next((q for q in (pose_dir / (Path(name).stem + s) for s in IMAGE_SUFFIXES) if q.is_file()), None)


def generated_layout(ds, gen_root: str | Path | None = None) -> tuple[list[list[str]], list[list[str]]] | None:
    """The official pipeline's generated images of a Market-layout dataset (see the module docstring), under
    ``gen_root`` (default: the dataset's root): ``(query paths (nq, M), gallery paths (ng, M))``, or None when
    neither folder exists.

    Raises:
        ValueError: one folder without the other, pose folders that differ or are not pose1…poseM, or a
            missing generated image (named).
    """
    root = Path(gen_root if gen_root is not None else ds.root)
    dirs = {split: root / sub for split, sub in GEN_FOLDERS.items()}
    present = [d for d in dirs.values() if d.is_dir()]
    if not present:
        return None
    if len(present) != len(dirs):
        absent = next(d.name for d in dirs.values() if not d.is_dir())
        raise ValueError(f"{root} has {present[0].name}/ but no {absent}/: eq. 9 needs the generations of the queries "
                         "and of the gallery (pass --no-generated to ignore them)")
    poses = {split: _pose_folders(d) for split, d in dirs.items()}
    if len(poses["query"]) != len(poses["gallery"]):
        raise ValueError(f"{root}: {GEN_FOLDERS['query']}/ has {len(poses['query'])} pose folders but "
                         f"{GEN_FOLDERS['gallery']}/ has {len(poses['gallery'])}")
    out: dict[str, list[list[str]]] = {}
    missing: list[Path] = []
    for split, records in (("query", ds.query), ("gallery", ds.gallery)):
        rows = []
        for r in records:
            row = []
            for pose_dir in poses[split]:
                found = Path(r.path) if r.pid == 0 else _generated_image(pose_dir, r.path)  # distractor: itself
                if found is None:
                    missing.append(pose_dir / Path(r.path).name)
                row.append(str(found))
            rows.append(row)
        out[split] = rows
    if missing:
        raise ValueError(f"{len(missing)} generated images are missing, e.g. {missing[0]} (the official layout: one "
                         "generation per pose folder under the original file name)")
    return out["query"], out["gallery"]


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".partial.npz")


def extract_features(root: str | Path, backbone: str, out: str | Path, batch_size: int = 64,
                     threads: int | None = None, chunk: int = 512, progress: bool = True,
                     device: str = "cpu", generated: bool = True, gen_root: str | Path | None = None,
                     extra_settings: dict | None = None) -> Path:
    """Extract query + gallery features of the Market-layout ``root`` with ``backbone`` into ``out`` (and, with
    ``generated`` and the official layout beside it — or under ``gen_root`` — the generations' features ``q_gen``
    / ``g_gen``). ``extra_settings`` are added to the file's ``settings``.

    Args:
        root: dataset folder (``query/``, ``bounding_box_test/``).
        backbone: a registered backbone name (:func:`pose2id_demo.reid.list_backbones`).
        out: the ``.npz`` to write.
        batch_size: images per forward pass.
        threads: torch CPU threads (default: torch's).
        chunk: images between two saves of the resumable partial file.

    Returns:
        ``out``.

    Raises:
        ValueError: for a folder that is not Market layout or holds a badly named image (the message names
            it), or an unknown backbone.
    """
    ds = load_market(root, strict=True)  # a bad folder fails before torch loads
    gen = generated_layout(ds, gen_root) if generated else None
    import torch

    from pose2id_demo.reid import get_backbone, resolve_backbone

    resolve_backbone(backbone)  # a registered name, or hf:<model id or folder> (registered now)
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    paths = [r.path for r in ds.query] + [r.path for r in ds.gallery]
    if gen is not None:  # then every generation, reference-major, poses in folder order
        paths += [p for rows in gen for row in rows for p in row]
    digests = [_digest(p) for p in paths]
    bb = get_backbone(backbone, device=device)
    part = partial_path(out)
    t0 = time.time()
    feats = _resumable_features(bb, f"{backbone}|{bb.weights_id}", paths, digests, part, batch_size, chunk,
                                progress=progress, desc=f"extract {backbone}")
    settings = {"backbone": backbone, "weights_id": bb.weights_id, "data": str(ds.root), "num_query": len(ds.query),
                "num_gallery": len(ds.gallery), "seconds": round(time.time() - t0, 1), **(extra_settings or {})}
    _write_feature_file(out, ds, feats, gen, settings)
    part.unlink(missing_ok=True)
    return out


def _load_partial(part: Path, weights: str, total: int) -> dict[tuple[str, str], np.ndarray]:
    """The features a killed run saved in ``part``, keyed by (path, digest); none when they were made with other
    weights or the file cannot be read."""
    done: dict[tuple[str, str], np.ndarray] = {}
    if part.exists():
        try:
            with np.load(part, allow_pickle=False) as z:
                if str(z["weights_id"]) == weights:
                    done = {(str(p), str(d)): f for p, d, f in zip(z["paths"], z["digests"], z["feats"])}
        except (OSError, KeyError, ValueError) as e:
            logger.warning("ignoring unreadable partial file %s (%s)", part, e)
        logger.info("%s: resuming, %d of %d images already extracted", part.name, len(done), total)
    return done


def _resumable_features(bb, weights: str, paths: list[str], digests: list[str], part: Path, batch_size: int,
                        chunk: int, progress: bool, desc: str) -> np.ndarray:
    """Features ``(len(paths), d)`` float32 of the images ``paths`` (each distinct (path, digest) extracted
    once), resuming from the partial file ``part`` and saving to it every ``chunk`` images."""
    done = _load_partial(part, weights, len(paths))
    first = {}  # each distinct (path, digest) once: a distractor's own image stands in for all its poses
    for i, key in enumerate(zip(paths, digests)):
        first.setdefault(key, i)
    todo = [i for key, i in first.items() if key not in done]
    bar = None
    if progress:
        bar = tqdm(total=len(first), initial=len(first) - len(todo), desc=desc, unit="img")
    for s in range(0, len(todo), chunk):
        idx = todo[s:s + chunk]
        images = []
        for i in idx:
            with Image.open(paths[i]) as im:
                images.append(im.convert("RGB"))
        feats = bb.extract(images, batch_size=batch_size)
        for i, f in zip(idx, feats):
            done[(paths[i], digests[i])] = f
        keys = list(done)
        _save_npz(part, paths=np.array([k[0] for k in keys]), digests=np.array([k[1] for k in keys]),
                  feats=np.stack([done[k] for k in keys]), weights_id=np.array(weights))
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return np.stack([done[(p, d)] for p, d in zip(paths, digests)]).astype(np.float32)


def _write_feature_file(out: Path, ds, feats: np.ndarray, gen, settings: dict) -> None:
    """The feature file ``out``: ``feats`` holds the queries', the gallery's and then (with the generated layout
    ``gen``) every generation's features, reference-major; ``settings`` is stored as JSON."""
    nq, n = len(ds.query), len(ds.query) + len(ds.gallery)
    extra = {}
    if gen is not None:
        m = len(gen[0][0]) if gen[0] else len(gen[1][0])
        g = feats[n:].reshape(n, m, -1)
        extra = {"q_gen": g[:nq], "g_gen": g[nq:]}
        made = {"poses": m, "folders": list(GEN_FOLDERS.values()),
                "distractors": "their own image for every pose, as the official evaluation"}
        settings = {**settings, "generated": made}
    feats = feats[:n]
    rel = lambda rs: np.array([str(Path(r.path).relative_to(ds.root)) for r in rs])  # noqa: E731
    _save_npz(out, **extra, q_feats=feats[:nq], g_feats=feats[nq:],
              q_pids=np.array([r.pid for r in ds.query], np.int64),
              g_pids=np.array([r.pid for r in ds.gallery], np.int64),
              q_camids=np.array([r.camid for r in ds.query], np.int64),
              g_camids=np.array([r.camid for r in ds.gallery], np.int64),
              q_paths=rel(ds.query), g_paths=rel(ds.gallery), settings=np.array(json.dumps(settings)))
    logger.info("wrote %s: %d queries, %d gallery, d=%d%s", out, nq, len(ds.gallery), feats.shape[1],
                f", {extra['q_gen'].shape[1]} generations each" if extra else "")


def run(args) -> int:
    """``python -m pose2id_demo extract`` (parsed in :mod:`pose2id_demo.cli`); a bad folder or file name is
    one ``error:`` line and status 2."""
    import sys

    logging.getLogger("pose2id_demo").setLevel(logging.INFO)
    try:
        out = extract_features(args.data, args.backbone, args.out, batch_size=args.batch_size, threads=args.threads,
                               generated=not args.no_generated)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} (python -m pose2id_demo eval {out} [--gen GEN.npz, the file 'generate' writes])")
    return 0

