"""A small trained KL autoencoder for the tiny IPG (latent diffusion, like SD's VAE for the official model).

    python -m pose2id_demo.ipg.autoencoder --data ROOT --out DIR --seed 0 [--max-minutes 8]

:class:`TinyAutoencoderKL`: a plain convolutional KL autoencoder with the ``AutoencoderKL`` interface the
pipeline uses (``encode(x).latent_dist``, ``decode(z).sample``, ``config.scaling_factor``,
``config.block_out_channels``): 64×32 RGB ↔ C×16×8 latent (two stride-2 stages; C = 8 by default, 6× fewer
numbers; the shipped one has C = 16, ``--latent-channels``). Trained on
the benchmark's train split (box-resized to 64×32, random horizontal flips) with L1 + MSE reconstruction
+ 1e-6 · KL, Adam lr 2e-3 with cosine decay, batch 32; ``scaling_factor`` = 1 / std of the training latents
(SD's convention).

Why a trained autoencoder, and why this network rather than diffusers' ``AutoencoderKL``:
``docs/design-notes.md``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

logger = logging.getLogger(__name__)


class TinyAutoencoderKL(ModelMixin, ConfigMixin):
    """Conv KL autoencoder: ``(B, 3, H, W)`` in [-1, 1] → ``(B, latent_channels, H/4, W/4)`` →
    ``(B, 3, H·u, W·u)`` with ``u = decoder_upsample`` (1: a plain autoencoder; 2: the decoder also
    upsamples, e.g. a 64 × 32 model's latent decoded at 128 × 64). The first ten decoder layers are the same
    for every ``u``, so a larger decoder can start from a trained one's."""

    @register_to_config
    def __init__(self, in_channels: int = 3, latent_channels: int = 8, block_out_channels: tuple = (32, 64, 96),
                 scaling_factor: float = 1.0, sample_size: tuple = (64, 32), decoder_upsample: int = 1) -> None:
        super().__init__()
        if decoder_upsample not in (1, 2, 4):
            raise ValueError(f"decoder_upsample must be 1, 2 or 4, got {decoder_upsample}")
        c0, c1, c2 = block_out_channels
        act = nn.SiLU
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c0, 3, padding=1), act(),
            nn.Conv2d(c0, c1, 4, stride=2, padding=1), act(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), act(),
            nn.Conv2d(c2, c2, 3, padding=1), act(),
            nn.Conv2d(c2, 2 * latent_channels, 3, padding=1))
        layers: list[nn.Module] = [
            nn.Conv2d(latent_channels, c2, 3, padding=1), act(),
            nn.Conv2d(c2, c2, 3, padding=1), act(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), act(),
            nn.ConvTranspose2d(c1, c0, 4, stride=2, padding=1), act(),
            nn.Conv2d(c0, c0, 3, padding=1), act()]
        for _ in range(decoder_upsample.bit_length() - 1):  # one more ×2 stage each: an output larger than the input
            layers += [nn.ConvTranspose2d(c0, c0, 4, stride=2, padding=1), act(),
                       nn.Conv2d(c0, c0, 3, padding=1), act()]
        self.decoder = nn.Sequential(*layers, nn.Conv2d(c0, in_channels, 3, padding=1))

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        moments = self.encoder(x)
        mean, logvar = moments.chunk(2, dim=1)
        dist = DiagonalGaussianDistribution(torch.cat([mean, logvar.clamp(-30, 20)], dim=1))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        x = self.decoder(z)
        return DecoderOutput(sample=x) if return_dict else (x,)


