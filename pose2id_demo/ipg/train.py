"""Train the IPG (paper §3.2.2 "Training strategy", §4.1) on a Market-1501-format root.

    python -m pose2id_demo.ipg.train --data ROOT --config tiny --vae AE --out DIR --seed 0 [--resume]

Three parts, each on a screen: :class:`TrainConfig` (every option, recorded in ``DIR/train_args.json``),
:func:`build_run` (device, frozen ReID and autoencoder, the preset's modules, their EMA, the optimizer,
the pairs of :mod:`pose2id_demo.ipg.pairs`) and :func:`train` (the loop: lr schedule, loss, step, EMA,
checkpoints, exports).

Loss (:func:`training_loss`): MSE between the denoising UNet's output and the v-prediction target (the
released scheduler: zero terminal SNR, ``prediction_type="v_prediction"``; eq. 6 of the paper writes the ε
form), with condition dropout (``uncond_ratio``: the IFR input becomes the feature of the all-zeros ReID
input, the unconditional branch of CFG at inference), ``noise_offset`` 0.05, optional min-SNR-γ weighting
(off by default: with zero terminal SNR its v-prediction weight is 0 at t = T), AdamW with weight decay
1e-2 and gradient clipping 1.0; the exported weights are an exponential moving average.
``--identity-weight w`` adds ᾱ_t · (1 − cos) between the frozen ReID features of the decoded x̂0 prediction
and of the target.

Learning rate: the preset's (``sd15``: the paper's 1e-5 for fine-tuning SD1.5; ``tiny``: 5e-4 from
scratch), a linear warm-up, constant, then an optional cosine decay (:func:`lr_factor`; step-based).

Resumable (:mod:`pose2id_demo.ipg.checkpoint`): every ``--ckpt-minutes`` a checkpoint and an export of the
EMA pipeline to ``DIR/pipeline/``; ``--resume`` continues bit for bit in the data / noise stream and keeps
the architecture and data options the run started with. ``--milestone-every N`` also keeps the EMA
pipeline of every N-th step in ``DIR/milestones/``. Stops at ``--max-steps``, ``--max-minutes`` (this
segment, wall clock), ``--budget-minutes`` (all segments, wall clock) or ``--max-cpu-minutes`` (all
segments, CPU time); ``DIR/state.json`` records each segment's device, minutes and CPU-minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pose2id_demo.data import load_market
from pose2id_demo.data.synthped.ground_truth import BACKGROUNDS
from pose2id_demo.ipg.checkpoint import TRAINED, checkpoint_dir, load_checkpoint, save_checkpoint, truncate_loss_log
from pose2id_demo.ipg.configs import PRESETS, IPGPreset, build_components, get_preset
from pose2id_demo.ipg.pairs import PairData
from pose2id_demo.ipg.pipeline import Pose2IDPipeline, load_vae, make_scheduler, vae_scale_factor
from pose2id_demo.ipg.reference_attention import reference_attention
from pose2id_demo.poses.keypoints import load_pose_json
from pose2id_demo.reid import get_backbone

logger = logging.getLogger("pose2id_demo.ipg.train")

# Architecture and data options a resumed run takes from its checkpoint rather than from the command line.
RUN_FIXED = ("pose_widths", "pair_views", "pose_weight_decay", "render_pairs", "render_per_reference",
             "render_background")


def training_loss(m: dict, scheduler, ref, trg, skel, feats, gen: torch.Generator, noise_offset: float,
                  snr_gamma: float, scaling: float, autocast_dtype: torch.dtype | None = None,
                  identity_weight: float = 0.0, reid_model=None) -> torch.Tensor:
    """v-prediction MSE of one batch. Noise and timesteps are drawn from ``gen`` on the CPU and then moved to
    the batch's device, so the random stream is the same on every device (a CUDA segment continues a CPU
    checkpoint's stream). ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the UNets, IFR and Pose Guider
    under autocast on the batch's device; the loss is computed in float32.

    ``identity_weight`` > 0 adds an identity loss: the clean image the prediction implies (x̂0 = √ᾱ·z_t −
    √(1−ᾱ)·v̂, decoded by the frozen autoencoder) and the target image go through the frozen ReID backbone
    ``reid_model`` (its ``normalize`` then ``model``); the loss is ᾱ_t·(1 − cos) (ᾱ weights the steps whose
    x̂0 is a picture, not noise), averaged over the batch and added with that weight."""
    vae = m["vae"]
    device = trg.device
    with torch.no_grad():
        z0 = vae.encode(trg).latent_dist.sample() * scaling
        zr = vae.encode(ref).latent_dist.mean * scaling
    b = z0.shape[0]
    noise = torch.randn(z0.shape, generator=gen)
    if noise_offset > 0:
        noise = noise + noise_offset * torch.randn((b, z0.shape[1], 1, 1), generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=gen)
    noise, t = noise.to(device), t.to(device)
    zt = scheduler.add_noise(z0, noise, t)
    target = scheduler.get_velocity(z0, noise, t)  # v-prediction
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        tokens = m["ifr"](feats)
        pose_fea = m["pose_guider"](skel)
        with reference_attention(m["reference_unet"], m["denoising_unet"]):
            m["reference_unet"](zr, torch.zeros_like(t), encoder_hidden_states=tokens, return_dict=False)
            pred = m["denoising_unet"](zt, t, encoder_hidden_states=tokens, pose_cond_fea=pose_fea,
                                       return_dict=False)[0]
    err = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    ac = scheduler.alphas_cumprod.to(device)[t]
    if snr_gamma > 0:
        snr = ac / (1 - ac).clamp_min(1e-8)
        err = err * torch.minimum(snr, torch.full_like(snr, snr_gamma)) / (snr + 1)
    loss = err.mean()
    if identity_weight > 0:
        a = ac.sqrt().view(-1, 1, 1, 1)
        s = (1 - ac).sqrt().view(-1, 1, 1, 1)
        x0 = vae.decode((a * zt - s * pred.float()) / scaling).sample
        with torch.no_grad():
            f_trg = F.normalize(reid_model.model(reid_model.normalize((trg + 1) / 2)).float(), dim=1)
        f_gen = F.normalize(reid_model.model(reid_model.normalize(((x0 + 1) / 2).clamp(0, 1))).float(), dim=1)
        loss = loss + identity_weight * (ac * (1 - (f_gen * f_trg).sum(1))).mean()
    return loss


def init_from_pipeline(m: dict, directory: Path, pose_gain: float = 1.0) -> None:
    """Load into each module of ``m`` its weights from a saved pipeline folder when the architectures match
    exactly (same tensor names and shapes); a module whose architecture differs stays freshly initialised
    (a half-copied module — e.g. another Pose Guider's non-zero ``conv_out`` on fresh early layers — would
    start from noise instead of from "no signal")."""
    for n in TRAINED:
        f = directory / n / "diffusion_pytorch_model.safetensors"
        if not f.exists():
            continue
        src, own = load_file(f), m[n].state_dict()
        if set(src) == set(own) and all(src[k].shape == own[k].shape for k in own):
            m[n].load_state_dict(src)
            logger.info("init %s from %s", n, directory)
        else:
            logger.info("init %s: architecture differs from %s, starting fresh", n, directory)
    if pose_gain != 1.0:  # E_pose x gain from the start (the pose bench's pose_scale probe)
        with torch.no_grad():
            m["pose_guider"].conv_out.weight.mul_(pose_gain)
            m["pose_guider"].conv_out.bias.mul_(pose_gain)


def lr_factor(step: int, warmup: int, anneal_start: int | None, anneal_steps: int, anneal_min: float) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, constant, then an optional cosine
    decay from ``anneal_start`` to ``anneal_min`` over ``anneal_steps`` (held there afterwards).

    Step-based, so a ``--resume`` run that adds the anneal replays exactly with ``--max-steps``."""
    f = min(1.0, (step + 1) / warmup)
    if anneal_start is not None and step >= anneal_start:
        u = min(1.0, (step - anneal_start) / max(1, anneal_steps))
        f *= anneal_min + (1.0 - anneal_min) * 0.5 * (1.0 + math.cos(math.pi * u))
    return f


