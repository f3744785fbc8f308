"""Copy a few SynthPed benchmark query images into ``pose2id_demo/ui/examples/`` for the Generate tab.

The first example is the benchmark's *typical* query at the default settings — the rule of
:func:`pose2id_demo.ablation.typical_query` (the query whose AP change is closest to the mean change), the
same rule that picks the query the Benchmark tab starts on — so that a newcomer's first click shows the
method's usual effect, neither its best case nor a total failure. The others are the first queries of
distinct identities. Files are named ``<k>-<benchmark file name>`` so that they sort in that order; the
copies are byte-identical, so the engine recognises them (by pixel content) as benchmark queries and shows
their ranked lists. Re-run after the SynthPed renderer or the shipped features change::

    python -m pose2id_demo.ui.make_examples [--n 8]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pose2id_demo.engine import get_engine

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def pick(n: int, task: str = "standard", backbone: str = "synthped-reid") -> list[tuple[str, str]]:
    """``n`` (path, why) pairs: the typical query first, then queries of other identities."""
    eng = get_engine()
    pq = eng.bench.per_query(task=task, backbone=backbone)
    data = eng.bench.bench_data(task, backbone)
    out: list[tuple[str, str]] = []
    seen: set[int] = set()
    if pq["typical"] is not None:
        t = int(pq["typical"])
        r = pq["rows"][t]
        out.append((data.q_paths[t], f"typical query #{t} (ΔAP {r['ΔAP']:+.2f}, mean {pq['mean_delta_ap']:+.2f}, "
                                     f"first correct rank {r['rank before']} → {r['rank after']}, "
                                     f"{pq['after_setting']})"))
        seen.add(int(data.q_pids[t]))
    for i, (path, pid) in enumerate(zip(data.q_paths, data.q_pids)):
        if len(out) >= n:
            break
        if int(pid) not in seen:
            seen.add(int(pid))
            out.append((path, f"query #{i} (id {int(pid)})"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args(argv)
    EXAMPLES_DIR.mkdir(exist_ok=True)
    for old in EXAMPLES_DIR.glob("*.jpg"):
        old.unlink()
    for k, (path, why) in enumerate(pick(args.n), 1):
        dst = EXAMPLES_DIR / f"{k}-{Path(path).name}"
        shutil.copyfile(path, dst)
        print(f"{dst.name}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
