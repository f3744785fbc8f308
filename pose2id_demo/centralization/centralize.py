"""Feature centralization with generated samples — Pose2ID eq. 9, plus the row normalisation everything uses.

Eq. 9 of the paper::

    f~ = ||f|| + (eta / M) * sum_{i=1..M} f_i

where ``||f||`` denotes the L2-*normalised* original feature f / ||f||_2 and f_1..f_M are the features of
the M images generated from f's image in M poses (IPG, Sec. 3.2).  We return f~ L2-normalised, which is what
every distance downstream uses.

The official README instead writes ``normalize(f + eta * sum_poses f_pose)`` (a sum over the poses, the
original feature not normalised first).  For a unit-length f the two agree when ``eta_README * M ==
eta_paper``; :func:`centralize` implements the paper's form.
"""

from __future__ import annotations

import numpy as np

__all__ = ["centralize", "l2_normalize"]

_EPS = 1e-12


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Divide ``x`` by its L2 norm along ``axis`` (float32 out; all-zero rows stay zero).

    Args:
        x: array of features, e.g. shape (N, d).
        axis: the axis holding the feature dimension.

    Returns:
        float32 array of the same shape whose non-zero rows have unit L2 norm.
    """
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, _EPS)


def centralize(feats: np.ndarray, gen_feats: np.ndarray, eta: float) -> np.ndarray:
    """Centralize features with the features of their generated images (paper eq. 9).

    ``out_n = normalize( f_n / ||f_n|| + eta * mean_m gen_feats[n, m] )``.

    The generated features are averaged as given (not normalised first), exactly as in eq. 9; pass
    normalised generated features if your backbone's feature norms vary a lot.

    Args:
        feats: original features f, shape (N, d).
        gen_feats: features of the generated images, shape (N, M, d).  ``M == 0`` is allowed and returns
            the normalised input (nothing to centralize with).
        eta: the quality coefficient eta of eq. 9 (the paper's best on Market-1501 is 2, Fig. 8); 0
            returns the normalised input.

    Returns:
        (N, d) float32, rows L2-normalised.

    Raises:
        ValueError: on mismatched shapes or non-finite eta.
    """
    feats = np.asarray(feats)
    gen_feats = np.asarray(gen_feats)
    if feats.ndim != 2:
        raise ValueError(f"feats must be (N, d), got shape {feats.shape}")
    if gen_feats.ndim != 3 or gen_feats.shape[0] != feats.shape[0] or gen_feats.shape[2] != feats.shape[1]:
        raise ValueError(
            f"gen_feats must be (N, M, d) = ({feats.shape[0]}, M, {feats.shape[1]}), got {gen_feats.shape}"
        )
    if not np.isfinite(eta):
        raise ValueError(f"eta must be finite, got {eta}")
    base = l2_normalize(feats)
    if gen_feats.shape[1] == 0 or eta == 0:
        return base
    mean_gen = gen_feats.astype(np.float32, copy=False).mean(axis=1, dtype=np.float64).astype(np.float32)
    return l2_normalize(base + np.float32(eta) * mean_gen)
