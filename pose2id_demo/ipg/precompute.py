"""Precompute IPG generations for a dataset and their ReID features (paper §3.2.4, eq. 9 inputs).

    python -m pose2id_demo generate --data ROOT --ipg DIR|tiny --backbone NAME --out GEN.npz
    python -m pose2id_demo.ipg.precompute --task standard --backbones synthped-reid [--steps 20]

The first form works on any Market-layout folder (:func:`generate_features`); the second renders the
SynthPed task if needed and writes ``assets/features/synthped-<task>-<backbone>-gen.npz``.

Several processes, GPUs or machines (the convention of diffusers' distributed inference)::

    accelerate launch --multi_gpu --num_processes N -m pose2id_demo generate --data ROOT --ipg hub ...

splits the references between the N processes (whole batches, dealt round-robin, so every batch is the one a
single process would run), each generating into its own cache file on its own device; after a barrier the
first process merges the caches and writes the one feature file — byte for byte the file of a
single-process run (the ``.npz`` is written with fixed zip timestamps and no timing in it). Without a GPU the
processes run on the CPU and talk over gloo. ``--shard K/N`` does the same split by hand (run the N shards
anywhere, then once without ``--shard`` to merge). SynthPed's three
tasks share one gallery: the standard task's files hold its generations, and the occluded and infrared files
hold their queries' only and name the standard file as their gallery source (:func:`read_generated`).

For every query and gallery image (the reader's order, as in
``pose2id_demo.reid.features.dataset_features``: distractors in, junk out), the IPG — the shipped tiny one,
another saved pipeline folder, or the official release (``--ipg hub[:REPO@REV]`` or its folder,
:mod:`pose2id_demo.ipg.official`) — generates the person in the 8 representative poses
(``pose2id_demo.poses.representative.load_representative_poses``; paper §3.2.3) with IFR on, CFG 3.5 and seed
42 (paper §4.1; 12580, the official inference's, with the official weights; the number of DDIM steps is a flag
and is recorded). The generated
images are cached (uint8 npz under ``cache_dir()/ipg/``) so that further backbones or the quality bench can
reuse them, and for each backbone ``assets/features/<task-file>-<backbone>-gen.npz`` is written with

- ``q_gen (nq, 8, d)``, ``g_gen (ng, 8, d)`` — float16 raw features of the generations (same order as
  ``q_paths`` / ``g_paths``, poses in ``pose_names`` order);
- ``q_paths``, ``g_paths`` — the images they were made from, relative to the benchmark root;
- ``settings`` — a JSON string (model, steps, guidance, seed, use_ifr, pose names, image size). The
  generation time is logged, not stored, so that the file depends on its inputs only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from pose2id_demo import lazy

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
    logger.info("generation cache %s: %d of %d references already there", cache, len(done), len(paths))
    todo = [p for p in paths if p not in done]
    last_save = time.time()
    t0 = time.time()
    bar = None
    if progress and todo:
        bar = tqdm(total=len(paths), initial=len(paths) - len(todo), unit="ref",
                   desc=f"generate ({len(poses)} poses per reference)")

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
        if bar is not None:
            bar.update(len(chunk))
        if time.time() - last_save > 60:
            save()
            last_save = time.time()
    if bar is not None:
        bar.close()
    if todo:
        save()
        logger.info("generated %d references in %.1f s; cached in %s", len(todo), time.time() - t0, cache)
    return np.stack([done[p] for p in paths])


def generation_files(ds, images_out: Path, n_poses: int) -> list[tuple[str, list[Path]]]:
    """For ``--images-out``: every query and non-distractor gallery image with the files its generations go to, in
    the official layout (``query_gen/pose{k}/``, ``bounding_box_test_gen/pose{k}/``; PNG under the original's
    stem, lossless). Distractors get none: the official evaluation, and ``extract``, use their own image."""
    from pose2id_demo.reid.extract import GEN_FOLDERS

    jobs = []
    for split, records in (("query", ds.query), ("gallery", ds.gallery)):
        for r in records:
            if r.pid != 0:
                stem = Path(r.path).stem + ".png"
                jobs.append((r.path, [images_out / GEN_FOLDERS[split] / f"pose{k}" / stem
                                      for k in range(1, n_poses + 1)]))
    return jobs


def write_generations(pipe, jobs: Sequence[tuple[str, list[Path]]], poses, steps: int, guidance: float, seed: int,
                      refs_per_batch: int = 4) -> int:
    """Generate ``jobs`` (reference, its per-pose output files) whose files are not all there yet, writing each
    image atomically (a killed run leaves whole files only; a rerun resumes). Returns the references generated."""
    todo = [(ref, outs) for ref, outs in jobs if not all(o.is_file() for o in outs)]
    bar = None
    if todo:
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="ref",
                   desc=f"generate ({len(poses)} poses per reference, PNG files)")
    for s in range(0, len(todo), refs_per_batch):
        chunk = todo[s:s + refs_per_batch]
        refs = [PIL.Image.open(ref).convert("RGB") for ref, _ in chunk]
        ims = pipe(refs, poses, num_inference_steps=steps, guidance_scale=guidance, seed=seed, use_ifr=True,
                   output_type="np").images
        ims = (np.asarray(ims) * 255).round().astype(np.uint8).reshape(len(chunk), len(poses), *ims.shape[1:])
        for (_, outs), gens in zip(chunk, ims):
            for out, g in zip(outs, gens):
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
                PIL.Image.fromarray(g).save(tmp)
                os.replace(tmp, out)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return len(todo)


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


def gen_features(backbone, gens: np.ndarray, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Raw features ``(N, P, d)`` of generations ``(N, P, H, W, 3)`` (resized to the backbone's input)."""
    n, p = gens.shape[:2]
    flat = [PIL.Image.fromarray(g) for g in gens.reshape(n * p, *gens.shape[2:])]
    return backbone.extract(flat, batch_size=batch_size, progress=progress).reshape(n, p, -1)


