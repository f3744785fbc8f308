"""A small trained KL autoencoder for the tiny IPG (latent diffusion, as SD's VAE for the official model).

    python -m pose2id_demo.ipg.autoencoder --data ROOT --out DIR --seed 0 [--max-minutes 8]

``diffusers.AutoencoderKL`` with blocks (32, 64, 64), one resnet per block, 4 latent channels and two
downsamplings: a 64×32 RGB image ↔ a 4×16×8 latent (12× fewer numbers). Trained on the benchmark's train
split (images box-resized to 64×32, random horizontal flips) with MSE reconstruction + 1e-6 · KL, Adam
lr 1e-3, batch 32; ``scaling_factor`` is set to 1 / std of the training latents (SD's convention).

Why not the lossless pixel-unshuffle space (:mod:`pose2id_demo.ipg.vae`): measured on this machine, a
(32, 64, 64) UNet trained for 900 steps in the 48×16×8 pixel-unshuffle space could not remove low-level
noise (v-MSE 0.96 at t = 50 against 1.0 for predicting zero) so every sample stayed covered in pixel noise,
while its x0 predictions at t ≥ 500 were already person-shaped: pixel space asks the small UNet for
high-frequency detail it cannot learn in the CPU budget. A latent autoencoder moves that detail into a
decoder trained once, in minutes, exactly the reason latent diffusion exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL

logger = logging.getLogger(__name__)

TINY_AE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                      up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64), layers_per_block=1,
                      latent_channels=4, norm_num_groups=8, sample_size=64)


def load_train_images(root: str | Path, size: tuple[int, int] = (64, 32)) -> np.ndarray:
    """Train-split images box-resized to ``size`` (H, W): uint8 (N, H, W, 3)."""
    from pose2id_demo.data import load_market

    h, w = size
    return np.stack([np.asarray(PIL.Image.open(r.path).convert("RGB").resize((w, h), PIL.Image.BOX))
                     for r in load_market(root).train])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the tiny IPG's KL autoencoder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=8.0)
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    imgs = load_train_images(args.data)
    x_all = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    ae = AutoencoderKL(**TINY_AE_CONFIG)
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
        loss = mse + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        avg = float(mse) if avg is None else 0.95 * avg + 0.05 * float(mse)
        if step % 50 == 0:
            logger.info("step %d mse %.5f (avg %.5f, PSNR %.1f dB) %.1f min", step, float(mse), avg,
                        10 * np.log10(4 / avg), (time.time() - t0) / 60)
    ae.eval()
    with torch.no_grad():
        sub = x_all[rng.choice(len(x_all), 512, replace=False)]
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


if __name__ == "__main__":
    raise SystemExit(main())
