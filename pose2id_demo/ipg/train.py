"""Train the IPG (paper §3.2.2 "Training strategy", §4.1) on a Market-1501-format root.

    python -m pose2id_demo.ipg.train --data ROOT --config tiny --out DIR --seed 0 [--resume] [--max-minutes N]

Per step, for B random identities i: a reference image from S_i^ref (Mahalanobis-cleansed, eq. 31 of the
supplementary, :mod:`pose2id_demo.cleansing`) and a different target image from S_i^trg (cleansed and
PoseValid, eq. 32, :mod:`pose2id_demo.poses.posevalid`); the target's pose is its keypoint json drawn as an
OpenPose skeleton. The loss is the MSE between the denoising UNet's output and the v-prediction target
(the scheduler is the released one: zero-terminal-SNR, ``prediction_type="v_prediction"``; eq. 6 of the
paper writes the ε form). As released: condition dropout (``uncond_ratio`` 0.1: the IFR input becomes the
feature of the all-zeros ReID input, exactly the unconditional branch used by CFG at inference),
``noise_offset`` 0.05, optional min-SNR-γ weighting (``--snr-gamma``; off by default because with
zero terminal SNR its v-prediction weight min(SNR, γ)/(SNR+1) is 0 at t = T, which would leave the first
sampling step untrained), AdamW with weight decay 1e-2, gradient clipping 1.0. Random horizontal flip and
random erasing (Zhong et al.) on the reference only. The IFR input is the frozen ReID feature ("synthped-reid"
by default) of the (possibly flipped) reference, computed once before training; random erasing is applied to
the reference UNet's input only.

Two options beyond the paper's recipe, both off by default: ``--render-pairs P`` (SynthPed roots) takes a
share P of each batch's targets from the renderer — the reference's own person, camera and background in
another training image's pose (:mod:`pose2id_demo.ipg.rendered_pairs`) — and ``--identity-weight w`` adds
an identity loss on the decoded x̂0 prediction (:func:`training_loss`). Rendered pairs raise fidelity on the
pose bench but teach the model to copy the reference's background, which makes eq. 9 worse
(``assets/models/ipg-tiny/README.md``, findings 7–9).

Learning rate: the paper's 1e-5 for ``sd15`` (fine-tuning SD1.5); the ``tiny`` configuration trains from
scratch in minutes and uses 5e-4 with a 200-step warm-up, plus an exponential moving average of the weights
(decay 0.995, i.e. a window of ~200 steps, suited to a run of a few thousand steps) which is what gets exported.

Resumable: every ``--ckpt-minutes`` the script writes ``DIR/checkpoint/`` (model + EMA + optimizer tensors as
safetensors, step, cumulative time and RNG states as json — no pickle) and exports the EMA pipeline to
``DIR/pipeline/``; ``--resume`` continues from it bit-for-bit in the data/noise stream. A sample grid
(test references × test poses) is written to ``DIR/samples/step_XXXXXX.png`` every ``--sample-minutes``.
Progress: one log line every ``--log-every`` steps and ``DIR/loss.csv``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from pose2id_demo.ipg.configs import SD15_IMAGE_SIZE, TINY_IMAGE_SIZE, build_components
from pose2id_demo.ipg.pipeline import Pose2IDPipeline, load_vae, make_scheduler, render_pose, vae_scale_factor
from pose2id_demo.ipg.reference_attention import reference_attention
from pose2id_demo.poses.keypoints import Pose, load_pose_json

logger = logging.getLogger("pose2id_demo.ipg.train")

TRAINED = ("reference_unet", "denoising_unet", "pose_guider", "ifr")
DEFAULTS = {
    "tiny": dict(lr=5e-4, batch_size=16, warmup=200),
    "sd15": dict(lr=1e-5, batch_size=4, warmup=1),
}


# ----------------------------------------------------------------------------- data
class PairData:
    """In-memory training set: images (at the model's size), skeletons, ReID features, ref/target sets."""

    def __init__(self, root: str | Path, image_size: tuple[int, int], pose_size: tuple[int, int], reid,
                 cache: Path, quantile: float = 0.005, pair_views: str = "any",
                 cleanse_band: str = "per_identity", render_pairs: float = 0.0, render_per_reference: int = 4,
                 seed: int = 0, render_background: str = "reference") -> None:
        from pose2id_demo.cleansing import mahalanobis_filter
        from pose2id_demo.data import load_market
        from pose2id_demo.poses.posevalid import pose_valid
        from pose2id_demo.poses.representative import DIRECTIONS, classify_direction, frontal_width_from

        records = load_market(root).train
        if not records:
            raise ValueError(f"{root}: no training images (bounding_box_train/)")
        h, w = image_size
        ph, pw = pose_size
        self.pids = np.array([r.pid for r in records])
        full = [PIL.Image.open(r.path).convert("RGB") for r in records]
        self.images = np.stack([np.asarray(im.resize((w, h), PIL.Image.BOX)) for im in full])  # (N, h, w, 3) uint8
        poses: list[Pose | None] = []
        for r in records:
            js = Path(r.path).with_suffix(".json")
            poses.append(load_pose_json(js) if js.exists() else None)
        self.skeletons = np.stack([render_pose(p, pw, ph) if p is not None else np.zeros((ph, pw, 3), np.uint8)
                                   for p in poses])
        fw = frontal_width_from(poses)
        self.directions = np.array([DIRECTIONS.index(d) if p is not None and (d := classify_direction(p, fw))
                                    else -1 for p in poses])
        if pair_views not in ("any", "different"):
            raise ValueError(f"pair_views must be 'any' or 'different', got {pair_views!r}")
        self.pair_views = pair_views
        feats = self._reid_features(reid, full, cache)
        self.feats, self.feats_flip, self.zero_feat = feats
        keep = mahalanobis_filter(self.feats, self.pids, quantile=quantile, band=cleanse_band).keep
        valid = np.array([p is not None and pose_valid(p)[0] for p in poses])
        self.ref_sets: list[np.ndarray] = []
        self.trg_sets: list[np.ndarray] = []
        for pid in np.unique(self.pids):
            idx = np.flatnonzero(self.pids == pid)
            ref, trg = idx[keep[idx]], idx[keep[idx] & valid[idx]]
            if len(ref) >= 1 and len(trg) >= 1 and len(np.union1d(ref, trg)) >= 2:
                self.ref_sets.append(ref)
                self.trg_sets.append(trg)
        logger.info("training data: %d images, %d identities; kept %d/%d (cleansing), %d/%d PoseValid",
                    len(records), len(self.ref_sets), int(keep.sum()), len(keep), int(valid.sum()), len(valid))
        logger.info("pair sampler (%s views): P(reference and target face the same way) = %.3f", pair_views,
                    self.same_view_rate())
        if not 0.0 <= render_pairs <= 1.0:
            raise ValueError(f"render_pairs must be in [0, 1], got {render_pairs}")
        self.render_pairs = render_pairs
        self.rendered = None
        if render_pairs > 0:
            from pose2id_demo.ipg.rendered_pairs import RenderedPairs

            self.rendered = RenderedPairs([r.path for r in records], np.concatenate(self.ref_sets),
                                          np.concatenate(self.trg_sets), image_size, render_per_reference, seed, cache,
                                          background=render_background)

    def reference_choices(self, i: int, t: int) -> np.ndarray:
        """Reference candidates of identity ``i`` for target ``t``: its S_ref without ``t`` (and, with
        ``pair_views="different"``, without images facing the target's direction, when any are left)."""
        choices = self.ref_sets[i][self.ref_sets[i] != t]
        if self.pair_views == "different":
            other = choices[self.directions[choices] != self.directions[t]]
            if len(other):
                choices = other
        return choices

    def same_view_rate(self) -> float:
        """Probability that a sampled (reference, target) pair shares the view direction (exact, not sampled)."""
        p = []
        for i, trg in enumerate(self.trg_sets):
            for t in trg:
                c = self.reference_choices(i, int(t))
                c = c if len(c) else self.ref_sets[i]
                p.append(np.mean(self.directions[c] == self.directions[t]) / len(trg))
        return float(np.sum(p) / len(self.trg_sets))

    @staticmethod
    @torch.no_grad()
    def _reid_features(reid, images: list[PIL.Image.Image], cache: Path):
        path = cache / "reid_features.npz"
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if z["feats"].shape[0] == len(images) and str(z["backbone"]) == str(getattr(reid, "name", "")):
                return z["feats"], z["feats_flip"], z["zero"]
        out, out_flip = [], []
        for s in range(0, len(images), 128):
            chunk = images[s:s + 128]
            out.append(reid.model(reid.preprocess(chunk)).float().numpy())
            out_flip.append(reid.model(reid.preprocess([im.transpose(PIL.Image.FLIP_LEFT_RIGHT) for im in chunk]))
                            .float().numpy())
        h, w = getattr(reid, "input_size", (256, 128))
        zero = reid.model(torch.zeros(1, 3, h, w)).float().numpy()[0]
        feats, feats_flip = np.concatenate(out), np.concatenate(out_flip)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, feats=feats, feats_flip=feats_flip, zero=zero, backbone=str(getattr(reid, "name", "")))
        return feats, feats_flip, zero

    def batch(self, rng: np.random.Generator, b: int, uncond_ratio: float):
        """One training batch as tensors (reference in [-1, 1] augmented, target in [-1, 1], skeleton in [0, 1])."""
        ids = rng.integers(0, len(self.ref_sets), b)
        refs, trgs, skels, feats = [], [], [], []
        for i in ids:
            if self.render_pairs > 0 and rng.random() < self.render_pairs:  # the pool exists iff P > 0
                # the reference's own camera and background in another image's pose: no flip (the rendered
                # background is the unflipped one), random erasing on the reference as for real pairs
                r = int(rng.choice(self.ref_sets[i]))
                j = int(rng.integers(self.rendered.target_of.shape[1]))
                refs.append(random_erasing(self.images[r].astype(np.float32) / 127.5 - 1.0, rng))
                feats.append(self.zero_feat if rng.random() < uncond_ratio else self.feats[r])
                trgs.append(self.rendered.image_of(r, j).astype(np.float32) / 127.5 - 1.0)
                skels.append(self.skeletons[self.rendered.target_of[r, j]].astype(np.float32) / 255.0)
                continue
            t = int(rng.choice(self.trg_sets[i]))
            choices = self.reference_choices(i, t)
            r = int(rng.choice(choices)) if len(choices) else int(rng.choice(self.ref_sets[i]))
            img = self.images[r].astype(np.float32) / 127.5 - 1.0
            flip = rng.random() < 0.5
            if flip:
                img = img[:, ::-1]
            img = random_erasing(img, rng)
            refs.append(img)
            feats.append(self.zero_feat if rng.random() < uncond_ratio else (self.feats_flip if flip else self.feats)[r])
            trgs.append(self.images[t].astype(np.float32) / 127.5 - 1.0)
            skels.append(self.skeletons[t].astype(np.float32) / 255.0)

        def nchw(xs):
            return torch.from_numpy(np.ascontiguousarray(np.stack(xs))).permute(0, 3, 1, 2).contiguous()

        return nchw(refs), nchw(trgs), nchw(skels), torch.from_numpy(np.stack(feats)).float()


