"""A Hugging Face Hub cache folder written by a test: the official release at a tiny architecture under its real
file and key names, as ``hf_hub_download`` lays a cache out (``models--OWNER--NAME/refs/main`` naming a commit,
``snapshots/<commit>/<path>``), so that the real resolution code can run offline against it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn

from pose2id_demo.ipg.configs import SD15_UNET_CONFIG
from pose2id_demo.ipg.official import OFFICIAL_FILES, REID_FILE, build_official_modules
from pose2id_demo.reid import Backbone

#: A small UNet with SD1.5's block structure (4 levels, ×8 latent like SD's VAE).
TINY_UNET = dict(SD15_UNET_CONFIG, block_out_channels=(32, 64, 64, 64), cross_attention_dim=16, norm_num_groups=8,
                 layers_per_block=1, attention_head_dim=2)
TINY_VAE = dict(block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=2, layers_per_block=1)
COMMITS = {"yuanc3/Pose2ID": "a" * 40, "stable-diffusion-v1-5/stable-diffusion-v1-5": "b" * 40,
           "stabilityai/sd-vae-ft-mse": "c" * 40}


def snapshot(cache: Path, repo: str) -> Path:
    """``cache/models--OWNER--NAME/snapshots/<commit>`` with ``refs/main`` pointing at it."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMITS[repo])
    snap = folder / "snapshots" / COMMITS[repo]
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_hub_cache(cache: Path, prefix: str = "", seed: int = 0) -> dict[str, nn.Module]:
    """The release under ``prefix`` ("" or "pretrained/") in the yuanc3/Pose2ID snapshot, SD1.5's
    ``unet/config.json`` and a tiny sd-vae-ft-mse; ``transformer_20.pth`` is a placeholder (tests feed IFR
    from :func:`tiny_reid`). Returns the random modules written."""
    torch.manual_seed(seed)
    release = snapshot(cache, "yuanc3/Pose2ID")
    modules = build_official_modules(TINY_UNET, device="cpu")
    for name, filename in OFFICIAL_FILES.items():
        with torch.no_grad():
            for p in modules[name].parameters():  # non-zero everywhere (the pose guider's conv_out starts at 0)
                p.add_(torch.randn_like(p) * 0.02)
        (release / prefix).mkdir(parents=True, exist_ok=True)
        torch.save(modules[name].state_dict(), release / prefix / filename)
    (release / prefix / REID_FILE).write_bytes(b"not the TransReID weights")
    sd = snapshot(cache, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    (sd / "unet").mkdir(exist_ok=True)
    (sd / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel", **TINY_UNET}))
    AutoencoderKL(**TINY_VAE).save_pretrained(snapshot(cache, "stabilityai/sd-vae-ft-mse"), safe_serialization=True)
    return modules


def release_file(cache: Path, name: str) -> Path:
    """Where ``name`` of the release lies in ``cache`` (either layout)."""
    snap = cache / "models--yuanc3--Pose2ID" / "snapshots" / COMMITS["yuanc3/Pose2ID"]
    return next(p for p in (snap / name, snap / "pretrained" / name) if p.exists())


class _ColourTo3840(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 3840)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3)))


def tiny_reid() -> Backbone:
    """A 3840-d extractor standing in for TransReID (IFR's input size)."""
    torch.manual_seed(1)
    return Backbone(name="test-3840", model=_ColourTo3840(), input_size=(256, 128), mean=(0.5,) * 3, std=(0.5,) * 3,
                    dim=3840, weights_id="test")
