"""Pose-transfer quality measures for IPG generations: fidelity (SSIM, PSNR) and pose adherence.

Pure numpy, numpy in / numpy out; :mod:`bench.ipg_quality` applies them to the generator.

- :func:`ssim` — the structural similarity of Wang et al. (2004), eq. 13 of that paper, with the usual
  Gaussian window (σ = 1.5, truncated at 3.5 σ, i.e. 11 × 11), ``K1 = 0.01``, ``K2 = 0.03``, population
  (not sample) statistics, the image borders reflected for the filtering and then cropped by the window
  radius before averaging — the conventions of ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. Colour images: the mean over channels.
  The filtering is separable (a 1-D window along rows, then columns); the tests compare it with a
  direct per-pixel loop and with scikit-image.
- :func:`psnr` — ``10 log10(L² / MSE)``.
- :func:`pose_scores` — PCK@α (of the person height) and direction agreement of keypoint estimates
  against reference poses, summed over a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pose2id_demo.poses.keypoint_net import pck

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
K1, K2 = 0.01, 0.03


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian taps of radius ``int(truncate · sigma + 0.5)``."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _reflect_pad(x: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Half-sample symmetric padding (``d c b a | a b c d | d c b a``) of ``r`` along ``axis``."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    return np.pad(x, pad, mode="symmetric")


def _filter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation of the leading two axes of ``x`` (H, W, ...) with ``w``, borders reflected."""
    r = len(w) // 2
    y = _reflect_pad(x, r, 0)
    y = sum(w[k] * y[k:k + x.shape[0]] for k in range(len(w)))
    y = _reflect_pad(y, r, 1)
    return sum(w[k] * y[:, k:k + x.shape[1]] for k in range(len(w)))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two images ``(H, W)`` or ``(H, W, C)`` (channels averaged); see the module docstring."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    w = gaussian_window()
    r = len(w) // 2
    if a.shape[0] <= 2 * r or a.shape[1] <= 2 * r:
        raise ValueError(f"images of {a.shape[:2]} are too small for an {len(w)}×{len(w)} SSIM window")
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_a, mu_b = _filter(a, w), _filter(b, w)
    va = _filter(a * a, w) - mu_a ** 2
    vb = _filter(b * b, w) - mu_b ** 2
    cov = _filter(a * b, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(s[r:-r, r:-r].mean())


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (infinite for identical images)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def pose_scores(pred_xy: np.ndarray, pred_dirs: Sequence[int], ref_kps: Sequence[np.ndarray],
                ref_dirs: Sequence[int], ref_size: tuple[int, int], alpha: float = 0.1) -> dict:
    """PCK@``alpha`` and direction agreement of N estimates against N reference poses.

    Args:
        pred_xy: predicted keypoints ``(N, 18, 2)`` in [0, 1] image units.
        pred_dirs: predicted direction indices (N,).
        ref_kps: reference keypoints, N arrays ``(18, 3)`` in pixels of a ``ref_size`` = (W, H) image.
        ref_dirs: reference direction indices (N,); −1 = unknown (left out of the direction score).
    Returns:
        ``{"pck": correct / visible keypoints, "direction": share of equal directions, "n": N}``.
    """
    ok = tot = 0
    for p, r in zip(pred_xy, ref_kps):
        a, b = pck(p, r, ref_size, alpha)
        ok, tot = ok + a, tot + b
    pd, rd = np.asarray(pred_dirs), np.asarray(ref_dirs)
    known = rd >= 0
    direction = float(np.mean(pd[known] == rd[known])) if known.any() else float("nan")
    return {"pck": ok / max(tot, 1), "direction": direction, "n": int(len(pred_xy))}
