"""Identity Feature Redistribute (IFR), paper §3.2.2 eq. 5: ``H = LN(Linear(f(x)))``.

A ReID feature ``f(x)`` of shape ``(B, in_dim)`` is projected linearly to ``num_tokens * dim`` values,
reshaped into ``num_tokens`` tokens of width ``dim`` and layer-normalised per token. The tokens are the
keys/values of every cross-attention layer of the reference and denoising UNets (they replace the text
tokens of Stable Diffusion). Attribute names follow the official release (``proj_motion``,
``norm_motion``) so ``IFR.pth`` loads directly; the official shape is 3840 → 20 × 768.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class IFR(ModelMixin, ConfigMixin):
    """``LN(Linear(f))`` reshaped to ``(B, num_tokens, dim)`` (eq. 5).

    Args:
        in_dim: width of the ReID feature (3840 for the official TransReID with JPM).
        num_tokens: number N of identity tokens (20 officially).
        dim: token width D = the UNets' ``cross_attention_dim`` (768 for SD1.5).
    """

    @register_to_config
    def __init__(self, in_dim: int = 3840, num_tokens: int = 20, dim: int = 768) -> None:
        super().__init__()
        self.proj_motion = nn.Linear(in_dim, num_tokens * dim)
        self.norm_motion = nn.LayerNorm(dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats ``(B, in_dim)`` → identity tokens ``H`` of shape ``(B, num_tokens, dim)``."""
        if feats.ndim != 2 or feats.shape[1] != self.config.in_dim:
            raise ValueError(f"IFR expects features of shape (B, {self.config.in_dim}); got {tuple(feats.shape)}")
        tokens = self.proj_motion(feats).view(feats.shape[0], self.config.num_tokens, self.config.dim)
        return self.norm_motion(tokens)
