"""``hf:<model id or folder>`` backbones through transformers, with tiny random ViTs saved to folders (no
download): the feature is the CLS token (no pooler weights) or the pooled output (with them), the model's own
image processor prepares the images, and the name works in ``extract``, ``--dataset`` and the benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from PIL import Image
from transformers import ViTConfig, ViTImageProcessor, ViTModel

from pose2id_demo import cli
from pose2id_demo.data import load_market
from pose2id_demo.engine import Engine, Pose2IDError
from pose2id_demo.reid import backbone_slug, get_backbone, list_backbones, resolve_backbone

#: The ``market`` fixture's test identities (conftest.py).
MARKET_TEST_IDS = 3
PROCESSOR = dict(size={"height": 32, "width": 32}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3])


def _save_vit(folder, pooler: bool, seed: int):
    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
    ViTModel(cfg, add_pooling_layer=pooler).save_pretrained(folder)
    ViTImageProcessor(**PROCESSOR).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vits(tmp_path_factory):
    root = tmp_path_factory.mktemp("vits")
    return {"cls": _save_vit(root / "vit-cls", pooler=False, seed=0),
            "pooled": _save_vit(root / "vit-pooled", pooler=True, seed=1)}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64 + 8 * i, 32 + 4 * i, 3), dtype=np.uint8)) for i in range(5)]


def _reference(folder, images, pooled: bool) -> np.ndarray:
    """Straight from transformers: the processor, the model, and the CLS token / pooled output."""
    processor = ViTImageProcessor.from_pretrained(folder)
    model = ViTModel.from_pretrained(folder, add_pooling_layer=pooled).eval()
    with torch.no_grad():
        out = model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])
    return (out.pooler_output if pooled else out.last_hidden_state[:, 0]).numpy()


@pytest.mark.parametrize("kind", ["cls", "pooled"])
def test_features_are_the_cls_token_or_the_pooled_output(vits, people, kind):
    name = resolve_backbone(f"hf:{vits[kind]}")
    assert name in list_backbones()
    bb = get_backbone(name)
    assert bb.dim == 32 and bb.input_size == (32, 32) and bb.mean == (0.4, 0.5, 0.6) and bb.weights_id
    feats = bb.extract(people, batch_size=2)
    np.testing.assert_allclose(feats, _reference(vits[kind], people, kind == "pooled"), atol=1e-5)
    if kind == "cls":  # the pooler of a checkpoint without pooler weights would be random: not used
        assert not bb.model.use_pooler


def test_bad_names_are_one_sentence(tmp_path):
    for bad in ("hf:", "hf:a/b/c", "hf:/no/such/folder", "hf:no/such/../folder"):
        with pytest.raises(ValueError, match="names neither a folder nor a Hugging Face model id"):
            resolve_backbone(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no config.json"):
        resolve_backbone(f"hf:{tmp_path / 'empty'}")
    assert backbone_slug("hf:google/vit-base-patch16-224") == "hf_google_vit-base-patch16-224"
    assert backbone_slug("synthped-reid") == "synthped-reid" and "/" not in backbone_slug("hf:/a/../../b")


def test_an_uncached_hub_model_offline_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = resolve_backbone("hf:google/vit-base-patch16-224")  # a valid id: registered, loaded on first use
    with pytest.raises(ValueError, match=r"^hf:google/vit-base-patch16-224: transformers could not load it"):
        get_backbone(name)


@pytest.mark.slow
def test_extract_dataset_and_benchmark_with_an_hf_backbone(vits, market, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    root = market
    name = f"hf:{vits['cls']}"
    out = tmp_path / "f.npz"
    assert cli.main(["extract", "--data", str(root), "--backbone", name, "--out", str(out)]) == 0
    ds = load_market(root)
    with np.load(out, allow_pickle=False) as z:
        direct = _reference(vits["cls"], [Image.open(r.path).convert("RGB") for r in ds.query], pooled=False)
        np.testing.assert_allclose(z["q_feats"], direct, atol=1e-5)
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) == 0 and "baseline" in capsys.readouterr().out

    eng = Engine(device="cpu")
    with pytest.raises(Pose2IDError, match="--backbone: .*names neither"):
        eng.add_backbone("hf:no/such/folder/here")
    assert eng.add_backbone(name) == name and name in eng.backbones()
    eng.features.add_dataset('mini', root)
    table = eng.bench.benchmark('mini', name)
    assert [r["setting"] for r in table["rows"]][:2] == ["baseline", "+NFC"]
    data = eng.features.bench_data('mini', name)
    np.testing.assert_allclose(data.q * np.linalg.norm(direct, axis=1, keepdims=True), direct, atol=1e-4)
    cached = list((tmp_path / "cache" / "datasets").glob("*.npz"))
    assert len(cached) == 1 and backbone_slug(name) in cached[0].name
