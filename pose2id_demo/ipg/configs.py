"""Named IPG configurations: ``tiny`` (trained here on 2 CPU cores) and ``sd15`` (the official sizes).

The same classes serve both (diffusers style); only the config dicts differ.

- ``sd15``: SD1.5 UNet (320/640/1280/1280, cross-attention 768), AutoencoderKL sd-vae-ft-mse (×8, 4 ch),
  512×256 images, Pose Guider (16, 32, 64, 128) → 320, IFR 3840 → 20 × 768.
- ``tiny``: 64×32 images in the 16×16×8 latent space of a small trained KL autoencoder (the UNets'
  ``in_channels`` follow the autoencoder's ``latent_channels``; the first one had 8)
  (:mod:`pose2id_demo.ipg.autoencoder`; the lossless pixel-unshuffle space of :mod:`pose2id_demo.ipg.vae` was
  tried first and rejected, see there),
  UNets with blocks (32, 64, 64) (1.5 M parameters each), cross-attention width 64, IFR ``reid_dim`` → 8 × 64, and the Pose Guider
  with widths (16, 32, 64) → 32 on a 64×32 skeleton (×4 downsampling onto the 16×8 latent). Same
  structure as §6.3, one stage fewer: the ×8 variant needs a 128×64 skeleton whose full-resolution convs
  alone cost more than both tiny UNets (measured: a training step at batch 8 took 0.78 s with it vs
  0.31 s without, 1 thread). Width: at batch 16 on the shared machine a training step took 0.78 s with
  (32, 64, 64) vs 2.1 s with (48, 96, 96), so the narrower UNets get ~3× the steps in the 90-minute budget.
"""

from __future__ import annotations

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
TINY_IFR = dict(num_tokens=8, dim=64)
TINY_IMAGE_SIZE = (64, 32)
SD15_IMAGE_SIZE = (512, 256)


def build_components(config: str, reid_dim: int, unet_overrides: dict[str, Any] | None = None,
                     vae: Any = None, pose_widths: tuple[int, ...] | list[int] | None = None) -> dict[str, Any]:
    """Fresh (random-init) trainable modules for ``config`` ∈ {"tiny", "sd15"} around a given (trained) ``vae``.

    The UNets' latent channels follow the VAE: 8 for the tiny autoencoder of
    :mod:`pose2id_demo.ipg.autoencoder`, 4 for SD's ``AutoencoderKL``, 48 for the ×4 :class:`PixelUnshuffleVAE` (the default
    when ``vae`` is None for tiny). ``pose_widths`` overrides the Pose Guider's widths: each extra width is one
    more stride-2 stage, i.e. a skeleton drawn at twice the resolution (e.g. ``(8, 16, 32, 64)`` reads a
    128 × 64 skeleton for the 16 × 8 tiny latent).
    """
    if config == "tiny":
        if vae is None:
            vae = PixelUnshuffleVAE(in_channels=3, factor=4, sample_size=TINY_IMAGE_SIZE)
        ch = vae.latent_channels if isinstance(vae, PixelUnshuffleVAE) else vae.config.latent_channels
        ucfg = {**TINY_UNET_CONFIG, "in_channels": ch, "out_channels": ch, **(unet_overrides or {})}
        ifr = IFR(in_dim=reid_dim, **TINY_IFR)
        default_pose_widths: tuple[int, ...] = (16, 32, 64)
    elif config == "sd15":
        ucfg = {**SD15_UNET_CONFIG, **(unet_overrides or {})}
        ifr = IFR(in_dim=reid_dim, num_tokens=20, dim=768)
        default_pose_widths = (16, 32, 64, 128)
    else:
        raise ValueError(f"unknown IPG config {config!r}; use 'tiny' or 'sd15'")
    pose_widths = tuple(int(c) for c in pose_widths) if pose_widths is not None else default_pose_widths
    return dict(
        reference_unet=UNet2DConditionModel(**ucfg),
        denoising_unet=PoseConditionedUNet2DConditionModel(**ucfg),
        pose_guider=PoseGuider(conditioning_embedding_channels=ucfg["block_out_channels"][0],
                               conditioning_channels=3, block_out_channels=pose_widths),
        ifr=ifr,
        vae=vae,
    )
