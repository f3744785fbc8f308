"""TransReID (the release's ReID network feeding IFR): official key set at full size, JPM semantics
against a loop-based reference, the extractor, and load_official picking up transformer_20.pth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from pose2id_demo.ipg import official
from pose2id_demo.reid.transreid import (
    Attention,
    TransReIDBackbone,
    TransReIDConfig,
    build_transreid,
    load_transreid,
)

TINY = TransReIDConfig(img_size=(64, 32), embed_dim=32, depth=3, num_heads=2, num_classes=7, base_num_classes=5)


def official_transreid_shapes(depth: int = 12, dim: int = 768, mlp: int = 3072, patches: int = 210,
                              patch: int = 16, train_ids: int = 751, imagenet_classes: int = 1000
                              ) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``transformer_20.pth``, spelled out from the release's ``build_transformer_local``
    (``IPG/reidmodel/trainsreid/make_model.py``) and ``TransReID`` (``.../backbones/vit_pytorch.py``)."""
    def block(prefix: str) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.norm1.weight": (dim,), f"{prefix}.norm1.bias": (dim,),
                f"{prefix}.attn.qkv.weight": (3 * dim, dim), f"{prefix}.attn.qkv.bias": (3 * dim,),
                f"{prefix}.attn.proj.weight": (dim, dim), f"{prefix}.attn.proj.bias": (dim,),
                f"{prefix}.norm2.weight": (dim,), f"{prefix}.norm2.bias": (dim,),
                f"{prefix}.mlp.fc1.weight": (mlp, dim), f"{prefix}.mlp.fc1.bias": (mlp,),
                f"{prefix}.mlp.fc2.weight": (dim, mlp), f"{prefix}.mlp.fc2.bias": (dim,)}

    shapes = {"base.cls_token": (1, 1, dim), "base.pos_embed": (1, patches + 1, dim),
              "base.patch_embed.proj.weight": (dim, 3, patch, patch), "base.patch_embed.proj.bias": (dim,)}
    for i in range(depth):
        shapes.update(block(f"base.blocks.{i}"))
    shapes.update({"base.norm.weight": (dim,), "base.norm.bias": (dim,),
                   "base.fc.weight": (imagenet_classes, dim), "base.fc.bias": (imagenet_classes,)})
    for branch in ("b1", "b2"):
        shapes.update(block(f"{branch}.0"))
        shapes.update({f"{branch}.1.weight": (dim,), f"{branch}.1.bias": (dim,)})
    for suffix in ("", "_1", "_2", "_3", "_4"):
        shapes[f"classifier{suffix}.weight"] = (train_ids, dim)
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"bottleneck{suffix}.{p}"] = (dim,)
        shapes[f"bottleneck{suffix}.num_batches_tracked"] = ()
    return shapes


def _meta_state_dict(shapes: dict[str, tuple[int, ...]], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: torch.empty(s, device="meta", dtype=torch.long if k.endswith("num_batches_tracked")
                                    else torch.float32) for k, s in shapes.items()}


def _random_tiny(config: TransReIDConfig = TINY, seed: int = 0):
    torch.manual_seed(seed)
    model = build_transreid(config, device="cpu")
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else torch.randn_like(t) * 0.3)
    return model.eval()


def _reference_forward(model, x: torch.Tensor) -> torch.Tensor:
    """Upstream's inference output with the JPM indices computed by explicit loops over token positions."""
    cfg = model.config
    tokens = model.base(x)                        # (B, 1 + N, D): cls at 0
    n = tokens.shape[1] - 1
    if cfg.rearrange:
        seq = list(range(cfg.shift_num, n + 1)) + list(range(1, cfg.shift_num))  # cat(t[:, s:], t[:, 1:s])
        if len(seq) % cfg.shuffle_groups:
            seq.append(seq[-2])
        per = len(seq) // cfg.shuffle_groups
        order = []
        for j in range(per):                      # view(B, G, per, D).transpose(1, 2)
            for g in range(cfg.shuffle_groups):
                order.append(seq[g * per + j])
    else:
        order = list(range(1, n + 1))
    length = n // cfg.divide_length
    g_feat = model.b1(tokens)[:, 0]
    l_feats = [model.b2(tokens[:, [0] + order[k * length:(k + 1) * length]])[:, 0] for k in range(4)]
    if cfg.neck_feat == "after":
        g_feat = model.bottleneck(g_feat)
        l_feats = [getattr(model, f"bottleneck_{k + 1}")(f) for k, f in enumerate(l_feats)]
    return torch.cat([g_feat] + [f / 4 for f in l_feats], dim=1)


