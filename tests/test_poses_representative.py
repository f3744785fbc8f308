import json

import numpy as np
import pytest
from poses_fixtures import FRONT, H, W, back_view, mirror, pose, side_view
from tieaware import assert_argmin_equivalent

from pose2id_demo.poses.keypoints import Pose, load_pose_json
from pose2id_demo.poses.posevalid import normalize_pose, pose_valid
from pose2id_demo.poses.representative import (
    DIRECTIONS,
    body_width,
    body_yaw,
    centre_distances,
    classify_direction,
    load_representative_poses,
    representative_indices,
    select_representative_poses,
    write_assets,
)


def _brute_centre_distances(feats, pids):
    """pid -> (member indices, float64 distance of each member to its identity's centre)."""
    f = feats.astype(np.float64)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    out = {}
    for pid in sorted(set(pids.tolist())):
        idx = np.nonzero(pids == pid)[0]
        mean = f[idx].mean(axis=0)                                   # eq. 7
        out[pid] = (idx, [float(np.linalg.norm(mean - f[i])) for i in idx])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_representatives_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, d = 300, 16
    pids = rng.integers(1, 40, n)
    feats = rng.normal(size=(n, d)) + rng.normal(size=(40, d))[pids] * 2
    got = representative_indices(feats, pids)
    ref = _brute_centre_distances(feats, pids)
    assert set(got) == set(ref)
    for pid, (idx, d) in ref.items():  # eq. 8: the member nearest the centre, up to float near-ties
        assert got[pid] in idx
        assert_argmin_equivalent(int(np.nonzero(idx == got[pid])[0][0]), d)
    dist = centre_distances(feats, pids)
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    i = 7
    mean = f[pids == pids[i]].mean(axis=0)
    assert dist[i] == pytest.approx(np.linalg.norm(f[i] - mean), rel=1e-5)


def test_representative_is_scale_invariant_and_handles_singletons():
    feats = np.array([[1, 0], [10, 1], [0, 3], [5, 5]], np.float32)
    pids = np.array([1, 1, 1, 2])
    a = representative_indices(feats, pids)
    b = representative_indices(feats * np.array([[3], [0.1], [7], [2]]), pids)
    assert a == b and a[2] == 3
    assert representative_indices(np.zeros((0, 2)), np.zeros(0, int)) == {}


@pytest.mark.parametrize("kp,expected", [
    (FRONT, "front"), (back_view(), "back"), (side_view(True), "right"), (side_view(False), "left"),
    (side_view(True, 1), "right"), (mirror(FRONT), "back"),  # left/right order reversed, face centred
])
def test_classify_direction_on_hand_made_poses(kp, expected):
    assert classify_direction(pose(kp)) == expected


def test_classify_direction_diagonals_and_mirror_symmetry():
    # a 3/4 view: shoulders and hips at cos(45°) of the frontal width, nose and near ear towards the right
    kp = FRONT.copy()
    for a, b in ((2, 5), (8, 11)):
        mid = (kp[a, 0] + kp[b, 0]) / 2
        kp[a, 0] = mid - (mid - kp[a, 0]) * 0.7
        kp[b, 0] = mid + (kp[b, 0] - mid) * 0.7
    kp[0, 0] += 4
    kp[17] = 0  # far (left) ear hidden
    assert classify_direction(pose(kp)) == "front-right"
    assert classify_direction(pose(mirror(kp))) in ("back-left", "back-right")  # not a front view any more
    flipped = mirror(kp)
    flipped[[2, 3, 4, 8, 9, 10, 14, 16, 5, 6, 7, 11, 12, 13, 15, 17]] = flipped[[5, 6, 7, 11, 12, 13, 15, 17,
                                                                                 2, 3, 4, 8, 9, 10, 14, 16]]
    assert classify_direction(pose(flipped)) == "front-left"  # a true mirror image swaps the labels too
    no_torso = FRONT.copy()
    no_torso[[1]] = 0
    assert classify_direction(pose(no_torso)) is None


