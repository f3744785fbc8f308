"""A fixed, lossless pixel-unshuffle "VAE": a (B, C, H, W) image in [-1, 1] ↔ (B, C·f², H/f, W/f) latents
by space-to-depth ×f (64×32 RGB → 48×16×8 at f = 4), exactly invertible, no parameters.

A stand-in VAE for tests and experiments; the shipped tiny IPG uses the trained KL autoencoder of
:mod:`pose2id_demo.ipg.autoencoder` (``docs/design-notes.md`` says why).

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