def test_full_size_official_key_set_loads_strictly(tmp_path):
    """The release's keys (with a DataParallel prefix) load strictly into the default config, on meta."""
    shapes = official_transreid_shapes()
    model = build_transreid()
    assert TransReIDConfig().grid == (21, 10) and model.dim == 3840
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    torch.save(_meta_state_dict(shapes, prefix="module."), tmp_path / "transformer_20.pth")
    reid = load_transreid(tmp_path / "transformer_20.pth", device="meta")
    assert {k: tuple(v.shape) for k, v in reid.model.state_dict().items()} == shapes
    assert reid.dim == 3840 and reid.input_size == (256, 128) and reid.mean == reid.std == (0.5, 0.5, 0.5)
    n_params = sum(p.numel() for p in reid.model.parameters())
    assert 103e6 < n_params < 104e6  # ViT-B with its ImageNet fc 86.6 M + b1, b2 14.2 M + 5 classifiers 2.9 M
    assert reid.model(torch.empty(2, 3, 256, 128, device="meta")).shape == (2, 3840)

    bad = _meta_state_dict(shapes)
    bad.pop("b2.1.bias")
    torch.save(bad, tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match="b2.1.bias"):
        load_transreid(tmp_path / "missing.pth", device="meta")
    sie = _meta_state_dict(shapes)
    sie["base.sie_embed"] = torch.empty(6, 1, 768, device="meta")
    torch.save(sie, tmp_path / "sie.pth")
    with pytest.raises(ValueError, match="camera"):
        load_transreid(tmp_path / "sie.pth", device="meta")


def test_head_sizes_come_from_the_file(tmp_path):
    shapes = {k: v for k, v in official_transreid_shapes(train_ids=12).items()
              if not k.startswith(("classifier", "base.fc"))}
    shapes.update({"classifier.weight": (12, 768)} | {f"classifier_{i}.weight": (12, 768) for i in range(1, 5)})
    torch.save(_meta_state_dict(shapes), tmp_path / "t.pth")
    reid = load_transreid(tmp_path / "t.pth", device="meta")
    assert reid.model.config.num_classes == 12 and reid.model.config.base_num_classes == 0
    assert set(reid.model.state_dict()) == set(shapes)


