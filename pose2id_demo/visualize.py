"""2-D pictures of feature spaces: the t-SNE embedding behind Fig. 4 (identities before/after centralization)."""

from __future__ import annotations

import numpy as np

from pose2id_demo import lazy

__all__ = ["tsne_2d"]


def tsne_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE embedding of ``x`` (n, d): PCA to ≤ 50 dims, perplexity clamped below n, fixed seed.

    Returns:
        (n, 2) float32; zeros for fewer than 3 points (t-SNE needs perplexity < n).
    """
    PCA, TSNE = lazy.load("sklearn.decomposition").PCA, lazy.load("sklearn.manifold").TSNE
    x = np.asarray(x, np.float32)
    n = len(x)
    if n < 3:
        return np.zeros((n, 2), np.float32)
    if x.shape[1] > 50 and n > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    perplexity = min(perplexity, n - 1.0 - 1e-3)
    # Exact gradients are faster than Barnes-Hut for the few hundred points shown here.
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=500,
               method="exact" if n <= 400 else "barnes_hut", random_state=seed).fit_transform(x)
    return emb.astype(np.float32)
