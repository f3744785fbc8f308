"""NFC (Alg. 1), eq. 9 and k-reciprocal re-ranking against plain brute-force versions on fresh random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from pose2id_demo.centralization import centralize, l2_normalize, nfc, nfc_sets, rerank, topk_neighbors
from pose2id_demo.metrics import evaluate


# ---------------------------------------------------------------- brute-force references (no cleverness)
def bf_sqdist(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def bf_neighbors(x: np.ndarray, k: int) -> list[list[int]]:
    """k nearest others of each row, by (distance, index)."""
    d = bf_sqdist(x)
    n = len(x)
    out = []
    for i in range(n):
        others = sorted((d[i, j], j) for j in range(n) if j != i)
        out.append([j for _, j in others[: min(k, n - 1)]])
    return out


def bf_nfc(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Algorithm 1 line by line, then L2 normalisation."""
    n = len(x)
    k1, k2 = min(k1, n - 1), min(k2, n - 1)
    x64 = x.astype(np.float64)
    if k1 <= 0 or k2 <= 0:
        out = x64
    else:
        n1 = bf_neighbors(x, k1)
        n2 = bf_neighbors(x, k2)
        out = np.empty_like(x64)
        for i in range(n):
            m_i = [j for j in n1[i] if i in n2[j]]
            out[i] = x64[i] + sum((x64[j] for j in m_i), np.zeros(x.shape[1]))
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def bf_rerank(q, g, k1, k2, lam):
    """Zhong et al. 2017, the paper's formulas (``variant="paper"``), dense and with Python sets."""
    f = np.concatenate([q, g]).astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    n, nq = len(f), len(q)
    k1 = min(k1, n - 1)
    k2 = min(k2, n)
    d = np.maximum(((f[:, None] - f[None]) ** 2).sum(-1), 0)

    def nb(p, k):  # p itself, then its k nearest others
        return [p] + sorted((j for j in range(n) if j != p), key=lambda j: (d[p, j], j))[:k]

    def recip(p, k):
        return {j for j in nb(p, k) if p in nb(j, k)}

    kh = (k1 + 1) // 2
    v = np.zeros((n, n))
    for p in range(n):
        r = recip(p, k1)
        rs = set(r)
        for qq in r:
            rh = recip(qq, kh)
            if len(r & rh) >= 2 / 3 * len(rh):
                rs |= rh
        for j in rs:
            v[p, j] = np.exp(-d[p, j])
    if k2 > 1:
        v = np.stack([v[nb(p, k2 - 1)].mean(0) for p in range(n)])
    out = np.empty((nq, n - nq))
    for i in range(nq):
        for jg in range(n - nq):
            a, b = v[i], v[nq + jg]
            jac = 1 - np.minimum(a, b).sum() / np.maximum(a, b).sum()
            out[i, jg] = (1 - lam) * jac + lam * d[i, nq + jg]
    return out


def bf_rerank_released(q, g, k1, k2, lam):
    """The released re_ranking as its description reads, dense, a loop per sample, with Python sets:
    squared distances of unit features divided by each row's maximum; self-first ranks; R(p, k1);
    expansion by R(c, round(k1/2)) when the overlap is *more* than 2/3; V = exp(-d') normalised to sum 1;
    query expansion = mean of the first k2 rows of the ranking; Jaccard = 1 - m / (2 - m), m = sum of
    the coordinate-wise minima; final = (1 - lam) Jaccard + lam d'."""
    f = np.concatenate([q, g]).astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    n, nq = len(f), len(q)
    d = np.maximum(((f[:, None] - f[None]) ** 2).sum(-1), 0)
    d = d / d.max(axis=1, keepdims=True)
    ranks = [[p] + sorted((j for j in range(n) if j != p), key=lambda j: (d[p, j], j)) for p in range(n)]

    def recip(p, k):
        return {j for j in ranks[p][: k + 1] if p in ranks[j][: k + 1]}

    half = int(np.around(k1 / 2.0))
    v = np.zeros((n, n))
    for p in range(n):
        r = recip(p, k1)
        expanded = set(r)
        for c in r:
            rc = recip(c, half)
            if len(rc & r) > 2.0 / 3.0 * len(rc):
                expanded |= rc
        idx = sorted(expanded)
        w = np.exp(-d[p, idx])
        v[p, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[ranks[p][:k2]].mean(0) for p in range(n)])
    jac = np.empty((nq, n))
    for i in range(nq):
        m = np.minimum(v[i][None, :], v).sum(1)
        jac[i] = 1 - m / (2 - m)
    return ((1 - lam) * jac + lam * d[:nq])[:, nq:]


