"""NFC with faiss neighbour candidates (optional dependency: requirements-scale.txt)."""

from __future__ import annotations

import numpy as np
import pytest

from pose2id_demo.centralization import nfc, nfc_sets, topk_neighbors

faiss = pytest.importorskip("faiss", reason="faiss-cpu is optional (pip install -r requirements-scale.txt)")


def clustered(rng, n, d=32, n_ids=40, noise=0.3):
    centres = rng.standard_normal((n_ids, d))
    return (centres[rng.integers(0, n_ids, n)] + noise * rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("factory,nprobe", [("IVF16,Flat", 16), ("IVF16,SQ8", 16), ("HNSW16", 64)])
def test_faiss_neighbours_are_exact_when_every_list_is_searched(factory, nprobe):
    # with all IVF lists probed (or a wide HNSW beam) the candidates contain the true neighbours, and the
    # exact re-ranking then gives the exact lists, (distance, index) rule included
    rng = np.random.default_rng()
    x = clustered(rng, 1500)
    exact = topk_neighbors(x, 3)
    got = topk_neighbors(x, 3, index="faiss", faiss_index=factory, nprobe=nprobe)
    assert got.shape == exact.shape and got.dtype == np.int64
    assert (got != np.arange(1500)[:, None]).all()  # self excluded
    assert (got == exact).all(axis=1).mean() >= 0.99
    np.testing.assert_allclose(nfc(x, 2, 2, index="faiss", faiss_index=factory, nprobe=nprobe)[:5].shape, (5, 32))


def test_faiss_pca_hnsw_on_low_dimensional_features():
    # features near an 8-dim subspace of 32 dims: a PCA pre-transform keeps what matters, the HNSW graph is
    # the pre-transform's inner index (its search beam must reach it), and the exact re-ranking restores
    # the exact lists
    rng = np.random.default_rng()
    basis = np.linalg.qr(rng.standard_normal((32, 8)))[0].T
    x = (clustered(rng, 1500, d=8) @ basis + 0.01 * rng.standard_normal((1500, 32))).astype(np.float32)
    exact = topk_neighbors(x, 3)
    got = topk_neighbors(x, 3, index="faiss", faiss_index="PCA16,HNSW16", nprobe=64)
    assert (got == exact).all(axis=1).mean() >= 0.99


def test_faiss_distances_and_nfc_sets():
    rng = np.random.default_rng()
    x = clustered(rng, 800)
    idx, d2 = topk_neighbors(x, 2, index="faiss", faiss_index="IVF8,Flat", nprobe=8, return_dist=True)
    ref = ((x[:, None].astype(np.float64) - x[idx]) ** 2).sum(-1)
    np.testing.assert_allclose(d2, ref, rtol=1e-4, atol=1e-4)
    q, g = x[:200], x[200:]
    qa, ga = nfc_sets(q, g, 2, 2, mode="joint", index="faiss", faiss_index="IVF8,Flat", nprobe=8)
    qe, ge = nfc_sets(q, g, 2, 2, mode="joint")
    assert np.mean(np.abs(qa - qe).max(1) < 1e-5) >= 0.99 and np.mean(np.abs(ga - ge).max(1) < 1e-5) >= 0.99


def test_faiss_small_sets_and_errors():
    x = np.random.default_rng().standard_normal((6, 4)).astype(np.float32)
    # fewer points than candidates asked for: rows short of candidates fall back to an exact search
    assert topk_neighbors(x, 5, index="faiss", faiss_index="Flat").tolist() == topk_neighbors(x, 5).tolist()
    with pytest.raises(ValueError):
        topk_neighbors(x, 2, index="faiss", return_max=True)


def test_cli_eval_index_faiss(tmp_path, capsys):
    from pose2id_demo.cli import main

    rng = np.random.default_rng()
    x = clustered(rng, 700)
    pids = rng.integers(0, 40, 700)
    path = tmp_path / "f.npz"
    np.savez(path, q_feats=x[:100], g_feats=x[100:], q_pids=pids[:100], g_pids=pids[100:],
             q_camids=np.zeros(100, int), g_camids=np.ones(600, int))
    assert main(["eval", str(path), "--index", "faiss"]) == 0
    assert "+NFC" in capsys.readouterr().out
