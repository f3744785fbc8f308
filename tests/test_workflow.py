"""One workflow for a dataset folder: ``demo-dataset`` → ``extract`` → ``generate`` → ``eval --gen`` (and
``visrank``), each output path printed and the log lines shown; generated features that belong to other images
are refused with one sentence; and the README's own-dataset recipe, run as written (with the real shipped
generator and backbone)."""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOUR_BACKBONE
from PIL import Image

from pose2id_demo import ablation, cli
from pose2id_demo.data import load_market
from pose2id_demo.featurefile import attach_generated, load_feature_npz, read_file_info
from pose2id_demo.ipg.precompute import read_generated

REPO = Path(__file__).resolve().parent.parent
BB = COLOUR_BACKBONE
#: The ``market`` fixture's test identities (conftest.py).
MARKET_TEST_IDS = 3


def rows_of(text: str) -> dict[str, list[float]]:
    return {ln[:16].strip(): [float(v) for v in ln[16:].split()] for ln in text.splitlines()
            if ln[:16].strip() in ablation.ROW_NAMES}


def test_extract_generate_eval_gen_is_one_workflow(market, tmp_path, fake_generator, capsys):
    feats, gen = tmp_path / "features.npz", market / "gen-test.npz"
    assert cli.main(["extract", "--data", str(market), "--backbone", BB, "--out", str(feats)]) == 0
    out, err = capsys.readouterr()
    assert f"wrote {feats}" in out and "INFO: wrote" in err  # the log line reaches stderr
    assert cli.main(["generate", "--data", str(market), "--backbone", BB, "--out", str(gen)]) == 0
    out, err = capsys.readouterr()
    assert f"wrote {gen}" in out and f"--gen {gen}" in out
    cache = tmp_path / "cache" / "ipg"
    assert "INFO: generation cache " + str(cache) in err and re.search(r"generate \(8 poses per reference\).*100%", err)
    assert cli.main(["eval", str(feats)]) == 0
    plain = capsys.readouterr().out
    assert list(rows_of(plain)) == ["baseline", "+NFC"] and "add --gen GEN.npz" in plain
    assert cli.main(["eval", str(feats), "--gen", str(gen)]) == 0
    text = capsys.readouterr().out
    assert f"(from {gen})" in text and "eta=0.5" in text
    printed = rows_of(text)
    assert list(printed) == list(ablation.ROW_NAMES)
    # the numbers are the library's on the two files joined
    data = attach_generated(load_feature_npz(feats), read_generated(gen), read_file_info(feats))
    for r in cli.run_eval(data):
        want = [round(100 * r[k], 2) for k in ("mAP", "Rank-1", "Rank-5", "Rank-10", "mINP")] + [round(r["ID2"], 4)]
        assert printed[r["setting"]] == want, r["setting"]
    assert printed["baseline"] == rows_of(plain)["baseline"]


def test_eval_writes_the_figures_and_ranked_lists_it_prints(market, tmp_path, fake_generator, capsys):
    feats, gen = tmp_path / "f.npz", tmp_path / "g.npz"
    assert cli.main(["extract", "--data", str(market), "--backbone", BB, "--out", str(feats)]) == 0
    assert cli.main(["generate", "--data", str(market), "--backbone", BB, "--out", str(gen)]) == 0
    capsys.readouterr()
    d, i, c = tmp_path / "out" / "d.png", tmp_path / "out" / "i.png", tmp_path / "out" / "r.csv"
    assert cli.main(["eval", str(feats), "--gen", str(gen), "--plot-distances", str(d), "--plot-identity", str(i),
                     "--ranked-lists", str(c), "--top", "3"]) == 0
    out = capsys.readouterr().out
    for path in (d, i, c):
        assert f"wrote {path}" in out and path.is_file()
    for png in (d, i):
        with Image.open(png) as im:
            assert im.format == "PNG"
    assert re.search(r"overlap: baseline \d\.\d{3} → \+NFC \d\.\d{3} → \+IPG \d\.\d{3} → \+NFC\+IPG \d\.\d{3}", out)
    with c.open() as f:
        lines = list(csv.DictReader(f))
    ds = load_market(market)
    assert len(lines) == 2 * 3 * len(ds.query)  # baseline and +NFC+IPG, top 3, every query
    after = [ln for ln in lines if ln["setting"] == "+NFC+IPG"]
    aps = [float(ln["AP"]) for ln in after[::3]]
    assert aps == sorted(aps)  # worst AP first
    assert {ln["match"] for ln in lines} <= {"0", "1"} and all(0 <= float(ln["distance"]) <= 2 for ln in lines)


