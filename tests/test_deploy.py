"""What ``python -m pose2id_demo.deploy`` would upload to a Space, computed offline: the app's files only."""

from __future__ import annotations

import subprocess
import sys

from pose2id_demo.deploy import tracked_files, upload_plan
from pose2id_demo.paths import REPO_ROOT


def test_the_space_gets_the_app_and_its_assets_and_nothing_else():
    plan = dict(upload_plan())
    tracked = tracked_files(REPO_ROOT)
    assert not [p for p in plan if p.split("/")[0] in ("training", "tests", "bench", ".ci") or p.endswith(".pyc")]
    needed = {"app.py", "requirements.txt", "README.md", "docs/speed.json", "docs/screenshot.png"}
    needed |= {p for p in tracked if p.startswith("assets/")}                  # models, features, poses
    needed |= {p for p in tracked if p.startswith("pose2id_demo/") and (p.endswith(".py") or "/examples/" in p)}
    assert needed <= set(plan), sorted(needed - set(plan))[:5]
    assert set(plan) <= set(tracked)                                           # no caches or local leftovers
    assert all(size == (REPO_ROOT / p).stat().st_size for p, size in plan.items())
    total = sum(plan.values())
    assert 50e6 < total < 150e6, total                                         # the shipped assets are ~70 MB


def test_patterns_on_a_folder_without_git(tmp_path):
    for rel in ("app.py", "README.md", "pose2id_demo/x.py", "pose2id_demo/ui/examples/1.jpg",
                "pose2id_demo/__pycache__/x.cpython-311.pyc", "assets/models/m.safetensors",
                "training/run/w.safetensors",
                "tests/data/f.npz", "bench/b.py", "docs/ipg_grid.png", "docs/screenshot.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * 10)
    assert [p for p, _ in upload_plan(tmp_path)] == [
        "README.md", "app.py", "assets/models/m.safetensors", "docs/screenshot.png", "pose2id_demo/ui/examples/1.jpg",
        "pose2id_demo/x.py"]


def test_dry_run_prints_the_list_and_total():
    r = subprocess.run([sys.executable, "-m", "pose2id_demo.deploy", "--repo", "someone/pose2id", "--dry-run"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    plan = upload_plan()
    assert r.stdout.splitlines()[-1] == f"{len(plan)} files, {sum(s for _, s in plan) / 1e6:.1f} MB"