def random_erasing(img: np.ndarray, rng: np.random.Generator, p: float = 0.5, area=(0.02, 0.2),
                   ratio=(0.3, 3.3)) -> np.ndarray:
    """Random erasing (Zhong et al. 2020): one rectangle of random area/aspect filled with uniform noise."""
    if rng.random() >= p:
        return img
    h, w = img.shape[:2]
    for _ in range(10):
        a = rng.uniform(*area) * h * w
        r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        eh, ew = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < eh < h and 0 < ew < w:
            y, x = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
            img = img.copy()
            img[y:y + eh, x:x + ew] = rng.uniform(-1, 1, (eh, ew, 3)).astype(np.float32)
            return img
    return img


# ----------------------------------------------------------------------------- model step
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


# ----------------------------------------------------------------------------- checkpoints (no pickle)
def _flat_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
                meta["state"][str(pid)][k] = "tensor"
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def _unflat_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, st in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v == "tensor" else v) for k, v in st.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(out: Path, m: dict, ema: dict, opt, step: int, elapsed: float, rng: np.random.Generator,
                    gen: torch.Generator, extra: dict) -> None:
    ck = out / "checkpoint.tmp"
    ck.mkdir(parents=True, exist_ok=True)
    save_file({f"{n}.{k}": v.contiguous() for n in TRAINED for k, v in m[n].state_dict().items()}, ck / "model.safetensors")
    save_file({f"{n}.{k}": v.contiguous() for n in TRAINED for k, v in ema[n].state_dict().items()}, ck / "ema.safetensors")
    ot, ometa = _flat_optimizer(opt)
    save_file(ot, ck / "optimizer.safetensors")
    save_file({"torch_gen": gen.get_state(), "torch_global": torch.get_rng_state()}, ck / "rng.safetensors")
    state = {"step": step, "elapsed": elapsed, "numpy_rng": rng.bit_generator.state, "python_rng": random.getstate(),
             "optimizer": ometa, **extra}
    (ck / "state.json").write_text(json.dumps(state))
    final, old = out / "checkpoint", out / "checkpoint.old"
    if old.exists() and final.exists():  # left by an interrupted save whose new checkpoint is complete
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    ck.rename(final)  # from here on checkpoint/ is the new one; until here checkpoint.old/ was complete
    if old.exists():
        shutil.rmtree(old)