def resolve_ipg(ipg: str | Path | None) -> Path:
    """``tiny`` (or None) → the shipped ``assets/models/ipg-tiny``; otherwise a folder that must exist."""
    from pose2id_demo.paths import MODELS_DIR

    if ipg is None or str(ipg) == "tiny":
        return MODELS_DIR / "ipg-tiny"
    path = Path(ipg)
    if not path.is_dir():
        raise ValueError(f"IPG folder {path} does not exist (give a pipeline folder, the official release's folder, "
                         "hub[:REPO@REV] or 'tiny')")
    return path


def is_official(ipg: str | Path | None) -> bool:
    """Whether ``ipg`` names the official release: ``hub[:REPO@REV]``, or a folder holding its ``.pth`` files."""
    from pose2id_demo.ipg import hub
    from pose2id_demo.ipg.official import OFFICIAL_FILES

    if ipg is None or str(ipg) == "tiny":
        return False
    if hub.parse_hub_spec(ipg) is not None:
        return True
    folder = Path(ipg)
    return all((folder / f).is_file() or (folder / "pretrained" / f).is_file() for f in OFFICIAL_FILES.values())


def load_generator(ipg: str | Path | None, device: str = "cpu") -> tuple[Any, str, str]:
    """The pipeline named by ``ipg`` (:func:`resolve_ipg`, or the official release) on ``device``, its short
    hash (caches are keyed by it) and its name for the settings."""
    from pose2id_demo.ipg import hub
    from pose2id_demo.ipg.pipeline import Pose2IDPipeline

    if is_official(ipg):
        from pose2id_demo.ipg import official

        try:
            release = official.open_release(ipg).fetch()
        except (official.ReleaseFileError, hub.HubError) as exc:
            raise ValueError(str(exc)) from None
        pipe = official.load_official(release, device=device)
        name, mhash = f"official {release.source}", "official-" + release.identity()
    else:
        model_dir = resolve_ipg(ipg)
        pipe = Pose2IDPipeline.from_pretrained(model_dir, device=device)
        name, mhash = str(Path(model_dir).name), model_hash(Path(model_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe, mhash, name


def default_seed(ipg: str | Path | None) -> int:
    """42 (paper §4.1) for the tiny or a saved generator, 12580 (the official inference's) for the official one."""
    from pose2id_demo.ipg.official import OFFICIAL_SEED

    return OFFICIAL_SEED if is_official(ipg) else 42


def split_batches(items: Sequence[str], k: int, n: int, batch: int) -> list[str]:
    """Part ``k`` of ``n``: whole batches of ``batch`` items dealt round-robin, so that each batch is exactly one a
    single process would run (same references together: the same numbers, bit for bit)."""
    batches = [list(items[s:s + batch]) for s in range(0, len(items), batch)]
    return [x for b in batches[k::n] for x in b]


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A compressed ``.npz`` that depends on the arrays only (``np.savez_compressed`` stamps the current time into
    every zip entry), written to a temporary sibling and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def _distributed() -> Any:
    """accelerate's process state when started by ``accelerate launch`` with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch

    PartialState = lazy.load("accelerate").PartialState
    # cpu=True without a GPU: accelerate then uses gloo between CPU processes. Generation per process can take
    # hours, so the barrier waits long.
    return PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=48))


def generate_features(root: str | Path, backbones: Sequence[str], out: str | Path, ipg: str | Path | None = None,
                      steps: int = 20, guidance: float = 3.5, seed: int | None = None, shard: str | None = None,
                      refs_per_batch: int = 4, threads: int | None = None, name: str | None = None,
                      extra_settings: dict | None = None, gallery_from: str | Path | None = None,
                      device: str | None = None, images_out: str | Path | None = None) -> list[Path]:
    """IPG generations in the 8 representative poses for every query and gallery image of the
    Market-layout ``root`` (distractors included, junk dropped), and their features per backbone.

    Generations are cached (resumable, keyed by reference path and digest) under ``cache_dir()/ipg/``,
    named after ``name`` (default: the folder's name). ``shard="K/N"`` only generates part K of N (whole
    batches dealt round-robin, :func:`split_batches`) into a shard cache and returns ``[]``: run N of these in
    parallel, then once without ``shard`` to merge them and write the features. Under ``accelerate launch``
    with several processes the same happens by itself: process K generates part K on its device, and after a
    barrier process 0 merges and writes (the others return ``[]``). ``seed=None``: 42, or 12580 with the
    official weights (:func:`default_seed`). ``device``: default the process's accelerator, else the CPU.

    ``images_out``: instead of the in-memory cache (which holds every generation: fine at 64 × 32, some 70 GB
    for Market-1501 at the official 512 × 256), write the generations as PNG files in the official layout under
    ``images_out`` (:func:`generation_files`; resumable file by file) and, once they are all there, read them
    back with ``extract`` (:func:`pose2id_demo.reid.extract.extract_features`): the file written per backbone is
    then a whole feature file — ``q_feats`` … ``g_camids``, ``q_gen``, ``g_gen`` — that ``eval`` reads as it is.

    ``out``: the ``.npz`` for one backbone; with several, ``<out stem>-<backbone>.npz`` each (or ``out`` with its
    ``{backbone}`` placeholder filled in).

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
    part = _check_arguments(backbones, ipg, shard)
    seed = default_seed(ipg) if seed is None else int(seed)
    part, state, device = _process_share(part, device, threads)
    pipe, mhash, model_name = load_generator(ipg, device)
    q_paths, g_paths = [r.path for r in ds.query], [r.path for r in ds.gallery]
    names, poses = _representative_poses()
    cache = generation_cache_path(name or Path(ds.root).name, mhash, steps, guidance, seed, True)
    made = {"model_sha": mhash, "steps": steps, "guidance_scale": guidance, "seed": seed}
    shared = {b: _check_gallery_source(_per_backbone(gallery_from, b), b, made, _relative(g_paths, ds.root))
              for b in backbones} if gallery_from is not None else None
    settings = {"model": model_name, "model_sha": mhash, "steps": steps, "guidance_scale": guidance,
                "seed": seed, "use_ifr": True, "pose_names": names, "image_size": list(pipe.image_size),
                **(extra_settings or {})}
    job = _Job(pipe, poses, steps, guidance, seed, refs_per_batch, part, state, device)
    if images_out is not None:
        if shared:
            raise ValueError("--images-out writes the gallery's generations too: it does not take a gallery source")
        return _generate_images(ds, backbones, Path(out), Path(images_out), job, settings)
    todo = q_paths if shared else q_paths + g_paths
    gens = _generate_cached(job, todo, cache, out)
    if gens is None:
        return []
    logger.info("%d generations; generation time in the caches %.1f s (summed over parts)", len(todo) * len(poses),
                generation_seconds(cache))
    settings = {**settings, "scheduler": "DDIM v-pred zero-SNR trailing", "generations": len(todo) * len(poses)}
    return _write_feature_files(ds, backbones, Path(out), gens, names, settings, shared, job.device)


def _check_arguments(backbones: Sequence[str], ipg: str | Path | None, shard: str | None) -> tuple[int, int] | None:
    """The backbones, the ``--shard`` and the IPG folder checked before anything loads; the part ``(K, N)`` that
    ``shard`` names (None without one)."""
    from pose2id_demo.reid import resolve_backbone

    for b in backbones:
        resolve_backbone(b)  # a registered name, or hf:<model id or folder>
    part = None
    if shard:
        try:
            k, n = (int(v) for v in shard.split("/"))
            assert 0 <= k < n
        except (ValueError, AssertionError):
            raise ValueError(f"--shard must be K/N with 0 <= K < N, got {shard!r}") from None
        part = (k, n)
    if not is_official(ipg):
        resolve_ipg(ipg)  # a missing folder fails before anything loads
    return part


def _process_share(part: tuple[int, int] | None, device: str | None, threads: int | None
                   ) -> tuple[tuple[int, int] | None, Any, str]:
    """This process's part of the references ``(K, N)`` (None: all of them), accelerate's process state under
    ``accelerate launch`` with several processes (else None) and the device it generates on; sets torch's
    thread count."""
    import torch

    state = _distributed()
    if state is not None:
        if part is not None:
            raise ValueError("--shard and accelerate launch both split the work: use one of them")
        part = (state.process_index, state.num_processes)
        device = device or str(state.device)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if threads:
        torch.set_num_threads(int(threads))
    return part, state, device


def _representative_poses() -> tuple[list[str], list]:
    """The names and the poses of the 8 representative poses (paper §3.2.3), in their order."""
    from pose2id_demo.poses.representative import load_representative_poses

    named = load_representative_poses()
    return [pose_name for pose_name, _ in named], [pose for _, pose in named]


def _relative(paths: Sequence[str], root: str | Path) -> np.ndarray:
    """``paths`` relative to the dataset's ``root``, as a string array (the feature files' ``*_paths``)."""
    return np.array([str(Path(p).relative_to(root)) for p in paths])


@dataclass(frozen=True)
class _Job:
    """What one process generates and how: the pipeline and its arguments, and its part of the references."""

    pipe: Any
    poses: list
    steps: int
    guidance: float
    seed: int
    refs_per_batch: int
    part: tuple[int, int] | None  # (K, N): part K of N (split_batches); None: every reference
    state: Any  # accelerate's process state under ``accelerate launch``; None for one process or a --shard part
    device: str

    def mine(self, refs: Sequence[str]) -> list[str]:
        """This process's references of ``refs``."""
        return list(refs) if self.part is None else split_batches(refs, *self.part, self.refs_per_batch)

    def merges(self) -> bool:
        """After this process's part: whether it goes on to merge all parts. Under ``accelerate launch`` every
        process waits for the others and process 0 merges; a ``--shard`` part stops."""
        if self.state is None:
            return False
        self.state.wait_for_everyone()  # every part is written: process 0 reads them all
        return self.state.is_main_process


def _generate_cached(job: _Job, todo: list[str], cache: Path, out: str | Path) -> np.ndarray | None:
    """Generations of ``todo`` (:func:`generate_all`, through ``cache``); when the work is split, this process's
    part goes to its own shard cache first, and None is returned where this process stops after its part."""
    if job.part is not None:
        k, n = job.part
        part = job.mine(todo)
        logger.info("part %d of %d: %d of %d references on %s", k, n, len(part), len(todo), job.device)
        shard_cache = cache.with_name(f"{cache.stem}-shard{k}of{n}.npz")
        generate_all(job.pipe, part, job.poses, job.steps, job.guidance, job.seed, True, shard_cache,
                     refs_per_batch=job.refs_per_batch)
        if job.state is None:
            logger.info("part %d of %d written to %s; when all %d parts are there (POSE2ID_CACHE, %s), run the same "
                        "command without --shard to merge them into %s", k, n, shard_cache, n, shard_cache.parent,
                        out)
        if not job.merges():
            return None
    return generate_all(job.pipe, todo, job.poses, job.steps, job.guidance, job.seed, True, cache,
                        refs_per_batch=job.refs_per_batch)


def _write_feature_files(ds, backbones: Sequence[str], out: Path, gens: np.ndarray, names: list[str],
                         settings: dict, shared: dict[str, Path] | None, device: str) -> list[Path]:
    """One generated-feature file per backbone (:func:`output_path`): the features of ``gens`` (queries then
    gallery, or the queries only when ``shared`` names each backbone's gallery source), the paths, the pose names
    and ``settings`` with the backbone. Returns the files written."""
    from pose2id_demo.reid import get_backbone

    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    nq = len(ds.query)
    q_rel, g_rel = _relative([r.path for r in ds.query], ds.root), _relative([r.path for r in ds.gallery], ds.root)
    for bname in backbones:
        feats = gen_features(get_backbone(bname, device=device), gens, progress=True)
        path = output_path(out, bname, len(backbones))
        arrays = {"q_gen": feats[:nq].astype(np.float16), "q_paths": q_rel, "g_paths": g_rel}
        mine = {**settings, "backbone": bname}
        if shared:
            mine["gallery_from"] = shared[bname].name
        else:
            arrays["g_gen"] = feats[nq:].astype(np.float16)
        write_npz(path, {**arrays, "pose_names": np.array(names), "settings": np.array(json.dumps(mine))})
        logger.info("wrote %s (q_gen %s, gallery %s)", path, feats[:nq].shape,
                    f"from {shared[bname].name}" if shared else feats[nq:].shape)
        written.append(path)
    return written


def _generate_images(ds, backbones: Sequence[str], out: Path, images_out: Path, job: _Job, made: dict) -> list[Path]:
    """The ``images_out`` branch of :func:`generate_features`: files in the official layout, then ``extract``."""
    from pose2id_demo.reid.extract import extract_features

    jobs = generation_files(ds, images_out, len(job.poses))
    if job.part is not None:
        mine = set(job.mine([ref for ref, _ in jobs]))
        jobs = [j for j in jobs if j[0] in mine]
    done = write_generations(job.pipe, jobs, job.poses, job.steps, job.guidance, job.seed, job.refs_per_batch)
    logger.info("%d references generated into %s (%d were there already)", done, images_out, len(jobs) - done)
    if job.part is not None:
        if job.state is None:
            logger.info("part %d of %d written to %s; when all %d parts are there, run the same command without "
                        "--shard to read them into %s", *job.part, images_out, job.part[1], out)
        if not job.merges():
            return []
    return [extract_features(ds.root, bname, output_path(out, bname, len(backbones)), progress=True,
                             device=job.device, gen_root=images_out, extra_settings={"generation": made})
            for bname in backbones]


def output_path(out: Path, backbone: str, n_backbones: int) -> Path:
    """The file for ``backbone``: ``out`` with its ``{backbone}`` placeholder filled in; else ``out`` itself for one
    backbone, ``<out stem>-<backbone>.npz`` for several (``hf:org/model`` → ``hf_org_model``)."""
    from pose2id_demo.reid import backbone_slug

    if "{backbone}" in str(out):
        return _per_backbone(out, backbone)
    return out if n_backbones == 1 else out.with_name(f"{out.stem}-{backbone_slug(backbone)}{out.suffix or '.npz'}")


#: Settings that must agree between a file and the one it takes its gallery from.
SAME_MAKING = ("model_sha", "steps", "guidance_scale", "seed", "backbone")


def _per_backbone(template: str | Path, backbone: str) -> Path:
    """``template`` with its ``{backbone}`` placeholder filled in (itself when it has none)."""
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


def synthped_generated_name(task: str, backbone: str) -> str:
    """The file name of a SynthPed task's generated features for ``backbone``, as this module writes them and the
    app reads them from ``assets/features``."""
    return f"synthped-{task}-{backbone}-gen.npz"


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
                                    refs_per_batch=args.refs_per_batch, threads=args.threads, device=args.device,
                                    images_out=args.images_out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in written:
        with np.load(w, allow_pickle=False) as z:
            whole = "q_feats" in z.files
        if whole:  # --images-out: a whole feature file
            print(f"wrote {w} (features and generated features: python -m pose2id_demo eval {w})")
        else:
            print(f"wrote {w} (generated features: python -m pose2id_demo eval FEATURES.npz --gen {w}, where "
                  f"FEATURES.npz is what 'extract --data {args.data}' wrote)")
    if not written and args.shard:
        print(f"part {args.shard} done (where it went is in the log above); run once more without --shard to "
              f"merge the parts into {args.out}")
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
        gallery_from = out_dir / synthped_generated_name(GALLERY_TASK, "{backbone}")
    generate_features(root, args.backbones, out_dir / synthped_generated_name(args.task, "{backbone}"), ipg=args.model,
                      steps=args.steps, guidance=args.guidance, seed=args.seed, shard=args.shard,
                      refs_per_batch=args.refs_per_batch, threads=args.threads, name=args.task,
                      extra_settings={"task": args.task, "synthped_version": VERSION}, gallery_from=gallery_from)
    return 0


#: The SynthPed task whose generated-feature files hold the shared gallery's generations.
GALLERY_TASK = "standard"


if __name__ == "__main__":
    raise SystemExit(main())
