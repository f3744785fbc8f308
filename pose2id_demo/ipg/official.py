"""Load the official Pose2ID IPG release into :class:`~pose2id_demo.ipg.pipeline.Pose2IDPipeline`.

Expected folder (``--ipg-weights DIR``; file names as released in the Hugging Face repo ``yuanc3/Pose2ID``)::

    DIR/reference_unet.pth     SD1.5 UNet2DConditionModel state dict
    DIR/denoising_unet.pth     Animate-Anyone UNet3DConditionModel (motion module off) state dict
    DIR/pose_guider.pth        PoseGuider(320, 3, (16, 32, 64, 128))
    DIR/IFR.pth                IFR: proj_motion Linear(3840, 20*768), norm_motion LayerNorm(768)
    DIR/transformer_20.pth     TransReID ViT-B/16 + JPM (Market-1501, no camera ids): the ReID feature for IFR
    DIR/stable-diffusion-v1-5/unet/config.json   optional (else the built-in SD1.5 UNet config)
    DIR/sd-vae-ft-mse/         diffusers AutoencoderKL folder (config.json + weights), required

Key mapping. The official 3D denoising UNet is built from the 2D SD1.5 UNet by replacing ``nn.Conv2d``
and ``nn.GroupNorm`` with "inflated" subclasses that apply them frame by frame; with the motion module off
(``motion_modules`` lists hold no parameters) and no temporal attention, its parameter *names* are those
of the diffusers 2D UNet (``down_blocks.N.resnets.M.conv1.weight``,
``...attentions.M.transformer_blocks.0.attn1.to_q.weight``, ``conv_in``, ``time_embedding.linear_1`` …) and
its conv kernels keep 2D shapes. :func:`map_official_state_dict` therefore only (a) strips a
``module.`` prefix left by DataParallel/accelerate, (b) squeezes a frame axis of size 1 out of any 5-D
kernel ``(O, I, 1, k, k)`` should a checkpoint carry true 3D convs, and (c) rejects motion-module keys
(those would need the motion module, which Pose2ID does not use). Everything is loaded with
``strict=True``, so any other difference fails loudly.

ReID: IFR's input is the 3840-d TransReID (ViT-B/16, JPM) feature of ``transformer_20.pth``, read by
:func:`pose2id_demo.reid.transreid.load_transreid` (our implementation; run in fp32 as released). To use
another extractor pass it as ``reid=`` — any object with ``preprocess(list[PIL.Image]) -> Tensor``
(256×128, mean = std = 0.5) and ``model(Tensor) -> (B, 3840)``; ``transformer_20.pth`` is then not needed.

Files are read with ``torch.load(weights_only=True)``; modules are built on the meta device and the
tensors assigned, so no random initialisation of the 860 M-parameter UNets is ever computed. On CUDA the
pipeline runs in fp16 (the VAE in fp32 is not needed: sd-vae-ft-mse decodes fine in fp16).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from pose2id_demo.ipg.configs import SD15_IMAGE_SIZE, SD15_UNET_CONFIG
from pose2id_demo.ipg.ifr import IFR
from pose2id_demo.ipg.pipeline import Pose2IDPipeline, make_scheduler
from pose2id_demo.ipg.pose_encoder import PoseGuider
from pose2id_demo.ipg.unet import PoseConditionedUNet2DConditionModel
from pose2id_demo.reid.transreid import check_materialised, load_transreid

logger = logging.getLogger(__name__)

OFFICIAL_FILES = {
    "reference_unet": "reference_unet.pth",
    "denoising_unet": "denoising_unet.pth",
    "pose_guider": "pose_guider.pth",
    "ifr": "IFR.pth",
}
REID_FILE = "transformer_20.pth"
_UNET_ARCH_KEYS = tuple(SD15_UNET_CONFIG)


def sd15_unet_config(directory: str | Path | None = None) -> dict[str, Any]:
    """SD1.5 UNet architecture: ``DIR/stable-diffusion-v1-5/unet/config.json`` if present, else built in."""
    if directory is not None:
        path = Path(directory) / "stable-diffusion-v1-5" / "unet" / "config.json"
        if path.exists():
            cfg = json.loads(path.read_text())
            return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in _UNET_ARCH_KEYS}
    return dict(SD15_UNET_CONFIG)


def build_official_modules(unet_config: dict[str, Any] | None = None, device: str | torch.device = "meta"
                           ) -> dict[str, torch.nn.Module]:
    """The four trained modules at official sizes (on the meta device by default: no memory, no init)."""
    cfg = dict(unet_config or SD15_UNET_CONFIG)
    with torch.device(device):
        return {
            "reference_unet": UNet2DConditionModel(**cfg),
            "denoising_unet": PoseConditionedUNet2DConditionModel(**cfg),
            "pose_guider": PoseGuider(conditioning_embedding_channels=cfg["block_out_channels"][0],
                                      conditioning_channels=3, block_out_channels=(16, 32, 64, 128)),
            "ifr": IFR(in_dim=3840, num_tokens=20, dim=cfg["cross_attention_dim"]),
        }


def map_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official checkpoint keys/tensors → ours (see the module docstring for the three rules)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if ".motion_modules." in key:
            raise ValueError(f"checkpoint has motion-module weights ({key}); Pose2ID's denoising UNet has none")
        if value.ndim == 5 and value.shape[2] == 1:  # a true 3D conv over a length-1 frame axis
            value = value[:, :, 0]
        out[key] = value
    return out


def load_official_modules(directory: str | Path, device: str | torch.device = "cpu",
                          dtype: torch.dtype = torch.float32) -> dict[str, torch.nn.Module]:
    """Read the four ``.pth`` files into freshly built modules with ``strict=True``."""
    directory = Path(directory)
    missing = [f for f in OFFICIAL_FILES.values() if not (directory / f).exists()]
    if missing:
        raise FileNotFoundError(f"{directory}: missing official IPG files {missing}")
    modules = build_official_modules(sd15_unet_config(directory), device="meta")
    for name, filename in OFFICIAL_FILES.items():
        where = "cpu" if str(device) != "meta" else "meta"
        sd = torch.load(directory / filename, map_location=where, weights_only=True)
        modules[name].load_state_dict(map_official_state_dict(sd), strict=True, assign=True)
        if str(device) != "meta":
            check_materialised(modules[name], filename)
            modules[name] = modules[name].to(device=device, dtype=dtype).eval()
        logger.info("loaded %s (%d tensors)", filename, len(sd))
    return modules


def default_dtype(device: str | torch.device) -> torch.dtype:
    """fp16 on CUDA (as released), fp32 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def load_official(directory: str | Path, device: str | torch.device = "cpu", reid: Any = None,
                  vae_dir: str | Path | None = None, dtype: torch.dtype | None = None) -> Pose2IDPipeline:
    """The official IPG as a :class:`Pose2IDPipeline` (512×256, DDIM as released).

    Args:
        directory: the folder described in the module docstring (``--ipg-weights DIR``).
        device: e.g. ``"cuda"`` (fp16) or ``"cpu"`` (fp32; very slow at this size).
        reid: a 3840-d ReID extractor overriding the TransReID of ``directory/transformer_20.pth`` (see the
            module docstring); ``None`` (default) loads that file, and raises if it is missing.
        vae_dir: sd-vae-ft-mse folder; default ``directory/sd-vae-ft-mse``.
    """
    directory = Path(directory)
    if reid is None and not (directory / REID_FILE).exists():
        raise FileNotFoundError(
            f"{directory / REID_FILE}: the official IPG needs the TransReID weights that feed IFR (3840-d); put "
            f"{REID_FILE} from the Hugging Face repo yuanc3/Pose2ID there, or pass reid=<extractor>")
    dtype = dtype or default_dtype(device)
    if reid is None:
        reid = load_transreid(directory / REID_FILE, device=device, dtype=torch.float32)
    modules = load_official_modules(directory, device=device, dtype=dtype)
    vae_path = Path(vae_dir) if vae_dir is not None else directory / "sd-vae-ft-mse"
    if not (vae_path / "config.json").exists():
        raise FileNotFoundError(f"{vae_path}: sd-vae-ft-mse (diffusers AutoencoderKL folder) not found")
    vae = AutoencoderKL.from_pretrained(vae_path, local_files_only=True, torch_dtype=dtype).to(device).eval()
    pipe = Pose2IDPipeline(**modules, vae=vae, scheduler=make_scheduler(), reid=reid, image_size=SD15_IMAGE_SIZE)
    return pipe.to(device)


def add_cli_argument(parser) -> None:
    """``--ipg-weights DIR``: use the official IPG release in DIR (see :mod:`pose2id_demo.ipg.official`)."""
    parser.add_argument("--ipg-weights", metavar="DIR", default=None,
                        help="folder with the official Pose2ID IPG files (reference_unet.pth, denoising_unet.pth, "
                             "pose_guider.pth, IFR.pth, transformer_20.pth, sd-vae-ft-mse/); loaded with "
                             "pose2id_demo.ipg.load_official(DIR, device). Default: the shipped tiny IPG.")
