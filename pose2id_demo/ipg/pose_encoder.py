"""Pose Encoder (the official ``PoseGuider``), paper §3.2.2 and §6.3 eqs. 22-24.

``E_0 = SiLU(Conv_in(x_pose))`` (3 → 16 channels, 3×3), then for consecutive widths
``(c_i, c_{i+1})`` of ``block_out_channels`` a 3×3 conv ``c_i → c_i`` and a 3×3 stride-2 conv
``c_i → c_{i+1}`` (eq. 24); finally a zero-initialised 3×3 ``conv_out`` to the width
of the denoising UNet's first block, so training starts from "no pose signal". The output is added to the
denoising UNet's features right after its ``conv_in`` (see :mod:`pose2id_demo.ipg.unet`).

With the official widths (16, 32, 64, 128) the encoder downsamples by 8 — a 512×256 skeleton maps onto the
64×32 SD latent; the tiny configuration uses (16, 32, 64) to map a 64×32 skeleton onto its 16×8 latent
(see :mod:`pose2id_demo.ipg.configs`). Eq. 24 writes one SiLU per block; the released ``pose_guider.pth``
was trained with a SiLU after *every* block conv, which is what we do so those weights behave as trained.
Parameter names (``conv_in``, ``blocks.N``, ``conv_out``) follow ``pose_guider.pth``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class PoseGuider(ModelMixin, ConfigMixin):
    """Skeleton image ``(B, 3, H, W)`` in [0, 1] → pose embedding ``(B, C, H/2^k, W/2^k)`` (eqs. 22-24).

    Args:
        conditioning_embedding_channels: output width C (= first UNet block width; 320 for SD1.5).
        conditioning_channels: input channels (3, an RGB skeleton render).
        block_out_channels: widths ``[C_0, ..., C_k]``; ``k = len - 1`` stride-2 stages.
    """

    @register_to_config
    def __init__(
        self,
        conditioning_embedding_channels: int = 320,
        conditioning_channels: int = 3,
        block_out_channels: Sequence[int] = (16, 32, 64, 128),
    ) -> None:
        super().__init__()
        widths = list(block_out_channels)
        self.conv_in = nn.Conv2d(conditioning_channels, widths[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(widths[-1], conditioning_embedding_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, pose_image: torch.Tensor) -> torch.Tensor:
        emb = F.silu(self.conv_in(pose_image))  # eq. 23
        for conv in self.blocks:  # eq. 24: SiLU after every conv of each block
            emb = F.silu(conv(emb))
        return self.conv_out(emb)