def load_train_images(root: str | Path, size: tuple[int, int] = (64, 32)) -> np.ndarray:
    """Train-split images box-resized to ``size`` (H, W): uint8 (N, H, W, 3)."""
    from pose2id_demo.data import load_market

    h, w = size
    return np.stack([np.asarray(PIL.Image.open(r.path).convert("RGB").resize((w, h), PIL.Image.BOX))
                     for r in load_market(root).train])


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor, mse: torch.Tensor, step: int, avg: float | None,
            t0: float) -> tuple[int, float]:
    """One optimizer step on ``loss``; returns the new step count and the running mean of ``mse`` (logged, with
    its PSNR, every 50 steps)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    step += 1
    m = float(mse.detach())
    avg = m if avg is None else 0.95 * avg + 0.05 * m
    if step % 50 == 0:
        logger.info("step %d mse %.5f (avg %.5f, PSNR %.1f dB) %.1f min", step, m, avg,
                    10 * np.log10(4 / avg), (time.time() - t0) / 60)
    return step, avg


def main(argv: list[str] | None = None) -> int:
    from pose2id_demo.training_cli import parse_small_training

    def shape_flags(ap) -> None:  # the shipped autoencoder uses the defaults; other values are probes
        ap.add_argument("--latent-channels", type=int, default=8)
        ap.add_argument("--widths", type=int, nargs=3, default=[32, 64, 96], help="block_out_channels")
        ap.add_argument("--from", dest="from_dir", type=Path, default=None,
                        help="train only a new decoder for this trained autoencoder (its encoder frozen)")
        ap.add_argument("--decoder-upsample", type=int, default=1,
                        help="with --from: the new decoder's output is this many times the input size")
        ap.add_argument("--resume", action="store_true", help="with --from: continue from OUT/checkpoint")
        ap.add_argument("--schedule-steps", type=int, default=None,
                        help="with --from: the cosine learning-rate horizon (default --max-steps), so that a run "
                             "stopped early by --max-steps can be resumed on the same schedule")
        ap.add_argument("--ckpt-minutes", type=float, default=5.0,
                        help="with --from: save a resumable checkpoint this often (wall minutes)")

    args, rng = parse_small_training("Train the tiny IPG's KL autoencoder", argv, minutes=8.0, steps=3000,
                                     batch_size=32, lr=2e-3, extra=shape_flags)
    if args.from_dir is not None:
        return train_decoder(args, rng)
    imgs = load_train_images(args.data)
    x_all = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    ae = TinyAutoencoderKL(latent_channels=args.latent_channels, block_out_channels=tuple(args.widths))
    opt = torch.optim.Adam(ae.parameters(), lr=args.lr)
    t0 = time.time()
    step = 0
    avg = None
    while step < args.max_steps and time.time() - t0 < args.max_minutes * 60:
        idx = rng.integers(0, len(x_all), args.batch_size)
        x = x_all[idx]
        flip = torch.from_numpy(rng.random(args.batch_size) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        for g in opt.param_groups:  # cosine decay to 10 % over the time budget
            frac = min(1.0, (time.time() - t0) / (args.max_minutes * 60))
            g["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * frac)))
        post = ae.encode(x).latent_dist
        rec = ae.decode(post.sample()).sample
        mse = torch.nn.functional.mse_loss(rec, x)
        loss = mse + (rec - x).abs().mean() + 1e-6 * post.kl().mean()
        step, avg = _update(opt, loss, mse, step, avg, t0)
    ae.eval()
    with torch.no_grad():
        sub = x_all[rng.choice(len(x_all), min(512, len(x_all)), replace=False)]
        lat = ae.encode(sub).latent_dist.mean
        rec = ae.decode(lat).sample
        psnr = float(10 * torch.log10(4 / torch.nn.functional.mse_loss(rec, sub)))
    ae.register_to_config(scaling_factor=round(1.0 / float(lat.std()), 4))
    args.out.mkdir(parents=True, exist_ok=True)
    ae.save_pretrained(args.out, safe_serialization=True)
    (args.out / "train_info.json").write_text(json.dumps({"steps": step, "minutes": round((time.time() - t0) / 60, 2),
                                                          "psnr_db": round(psnr, 2), "argv": sys.argv}, indent=1))
    logger.info("saved %s: %d steps, PSNR %.2f dB, scaling %.4f", args.out, step, psnr, ae.config.scaling_factor)
    return 0


def decoder_from(trained: TinyAutoencoderKL, upsample: int) -> TinyAutoencoderKL:
    """A copy of ``trained`` whose decoder outputs ``upsample`` × its input size: the encoder and the shared
    decoder layers copied, the output layer copied to the new last position, the new stages fresh."""
    cfg = {k: v for k, v in trained.config.items() if not k.startswith("_")}
    new = TinyAutoencoderKL(**{**cfg, "decoder_upsample": upsample})
    new.encoder.load_state_dict(trained.encoder.state_dict())
    old_dec, new_dec = trained.decoder, new.decoder
    for i in range(len(old_dec) - 1):  # the ten shared layers
        new_dec[i].load_state_dict(old_dec[i].state_dict())
    new_dec[-1].load_state_dict(old_dec[-1].state_dict())
    return new


def train_decoder(args, rng: np.random.Generator) -> int:
    """Train the decoder of :func:`decoder_from` against the train images at the output size (L1 + MSE), the
    encoder frozen, so that the latent space — and any generator trained in it — stays the same. The
    learning rate decays by a cosine over ``--max-steps`` (step-based); ``--max-minutes`` is a safety stop.
    With ``--resume`` it continues from the checkpoint it saves every ``--ckpt-minutes``."""
    from pose2id_demo.ipg.checkpoint import checkpoint_dir, load_checkpoint, save_checkpoint

    src = TinyAutoencoderKL.from_pretrained(args.from_dir, low_cpu_mem_usage=False).eval()
    ae = decoder_from(src, args.decoder_upsample)
    ae.encoder.requires_grad_(False)
    h, w = src.config.sample_size
    u = args.decoder_upsample
    x_in = torch.from_numpy(load_train_images(args.data, (h, w))).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    x_out = torch.from_numpy(load_train_images(args.data, (h * u, w * u))).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    opt = torch.optim.Adam(ae.decoder.parameters(), lr=args.lr)
    horizon = args.schedule_steps or args.max_steps
    gen = torch.Generator()  # unused by the loop; kept so the checkpoint format is the generator's own
    step, avg, elapsed, cpu_before = 0, None, 0.0, 0.0
    if args.resume and checkpoint_dir(args.out) is not None:
        state = load_checkpoint(args.out, {"decoder": ae.decoder}, None, opt, rng, gen, names=("decoder",))
        step, avg, elapsed, cpu_before = state["step"], state["avg"], state["elapsed"], state["cpu_minutes"] * 60
        logger.info("resumed at step %d (%.1f min trained)", step, elapsed / 60)
    t0, cpu0, last_ck = time.time() - elapsed, time.process_time() - cpu_before, time.time()

    def save() -> None:
        save_checkpoint(args.out, {"decoder": ae.decoder}, None, opt, step, time.time() - t0, rng, gen,
                        {"avg": avg, "cpu_minutes": (time.process_time() - cpu0) / 60}, names=("decoder",))

    while step < args.max_steps and time.time() - t0 < args.max_minutes * 60:
        idx = rng.integers(0, len(x_in), args.batch_size)
        flip = torch.from_numpy(rng.random(args.batch_size) < 0.5)[:, None, None, None]
        xi, xo = torch.where(flip, x_in[idx].flip(-1), x_in[idx]), torch.where(flip, x_out[idx].flip(-1), x_out[idx])
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, step / horizon))))
        with torch.no_grad():
            z = ae.encode(xi).latent_dist.sample()
        rec = ae.decode(z).sample
        mse = torch.nn.functional.mse_loss(rec, xo)
        loss = mse + (rec - xo).abs().mean()
        step, avg = _update(opt, loss, mse, step, avg, t0)
        if time.time() - last_ck > args.ckpt_minutes * 60:
            save()
            last_ck = time.time()
    save()
    ae.eval()
    with torch.no_grad():
        pick = rng.choice(len(x_in), min(512, len(x_in)), replace=False)
        psnr = float(10 * torch.log10(4 / torch.nn.functional.mse_loss(
            ae.decode(ae.encode(x_in[pick]).latent_dist.mean).sample, x_out[pick])))
    args.out.mkdir(parents=True, exist_ok=True)
    ae.save_pretrained(args.out, safe_serialization=True)
    info = {"steps": step, "minutes": round((time.time() - t0) / 60, 2),
            "cpu_minutes": round((time.process_time() - cpu0) / 60, 2), "psnr_db": round(psnr, 2),
            "from": str(args.from_dir), "decoder_upsample": u, "argv": sys.argv}
    (args.out / "train_info.json").write_text(json.dumps(info, indent=1))
    logger.info("saved %s: %d steps, PSNR %.2f dB at %d x %d", args.out, step, psnr, h * u, w * u)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
