"""Precompute IPG generations for a SynthPed task and their ReID features (paper §3.2.4, eq. 9 inputs).

    python -m pose2id_demo.ipg.precompute --task standard --backbones synthped-reid [--steps 20]

For every query and gallery image of the task (the image list of
``pose2id_demo.reid.features.dataset_features``), the shipped tiny IPG generates the person in the 8
representative poses (``pose2id_demo.poses.representative.load_representative_poses``; paper §3.2.3) with
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
from pathlib import Path
from typing import Sequence

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

    import torch

    from pose2id_demo.data.synthped import ensure_benchmark
    from pose2id_demo.ipg.pipeline import Pose2IDPipeline
    from pose2id_demo.paths import ASSETS, MODELS_DIR
    from pose2id_demo.poses.representative import load_representative_poses
    from pose2id_demo.reid import get_backbone
    from pose2id_demo.reid.features import dataset_features

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = args.model or MODELS_DIR / "ipg-tiny"
    pipe = Pose2IDPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    root = ensure_benchmark(args.task)
    ref_feats = dataset_features(args.backbones[0], args.task)
    q_paths, g_paths = [str(p) for p in ref_feats["q_paths"]], [str(p) for p in ref_feats["g_paths"]]
    named = load_representative_poses()
    names, poses = [n for n, _ in named], [p for _, p in named]
    mhash = model_hash(Path(model_dir))
    cache = generation_cache_path(args.task, mhash, args.steps, args.guidance, args.seed, True)
    if args.shard:
        k, n = (int(v) for v in args.shard.split("/"))
        shard_cache = cache.with_name(f"{cache.stem}-shard{k}of{n}.npz")
        generate_all(pipe, (q_paths + g_paths)[k::n], poses, args.steps, args.guidance, args.seed, True, shard_cache,
                     refs_per_batch=args.refs_per_batch)
        return 0
    gens = generate_all(pipe, q_paths + g_paths, poses, args.steps, args.guidance, args.seed, True, cache,
                        refs_per_batch=args.refs_per_batch)
    gen_s = generation_seconds(cache)
    settings = {"model": str(Path(model_dir).name), "model_sha": mhash, "steps": args.steps,
                "guidance_scale": args.guidance, "seed": args.seed, "use_ifr": True, "pose_names": names,
                "image_size": list(pipe.image_size), "task": args.task, "scheduler": "DDIM v-pred zero-SNR trailing",
                "generation_seconds": round(gen_s, 1), "generations": len(q_paths + g_paths) * len(poses)}
    out_dir = args.out or ASSETS / "features"
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = lambda ps: np.array([str(Path(p).relative_to(root)) for p in ps])  # noqa: E731
    for name in args.backbones:
        bb = get_backbone(name)
        feats = gen_features(bb, gens)
        nq = len(q_paths)
        path = out_dir / f"synthped-{args.task}-{name}-gen.npz"
        np.savez_compressed(path, q_gen=feats[:nq].astype(np.float16), g_gen=feats[nq:].astype(np.float16),
                            q_paths=rel(q_paths), g_paths=rel(g_paths), pose_names=np.array(names),
                            settings=np.array(json.dumps(settings)))
        logger.info("wrote %s (q_gen %s, g_gen %s)", path, feats[:nq].shape, feats[nq:].shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
