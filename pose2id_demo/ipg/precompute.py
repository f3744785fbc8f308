"""Precompute IPG generations for a dataset and their ReID features (paper §3.2.4, eq. 9 inputs).

    python -m pose2id_demo generate --data ROOT --ipg DIR|tiny --backbone NAME --out GEN.npz
    python -m pose2id_demo.ipg.precompute --task standard --backbones synthped-reid [--steps 20]

The first form works on any Market-layout folder (:func:`generate_features`); the second renders the
SynthPed task if needed and writes ``assets/features/synthped-<task>-<backbone>-gen.npz``.

For every query and gallery image (the reader's order, as in
``pose2id_demo.reid.features.dataset_features``: distractors in, junk out), the IPG (default the shipped
tiny one) generates the person in the 8 representative poses (``pose2id_demo.poses.representative.load_representative_poses``; paper §3.2.3) with
IFR on, CFG 3.5 and seed 42 (paper §4.1; the number of DDIM steps is a flag and is recorded). The generated
images are cached (uint8 npz under ``cache_dir()/ipg/``) so that further backbones or the quality bench can
reuse them, and for each backbone ``assets/features/<task-file>-<backbone>-gen.npz`` is written with

- ``q_gen (nq, 8, d)``, ``g_gen (ng, 8, d)`` — float16 raw features of the generations (same order as
  ``q_paths`` / ``g_paths``, poses in ``pose_names`` order);
- ``q_paths``, ``g_paths`` — the images they were made from, relative to the benchmark root;
- ``settings`` — a JSON string (model, steps, guidance, seed, use_ifr, pose names, image size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL.Image

logger = logging.getLogger(__name__)


def model_hash(model_dir: Path) -> str:
    """Short sha256 over the model folder's safetensors + json files (identifies the generator)."""
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and p.suffix in (".safetensors", ".json"):
            h.update(p.relative_to(model_dir).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def cache_files(cache: Path) -> list[Path]:
    """The existing files of a generation cache: ``cache`` itself and the shards of ``--shard`` runs."""
    return [c for c in [cache, *sorted(cache.parent.glob(cache.stem + "-shard*.npz"))] if c.exists()]


def file_digest(path: str | Path) -> str:
    """Short sha256 of a file's bytes: a cached generation is reused only for the same reference bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def generate_all(pipe, paths: Sequence[str], poses, steps: int, guidance: float, seed: int, use_ifr: bool,
                 cache: Path, refs_per_batch: int = 4, progress: bool = True) -> np.ndarray:
    """Generations ``(len(paths), len(poses), H, W, 3)`` uint8, resumable through the ``cache`` npz.

    Entries are keyed by path *and* the reference file's digest, so a re-rendered or edited image under an
    old name is generated again (caches written before digests were stored are ignored).
    """
    want = {p: file_digest(p) for p in paths}
    done: dict[str, np.ndarray] = {}
    own_seconds = 0.0  # generation time already spent on this cache file (shards keep their own)
    for c in cache_files(cache):
        z = np.load(c, allow_pickle=False)
        if "digests" not in z.files:
            logger.warning("%s: no reference digests (older format); not reused", c.name)
            continue
        done.update({str(p): g for p, d, g in zip(z["paths"], z["digests"], z["images"]) if want.get(str(p)) == str(d)})
        if c == cache and "seconds" in z.files:
            own_seconds = float(z["seconds"])
    logger.info("%s: %d of %d generations cached", cache.name, len(done), len(paths))
    todo = [p for p in paths if p not in done]
    last_save = time.time()
    t0 = time.time()

    def save() -> None:
        keys = list(done)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, paths=np.array(keys), digests=np.array([want[k] for k in keys]),
                 images=np.stack([done[k] for k in keys]), seconds=np.float64(own_seconds + time.time() - t0))
        tmp.replace(cache)

    for s in range(0, len(todo), refs_per_batch):
        chunk = todo[s:s + refs_per_batch]
        refs = [PIL.Image.open(p).convert("RGB") for p in chunk]
        ims = pipe(refs, poses, num_inference_steps=steps, guidance_scale=guidance, seed=seed, use_ifr=use_ifr,
                   output_type="np").images
        ims = (np.asarray(ims) * 255).round().astype(np.uint8).reshape(len(chunk), len(poses), *ims.shape[1:])
        for p, g in zip(chunk, ims):
            done[p] = g
        if progress and (s // refs_per_batch) % 10 == 0:
            rate = (s + len(chunk)) / max(time.time() - t0, 1e-6)
            logger.info("generated %d/%d references (%.2f refs/s)", s + len(chunk), len(todo), rate)
        if time.time() - last_save > 60:
            save()
            last_save = time.time()
    if todo:
        save()
    return np.stack([done[p] for p in paths])


def generation_seconds(cache: Path) -> float:
    """Generation time recorded in ``cache`` and its ``--shard`` files, summed (shards may have run in
    parallel, so this is processor time spent generating, not wall-clock time)."""
    total = 0.0
    for c in cache_files(cache):
        z = np.load(c, allow_pickle=False)
        total += float(z["seconds"]) if "seconds" in z.files else float("nan")
    return total


def generation_cache_path(task: str, mhash: str, steps: int, guidance: float, seed: int, use_ifr: bool) -> Path:
    from pose2id_demo.paths import cache_dir

    tag = f"{task}-{mhash}-s{steps}-g{guidance:g}-seed{seed}-ifr{int(use_ifr)}"
    return cache_dir() / "ipg" / f"gen-{tag}.npz"


def gen_features(backbone, gens: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Raw features ``(N, P, d)`` of generations ``(N, P, H, W, 3)`` (resized to the backbone's input)."""
    n, p = gens.shape[:2]
    flat = [PIL.Image.fromarray(g) for g in gens.reshape(n * p, *gens.shape[2:])]
    return backbone.extract(flat, batch_size=batch_size).reshape(n, p, -1)


def resolve_ipg(ipg: str | Path | None) -> Path:
    """``tiny`` (or None) → the shipped ``assets/models/ipg-tiny``; otherwise a folder that must exist."""
    from pose2id_demo.paths import MODELS_DIR

    if ipg is None or str(ipg) == "tiny":
        return MODELS_DIR / "ipg-tiny"
    path = Path(ipg)
    if not path.is_dir():
        raise ValueError(f"IPG folder {path} does not exist (give a pipeline folder or 'tiny')")
    return path


def generate_features(root: str | Path, backbones: Sequence[str], out: str | Path, ipg: str | Path | None = None,
                      steps: int = 20, guidance: float = 3.5, seed: int = 42, shard: str | None = None,
                      refs_per_batch: int = 4, threads: int | None = None, name: str | None = None,
                      extra_settings: dict | None = None) -> list[Path]:
    """IPG generations in the 8 representative poses for every query and gallery image of the
    Market-layout ``root`` (distractors included, junk dropped), and their features per backbone.

    Generations are cached (resumable, keyed by reference path and digest) under ``cache_dir()/ipg/``,
    named after ``name`` (default: the folder's name). ``shard="K/N"`` only generates every N-th reference
    starting at K into a shard cache and returns ``[]``: run N of these in parallel, then once without
    ``shard`` to merge them and write the features. ``out``: the ``.npz`` for one backbone; with several,
    ``<out stem>-<backbone>.npz`` each (or ``out`` with its ``{backbone}`` placeholder filled in).

    Returns:
        The written feature files.
    """
    from pose2id_demo.data.market import load_market

    ds = load_market(root, strict=True)  # a bad folder fails before torch and the model load
    import torch

    from pose2id_demo.ipg.pipeline import Pose2IDPipeline
    from pose2id_demo.poses.representative import load_representative_poses
    from pose2id_demo.reid import get_backbone, list_backbones

    unknown = [b for b in backbones if b not in list_backbones()]
    if unknown:
        raise ValueError(f"unknown backbone(s) {unknown}; available: {', '.join(list_backbones())}")
    model_dir = resolve_ipg(ipg)
    if threads:
        torch.set_num_threads(int(threads))
    pipe = Pose2IDPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    q_paths, g_paths = [r.path for r in ds.query], [r.path for r in ds.gallery]
    named = load_representative_poses()
    names, poses = [n for n, _ in named], [p for _, p in named]
    mhash = model_hash(Path(model_dir))
    cache = generation_cache_path(name or Path(ds.root).name, mhash, steps, guidance, seed, True)
    if shard:
        try:
            k, n = (int(v) for v in shard.split("/"))
            assert 0 <= k < n
        except (ValueError, AssertionError):
            raise ValueError(f"--shard must be K/N with 0 <= K < N, got {shard!r}") from None
        generate_all(pipe, (q_paths + g_paths)[k::n], poses, steps, guidance, seed, True,
                     cache.with_name(f"{cache.stem}-shard{k}of{n}.npz"), refs_per_batch=refs_per_batch)
        return []
    gens = generate_all(pipe, q_paths + g_paths, poses, steps, guidance, seed, True, cache,
                        refs_per_batch=refs_per_batch)
    settings = {"model": str(Path(model_dir).name), "model_sha": mhash, "steps": steps, "guidance_scale": guidance,
                "seed": seed, "use_ifr": True, "pose_names": names, "image_size": list(pipe.image_size),
                **(extra_settings or {}), "scheduler": "DDIM v-pred zero-SNR trailing",
                "generation_seconds": round(generation_seconds(cache), 1),
                "generations": len(q_paths + g_paths) * len(poses)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = lambda ps: np.array([str(Path(p).relative_to(ds.root)) for p in ps])  # noqa: E731
    written = []
    nq = len(q_paths)
    for bname in backbones:
        feats = gen_features(get_backbone(bname), gens)
        if "{backbone}" in str(out):
            path = Path(str(out).format(backbone=bname))
        else:
            path = out if len(backbones) == 1 else out.with_name(f"{out.stem}-{bname}{out.suffix or '.npz'}")
        np.savez_compressed(path, q_gen=feats[:nq].astype(np.float16), g_gen=feats[nq:].astype(np.float16),
                            q_paths=rel(q_paths), g_paths=rel(g_paths), pose_names=np.array(names),
                            settings=np.array(json.dumps({**settings, "backbone": bname})))
        logger.info("wrote %s (q_gen %s, g_gen %s)", path, feats[:nq].shape, feats[nq:].shape)
        written.append(path)
    return written


def run_generate(args) -> int:
    """``python -m pose2id_demo generate`` (parsed in :mod:`pose2id_demo.cli`); bad input is one ``error:``
    line and status 2."""
    logging.getLogger("pose2id_demo").setLevel(logging.INFO)
    try:
        written = generate_features(args.data, args.backbone or ["synthped-reid"], args.out, ipg=args.ipg,
                                    steps=args.steps, guidance=args.guidance, seed=args.seed, shard=args.shard,
                                    refs_per_batch=args.refs_per_batch, threads=args.threads)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in written:
        print(f"wrote {w}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Precompute IPG generations + their ReID features for a SynthPed task")
    ap.add_argument("--task", default="standard")
    ap.add_argument("--backbones", nargs="+", default=["synthped-reid"])
    ap.add_argument("--model", type=Path, default=None, help="IPG folder (default: assets/models/ipg-tiny)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--refs-per-batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--shard", default=None, metavar="K/N",
                    help="only generate every N-th image starting at K into a shard cache (run N of these in "
                         "parallel, then once without --shard to merge and extract features)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the npz (default: assets/features)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)

    from pose2id_demo.data.synthped import VERSION, ensure_benchmark
    from pose2id_demo.paths import ASSETS

    root = ensure_benchmark(args.task)
    out_dir = args.out or ASSETS / "features"
    generate_features(root, args.backbones, out_dir / f"synthped-{args.task}-{{backbone}}-gen.npz", ipg=args.model,
                      steps=args.steps, guidance=args.guidance, seed=args.seed, shard=args.shard,
                      refs_per_batch=args.refs_per_batch, threads=args.threads, name=args.task,
                      extra_settings={"task": args.task, "synthped_version": VERSION})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
