"""``python -m pose2id_demo extract`` / ``generate`` on a small Market-layout folder the test writes (SynthPed
renders with junk and distractor files), resumable and sharded, and a badly named file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOUR_BACKBONE
from PIL import Image

from pose2id_demo import cli
from pose2id_demo.data import load_market
from pose2id_demo.reid import get_backbone
from pose2id_demo.reid.extract import extract_features, partial_path

#: The ``market`` fixture's test identities (conftest.py).
MARKET_TEST_IDS = 2


def test_extract_writes_a_feature_file_eval_reads_and_drops_junk(market, tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert cli.main(["extract", "--data", str(market), "--backbone", COLOUR_BACKBONE, "--out", str(out),
                     "--batch-size", "3", "--threads", "1"]) == 0
    with np.load(out, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    ds = load_market(market)
    junk = list((market / "bounding_box_test").glob("-1_*.jpg"))
    assert len(junk) == 4 and -1 not in d["g_pids"] and (d["g_pids"] == 0).sum() == 3
    assert len(d["g_feats"]) == len(list((market / "bounding_box_test").glob("*.jpg"))) - len(junk)
    assert list(d["q_paths"]) == [str(Path(r.path).relative_to(market)) for r in ds.query]
    direct = get_backbone(COLOUR_BACKBONE).extract([Image.open(r.path).convert("RGB") for r in ds.gallery])
    np.testing.assert_allclose(d["g_feats"], direct, atol=1e-6)
    assert json.loads(str(d["settings"]))["backbone"] == COLOUR_BACKBONE
    assert not partial_path(out).exists()
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) == 0 and "baseline" in capsys.readouterr().out


def test_extract_resumes_after_an_interruption(market, tmp_path, monkeypatch):
    out = tmp_path / "f.npz"
    bb = get_backbone(COLOUR_BACKBONE)
    real, calls = bb.extract, []

    def flaky(images, **kw):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(images, **kw)

    monkeypatch.setattr("pose2id_demo.reid.get_backbone", lambda name, device="cpu": bb)
    monkeypatch.setattr(bb, "extract", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_features(market, COLOUR_BACKBONE, out, chunk=5, progress=False)
    assert partial_path(out).exists() and not out.exists()
    calls.clear()
    monkeypatch.setattr(bb, "extract", lambda images, **kw: calls.append(len(images)) or real(images, **kw))
    extract_features(market, COLOUR_BACKBONE, out, chunk=5, progress=False)
    ds = load_market(market)
    assert sum(calls) == len(ds.query) + len(ds.gallery) - 5   # the first chunk came from the partial file
    again = tmp_path / "g.npz"
    extract_features(market, COLOUR_BACKBONE, again, progress=False)
    with np.load(out) as a, np.load(again) as b:
        assert np.array_equal(a["q_feats"], b["q_feats"]) and np.array_equal(a["g_feats"], b["g_feats"])


def test_a_badly_named_file_is_one_error_naming_it(market, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(market, bad)
    shutil.copy(next((bad / "query").glob("*.jpg")), bad / "query" / "IMG_0042.jpg")
    for cmd in (["extract", "--backbone", COLOUR_BACKBONE], ["generate"]):
        assert cli.main([*cmd, "--data", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "IMG_0042.jpg" in err and err.count("\n") == 1
    assert cli.main(["extract", "--data", str(tmp_path / "nope"), "--backbone", COLOUR_BACKBONE,
                     "--out", str(tmp_path / "x.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generate_sharded_then_merged_equals_one_run(market, tmp_path, monkeypatch, fake_generator):
    pipes = fake_generator
    ds = load_market(market)
    n = len(ds.query) + len(ds.gallery)
    args = ["generate", "--data", str(market), "--ipg", "tiny", "--backbone", COLOUR_BACKBONE]
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "c1"))
    for k in range(2):
        assert cli.main([*args, "--out", str(tmp_path / "a.npz"), "--shard", f"{k}/2"]) == 0
    assert not (tmp_path / "a.npz").exists()     # shards only fill the generation cache
    assert cli.main([*args, "--out", str(tmp_path / "a.npz")]) == 0
    assert sum(pipes[0].calls) + sum(pipes[1].calls) == n and pipes[2].calls == []   # merged, nothing redone
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "c2"))
    assert cli.main([*args, "--out", str(tmp_path / "b.npz")]) == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a["q_gen"].shape == (len(ds.query), 8, 3) and a["g_gen"].shape == (len(ds.gallery), 8, 3)
        assert np.array_equal(a["q_gen"], b["q_gen"]) and np.array_equal(a["g_gen"], b["g_gen"])
        assert list(a["g_paths"]) == [str(Path(r.path).relative_to(market)) for r in ds.gallery]
        assert json.loads(str(a["settings"]))["steps"] == 20
    assert cli.main([*args, "--out", str(tmp_path / "c.npz"), "--shard", "2/2"]) == 2


def test_a_shared_gallery_is_generated_once_and_read_back(market, tmp_path, fake_generator):
    """SynthPed's tasks share one gallery: a folder whose gallery is another's generates its queries only and
    names the other file as its gallery source; reading it back gives the gallery's features of that file,
    and a source made another way, or not beside it, is refused."""
    from pose2id_demo.ipg.precompute import generate_features, read_generated, same_gallery

    pipes = fake_generator
    other = tmp_path / "other"
    shutil.copytree(market, other)
    for q in (other / "query").glob("*.jpg"):  # other queries (their pixels shifted), the same gallery
        Image.fromarray((np.asarray(Image.open(q).convert("RGB")) // 2).astype(np.uint8)).save(q)
    assert same_gallery(market, other)
    bb = COLOUR_BACKBONE
    (full,) = generate_features(market, [bb], tmp_path / "feat" / "a-{backbone}.npz")
    (part,) = generate_features(other, [bb], tmp_path / "feat" / "b-{backbone}.npz", gallery_from=full)
    ds = load_market(other)
    assert sum(pipes[1].calls) == len(ds.query)  # queries only
    with np.load(part, allow_pickle=False) as z:
        assert "g_gen" not in z.files and json.loads(str(z["settings"]))["gallery_from"] == full.name
    a, b = read_generated(full), read_generated(part)
    assert np.array_equal(a["g_gen"], b["g_gen"]) and a["g_paths"] == b["g_paths"]
    assert not np.array_equal(a["q_gen"], b["q_gen"])  # its own queries
    first = [Image.fromarray(np.full((8, 4, 3), round(np.asarray(Image.open(r.path).convert("RGB"), np.float32)
                                                    .mean() / 255 / 10 * 255), np.uint8)) for r in ds.query]
    direct = get_backbone(bb).extract(first)  # FakePipe's pose-0 image of each of these queries
    np.testing.assert_allclose(b["q_gen"][:, 0], direct, atol=1e-2)
    with pytest.raises(ValueError, match="steps"):  # a source made with other settings
        generate_features(other, [bb], tmp_path / "feat" / "c-{backbone}.npz", steps=10, gallery_from=full)
    moved = tmp_path / "elsewhere" / part.name
    moved.parent.mkdir()
    shutil.copy(part, moved)
    with pytest.raises(ValueError, match="not beside it"):
        read_generated(moved)
    # A gallery changed by one image is not the same gallery.
    g = sorted((other / "bounding_box_test").glob("*.jpg"))[-1]
    Image.fromarray(255 - np.asarray(Image.open(g).convert("RGB"))).save(g)
    assert not same_gallery(market, other)


def _write_generations(root: Path, skip_distractors: bool = True) -> None:
    """The official layout: ``query_gen/pose{k}/`` and ``bounding_box_test_gen/pose{k}/`` under each original file
    name; generation k of an image is the image with its pixels shifted by 20 k (distractors get none)."""
    ds = load_market(root)
    for folder, records in (("query_gen", ds.query), ("bounding_box_test_gen", ds.gallery)):
        for k in range(1, 9):
            (root / folder / f"pose{k}").mkdir(parents=True)
            for r in records:
                if r.pid == 0 and skip_distractors:
                    continue
                arr = (np.asarray(Image.open(r.path).convert("RGB")).astype(np.int64) + 20 * k) % 256
                Image.fromarray(arr.astype(np.uint8)).save(root / folder / f"pose{k}" / Path(r.path).name)


def test_extract_reads_the_official_generated_layout(market, tmp_path, capsys):
    root = tmp_path / "gen-layout"
    shutil.copytree(market, root)
    _write_generations(root)
    out = tmp_path / "f.npz"
    assert cli.main(["extract", "--data", str(root), "--backbone", COLOUR_BACKBONE, "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    ds = load_market(root)
    bb = get_backbone(COLOUR_BACKBONE)
    assert d["q_gen"].shape == (len(ds.query), 8, 3) and d["g_gen"].shape == (len(ds.gallery), 8, 3)
    for split, records, key in (("query_gen", ds.query, "q_gen"), ("bounding_box_test_gen", ds.gallery, "g_gen")):
        for k in (1, 5, 8):
            want = bb.extract([Image.open(r.path if r.pid == 0 else root / split / f"pose{k}" / Path(r.path).name)
                               .convert("RGB") for r in records])
            np.testing.assert_allclose(d[key][:, k - 1], want, atol=1e-6)
    distractors = np.flatnonzero(d["g_pids"] == 0)
    assert len(distractors) == 3  # their own image for every pose, as the official evaluation
    assert np.allclose(d["g_gen"][distractors], d["g_feats"][distractors][:, None])
    assert not np.allclose(d["q_gen"][:, 0], d["q_feats"])
    assert json.loads(str(d["settings"]))["generated"]["poses"] == 8
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    assert "q_gen M=8, g_gen M=8" in text and "+IPG" in text

    assert cli.main(["extract", "--data", str(root), "--backbone", COLOUR_BACKBONE, "--out",
                     str(tmp_path / "plain.npz"), "--no-generated"]) == 0
    with np.load(tmp_path / "plain.npz") as z:
        assert "q_gen" not in z.files and np.array_equal(z["g_feats"], d["g_feats"])
    gone = root / "bounding_box_test_gen" / "pose3" / Path(ds.gallery[-1].path).name
    gone.unlink()
    capsys.readouterr()
    assert cli.main(["extract", "--data", str(root), "--backbone", COLOUR_BACKBONE, "--out",
                     str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("INFO: ")]  # the log lines of the steps before
    assert len(lines) == 1 and lines[0].startswith("error: ") and "1 generated images are missing" in lines[0]
    assert str(gone) in lines[0]
    shutil.rmtree(root / "bounding_box_test_gen")
    assert cli.main(["extract", "--data", str(root), "--backbone", COLOUR_BACKBONE, "--out",
                     str(tmp_path / "x.npz")]) == 2
    assert "has query_gen/ but no bounding_box_test_gen/" in capsys.readouterr().err


def test_generate_images_out_writes_the_official_layout_then_one_feature_file(market, tmp_path, fake_generator):
    """--images-out: generations as PNG files in the official layout (sharded, resumable: a rerun generates
    nothing), then a whole feature file read back from them — the same as reading that layout with extract."""
    pipes = fake_generator
    images = tmp_path / "gen-images"
    args = ["generate", "--data", str(market), "--ipg", "tiny", "--backbone", COLOUR_BACKBONE,
            "--images-out", str(images), "--out", str(tmp_path / "g.npz")]
    for k in range(2):
        assert cli.main([*args, "--shard", f"{k}/2"]) == 0
    assert not (tmp_path / "g.npz").exists()
    ds = load_market(market)
    real = [r for r in ds.gallery if r.pid != 0]
    assert sum(pipes[0].calls) + sum(pipes[1].calls) == len(ds.query) + len(real)  # distractors get none
    for r in ds.query[:2] + real[:2]:
        folder = "query_gen" if r in ds.query else "bounding_box_test_gen"
        assert all((images / folder / f"pose{k}" / (Path(r.path).stem + ".png")).is_file() for k in range(1, 9))
    assert not list(images.rglob(Path(next(r for r in ds.gallery if r.pid == 0).path).stem + ".png"))
    assert cli.main(args) == 0 and pipes[2].calls == []  # everything was on disk
    with np.load(tmp_path / "g.npz") as z:
        d = {k: z[k] for k in z.files}
    assert d["q_gen"].shape == (len(ds.query), 8, 3) and d["g_gen"].shape == (len(ds.gallery), 8, 3)
    assert json.loads(str(d["settings"]))["generation"]["steps"] == 20
    direct = extract_features(market, COLOUR_BACKBONE, tmp_path / "direct.npz", progress=False, gen_root=images)
    with np.load(direct) as z:
        assert np.array_equal(z["q_gen"], d["q_gen"]) and np.array_equal(z["g_gen"], d["g_gen"])
    first = get_backbone(COLOUR_BACKBONE).extract(
        [Image.open(images / "query_gen" / "pose1" / (Path(r.path).stem + ".png")) for r in ds.query])
    np.testing.assert_allclose(d["q_gen"][:, 0], first, atol=1e-6)
