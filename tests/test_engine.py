"""Engine logic with real (small) computations, checked against direct / brute-force references."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tieaware import assert_ranking_equivalent
from toy_bench import l2n, toy_data, toy_engine

from pose2id_demo.ablation import Settings
from pose2id_demo.centralization import centralize, nfc_sets
from pose2id_demo.engine import BenchData, Engine, Pose2IDError, tsne_2d
from pose2id_demo.engine.cache import LRU as _LRU
from pose2id_demo.metrics import distance_matrix, evaluate, id2
from pose2id_demo.ui import render


def _ref_row(data: BenchData, q: np.ndarray, g: np.ndarray) -> dict:
    r = evaluate(distance_matrix(q, g), data.q_pids, data.g_pids, data.q_camids, data.g_camids)
    return {"mAP": round(100 * r["mAP"], 2), "Rank-1": round(100 * r["Rank-1"], 2),
            "ID²": round(float(id2(np.concatenate([q, g]), np.concatenate([data.q_pids, data.g_pids]))), 4)}


def test_benchmark_rows_match_direct_computation(eng: Engine) -> None:
    data = eng._store[("bench", "standard", "toy")]
    res = eng.bench.benchmark('standard', 'toy', settings=Settings(eta=1.5, k1=3, k2=2, nfc_on='both', ipg_on='query'))
    rows = {r["setting"]: r for r in res["rows"]}
    assert list(rows) == ["baseline", "+NFC", "+IPG", "+NFC+IPG"]
    qn, gn = nfc_sets(data.q, data.g, 3, 2, mode="separate", apply_to="both")
    qi = l2n(centralize(data.q, data.q_gen, 1.5))
    qb, gb = nfc_sets(qi, data.g, 3, 2, mode="separate", apply_to="both")
    refs = {"baseline": _ref_row(data, data.q, data.g), "+NFC": _ref_row(data, l2n(qn), l2n(gn)),
            "+IPG": _ref_row(data, qi, data.g), "+NFC+IPG": _ref_row(data, l2n(qb), l2n(gb))}
    for name, ref in refs.items():
        for k, v in ref.items():
            assert rows[name][k] == pytest.approx(v, abs=1e-3), (name, k)
    # The centralization helps on these clustered features (the paper's claim, in miniature).
    assert rows["+NFC+IPG"]["mAP"] > rows["baseline"]["mAP"]
    assert rows["+NFC+IPG"]["ID²"] < rows["baseline"]["ID²"]


def test_benchmark_settings_move_only_their_rows_and_cache(eng: Engine) -> None:
    a = eng.bench.benchmark('standard', 'toy', settings=Settings(eta=1.0, k1=2, k2=2))
    b = eng.bench.benchmark('standard', 'toy', settings=Settings(eta=1.0, k1=5, k2=4))
    ra, rb = ({r["setting"]: r for r in x["rows"]} for x in (a, b))
    assert ra["baseline"] == rb["baseline"] and ra["+IPG"] == rb["+IPG"]
    assert ra["+NFC"] != rb["+NFC"]
    c = eng.bench.benchmark('standard', 'toy', settings=Settings(eta=1.0, k1=2, k2=2))
    assert c["rows"] == a["rows"]
    off = eng.bench.benchmark('standard', 'toy', settings=Settings(nfc_on='none', ipg_on='none'))
    assert [r["setting"] for r in off["rows"]] == ["baseline"] and len(off["notes"]) == 2


def test_benchmark_rerank_and_missing_generated(eng: Engine) -> None:
    rr = eng.bench.benchmark('standard', 'toy', settings=Settings(rerank=True, nfc_on='none', ipg_on='none'))
    plain = eng.bench.benchmark("standard", "toy", settings=Settings(nfc_on="none", ipg_on="none"))
    assert rr["rows"][0]["mAP"] != plain["rows"][0]["mAP"]
    data = eng._store[("bench", "standard", "toy")]
    eng._store[("bench", "occluded", "toy")] = BenchData(**{**data.__dict__, "q_gen": None, "g_gen": None,
                                                           "gen_note": "no generated features here"})
    res = eng.bench.benchmark('occluded', 'toy')
    assert [r["setting"] for r in res["rows"]] == ["baseline", "+NFC"]
    assert "no generated features here" in res["notes"]


def test_ranks_brute_force(eng: Engine) -> None:
    data = eng._store[("bench", "standard", "toy")]
    qi = 7
    r = eng.bench.ranks('standard', 'toy', query_index=qi, settings=Settings(nfc_on='none', ipg_on='none'))
    dists = []
    for j in range(len(data.g)):  # brute-force reference, one gallery item at a time
        if data.g_pids[j] == data.q_pids[qi] and data.g_camids[j] == data.q_camids[qi]:
            continue
        diff = data.q[qi].astype(np.float64) - data.g[j].astype(np.float64)
        dists.append((float(np.sqrt((diff ** 2).sum())), j))
    ref = [j for _, j in sorted(dists)[:10]]
    got = [data.g_paths.index(x["path"]) for x in r["before"]]
    d64 = {j: dj for dj, j in dists}
    assert_ranking_equivalent(got, ref, [d64.get(j, np.inf) for j in range(len(data.g))])
    assert [x["match"] for x in r["before"]] == [bool(data.g_pids[j] == data.q_pids[qi]) for j in got]
    assert r["after_setting"] == "+NFC" and len(r["after"]) == 10
    with pytest.raises(Pose2IDError, match="query index"):
        eng.bench.ranks('standard', 'toy', query_index=len(data.q))


def test_ranks_with_generations_improves_with_identity_centre(eng: Engine) -> None:
    data = eng._store[("bench", "standard", "toy")]
    qi = int(np.argmin([render.hits({"before": eng.bench.ranks('standard', 'toy', query_index=i)["before"]}, "before")
                        for i in range(20)]))
    gen = l2n(data.q_gen[qi])
    r = eng.ranks_with_generations(qi, gen, eta=4.0, backbone="toy")
    assert render.hits(r, "after") >= render.hits(r, "before")
    with pytest.raises(Pose2IDError):
        eng.ranks_with_generations(qi, np.full((8, 32), np.nan, np.float32), backbone="toy")


@pytest.mark.slow
def test_tsne_deterministic_and_clamped(eng: Engine) -> None:
    a = eng.bench.tsne('standard', 'toy', n_ids=5)
    b = toy_engine().bench.tsne('standard', 'toy', n_ids=5)
    assert a["before"].shape == (5 * 8, 2) and np.array_equal(a["before"], b["before"])
    assert a["id2_after"] < a["id2_before"]
    assert tsne_2d(np.random.default_rng(0).normal(size=(4, 600))).shape == (4, 2)  # perplexity < n
    fig = render.tsne_figure(a)
    assert len(fig.data) >= 10


def test_evaluate_loaded_curves_consistent(eng: Engine) -> None:
    data = toy_data(seed=1, n_ids=15)
    fs = SimpleNamespace(q_feats=data.q, g_feats=data.g, q_pids=data.q_pids, g_pids=data.g_pids,
                         q_camids=data.q_camids, g_camids=data.g_camids, q_gen=data.q_gen, g_gen=data.g_gen)
    res = eng._evaluate_loaded(fs, Settings(k1=2, k2=2, eta=1.0), 3, lambda f, d: None)
    base = res["rows"][0]["mAP"]
    assert res["grid"]["map"].shape == (3, 3)
    qn, gn = nfc_sets(data.q, data.g, 3, 1, mode="separate", apply_to="both")
    assert res["grid"]["map"][2, 0] == pytest.approx(_ref_row(data, l2n(qn), l2n(gn))["mAP"], abs=1e-3)
    assert res["eta_curve"]["mAP"][0] == pytest.approx(base)  # η = 0 is the baseline
    for apply in ("gallery", "query", "both"):
        assert res["m_curve"][apply]["mAP"][0] == pytest.approx(base)  # M = 0 is the baseline
    assert res["m_curve"]["both"]["ID²"][-1] < res["m_curve"]["both"]["ID²"][0]
    for fig in (render.heatmap_figure(res["grid"]), render.eta_figure(res["eta_curve"], res["rows"][0]),
                render.m_figure(res["m_curve"])):
        assert fig.to_plotly_json()["data"]


def test_once_is_once_under_threads() -> None:
    eng = Engine(device="cpu")
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    out = []
    ts = [threading.Thread(target=lambda: out.append(eng._once("x", slow))) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert out == [42] * 8 and len(calls) == 1


def test_lru_bounded() -> None:
    c = _LRU(3)
    for i in range(10):
        c.put(i, i)
    assert len(c) == 3 and c.get(0) is None and c.get(9) == 9


def test_new_slider_setting_at_realistic_size() -> None:
    """A benchmark-sized problem (200 queries, 750 gallery, d=512): a new k1 / η recomputes only its rows.

    How fast that is is measured by `python -m bench.load --slider`, not asserted here.
    """
    e = toy_engine(toy_data(n_ids=100, nq=2, ng=7, d=512))
    a = {r["setting"]: r for r in e.bench.benchmark('standard', 'toy', settings=Settings(k1=2))["rows"]}
    b = {r["setting"]: r for r in e.bench.benchmark('standard', 'toy', settings=Settings(k1=3, eta=1.25))["rows"]}
    assert a["baseline"] == b["baseline"]
    assert a["+NFC"] != b["+NFC"] and a["+IPG"] != b["+IPG"]


def test_ranked_strip_borders(tmp_path) -> None:
    """The strip has the query tile (blue) then one tile per rank, green for matches and red otherwise."""
    from PIL import Image

    Image.new("RGB", (64, 128), (0, 0, 0)).save(tmp_path / "x.png")
    p = str(tmp_path / "x.png")
    flags = [True, False, False, True, False, True, False, False, False, True]
    r = {"query": {"path": p, "pid": 1, "camid": 0},
         "before": [{"path": p, "pid": 1 if f else 2, "camid": 1, "distance": 0.1, "match": f} for f in flags]}
    strip = render.ranked_strip(r, "before")
    for i, f in enumerate([None, *flags]):
        x, y = render.tile_origin(i)
        want = render.BLUE if f is None else (render.GREEN if f else render.RED)
        assert tuple(strip[y + 1, x + 1]) == want, i
        assert tuple(strip[y + 20, x + 20]) == (0, 0, 0)
    assert render.ranked_strip(None, "before") is None and render.hits(r, "before") == 4
    good = render.bordered(np.zeros((128, 64, 3), np.uint8), render.GREEN)
    assert good.shape == (138, 74, 3)


def test_shipped_examples_are_benchmark_queries() -> None:
    """The Generate tab's examples are byte-identical SynthPed queries (else: python -m
    pose2id_demo.ui.make_examples)."""
    from PIL import Image

    from pose2id_demo.data import load_market
    from pose2id_demo.data.synthped import ensure_benchmark
    from pose2id_demo.engine import image_digest, load_image
    from pose2id_demo.ui.app import EXAMPLES_DIR

    queries = {image_digest(Image.open(r.path).convert("RGB")) for r in load_market(ensure_benchmark("standard")).query}
    examples = sorted(EXAMPLES_DIR.glob("*.jpg"))
    assert len(examples) >= 6
    for ex in examples:
        assert image_digest(load_image(ex)) in queries, \
            f"{ex.name} is stale: run python -m pose2id_demo.ui.make_examples"


def test_identity_density_ignores_distractors_and_junk() -> None:
    from pose2id_demo.engine import identity_density

    d = toy_data(n_ids=5)
    base = identity_density(d.q, d.g, d.q_pids, d.g_pids)
    assert base == pytest.approx(round(float(id2(np.concatenate([d.q, d.g]), np.concatenate([d.q_pids, d.g_pids]))), 4))
    rng = np.random.default_rng(3)
    extra = l2n(rng.normal(size=(7, d.g.shape[1])))
    with_noise = identity_density(d.q, np.concatenate([d.g, extra]), d.q_pids,
                                  np.concatenate([d.g_pids, [0, 0, 0, 0, -1, -1, 0]]))
    assert with_noise == base


def test_image_file_is_content_addressed_and_never_seen_half_written():
    """Many threads handing out the same picture while others read it: every read is the whole PNG."""
    from PIL import Image

    rng = np.random.default_rng()
    img = rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)
    first = render.image_file(img)
    assert render.image_file(Image.fromarray(img)) == first and render.image_file(None) is None
    assert np.array_equal(np.asarray(Image.open(first)), img)
    other = render.image_file(255 - img)
    assert other != first
    want = open(first, "rb").read()
    bad: list[int] = []

    def writer() -> None:
        for _ in range(300):
            Path(first).unlink(missing_ok=True)  # force a rewrite while readers are reading
            assert render.image_file(img) == first

    def reader() -> None:
        for _ in range(400):
            try:
                data = open(first, "rb").read()
            except FileNotFoundError:
                continue
            if data != want:
                bad.append(len(data))

    ts = [threading.Thread(target=writer) for _ in range(2)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert bad == []


def test_per_query_table_and_typical_query(eng: Engine) -> None:
    from pose2id_demo import ablation

    data = eng._store[("bench", "standard", "toy")]
    res = eng.bench.per_query('standard', 'toy', settings=Settings(eta=1.0, k1=2, k2=2))
    assert res["after_setting"] == "+NFC+IPG" and len(res["rows"]) == len(data.q)
    pq = ablation.per_query(data, ablation.Settings(eta=1.0, k1=2, k2=2))
    assert [r["AP after"] for r in res["rows"]] == pytest.approx(list(pq["ap_after"]), nan_ok=True)
    assert res["typical"] == ablation.typical_query(pq)
    delta = np.array([r["ΔAP"] for r in res["rows"]])
    t = res["typical"]
    assert abs(delta[t] - res["mean_delta_ap"]) == pytest.approx(np.nanmin(np.abs(delta - np.nanmean(delta))), abs=0.02)
    # the benchmark table's mAP is the mean of the per-query APs
    rows = {r["setting"]: r for r in eng.bench.benchmark('standard', 'toy', settings=Settings(eta=1.0))["rows"]}
    assert np.nanmean([r["AP before"] for r in res["rows"]]) == pytest.approx(rows["baseline"]["mAP"], abs=0.01)
    # cached by its settings
    assert eng.bench.per_query("standard", "toy", settings=Settings(eta=1.0, k1=2, k2=2)) is res


@pytest.mark.slow
def test_ranked_lists_on_a_fresh_cache_render_the_images(tmp_path, monkeypatch) -> None:
    """The shipped features need no images, but a ranked list names image files: on a machine whose cache
    is empty (a fresh clone, no warm-up) the engine renders them first instead of answering with paths that
    do not exist (the list's drawing then failed with FileNotFoundError)."""
    from PIL import Image

    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path))
    eng = Engine()
    r = eng.bench.ranks('standard', 'synthped-reid', query_index=3)
    paths = [r["query"]["path"]] + [x["path"] for x in r["before"] + r["after"]]
    assert all(Path(p).is_relative_to(tmp_path) for p in paths)
    for p in paths:
        with Image.open(p) as im:
            assert im.size == (64, 128)
    # A benchmark query image, uploaded, is recognised as that query.
    with Image.open(r["query"]["path"]) as im:
        assert eng.queries.index_of(im.convert('RGB'), 'standard', 'synthped-reid') == 3
