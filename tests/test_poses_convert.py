import numpy as np
import pytest

from pose2id_demo.poses.convert import from_coco17, from_mediapipe33


def test_coco17_index_mapping_and_neck():
    # keypoint j of COCO-17 sits at x = 10 * j + 5, y = 3 * j + 1 so every index is identifiable
    kps = np.array([[10 * j + 5, 3 * j + 1, 0.9] for j in range(17)], np.float32)
    pose = from_coco17(kps, 200, 100)
    assert (pose.width, pose.height) == (200, 100)
    expected = {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 8: 12, 9: 14, 10: 16, 11: 11, 12: 13, 13: 15,
                14: 2, 15: 1, 16: 4, 17: 3}
    for op, coco in expected.items():
        np.testing.assert_allclose(pose.keypoints[op], [10 * coco + 5, 3 * coco + 1, 0.9], rtol=1e-6)
    # neck = midpoint of COCO shoulders 5 (left) and 6 (right)
    np.testing.assert_allclose(pose.keypoints[1], [(55 + 65) / 2, (16 + 19) / 2, 0.9], rtol=1e-6)


def test_coco17_low_scores_are_invisible_and_neck_needs_both_shoulders():
    kps = np.tile(np.array([[5.0, 5.0, 0.9]], np.float32), (17, 1))
    kps[6, 2] = 0.1  # right shoulder below threshold
    kps[15, 2] = 0.2  # left ankle
    pose = from_coco17(kps, 10, 10, threshold=0.3)
    assert pose.keypoints[2, 2] == 0 and pose.keypoints[1, 2] == 0  # r_shoulder and neck hidden
    assert pose.keypoints[13].tolist() == [0, 0, 0]
    assert pose.keypoints[5, 2] == pytest.approx(0.9)
    assert int(pose.visible.sum()) == 15


def test_coco17_two_columns_and_bad_shapes():
    pose = from_coco17(np.ones((17, 2)), 4, 4)
    assert pose.visible.all()
    with pytest.raises(ValueError):
        from_coco17(np.ones((18, 3)), 4, 4)
    with pytest.raises(ValueError):
        from_coco17(np.full((17, 3), np.nan), 4, 4)


def _mp_landmarks(n_cols: int) -> np.ndarray:
    lm = np.zeros((33, n_cols), np.float32)
    lm[:, 0] = (np.arange(33) + 1) / 40.0  # all inside [0, 1]
    lm[:, 1] = 1.0 - (np.arange(33) + 1) / 40.0
    lm[:, -1 if n_cols == 3 else 3] = 0.95  # visibility column
    return lm


@pytest.mark.parametrize("n_cols", [3, 4, 5])
def test_mediapipe33_index_mapping(n_cols):
    lm = _mp_landmarks(n_cols)
    pose = from_mediapipe33(lm, 80, 160)
    expected = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28, 11: 23, 12: 25,
                13: 27, 14: 5, 15: 2, 16: 8, 17: 7}
    for op, m in expected.items():
        np.testing.assert_allclose(pose.keypoints[op, :2], [(m + 1) / 40 * 80, (1 - (m + 1) / 40) * 160], rtol=1e-5)
        assert pose.keypoints[op, 2] == pytest.approx(0.95)
    neck_x = ((11 + 1) / 40 + (12 + 1) / 40) / 2 * 80
    assert pose.keypoints[1, 0] == pytest.approx(neck_x)


def test_mediapipe33_visibility_threshold_and_out_of_frame():
    lm = _mp_landmarks(4)
    lm[27, 3] = 0.3  # left ankle barely visible
    lm[28, 1] = 1.4  # right ankle extrapolated below the frame
    lm[12, 0] = -0.5  # right shoulder left of the frame -> neck hidden too
    pose = from_mediapipe33(lm, 64, 128)
    assert pose.keypoints[13, 2] == 0 and pose.keypoints[10, 2] == 0
    assert pose.keypoints[2, 2] == 0 and pose.keypoints[1, 2] == 0
    assert int(pose.visible.sum()) == 14


def test_mediapipe33_accepts_landmark_objects():
    class LM:
        def __init__(self, x, y, v):
            self.x, self.y, self.z, self.visibility = x, y, 0.0, v

    class LMList:
        def __init__(self, rows):
            self.landmark = [LM(*r) for r in rows]

    lm = _mp_landmarks(3)
    a = from_mediapipe33(LMList(lm.tolist()), 64, 128)
    b = from_mediapipe33(lm, 64, 128)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    with pytest.raises(ValueError):
        from_mediapipe33(np.zeros((17, 4)), 64, 128)