def test_classify_direction_on_synthped_ground_truth():
    """SynthPed renders record the true view direction; keypoint-derived directions must agree."""
    sp = pytest.importorskip("pose2id_demo.data.synthped")
    if not all(hasattr(sp, n) for n in ("plan", "_identities_for", "render_item")):
        pytest.skip("SynthPed's rendering API changed")  # keep in step with pose2id_demo/data/synthped.py
    items = [i for i in sp.plan(0) if i.split == "train"][:160]
    idents = sp._identities_for(0, items)
    correct = 0
    for item in items:
        r = sp.render_item(0, item, "standard", idents.get(item.source_pid))
        p = Pose(r.keypoints, sp.W, sp.H)
        assert pose_valid(p)[0]
        correct += classify_direction(p) == r.meta["direction"]
    assert correct / len(items) >= 0.9, correct


def _toy_dataset():
    """3 identities per direction family, poses by hand; features: identity centre + per-sample noise."""
    rng = np.random.default_rng(0)
    kinds = {"front": FRONT, "back": back_view(), "right": side_view(True), "left": side_view(False)}
    feats, pids, poses, names = [], [], [], []
    centres = rng.normal(size=(12, 8)) * 3
    for pid in range(12):
        for k, (dname, kp) in enumerate(kinds.items()):
            feats.append(centres[pid] + rng.normal(size=8))
            pids.append(pid + 1)
            poses.append(pose(kp))
            names.append(f"{pid + 1:04d}_{dname}_{k}.jpg")
    return np.array(feats), np.array(pids), poses, names


def test_select_representative_poses_rule():
    feats, pids, poses, names = _toy_dataset()
    chosen = select_representative_poses(feats, pids, poses, names)
    got = {s.direction: s for s, _ in chosen}
    assert set(got) == {"front", "back", "right", "left"}  # only 4 directions exist in the toy data
    reps = representative_indices(feats, pids)
    dist = centre_distances(feats, pids)
    for dname, s in got.items():
        rep_in_dir = [i for i in reps.values() if names[i].split("_")[1] == dname]
        if rep_in_dir:
            assert not s.fallback and s.index == min(rep_in_dir, key=lambda i: dist[i])
        else:  # eq. 8 restricted to this direction
            assert s.fallback
            assert s.index == min((i for i in range(len(names)) if names[i].split("_")[1] == dname),
                                  key=lambda i: dist[i])
        assert s.image == names[s.index] and s.pid == pids[s.index]
    assert [s.direction for s, _ in chosen] == [d for d in DIRECTIONS if d in got]


def test_invalid_poses_are_never_selected():
    feats, pids, poses, names = _toy_dataset()
    broken = FRONT.copy()
    broken[[0, 14, 15, 16, 17], 1] = 124  # head under the feet
    poses = [pose(broken) if n.split("_")[1] == "front" else p for p, n in zip(poses, names)]
    chosen = select_representative_poses(feats, pids, poses, names)
    assert "front" not in {s.direction for s, _ in chosen}


def test_write_and_load_assets(tmp_path):
    feats, pids, poses, names = _toy_dataset()
    chosen = select_representative_poses(feats, pids, poses, names)
    write_assets(chosen, tmp_path, {"command": "python -m x", "backbone": "b", "data": "d", "data_desc": "toy",
                                    "num_images": len(names), "num_ids": 12})
    loaded = load_representative_poses(tmp_path)
    assert [d for d, _ in loaded] == [s.direction for s, _ in chosen]
    for (_, p), (_, q) in zip(loaded, chosen):
        np.testing.assert_allclose(p.keypoints, q.keypoints, atol=1e-3)
    assert (tmp_path / "front.png").exists() and "python -m x" in (tmp_path / "README.md").read_text()
    idx = json.loads((tmp_path / "index.json").read_text())
    assert [p["direction"] for p in idx["poses"]] == [d for d, _ in loaded]
    with pytest.raises(FileNotFoundError):
        load_representative_poses(tmp_path / "empty")


def test_shipped_representative_poses():
    try:
        loaded = load_representative_poses()
    except FileNotFoundError:
        pytest.skip("assets/poses not generated yet")
    from pose2id_demo.paths import POSES_DIR

    fw = json.loads((POSES_DIR / "index.json").read_text())["frontal_width"]
    assert [d for d, _ in loaded] == list(DIRECTIONS)
    for d, p in loaded:
        assert pose_valid(p) == (True, "ok"), d
        assert classify_direction(p, fw) == d
        assert (p.width, p.height) == (W, H)


