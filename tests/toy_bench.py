"""A toy benchmark for engine tests: clustered random features with generated ones (:func:`toy_data`), and an
engine that serves it as the task ``standard`` of the backbone ``toy`` (:func:`toy_engine`; the ``eng`` fixture
of conftest.py)."""

from __future__ import annotations

import numpy as np

from pose2id_demo.engine import BenchData, Engine


def l2n(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def toy_data(seed: int = 0, n_ids: int = 30, nq: int = 2, ng: int = 6, d: int = 32, m: int = 8,
             noise: float = 0.9) -> BenchData:
    """Identities = random centres; images = centre + noise; generated = centre + smaller noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, d))
    q_pids, g_pids = np.repeat(np.arange(1, n_ids + 1), nq), np.repeat(np.arange(1, n_ids + 1), ng)  # Market: ids > 0
    q_cam = rng.integers(0, 3, len(q_pids))
    g_cam = rng.integers(0, 3, len(g_pids))
    q = centres[q_pids - 1] + noise * rng.normal(size=(len(q_pids), d))
    g = centres[g_pids - 1] + noise * rng.normal(size=(len(g_pids), d))
    q_gen = centres[q_pids - 1][:, None] + 0.7 * noise * rng.normal(size=(len(q_pids), m, d))
    g_gen = centres[g_pids - 1][:, None] + 0.7 * noise * rng.normal(size=(len(g_pids), m, d))
    return BenchData(q=l2n(q), g=l2n(g), q_pids=q_pids, g_pids=g_pids, q_camids=q_cam, g_camids=g_cam,
                     q_paths=[f"q{i}.jpg" for i in range(len(q))], g_paths=[f"g{i}.jpg" for i in range(len(g))],
                     q_gen=q_gen.astype(np.float32), g_gen=g_gen.astype(np.float32))


def toy_engine(data: BenchData | None = None) -> Engine:
    """A fresh CPU engine whose only backbone is ``toy`` and whose ``standard`` features are ``data`` (default
    :func:`toy_data`)."""
    e = Engine(device="cpu")
    e.backbones = lambda: ["toy"]  # type: ignore[method-assign]
    e._store[("bench", "standard", "toy")] = toy_data() if data is None else data
    return e
