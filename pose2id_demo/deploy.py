"""Publish the demo as a Hugging Face Space: exactly the files the app needs, uploaded over the Hub's HTTP API.

    python -m pose2id_demo.deploy --repo OWNER/NAME --dry-run                # the file list and its size
    python -m pose2id_demo.deploy --repo OWNER/NAME                          # CPU Space, embedded models
    python -m pose2id_demo.deploy --repo OWNER/NAME --hardware t4-small --official      # GPU, official weights
    python -m pose2id_demo.deploy --repo OWNER/NAME --hardware zero-a10g --official     # ZeroGPU

A ``git push`` to a Space is refused for binary files not stored through LFS/Xet (our safetensors, npz, png,
jpg). ``HfApi.upload_folder`` stores them the right way by itself, so the Space is published with it, and
what it uploads is decided here, in one place (:func:`upload_plan`): the files git tracks, kept by
:data:`ALLOW` and dropped by :data:`IGNORE` — the app, the package, the shipped assets and examples, the
README (the Space's card: its front matter configures the Space) and its screenshots, the measured speed the
About tab shows; no ``training/`` runs, no ``tests/`` (nor their data), no ``bench/`` scripts. The same list is
what ``--dry-run`` prints and what the test checks, offline.

``--official`` sets the Space variable ``POSE2ID_IPG_WEIGHTS=hub``: ``app.py`` then serves the official
generator, fetched from ``yuanc3/Pose2ID`` into the Space's Hub cache at its first start (with progress in the
log and in the app). ``--hardware`` asks for the hardware (``cpu-basic``, ``t4-small``, ``a10g-small``,
``zero-a10g`` …; a paid one needs a payment method on the account). A token comes from ``hf auth login`` or
``HF_TOKEN``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects

from pose2id_demo.paths import REPO_ROOT

#: What the Space needs (fnmatch patterns over paths relative to the repository root, as the Hub matches them).
ALLOW = ["app.py", "README.md", "requirements.txt", "LICENSE", "pose2id_demo/*.py", "pose2id_demo/**/*.py",
         "pose2id_demo/ui/examples/*", "assets/**", "docs/screenshot*.png", "docs/speed.json"]
#: Never uploaded, even where ALLOW would take it.
IGNORE = ["training/**", "tests/**", "bench/**", ".ci/**", "runs/**", "**/__pycache__/**", "*.pyc", "**/.DS_Store"]
#: The Space variable that makes ``app.py`` serve the official weights (``--ipg-weights`` reads it).
OFFICIAL_VARIABLE = ("POSE2ID_IPG_WEIGHTS", "hub")


def tracked_files(root: Path) -> list[str]:
    """Paths git tracks under ``root`` (so that caches and local leftovers never go up); every file when ``root``
    is not a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        return sorted(p for p in out.stdout.decode().split("\0") if p)
    except (OSError, subprocess.CalledProcessError):
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)


def upload_plan(root: Path = REPO_ROOT) -> list[tuple[str, int]]:
    """``(path, bytes)`` of every file the Space gets, in path order (:data:`ALLOW` minus :data:`IGNORE`)."""
    keep = filter_repo_objects(tracked_files(root), allow_patterns=ALLOW, ignore_patterns=IGNORE)
    return [(p, (root / p).stat().st_size) for p in keep if (root / p).is_file()]


def publish(repo: str, root: Path = REPO_ROOT, hardware: str | None = None, official: bool = False,
            private: bool = False) -> str:
    """Create the Space if needed, upload :func:`upload_plan`'s files in one commit, set the variable and the
    hardware; returns the Space's URL."""
    api = HfApi()
    url = api.create_repo(repo, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
    files = [p for p, _ in upload_plan(root)]
    api.upload_folder(repo_id=repo, repo_type="space", folder_path=root, allow_patterns=files,
                      commit_message="Publish the Pose2ID demo")
    if official:
        api.add_space_variable(repo, *OFFICIAL_VARIABLE, description="app.py --ipg-weights: the official generator")
    if hardware:
        api.request_space_hardware(repo, hardware)
    return str(url)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Publish the Pose2ID demo as a Hugging Face Space")
    ap.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the Space")
    ap.add_argument("--hardware", default=None, help="e.g. cpu-basic, t4-small, a10g-small, zero-a10g")
    ap.add_argument("--official", action="store_true", help=f"set {'='.join(OFFICIAL_VARIABLE)}: serve the official "
                                                             "weights from the Hub")
    ap.add_argument("--private", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print what would be uploaded, upload nothing")
    args = ap.parse_args(argv)
    plan = upload_plan()
    for path, size in plan:
        print(f"{size:>12,}  {path}")
    print(f"{len(plan)} files, {sum(s for _, s in plan) / 1e6:.1f} MB")
    if args.dry_run:
        return 0
    print(f"published {publish(args.repo, hardware=args.hardware, official=args.official, private=args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
