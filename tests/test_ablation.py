"""The one ablation (pose2id_demo.ablation): CLI == app engine == bench on one file, ID²'s two readings
against loops written from their definitions, the per-query table and the typical-query rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.bench_backbones import measure
from pose2id_demo import ablation
from pose2id_demo.cli import main, run_eval
from pose2id_demo.engine import BenchData, Engine
from pose2id_demo.featurefile import FeatureSet, load_feature_npz
from pose2id_demo.metrics import evaluate_loop, id2, identity_density


def official_loop(feats: np.ndarray, pids: np.ndarray) -> float:
    """The official ID2.py as described: each sample's squared Euclidean distance to the plain mean of its
    identity's L2-normalised features, averaged over all samples."""
    out = []
    for i in range(len(feats)):
        own = [feats[j] / np.linalg.norm(feats[j]) for j in range(len(feats)) if pids[j] == pids[i]]
        mean = np.sum(own, axis=0) / len(own)
        x = feats[i] / np.linalg.norm(feats[i])
        out.append(float(sum((x[k] - mean[k]) ** 2 for k in range(len(x)))))
    return sum(out) / len(out)


def test_id2_official_variant_matches_its_description() -> None:
    f = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert id2(f, np.array([1, 1]), variant="official") == pytest.approx(0.5)
    assert id2(f, np.array([1, 1])) == pytest.approx(0.7654, abs=1e-4)  # the paper's reading
    rng = np.random.default_rng()
    for n, n_ids, d in [(40, 6, 8), (7, 1, 3), (25, 25, 4)]:
        feats = rng.standard_normal((n, d)) * rng.uniform(0.5, 4, (n, 1))
        pids = rng.integers(1, 1 + n_ids, n)
        # float32 rows
        assert id2(feats, pids, variant="official") == pytest.approx(official_loop(feats, pids), abs=1e-6)
    with pytest.raises(ValueError):
        id2(f, np.array([1, 1]), variant="unofficial")


def make_arrays(seed: int = 0, n_ids: int = 12, d: int = 16, m: int = 3) -> dict:
    """Market-like: ids 1..n_ids in query and gallery, plus distractors (pid 0) and junk (pid -1) in the gallery."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids + 1, d))
    qp = np.repeat(np.arange(1, n_ids + 1), 2)
    gp = np.concatenate([np.repeat(np.arange(1, n_ids + 1), 4), np.zeros(9, int), -np.ones(5, int)])
    q = centres[qp] + 0.9 * rng.standard_normal((len(qp), d))
    g = centres[np.maximum(gp, 0)] + 0.9 * rng.standard_normal((len(gp), d))
    return {"q_feats": (3 * q).astype(np.float32), "g_feats": (3 * g).astype(np.float32), "q_pids": qp, "g_pids": gp,
            "q_camids": rng.integers(0, 3, len(qp)), "g_camids": rng.integers(0, 3, len(gp)),
            "q_gen": (centres[qp][:, None] + rng.standard_normal((len(qp), m, d))).astype(np.float32),
            "g_gen": (centres[np.maximum(gp, 0)][:, None] + rng.standard_normal((len(gp), m, d))).astype(np.float32)}


def test_cli_equals_app_equals_bench_with_distractors_and_junk(tmp_path, capsys) -> None:
    arrays = make_arrays()
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    kw = dict(k1=2, k2=2, eta=0.5)
    # CLI: the printed table and run_eval
    assert main(["eval", str(path), "--k1", "2", "--k2", "2", "--eta", "0.5"]) == 0
    printed = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in capsys.readouterr().out.splitlines()
               if ln.split() and ln.split()[0] in ablation.ROW_NAMES}
    cli = {r["setting"]: r for r in run_eval(load_feature_npz(path), **kw)}
    # the app: the Your-features tab, and the Benchmark tab on the same features
    eng = Engine(device="cpu")
    eng.backbones = lambda: ["toy"]  # type: ignore[method-assign]
    app = {r["setting"]: r for r in eng.evaluate_features(str(path), ablation.Settings(**kw))["rows"]}
    fs = FeatureSet.from_arrays(arrays)
    eng._store[("bench", "standard", "toy")] = BenchData(**fs.__dict__)
    tab = {r["setting"]: r for r in eng.bench.benchmark("standard", "toy", ablation.Settings(**kw))["rows"]}
    # bench/bench_backbones.py (baseline and NFC rows)
    bench = {r["setting"]: r for r in measure(arrays, 2, 2)}
    assert list(cli) == list(app) == list(tab) == list(printed) == list(ablation.ROW_NAMES)
    for name in ablation.ROW_NAMES:
        assert app[name] == tab[name], name
        for k in ("mAP", "Rank-1", "mINP"):
            assert app[name][k] == round(100 * cli[name][k], 2), (name, k)
        assert app[name]["ID²"] == round(cli[name]["ID2"], 4) and printed[name][5] == pytest.approx(app[name]["ID²"])
    for ours, theirs in (("baseline", "baseline"), ("+NFC", "NFC k1=2 k2=2")):
        assert bench[theirs]["mAP"] == pytest.approx(100 * cli[ours]["mAP"], abs=1e-9)
        assert bench[theirs]["ID2"] == pytest.approx(cli[ours]["ID2"], abs=1e-12)
    # ID² leaves pid <= 0 out: the same as ID² over the identities alone
    pids = np.concatenate([arrays["q_pids"], arrays["g_pids"]])
    keep = pids > 0
    ref = id2(np.concatenate([fs.q, fs.g])[keep], pids[keep])
    assert cli["baseline"]["ID2"] == pytest.approx(ref, abs=1e-12)
    assert ref != pytest.approx(id2(np.concatenate([fs.q, fs.g]), pids), abs=1e-4)  # the distractors would count
    # the official variant through the CLI flag and the engine parameter
    off = {r["setting"]: r for r in run_eval(load_feature_npz(path), **kw, id2_variant="official")}
    assert off["baseline"]["ID2"] == pytest.approx(official_loop(np.concatenate([fs.q, fs.g])[keep], pids[keep]))
    res = eng.bench.benchmark("standard", "toy", ablation.Settings(**kw, id2_variant="official"))
    assert res["rows"][0]["ID²"] == round(off["baseline"]["ID2"], 4) and res["id2_variant"] == "official"


def test_cache_gives_the_same_rows_and_reuses_stages() -> None:
    fs = FeatureSet.from_arrays(make_arrays(seed=3))

    class Dict(dict):
        def put(self, k, v):
            self[k] = v
            return v

    cache = Dict()
    s = ablation.Settings(eta=1.0, k1=3, k2=2, ipg_on="query")
    def shown(rows):
        return [ablation.percent_row(r) for r in rows]

    assert shown(ablation.table(fs, s, cache)) == shown(ablation.table(fs, s))
    n = len(cache)
    ablation.table(fs, replace(s, eta=2.0), cache)  # a new η: the +NFC row and its features are reused
    assert ("row",) + ablation.row_key(s, "+NFC") + (False, ("paper", "query+gallery")) in cache
    assert len(cache) - n == 6  # +IPG and +NFC+IPG: features, distances and row each
    rr = ablation.table(fs, replace(s, rerank=True))
    assert rr[0]["mAP"] != ablation.table(fs, s)[0]["mAP"]


@pytest.mark.parametrize("mode,apply", [("separate", "both"), ("joint", "both"), ("separate", "query"),
                                        ("joint", "gallery")])
def test_k_grid_equals_one_nfc_per_pair(mode, apply) -> None:
    """Fig. 9's grid searches each set's neighbours once, to the largest k; every cell equals the +NFC row
    computed on its own (nfc_sets with that pair), including k past a set's size (clamped)."""
    fs = FeatureSet.from_arrays(make_arrays(seed=int(np.random.SeedSequence().entropy % 10**6), n_ids=9))
    s = ablation.Settings(nfc_mode=mode, nfc_on=apply)
    ks = [1, 2, 3, 5, 30]  # 30 > the 18 queries: clamped to N - 1
    got = ablation.k_grid(fs, s, ks)
    for i, a in enumerate(ks):
        for j, b in enumerate(ks):
            ref = ablation.metric_row(fs, replace(s, k1=a, k2=b), "+NFC", with_id2=False)
            assert got["map"][i, j] == ablation.percent_row(ref)["mAP"], (a, b)
    assert got["apply"] == apply