# ---------------------------------------------------------------- top-k / NFC
@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize(
    "n,d,k,block",
    [(40, 8, 5, 7), (300, 16, 20, 64), (257, 6, 3, 256), (600, 32, 12, 1000), (5, 4, 10, 2), (2, 3, 1, 1),
     (1100, 8, 3, 256)],
)
def test_topk_neighbors_matches_brute_force(n, d, k, block, backend):
    rng = np.random.default_rng()
    x = rng.standard_normal((n, d)).astype(np.float32) * rng.uniform(0.1, 50)
    got = topk_neighbors(x, k, block=block, backend=backend)
    assert got.shape == (n, min(k, n - 1))
    want = bf_neighbors(x, k)
    # The fast path ranks float32 GEMM distances, the reference float64 ones: where two neighbours' distances
    # agree to float32 rounding their order may differ. Such rows must still be a correct top-k up to that
    # rounding; every other row must match exactly.
    d64 = bf_sqdist(x.astype(np.float64))
    tol = 1e-5 * float((x.astype(np.float64) ** 2).sum(1).max())
    differing = [i for i in range(n) if got[i].tolist() != want[i]]
    for i in differing:
        dg, dw = d64[i, got[i]], d64[i, want[i]]
        assert i not in got[i] and len(set(got[i].tolist())) == len(dg)
        assert np.all(np.abs(dg - dw) <= tol), (i, dg, dw)  # same distances rank by rank, up to rounding
    assert len(differing) <= max(1, n // 50)


def test_topk_neighbors_threaded_blocks_identical():
    x = np.random.default_rng().standard_normal((500, 12)).astype(np.float32)
    ref = topk_neighbors(x, 9, block=37)
    np.testing.assert_array_equal(topk_neighbors(x, 9, block=37, workers=3), ref)
    assert ref.tolist() == bf_neighbors(x, 9)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_topk_neighbors_ties_go_to_lower_index(backend):
    # small integer coordinates: distances are exact in float32, so ties are real ties
    rng = np.random.default_rng()
    x = rng.integers(0, 3, size=(150, 3)).astype(np.float32)
    for block in (1, 17, 64, 150):
        assert topk_neighbors(x, 12, block=block, backend=backend).tolist() == bf_neighbors(x, 12)


def test_topk_neighbors_tiles_and_progress_bar(capsys):
    # many tiles, a ragged last tile, and rows whose neighbours all lie in other tiles
    rng = np.random.default_rng()
    x = rng.integers(-3, 4, size=(333, 5)).astype(np.float32)
    want = bf_neighbors(x, 4)
    assert topk_neighbors(x, 4, block=64, progress=True).tolist() == want
    assert "NFC distance tiles" in capsys.readouterr().err
    assert topk_neighbors(x, 4, block=64, backend="numpy").tolist() == want
    with pytest.raises(ValueError):
        topk_neighbors(x, 4, backend="cuda")
    with pytest.raises(ValueError):
        topk_neighbors(x, 4, index="annoy")


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_topk_neighbors_distances(backend):
    x = np.random.default_rng().standard_normal((80, 5)).astype(np.float32) * 30
    idx, d2 = topk_neighbors(x, 6, return_dist=True, block=32, backend=backend)
    ref = bf_sqdist(x)
    np.testing.assert_allclose(d2, np.take_along_axis(ref, idx, 1), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_topk_neighbors_row_max(backend):
    x = np.random.default_rng().standard_normal((150, 7)).astype(np.float32) * 4
    idx, rmax = topk_neighbors(x, 3, block=32, backend=backend, return_max=True)
    ref = bf_sqdist(x)
    np.testing.assert_allclose(rmax, ref.max(1), rtol=1e-5)
    assert idx.shape == (150, 3)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k1,k2", [(2, 2), (1, 3), (4, 2), (3, 7), (10, 10)])
def test_nfc_matches_algorithm_1(seed, k1, k2):
    rng = np.random.default_rng([seed, k1, k2, np.random.SeedSequence().entropy])
    while True:  # fresh clustered data, like identities, without a near-tie in the first k+1 neighbours
        n = int(rng.integers(20, 120))
        centers = rng.standard_normal((max(2, n // 6), 12))
        x = (centers[rng.integers(0, len(centers), n)] + 0.4 * rng.standard_normal((n, 12))).astype(np.float32)
        near = np.sort(bf_sqdist(x), axis=1)[:, : max(k1, k2) + 2]
        if np.diff(near, axis=1).min() > 1e-4:  # float32 code and float64 reference rank them alike
            break
    got = nfc(x, k1, k2, block=int(rng.integers(1, n + 5)), backend=("torch", "numpy")[seed % 2])
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, bf_nfc(x, k1, k2), atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_nfc_k_larger_than_n_clamps():
    x = np.random.default_rng().standard_normal((7, 4)).astype(np.float32)
    np.testing.assert_allclose(nfc(x, 50, 50), bf_nfc(x, 6, 6), atol=2e-6)
    # with k = N-1 everybody is everybody's mutual neighbour: every row becomes the normalised sum
    s = x.astype(np.float64).sum(0)
    np.testing.assert_allclose(nfc(x, 50, 50), np.tile(s / np.linalg.norm(s), (7, 1)), atol=2e-6)


def test_nfc_zero_k_returns_normalised_input():
    x = np.random.default_rng().standard_normal((30, 6)).astype(np.float32) * 3
    np.testing.assert_allclose(nfc(x, 0, 3), l2_normalize(x))
    np.testing.assert_allclose(nfc(x, 3, 0), l2_normalize(x))
    np.testing.assert_allclose(nfc(x[:1], 2, 2), l2_normalize(x[:1]))


def test_nfc_duplicates_and_ties_match_reference():
    rng = np.random.default_rng()
    base = rng.integers(-2, 3, size=(25, 4)).astype(np.float32)
    x = np.concatenate([base, base[:10], base[:5]])  # exact duplicate rows -> distance-0 ties
    for k1, k2 in [(1, 1), (2, 2), (3, 5)]:
        np.testing.assert_allclose(nfc(x, k1, k2, block=9), bf_nfc(x, k1, k2), atol=2e-6)


def test_nfc_uses_paper_k2_not_official_variant():
    # 0 -> nearest is 1; 1's order is 2 (0.5) then 0 (1.0).  Paper (k1=1, k2=2): 0 is in 1's top-2, so
    # M_0 = {1}.  Official code (k2 capped at k1 = 1): 0 is not 1's first neighbour, so M_0 = {}.
    x = np.array([[0.0, 1.0], [1.0, 1.0], [1.5, 1.0]], np.float32)
    z = nfc(x, 1, 2)
    np.testing.assert_allclose(z[0], l2_normalize(x[0] + x[1]), atol=1e-6)
    np.testing.assert_allclose(nfc(x, 1, min(1, 2))[0], l2_normalize(x[0]), atol=1e-6)


def test_nfc_rejects_bad_input():
    with pytest.raises(ValueError):
        nfc(np.zeros(5), 2, 2)
    with pytest.raises(ValueError):
        nfc(np.array([[0.0, np.nan], [1.0, 2.0]]), 1, 1)


@pytest.mark.parametrize("apply_to", ["query", "gallery", "both"])
def test_nfc_sets_modes(apply_to):
    rng = np.random.default_rng()
    q = rng.standard_normal((23, 8)).astype(np.float32)
    g = rng.standard_normal((41, 8)).astype(np.float32)
    qs, gs = nfc_sets(q, g, 2, 2, mode="separate", apply_to=apply_to)
    exp_q = bf_nfc(q, 2, 2) if apply_to != "gallery" else l2_normalize(q)
    exp_g = bf_nfc(g, 2, 2) if apply_to != "query" else l2_normalize(g)
    np.testing.assert_allclose(qs, exp_q, atol=2e-6)
    np.testing.assert_allclose(gs, exp_g, atol=2e-6)
    qj, gj = nfc_sets(q, g, 3, 2, mode="joint", apply_to=apply_to)
    joint = bf_nfc(np.concatenate([q, g]), 3, 2)
    np.testing.assert_allclose(qj, joint[:23] if apply_to != "gallery" else l2_normalize(q), atol=2e-6)
    np.testing.assert_allclose(gj, joint[23:] if apply_to != "query" else l2_normalize(g), atol=2e-6)
    with pytest.raises(ValueError):
        nfc_sets(q, g, 2, 2, mode="both")


# ---------------------------------------------------------------- eq. 9
def test_centralize_matches_eq9():
    rng = np.random.default_rng()
    for n, m, d in [(10, 8, 16), (3, 1, 5), (1, 3, 2)]:
        f = rng.standard_normal((n, d)) * 5
        gen = rng.standard_normal((n, m, d))
        eta = float(rng.uniform(0.1, 3))
        got = centralize(f.astype(np.float32), gen.astype(np.float32), eta)
        ref = f / np.linalg.norm(f, axis=1, keepdims=True) + eta / m * gen.sum(1)
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        np.testing.assert_allclose(got, ref, atol=2e-6)


def test_centralize_no_generated_or_zero_eta():
    f = np.random.default_rng().standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(centralize(f, np.zeros((6, 0, 4), np.float32), 2.0), l2_normalize(f))
    np.testing.assert_allclose(centralize(f, np.ones((6, 3, 4), np.float32), 0.0), l2_normalize(f))
    with pytest.raises(ValueError):
        centralize(f, np.ones((5, 3, 4), np.float32), 1.0)


# ---------------------------------------------------------------- re-ranking
@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (4, 1, 0.5), (3, 3, 0.0), (100, 6, 0.3)])
def test_rerank_matches_brute_force(k1, k2, lam):
    rng = np.random.default_rng()
    centers = rng.standard_normal((6, 10))
    pid = rng.integers(0, 6, 45)
    f = (centers[pid] + 0.5 * rng.standard_normal((45, 10))).astype(np.float32)
    q, g = f[:12], f[12:]
    got = rerank(q, g, k1=k1, k2=k2, lambda_value=lam, query_chunk=5, block=7, variant="paper")
    np.testing.assert_allclose(got, bf_rerank(q, g, k1, k2, lam), atol=1e-5)


@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.5), (9, 3, 0.0), (7, 6, 1.0), (100, 6, 0.3)])
def test_rerank_default_is_the_released_code(k1, k2, lam):
    rng = np.random.default_rng()
    n_ids = 8
    centers = rng.standard_normal((n_ids, 10))
    pid = rng.integers(0, n_ids, 60)
    cam = rng.integers(0, 3, 60)
    f = (centers[pid] + 0.6 * rng.standard_normal((60, 10))).astype(np.float32)
    q, g = f[:15], f[15:]
    got = rerank(q, g, k1=k1, k2=k2, lambda_value=lam, query_chunk=4, block=16)
    want = bf_rerank_released(q, g, k1, k2, lam)
    np.testing.assert_allclose(got, want, atol=1e-4)
    ids = (pid[:15], pid[15:], cam[:15], cam[15:])
    try:
        ref = evaluate(want, *ids)
    except ValueError:  # no query with a valid match in this draw
        return
    res = evaluate(got, *ids)
    assert abs(res["mAP"] - ref["mAP"]) <= 1e-4 and abs(res["Rank-1"] - ref["Rank-1"]) <= 1e-4


