import json

import numpy as np
import pytest

from pose2id_demo.poses.keypoints import Pose, load_pose_json, save_pose_json


def test_pose_roundtrip_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(0, 64, (18, 2)), rng.uniform(0, 1, (18, 1))], axis=1)
    pose = Pose(kp, 64, 128)
    save_pose_json(pose, tmp_path / "p.json")
    back = load_pose_json(tmp_path / "p.json")
    assert back.width == 64 and back.height == 128
    np.testing.assert_allclose(back.keypoints, kp, atol=1e-3)
    big = pose.resized(128, 256)
    np.testing.assert_allclose(big.keypoints[:, :2], kp[:, :2] * 2, rtol=1e-5)
    np.testing.assert_allclose(big.keypoints[:, 2], kp[:, 2], rtol=1e-6)


@pytest.mark.parametrize("bad", [{"keypoints": [[0, 0, 1]] * 17}, {"kp": []}, [1, 2], {"keypoints": [["a", 1, 1]] * 18},
                                 {"keypoints": [[float("nan"), 1, 1]] * 18, "width": 4, "height": 4}])
def test_bad_pose_json_is_a_value_error(tmp_path, bad):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(ValueError):
        load_pose_json(f)
