"""``python app.py --dataset NAME=ROOT``: a Market-layout folder the test writes (SynthPed renders with junk and
distractor files, keypoint files removed) becomes a Benchmark task — rows equal to the ablation of a direct
extraction, features cached on disk by the folder's content, generated features from the folder used for
the IPG rows — and bad folders or file names stop the app with one ``error:`` line naming them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pose2id_demo import ablation
from pose2id_demo.ablation import Settings
from pose2id_demo.data import load_market
from pose2id_demo.engine import Engine, Pose2IDError
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.reid import Backbone, get_backbone, register_backbone

REPO = Path(__file__).resolve().parents[1]
BB = "test-app-dataset-colour"


class MeanColourStripes(nn.Module):
    """A 9-d feature: the mean colour of three horizontal stripes (enough to tell SynthPed people apart)."""

    def forward(self, x):
        return torch.cat([s.mean(dim=(2, 3)) for s in x.chunk(3, dim=2)], dim=1)


register_backbone(BB, lambda device="cpu": Backbone(BB, MeanColourStripes(), (48, 24), (0.5,) * 3, (0.5,) * 3, 9,
                                                    "w-app-dataset", device=device), overwrite=True)


#: The ``market`` fixture's test identities (conftest.py).
MARKET_TEST_IDS = 3


@pytest.fixture()
def engine(tmp_path, monkeypatch) -> Engine:
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    return Engine()


def _direct(root: Path) -> FeatureSet:
    """The benchmark's features computed here, from the reader's records and the backbone itself."""
    ds = load_market(root)
    bb = get_backbone(BB)
    arrays = {}
    for s, recs in (("q", ds.query), ("g", ds.gallery)):
        arrays[f"{s}_feats"] = bb.extract([Image.open(r.path).convert("RGB") for r in recs])
        arrays[f"{s}_pids"] = np.array([r.pid for r in recs])
        arrays[f"{s}_camids"] = np.array([r.camid for r in recs])
    return FeatureSet.from_arrays(arrays)


def test_a_dataset_is_a_task_whose_rows_are_the_ablation_of_its_features(engine, market):
    info = engine.features.add_dataset('tiny', market)
    assert engine.features.tasks() == ["standard", "occluded", "infrared", "tiny"]
    files = sorted((market / "bounding_box_test").glob("*.jpg"))
    junk = [p for p in files if p.name.startswith("-1_")]
    assert len(junk) == 4 and info["n_gallery"] == len(files) - 4
    res = engine.bench.benchmark(task='tiny', backbone=BB, settings=Settings(eta=1.0, k1=2, k2=2))
    assert [r["setting"] for r in res["rows"]] == ["baseline", "+NFC"]
    assert res["n_gallery"] == len(files) - 4 and res["n_query"] == len(load_market(market).query)
    assert any(f"python -m pose2id_demo generate --data {market} --backbone {BB}" in n for n in res["notes"])
    data = engine.features.bench_data('tiny', BB)
    assert -1 not in data.g_pids and (data.g_pids == 0).sum() == 3
    assert all(Path(p).is_file() for p in data.q_paths + data.g_paths)
    fs = _direct(market)
    s = ablation.Settings(eta=1.0, k1=2, k2=2)
    want = [ablation.percent_row(ablation.metric_row(fs, s, row)) for row in ("baseline", "+NFC")]
    for got, ref in zip(res["rows"], want):
        assert got["setting"] == ref["setting"]
        for k in ("mAP", "Rank-1", "mINP"):
            assert got[k] == pytest.approx(ref[k], abs=0.011)
        assert got["ID²"] == pytest.approx(ref["ID²"], abs=2e-4)
    r = engine.bench.ranks(task='tiny', backbone=BB, query_index=0)
    assert len(r["before"]) == 10 and r["query"]["path"] == data.q_paths[0]
    with pytest.raises(Pose2IDError, match="SynthPed's train split only"):
        engine.cleansing(task="tiny", backbone=BB)


def test_features_are_cached_on_disk_by_the_folder_content(engine, market, tmp_path, monkeypatch):
    from pose2id_demo.reid import extract

    real, calls = extract.extract_features, []
    monkeypatch.setattr(extract, "extract_features", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    root = Path(shutil.copytree(market, tmp_path / "copy"))
    engine.features.add_dataset('copy', root)
    first = engine.features.bench_data('copy', BB)
    assert len(calls) == 1
    again = Engine()  # a restart: same folder, same cache → no extraction
    again.features.add_dataset('copy', root)
    np.testing.assert_array_equal(again.features.bench_data('copy', BB).g, first.g)
    assert len(calls) == 1
    victim = next((root / "bounding_box_test").glob("0*.jpg"))
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # an edited image: new mtime
    edited = Engine()
    edited.features.add_dataset('copy', root)
    edited.features.bench_data('copy', BB)
    assert len(calls) == 2


def _write_generated(root: Path, backbone: str, fs_raw: dict, name: str, rng: np.random.Generator) -> None:
    """A file in the layout ``python -m pose2id_demo generate --out`` writes (q_gen/g_gen float16, paths
    relative to the root, settings JSON naming the backbone)."""
    ds = load_market(root)
    rel = lambda rs: np.array([str(Path(r.path).relative_to(ds.root)) for r in rs])  # noqa: E731
    q_gen = fs_raw["q"][:, None] + 0.05 * rng.standard_normal((len(ds.query), 8, fs_raw["q"].shape[1]))
    g_gen = fs_raw["g"][:, None] + 0.05 * rng.standard_normal((len(ds.gallery), 8, fs_raw["g"].shape[1]))
    np.savez_compressed(root / name, q_gen=q_gen.astype(np.float16), g_gen=g_gen.astype(np.float16),
                        q_paths=rel(ds.query), g_paths=rel(ds.gallery), pose_names=np.array(["p"] * 8),
                        settings=np.array(json.dumps({"backbone": backbone, "steps": 20})))


def test_generated_features_in_the_folder_give_the_ipg_rows(engine, market, tmp_path):
    root = Path(shutil.copytree(market, tmp_path / "gen"))
    fs = _direct(root)
    rng = np.random.default_rng(0)
    raw = {"q": fs.q, "g": fs.g}
    _write_generated(root, "some-other-backbone", raw, "a-other.npz", rng)  # not for this backbone: skipped
    (root / "b-broken.npz").write_bytes(b"not a zip")  # unreadable: skipped with a warning
    _write_generated(root, BB, raw, "gen-mine.npz", rng)
    engine.features.add_dataset('gen', root)
    res = engine.bench.benchmark(task='gen', backbone=BB, settings=Settings(eta=2.0, k1=2, k2=2))
    assert [r["setting"] for r in res["rows"]] == ["baseline", "+NFC", "+IPG", "+NFC+IPG"]
    with np.load(root / "gen-mine.npz") as z:
        fs = FeatureSet.from_arrays({**_arrays(fs), "q_gen": z["q_gen"], "g_gen": z["g_gen"]})
    data = engine.features.bench_data('gen', BB)
    np.testing.assert_allclose(data.q_gen, fs.q_gen, atol=1e-6)
    s = ablation.Settings(eta=2.0, k1=2, k2=2)
    for got in res["rows"][2:]:
        ref = ablation.percent_row(ablation.metric_row(fs, s, got["setting"]))
        assert got["mAP"] == pytest.approx(ref["mAP"], abs=0.011)
        assert got["ID²"] == pytest.approx(ref["ID²"], abs=2e-4)


@pytest.mark.slow  # imports Gradio
def test_the_query_slider_spans_the_chosen_task(engine, market, monkeypatch):
    """Choosing an added dataset sets the query slider to its own count of queries (it stayed at SynthPed's
    252) and onto that task's typical query for the settings shown."""
    from pose2id_demo.data import synthped
    from pose2id_demo.ui import benchmark_tab

    engine.features.add_dataset('tiny', market)
    monkeypatch.setattr(benchmark_tab, "get_engine", lambda: engine)
    n = len(load_market(market).query)
    assert n != synthped.NUM_TEST_IDS * synthped.QUERIES_PER_ID
    s = Settings()
    slider = benchmark_tab._start_view("tiny", BB, s.eta, s.k1, s.k2, s.nfc_on, s.ipg_on, s.rerank, s.nfc_mode)[-1]
    typical = engine.bench.per_query("tiny", BB, s)["typical"]
    assert slider.maximum == n - 1
    assert slider.value == (typical if typical is not None else 0) and 0 <= slider.value < n