class _ColourFeatures:
    """Test double for a ReID backbone (CLI plumbing only): mean colour of 4 horizontal bands, 12-d."""

    name = "colour-bands"

    def extract(self, images, batch_size=64, progress=False):
        out = []
        for im in images:
            a = np.asarray(im, np.float32)
            out.append(np.concatenate([b.mean(axis=(0, 1)) for b in np.array_split(a, 4, axis=0)]))
        return np.stack(out)


@pytest.mark.slow
def test_cli_end_to_end(tmp_path, monkeypatch):
    sp = pytest.importorskip("pose2id_demo.data.synthped")
    from pose2id_demo.poses import representative

    items = sp.plan(0, num_train_ids=24, num_test_ids=1, train_per_id=6, num_distractors=0)
    root = sp.render_benchmark(tmp_path / "data", items=items)
    monkeypatch.setattr(representative, "get_backbone", lambda name, device="cpu": _ColourFeatures())
    out = tmp_path / "poses"
    assert representative.main(["--data", str(root), "--backbone", "colour-bands", "--out", str(out)]) == 0
    loaded = load_representative_poses(out)
    assert 4 <= len(loaded) <= 8 and len({d for d, _ in loaded}) == len(loaded)
    idx = json.loads((out / "index.json").read_text())
    assert idx["command"].startswith("python -m pose2id_demo.poses.representative --data ")
    assert idx["num_images"] == 24 * 6 and idx["num_ids"] == 24
    for entry, (d, p) in zip(idx["poses"], loaded):
        assert classify_direction(p, idx["frontal_width"]) == d == entry["direction"]
        assert pose_valid(p)[0]
        # the chosen pose is the keypoint json of the named source image, only moved and scaled
        src = load_pose_json((root / "bounding_box_train" / entry["image"]).with_suffix(".json"))
        np.testing.assert_allclose(normalize_pose(p), normalize_pose(src), atol=1e-3)
        top, bottom, _ = idx["placement"]
        ys = p.keypoints[p.visible, 1]
        assert ys.min() == pytest.approx(top, abs=0.02) and ys.max() == pytest.approx(bottom, abs=0.02)


def test_place_pose_is_a_similarity_to_the_median_placement():
    from pose2id_demo.poses.representative import place_pose, standard_placement

    small = FRONT.copy()
    small[:, :2] = small[:, :2] * 0.6 + [5, 30]
    placement = standard_placement([pose(FRONT), pose(FRONT), pose(small)])
    assert placement[:3] == pytest.approx((12.0, 108.0, 32.0))
    moved = place_pose(pose(small), placement)
    np.testing.assert_allclose(moved.keypoints, FRONT, atol=1e-4)
    np.testing.assert_allclose(normalize_pose(moved), normalize_pose(pose(small)), atol=1e-5)


def test_clear_views_are_preferred_within_a_direction():
    # two identities facing "front": the more central one is turned 20° (still "front"), the other squarely
    turned = FRONT.copy()
    for a, b in ((2, 5), (8, 11)):  # widths x cos(20°), both about the same centre
        mid = (turned[a, 0] + turned[b, 0]) / 2
        turned[a, 0] = mid - (mid - turned[a, 0]) * np.cos(np.radians(20))
        turned[b, 0] = mid + (turned[b, 0] - mid) * np.cos(np.radians(20))
    turned[0, 0] += 3
    feats = np.array([[1, 0], [1, 0.01], [0, 1], [0.5, 1]], np.float32)
    pids = np.array([1, 1, 2, 2])
    poses = [pose(turned), pose(turned), pose(FRONT), pose(FRONT)]
    fw = body_width(pose(FRONT))
    assert body_yaw(pose(turned), fw) == pytest.approx(20, abs=0.5)
    chosen = select_representative_poses(feats, pids, poses, ["a", "b", "c", "d"], frontal_width=fw)
    (sel, _), = chosen
    assert sel.direction == "front"
    assert sel.pid == 2  # identity 1 is more central (d smaller) but its view is not clear
    chosen = select_representative_poses(feats, pids, poses, ["a", "b", "c", "d"], frontal_width=fw,
                                         clear_view_deg=30)
    assert chosen[0][0].pid == 1