def make_pipeline(ema: dict, vae, reid) -> Pose2IDPipeline:
    pipe = Pose2IDPipeline(ema["reference_unet"], ema["denoising_unet"], ema["pose_guider"], ema["ifr"], vae,
                           make_scheduler(), reid=reid)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_grid(pipe: Pose2IDPipeline, root: str | Path, path: Path, n_refs: int = 4, n_poses: int = 6,
                steps: int = 20) -> None:
    """Test-query references (rows) × test-gallery poses; per row: reference, IFR-on gens, IFR-off gens."""
    ds = load_market(root)
    rng = np.random.default_rng(0)
    refs = [ds.query[i] for i in rng.choice(len(ds.query), n_refs, replace=False)]
    gal = [r for r in ds.gallery if Path(r.path).with_suffix(".json").exists()]
    poses = [load_pose_json(Path(gal[i].path).with_suffix(".json")) for i in rng.choice(len(gal), n_poses, replace=False)]
    h, w = pipe.image_size
    canvas = PIL.Image.new("RGB", (w * (1 + 2 * n_poses) + 4, h * n_refs), "white")
    for row, rec in enumerate(refs):
        ref = PIL.Image.open(rec.path).convert("RGB")
        canvas.paste(ref.resize((w, h), PIL.Image.BOX), (0, row * h))
        for k, use_ifr in enumerate((True, False)):
            ims = pipe(ref, poses, num_inference_steps=steps, use_ifr=use_ifr).images
            for j, im in enumerate(ims):
                canvas.paste(im, (w * (1 + k * n_poses + j) + 4 * k, row * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.resize((canvas.width * 2, canvas.height * 2), PIL.Image.NEAREST).save(path)


# ----------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Every option of a training run (the command line's flags, same names)."""

    data: str
    out: Path
    config: str = "tiny"
    vae: str | None = None
    resume: bool = False
    seed: int = 0
    reid: str = "synthped-reid"
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-2
    pose_weight_decay: float | None = None
    uncond_ratio: float = 0.1
    noise_offset: float = 0.05
    snr_gamma: float = 0.0
    ema_decay: float = 0.995
    anneal_start: int | None = None
    anneal_steps: int = 2000
    anneal_min: float = 0.05
    cleanse_quantile: float = 0.005
    cleanse_band: str = "per_identity"
    pair_views: str = "any"
    render_pairs: float = 0.0
    render_per_reference: int = 4
    render_background: str = "reference"
    identity_weight: float = 0.0
    pose_widths: list[int] | None = None
    init_from: Path | None = None
    init_pose_gain: float = 1.0
    threads: int = 1
    device: str = "auto"
    precision: str = "auto"
    max_steps: int | None = None
    max_minutes: float | None = None
    budget_minutes: float | None = None
    max_cpu_minutes: float | None = None
    milestone_every: int | None = None
    ckpt_minutes: float = 5.0
    sample_minutes: float = 12.0
    log_every: int = 25


_HELP = {
    "data": "Market-1501-format root (bounding_box_train/ with pose jsons)",
    "config": "IPG preset (pose2id_demo.ipg.configs)",
    "vae": "trained autoencoder folder (tiny presets: python -m pose2id_demo.ipg.autoencoder)",
    "reid": "frozen ReID backbone feeding IFR (and judging the identity loss)",
    "pose_weight_decay": "weight decay of the Pose Guider (default: --weight-decay)",
    "anneal_start": "from this step on, cosine-decay the learning rate to --anneal-min x lr over --anneal-steps",
    "cleanse_band": "eq. 31's band for S_ref (pose2id_demo.cleansing)",
    "pair_views": "'different': the reference faces another direction than the target whenever the identity allows",
    "render_pairs": "SynthPed roots: share of each batch whose target is rendered (pose2id_demo.ipg.rendered_pairs)",
    "render_per_reference": "rendered targets drawn per reference",
    "render_background": "rendered targets on the reference's own camera and background, or on one canonical shot",
    "identity_weight": "weight of the identity loss, alpha-bar_t (1 - cos) of --reid features (0: off)",
    "pose_widths": "Pose Guider widths; one more stage than the preset's reads a 2x larger skeleton",
    "init_from": "start a fresh run from a saved pipeline folder (modules whose shapes match)",
    "init_pose_gain": "with --init-from: multiply the loaded Pose Guider's conv_out by this",
    "threads": "torch CPU threads",
    "device": "auto (CUDA if available, else CPU), cpu, cuda, cuda:N",
    "precision": "auto: bf16 autocast on a CUDA device that supports it, fp32 on the CPU",
    "max_minutes": "stop this segment after N wall-clock minutes",
    "budget_minutes": "stop when all segments together reach N wall-clock minutes",
    "max_cpu_minutes": "stop when all segments together have used N CPU-minutes (all threads)",
    "milestone_every": "also export the EMA pipeline to DIR/milestones/step_XXXXXX/ every N steps",
    "sample_minutes": "write a sample grid to DIR/samples/ every N minutes and at the end (0: never)",
}
_CHOICES = {"cleanse_band": ("per_identity", "pooled"), "pair_views": ("any", "different"),
            "render_background": BACKGROUNDS, "precision": ("auto", "fp32", "bf16")}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The command line as a :class:`TrainConfig`: one flag per field, its type and default from the field."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = {**_CHOICES, "config": tuple(PRESETS)}  # the registry as it is now
    for f in dataclasses.fields(TrainConfig):
        flag, kind = "--" + f.name.replace("_", "-"), str(f.type)
        kw: dict[str, Any] = {"help": _HELP.get(f.name), "choices": choices.get(f.name)}
        if f.type in ("bool", bool):
            ap.add_argument(flag, action="store_true", help=kw["help"])
            continue
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = f.default
        kw["type"] = (Path if "Path" in kind else int if "int" in kind else float if "float" in kind else str)
        if "list" in kind:
            kw["nargs"] = "+"
        ap.add_argument(flag, **kw)
    return TrainConfig(**vars(ap.parse_args(argv)))


# ----------------------------------------------------------------------------- builder
@dataclass
class Run:
    """What :func:`build_run` makes and :func:`train` drives."""

    cfg: TrainConfig
    preset: IPGPreset
    device: torch.device
    amp_dtype: torch.dtype | None
    reid: Any
    id_reid: Any
    models: dict
    ema: dict
    opt: torch.optim.Optimizer
    data: PairData
    scaling: float
    image_size: tuple[int, int]
    pose_size: tuple[int, int]
    rng: np.random.Generator
    gen: torch.Generator
    step: int = 0
    elapsed: float = 0.0
    segments: list = dataclasses.field(default_factory=list)


def _take_run_state(cfg: TrainConfig) -> tuple[IPGPreset, dict]:
    """The preset and the fixed options of the run being resumed (the command line's for a new run)."""
    state_path = cfg.out / "checkpoint" / "state.json"
    st = json.loads(state_path.read_text()) if cfg.resume and state_path.exists() else {}
    preset = IPGPreset.from_dict(st["preset"]) if "preset" in st else get_preset(cfg.config)
    if st:
        for k in RUN_FIXED:
            setattr(cfg, k, st.get(k, "reference" if k == "render_background" else getattr(cfg, k)))
    return preset, st


def _frozen_reid(cfg: TrainConfig, device: torch.device) -> tuple[Any, Any]:
    reid = get_backbone(cfg.reid, device="cpu")
    id_reid = get_backbone(cfg.reid, device=device) if cfg.identity_weight > 0 else None  # the loss's judge
    for b in (reid, id_reid) if id_reid is not None else (reid,):
        b.model.eval().requires_grad_(False)
    return reid, id_reid


def build_run(cfg: TrainConfig) -> Run:
    """Device, frozen ReID and autoencoder, the preset's modules and their EMA, optimizer, pairs, RNGs;
    a resumed run also gets its checkpoint's weights, optimizer and RNG states."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    preset, st = _take_run_state(cfg)
    if not preset.trainable_here:
        raise SystemExit(f"{preset.name} training needs SD1.5 + sd-vae-ft-mse weights and a GPU; not available here")
    if cfg.vae is None:
        raise SystemExit(f"--vae DIR is required for the {preset.name} preset (python -m pose2id_demo.ipg.autoencoder)")
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"
                                           and torch.cuda.is_bf16_supported())
    reid, id_reid = _frozen_reid(cfg, device)
    vae = load_vae(cfg.vae).requires_grad_(False)
    torch.manual_seed(cfg.seed)  # the initialisation does not depend on what was loaded (or cached) before
    comps = build_components(preset, reid_dim=reid.dim, vae=vae, pose_widths=cfg.pose_widths)
    f = comps["pose_guider"].downsample_factor // vae_scale_factor(vae)
    pose_size = (preset.image_size[0] * f, preset.image_size[1] * f)
    data = PairData(cfg.data, preset.image_size, pose_size, reid, cfg.out / "cache", quantile=cfg.cleanse_quantile,
                    cleanse_band=cfg.cleanse_band, pair_views=cfg.pair_views, render_pairs=cfg.render_pairs,
                    render_per_reference=cfg.render_per_reference, seed=cfg.seed,
                    render_background=cfg.render_background)
    if st:  # keep the latent scale the run started with
        vae.register_to_config(scaling_factor=st["scaling"])
    elif vae.config.scaling_factor == 1.0:  # SD-style: 1 / std of the data latents
        std = float((data.images.astype(np.float32) / 127.5 - 1.0).std())
        vae.register_to_config(scaling_factor=round(1.0 / std, 4))
    m = {n: comps[n].train() for n in TRAINED}
    if cfg.init_from is not None and not st:
        init_from_pipeline(m, cfg.init_from, cfg.init_pose_gain)
    ema = build_components(preset, reid_dim=reid.dim, vae=vae, pose_widths=cfg.pose_widths)
    for n in TRAINED:
        ema[n].load_state_dict(m[n].state_dict())
        ema[n].eval().requires_grad_(False)
        m[n].to(device)
        ema[n].to(device)
    m["vae"] = vae.to(device)
    run = Run(cfg, preset, device, torch.bfloat16 if use_bf16 else None, reid, id_reid, m, ema, _optimizer(cfg, m, preset),
              data, vae.config.scaling_factor, preset.image_size, pose_size, np.random.default_rng(cfg.seed),
              torch.Generator().manual_seed(cfg.seed))
    if cfg.resume and checkpoint_dir(cfg.out) is not None:
        s = load_checkpoint(cfg.out, m, ema, run.opt, run.rng, run.gen)
        run.step, run.elapsed, run.segments = s["step"], s["elapsed"], s.get("segments", [])
        logger.info("resumed at step %d (%.1f min trained)", run.step, run.elapsed / 60)
        truncate_loss_log(cfg.out / "loss.csv", run.step)
    return run


def _optimizer(cfg: TrainConfig, m: dict, preset: IPGPreset) -> torch.optim.Optimizer:
    groups: list = [p for n in TRAINED for p in m[n].parameters()]  # one group unless the Pose Guider differs
    if cfg.pose_weight_decay is not None:
        groups = [{"params": [p for n in TRAINED if n != "pose_guider" for p in m[n].parameters()]},
                  {"params": list(m["pose_guider"].parameters()), "weight_decay": cfg.pose_weight_decay}]
    return torch.optim.AdamW(groups, lr=cfg.lr or preset.lr, weight_decay=cfg.weight_decay, foreach=True)


# ----------------------------------------------------------------------------- loop
class _Segment:
    """This invocation's record in ``state.json`` → ``segments`` and its stopping rules."""

    def __init__(self, run: Run) -> None:
        cfg, dev = run.cfg, run.device
        self.run, self.start, self.cpu_start = run, time.time(), time.process_time()
        self.prior_cpu = sum(float(s.get("cpu_minutes", 0.0)) for s in run.segments)
        self.record = {"first_step": run.step + 1, "last_step": run.step, "device": str(dev),
                       "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
                       or platform.machine(), "precision": "bf16" if run.amp_dtype else "fp32",
                       "threads": cfg.threads if dev.type == "cpu" else None, "batch_size": cfg.batch_size or run.preset.batch_size,
                       "minutes": 0.0, "cpu_minutes": 0.0, "identity_weight": cfg.identity_weight,
                       "render_pairs": cfg.render_pairs, "render_background": cfg.render_background,
                       "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        run.segments.append(self.record)

    def stop_reason(self) -> str | None:
        cfg, now = self.run.cfg, time.time()
        if cfg.max_steps is not None and self.run.step >= cfg.max_steps:
            return "max-steps"
        if cfg.max_minutes is not None and (now - self.start) / 60 >= cfg.max_minutes:
            return "max-minutes"
        if cfg.budget_minutes is not None and (self.run.elapsed + now - self.start) / 60 >= cfg.budget_minutes:
            return "budget"
        if cfg.max_cpu_minutes is not None and self.cpu_minutes() >= cfg.max_cpu_minutes:
            return "max-cpu-minutes"
        return None

    def cpu_minutes(self) -> float:
        """CPU-minutes of all segments so far (all threads of this process)."""
        return self.prior_cpu + (time.process_time() - self.cpu_start) / 60

    def milestone(self, pipe: Pose2IDPipeline, loss_avg: float | None) -> None:
        """The EMA pipeline of this step in ``DIR/milestones/step_XXXXXX/``, with its step, CPU-minutes and
        wall minutes so far (``milestone.json``): the points of the training curve."""
        run = self.run
        folder = run.cfg.out / "milestones" / f"step_{run.step:06d}"
        pipe.save_pretrained(folder)
        (folder / "milestone.json").write_text(json.dumps({
            "step": run.step, "cpu_minutes": round(self.cpu_minutes(), 2),
            "minutes": round((run.elapsed + time.time() - self.start) / 60, 2),
            "loss_ema": None if loss_avg is None else round(loss_avg, 5)}))

    def state(self) -> dict:
        """The run's state.json fields besides the step, time and RNGs."""
        run, cfg = self.run, self.run.cfg
        self.record.update(last_step=run.step, minutes=round((time.time() - self.start) / 60, 2),
                           cpu_minutes=round((time.process_time() - self.cpu_start) / 60, 2))  # all threads
        return {"scaling": run.scaling, "segments": run.segments,
                "pose_widths": list(run.models["pose_guider"].config.block_out_channels),
                **{k: getattr(cfg, k) for k in RUN_FIXED if k != "pose_widths"},
                "image_size": list(run.image_size), "pose_size": list(run.pose_size), "preset": run.preset.to_dict()}


def train_step(run: Run, params: list, scheduler) -> float:
    """One optimisation step on a fresh batch; returns the loss."""
    cfg, m = run.cfg, run.models
    for g in run.opt.param_groups:
        g["lr"] = (cfg.lr or run.preset.lr) * lr_factor(run.step, run.preset.warmup, cfg.anneal_start,
                                                        cfg.anneal_steps, cfg.anneal_min)
    batch = (x.to(run.device) for x in run.data.batch(run.rng, cfg.batch_size or run.preset.batch_size, cfg.uncond_ratio))
    loss = training_loss(m, scheduler, *batch, run.gen, cfg.noise_offset, cfg.snr_gamma, run.scaling,
                         autocast_dtype=run.amp_dtype, identity_weight=cfg.identity_weight, reid_model=run.id_reid)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    run.opt.step()
    decay = min(cfg.ema_decay, (1 + run.step) / (10 + run.step))
    with torch.no_grad():
        for n in TRAINED:
            torch._foreach_lerp_(list(run.ema[n].parameters()), list(m[n].parameters()), 1 - decay)
    run.step += 1
    return float(loss.detach())


def train(run: Run) -> str:
    """The training loop until a stopping rule holds; checkpoints and EMA exports on the way and at the end.
    Returns the stopping rule's name."""
    cfg, out = run.cfg, run.cfg.out
    seg, scheduler = _Segment(run), make_scheduler()
    params = [p for n in TRAINED for p in run.models[n].parameters()]
    pipe = make_pipeline(run.ema, run.models["vae"], run.reid)
    (out / "train_args.json").write_text(json.dumps({**dataclasses.asdict(cfg), "out": str(out), "argv": sys.argv,
                                                     "lr": cfg.lr or run.preset.lr,
                                                     "batch_size": cfg.batch_size or run.preset.batch_size},
                                                    indent=1, default=str))

    def save() -> None:
        save_checkpoint(out, run.models, run.ema, run.opt, run.step, run.elapsed + time.time() - seg.start, run.rng,
                        run.gen, seg.state())
        pipe.save_pretrained(out / "pipeline.tmp")
        shutil.rmtree(out / "pipeline", ignore_errors=True)
        (out / "pipeline.tmp").rename(out / "pipeline")

    last_ckpt = last_sample = t_log = time.time()
    loss_avg = None
    with open(out / "loss.csv", "a") as csv:
        while (reason := seg.stop_reason()) is None:
            lv = train_step(run, params, scheduler)
            loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
            csv.write(f"{run.step},{lv:.5f}\n")
            if run.step % cfg.log_every == 0:
                now = time.time()
                logger.info("step %d loss %.4f (avg %.4f) %.2f s/step, %.1f min total", run.step, lv, loss_avg,
                            (now - t_log) / cfg.log_every, (run.elapsed + now - seg.start) / 60)
                t_log = now
                csv.flush()
            if time.time() - last_ckpt >= cfg.ckpt_minutes * 60:
                save()
                last_ckpt = time.time()
            if cfg.sample_minutes > 0 and time.time() - last_sample >= cfg.sample_minutes * 60:
                sample_grid(pipe, cfg.data, out / "samples" / f"step_{run.step:06d}.png")
                last_sample = time.time()
            if cfg.milestone_every and run.step % cfg.milestone_every == 0:
                seg.milestone(pipe, loss_avg)
    save()
    if cfg.sample_minutes > 0:
        sample_grid(pipe, cfg.data, out / "samples" / f"step_{run.step:06d}.png")
    logger.info("stopped (%s) at step %d after %.1f min of training; pipeline in %s", reason, run.step,
                (run.elapsed + time.time() - seg.start) / 60, out / "pipeline")
    return reason


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    run = build_run(cfg)
    n_params = {n: f"{sum(p.numel() for p in run.models[n].parameters()) / 1e6:.2f}M" for n in TRAINED}
    logger.info("device %s, preset %s: params %s; batch %d, lr %g, scaling %.4f, image %s, pose %s", run.device,
                run.preset.name, n_params, cfg.batch_size or run.preset.batch_size, cfg.lr or run.preset.lr,
                run.scaling, run.image_size, run.pose_size)
    train(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
