"""Copy a few SynthPed benchmark query images into ``pose2id_demo/ui/examples/`` for the Generate tab.

The copies are byte-identical, so the engine recognises them (by pixel content) as benchmark queries and
shows their ranked lists. Re-run after the SynthPed renderer changes::

    python -m pose2id_demo.ui.make_examples [--n 8]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pose2id_demo.engine import get_engine

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args(argv)
    EXAMPLES_DIR.mkdir(exist_ok=True)
    for old in EXAMPLES_DIR.glob("*.jpg"):
        old.unlink()
    for path in get_engine().benchmark_examples(args.n):
        shutil.copyfile(path, EXAMPLES_DIR / Path(path).name)
        print(EXAMPLES_DIR / Path(path).name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