def test_per_query_matches_a_query_by_query_loop() -> None:
    arrays = make_arrays(seed=5)
    fs = FeatureSet.from_arrays(arrays)
    s = ablation.Settings(eta=1.0)
    pq = ablation.per_query(fs, s)
    assert pq["after_setting"] == "+NFC+IPG"
    for name, row in (("before", "baseline"), ("after", "+NFC+IPG")):
        q, g = ablation.stage_features(fs, s, row)
        d = np.sqrt(((q[:, None].astype(np.float64) - g[None]) ** 2).sum(-1))
        for i in range(len(q)):
            keep = ~((fs.g_pids == fs.q_pids[i]) & (fs.g_camids == fs.q_camids[i]))
            order = np.flatnonzero(keep)[np.argsort(d[i, keep], kind="stable")]
            hits = fs.g_pids[order] == fs.q_pids[i]
            if not hits.any():
                assert np.isnan(pq[f"ap_{name}"][i]) and pq[f"rank_{name}"][i] == 0
                continue
            ref = evaluate_loop(d[i : i + 1], fs.q_pids[i : i + 1], fs.g_pids, fs.q_camids[i : i + 1], fs.g_camids)
            assert pq[f"ap_{name}"][i] == pytest.approx(100 * ref["mAP"], abs=0.006), (name, i)
            assert pq[f"rank_{name}"][i] == int(np.flatnonzero(hits)[0]) + 1, (name, i)
    # the mean of the per-query APs is the table's mAP
    valid = np.isfinite(pq["ap_before"])
    assert pq["ap_before"][valid].mean() == pytest.approx(100 * ablation.metric_row(fs, s, "baseline")["mAP"], abs=0.01)


def test_typical_query_rule() -> None:
    pq = {"ap_before": np.array([10.0, 50.0, 20.0, np.nan, 30.0, 40.0]),
          "ap_after": np.array([30.0, 50.0, 25.0, 90.0, 40.0, 50.0]),
          "rank_before": np.array([9, 1, 4, 0, 3, 2])}
    # changes +20, 0, +5, (invalid), +10, +10: mean 9 → ±1 from +10: queries 4 and 5 tie; median rank 3 → query 4
    assert ablation.typical_query(pq) == 4
    pq["rank_before"] = np.array([9, 1, 4, 0, 5, 3])  # ranks 5 and 3 equally far from the median 4: lower index
    assert ablation.typical_query(pq) == 4
    assert ablation.typical_query({"ap_before": np.array([np.nan]), "ap_after": np.array([1.0]),
                                   "rank_before": np.array([0])}) is None


def test_identity_density_is_nan_without_identities() -> None:
    f = np.eye(3, dtype=np.float32)
    assert np.isnan(identity_density(f[:1], f[1:], np.array([0]), np.array([-1, 0])))
