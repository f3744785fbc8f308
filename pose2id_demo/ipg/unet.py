"""The denoising UNet: a ``UNet2DConditionModel`` whose ``conv_in`` output receives the pose embedding.

Paper §3.2.2 / official release: "the pose features are added to the noise latent before into the
denoising UNet" — concretely, the Pose Guider's output (first-block width, latent resolution) is added to
the features right after the UNet's ``conv_in``. This thin subclass swaps ``conv_in`` for a
:class:`PoseAddConv2d` (an ``nn.Conv2d`` — same parameter names and shapes, so SD1.5 / official weights load
unchanged) that adds the pose embedding handed to :meth:`forward`. No hooks, no patched forwards.
"""

from __future__ import annotations

import functools

import torch
from diffusers import UNet2DConditionModel
from torch import nn


class PoseAddConv2d(nn.Conv2d):
    """``conv(x) + pose_residual`` while a residual is set (by the owning UNet's forward), else ``conv(x)``."""

    pose_residual: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.pose_residual is not None:
            if self.pose_residual.shape != out.shape:
                raise ValueError(f"pose embedding {tuple(self.pose_residual.shape)} does not match the "
                                 f"conv_in output {tuple(out.shape)}")
            out = out + self.pose_residual.to(out.dtype)
        return out


class PoseConditionedUNet2DConditionModel(UNet2DConditionModel):
    """``UNet2DConditionModel`` + ``pose_cond_fea`` added after ``conv_in`` (the denoising UNet ε_θ, eq. 4)."""

    @functools.wraps(UNet2DConditionModel.__init__)
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        old = self.conv_in
        conv = PoseAddConv2d(old.in_channels, old.out_channels, kernel_size=old.kernel_size,
                             padding=old.padding, stride=old.stride, device=old.weight.device,
                             dtype=old.weight.dtype)
        conv.load_state_dict(old.state_dict(), assign=old.weight.is_meta)
        self.conv_in = conv

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
                pose_cond_fea: torch.Tensor | None = None, **kwargs):
        """As ``UNet2DConditionModel.forward``; ``pose_cond_fea`` ``(B, C0, h, w)`` is added after ``conv_in``."""
        self.conv_in.pose_residual = pose_cond_fea
        try:
            return super().forward(sample, timestep, encoder_hidden_states, **kwargs)
        finally:
            self.conv_in.pose_residual = None
