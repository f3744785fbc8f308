"""Copy a few SynthPed benchmark query images into ``pose2id_demo/ui/examples/`` for the Generate tab.

The first example is the *headline*: the query whose top-10 improves most with its own generations, picked by
measuring what the Generate tab shows (:func:`headline`): every query's top-10 before and after eq. 9 with the
shipped generated features (query side, η the default, as the tab ranks), then the best few generated afresh
with the tab's defaults (20 steps, CFG 3.5, seed 42) — the example that is first and in the README screenshot
shows the method working, and the numbers printed say by how much. The second is the benchmark's *typical*
query at the default settings — the rule of :func:`pose2id_demo.ablation.typical_query` (the query whose AP
change is closest to the mean change), the same rule that picks the query the Benchmark tab starts on — so
that the method's usual effect is one click away too, neither its best case nor a total failure. The others
are the first queries of distinct identities. Files are named ``<k>-<benchmark file name>`` so that they sort
in that order; the copies are byte-identical, so the engine recognises them (by pixel content) as benchmark
queries and shows their ranked lists. Re-run after the SynthPed renderer, the generator or the shipped
features change::

    python -m pose2id_demo.ui.make_examples [--n 8] [--candidates 6]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pose2id_demo.engine import get_engine

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


def _gain(ranks: dict) -> tuple[int, int]:
    before, after = (sum(r["match"] for r in ranks[w]) for w in ("before", "after"))
    return after - before, after


def headline(candidates: int = 6, task: str = "standard", backbone: str = "synthped-reid") -> tuple[int, str]:
    """The query whose top-10 gains most correct matches in the Generate tab (then: most correct after; then
    the lowest index), and a line saying what was measured.

    Every query is first ranked with its shipped generated features (eq. 9 on the query, the default η:
    :meth:`pose2id_demo.engine.Engine.ranks_with_generations`, the tab's own ranking); the ``candidates`` best
    are then generated afresh as the tab does (IFR on, 20 steps, CFG 3.5, seed 42) and ranked with those
    images, which decide."""
    eng = get_engine()
    data = eng.features.bench_data(task, backbone)
    if data.q_gen is None:
        raise SystemExit(f"no shipped generated features for {task}/{backbone}: cannot measure the headline")
    shipped = {i: _gain(eng.ranks_with_generations(i, data.q_gen[i], backbone=backbone, task=task))
               for i in range(len(data.q))}
    short = sorted(shipped, key=lambda i: (-shipped[i][0], -shipped[i][1], i))[:candidates]
    fresh = {}
    for i in short:
        res = eng.generate(data.q_paths[i], use_ifr="on", steps=20, cfg=3.5, seed=42, backbone=backbone)
        if res["query_index"] == i:  # (an identical image earlier in the list would be recognised instead)
            fresh[i] = _gain(res["ranks"])
        made = f"+{fresh[i][0]} ({fresh[i][1]} after)" if i in fresh else "not recognised"
        print(f"query #{i}: top-10 correct +{shipped[i][0]} with the shipped generations, {made} generated afresh",
              flush=True)
    best = max(fresh, key=lambda i: (fresh[i][0], fresh[i][1], -i))
    return best, (f"headline query #{best}: top-10 correct {fresh[best][1] - fresh[best][0]} → {fresh[best][1]} "
                  f"with its own generations (the best of {len(fresh)} generated afresh, shortlisted from "
                  f"{len(shipped)} queries ranked with the shipped generations)")


def pick(n: int, task: str = "standard", backbone: str = "synthped-reid", candidates: int = 6
         ) -> list[tuple[str, str]]:
    """``n`` (path, why) pairs: the headline query first, the typical query, then queries of other identities."""
    eng = get_engine()
    pq = eng.bench.per_query(task=task, backbone=backbone)
    data = eng.features.bench_data(task, backbone)
    out: list[tuple[str, str]] = []
    seen: set[int] = set()
    h, why = headline(candidates, task, backbone)
    out.append((data.q_paths[h], why))
    seen.add(int(data.q_pids[h]))
    if pq["typical"] is not None and int(pq["typical"]) != h:
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
    ap.add_argument("--candidates", type=int, default=6, help="queries generated afresh for the headline")
    args = ap.parse_args(argv)
    EXAMPLES_DIR.mkdir(exist_ok=True)
    for old in EXAMPLES_DIR.glob("*.jpg"):
        old.unlink()
    for k, (path, why) in enumerate(pick(args.n, candidates=args.candidates), 1):
        dst = EXAMPLES_DIR / f"{k}-{Path(path).name}"
        shutil.copyfile(path, dst)
        print(f"{dst.name}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
