"""One number per file: the same feature file gives the same cells with 1 and 2 BLAS / OpenMP threads, through
the library (run_eval), the CLI (the printed table) and the app's engine (the Your-features tab: table, k1 x k2
grid, η and M curves), and the surfaces agree with each other.

The file has what makes float32 rankings thread-dependent: exact distance ties between gallery images of
different identities (100 gallery rows repeated under other labels; NFC makes such ties too, z_i + z_j for
two mutual neighbours).  With the earlier float32 distances, 6 of its 16 library rows differed between 1 and 2
threads (OpenBLAS 0.3.23); the exact dot products of pose2id_demo.metrics.distance_matrix remove that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pose2id_demo import ablation

REPO = Path(__file__).resolve().parent.parent


def write_tied_file(path: Path, seed: int = 0, n_ids: int = 60, nq: int = 240, ng: int = 1500, d: int = 128,
                    m: int = 4) -> Path:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_ids, d))
    qp = np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, nq - n_ids)])
    gp = np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, ng - n_ids)])
    q = c[qp] + 1.2 * rng.standard_normal((nq, d))
    g = c[gp] + 1.2 * rng.standard_normal((ng, d))
    g[-100:] = g[:100]  # the same features under other identities: exact ties
    np.savez(path, q_feats=q.astype(np.float32), g_feats=g.astype(np.float32), q_pids=qp + 1, g_pids=gp + 1,
             q_camids=rng.integers(0, 6, nq), g_camids=rng.integers(0, 6, ng),
             q_gen=(c[qp][:, None] + 1.5 * rng.standard_normal((nq, m, d))).astype(np.float32),
             g_gen=(c[gp][:, None] + 1.5 * rng.standard_normal((ng, m, d))).astype(np.float32))
    return path


def run_probe(path: Path, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run([sys.executable, str(REPO / "tests" / "determinism_probe.py"), str(path)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_cell_is_the_same_with_1_and_2_threads_on_every_surface(tmp_path):
    path = write_tied_file(tmp_path / "tied.npz")
    one, two = run_probe(path, 1), run_probe(path, 2)
    assert set(one.pop("threads")) == {1} and set(two.pop("threads")) == {2}  # the environment took effect
    assert one.keys() == two.keys()
    for key in one:
        assert one[key] == two[key], key  # every cell, exactly
    # the surfaces agree: the CLI prints the library's rows, the app shows them in percent
    lib = {r["setting"]: r for r in one["library separate"]}
    printed = {ln[:16].strip(): ln[16:].split() for ln in one["cli"].splitlines() if ln[:16].strip() in lib}
    assert set(printed) == set(lib)
    for name, cells in printed.items():
        want = [f"{100 * lib[name][k]:.2f}" for k in ("mAP", "Rank-1", "Rank-5", "Rank-10", "mINP")]
        assert cells[:5] == want, name
    app = {r["setting"]: r for r in one["app"]["rows"]}
    assert list(app) == list(ablation.ROW_NAMES)
    for name in ablation.ROW_NAMES:
        assert app[name] == ablation.percent_row({**lib[name], "ID²": lib[name]["ID2"]}), name
    # the ranked lists score as the rows: the mean of their APs is the +NFC+IPG row's mAP
    aps = [ap for _, ap, _ in one["ranked lists"] if ap is not None]
    assert np.mean(aps) == pytest.approx(100 * lib["+NFC+IPG"]["mAP"], abs=1e-9)
