"""Precompute IPG generations for a dataset and their ReID features (paper §3.2.4, eq. 9 inputs).

    python -m pose2id_demo generate --data ROOT --ipg DIR|tiny --backbone NAME --out GEN.npz
    python -m pose2id_demo.ipg.precompute --task standard --backbones synthped-reid [--steps 20]

The first form works on any Market-layout folder (:func:`generate_features`); the second renders the
SynthPed task if needed and writes ``assets/features/synthped-<task>-<backbone>-gen.npz``. SynthPed's three
tasks share one gallery: the standard task's files hold its generations, and the occluded and infrared files
hold their queries' only and name the standard file as their gallery source (:func:`read_generated`).

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
                      extra_settings: dict | None = None, gallery_from: str | Path | None = None) -> list[Path]:
    """IPG generations in the 8 representative poses for every query and gallery image of the
    Market-layout ``root`` (distractors included, junk dropped), and their features per backbone.

    Generations are cached (resumable, keyed by reference path and digest) under ``cache_dir()/ipg/``,
    named after ``name`` (default: the folder's name). ``shard="K/N"`` only generates every N-th reference
    starting at K into a shard cache and returns ``[]``: run N of these in parallel, then once without
    ``shard`` to merge them and write the features. ``out``: the ``.npz`` for one backbone; with several,
    ``<out stem>-<backbone>.npz`` each (or ``out`` with its ``{backbone}`` placeholder filled in).

    ``gallery_from``: a generated-feature file of another folder with *the same gallery* (``{backbone}``
    placeholder allowed; SynthPed's three tasks share one): only the queries are generated, and the file
    written names that one for its gallery (``settings["gallery_from"]``, read back by :func:`read_generated`)
    instead of repeating ``g_gen``. It must have been made with the same generator, steps, guidance and seed
    and list the same gallery images (checked here); that the gallery *images* are the same bytes is the
    caller's to check (:func:`same_gallery`).

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
    rel = lambda ps: np.array([str(Path(p).relative_to(ds.root)) for p in ps])  # noqa: E731
    made = {"model_sha": mhash, "steps": steps, "guidance_scale": guidance, "seed": seed}
    shared = {b: _check_gallery_source(_per_backbone(gallery_from, b), b, made, rel(g_paths))
              for b in backbones} if gallery_from is not None else None
    todo = q_paths if shared else q_paths + g_paths
    if shard:
        try:
            k, n = (int(v) for v in shard.split("/"))
            assert 0 <= k < n
        except (ValueError, AssertionError):
            raise ValueError(f"--shard must be K/N with 0 <= K < N, got {shard!r}") from None
        generate_all(pipe, todo[k::n], poses, steps, guidance, seed, True,
                     cache.with_name(f"{cache.stem}-shard{k}of{n}.npz"), refs_per_batch=refs_per_batch)
        return []
    gens = generate_all(pipe, todo, poses, steps, guidance, seed, True, cache, refs_per_batch=refs_per_batch)
    settings = {"model": str(Path(model_dir).name), "model_sha": mhash, "steps": steps, "guidance_scale": guidance,
                "seed": seed, "use_ifr": True, "pose_names": names, "image_size": list(pipe.image_size),
                **(extra_settings or {}), "scheduler": "DDIM v-pred zero-SNR trailing",
                "generation_seconds": round(generation_seconds(cache), 1),
                "generations": len(todo) * len(poses)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    nq = len(q_paths)
    for bname in backbones:
        feats = gen_features(get_backbone(bname), gens)
        if "{backbone}" in str(out):
            path = Path(str(out).format(backbone=bname))
        else:
            path = out if len(backbones) == 1 else out.with_name(f"{out.stem}-{bname}{out.suffix or '.npz'}")
        arrays = {"q_gen": feats[:nq].astype(np.float16), "q_paths": rel(q_paths), "g_paths": rel(g_paths)}
        mine = {**settings, "backbone": bname}
        if shared:
            mine["gallery_from"] = shared[bname].name
        else:
            arrays["g_gen"] = feats[nq:].astype(np.float16)
        np.savez_compressed(path, **arrays, pose_names=np.array(names), settings=np.array(json.dumps(mine)))
        logger.info("wrote %s (q_gen %s, gallery %s)", path, feats[:nq].shape,
                    f"from {shared[bname].name}" if shared else feats[nq:].shape)
        written.append(path)
    return written


#: Settings that must agree between a file and the one it takes its gallery from.
SAME_MAKING = ("model_sha", "steps", "guidance_scale", "seed", "backbone")


def _per_backbone(template: str | Path, backbone: str) -> Path:
    return Path(str(template).format(backbone=backbone)) if "{backbone}" in str(template) else Path(template)


def _settings_of(z) -> dict:
    try:
        return json.loads(str(z["settings"]))
    except (KeyError, ValueError):
        return {}


def _check_gallery_source(path: Path, backbone: str, made: dict, g_paths: np.ndarray) -> Path:
    """``path`` as a gallery source for ``backbone`` (see :func:`generate_features`); ValueError naming
    what differs."""
    if not path.is_file():
        raise ValueError(f"gallery source {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        if "g_gen" not in z.files:
            raise ValueError(f"gallery source {path.name} has no g_gen of its own")
        theirs, paths = _settings_of(z), [str(p) for p in z["g_paths"]]
    want = {**made, "backbone": backbone}
    differ = [k for k in SAME_MAKING if theirs.get(k) != want[k]]
    if differ:
        raise ValueError(f"gallery source {path.name} was made with other {', '.join(differ)} "
                         f"({', '.join(f'{k}={theirs.get(k)!r}' for k in differ)})")
    if paths != [str(p) for p in g_paths]:
        raise ValueError(f"gallery source {path.name} lists another gallery than this folder's")
    return path


def same_gallery(root_a: str | Path, root_b: str | Path) -> bool:
    """Whether two Market-layout folders hold the same gallery images, name for name and byte for byte."""
    from pose2id_demo.data.market import load_market

    ga, gb = load_market(root_a).gallery, load_market(root_b).gallery
    na, nb = [Path(r.path).name for r in ga], [Path(r.path).name for r in gb]
    return na == nb and all(file_digest(a.path) == file_digest(b.path) for a, b in zip(ga, gb))


def read_generated(path: str | Path) -> dict:
    """A generated-feature file as ``{q_gen, g_gen, q_paths, g_paths, settings}`` (raw float32 features).

    A file written with ``gallery_from`` takes ``g_gen`` from that file — looked up by name in the same
    folder only — after checking that it was made the same way (:data:`SAME_MAKING`) and lists the same
    gallery. Raises ValueError when the file or its gallery source does not fit.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if "q_gen" not in z.files:
            raise ValueError(f"{path.name} has no q_gen")
        settings = _settings_of(z)
        out = {"q_gen": np.asarray(z["q_gen"], np.float32), "settings": settings,
               **{k: [str(s) for s in z[k]] for k in ("q_paths", "g_paths") if k in z.files}}
        if "g_gen" in z.files:
            out["g_gen"] = np.asarray(z["g_gen"], np.float32)
            return out
    source = settings.get("gallery_from")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{path.name} has neither g_gen nor a gallery source")
    src = path.parent / Path(source).name
    if src == path or not src.is_file():
        raise ValueError(f"{path.name}: its gallery source {Path(source).name} is not beside it")
    with np.load(src, allow_pickle=False) as z:
        if "g_gen" not in z.files:
            raise ValueError(f"{src.name} (gallery source of {path.name}) has no g_gen")
        theirs = _settings_of(z)
        differ = [k for k in SAME_MAKING if theirs.get(k) != settings.get(k)]
        if differ:
            raise ValueError(f"{src.name} (gallery source of {path.name}) was made with other {', '.join(differ)}")
        g_paths = [str(s) for s in z["g_paths"]] if "g_paths" in z.files else None
        if g_paths is not None and out.get("g_paths") is not None and g_paths != out["g_paths"]:
            raise ValueError(f"{src.name} (gallery source of {path.name}) lists another gallery")
        out["g_gen"] = np.asarray(z["g_gen"], np.float32)
    return out


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
    gallery_from = None
    if args.task != GALLERY_TASK:  # the three tasks share one gallery: generate it once, with the standard task
        if not same_gallery(root, ensure_benchmark(GALLERY_TASK)):
            raise SystemExit(f"error: the {args.task} gallery differs from the {GALLERY_TASK} one; run without "
                             "a shared gallery is not supported for SynthPed")
        gallery_from = out_dir / f"synthped-{GALLERY_TASK}-{{backbone}}-gen.npz"
    generate_features(root, args.backbones, out_dir / f"synthped-{args.task}-{{backbone}}-gen.npz", ipg=args.model,
                      steps=args.steps, guidance=args.guidance, seed=args.seed, shard=args.shard,
                      refs_per_batch=args.refs_per_batch, threads=args.threads, name=args.task,
                      extra_settings={"task": args.task, "synthped_version": VERSION}, gallery_from=gallery_from)
    return 0


#: The SynthPed task whose generated-feature files hold the shared gallery's generations.
GALLERY_TASK = "standard"


if __name__ == "__main__":
    raise SystemExit(main())