def test_generated_features_of_other_images_are_refused(market, tmp_path, fake_generator, capsys):
    feats, gen = tmp_path / "f.npz", tmp_path / "g.npz"
    assert cli.main(["extract", "--data", str(market), "--backbone", BB, "--out", str(feats)]) == 0
    assert cli.main(["generate", "--data", str(market), "--backbone", BB, "--out", str(gen)]) == 0
    z = dict(np.load(gen, allow_pickle=False))
    other = tmp_path / "other"  # the same folder less one query
    other.mkdir()
    np.savez(other / "fewer.npz", **{**z, "q_gen": z["q_gen"][1:], "q_paths": z["q_paths"][1:]})
    np.savez(other / "order.npz", **{**z, "g_gen": z["g_gen"][::-1], "g_paths": z["g_paths"][::-1]})
    np.savez(other / "dim.npz", **{**z, "q_gen": z["q_gen"][..., :2], "g_gen": z["g_gen"][..., :2]})
    np.savez(other / "backbone.npz", **{**z, "settings": np.array('{"backbone": "synthped-reid"}')})
    with_gen = tmp_path / "with-gen.npz"
    np.savez(with_gen, **dict(np.load(feats, allow_pickle=False)), q_gen=z["q_gen"], g_gen=z["g_gen"])
    capsys.readouterr()
    for name, phrase in (("fewer", "from another folder"), ("order", "lists other gallery images"),
                         ("dim", "another backbone"), ("backbone", "generate with --backbone test-extract-colour")):
        assert cli.main(["eval", str(feats), "--gen", str(other / f"{name}.npz")]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and phrase in err, (name, err)
    assert cli.main(["eval", str(with_gen), "--gen", str(gen)]) == 2
    assert "already holds generated features" in capsys.readouterr().err
    assert cli.main(["eval", str(feats), "--gen", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_generate_shard_says_where_each_part_went(market, tmp_path, fake_generator, capsys):
    args = ["generate", "--data", str(market), "--backbone", BB, "--out", str(tmp_path / "g.npz")]
    assert cli.main([*args, "--shard", "1/2"]) == 0
    out, err = capsys.readouterr()
    part = next((tmp_path / "cache" / "ipg").glob("*-shard1of2.npz"))
    assert f"part 1 of 2 written to {part}" in err and "run once more without --shard" in out
    assert f"into {tmp_path / 'g.npz'}" in err


def test_demo_dataset_and_visrank(tmp_path, capsys):
    root = tmp_path / "demo"
    assert cli.main(["demo-dataset", str(root), "--ids", "2"]) == 0
    out = capsys.readouterr().out
    ds = load_market(root)
    assert f"wrote {root}: {len(ds.query)} queries, {len(ds.gallery)} gallery images" in out
    assert len({r.pid for r in ds.query}) == 2 and any(r.pid == 0 for r in ds.gallery)
    assert list((root / "bounding_box_test").glob("-1_*.jpg")) and not list(root.rglob("*.json"))
    assert cli.main(["demo-dataset", str(root)]) == 2  # not empty
    assert "already exists" in capsys.readouterr().err
    feats = tmp_path / "f.npz"
    assert cli.main(["extract", "--data", str(root), "--backbone", BB, "--out", str(feats)]) == 0
    capsys.readouterr()
    vis = tmp_path / "vis"
    assert cli.main(["visrank", str(feats), "--out", str(vis), "--num", "2", "--top", "4"]) == 0
    out = capsys.readouterr().out
    files = sorted(p.name for p in vis.glob("*.png"))
    assert f"wrote {vis}: 4 PNG files" in out and len(files) == 4
    assert [f.split("-")[0] for f in files] == ["best", "best", "worst", "worst"]
    with Image.open(vis / files[0]) as im:
        assert im.height > 2 * 128  # the baseline's strip above the +NFC strip
    # Fewer queries than 10 worst + 10 best: the lists split them, and the output says so.
    q = len(ds.query)
    assert q < 20
    vis10 = tmp_path / "vis10"
    assert cli.main(["visrank", str(feats), "--out", str(vis10), "--num", "10", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert (f"only {q} of {q} queries have a valid match, fewer than the 20 asked (10 worst + 10 best): drawing "
            f"{-(-q // 2)} worst and {q // 2} best, no query in both") in out
    drawn = {kind: {p.name.split("query")[1] for p in vis10.glob(f"{kind}-*.png")} for kind in ("worst", "best")}
    assert len(drawn["worst"]) == -(-q // 2) and len(drawn["best"]) == q // 2
    assert not drawn["worst"] & drawn["best"]
    bare = tmp_path / "bare.npz"
    np.savez(bare, **load_feature_npz(feats))
    assert cli.main(["visrank", str(bare), "--out", str(vis)]) == 2
    assert "does not name its images" in capsys.readouterr().err


def readme_recipe() -> list[list[str]]:
    """The commands of the README's own-dataset recipe (the block after its marker comment)."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- own-dataset recipe: tests/test_workflow.py runs these commands -->", 1)[1]
    block = block.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(ln.split("#")[0])[3:] for ln in block.splitlines()
            if ln.startswith("python -m pose2id_demo ")]


@pytest.mark.slow
def test_shipped_sample_is_what_the_recipe_writes(tmp_path, monkeypatch, capsys):
    """``assets/features/sample-demo-synthped-reid.npz`` is the ``features.npz`` of the README recipe's first two
    commands, as written there: remade here, the same images, identities and cameras, the features within float32
    rounding of the extraction, and the weights id of the backbone as shipped now."""
    import json

    from pose2id_demo.paths import SAMPLE_FEATURES
    from pose2id_demo.reid import get_backbone

    readme = (REPO / "README.md").read_text()
    assert str(SAMPLE_FEATURES.relative_to(REPO)) in readme.split("## Your own features", 1)[1].split("\n## ", 1)[0]
    monkeypatch.chdir(tmp_path)
    commands = readme_recipe()[:2]
    assert [c[0] for c in commands] == ["demo-dataset", "extract"]
    for argv in commands:
        assert cli.main(argv) == 0, argv
    capsys.readouterr()
    with np.load(commands[1][commands[1].index("--out") + 1], allow_pickle=False) as fresh, \
            np.load(SAMPLE_FEATURES, allow_pickle=False) as shipped:
        assert sorted(shipped.files) == sorted(fresh.files)
        for key in ("q_pids", "g_pids", "q_camids", "g_camids", "q_paths", "g_paths"):
            assert (shipped[key] == fresh[key]).all(), key
        for key in ("q_feats", "g_feats"):
            assert shipped[key].dtype == np.float32
            np.testing.assert_allclose(shipped[key], fresh[key], rtol=1e-4, atol=1e-5 * np.abs(fresh[key]).max())
        settings, made = (json.loads(str(z["settings"])) for z in (shipped, fresh))
    settings.pop("seconds"), made.pop("seconds")
    assert settings == made
    assert settings["weights_id"] == get_backbone(settings["backbone"]).weights_id


@pytest.mark.slow
def test_the_readme_recipe_runs_end_to_end(tmp_path, monkeypatch, capsys):
    """The README's commands in order, in an empty folder, with the shipped generator and backbone; for time,
    2 identities instead of 4 and 2 DDIM steps instead of 20 (the only changes)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    commands = readme_recipe()
    assert [c[0] for c in commands] == ["demo-dataset", "extract", "generate", "eval", "visrank"]
    outputs = []
    for argv in commands:
        argv = argv + {"demo-dataset": ["--ids", "2"], "generate": ["--steps", "2", "--threads", "1"]}.get(argv[0], [])
        assert cli.main(argv) == 0, argv
        outputs.append(capsys.readouterr().out)
    written = [Path(p) for out in outputs for p in re.findall(r"^wrote (\S+?):? ", out, re.MULTILINE)]
    assert len(written) >= 7 and all(p.exists() for p in written)  # every path it prints is there
    rows = rows_of(outputs[3])
    assert list(rows) == list(ablation.ROW_NAMES)  # the generated features were attached
    assert all(0 <= v <= 100 for r in rows.values() for v in r[:5])
    assert len(list(Path(commands[4][commands[4].index("--out") + 1]).glob("*.png"))) > 0
