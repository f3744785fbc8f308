"""The README's install figures: wall time and disk size of a fresh virtual environment with the project's
requirements, as a newcomer's first command makes it.

    python -m bench.install_size [--venv /tmp/pose2id-venv] [--dev]

Creates ``--venv`` (which must not exist) with the running interpreter's ``venv`` module, runs
``pip install --no-cache-dir -r requirements.txt`` in it (then ``requirements-dev.txt`` with ``--dev``) and
prints, for each step, the wall time, the size of the environment (``du``-style, the bytes of its files)
and the machine's load before and after.  pip's cache is bypassed so that every wheel is fetched as on a
new machine; where pip fetches from (PyPI, a local mirror) is pip's configuration, printed too.  The
environment is left in place for inspection (delete it yourself).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_blocks * 512  # on-disk size, as du reports it
    return total


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default="/tmp/pose2id-install-venv")
    ap.add_argument("--dev", action="store_true", help="also install requirements-dev.txt (the test command's)")
    a = ap.parse_args()
    venv = Path(a.venv)
    if venv.exists():
        sys.exit(f"{venv} exists; pass another --venv")
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=False).stdout
    print(f"pip configuration: {' | '.join(config.split()) or 'none (PyPI)'}")
    print(f"{os.cpu_count()} cores; Python {sys.version.split()[0]}")
    steps = [("requirements.txt", ["requirements.txt"])] + ([("requirements-dev.txt", ["requirements-dev.txt"])]
                                                             if a.dev else [])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir", "-q"]
    for name, files in steps:
        before = load()
        t = time.perf_counter()
        subprocess.run(pip + [arg for f in files for arg in ("-r", str(REPO / f))], check=True)
        took = time.perf_counter() - t
        print(f"pip install -r {name}: {took:.0f} s wall; environment {tree_bytes(venv) / 1e9:.2f} GB; "
              f"load {before} -> {load()} (1/5/15 min)")
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, check=False).stdout.strip()
    print(f"total {time.perf_counter() - t0:.0f} s wall (venv creation included); torch {version}")


if __name__ == "__main__":
    main()
