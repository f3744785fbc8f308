"""SynthPed renderer: reproducibility, layout, keypoints and what distinguishes the three tasks."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pose2id_demo.data import load_market
from pose2id_demo.data import synthped as sp
from pose2id_demo.poses.keypoints import load_pose_json

NAME = re.compile(r"^(\d{4}|-1)_c(\d)s1_(\d{6})_00\.jpg$")


_PLAN = sp.plan


def small_plan(seed: int = 0) -> list[sp.Item]:
    return _PLAN(seed, num_train_ids=3, num_test_ids=3, train_per_id=3, num_distractors=3)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synthped")
    items = small_plan()
    return {t: sp.render_benchmark(base / t, task=t, seed=0, items=items) for t in sp.TASKS}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rendering_is_byte_for_byte_reproducible_and_order_independent(rendered, tmp_path):
    items = small_plan()
    for task in sp.TASKS:
        again = sp.render_benchmark(tmp_path / task, task=task, seed=0, items=items[::-1])
        a, b = _files(rendered[task]), _files(again)
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] for k in a), f"{task}: re-rendering changed some bytes"
    other = sp.render_benchmark(tmp_path / "seed1", task="standard", seed=1, items=small_plan(1))
    jpgs0 = {k: v for k, v in _files(rendered["standard"]).items() if k.endswith(".jpg")}
    jpgs1 = {k: v for k, v in _files(other).items() if k.endswith(".jpg")}
    assert not set(jpgs0.values()) & set(jpgs1.values()), "another seed must give other images"


def test_layout_names_sizes_and_keypoints(rendered):
    root = rendered["standard"]
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        jpgs = sorted((root / folder).glob("*.jpg"))
        assert jpgs, folder
        for p in jpgs:
            assert NAME.match(p.name), p.name
            with Image.open(p) as im:
                assert im.size == (sp.W, sp.H) and im.mode == "RGB"
            pose = load_pose_json(p.with_suffix(".json"))
            assert (pose.width, pose.height) == (64, 128)
            vis = pose.keypoints[pose.visible]
            assert np.all((vis[:, 0] >= 0) & (vis[:, 0] <= 63) & (vis[:, 1] >= 0) & (vis[:, 1] <= 127))
            if not p.name.startswith(("0000", "-1_")):  # a whole person: joints all visible, head above feet
                kp = pose.keypoints
                assert pose.visible[1:14].all()
                assert kp[1, 1] < kp[8, 1] < kp[9, 1] < kp[10, 1]   # neck above hip above knee above ankle
                assert kp[[10, 13], 1].max() - kp[1, 1] > 0.5 * 128   # a person fills most of the crop height
    ds = load_market(root)
    assert {r.pid for r in ds.train}.isdisjoint({r.pid for r in ds.query})
    assert any(r.pid == 0 for r in ds.gallery)
    junk = sorted((root / "bounding_box_test").glob("-1_*.jpg"))
    assert junk and not any(r.pid == -1 for r in ds.gallery)   # junk is on disk, and the reader drops it
    assert len(ds.gallery) == len(list((root / "bounding_box_test").glob("*.jpg"))) - len(junk)


def test_view_direction_changes_keypoints_and_limb_depth_order():
    ident = sp.make_identities(0, [1])[1]
    canvas_img = np.zeros((sp.H, sp.W, 3), np.float32)
    rng = np.random.default_rng(0)
    shot = sp._draw_shot(rng, 1, 0.4)
    shot.cx, shot.foot_y, shot.height_px, shot.amp = 32.0, 124.0, 110.0, 0.0
    kps = {}
    for d in (0, 2, 4, 6):
        shot.theta = d * np.pi / 4
        kps[d] = sp.render_person(sp.Canvas(canvas_img.copy()), ident, shot)
    # facing the camera the person's right shoulder is on the image left; from the back it is on the right
    assert kps[0][2, 0] < kps[0][5, 0] and kps[4][2, 0] > kps[4][5, 0]
    assert kps[0][0, 2] == 1 and kps[4][0, 2] == 0          # nose visible only from the front
    assert kps[2][16, 2] == 1 and kps[2][17, 2] == 0        # facing right: we see the right ear
    assert abs(kps[2][2, 0] - kps[2][5, 0]) < 0.5 * abs(kps[0][2, 0] - kps[0][5, 0])  # side view is narrow
    # depth order: a red backpack is hidden behind the torso from the front and covers it from the back
    from dataclasses import replace
    red = np.array([1.0, 0.0, 0.0], np.float32)
    pack = replace(ident, bag="backpack", bag_colour=red, top=np.full(3, 0.5, np.float32), top_pattern="solid")
    red_px = {}
    for d in (0, 4):
        shot.theta = d * np.pi / 4
        c = sp.Canvas(np.zeros((sp.H, sp.W, 3), np.float32))
        sp.render_person(c, pack, shot)
        red_px[d] = int(((c.img[..., 0] > 0.4) & (c.img[..., 1] < 0.1)).sum())
    assert red_px[4] > 150 and red_px[0] < 0.25 * red_px[4]  # from the front only the straps show


def test_tasks_share_train_and_gallery_but_not_queries(rendered):
    files = {t: _files(rendered[t]) for t in sp.TASKS}
    shared = [k for k in files["standard"] if not k.startswith("query") and k.endswith(".jpg")]
    queries = [k for k in files["standard"] if k.startswith("query") and k.endswith(".jpg")]
    for t in ("occluded", "infrared"):
        assert all(files[t][k] == files["standard"][k] for k in shared)
        assert all(files[t][k] != files["standard"][k] for k in queries)
    for k in queries:
        ir = np.asarray(Image.open(rendered["infrared"] / k), np.int16)
        vis = np.asarray(Image.open(rendered["standard"] / k), np.int16)
        # infrared queries are grey (up to JPEG chroma error); visible ones are coloured
        assert np.abs(ir[..., 0] - ir[..., 2]).mean() < 3 < np.abs(vis[..., 0] - vis[..., 2]).mean()
    # occluders hide part of the person: fewer visible keypoints over the queries
    vis_std = sum(load_pose_json((rendered["standard"] / k).with_suffix(".json")).visible.sum() for k in queries)
    vis_occ = sum(load_pose_json((rendered["occluded"] / k).with_suffix(".json")).visible.sum() for k in queries)
    assert vis_occ < vis_std


def test_full_plan_protocol():
    items = sp.plan(0)
    train = [i for i in items if i.split == "train"]
    query = [i for i in items if i.split == "query"]
    gallery = [i for i in items if i.split in ("gallery", "distractor")]
    junk = [i for i in items if i.split == "junk"]
    assert len({i.pid for i in train}) == 300 and len(train) == 300 * 12
    test_pids = sorted({i.pid for i in query})
    assert len(test_pids) == sp.NUM_TEST_IDS and len(query) == int(sp.NUM_TEST_IDS * sp.QUERIES_PER_ID)
    assert {i.pid for i in train}.isdisjoint(test_pids)
    for pid in test_pids:  # Market's structure: 2-6 cameras, one query in each, gallery images in each
        qcams = [i.camid for i in query if i.pid == pid]
        gcams = [i.camid for i in gallery if i.pid == pid]
        assert 2 <= len(qcams) <= 6 and len(set(qcams)) == len(qcams) and set(gcams) == set(qcams)
        assert sp.GALLERY_PER_ID[0] <= len(gcams) <= sp.GALLERY_PER_ID[1]
    n_gal_ids = sum(i.pid > 0 for i in gallery)
    assert n_gal_ids / len(test_pids) >= 12
    n_dis = sum(i.pid == 0 for i in gallery)
    assert abs(n_dis / len(gallery) - 2793 / 15913) < 0.005          # Market's distractor share of the gallery
    assert abs(len(junk) / (len(gallery) + len(junk)) - 3819 / 19732) < 0.005   # and junk share of the folder
    assert {i.pid for i in junk} == {-1} and all(i.folder == "bounding_box_test" for i in junk)
    assert 3 * len(query) + len(gallery) <= 1700   # the generation budget of the module docstring
    names = Counter((i.folder, i.filename) for i in items)
    assert max(names.values()) == 1
    for q in query:  # every query has at least one true match in another camera
        assert sum(1 for g in gallery if g.pid == q.pid and g.camid != q.camid) >= 1
    idents = sp._identities_for(0, items)
    test_ids = [idents[p] for p in test_pids]
    outfits = Counter((tuple(np.round(x.top, 1)), x.top_pattern) for x in test_ids)
    assert max(outfits.values()) >= 2, "the test split must contain near-duplicate identities"


def test_train_split_is_the_v3_plan():
    """The train items (hence bytes: every image has its own seed) are SynthPed v3's: pids 1..300, 12 images
    each, cameras drawn as before, frame numbers k * 25 + 1."""
    train = [i for i in sp.plan(0) if i.split == "train"]
    for pid in (1, 150, 300):
        rng = np.random.default_rng([0, 3, pid])
        cams = rng.choice(np.arange(1, 7), size=int(rng.integers(3, 6)), replace=False)
        want = [int(cams[k % len(cams)] if k < len(cams) else rng.choice(cams)) for k in range(12)]
        assert [i.camid for i in train if i.pid == pid] == want
    assert train[0].filename == f"0001_c{train[0].camid}s1_000001_00.jpg"


def test_stats_match_a_count_of_the_files(rendered, capsys):
    root = rendered["standard"]
    st = sp.split_statistics(root)
    files = {f: [p.name for p in (root / f).glob("*.jpg")] for f in ("query", "bounding_box_test")}
    pid = lambda n: int(n.split("_")[0])  # noqa: E731
    test_ids = {pid(n) for n in files["query"]}
    junk = [n for n in files["bounding_box_test"] if pid(n) == -1]
    dis = [n for n in files["bounding_box_test"] if pid(n) == 0]
    assert st["test_ids"] == len(test_ids) and st["query"] == len(files["query"])
    assert st["junk"] == len(junk) and st["distractors"] == len(dis)
    assert st["junk_share"] == len(junk) / len(files["bounding_box_test"])
    assert st["distractor_share"] == len(dis) / (len(files["bounding_box_test"]) - len(junk))
    assert st["gallery_per_id"] == (len(files["bounding_box_test"]) - len(junk) - len(dis)) / len(test_ids)
    assert sp.main(["--stats", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Market-1501" in out and "3,368 (4.49)" in out and "2,793 (17.6 %)" in out and "3,819 (19.4 %)" in out


def test_ensure_benchmark_renders_once_and_reuses_shared_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sp.benchmark, "plan", lambda seed=0: small_plan(seed))
    root = sp.ensure_benchmark("standard", progress=False, root=tmp_path)
    assert root == tmp_path / "standard" and (root / sp.MANIFEST).exists()
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}
    assert sp.ensure_benchmark("standard", progress=False, root=tmp_path) == root
    assert stamp == {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}
    occ = sp.ensure_benchmark("occluded", progress=False, root=tmp_path)
    fresh = sp.render_benchmark(tmp_path / "fresh", task="occluded", seed=0)
    assert _files(occ) == _files(fresh)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    with pytest.raises(ValueError, match="unknown SynthPed task"):
        sp.ensure_benchmark("thermal", root=tmp_path)


def test_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sp.benchmark, "plan", lambda seed=0: small_plan(seed))
    assert sp.main(["--out", str(tmp_path), "--seed", "0", "--task", "infrared", "--montage",
                    str(tmp_path / "m.png")]) == 0
    ds = load_market(tmp_path / "infrared")
    assert len(ds.query) == sum(i.split == "query" for i in small_plan()) and Image.open(tmp_path / "m.png").width > 64


def test_ground_truth_has_the_targets_keypoints_and_reproduces_the_reference(rendered, tmp_path):
    """render_ground_truth: reference's person and camera, target's pose (keypoints equal the target's
    file up to the json rounding); target == reference gives the reference image's exact pixels and bytes."""
    items = small_plan()
    root = rendered["standard"]
    train = [i for i in items if i.split == "train"]
    refs = [i for i in items if i.split in ("query", "gallery")][:4] + train[:1]
    for ref in refs:
        for tgt in train:
            img, kp = sp.render_ground_truth(0, ref, tgt, items=items)
            assert img.shape == (sp.H, sp.W, 3) and img.dtype == np.uint8
            want = load_pose_json(root / tgt.folder / tgt.filename.replace(".jpg", ".json"))
            np.testing.assert_allclose(kp[:, :2], want.keypoints[:, :2], atol=0.01)
            assert np.array_equal(kp[:, 2] > 0, want.visible)
        same, _ = sp.render_ground_truth(0, ref, ref, items=items)
        idents = sp._identities_for(0, items)
        again = sp.render_item(0, ref, "standard", idents[ref.source_pid])
        assert np.array_equal(same, np.asarray(again.image))
        sp._write(tmp_path / "gt.jpg", sp.Rendered(Image.fromarray(same), again.keypoints, again.jpeg))
        assert (tmp_path / "gt.jpg").read_bytes() == (root / ref.folder / ref.filename).read_bytes()
    # another pose really moves the person, and the reference's clothes stay (not the target's)
    a, _ = sp.render_ground_truth(0, refs[0], train[0], items=items)
    b, _ = sp.render_ground_truth(0, refs[0], train[-1], items=items)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3
    with pytest.raises(ValueError, match="whole person"):
        sp.render_ground_truth(0, next(i for i in items if i.split == "distractor"), train[0], items=items)


