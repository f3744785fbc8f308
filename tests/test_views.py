"""What the app and the CLI show beside the tables, against brute-force references written from their
definitions: the exact dot products of the ranking distances, each query's ranked list and AP, the same-identity vs
different-identity distance histograms and their overlap, one identity's feature dimension around its centre
(Fig. 2), the ablation's wrappers of them, and the PNG figures and visrank strips drawn from them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pose2id_demo import ablation
from pose2id_demo.feature_distribution import identity_dimension
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import (
    EXACT_SCALE,
    TIE_GRID,
    distance_matrix,
    evaluate,
    histogram_overlap,
    pair_distance_histograms,
    per_query_ap,
    ranked_lists,
)
from pose2id_demo.metrics.rank import snap_to_tie_grid


def labelled(rng, nq=40, ng=200, d=12, n_ids=8, n_cams=4, m=3, junk=6, distractors=10) -> dict:
    """Market-like arrays: ids 1..n_ids, distractors (pid 0) and junk (pid -1) in the gallery."""
    c = rng.standard_normal((n_ids + 1, d))
    qp = rng.integers(1, n_ids + 1, nq)
    gp = np.concatenate([rng.integers(1, n_ids + 1, ng - junk - distractors), np.zeros(distractors, int),
                         -np.ones(junk, int)])
    return {"q_feats": (c[qp] + rng.standard_normal((nq, d))).astype(np.float32),
            "g_feats": (c[np.maximum(gp, 0)] + rng.standard_normal((ng, d))).astype(np.float32),
            "q_pids": qp, "g_pids": gp,
            "q_camids": rng.integers(0, n_cams, nq), "g_camids": rng.integers(0, n_cams, ng),
            "q_gen": (c[qp][:, None] + rng.standard_normal((nq, m, d))).astype(np.float32),
            "g_gen": (c[np.maximum(gp, 0)][:, None] + rng.standard_normal((ng, m, d))).astype(np.float32)}


@pytest.fixture
def rng():
    return np.random.default_rng()


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------- exact distances
def test_distance_matrix_dot_products_are_exact_whatever_the_gemm(rng):
    q = rng.standard_normal((37, 96)).astype(np.float32)
    g = rng.standard_normal((301, 96)).astype(np.float32)
    g[[5, 64, 150, 299]] = g[17]  # the same row at positions that different GEMM kernel tiles handle
    d = distance_matrix(q, g)
    assert d.dtype == np.float64
    ref = np.sqrt(np.square(unit(q)[:, None, :] - unit(g)[None, :, :]).sum(-1))  # float64, from the definition
    assert np.abs(d - ref).max() < 1e-6
    # the integer dot products, summed exactly in int64 by numpy's own loop (no BLAS)
    def integers(x):
        x = x.astype(np.float64)
        return np.rint(x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None] * EXACT_SCALE).astype(np.int64)

    iq, ig = integers(q), integers(g)
    num = (iq * iq).sum(1)[:, None] + (ig * ig).sum(1)[None, :] - 2 * (iq @ ig.T)  # |r_q - r_g|^2, exact
    assert np.allclose(d, np.sqrt(num / EXACT_SCALE**2), rtol=0, atol=1e-15)
    # other GEMM shapes (row by row, transposed, blocks of 7 columns) sum in other orders: the same bits
    assert np.array_equal(d, np.concatenate([distance_matrix(q[i:i + 1], g) for i in range(len(q))]))
    assert np.array_equal(d, distance_matrix(g, q).T)
    assert np.array_equal(d, np.concatenate([distance_matrix(q, g[j:j + 7]) for j in range(0, len(g), 7)], 1))
    for j in (5, 64, 150, 299):
        assert np.array_equal(d[:, j], d[:, 17])  # bit for bit: the ranking breaks the tie by gallery index


def test_snap_to_tie_grid_rounds_to_the_grid():
    x = np.array([0.0, TIE_GRID * 0.49, TIE_GRID * 0.51, 1.0 + 3.4 * TIE_GRID, 2.0])
    assert snap_to_tie_grid(x.copy()).tolist() == [0.0, 0.0, TIE_GRID, 1.0 + 3 * TIE_GRID, 2.0]


# ----------------------------------------------------------------------------------------- ranked lists
def ranked_lists_loop(dist, q_pids, g_pids, q_camids, g_camids, top):
    out = []
    for i in range(len(dist)):
        order = [j for j in np.argsort(dist[i], kind="stable")
                 if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        out.append(order[:top])
    return out


@pytest.mark.parametrize("top", [1, 5, 300])
def test_ranked_lists_are_the_protocol_ranking_with_each_query_ap(rng, top):
    a = labelled(rng)
    ids = (a["q_pids"], a["g_pids"], a["q_camids"], a["g_camids"])
    d = distance_matrix(a["q_feats"], a["g_feats"])
    d[:, 3] = d[:, 7]  # exact ties, broken by gallery index
    rl = ranked_lists(d, *ids, top=top)
    want = ranked_lists_loop(d, *ids, top)
    top = min(top, d.shape[1])
    assert rl["index"].shape == (len(d), top)
    for i, w in enumerate(want):
        got = rl["index"][i]
        assert list(got[got >= 0]) == w and np.all(got[len(w):] == -1)
        assert np.array_equal(rl["distance"][i, :len(w)], d[i, w]) and np.isnan(rl["distance"][i, len(w):]).all()
        assert list(rl["match"][i, :len(w)]) == [a["g_pids"][j] == a["q_pids"][i] for j in w]
    ap, first = per_query_ap(d, *ids)
    np.testing.assert_array_equal(rl["ap"], ap)
    np.testing.assert_array_equal(rl["first"], first)
    assert np.nanmean(rl["ap"]) == pytest.approx(evaluate(d, *ids)["mAP"], abs=1e-12)


def test_ranked_rows_sort_by_ap_and_carry_distance_camera_and_match(rng):
    a = labelled(rng)
    a["q_pids"][0] = 999  # no valid match: AP NaN, sorted last
    fs = FeatureSet.from_arrays(a)
    s = ablation.Settings()
    rows = ablation.ranked_rows(fs, s, top=5)
    assert [r["setting"] for r in rows] == ["+NFC+IPG"] * len(fs.q)
    aps = [r["AP"] for r in rows]
    assert np.isnan(aps[-1]) and rows[-1]["query"] == 0 and rows[-1]["first match"] == 0
    assert aps[:-1] == sorted(aps[:-1])
    best = ablation.ranked_rows(fs, s, top=5, order="best")
    assert [r["AP"] for r in best][:-1] == sorted(aps[:-1], reverse=True)
    by_query = ablation.ranked_rows(fs, s, "baseline", top=5, order="query")
    assert [r["query"] for r in by_query] == list(range(len(fs.q)))
    d = ablation.distances(fs, s, "baseline")
    ap, _ = per_query_ap(d, fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids)
    for r in by_query:
        i = r["query"]
        want = ranked_lists_loop(d[i:i + 1], fs.q_pids[i:i + 1], fs.g_pids, fs.q_camids[i:i + 1], fs.g_camids, 5)[0]
        assert [g["index"] for g in r["gallery"]] == want
        assert [g["distance"] for g in r["gallery"]] == [float(d[i, j]) for j in want]
        assert [g["camid"] for g in r["gallery"]] == [int(fs.g_camids[j]) for j in want]
        assert [g["match"] for g in r["gallery"]] == [bool(fs.g_pids[j] == fs.q_pids[i]) for j in want]
        assert (np.isnan(r["AP"]) and np.isnan(ap[i])) or r["AP"] == pytest.approx(100 * ap[i])
    with pytest.raises(ValueError):
        ablation.ranked_rows(fs, s, order="random")


# ----------------------------------------------------------------------------------------- distance histograms
def test_pair_distance_histograms_match_the_pairs_counted_one_by_one(rng):
    a = labelled(rng)
    a["q_pids"][:2] = [0, -1]  # queries without an identity are left out
    ids = (a["q_pids"], a["g_pids"], a["q_camids"], a["g_camids"])
    h = pair_distance_histograms(a["q_feats"], a["g_feats"], *ids, bins=25, chunk=7)
    same, diff = [], []
    for i in range(len(a["q_feats"])):
        for j in range(len(a["g_feats"])):
            qp, gp = a["q_pids"][i], a["g_pids"][j]
            if qp <= 0 or gp == -1 or (qp == gp and a["q_camids"][i] == a["g_camids"][j]):
                continue
            dist = float(np.linalg.norm(unit(a["q_feats"][i:i + 1]) - unit(a["g_feats"][j:j + 1])))
            (same if qp == gp else diff).append(dist)
    edges = np.linspace(0, 2, 26)
    np.testing.assert_array_equal(h["edges"], edges)
    np.testing.assert_array_equal(h["same"], np.histogram(same, edges)[0])
    np.testing.assert_array_equal(h["different"], np.histogram(diff, edges)[0])
    assert (h["n_same"], h["n_different"]) == (len(same), len(diff))
    # The histogram's distances are float32 (the reference is float64): a mean over ~10^3 of them agrees to ~1e-7.
    assert h["mean_same"] == pytest.approx(np.mean(same), abs=1e-6)
    assert h["std_different"] == pytest.approx(np.std(diff), abs=1e-6)
    ps, pd = np.histogram(same, edges)[0] / len(same), np.histogram(diff, edges)[0] / len(diff)
    assert h["overlap"] == pytest.approx(sum(min(x, y) for x, y in zip(ps, pd)), abs=1e-12)


def test_histogram_overlap_extremes():
    assert histogram_overlap([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert histogram_overlap([5, 0, 0], [0, 0, 7]) == 0.0
    assert histogram_overlap([0, 0], [1, 1]) == 0.0


def test_distance_distributions_of_every_row_and_centralization_separates_them(rng):
    a = labelled(rng, nq=60, ng=300, d=16)
    fs = FeatureSet.from_arrays(a)
    s = ablation.Settings(eta=2.0)
    dd = ablation.distance_distributions(fs, s, bins=40)
    assert list(dd["rows"]) == list(ablation.ROW_NAMES)
    for row, h in dd["rows"].items():
        q, g = ablation.stage_features(fs, s, row)
        ref = pair_distance_histograms(q, g, fs.q_pids, fs.g_pids, fs.q_camids, fs.g_camids, bins=40)
        np.testing.assert_array_equal(h["same"], ref["same"])
        assert h["overlap"] == ref["overlap"]
    # eq. 9 with generations drawn around each identity's centre pulls same-identity pairs together
    base, ipg = dd["rows"]["baseline"], dd["rows"]["+IPG"]
    assert ipg["mean_same"] < base["mean_same"] and ipg["overlap"] < base["overlap"]


# ----------------------------------------------------------------------------------------- Fig. 2
def test_identity_dimension_against_its_definition(rng):
    n, d = 30, 6
    pids = rng.integers(1, 4, n)
    before = unit(rng.standard_normal((n, d)))
    after = unit(before + 0.5)
    v = identity_dimension(before, after, pids, pid=2)
    sel = [i for i in range(n) if pids[i] == 2]
    stds = [np.std([before[i, k] for i in sel]) for k in range(d)]
    assert v["dim"] == int(np.argmax(stds)) and v["pid"] == 2
    centre = np.mean([before[i] for i in sel], axis=0)
    dist = {i: float(np.sqrt(sum((before[i, k] - centre[k]) ** 2 for k in range(d)))) for i in sel}
    assert list(v["samples"]) == sorted(sel, key=lambda i: (dist[i], i))
    k = v["dim"]
    assert v["before"]["centre"] == pytest.approx(centre[k])
    assert v["before"]["std"] == pytest.approx(stds[k])
    np.testing.assert_allclose(v["before"]["values"], [before[i, k] for i in v["samples"]])
    np.testing.assert_allclose(v["before"]["distance_to_centre"], [dist[i] for i in v["samples"]])
    centre_a = np.mean([after[i] for i in sel], axis=0)
    np.testing.assert_allclose(v["after"]["values"], [after[i, k] for i in v["samples"]])
    assert v["after"]["centre"] == pytest.approx(centre_a[k])
    assert identity_dimension(before, after, pids, pid=2, dim=0)["dim"] == 0
    for bad in ({"pid": 77}, {"pid": 2, "dim": d}):
        with pytest.raises(ValueError):
            identity_dimension(before, after, pids, **bad)


def test_identity_view_shows_centralization_narrowing_the_identity(rng):
    a = labelled(rng, nq=60, ng=300, d=16)
    fs = FeatureSet.from_arrays(a)
    s = ablation.Settings(eta=2.0)
    pid = ablation.default_identity(fs)
    allp = np.concatenate([fs.q_pids, fs.g_pids])
    counts = {p: int((allp == p).sum()) for p in set(allp.tolist()) if p > 0}
    assert counts[pid] == max(counts.values()) and pid == min(p for p, c in counts.items() if c == counts[pid])
    v = ablation.identity_view(fs, s)
    assert v["pid"] == pid and v["row"] == "+NFC+IPG"
    assert v["after"]["mean_distance_to_centre"] < v["before"]["mean_distance_to_centre"]
    q, g = ablation.stage_features(fs, s, "+NFC+IPG")
    after = np.concatenate([q, g])[v["samples"], v["dim"]]
    np.testing.assert_allclose(v["after"]["values"], after, rtol=1e-6)


# ----------------------------------------------------------------------------------------- pictures
def test_figures_are_written_as_png(rng, tmp_path):
    from pose2id_demo.figures import (
        distance_distribution_figure,
        identity_dimension_figure,
        save_figure,
    )

    fs = FeatureSet.from_arrays(labelled(rng))
    s = ablation.Settings()
    for name, fig in (("d.png", distance_distribution_figure(ablation.distance_distributions(fs, s), "t")),
                      ("i.png", identity_dimension_figure(ablation.identity_view(fs, s), "t"))):
        path = save_figure(fig, tmp_path / "sub" / name)
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width > 600 and im.height > 200


def test_rank_strip_frames_matches_green_and_others_red():
    from pose2id_demo.visrank import (
        BORDER,
        CELL,
        MATCH,
        MISMATCH,
        QUERY,
        rank_strip,
        select_queries,
    )

    q = Image.new("RGB", (32, 64), (0, 0, 255))
    gallery = [Image.new("RGB", (64, 128), (i * 40, i * 40, i * 40)) for i in range(4)]
    matches = [True, False, False, True]
    strip = rank_strip(q, gallery, matches, [f"{i}" for i in range(4)], label="x", label_width=20)
    fw = CELL[0] + 2 * BORDER
    assert strip.getpixel((20 + 1, 1)) == QUERY
    x0 = 20 + fw + 24
    for i, ok in enumerate(matches):
        x = x0 + i * (fw + 6)
        assert strip.getpixel((x + 1, 1)) == (MATCH if ok else MISMATCH)
        assert strip.getpixel((x + BORDER + 5, BORDER + 5)) == (i * 40,) * 3  # the image inside its frame
    ap = np.array([50.0, np.nan, 10.0, 90.0, 10.0])
    assert list(select_queries(ap, 2, "worst")) == [2, 4]
    assert list(select_queries(ap, 9, "best")) == [3, 0, 2, 4]


def test_worst_and_best_lists_never_share_a_query():
    """With fewer than 2·N queries the worst-N and best-N lists overlapped (and with equal APs even with more):
    the worst list gets ceil(Q/2) of the Q queries with a valid match, the best list the rest; checked against
    the definition on random APs with many ties."""
    from pose2id_demo.visrank import split_queries

    ap = np.array([50.0, np.nan, 10.0, 90.0, 10.0])
    both = split_queries(ap, 10, ("worst", "best"))
    assert list(both["worst"]) == [2, 4] and list(both["best"]) == [3, 0]
    assert list(split_queries(ap, 1, ("worst", "best"))["best"]) == [3]
    same = split_queries(np.full(6, 40.0), 3, ("worst", "best"))  # all tied: 3 + 3, disjoint
    assert list(same["worst"]) == [0, 1, 2] and list(same["best"]) == [3, 4, 5]
    assert list(split_queries(ap, 10, ("best",))["best"]) == [3, 0, 2, 4]  # one kind: every valid query
    rng = np.random.default_rng(0)
    for _ in range(300):
        q_all, num = int(rng.integers(0, 12)), int(rng.integers(0, 7))
        ap = rng.integers(0, 4, q_all).astype(float) * 25  # few values: many ties
        ap[rng.random(q_all) < 0.2] = np.nan
        valid = int(np.isfinite(ap).sum())
        got = split_queries(ap, num, ("worst", "best"))
        w, b = list(got["worst"]), list(got["best"])
        assert not set(w) & set(b) and all(np.isfinite(ap[w + b]))
        if valid >= 2 * num:
            assert len(w) == len(b) == num
        else:
            assert (len(w), len(b)) == (-(-valid // 2), valid // 2)
        rest = [i for i in range(q_all) if np.isfinite(ap[i]) and i not in w]
        assert all(ap[i] <= ap[j] for i in w for j in rest)  # the worst are the lowest
        assert all(ap[i] >= ap[j] for i in b for j in rest if j not in b)  # the best the highest of the rest
        assert [ap[i] for i in w] == sorted(ap[i] for i in w) and [ap[i] for i in b] == sorted((ap[i] for i in b),
                                                                                                reverse=True)
