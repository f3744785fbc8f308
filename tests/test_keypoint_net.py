"""The keypoint estimator of the IPG bench (pose2id_demo.poses.keypoint_net): pieces against brute force,
save/load, both input sizes, and the shipped weights on freshly rendered SynthPed images."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import save_file

from pose2id_demo.poses.keypoint_net import (
    FLIP_PAIRS,
    KeypointEstimator,
    KeypointNet,
    KeypointNetConfig,
    flip_labels,
    pck,
    soft_argmax,
)
from pose2id_demo.poses.keypoints import Pose


def test_soft_argmax_against_a_loop():
    g = torch.Generator().manual_seed(0)
    heat = torch.randn(2, 3, 5, 4, generator=g) * 3
    out = soft_argmax(heat)
    for b in range(2):
        for k in range(3):
            p = torch.softmax(heat[b, k].flatten().double(), 0).view(5, 4)
            x = sum(p[i, j] * (j + 0.5) / 4 for i in range(5) for j in range(4))
            y = sum(p[i, j] * (i + 0.5) / 5 for i in range(5) for j in range(4))
            assert out[b, k].tolist() == pytest.approx([float(x), float(y)], rel=1e-5)


def test_flip_labels_swaps_sides_and_mirrors():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 1, (18, 2)), rng.random((18, 1))], axis=1)
    f = flip_labels(kp, 1.0)
    for a, b in FLIP_PAIRS:
        assert f[a, 0] == pytest.approx(1 - kp[b, 0]) and f[a, 1] == kp[b, 1] and f[a, 2] == kp[b, 2]
    assert f[0, 0] == pytest.approx(1 - kp[0, 0]) and f[1, 0] == pytest.approx(1 - kp[1, 0])
    assert np.allclose(flip_labels(f, 1.0), kp)


def test_pck_against_a_loop():
    rng = np.random.default_rng(1)
    ref = np.concatenate([rng.uniform(0, 60, (18, 1)), rng.uniform(0, 120, (18, 1)), rng.random((18, 1)) > 0.3], 1)
    pred = (ref[:, :2] + 0.5 + rng.normal(0, 8, (18, 2))) / [64, 128]
    vis = ref[:, 2] > 0
    height = ref[vis, 1].max() - ref[vis, 1].min()
    ok = sum(np.hypot(pred[k, 0] * 64 - 0.5 - ref[k, 0], pred[k, 1] * 128 - 0.5 - ref[k, 1]) <= 0.1 * height
             for k in range(18) if vis[k])
    assert pck(pred, ref, (64, 128)) == (ok, int(vis.sum()))


def test_estimator_round_trip_and_both_input_sizes(tmp_path):
    torch.manual_seed(0)
    model = KeypointNet(KeypointNetConfig(widths=(8, 8, 8, 8))).eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    cfg = model.config
    (tmp_path / "config.json").write_text(json.dumps({"input_size": cfg.input_size, "widths": cfg.widths,
                                                      "frontal_width": cfg.frontal_width}))
    est = KeypointEstimator.from_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (128, 64, 3)).astype(np.uint8)
    small = np.asarray(PIL.Image.fromarray(big).resize((32, 64), PIL.Image.BILINEAR))
    a, b = est([big, PIL.Image.fromarray(small)])
    assert (a.pose.width, a.pose.height) == (64, 128) and (b.pose.width, b.pose.height) == (32, 64)
    # the 128×64 image is resized to the 64×32 input: its estimate is the small one's, in its own pixels
    ca, _, _ = est.predict_arrays([big])
    with torch.no_grad():
        c2, _, _ = model(torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255)
    assert np.allclose(ca, c2.numpy(), atol=1e-5)
    assert np.allclose((a.pose.keypoints[:, :2] + 0.5) / [64, 128], ca[0], atol=1e-5)
    assert a.direction_probs.shape == (8,) and a.direction_probs.sum() == pytest.approx(1, abs=1e-5)


def test_shipped_estimator_on_fresh_synthped_images():
    """Rendered here (not read from the benchmark folder): 24 training-plan images, both resolutions."""
    from pose2id_demo.paths import MODELS_DIR

    if not (MODELS_DIR / "keypoint-net" / "model.safetensors").exists():
        pytest.skip("keypoint-net weights not shipped")
    import pose2id_demo.data.synthped as synthped

    if not hasattr(synthped, "render_ground_truth"):
        pytest.skip("this SynthPed has no render_ground_truth")
    picks = [it for it in synthped.plan(0) if it.split == "gallery"][::25][:24]
    est = KeypointEstimator.from_pretrained()
    renders = [synthped.render_ground_truth(0, it, it) for it in picks]  # target == reference: the image itself
    for size in ((64, 128), (32, 64)):
        ok = tot = 0
        for image, keypoints in renders:
            img = PIL.Image.fromarray(image).resize(size, PIL.Image.BOX)
            (e,) = est([img])
            a, b = pck((e.pose.keypoints[:, :2] + 0.5) / size, keypoints, (64, 128))
            ok, tot = ok + a, tot + b
        assert ok / tot > 0.8, (size, ok / tot)
    assert isinstance(e.pose, Pose)