def _arrays(fs: FeatureSet) -> dict:
    return {"q_feats": fs.q, "g_feats": fs.g, "q_pids": fs.q_pids, "g_pids": fs.g_pids, "q_camids": fs.q_camids,
            "g_camids": fs.g_camids}


@pytest.mark.slow  # imports Gradio
def test_the_task_radio_lists_the_added_datasets(engine, market, monkeypatch):
    import gradio as gr

    from pose2id_demo.ui import benchmark_tab
    from pose2id_demo.ui.common import TabContext

    engine.features.add_dataset('tiny', market)
    monkeypatch.setattr(benchmark_tab, "get_engine", lambda: engine)
    with gr.Blocks() as demo:
        benchmark_tab.build(TabContext(demo=demo, backbones=[BB], default_backbone=BB))
    radios = [c for c in demo.config["components"] if c.get("props", {}).get("label", "").startswith("Task")]
    assert [ch[0] for ch in radios[0]["props"]["choices"]] == ["standard", "occluded", "infrared", "tiny"]


def _app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "app.py"), *args], capture_output=True, text=True,
                          timeout=1800, cwd=REPO)


@pytest.mark.slow  # five app.py processes (each imports the engine; they stop before Gradio loads)
def test_app_refuses_a_missing_folder_a_non_market_folder_and_a_bad_file_name(market, tmp_path):
    cases = {}
    cases["missing"] = (f"m={tmp_path / 'nope'}", "does not exist")
    (tmp_path / "flat").mkdir()
    cases["flat"] = (f"f={tmp_path / 'flat'}", "is not a Market-1501-format folder")
    bad = Path(shutil.copytree(market, tmp_path / "bad"))
    shutil.copy(next((bad / "query").glob("*.jpg")), bad / "query" / "IMG_0001.jpg")
    cases["bad name"] = (f"b={bad}", "IMG_0001.jpg")
    cases["no ="] = ("just-a-name", "NAME=ROOT")
    cases["taken"] = (f"standard={market}", "taken")
    for what, (spec, needle) in cases.items():
        p = _app("--dataset", spec)
        assert p.returncode == 2, (what, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --dataset"), (what, p.stderr)
        assert needle in lines[0], (what, lines[0])
