"""``accelerate launch -m pose2id_demo generate`` with two CPU processes (gloo) splits the references, and the one
file it writes is byte for byte the file of a single-process run; the shipped tiny generator, real generations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

from pose2id_demo.data import load_market
from pose2id_demo.ipg.precompute import split_batches

REPO = Path(__file__).resolve().parent.parent


def test_split_batches_deals_whole_batches():
    items = [str(i) for i in range(11)]
    parts = [split_batches(items, k, 3, 2) for k in range(3)]
    assert parts == [["0", "1", "6", "7"], ["2", "3", "8", "9"], ["4", "5", "10"]]
    assert sorted(sum(parts, []), key=int) == items


@pytest.mark.slow
def test_two_processes_write_the_same_bytes_as_one(market, tmp_path):
    root = market
    ds = load_market(root)
    n_refs = len(ds.query) + len(ds.gallery)
    args = ["-m", "pose2id_demo", "generate", "--data", str(root), "--ipg", "tiny", "--backbone", "synthped-reid",
            "--steps", "2", "--refs-per-batch", "4", "--threads", "1"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

    single = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one.npz")], cwd=REPO, capture_output=True,
                            text=True, timeout=1800, env={**env, "POSE2ID_CACHE": str(tmp_path / "cache-one")})
    assert single.returncode == 0, single.stderr[-2000:]

    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    multi = subprocess.run([*launch, *args, "--out", str(tmp_path / "two.npz")], cwd=REPO, capture_output=True,
                           text=True, timeout=1800, env={**env, "POSE2ID_CACHE": str(tmp_path / "cache-two")})
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stdout.count("wrote ") == 1  # only the first process writes

    parts = sorted((tmp_path / "cache-two" / "ipg").glob("*-shard*of2.npz"))
    assert [p.name.rsplit("-", 1)[1] for p in parts] == ["shard0of2.npz", "shard1of2.npz"]
    seen = [set(np.load(p)["paths"].tolist()) for p in parts]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == n_refs  # split, nothing done twice
    assert abs(len(seen[0]) - len(seen[1])) <= 4  # whole batches of 4
    assert (tmp_path / "two.npz").read_bytes() == (tmp_path / "one.npz").read_bytes()
    with np.load(tmp_path / "two.npz") as z:
        assert z["q_gen"].shape == (len(ds.query), 8, 256) and z["g_gen"].shape == (len(ds.gallery), 8, 256)
        assert np.isfinite(z["q_gen"].astype(np.float32)).all() and z["q_gen"].std() > 0
