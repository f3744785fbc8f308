"""IPG presets: named, serialisable configurations of the one architecture (paper §3.2.2, §6.3).

A preset fixes the UNets' config (both UNets share it), the IFR's token count and width, the Pose Guider's
widths, the image size and the training defaults. ``tiny`` and ``sd15`` are the same classes with two
configs (diffusers style); a new preset is one more entry in :data:`PRESETS`, which the training script's
``--config`` choices, :func:`build_components`, the recorded run state (:meth:`IPGPreset.to_dict` /
:meth:`IPGPreset.from_dict`) and the official loader (:mod:`pose2id_demo.ipg.official`, the ``sd15`` entry)
all read. A trained pipeline folder carries its modules' configs, so loading it needs no preset.

- ``sd15``: the official sizes — SD1.5 UNet (320/640/1280/1280, cross-attention 768), AutoencoderKL
  sd-vae-ft-mse (×8, 4 channels), 512 × 256 images, Pose Guider (16, 32, 64, 128) → 320, IFR 3840 → 20 × 768.
- ``tiny``: what 2 CPU cores train — 64 × 32 images in the 16 × 16 × 8 latent of a small trained KL
  autoencoder (:mod:`pose2id_demo.ipg.autoencoder`; the UNets' ``in_channels`` follow its
  ``latent_channels``), UNets with blocks (32, 64, 64) and one layer per block (1.5 M parameters each),
  cross-attention width 64, IFR ``reid_dim`` → 8 × 64, Pose Guider (16, 32, 64) → 32 on a 64 × 32 skeleton
  (×4 down onto the 16 × 8 latent: §6.3's structure with one stage fewer).
- ``tiny-wide``: ``tiny`` with UNet blocks (48, 96, 96) (3.3 M parameters each).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from diffusers import UNet2DConditionModel

from pose2id_demo.ipg.ifr import IFR
from pose2id_demo.ipg.pose_encoder import PoseGuider
from pose2id_demo.ipg.unet import PoseConditionedUNet2DConditionModel
from pose2id_demo.ipg.vae import PixelUnshuffleVAE

# The ``unet/config.json`` of stable-diffusion-v1-5 (architecture fields).
SD15_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8,
)

TINY_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=(16, 8), in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8, cross_attention_dim=64,
    attention_head_dim=4,
)


@dataclass(frozen=True)
class IPGPreset:
    """One IPG configuration. ``unet`` is a ``UNet2DConditionModel`` config (its channels in / out are
    replaced by the autoencoder's latent channels where the preset says ``latent_from_vae``)."""

    name: str
    unet: dict[str, Any]
    ifr_tokens: int
    ifr_dim: int
    pose_widths: tuple[int, ...]
    image_size: tuple[int, int]  # (H, W) of the generated image
    lr: float
    batch_size: int
    warmup: int
    latent_from_vae: bool = True
    trainable_here: bool = True
    description: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["unet"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.unet.items()}
        d["pose_widths"], d["image_size"] = list(self.pose_widths), list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IPGPreset:
        d = dict(d)
        d["unet"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d["unet"].items()}
        d["pose_widths"], d["image_size"] = tuple(d["pose_widths"]), tuple(d["image_size"])
        return cls(**d)

    def replace(self, **changes: Any) -> IPGPreset:
        return dataclasses.replace(self, **changes)


TINY = IPGPreset("tiny", TINY_UNET_CONFIG, ifr_tokens=8, ifr_dim=64, pose_widths=(16, 32, 64), image_size=(64, 32),
                 lr=5e-4, batch_size=16, warmup=200, description="64x32, UNet blocks (32, 64, 64), CPU-trained")
PRESETS: dict[str, IPGPreset] = {
    "tiny": TINY,
    "tiny-wide": TINY.replace(name="tiny-wide", unet={**TINY_UNET_CONFIG, "block_out_channels": (48, 96, 96)},
                              description="tiny with UNet blocks (48, 96, 96)"),
    "sd15": IPGPreset("sd15", SD15_UNET_CONFIG, ifr_tokens=20, ifr_dim=768, pose_widths=(16, 32, 64, 128),
                      image_size=(512, 256), lr=1e-5, batch_size=4, warmup=1, latent_from_vae=False,
                      trainable_here=False, description="the official SD1.5-based sizes (GPU)"),
}


def get_preset(preset: str | IPGPreset) -> IPGPreset:
    """The registered preset of that name (a preset passes through); ValueError naming the choices."""
    if isinstance(preset, IPGPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown IPG preset {preset!r}; choose from {', '.join(PRESETS)}") from None


def build_components(preset: str | IPGPreset, reid_dim: int, unet_overrides: dict[str, Any] | None = None,
                     vae: Any = None, pose_widths: tuple[int, ...] | list[int] | None = None) -> dict[str, Any]:
    """Fresh (random-init) trainable modules of ``preset`` around a given (trained) ``vae``.

    The UNets' latent channels follow the VAE where the preset says so (16 for the shipped tiny
    autoencoder, 48 for the ×4 :class:`PixelUnshuffleVAE`, which stands in when ``vae`` is None).
    ``pose_widths`` overrides the Pose Guider's widths: each extra width is one more stride-2 stage, i.e. a
    skeleton drawn at twice the resolution (e.g. ``(8, 16, 32, 64)`` reads a 128 × 64 skeleton for the
    16 × 8 tiny latent).
    """
    p = get_preset(preset)
    ucfg = dict(p.unet)
    if p.latent_from_vae:
        if vae is None:
            vae = PixelUnshuffleVAE(in_channels=3, factor=4, sample_size=p.image_size)
        ch = vae.latent_channels if isinstance(vae, PixelUnshuffleVAE) else vae.config.latent_channels
        ucfg.update(in_channels=ch, out_channels=ch)
    ucfg.update(unet_overrides or {})
    widths = tuple(int(c) for c in pose_widths) if pose_widths is not None else p.pose_widths
    ifr = IFR(in_dim=reid_dim, num_tokens=p.ifr_tokens, dim=p.ifr_dim)  # first: the seeded init order of every run
    return dict(
        reference_unet=UNet2DConditionModel(**ucfg),
        denoising_unet=PoseConditionedUNet2DConditionModel(**ucfg),
        pose_guider=PoseGuider(conditioning_embedding_channels=ucfg["block_out_channels"][0],
                               conditioning_channels=3, block_out_channels=widths),
        ifr=ifr,
        vae=vae,
    )
