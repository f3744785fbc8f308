"""The Market-1501-format reader on tiny hand-made trees."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pose2id_demo.data import MarketDataset, Record, load_market
from pose2id_demo.data.market import parse_name


def make_tree(root: Path, files: dict[str, list[str]]) -> Path:
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in names:
            (root / folder / n).write_bytes(b"\xff\xd8\xff")  # the reader never decodes images
    return root


TREE = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_077419_03.jpg",
                           "-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "Thumbs.db"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c6s2_000001_00.jpg", "-1_c2s1_000000_00.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0001_c1s1_001051_01.jpg", "0000_c1s1_000001_01.jpg",
                          "-1_c1s1_000002_01.jpg", "0003_c5s1_000001_00.png", "notes.txt", "random.jpg"],
}


def test_reader_on_tiny_tree(tmp_path):
    ds = load_market(make_tree(tmp_path, TREE))
    assert isinstance(ds, MarketDataset) and ds.root == tmp_path
    assert [(r.pid, r.camid) for r in ds.train] == [(2, 1), (2, 2), (7, 3)]          # junk and 0000 dropped
    assert [(r.pid, r.camid) for r in ds.query] == [(1, 1), (3, 6)]
    # gallery: distractors (0000) kept as Market does, junk (-1) and badly named files dropped
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 1), (1, 1), (1, 2), (3, 5)]
    assert all(isinstance(r, Record) and Path(r.path).exists() for r in ds.train + ds.query + ds.gallery)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.query[0].pid = 5  # records are frozen


def test_parse_name():
    assert parse_name("0002_c1s1_000451_03.jpg") == (2, 1)
    assert parse_name("-1_c3s2_000000_00.jpg") == (-1, 3)
    assert parse_name("0123_c12_f0001.jpg") == (123, 12)     # MSMT-style camera numbers
    assert parse_name("img_0001.jpg") is None


def test_nested_root_and_optional_train(tmp_path):
    files = {k: v for k, v in TREE.items() if k != "bounding_box_train"}
    make_tree(tmp_path / "Market-1501-v15.09.15", files)
    ds = load_market(tmp_path)
    assert ds.root == tmp_path / "Market-1501-v15.09.15" and ds.train == [] and len(ds.query) == 2


@pytest.mark.parametrize("files, message", [
    ({"images": ["0001_c1s1_000001_00.jpg"]}, "not a Market-1501-format folder"),
    ({"query": ["0001_c1s1_000001_00.jpg"]}, "not a Market-1501-format folder"),
    ({"query": ["a.jpg"], "bounding_box_test": ["b.jpg"]}, "no usable images"),
])
def test_bad_folders_raise_clear_errors(tmp_path, files, message):
    make_tree(tmp_path, files)
    with pytest.raises(ValueError, match=message):
        load_market(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_market(tmp_path / "nope")


def test_strict_reader_names_the_badly_named_file(tmp_path):
    root = make_tree(tmp_path, TREE)
    with pytest.raises(ValueError, match="random.jpg: file name does not start with"):
        load_market(root, strict=True)
    (root / "bounding_box_test" / "random.jpg").unlink()
    ds = load_market(root, strict=True)   # junk (-1), distractors and non-images are fine
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 1), (1, 1), (1, 2), (3, 5)]
    (root / "query" / "-7_c1s1_000000_00.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ValueError, match="-7_c1s1_000000_00.jpg"):
        load_market(root, strict=True)
