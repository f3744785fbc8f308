import io

import numpy as np
import pytest
from PIL import Image
from poses_fixtures import FRONT, H, W, back_view, pose, side_view

from pose2id_demo.poses.draw import COLORS, LIMB_COLORS, draw_pose, skeleton_to_pose, stroke_width
from pose2id_demo.poses.keypoints import LIMBS, Pose


@pytest.mark.parametrize("size", [(64, 128), (256, 512), (96, 160)])
def test_draw_pose_shape_colours_and_black_background(size):
    w, h = size
    img = draw_pose(pose(FRONT), w, h)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    assert (img.max(axis=2) == 0).mean() > 0.7  # mostly black canvas
    kp = pose(FRONT).resized(w, h).keypoints
    for k in range(18):  # each joint dot is drawn in its OpenPose colour
        x, y = round(kp[k, 0]), round(kp[k, 1])
        assert img[y, x].tolist() == COLORS[k].tolist(), k
    # the middle of a long limb has its 60 % colour: right shin (limb 8: r_knee -> r_ankle)
    a, b = LIMBS[8]
    mx, my = np.round((kp[a, :2] + kp[b, :2]) / 2).astype(int)
    assert img[my, mx].tolist() == LIMB_COLORS[8].tolist()


def test_stroke_scales_with_resolution():
    assert stroke_width(64, 128) == 1
    assert stroke_width(256, 512) == 4
    thin = draw_pose(pose(FRONT), 64, 128)
    thick = draw_pose(pose(FRONT), 256, 512)
    # painted area grows ~ with the square of the scale (x16 pixels), not only linearly (x4)
    ratio = (thick.max(axis=2) > 0).sum() / (thin.max(axis=2) > 0).sum()
    assert 8 < ratio < 24


def test_invisible_keypoints_and_their_limbs_are_not_drawn():
    kp = FRONT.copy()
    kp[4] = 0  # right wrist hidden -> limb 3 (r_elbow -> r_wrist) skipped
    img = draw_pose(pose(kp), 256, 512)
    colours = {tuple(c) for c in img.reshape(-1, 3).tolist()}
    assert tuple(COLORS[4].tolist()) not in colours
    assert tuple(LIMB_COLORS[3].tolist()) not in colours
    assert tuple(LIMB_COLORS[2].tolist()) in colours
    assert draw_pose(Pose(np.zeros((18, 3)), W, H), 64, 128).max() == 0


@pytest.mark.parametrize("kp_fn", [lambda: FRONT, back_view, side_view, lambda: side_view(False)])
@pytest.mark.parametrize("size,tol", [((256, 512), 2.5), ((128, 256), 2.5), ((64, 128), 2.5)])
def test_skeleton_roundtrip(kp_fn, size, tol):
    rng = np.random.default_rng(0)
    kp = kp_fn().copy()
    vis = kp[:, 2] > 0
    kp[vis, :2] += rng.uniform(-1.5, 1.5, (vis.sum(), 2))  # off-grid coordinates
    src = pose(kp)
    img = draw_pose(src, *size)
    back = skeleton_to_pose(img)
    assert (back.width, back.height) == size
    got = back.resized(W, H).keypoints
    assert np.array_equal(got[:, 2] > 0, vis)
    err = np.hypot(*(got[vis, :2] - kp[vis, :2]).T) * (size[1] / H)  # in canvas pixels
    assert err.max() <= tol, err  # within a few canvas pixels


def test_skeleton_roundtrip_survives_jpeg():
    img = draw_pose(pose(FRONT), 256, 512)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    back = skeleton_to_pose(Image.open(buf)).resized(W, H).keypoints
    assert (back[:, 2] > 0).sum() >= 16
    ok = back[:, 2] > 0
    assert np.hypot(*(back[ok, :2] - FRONT[ok, :2]).T).max() < 1.5  # < 1.5 px at 64x128


def test_hidden_joint_recovered_from_its_limb():
    # draw, then paint over the right-wrist dot: the wrist comes back from the forearm's far end
    img = draw_pose(pose(FRONT), 256, 512)
    kp = pose(FRONT).resized(256, 512).keypoints
    sel = np.all(img == COLORS[4], axis=2)
    img[sel] = 0
    back = skeleton_to_pose(img)
    assert back.keypoints[4, 2] == pytest.approx(0.5)
    assert np.hypot(*(back.keypoints[4, :2] - kp[4, :2])) < 6


def test_skeleton_to_pose_of_blank_or_odd_images():
    assert not skeleton_to_pose(np.zeros((32, 16, 3), np.uint8)).visible.any()
    assert not skeleton_to_pose(Image.new("L", (16, 32), 255)).visible.any()  # white: no palette colour
    with pytest.raises(ValueError):
        skeleton_to_pose(np.zeros((4, 4, 2), np.uint8))
