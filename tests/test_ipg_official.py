"""Loading the official Pose2ID release: full-size key/shape mapping without the real files, and a
small real-tensor round trip through the same loader."""

from __future__ import annotations

import json

import pytest
import torch

from pose2id_demo.ipg.configs import SD15_UNET_CONFIG
from pose2id_demo.ipg.official import (
    OFFICIAL_FILES,
    build_official_modules,
    load_official,
    load_official_modules,
    map_official_state_dict,
)

# Official parameter names of modules whose code is simple enough to spell out here (from the release's
# IFR and PoseGuider definitions): the loader must accept exactly these.
OFFICIAL_IFR_KEYS = {"proj_motion.weight", "proj_motion.bias", "norm_motion.weight", "norm_motion.bias"}
OFFICIAL_POSE_GUIDER_KEYS = {"conv_in.weight", "conv_in.bias", "conv_out.weight", "conv_out.bias"} | {
    f"blocks.{i}.{p}" for i in range(6) for p in ("weight", "bias")}


@pytest.mark.slow
def test_full_size_official_checkpoints_load_strictly(tmp_path):
    """SD1.5-size modules on the meta device; 'checkpoints' of meta tensors under the official names."""
    modules = build_official_modules(device="meta")
    assert set(modules["ifr"].state_dict()) == OFFICIAL_IFR_KEYS
    assert set(modules["pose_guider"].state_dict()) == OFFICIAL_POSE_GUIDER_KEYS
    assert modules["ifr"].proj_motion.weight.shape == (20 * 768, 3840)
    assert modules["pose_guider"].conv_out.weight.shape == (320, 128, 3, 3)
    n_params = sum(p.numel() for p in modules["denoising_unet"].parameters())
    assert 855e6 < n_params < 865e6  # the SD1.5 UNet (859.5 M)
    for name, filename in OFFICIAL_FILES.items():
        sd = dict(modules[name].state_dict())
        if name == "denoising_unet":  # as written by a DataParallel-wrapped 3D UNet: prefix + a 5-D conv kernel
            sd = {f"module.{k}": v for k, v in sd.items()}
            w = sd["module.conv_in.weight"]
            sd["module.conv_in.weight"] = torch.empty(w.shape[0], w.shape[1], 1, *w.shape[2:], device="meta")
        torch.save(sd, tmp_path / filename)
    loaded = load_official_modules(tmp_path, device="meta")
    for name in OFFICIAL_FILES:
        ours = loaded[name].state_dict()
        ref = modules[name].state_dict()
        assert set(ours) == set(ref)
        assert all(ours[k].shape == ref[k].shape for k in ref)
    # a missing key fails (strict)
    sd = dict(modules["ifr"].state_dict())
    sd.pop("norm_motion.bias")
    torch.save(sd, tmp_path / "IFR.pth")
    with pytest.raises(RuntimeError, match="norm_motion.bias"):
        load_official_modules(tmp_path, device="meta")


@pytest.mark.slow
def test_official_loader_real_tensors_small_unet(tmp_path):
    """Real values through the loader (a small UNet via the optional SD config file): exact copies."""
    cfg = dict(SD15_UNET_CONFIG, block_out_channels=(32, 64, 64, 64), cross_attention_dim=16, norm_num_groups=8,
               layers_per_block=1, attention_head_dim=2)
    (tmp_path / "stable-diffusion-v1-5" / "unet").mkdir(parents=True)
    (tmp_path / "stable-diffusion-v1-5" / "unet" / "config.json").write_text(
        json.dumps({**cfg, "_class_name": "UNet2DConditionModel"}))
    torch.manual_seed(0)
    src = build_official_modules(cfg, device="cpu")
    for name, filename in OFFICIAL_FILES.items():
        sd = {k: torch.randn_like(v) for k, v in src[name].state_dict().items()}
        src[name].load_state_dict(sd)
        if name == "denoising_unet":
            sd = {k: (v.unsqueeze(2) if v.ndim == 4 else v) for k, v in sd.items()}  # true 3D kernels (O, I, 1, k, k)
        torch.save(sd, tmp_path / filename)
    loaded = load_official_modules(tmp_path, device="cpu")
    for name in OFFICIAL_FILES:
        for k, v in src[name].state_dict().items():
            assert torch.equal(loaded[name].state_dict()[k], v), (name, k)
    with pytest.raises(FileNotFoundError, match="transformer_20.pth"):  # no reid= and no TransReID weights
        load_official(tmp_path, device="cpu")


def test_official_modules_follow_the_sd15_preset():
    """The official loader builds the registry's ``sd15`` preset: its UNet config, Pose Guider widths, IFR
    tokens and image size (one registry for training, the builder and the loader)."""
    from pose2id_demo.ipg import official
    from pose2id_demo.ipg.configs import PRESETS

    preset = PRESETS["sd15"]
    assert official.PRESET is preset
    modules = build_official_modules(device="meta")
    assert tuple(modules["pose_guider"].config.block_out_channels) == preset.pose_widths
    assert modules["ifr"].proj_motion.weight.shape == (preset.ifr_tokens * preset.ifr_dim, official.REID_DIM)
    assert tuple(modules["reference_unet"].config.block_out_channels) == preset.unet["block_out_channels"]
    assert modules["denoising_unet"].config.cross_attention_dim == preset.unet["cross_attention_dim"] == preset.ifr_dim


def test_map_official_state_dict_rules():
    sd = {"module.a.weight": torch.zeros(2, 3, 1, 3, 3), "b": torch.zeros(4)}
    out = map_official_state_dict(sd)
    assert set(out) == {"a.weight", "b"} and out["a.weight"].shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="motion"):
        map_official_state_dict({"down_blocks.0.motion_modules.0.x": torch.zeros(1)})
