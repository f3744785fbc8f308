import numpy as np
import pytest
from poses_fixtures import FRONT, H, W, back_view, mirror, pose, side_view

from pose2id_demo.poses.keypoints import Pose
from pose2id_demo.poses.posevalid import body_height, normalize_pose, pose_valid


def test_normalize_pose_matches_paper_steps():
    rng = np.random.default_rng(1)
    kp = FRONT.copy()
    kp[:, :2] += rng.normal(0, 0.5, (18, 2))
    kp[3, 2] = 0  # an invisible keypoint stays (0, 0, 0)
    p = Pose(kp, W, H)
    n = normalize_pose(p)
    h = np.linalg.norm(kp[1, :2] - kp[11, :2])  # ||k_Neck - k_LHip||
    assert body_height(p) == pytest.approx(h, rel=1e-6)
    vis = kp[:, 2] > 0
    np.testing.assert_allclose(n[vis, :2], (kp[vis, :2] - kp[1, :2]) / h, rtol=1e-5, atol=1e-6)
    assert n[1, :2].tolist() == [0, 0]
    assert n[3].tolist() == [0, 0, 0]
    assert np.linalg.norm(n[11, :2]) == pytest.approx(1.0, rel=1e-6)
    # invariant to translation and scale of the image
    big = kp.copy()
    big[:, :2] = big[:, :2] * 3 + 17
    np.testing.assert_allclose(normalize_pose(Pose(big, 500, 500))[vis], n[vis], atol=1e-5)


def test_normalize_uses_right_hip_when_left_missing_and_fails_without_torso():
    kp = FRONT.copy()
    kp[11] = 0
    assert body_height(pose(kp)) == pytest.approx(np.linalg.norm(FRONT[1, :2] - FRONT[8, :2]))
    kp[8] = 0
    with pytest.raises(ValueError):
        normalize_pose(pose(kp))


def _walk(facing_right: bool, stride: float) -> np.ndarray:
    return side_view(facing_right, stride)


VALID = {
    "front": FRONT,
    "back": back_view(),
    "front_mirrored": mirror(FRONT),
    "side_right_walking": side_view(True, 8),
    "side_left_walking": side_view(False, 8),
    "side_long_stride": side_view(True, 12),
    "side_standing": side_view(True, 1),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_poses_are_accepted(name):
    ok, reason = pose_valid(pose(VALID[name]))
    assert ok, reason
    assert reason == "ok"


def test_diagonal_and_scaled_poses_are_accepted():
    # a front/side blend (diagonal walker) at several image scales
    blend = FRONT.copy()
    blend[:, :2] = 0.5 * FRONT[:, :2] + 0.5 * side_view(True, 8)[:, :2]
    blend[:, 2] = np.minimum(FRONT[:, 2], 1)
    for s in (0.5, 1, 4):
        kp = blend.copy()
        kp[:, :2] *= s
        assert pose_valid(Pose(kp, int(W * s), int(H * s))) == (True, "ok")


def _broken() -> dict[str, tuple[np.ndarray, str]]:
    cases = {}
    kp = FRONT.copy()
    kp[[3, 4, 6, 7, 12, 13, 9, 10, 14, 15, 16, 17]] = 0  # only 6 keypoints left
    cases["too_few"] = (kp, "too few visible keypoints")
    kp = FRONT.copy()
    kp[[1, 8, 11]] = 0  # neck and hips gone
    cases["missing_torso"] = (kp, "missing torso")
    kp = FRONT.copy()
    kp[:, :2] = [32, 60] + (kp[:, :2] - [32, 60]) * 0.05  # everything within ~3 px
    cases["collapsed"] = (kp, "collapsed pose")
    kp = FRONT.copy()
    kp[[0, 14, 15, 16, 17], 1] = 124  # head under the feet
    cases["head_under_feet"] = (kp, "head below the neck")
    kp = FRONT.copy()
    kp[[6, 7], :2] = [[60, 80], [95, 125]]  # giant left arm
    cases["giant_arm"] = (kp, "limb too long (l_upper_arm")
    kp = FRONT.copy()
    kp[[6, 7, 12, 13]] = FRONT[[12, 13, 6, 7]]  # left arm and left leg swapped
    cases["swapped_arm_leg"] = (kp, "knee above the hips (l_knee)")
    kp = FRONT.copy()
    kp[[2, 3, 4, 5, 6, 7]] = FRONT[[5, 6, 7, 2, 3, 4]]  # arms swapped left<->right, legs not
    cases["swapped_left_right"] = (kp, "left/right swapped")
    kp = FRONT.copy()
    kp[[10, 13], 1] = 40  # ankles pulled up above the hips
    cases["ankles_above_hips"] = (kp, "ankle above the")
    kp = FRONT.copy()
    kp[:, [0, 1]] = kp[:, [1, 0]]  # lying down (x and y swapped)
    cases["lying"] = (kp, "torso not upright")
    kp = FRONT.copy()
    kp[[12, 13], :2] = [[37, 65], [38, 100]]  # left knee right under the hip: collapsed thigh
    cases["short_thigh"] = (kp, "leg collapsed")
    kp = FRONT.copy()
    kp[[9, 10], 1] = [70, 80]  # right leg far shorter than left
    cases["asymmetric_legs"] = (kp, "asymmetric limbs (r_thigh")
    kp = FRONT.copy()
    kp[7, :2] = [300, 56]  # a wrist far off the body
    cases["far_keypoint"] = (kp, "keypoint far from the body (l_wrist")
    return cases


@pytest.mark.parametrize("name", sorted(_broken()))
def test_broken_poses_are_rejected_with_reason(name):
    kp, expected = _broken()[name]
    ok, reason = pose_valid(Pose(kp, 400, 400))
    assert not ok
    assert reason.startswith(expected), reason


def test_random_poses_are_mostly_rejected():
    # uniformly scattered keypoints are not bodies: PoseValid must reject nearly all of them
    rng = np.random.default_rng(0)
    accepted = 0
    for _ in range(500):
        kp = np.concatenate([rng.uniform(0, [W, H], (18, 2)), np.ones((18, 1))], axis=1)
        accepted += pose_valid(pose(kp))[0]
    assert accepted <= 5


def test_small_jitter_keeps_valid_poses_valid():
    rng = np.random.default_rng(0)
    for _ in range(200):
        kp = FRONT.copy()
        kp[:, :2] += rng.normal(0, 1.0, (18, 2))
        assert pose_valid(pose(kp))[0]
