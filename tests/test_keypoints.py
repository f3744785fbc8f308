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


def _depth_reference(text: str) -> int | None:
    """Brute force: blank out every json string with a pattern, then the running bracket balance's maximum;
    None when a quote is left unmatched (an unterminated string, which the pattern cannot blank out)."""
    import re

    bare, n = re.subn(r'"(?:\\.|[^"\\])*"', '""', text)
    if bare.count('"') != 2 * n:
        return None
    depth = best = 0
    for ch in bare:
        depth += ch in "[{"
        depth -= ch in "]}"
        best = max(best, depth)
    return best


def test_json_depth_matches_reference_on_random_texts():
    """The one-pass scan against the pattern-based reference on random mixes of brackets, quotes, backslashes
    and letters (escaped quotes, strings holding brackets, unterminated strings)."""
    from pose2id_demo.poses.keypoints import json_depth

    rng = np.random.default_rng(0)
    alphabet = list('[]{}"\\a,: ')
    compared = 0
    for _ in range(5000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))))
        ref = _depth_reference(text)
        if ref is not None:
            assert json_depth(text) == ref, repr(text)
            compared += 1
    assert compared > 1000
    assert json_depth('{"k": "[[[", "p": [[1, 2], [3]]}') == 3
    assert json_depth('["\\"[[", [[]]]') == 3
    assert json_depth('[[ "unterminated [[[[') == 2  # the rest of the text is inside the string
