"""Spatial reference attention (paper §3.2.2; Animate Anyone's reference net), as attention processors.

The reference UNet is run once on the reference latent at ``t = 0`` (with the same IFR tokens as the
denoising UNet, eq. 4). Every self-attention layer (``attn1``) of the reference UNet gets a *writer*
processor that stores the hidden states it receives — the block's ``norm1``-normalised tokens — in a
:class:`ReferenceBank` under the layer's name. The same layer of the denoising UNet gets a *reader*
processor that concatenates the stored reference tokens to its own along the token axis and uses the
result as keys and values (queries stay its own), so each generated pixel can attend to the reference.

Processors are installed with ``UNet2DConditionModel.set_attn_processor`` and the previous processors are
restored when the :func:`reference_attention` context exits; no ``forward`` is patched.

Batch rule of the reader: the bank holds ``B_r`` reference samples and the denoising batch has
``B_d = k · B_r`` samples; bank sample ``i`` serves the contiguous block ``i·k … i·k + k − 1``. With CFG and
one reference for P poses the bank holds ``[uncond, cond]`` (``B_r = 2``) and the denoising batch is
``[P uncond, P cond]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


class ReferenceBank:
    """Per-layer reference hidden states written by the reference UNet, read by the denoising UNet."""

    def __init__(self) -> None:
        self.states: dict[str, torch.Tensor] = {}

    def clear(self) -> None:
        self.states.clear()

    def __len__(self) -> int:
        return len(self.states)


class ReferenceWriteProcessor:
    """``attn1`` processor of the reference UNet: store the (normed) input tokens, then attend as usual."""

    def __init__(self, bank: ReferenceBank, name: str, inner=None) -> None:
        self.bank, self.name = bank, name
        self.inner = inner if inner is not None else AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, temb=None, **kwargs) -> torch.Tensor:
        self.bank.states[self.name] = hidden_states
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReadProcessor:
    """``attn1`` processor of the denoising UNet: keys/values = ``[own tokens ; reference tokens]``."""

    def __init__(self, bank: ReferenceBank, name: str, inner=None) -> None:
        self.bank, self.name = bank, name
        self.inner = inner if inner is not None else AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, temb=None, **kwargs) -> torch.Tensor:
        ref = self.bank.states.get(self.name)
        if ref is None:  # no reference written (e.g. the reference pass was skipped): plain self-attention
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        b_d, b_r = hidden_states.shape[0], ref.shape[0]
        if b_d != b_r:
            if b_d % b_r:
                raise ValueError(f"denoising batch {b_d} is not a multiple of the reference batch {b_r}")
            ref = ref.repeat_interleave(b_d // b_r, dim=0)
        context = torch.cat([hidden_states, ref.to(hidden_states.dtype)], dim=1)
        return self.inner(attn, hidden_states, context, attention_mask, temb)


def _self_attention_names(unet) -> list[str]:
    return [name for name in unet.attn_processors if name.endswith("attn1.processor")]


@contextlib.contextmanager
def reference_attention(reference_unet, denoising_unet, bank: ReferenceBank | None = None
                        ) -> Iterator[ReferenceBank]:
    """Install writer processors on ``reference_unet`` and readers on ``denoising_unet``; restore on exit.

    Both UNets must have the same block structure (layer names are matched). Yields the bank; it is
    cleared on exit.
    """
    bank = bank if bank is not None else ReferenceBank()
    names_w = _self_attention_names(reference_unet)
    names_r = _self_attention_names(denoising_unet)
    if names_w != names_r:
        raise ValueError("reference and denoising UNets have different self-attention layers")
    saved_w = dict(reference_unet.attn_processors)
    saved_r = dict(denoising_unet.attn_processors)
    new_w, new_r = dict(saved_w), dict(saved_r)
    for name in names_w:
        new_w[name] = ReferenceWriteProcessor(bank, name)
        new_r[name] = ReferenceReadProcessor(bank, name)
    reference_unet.set_attn_processor(new_w)
    denoising_unet.set_attn_processor(new_r)
    try:
        yield bank
    finally:
        reference_unet.set_attn_processor(saved_w)
        denoising_unet.set_attn_processor(saved_r)
        bank.clear()