def checkpoint_dir(out: Path) -> Path | None:
    """The complete checkpoint in ``out``: ``checkpoint/``, or ``checkpoint.old/`` if a save was interrupted
    between its two renames; None if there is none."""
    for name in ("checkpoint", "checkpoint.old"):
        if (out / name / "state.json").exists():
            return out / name
    return None


def load_checkpoint(out: Path, m: dict, ema: dict, opt, rng: np.random.Generator, gen: torch.Generator) -> dict:
    ck = checkpoint_dir(out)
    if ck is None:
        raise FileNotFoundError(f"{out}: no checkpoint")
    state = json.loads((ck / "state.json").read_text())
    for target, fname in ((m, "model.safetensors"), (ema, "ema.safetensors")):
        flat = load_file(ck / fname)
        for n in TRAINED:
            dev = next(target[n].parameters()).device
            target[n].load_state_dict({k[len(n) + 1:]: v.to(dev) for k, v in flat.items() if k.startswith(n + ".")})
    opt.load_state_dict(_unflat_optimizer(load_file(ck / "optimizer.safetensors"), state["optimizer"]))
    r = load_file(ck / "rng.safetensors")
    gen.set_state(r["torch_gen"])
    torch.set_rng_state(r["torch_global"])
    rng.bit_generator.state = state["numpy_rng"]
    py = state["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    return state


def truncate_loss_log(path: Path, step: int) -> None:
    """Drop the rows of ``loss.csv`` after ``step``: steps a stopped run logged after its last checkpoint,
    which a resumed run trains (and logs) again."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln[:1].isdigit() or int(ln.split(",", 1)[0]) <= step]
    if len(kept) != len(lines):
        path.write_text("".join(kept))


# ----------------------------------------------------------------------------- export / samples
def make_pipeline(ema: dict, vae, reid) -> Pose2IDPipeline:
    pipe = Pose2IDPipeline(ema["reference_unet"], ema["denoising_unet"], ema["pose_guider"], ema["ifr"], vae,
                           make_scheduler(), reid=reid)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample_grid(pipe: Pose2IDPipeline, root: str | Path, path: Path, n_refs: int = 4, n_poses: int = 6,
                steps: int = 20) -> None:
    """Test-query references (rows) × test-gallery poses; per row: reference, IFR-on gens, IFR-off gens."""
    from pose2id_demo.data import load_market

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


# ----------------------------------------------------------------------------- main
def init_from_pipeline(m: dict, directory: Path) -> None:
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


def lr_factor(step: int, warmup: int, anneal_start: int | None, anneal_steps: int, anneal_min: float) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, constant, then an optional cosine
    decay from ``anneal_start`` to ``anneal_min`` over ``anneal_steps`` (held there afterwards).

    Step-based, so a ``--resume`` run that adds the anneal replays exactly with ``--max-steps``."""
    f = min(1.0, (step + 1) / warmup)
    if anneal_start is not None and step >= anneal_start:
        u = min(1.0, (step - anneal_start) / max(1, anneal_steps))
        f *= anneal_min + (1.0 - anneal_min) * 0.5 * (1.0 + math.cos(math.pi * u))
    return f


def main(argv: list[str] | None = None) -> int:
    from pose2id_demo.data.synthped.ground_truth import BACKGROUNDS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="Market-1501-format root (bounding_box_train/ with pose jsons)")
    ap.add_argument("--config", choices=("tiny", "sd15"), default="tiny")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop this run after N minutes of training")
    ap.add_argument("--budget-minutes", type=float, default=90.0, help="stop when all runs together reach N minutes")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reid", default="synthped-reid", help="frozen ReID backbone feeding IFR")
    ap.add_argument("--vae", default=None, help="trained autoencoder folder (tiny: pose2id_demo.ipg.autoencoder)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--uncond-ratio", type=float, default=0.1)
    ap.add_argument("--noise-offset", type=float, default=0.05)
    ap.add_argument("--snr-gamma", type=float, default=0.0)
    ap.add_argument("--ema-decay", type=float, default=0.995)
    ap.add_argument("--anneal-start", type=int, default=None,
                    help="from this step on, cosine-decay the learning rate to --anneal-min × lr over --anneal-steps")
    ap.add_argument("--anneal-steps", type=int, default=2000)
    ap.add_argument("--anneal-min", type=float, default=0.05)
    ap.add_argument("--cleanse-quantile", type=float, default=0.005)
    ap.add_argument("--cleanse-band", choices=("per_identity", "pooled"), default="per_identity",
                    help="eq. 31's band for S_ref (pose2id_demo.cleansing): per_identity, as the shipped ipg-tiny "
                    "was trained (replays stay exact), or pooled (the app's default)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="auto: bf16 autocast on a CUDA device that supports it, fp32 on the CPU")
    ap.add_argument("--pair-views", choices=("any", "different"), default="any",
                    help="'different': the reference faces another direction than the target whenever the identity allows")
    ap.add_argument("--render-pairs", type=float, default=0.0,
                    help="SynthPed roots: share of each batch whose target is rendered (the reference's person, camera "
                         "and background in another training image's pose; pose2id_demo.ipg.rendered_pairs)")
    ap.add_argument("--render-per-reference", type=int, default=4, help="rendered targets drawn per reference")
    ap.add_argument("--render-background", choices=BACKGROUNDS, default="reference",
                    help="rendered targets on the reference's own camera and background, or all on one fixed "
                         "(canonical) camera and background")
    ap.add_argument("--identity-weight", type=float, default=0.0,
                    help="weight of an identity loss: 1 - cos between --reid features of the decoded x0 prediction "
                         "and of the target, weighted by alpha-bar_t (0: off, the paper's loss alone)")
    ap.add_argument("--pose-widths", type=int, nargs="+", default=None,
                    help="Pose Guider widths; one more stage than the default (16 32 64) reads a 2x larger skeleton")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start a fresh run from a saved pipeline folder (modules whose shapes match)")
    ap.add_argument("--init-pose-gain", type=float, default=1.0,
                    help="with --init-from: multiply the loaded Pose Guider's conv_out by this (the bench's pose_scale "
                         "probe: E_pose x2 at inference raised pose adherence)")
    ap.add_argument("--pose-weight-decay", type=float, default=None,
                    help="weight decay of the Pose Guider (default: --weight-decay)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--sample-minutes", type=float, default=12.0)
    ap.add_argument("--log-every", type=int, default=25)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    defaults = DEFAULTS[args.config]
    lr = args.lr or defaults["lr"]
    bsz = args.batch_size or defaults["batch_size"]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    from pose2id_demo.reid import get_backbone

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda"
                                            and torch.cuda.is_bf16_supported())
    amp_dtype = torch.bfloat16 if use_bf16 else None
    reid = get_backbone(args.reid, device="cpu")
    id_reid = get_backbone(args.reid, device=device) if args.identity_weight > 0 else None  # the loss's judge
    for b in (reid, id_reid) if id_reid is not None else (reid,):  # the same object on the CPU
        b.model.eval()
        for p in b.model.parameters():
            p.requires_grad_(False)
    if args.config == "tiny" and args.vae is None:
        raise SystemExit("--vae DIR is required for the tiny config (train it with python -m pose2id_demo.ipg.autoencoder)")
    vae_model = load_vae(args.vae).requires_grad_(False) if args.vae else None
    ck_state = out / "checkpoint" / "state.json"
    if args.resume and ck_state.exists():  # the architecture the run started with
        st0 = json.loads(ck_state.read_text())
        args.pose_widths = st0.get("pose_widths", args.pose_widths)
        args.pair_views = st0.get("pair_views", args.pair_views)
        args.pose_weight_decay = st0.get("pose_weight_decay", args.pose_weight_decay)
        args.render_pairs = st0.get("render_pairs", args.render_pairs)
        args.render_per_reference = st0.get("render_per_reference", args.render_per_reference)
        args.render_background = st0.get("render_background", "reference")
    comps = build_components(args.config, reid_dim=reid.dim, vae=vae_model, pose_widths=args.pose_widths)
    if args.config == "sd15":
        raise SystemExit("sd15 training needs SD1.5 + sd-vae-ft-mse weights and a GPU; not available here")
    image_size = TINY_IMAGE_SIZE if args.config == "tiny" else SD15_IMAGE_SIZE
    f = comps["pose_guider"].downsample_factor // vae_scale_factor(comps["vae"])
    pose_size = (image_size[0] * f, image_size[1] * f)
    data = PairData(args.data, image_size, pose_size, reid, out / "cache", quantile=args.cleanse_quantile,
                    cleanse_band=args.cleanse_band, pair_views=args.pair_views, render_pairs=args.render_pairs,
                    render_per_reference=args.render_per_reference, seed=args.seed,
                    render_background=args.render_background)

    vae = comps["vae"]
    if args.resume and ck_state.exists():  # keep the latent scale the run started with
        vae.register_to_config(scaling_factor=json.loads(ck_state.read_text())["scaling"])
    elif vae.config.scaling_factor == 1.0:  # SD-style: 1 / std of the data latents
        std = float((data.images.astype(np.float32) / 127.5 - 1.0).std())
        vae.register_to_config(scaling_factor=round(1.0 / std, 4))
    scaling = vae.config.scaling_factor
    m = {n: comps[n].train() for n in TRAINED}
    if args.init_from is not None and not (args.resume and ck_state.exists()):
        init_from_pipeline(m, args.init_from)
        if args.init_pose_gain != 1.0:
            with torch.no_grad():
                m["pose_guider"].conv_out.weight.mul_(args.init_pose_gain)
                m["pose_guider"].conv_out.bias.mul_(args.init_pose_gain)
    m["vae"] = vae
    ema = build_components(args.config, reid_dim=reid.dim, vae=vae_model, pose_widths=args.pose_widths)
    for n in TRAINED:
        ema[n].load_state_dict(m[n].state_dict())
        ema[n].eval().requires_grad_(False)
    for n in TRAINED:
        m[n].to(device)
        ema[n].to(device)
    vae.to(device)
    params = [p for n in TRAINED for p in m[n].parameters()]
    groups: list = params  # one group (as the runs before --pose-weight-decay, so their checkpoints resume)
    if args.pose_weight_decay is not None:
        groups = [{"params": [p for n in TRAINED if n != "pose_guider" for p in m[n].parameters()]},
                  {"params": list(m["pose_guider"].parameters()), "weight_decay": args.pose_weight_decay}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=args.weight_decay, foreach=True)
    scheduler = make_scheduler()
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    segments: list[dict] = []
    if args.resume and checkpoint_dir(out) is not None:
        st = load_checkpoint(out, m, ema, opt, rng, gen)
        step, elapsed = st["step"], st["elapsed"]
        segments = st.get("segments", [])
        logger.info("resumed at step %d (%.1f min trained)", step, elapsed / 60)
        truncate_loss_log(out / "loss.csv", step)
    segment = {"first_step": step + 1, "last_step": step, "device": str(device),
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
               or platform.machine(), "precision": "bf16" if use_bf16 else "fp32",
               "threads": args.threads if device.type == "cpu" else None, "batch_size": bsz, "minutes": 0.0,
               "cpu_minutes": 0.0, "identity_weight": args.identity_weight, "render_pairs": args.render_pairs,
               "render_background": args.render_background, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    cpu_start = time.process_time()
    segments.append(segment)
    logger.info("device %s (%s), precision %s", device, segment["device_name"], segment["precision"])
    n_params = {n: sum(p.numel() for p in m[n].parameters()) for n in TRAINED}
    logger.info("config %s: params %s; batch %d, lr %g, scaling %.4f, image %s, pose %s", args.config,
                {k: f"{v / 1e6:.2f}M" for k, v in n_params.items()}, bsz, lr, scaling, image_size, pose_size)
    (out / "train_args.json").write_text(json.dumps({**vars(args), "out": str(out), "lr": lr, "batch_size": bsz,
                                                     "argv": sys.argv}, indent=1, default=str))
    ema_pipe = make_pipeline(ema, vae, reid)

    def export() -> None:
        ema_pipe.save_pretrained(out / "pipeline.tmp")
        if (out / "pipeline").exists():
            shutil.rmtree(out / "pipeline")
        (out / "pipeline.tmp").rename(out / "pipeline")

    def extra() -> dict:
        segment["last_step"] = step
        segment["minutes"] = round((time.time() - run_start) / 60, 2)
        segment["cpu_minutes"] = round((time.process_time() - cpu_start) / 60, 2)  # all threads of this process
        return {"scaling": scaling, "segments": segments, "pose_widths": list(comps["pose_guider"].config.block_out_channels),
                "pair_views": args.pair_views, "pose_weight_decay": args.pose_weight_decay,
                "render_pairs": args.render_pairs, "render_per_reference": args.render_per_reference,
                "render_background": args.render_background, "image_size": list(image_size), "pose_size": list(pose_size)}

    run_start = time.time()
    last_ckpt = last_sample = time.time()
    loss_avg = None
    csv = open(out / "loss.csv", "a")
    t_step = time.time()
    stop_reason = "max-steps"
    while args.max_steps is None or step < args.max_steps:
        run_min = (time.time() - run_start) / 60
        if args.max_minutes is not None and run_min >= args.max_minutes:
            stop_reason = "max-minutes"
            break
        if (elapsed + time.time() - run_start) / 60 >= args.budget_minutes:
            stop_reason = "budget"
            break
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(step, defaults["warmup"], args.anneal_start, args.anneal_steps, args.anneal_min)
        ref, trg, skel, feats = (x.to(device) for x in data.batch(rng, bsz, args.uncond_ratio))
        loss = training_loss(m, scheduler, ref, trg, skel, feats, gen, args.noise_offset, args.snr_gamma, scaling,
                             autocast_dtype=amp_dtype, identity_weight=args.identity_weight, reid_model=id_reid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for n in TRAINED:
                e, s = list(ema[n].parameters()), list(m[n].parameters())
                torch._foreach_lerp_(e, s, 1 - decay)
        step += 1
        lv = float(loss.detach())
        loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
        csv.write(f"{step},{lv:.5f}\n")
        if step % args.log_every == 0:
            now = time.time()
            logger.info("step %d loss %.4f (avg %.4f) %.2f s/step, %.1f min total", step, lv, loss_avg,
                        (now - t_step) / args.log_every, (elapsed + now - run_start) / 60)
            t_step = now
            csv.flush()
        if time.time() - last_ckpt >= args.ckpt_minutes * 60:
            save_checkpoint(out, m, ema, opt, step, elapsed + time.time() - run_start, rng, gen, extra())
            export()
            last_ckpt = time.time()
        if time.time() - last_sample >= args.sample_minutes * 60:
            sample_grid(ema_pipe, args.data, out / "samples" / f"step_{step:06d}.png")  # counted in the budget
            last_sample = time.time()
    csv.close()
    total = elapsed + time.time() - run_start
    save_checkpoint(out, m, ema, opt, step, total, rng, gen, extra())
    export()
    sample_grid(ema_pipe, args.data, out / "samples" / f"step_{step:06d}.png")
    logger.info("stopped (%s) at step %d after %.1f min of training; pipeline in %s", stop_reason, step, total / 60,
                out / "pipeline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