def test_tiny_shape_determinism_and_batch_vs_single():
    model = _random_tiny()
    x = torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, 5 * 32)
        assert torch.equal(out, model(x))
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(out, single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("img_size, rearrange, neck_feat", [
    ((64, 32), True, "before"),   # 5 × 2 = 10 patches, even
    ((64, 40), True, "before"),   # 5 × 3 = 15 patches: the second-to-last token is appended before shuffling
    ((64, 40), True, "after"),
    ((64, 32), False, "before"),
])
def test_jpm_matches_loop_reference(img_size, rearrange, neck_feat):
    cfg = dataclasses.replace(TINY, img_size=img_size, rearrange=rearrange, neck_feat=neck_feat)
    model = _random_tiny(cfg)
    x = torch.randn(2, 3, *img_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference_forward(model, x), atol=1e-5, rtol=1e-5)


def test_vit_patches_row_major_and_attention():
    """Patch (r, c) is the conv over the window at (12 r, 12 c), token 1 + r·cols + c; attention = explicit
    per-head softmax(q kᵀ / sqrt(head_dim)) v."""
    model = _random_tiny()
    x = torch.randn(1, 3, 64, 32, generator=torch.Generator().manual_seed(3))
    rows, cols = TINY.grid
    proj = model.base.patch_embed.proj
    with torch.no_grad():
        tokens = model.base.patch_embed(x)
        assert tokens.shape == (1, rows * cols, 32)
        for r, c in [(0, cols - 1), (rows - 1, 0), (2, 1)]:
            window = x[0, :, 12 * r:12 * r + 16, 12 * c:12 * c + 16]
            expected = (proj.weight * window).sum(dim=(1, 2, 3)) + proj.bias
            torch.testing.assert_close(tokens[0, r * cols + c], expected, atol=1e-5, rtol=1e-5)

        attn = Attention(8, num_heads=2, qkv_bias=True)
        h = torch.randn(2, 5, 8)
        q, k, v = attn.qkv(h).split(8, dim=-1)
        heads = []
        for i in range(2):
            sl = slice(4 * i, 4 * (i + 1))
            w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
            heads.append(w @ v[..., sl])
        torch.testing.assert_close(attn(h), attn.proj(torch.cat(heads, dim=-1)), atol=1e-5, rtol=1e-5)


def test_tiny_file_round_trip_and_extractor(tmp_path):
    src = _random_tiny()
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "tiny.pth")
    reid = load_transreid(tmp_path / "tiny.pth", device="cpu", config=dataclasses.replace(TINY, num_classes=0))
    assert isinstance(reid, TransReIDBackbone) and reid.dim == 160 and not reid.model.training
    for k, v in src.state_dict().items():
        assert torch.equal(reid.model.state_dict()[k], v), k
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 50, 3), dtype=np.uint8))
    x = reid.preprocess([img, np.asarray(img)])
    expected = torch.from_numpy(np.asarray(img.resize((32, 64), Image.Resampling.LANCZOS), np.float32))
    torch.testing.assert_close(x[0], (expected / 255 * 2 - 1).permute(2, 0, 1))
    torch.testing.assert_close(x[1], x[0])
    with torch.no_grad():
        torch.testing.assert_close(reid.model(x), src(x))


def test_load_official_uses_transformer_20(tmp_path, monkeypatch):
    """Without reid=, load_official reads DIR/transformer_20.pth (full size, meta); heavy parts stubbed."""
    captured = {}

    class FakeVAE:
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return cls()

        def to(self, *args, **kwargs):
            return self

        def eval(self):
            return self

    class FakePipeline:
        def __init__(self, **kwargs):
            captured.update(kwargs)

        def to(self, device):
            return self

    monkeypatch.setattr(official, "load_official_modules", lambda directory, device, dtype: {})
    monkeypatch.setattr(official, "AutoencoderKL", FakeVAE)
    monkeypatch.setattr(official, "Pose2IDPipeline", FakePipeline)
    (tmp_path / "sd-vae-ft-mse").mkdir()
    (tmp_path / "sd-vae-ft-mse" / "config.json").write_text("{}")
    for name in official.OFFICIAL_FILES.values():  # the release's other files must be there (their loader is stubbed)
        (tmp_path / name).write_bytes(b"")
    torch.save(_meta_state_dict(official_transreid_shapes()), tmp_path / official.REID_FILE)

    official.load_official(tmp_path, device="meta")
    reid = captured["reid"]
    assert isinstance(reid, TransReIDBackbone) and reid.dim == 3840 and reid.input_size == (256, 128)
    assert reid.model.classifier.weight.shape == (751, 768)

    override = object()
    official.load_official(tmp_path, device="meta", reid=override)
    assert captured["reid"] is override
    (tmp_path / official.REID_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="transformer_20.pth"):
        official.load_official(tmp_path, device="meta")


def test_check_materialised_names_the_meta_tensors():
    from pose2id_demo.reid.transreid import check_materialised

    m = torch.nn.Linear(3, 2)
    check_materialised(m, "ok.pth")  # all real tensors
    m.register_buffer("lut", torch.empty(4, device="meta"), persistent=False)  # not in any state dict
    with pytest.raises(RuntimeError, match=r"x\.pth: tensors not provided by the checkpoint: \['lut'\]"):
        check_materialised(m, "x.pth")