def test_rerank_variants_differ_and_reject_unknown():
    rng = np.random.default_rng()
    f = rng.standard_normal((40, 6)).astype(np.float32)
    a = rerank(f[:10], f[10:], variant="released")
    b = rerank(f[:10], f[10:], variant="paper")
    assert a.shape == b.shape == (10, 30) and np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError):
        rerank(f[:10], f[10:], variant="torchreid")


def test_rerank_lambda_one_is_original_distance_and_works_after_nfc():
    rng = np.random.default_rng()
    q = rng.standard_normal((9, 6)).astype(np.float32)
    g = rng.standard_normal((30, 6)).astype(np.float32)
    qn, gn = l2_normalize(q), l2_normalize(g)
    d2 = ((qn[:, None].astype(np.float64) - gn[None]) ** 2).sum(-1)
    np.testing.assert_allclose(rerank(q, g, lambda_value=1.0, variant="paper"), d2, atol=1e-5)
    np.testing.assert_allclose(rerank(q, g, lambda_value=1.0), d2 / np.concatenate(
        [d2, ((qn[:, None].astype(np.float64) - qn[None]) ** 2).sum(-1)], 1).max(1, keepdims=True), atol=1e-5)
    qc, gc = nfc_sets(q, g, 2, 2)
    # NFC turns two rows that are each other's only mutual neighbour into the same row (z_i + z_j), and exact
    # distance ties may be ordered differently by the float32 fast path and the float64 reference; a jitter
    # far above float32 resolution but far below the feature scale breaks those ties the same way for both.
    qc = qc + 1e-3 * rng.standard_normal(qc.shape).astype(np.float32)
    gc = gc + 1e-3 * rng.standard_normal(gc.shape).astype(np.float32)
    np.testing.assert_allclose(rerank(qc, gc, variant="paper"), bf_rerank(qc, gc, 20, 6, 0.3), atol=1e-5)
    np.testing.assert_allclose(rerank(qc, gc), bf_rerank_released(qc, gc, 20, 6, 0.3), atol=1e-4)
