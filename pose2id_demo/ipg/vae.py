"""The tiny configuration's latent space: a fixed, lossless pixel-unshuffle "VAE".

Decision (issue 5 asks to record it): the shipped tiny IPG uses a small *trained* KL autoencoder
(:mod:`pose2id_demo.ipg.autoencoder`, 64×32 RGB ↔ 4×16×8), not this module. This fixed, lossless
space-to-depth "VAE" (a 64×32 RGB image in [-1, 1] → 48×16×8 by pixel-unshuffle ×4, exactly invertible,
no training) was the first choice and was measured:

- for: zero training minutes, zero reconstruction error, and the same 16×8 grid the UNets can afford on
  2 cores ((32, 64, 64) blocks, 20 DDIM steps with CFG for 8 images: ~1.7 s at 16×8 vs ~7.5 s at 32×16);
- against (decisive): after 900 training steps (15 CPU-minutes) the UNet's x0 predictions at t ≥ 500 were
  already person-shaped, but it had learned almost nothing about removing small noise (v-MSE 0.96 at
  t = 50, versus 1.0 for predicting zero), so every sample stayed covered in pixel noise. The UNet must
  model all high-frequency detail of 48 channels per latent pixel; an autoencoder trained once (minutes)
  takes that detail off the diffusion model, which is the point of latent diffusion.

It stays as a parameter-free, exact stand-in VAE for tests and for experiments.

Interface mirrors :class:`diffusers.AutoencoderKL` for the pipeline: ``encode(x).latent_dist.mean`` /
``.sample()`` (a zero-variance diagonal Gaussian), ``decode(z).sample``, ``config.scaling_factor`` (the
pipeline multiplies encoded latents by it and divides before decoding, as with SD's 0.18215). The
factor is set from the training data's standard deviation by ``pose2id_demo.ipg.train`` when used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin


class PixelUnshuffleVAE(ModelMixin, ConfigMixin):
    """Lossless space-to-depth autoencoder: ``(B, C, H, W)`` ↔ ``(B, C·f², H/f, W/f)``.

    Args:
        in_channels: image channels (3).
        factor: space-to-depth factor f (4: 64×32 → 16×8).
        scaling_factor: multiplies latents for the diffusion model (≈ 1 / std of the data latents).
        sample_size: (height, width) of the images it is used with (64, 32).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        factor: int = 4,
        scaling_factor: float = 1.0,
        sample_size: tuple[int, int] = (64, 32),
    ) -> None:
        super().__init__()
        # A buffer-free module has no parameters; keep one dummy buffer so .device/.dtype work.
        self.register_buffer("_anchor", torch.zeros(1), persistent=False)

    @property
    def latent_channels(self) -> int:
        return self.config.in_channels * self.config.factor**2

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Images in [-1, 1] ``(B, C, H, W)`` → a zero-variance Gaussian around the unshuffled tensor."""
        f = self.config.factor
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the factor {f}")
        z = F.pixel_unshuffle(x, f)
        dist = DiagonalGaussianDistribution(torch.cat([z, torch.zeros_like(z)], dim=1), deterministic=True)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Latents ``(B, C·f², h, w)`` → images ``(B, C, h·f, w·f)`` (exact inverse of :meth:`encode`)."""
        x = F.pixel_shuffle(z, self.config.factor)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).latent_dist.mode()).sample