def test_canonical_ground_truth_puts_every_reference_on_one_background(rendered):
    """background="canonical": the target's keypoints still; away from the person (its keypoint box + 12 px)
    the pixels are the same for references of all six cameras, where the reference's own background differs;
    the person keeps the reference's clothes."""
    items = small_plan()
    train = [i for i in items if i.split == "train"]
    refs = [i for i in items if i.split in ("query", "gallery", "train")]
    assert len({r.camid for r in refs}) == 6
    for tgt in train[:4]:
        canon, own = [], []
        for ref in refs:
            img, kp = sp.render_ground_truth(0, ref, tgt, items=items, background="canonical")
            img_own, kp_own = sp.render_ground_truth(0, ref, tgt, items=items)
            np.testing.assert_array_equal(kp, kp_own)
            canon.append(img.astype(int))
            own.append(img_own.astype(int))
        v = kp[:, 2] > 0
        x0, x1 = int(kp[v, 0].min()) - 12, int(np.ceil(kp[v, 0].max())) + 12
        y0, y1 = int(kp[v, 1].min()) - 12, int(np.ceil(kp[v, 1].max())) + 12
        away = np.ones((sp.H, sp.W), bool)
        away[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = False
        assert away.sum() > 500
        for c, o in zip(canon[1:], own[1:]):
            assert np.array_equal(c[away], canon[0][away])
            assert not np.array_equal(o[away], own[0][away])
        person = ~away
        assert any(np.abs(c[person] - canon[0][person]).mean() > 3 for c in canon[1:])
    with pytest.raises(ValueError, match="background must be"):
        sp.render_ground_truth(0, refs[0], train[0], items=items, background="studio")


def test_item_for_file_finds_planned_items():
    items = sp.plan(0)
    for it in (items[0], next(i for i in items if i.split == "query")):
        assert sp.item_for_file(f"{it.folder}/{it.filename}") == it
        assert sp.item_for_file(f"/some/root/{it.folder}/{it.filename}") == it
    with pytest.raises(KeyError, match="not an image of the SynthPed plan"):
        sp.item_for_file("query/9999_c1s1_000000_00.jpg")


def test_rendered_training_pairs_put_the_reference_in_the_targets_pose(rendered, tmp_path):
    """RenderedPairs: each pooled target is render_ground_truth(reference, target) at the model's size,
    never the reference's own pose; the pool is cached and reloaded; a root that is not the plan's is refused."""
    from pose2id_demo.ipg.rendered_pairs import RenderedPairs

    root = rendered["standard"]
    train = load_market(root).train
    paths = [r.path for r in train]
    items = small_plan()
    refs, trgs = np.arange(len(paths)), np.arange(len(paths))
    pool = RenderedPairs(paths, refs, trgs, (64, 32), 2, seed=3, cache=tmp_path, plan=items)
    by_name = {it.filename: it for it in items}
    for r in refs:
        assert len(set(pool.target_of[r])) == 2 and r not in pool.target_of[r]
        for j, t in enumerate(pool.target_of[r]):
            img, _ = sp.render_ground_truth(0, by_name[Path(paths[r]).name], by_name[Path(paths[t]).name], items=items)
            want = np.asarray(Image.fromarray(img).resize((32, 64), Image.BOX))
            assert np.array_equal(pool.image_of(r, j), want)
    again = RenderedPairs(paths, refs, trgs, (64, 32), 2, seed=3, cache=tmp_path, plan=items)
    assert np.array_equal(again.images, pool.images) and np.array_equal(again.target_of, pool.target_of)
    canon = RenderedPairs(paths, refs, trgs, (64, 32), 2, seed=3, cache=tmp_path, plan=items, background="canonical")
    assert np.array_equal(canon.target_of, pool.target_of) and not np.array_equal(canon.images, pool.images)
    r, j = int(refs[-1]), 1
    img, _ = sp.render_ground_truth(0, by_name[Path(paths[r]).name], by_name[Path(paths[canon.target_of[r, j]]).name],
                                    items=items, background="canonical")
    assert np.array_equal(canon.image_of(r, j), np.asarray(Image.fromarray(img).resize((32, 64), Image.BOX)))
    assert len(list(tmp_path.glob("rendered_pairs_*.npz"))) == 2  # one cache file per background
    with pytest.raises(ValueError, match="not an image of the SynthPed plan"):
        RenderedPairs(paths, refs, trgs, (64, 32), 2, seed=3, cache=tmp_path / "seed1", benchmark_seed=1,
                      plan=small_plan(1))
    fake = tmp_path / Path(paths[0]).parent.name / Path(paths[0]).name
    fake.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(fake)
    with pytest.raises(ValueError, match="differs from its render"):
        RenderedPairs([str(fake)] + paths[1:], refs, trgs, (64, 32), 2, seed=3, cache=tmp_path / "fake", plan=items)
