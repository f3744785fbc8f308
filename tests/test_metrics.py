"""Market-1501 evaluation and ID² against plain per-query / per-identity references on fresh random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from pose2id_demo.metrics import distance_matrix, evaluate, evaluate_loop, id2, id2_per_sample, per_query_ap
from pose2id_demo.metrics.rank import evaluate_features


@pytest.fixture
def rng(request):
    seed = np.random.SeedSequence().entropy
    print(f"seed={seed}")  # shown on failure
    return np.random.default_rng(seed)


def plain_eval(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The protocol from its definition, with Python lists (tiny sizes only)."""
    nq, ng = distmat.shape
    max_rank = min(max_rank, ng)
    aps, inps, cmcs = [], [], []
    for i in range(nq):
        ranked = sorted(range(ng), key=lambda j: (distmat[i, j], j))
        ranked = [j for j in ranked if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        good = [r for r, j in enumerate(ranked) if g_pids[j] == q_pids[i]]
        if not good:
            continue
        aps.append(np.mean([(h + 1) / (r + 1) for h, r in enumerate(good)]))
        inps.append(len(good) / (good[-1] + 1))
        cmcs.append([1.0 if good[0] <= k else 0.0 for k in range(max_rank)])
    if not aps:
        return {"n": 0}
    cmc = np.mean(cmcs, axis=0)
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "cmc": cmc, "n": len(aps)}


def random_problem(rng, nq, ng, n_ids, n_cams, dtype=np.float32, quantize=False):
    q_pids = rng.integers(0, n_ids, nq)
    g_pids = rng.integers(0, n_ids, ng)
    q_cams = rng.integers(0, n_cams, nq)
    g_cams = rng.integers(0, n_cams, ng)
    d = rng.random((nq, ng)) + 0.5 * (q_pids[:, None] != g_pids[None, :])
    if quantize:  # many exact ties
        d = np.round(d * 4) / 4
    return d.astype(dtype), q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize(
    "nq,ng,n_ids,n_cams,quantize",
    [(7, 30, 4, 2, False), (12, 25, 3, 3, True), (5, 8, 2, 1, False), (20, 60, 10, 6, True), (1, 1, 1, 2, False)],
)
def test_evaluate_matches_definition(rng, nq, ng, n_ids, n_cams, quantize):
    prob = random_problem(rng, nq, ng, n_ids, n_cams, quantize=quantize)
    ref = plain_eval(*prob)
    if ref["n"] == 0:  # no query with a valid match
        with pytest.raises(ValueError):
            evaluate(*prob)
        return
    for fn in (
        evaluate,
        evaluate_loop,
        lambda *a: evaluate(*a, method="sort"),
        lambda *a: evaluate(*a, method="count"),
    ):
        got = fn(*prob)
        assert got["num_valid_queries"] == ref["n"]
        assert got["mAP"] == pytest.approx(ref["mAP"], abs=1e-12)
        assert got["mINP"] == pytest.approx(ref["mINP"], abs=1e-12)
        np.testing.assert_allclose(got["cmc"], ref["cmc"], atol=1e-12)
        assert got["Rank-1"] == pytest.approx(ref["cmc"][0])
        assert got["Rank-5"] == pytest.approx(ref["cmc"][min(5, len(ref["cmc"])) - 1])


