"""Fidelity and pose-adherence measures of the IPG bench (pose2id_demo.ipg.quality) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from pose2id_demo.ipg.quality import K1, K2, gaussian_window, pose_scores, psnr, ssim


def ssim_loop(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM written out per pixel: a 2-D Gaussian window over half-sample-reflected borders, borders cropped."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    g = gaussian_window()
    w2 = np.outer(g, g)
    r = len(g) // 2
    h, w = a.shape[:2]

    def refl(i: int, n: int) -> int:  # d c b a | a b c d | d c b a
        while i < 0 or i >= n:
            i = -i - 1 if i < 0 else 2 * n - i - 1
        return i

    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    vals = []
    for c in range(a.shape[2]):
        for y in range(r, h - r):
            for x in range(r, w - r):
                ys = [refl(y + dy, h) for dy in range(-r, r + 1)]
                xs = [refl(x + dx, w) for dx in range(-r, r + 1)]
                pa, pb = a[np.ix_(ys, xs, [c])][..., 0], b[np.ix_(ys, xs, [c])][..., 0]
                ma, mb = (w2 * pa).sum(), (w2 * pb).sum()
                va, vb = (w2 * pa * pa).sum() - ma ** 2, (w2 * pb * pb).sum() - mb ** 2
                cov = (w2 * pa * pb).sum() - ma * mb
                vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


@pytest.mark.parametrize("shape", [(13, 12), (16, 14, 3)])
def test_ssim_matches_a_per_pixel_loop(shape):
    rng = np.random.default_rng(len(shape))
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 30, shape), 0, 255).astype(np.uint8)
    assert ssim(a, b) == pytest.approx(ssim_loop(a, b), rel=1e-9, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (64, 32, 3)).astype(np.uint8)
    b = np.clip(a * 0.7 + rng.normal(20, 25, a.shape), 0, 255).astype(np.uint8)
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255, channel_axis=-1)
    assert ssim(a, b) == pytest.approx(ref, rel=1e-9)


def test_ssim_refuses_small_or_mismatched_images():
    with pytest.raises(ValueError):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError):
        ssim(np.zeros((16, 16)), np.zeros((16, 15)))


def test_psnr():
    a = np.zeros((4, 4, 3))
    b = a.copy()
    b[0, 0, 0] = 255.0  # MSE = 255² / 48
    assert psnr(a, b) == pytest.approx(10 * np.log10(48))
    assert psnr(a, a) == float("inf")


def test_pose_scores_against_a_loop():
    rng = np.random.default_rng(3)
    n, size = 5, (64, 128)
    ref = [np.concatenate([rng.uniform(0, 1, (18, 2)) * size, (rng.random((18, 1)) > 0.2)], axis=1) for _ in range(n)]
    pred = np.stack([(r[:, :2] + 0.5 + rng.normal(0, 6, (18, 2))) / size for r in ref])
    pd, rd = rng.integers(0, 8, n), rng.integers(-1, 8, n)
    s = pose_scores(pred, pd, ref, rd, size)
    ok = tot = 0
    for p, r in zip(pred, ref):
        vis = r[:, 2] > 0
        hgt = r[vis, 1].max() - r[vis, 1].min()
        for k in np.flatnonzero(vis):
            tot += 1
            ok += np.hypot(p[k, 0] * 64 - 0.5 - r[k, 0], p[k, 1] * 128 - 0.5 - r[k, 1]) <= 0.1 * hgt
    assert s["pck"] == pytest.approx(ok / tot)
    known = rd >= 0
    assert s["direction"] == pytest.approx(np.mean(pd[known] == rd[known]))
