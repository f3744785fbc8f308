import io

import numpy as np
import pytest
from PIL import Image
from poses_fixtures import FRONT, pose

from pose2id_demo.poses import NoPersonFound, draw_pose, save_pose_json
from pose2id_demo.poses.upload import looks_like_skeleton, pose_from_upload


def test_json_upload(tmp_path):
    save_pose_json(pose(FRONT), tmp_path / "p.json")
    p, kind = pose_from_upload(tmp_path / "p.json")
    assert kind == "json"
    np.testing.assert_allclose(p.keypoints, FRONT, atol=1e-3)


def test_skeleton_png_upload(tmp_path):
    img = draw_pose(pose(FRONT), 256, 512)
    Image.fromarray(img).save(tmp_path / "s.png")
    p, kind = pose_from_upload(tmp_path / "s.png")
    assert kind == "skeleton"
    np.testing.assert_allclose(p.resized(64, 128).keypoints[:, :2], FRONT[:, :2], atol=1.0)
    p2, kind2 = pose_from_upload(img)  # an array works too
    assert kind2 == "skeleton" and np.allclose(p2.keypoints, p.keypoints)


def test_photo_is_not_a_skeleton_and_goes_to_the_estimator():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)
    assert not looks_like_skeleton(noise)
    assert not looks_like_skeleton(np.zeros((128, 64, 3), np.uint8))
    assert looks_like_skeleton(draw_pose(pose(FRONT), 64, 128))
    with pytest.raises(NoPersonFound):
        pose_from_upload(Image.fromarray(noise))


def test_bad_uploads_are_value_errors(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    (tmp_path / "bad.json").write_text("{")
    for src in (tmp_path / "x.png", tmp_path / "bad.json", tmp_path / "missing.png", 42):
        with pytest.raises(ValueError):
            pose_from_upload(src)
    buf = io.BytesIO()
    Image.new("RGB", (64, 128)).save(buf, format="PNG")  # all black: not a skeleton, no person
    with pytest.raises(ValueError):
        pose_from_upload(Image.open(buf))
