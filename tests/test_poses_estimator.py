"""MediaPipe BlazePose estimator on real photos that ship inside installed packages (never committed here).

* scikit-image's ``astronaut`` (NASA, public domain) and ``camera`` (CC0, greyscale), and its textures;
* matplotlib's ``grace_hopper.jpg`` (US Navy, public domain; matplotlib is installed with mediapipe);
* ultralytics' ``assets/bus.jpg`` (full-body pedestrians) only when the ``POSE2ID_BUS_JPG`` environment
  variable points at a copy (it is AGPL-licensed, so it is neither committed nor installed here).
"""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pose2id_demo.poses.estimator import NoPersonFound, estimate_pose
from pose2id_demo.poses.posevalid import pose_valid

skdata = pytest.importorskip("skimage.data")

NOSE, NECK, R_SHO, L_SHO = 0, 1, 2, 5


def _hopper() -> Image.Image:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        pytest.skip("matplotlib's sample data is not installed")
    return Image.open(path)


def _assert_head_at(pose, box, upright=True):
    """Nose visible inside ``box`` = (x0, y0, x1, y1) and (if ``upright``) both shoulders below it."""
    kp = pose.keypoints
    assert kp[NOSE, 2] > 0 and kp[R_SHO, 2] > 0 and kp[L_SHO, 2] > 0
    x0, y0, x1, y1 = box
    assert x0 <= kp[NOSE, 0] <= x1 and y0 <= kp[NOSE, 1] <= y1, kp[NOSE]
    if upright:
        assert kp[R_SHO, 1] > kp[NOSE, 1] and kp[L_SHO, 1] > kp[NOSE, 1]


def test_astronaut_rgb():
    img = Image.fromarray(skdata.astronaut())
    pose = estimate_pose(img)
    assert (pose.width, pose.height) == img.size
    _assert_head_at(pose, (180, 80, 260, 160))
    # facing the camera: her right shoulder is on the image's left
    assert pose.keypoints[R_SHO, 0] < pose.keypoints[L_SHO, 0]


def test_camera_man_greyscale():
    img = Image.fromarray(skdata.camera())
    assert img.mode == "L"
    _assert_head_at(estimate_pose(img), (170, 100, 280, 190), upright=False)  # he bends over his camera


def test_grace_hopper_and_rgba_and_small_copy():
    img = _hopper()
    pose = estimate_pose(img)
    _assert_head_at(pose, (200, 120, 330, 280))
    rgba = img.convert("RGBA")
    np.testing.assert_allclose(estimate_pose(rgba).keypoints[NOSE, :2], pose.keypoints[NOSE, :2], atol=8)
    small = img.resize((128, 150))  # upscaled internally
    pose_s = estimate_pose(small)
    np.testing.assert_allclose(pose_s.keypoints[NOSE, :2] * 4, pose.keypoints[NOSE, :2], atol=16)


@pytest.mark.parametrize("maker", [
    lambda: Image.fromarray(skdata.brick()),
    lambda: Image.fromarray(skdata.grass()),
    lambda: Image.new("RGB", (64, 128), (90, 90, 90)),
    lambda: Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)),
], ids=["brick", "grass", "plain", "noise"])
def test_no_person_raises(maker):
    with pytest.raises(NoPersonFound, match="no person"):
        estimate_pose(maker())
    assert issubclass(NoPersonFound, ValueError)


@pytest.mark.parametrize("maker", [
    lambda: Image.new("RGB", (3, 3)),
    lambda: Image.new("RGB", (1, 500)),
    lambda: Image.fromarray(skdata.astronaut()).convert("P"),
    lambda: Image.fromarray(skdata.astronaut()).convert("CMYK"),
    lambda: Image.fromarray(skdata.camera()).convert("LA"),
    lambda: Image.fromarray(skdata.camera().astype(np.uint16) * 200).convert("I;16"),
    lambda: Image.fromarray(skdata.camera().astype(np.float32)),
    lambda: "not an image",
], ids=["3x3", "1x500", "P", "CMYK", "LA", "I16", "F", "str"])
def test_odd_inputs_never_crash(maker):
    try:
        pose = estimate_pose(maker())
    except NoPersonFound as exc:
        assert str(exc)
    else:
        assert pose.visible.sum() >= 4


def test_thread_safe_and_deterministic():
    imgs = [Image.fromarray(skdata.astronaut()), _hopper(), Image.fromarray(skdata.camera())] * 2
    serial = [estimate_pose(im).keypoints for im in imgs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda im: estimate_pose(im).keypoints, imgs))
    for a, b in zip(serial, parallel):
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.skipif(not os.environ.get("POSE2ID_BUS_JPG"), reason="set POSE2ID_BUS_JPG to ultralytics' bus.jpg")
def test_full_body_pedestrian_crops():
    bus = Image.open(os.environ["POSE2ID_BUS_JPG"])
    for box in [(40, 380, 260, 920), (215, 395, 355, 870)]:
        crop = bus.crop(box)
        for im in (crop, crop.resize((64, 128))):  # full size and a Market-1501-sized crop
            pose = estimate_pose(im)
            assert pose.visible.sum() >= 16
            assert pose_valid(pose) == (True, "ok")


@pytest.mark.slow
def test_runs_with_network_disabled():
    """A fresh interpreter in which every socket connection fails still estimates a pose."""
    code = textwrap.dedent("""
        import socket
        def refuse(*a, **k):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import skimage.data
        from PIL import Image
        from pose2id_demo.poses.estimator import estimate_pose
        pose = estimate_pose(Image.fromarray(skimage.data.astronaut()))
        print("VISIBLE", int(pose.visible.sum()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split("VISIBLE")[1]) >= 8
