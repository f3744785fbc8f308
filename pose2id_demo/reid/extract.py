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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from pose2id_demo.data.market import load_market

logger = logging.getLogger(__name__)


def _digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _save_npz(path: Path, **arrays) -> None:
    """``np.savez`` to a temporary sibling, renamed into place (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".partial.npz")


def extract_features(root: str | Path, backbone: str, out: str | Path, batch_size: int = 64,
                     threads: int | None = None, chunk: int = 512, progress: bool = True,
                     device: str = "cpu") -> Path:
    """Extract query + gallery features of the Market-layout ``root`` with ``backbone`` into ``out``.

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
    import torch
    from PIL import Image

    from pose2id_demo.reid import get_backbone, list_backbones

    if backbone not in list_backbones():
        raise ValueError(f"unknown backbone {backbone!r}; available: {', '.join(list_backbones())}")
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    records = [("q", r) for r in ds.query] + [("g", r) for r in ds.gallery]
    paths = [r.path for _, r in records]
    digests = [_digest(p) for p in paths]
    bb = get_backbone(backbone, device=device)
    part = partial_path(out)
    done: dict[tuple[str, str], np.ndarray] = {}
    if part.exists():
        try:
            with np.load(part, allow_pickle=False) as z:
                if str(z["weights_id"]) == f"{backbone}|{bb.weights_id}":
                    done = {(str(p), str(d)): f for p, d, f in zip(z["paths"], z["digests"], z["feats"])}
        except (OSError, KeyError, ValueError) as e:
            logger.warning("ignoring unreadable partial file %s (%s)", part, e)
        logger.info("%s: resuming, %d of %d images already extracted", part.name, len(done), len(paths))
    todo = [i for i, (p, d) in enumerate(zip(paths, digests)) if (p, d) not in done]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc=f"extract {backbone}", unit="img")
    t0 = time.time()
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
                  feats=np.stack([done[k] for k in keys]), weights_id=np.array(f"{backbone}|{bb.weights_id}"))
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    feats = np.stack([done[(p, d)] for p, d in zip(paths, digests)]).astype(np.float32)
    nq = len(ds.query)
    rel = lambda rs: np.array([str(Path(r.path).relative_to(ds.root)) for r in rs])  # noqa: E731
    settings = {"backbone": backbone, "weights_id": bb.weights_id, "data": str(ds.root), "num_query": nq,
                "num_gallery": len(ds.gallery), "seconds": round(time.time() - t0, 1)}
    _save_npz(out, q_feats=feats[:nq], g_feats=feats[nq:],
              q_pids=np.array([r.pid for r in ds.query], np.int64),
              g_pids=np.array([r.pid for r in ds.gallery], np.int64),
              q_camids=np.array([r.camid for r in ds.query], np.int64),
              g_camids=np.array([r.camid for r in ds.gallery], np.int64),
              q_paths=rel(ds.query), g_paths=rel(ds.gallery), settings=np.array(json.dumps(settings)))
    part.unlink(missing_ok=True)
    logger.info("wrote %s: %d queries, %d gallery, d=%d", out, nq, len(ds.gallery), feats.shape[1])
    return out


def run(args) -> int:
    """``python -m pose2id_demo extract`` (parsed in :mod:`pose2id_demo.cli`); a bad folder or file name is
    one ``error:`` line and status 2."""
    import sys

    logging.getLogger("pose2id_demo").setLevel(logging.INFO)
    try:
        out = extract_features(args.data, args.backbone, args.out, batch_size=args.batch_size, threads=args.threads)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0

