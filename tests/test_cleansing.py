"""Mahalanobis cleansing (eqs. 29-31) against brute-force covariance inverses and scikit-learn's Ledoit-Wolf."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf

from pose2id_demo.cleansing import (
    ledoit_wolf_shrinkage,
    mahalanobis_distances,
    mahalanobis_filter,
    removed_per_identity,
)


@pytest.fixture
def rng():
    seed = np.random.SeedSequence().entropy
    print(f"seed={seed}")
    return np.random.default_rng(seed)


def bf_dist(x: np.ndarray, cov: np.ndarray, pinv: bool = False) -> np.ndarray:
    xc = x - x.mean(0)
    inv = np.linalg.pinv(cov) if pinv else np.linalg.inv(cov)
    return np.sqrt(np.maximum(np.array([v @ inv @ v for v in xc]), 0))


@pytest.mark.parametrize("n,d", [(40, 5), (6, 20), (20, 20), (21, 20), (3, 50)])
def test_ledoit_wolf_distances_match_sklearn(rng, n, d):
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3
    cov = ledoit_wolf(x)[0]
    got = mahalanobis_distances(x, np.zeros(n), covariance="ledoit_wolf")
    np.testing.assert_allclose(got, bf_dist(x, cov), rtol=1e-6, atol=1e-9)
    xc = x - x.mean(0)
    s, _ = ledoit_wolf_shrinkage(xc @ xc.T, d)
    assert s == pytest.approx(ledoit_wolf(x)[1], abs=1e-10)


def test_empirical_is_eq29_when_n_exceeds_d(rng):
    x = rng.standard_normal((60, 4)) * [1, 2, 3, 4]
    cov = np.cov(x.T, bias=True)  # eq. 29: 1/n
    np.testing.assert_allclose(mahalanobis_distances(x, np.ones(60)), bf_dist(x, cov), rtol=1e-9)
    np.testing.assert_allclose(mahalanobis_distances(x, np.ones(60), "empirical"), bf_dist(x, cov), rtol=1e-9)


def test_pseudo_inverse_degenerates_when_n_le_d(rng):
    x = rng.standard_normal((7, 30))
    got = mahalanobis_distances(x, np.zeros(7), covariance="empirical")
    np.testing.assert_allclose(got, bf_dist(x, np.cov(x.T, bias=True), pinv=True), rtol=1e-6)
    np.testing.assert_allclose(got, np.sqrt(6), rtol=1e-6)  # every sample sqrt(n - 1): why we shrink
    auto = mahalanobis_distances(x, np.zeros(7))
    assert auto.std() > 1e-3  # Ledoit-Wolf still separates samples


def test_distances_are_per_identity(rng):
    pids = rng.permutation(np.repeat([3, 11, 7], [10, 25, 4]))
    x = rng.standard_normal((39, 8)) + pids[:, None]
    got = mahalanobis_distances(x, pids)
    for p in (3, 11, 7):
        sel = pids == p
        cov = ledoit_wolf(x[sel])[0] if sel.sum() <= 8 else np.cov(x[sel].T, bias=True)
        np.testing.assert_allclose(got[sel], bf_dist(x[sel], cov), rtol=1e-6)


def test_filter_keeps_the_quantile_band_and_drops_an_outlier(rng):
    pids = np.repeat([0, 1], 200)
    x = rng.standard_normal((400, 3))
    x[5] = [12.0, -12.0, 12.0]  # an obvious outlier of identity 0
    keep, dist = mahalanobis_filter(x, pids, quantile=0.01, band="per_identity")
    assert not keep[5]
    for p in (0, 1):
        d = dist[pids == p]
        lo, hi = np.quantile(d, [0.01, 0.99])
        np.testing.assert_array_equal(keep[pids == p], (d >= lo) & (d <= hi))
    # quantile and 1 - quantile name the same band
    np.testing.assert_array_equal(mahalanobis_filter(x, pids, 0.9).keep, mahalanobis_filter(x, pids, 0.1).keep)
    assert mahalanobis_filter(x, pids, 0.0).keep.all()


def test_filter_edge_cases():
    # single sample, identical samples, two samples: nothing can be an outlier
    x = np.array([[1.0, 2.0], [5.0, 5.0], [5.0, 5.0], [0.0, 1.0], [3.0, 1.0]])
    pids = np.array([0, 1, 1, 2, 2])
    keep, dist = mahalanobis_filter(x, pids, quantile=0.9)
    assert keep.all()
    assert dist[0] == 0 and dist[1] == dist[2] == 0 and dist[3] == pytest.approx(dist[4])
    with pytest.raises(ValueError):
        mahalanobis_filter(x, pids[:3])
    with pytest.raises(ValueError):
        mahalanobis_filter(x, pids, quantile=1.5)


def brute_force_band(dist: np.ndarray, pids: np.ndarray, p: float, band: str) -> np.ndarray:
    """Eq. 31 written out: sort the reference distances, interpolate the quantiles by hand, compare."""

    def quantile(v: np.ndarray, q: float) -> float:  # numpy's default (linear) method, by hand
        v = np.sort(v)
        pos = q * (len(v) - 1)
        i = int(np.floor(pos))
        return float(v[i] + (pos - i) * (v[min(i + 1, len(v) - 1)] - v[i]))

    keep = np.zeros(len(dist), bool)
    if band == "pooled":  # each identity's distances over their median, then one upper threshold for all
        scaled = np.array([dist[k] / np.median(dist[pids == pids[k]]) if (pids == pids[k]).sum() >= 3 else 1.0
                           for k in range(len(dist))])
        hi = quantile(scaled, 1 - p)
        return scaled <= hi
    for k in range(len(dist)):
        ref = dist[pids == pids[k]]
        keep[k] = quantile(ref, p) <= dist[k] <= quantile(ref, 1 - p)
    return keep


@pytest.mark.parametrize("n_per_id,d", [(12, 16), (30, 4)])
def test_pooled_and_per_identity_bands_against_brute_force(rng, n_per_id, d):
    n_ids = 20
    pids = rng.permutation(np.repeat(np.arange(1, n_ids + 1), n_per_id))
    x = rng.standard_normal((len(pids), d)) + 3 * pids[:, None]
    x[7] += 25.0  # one real outlier
    for band in ("pooled", "per_identity"):
        keep, dist = mahalanobis_filter(x, pids, quantile=0.005, band=band)
        np.testing.assert_array_equal(keep, brute_force_band(dist, pids, 0.005, band))
        removed = removed_per_identity(keep, pids)
        assert removed == {int(p): int((~keep[pids == p]).sum()) for p in np.unique(pids)}
        assert sum(removed.values()) == int((~keep).sum())
    keep, dist = mahalanobis_filter(x, pids, quantile=0.005)  # the default is pooled
    assert not keep[7] and dist[7] == dist[pids == pids[7]].max()
    assert (~keep).sum() <= 1 + int(np.ceil(0.005 * len(pids)))  # the pooled upper tail, not 2 per identity
    assert keep[np.argmin(dist)]  # the most central sample is never an outlier


def test_literal_reading_drops_min_and_max_of_every_small_identity(rng):
    """With 12 samples and p = 0.005 numpy's quantiles fall strictly inside (min, 2nd) and (11th, max)."""
    pids = np.repeat(np.arange(1, 31), 12)
    x = rng.standard_normal((len(pids), 8))
    keep, dist = mahalanobis_filter(x, pids, quantile=0.005, band="per_identity")
    assert set(removed_per_identity(keep, pids).values()) == {2}
    for p in range(1, 31):
        d = dist[pids == p]
        np.testing.assert_array_equal(~keep[pids == p], (d == d.min()) | (d == d.max()))
    pooled = mahalanobis_filter(x, pids, quantile=0.005).keep
    assert (~pooled).sum() == 2  # 0.5 % of 360 in the upper tail, rounded by the interpolation


def test_pooled_band_ignores_each_identitys_distance_scale(rng):
    """Identities whose distances differ only in scale lose nothing to the pooled band; a far sample does."""
    pids = np.repeat(np.arange(1, 41), 12)
    base = rng.standard_normal((len(pids), 6))
    x = base * (1 + (pids[:, None] % 5))  # five distance scales
    x[100] = (1 + pids[100] % 5) * 12 / np.sqrt(6)  # 12 of its identity's σ from the centre
    keep, dist = mahalanobis_filter(x, pids, quantile=0.001, covariance="ledoit_wolf")
    assert not keep[100] and (~keep).sum() == 1
    with pytest.raises(ValueError):
        mahalanobis_filter(x, pids, band="everywhere")