def plain_query(distmat, q_pids, g_pids, q_camids, g_camids, i):
    """AP and 1-based first-correct rank of query ``i`` from the definition (NaN, 0 without a valid match)."""
    ranked = sorted(range(distmat.shape[1]), key=lambda j: (distmat[i, j], j))
    ranked = [j for j in ranked if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
    good = [r for r, j in enumerate(ranked) if g_pids[j] == q_pids[i]]
    if not good:
        return float("nan"), 0
    return float(np.mean([(h + 1) / (r + 1) for h, r in enumerate(good)])), good[0] + 1


@pytest.mark.parametrize("nq,ng,n_ids,n_cams,quantize,chunk",
                         [(40, 90, 12, 3, True, 7), (33, 50, 40, 2, False, 64), (9, 20, 3, 1, True, 2)])
def test_per_query_ap_matches_definition(rng, nq, ng, n_ids, n_cams, quantize, chunk):
    """Every query's AP and first-correct rank, in one pass, as the definition gives them one query at a time
    (exact ties included: the stable order by gallery index decides, as in evaluate); queries without a
    valid match are NaN / 0, and the valid ones average to evaluate's mAP."""
    prob = random_problem(rng, nq, ng, n_ids, n_cams, quantize=quantize)
    ap, first = per_query_ap(*prob, chunk=chunk)
    ref = [plain_query(*prob, i) for i in range(nq)]
    np.testing.assert_allclose(ap, [a for a, _ in ref], atol=1e-12)  # NaN where NaN
    assert first.tolist() == [r for _, r in ref]
    if np.isfinite(ap).any():
        assert np.nanmean(ap) == pytest.approx(evaluate(*prob)["mAP"], abs=1e-12)


@pytest.mark.parametrize(
    "chunk,workers,method", [(3, 1, "count"), (7, 2, "sort"), (256, None, "auto"), (1000, 3, "count"), (64, 2, "auto")]
)
def test_vectorised_equals_loop(rng, chunk, workers, method):
    for dtype, quantize, n_ids in [(np.float32, False, 40), (np.float64, True, 40), (np.float16, False, 3)]:
        prob = random_problem(rng, 150, 700, n_ids, 6, dtype=dtype, quantize=quantize)
        a = evaluate(*prob, chunk=chunk, workers=workers, method=method)
        b = evaluate_loop(*prob)
        for key in ("mAP", "mINP", "Rank-1", "Rank-5", "Rank-10", "num_valid_queries"):
            assert abs(a[key] - b[key]) <= 1e-9, key
        assert np.abs(a["cmc"] - b["cmc"]).max() <= 1e-9
        assert a["cmc"].shape == (50,)


@pytest.mark.parametrize("chunk_bytes", [1, 4 * 700 * 7, 1 << 27])
def test_evaluate_features_equals_matrix_evaluation_exactly(rng, chunk_bytes):
    # binary features with exactly 16 ones in 64 dims: every norm is 4, so normalised entries are 0.25 and
    # all distances are exact multiples of 1/8 in float32 and float64 -> many exact ties, no rounding
    def lattice(n):
        x = np.zeros((n, 64), np.float32)
        for i in range(n):
            x[i, rng.choice(64, 16, replace=False)] = rng.choice([0.5, 1.0, 4.0])  # power-of-two scale per row
        return x

    nq, ng, n_ids = 40, 700, 25
    q_pids, g_pids = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    q_cams, g_cams = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
    q, g = lattice(nq), lattice(ng)
    ids = (q_pids, g_pids, q_cams, g_cams)
    ref = evaluate_loop(distance_matrix(q, g, dtype=np.float64), *ids)
    got = evaluate_features(q, g, *ids, chunk_bytes=chunk_bytes, progress=chunk_bytes == 1)
    for key in ("mAP", "mINP", "Rank-1", "Rank-5", "Rank-10", "num_valid_queries"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    np.testing.assert_allclose(got["cmc"], ref["cmc"], atol=1e-12)


def test_evaluate_features_on_gaussian_features(rng):
    centres = rng.standard_normal((30, 16))
    q_pids, g_pids = rng.integers(0, 30, 60), rng.integers(0, 30, 900)
    q = (centres[q_pids] + rng.standard_normal((60, 16))).astype(np.float32)
    g = (centres[g_pids] + rng.standard_normal((900, 16))).astype(np.float32) * 3
    ids = (q_pids, g_pids, rng.integers(0, 6, 60), rng.integers(0, 6, 900))
    ref = evaluate(distance_matrix(q, g, dtype=np.float64), *ids)
    got = evaluate_features(q, g, *ids, chunk_bytes=4 * 900 * 16)
    assert got["mAP"] == pytest.approx(ref["mAP"], abs=1e-4)  # float32 vs float64 near-ties only
    with pytest.raises(ValueError):
        evaluate_features(q, g[:, :8], *ids)
    with pytest.raises(ValueError):
        evaluate_features(q, g, q_pids[:5], *ids[1:])


def test_same_camera_same_pid_is_ignored_and_unmatched_query_skipped():
    # query 0 (pid 1, cam 0): the nearest gallery item is pid 1 in cam 0 (junk), then pid 2, then pid 1 cam 1
    # query 1 (pid 5): no gallery item of pid 5 -> skipped
    distmat = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    out = evaluate(distmat, np.array([1, 5]), np.array([1, 2, 1]), np.array([0, 0]), np.array([0, 1, 1]))
    assert out["num_valid_queries"] == 1 and out["num_queries"] == 2
    assert out["mAP"] == pytest.approx(0.5)  # the match is at valid rank 2
    assert out["Rank-1"] == 0.0 and out["cmc"][1] == 1.0
    assert out["mINP"] == pytest.approx(0.5)


def test_no_valid_match_at_all_raises():
    d = np.random.default_rng().random((3, 4))
    with pytest.raises(ValueError, match="no query"):
        evaluate(d, np.array([0, 0, 0]), np.array([0, 0, 1, 1]), np.zeros(3, int), np.array([0, 0, 5, 5]))


def test_single_identity_perfect_scores():
    rng = np.random.default_rng()
    d = rng.random((4, 10))
    out = evaluate(d, np.zeros(4, int), np.zeros(10, int), np.zeros(4, int), np.ones(10, int))
    assert out["mAP"] == 1.0 and out["mINP"] == 1.0 and out["Rank-1"] == 1.0
    assert out["cmc"].shape == (10,)  # max_rank clamped to the gallery size


def test_evaluate_rejects_bad_shapes():
    with pytest.raises(ValueError):
        evaluate(np.zeros((2, 3)), np.zeros(2), np.zeros(4), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError):
        evaluate(np.full((1, 1), np.nan), np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1))


def test_distance_matrix(rng):
    q = rng.standard_normal((9, 5)) * 3
    g = rng.standard_normal((13, 5))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    ref = np.sqrt(((qn[:, None] - gn[None]) ** 2).sum(-1))
    np.testing.assert_allclose(distance_matrix(q, g), ref, atol=1e-3)  # float32 sqrt(2-2cos)
    np.testing.assert_allclose(distance_matrix(q, g, dtype=np.float64), ref, atol=1e-7)
    assert distance_matrix(q, q, dtype=np.float64).diagonal() == pytest.approx(0, abs=1e-7)


def plain_id2(feats, pids, average="id"):
    ids = sorted(set(pids.tolist()))
    per_id, all_d = [], []
    for p in ids:
        f = feats[pids == p].astype(np.float64)
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        c = f.mean(0)
        c = c / np.linalg.norm(c)
        d = [float(np.linalg.norm(x - c)) for x in f]
        per_id.append(np.mean(d))
        all_d += d
    return np.mean(per_id) if average == "id" else np.mean(all_d)


def test_id2_matches_eq20_21(rng):
    for n, n_ids, d in [(50, 7, 16), (9, 1, 4), (30, 30, 3)]:
        feats = rng.standard_normal((n, d)).astype(np.float32) * rng.uniform(0.5, 5, (n, 1)).astype(np.float32)
        pids = rng.integers(100, 100 + n_ids, n)
        assert id2(feats, pids) == pytest.approx(plain_id2(feats, pids), abs=1e-6)
        assert id2(feats, pids, average="sample") == pytest.approx(plain_id2(feats, pids, "sample"), abs=1e-6)
        assert id2_per_sample(feats, pids).shape == (n,)


def test_id2_extremes():
    f = np.tile(np.array([[1.0, 2.0, 3.0]]), (6, 1))
    assert id2(f * np.arange(1, 7)[:, None], np.zeros(6, int)) == pytest.approx(0, abs=1e-7)  # one direction per id
    # unequal identity sizes: id-mean and sample-mean differ
    f = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [1, 0], [1, 0.0]])
    p = np.array([0, 0, 1, 1, 1, 1])
    assert id2(f, p) == pytest.approx(np.sqrt(2 - np.sqrt(2)) / 2)
    assert id2(f, p, average="sample") == pytest.approx(np.sqrt(2 - np.sqrt(2)) * 2 / 6)
    with pytest.raises(ValueError):
        id2(f, p[:3])
