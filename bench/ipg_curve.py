"""The generator's training curve: every milestone of a run scored on the 32-reference pose bench.

    python -m bench.ipg_curve --run training/RUN [--json docs/ipg_curve.json] [--plot docs/ipg_curve.png]

A run trained with ``--milestone-every N`` keeps the EMA pipeline of every N-th step in
``RUN/milestones/step_XXXXXX/`` with its step and CPU-minutes (``milestone.json``). Each milestone not yet
in the json is scored as :mod:`bench.ipg_quality` scores a model (references: every 8th standard test query;
targets: the 8 representative poses' source images; 20 DDIM steps, CFG 3.5, seed 42, IFR on): PCK@0.1 and
view direction against the target, the same against the reference's own pose ("copied"), identity Rank-1
with ``synthped-reid`` and ``imagenet-mobilenetv2``, SSIM against the ground truth on its own and on the
canonical background. The json is written after each milestone (so an interrupted call keeps what it
scored), and the plot draws every score against training CPU-minutes with the targets as dashed lines.
``--model NAME=DIR[@CPU_MINUTES]`` adds a finished model (e.g. the shipped one) as a reference point, drawn at
the CPU-minutes it was trained for.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from bench.ipg_quality import REPO, build_context, generate, load_line, score_generations

logger = logging.getLogger("ipg_curve")

# The generator's targets on this bench (the keypoint judge's ceiling × 0.9; the real images' copy rate;
# identity: 60 % with synthped-reid, 0.6 × the latent space's own 49.2 % with the ImageNet backbone).
TARGETS = {"pck_target": 83.6, "direction_target": 82.3, "pck_reference": 40.8,
           "synthped-reid": 60.0, "imagenet-mobilenetv2": 30.0}


def score_model(model_dir: Path, ctx, steps: int = 20) -> dict:
    """The bench's IFR-on scores of one pipeline folder, flattened for the curve."""
    from pose2id_demo.ipg.pipeline import Pose2IDPipeline

    pipe = Pose2IDPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    t0 = time.time()
    sc = score_generations(ctx, generate(pipe, ctx, True, steps))
    p, f = sc["pose"], sc["fidelity"]
    return {"pck_target": p["pck_target"], "direction_target": p["direction_target"],
            "pck_reference": p["pck_reference"], "direction_reference": p["direction_reference"],
            **sc["identity_rank1"], "ssim": f["ssim"], "ssim_canonical": f["ssim_canonical"],
            "size": f["size"], "seconds": round(time.time() - t0, 1), "load": load_line()}


def plot(curve: dict, path: Path) -> None:
    """Four panels against training CPU-minutes: pose, copied, identity, SSIM (targets dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(curve["milestones"].values(), key=lambda r: r["step"])
    x = [r["cpu_minutes"] for r in pts]
    panels = [("pose vs target (%)", ("pck_target", "direction_target")),
              ("copied the reference (%)", ("pck_reference", "direction_reference")),
              ("identity Rank-1 (%)", ("synthped-reid", "imagenet-mobilenetv2")),
              ("SSIM", ("ssim", "ssim_canonical"))]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, (title, keys) in zip(axes, panels):
        for k, color in zip(keys, ("tab:blue", "tab:orange")):
            ax.plot(x, [r[k] for r in pts], "o-", color=color, label=k, markersize=3)
            if k in TARGETS:
                ax.axhline(TARGETS[k], color=color, linestyle="--", linewidth=1)
            for ref in curve.get("references", {}).values():
                ax.plot([ref.get("cpu_minutes", x[-1] if x else 0)], [ref[k]], marker="*", color=color,
                        markersize=10, linestyle="none")
        shipped = curve["milestones"].get(curve.get("shipped", ""))
        if shipped is not None:
            ax.axvline(shipped["cpu_minutes"], color="grey", linestyle=":", linewidth=1.2)
        ax.set_title(title)
        ax.set_xlabel("training CPU-minutes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    refs = ", ".join(curve.get("references", {}))
    fig.suptitle(f"{curve['run']}: EMA milestones on the 32-reference bench (dashed: targets"
                 + (f"; stars: {refs}" if refs else "")
                 + (f"; dotted: {curve['shipped']}, shipped" if curve.get("shipped") in curve["milestones"] else "")
                 + ")", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="training run folder with milestones/")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "ipg_curve.json")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "ipg_curve.png")
    ap.add_argument("--ref-every", type=int, default=8)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR[@CPU_MINUTES]",
                    help="a reference point, drawn at its training CPU-minutes when given")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shipped", default=None, metavar="step_XXXXXX",
                    help="the milestone that ships: a dotted line in the plot (kept in the json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    import torch

    torch.set_num_threads(args.threads)
    curve = json.loads(args.json.read_text()) if args.json.exists() else {}
    if curve.get("run") not in (None, args.run.name):
        raise SystemExit(f"{args.json} holds the curve of {curve['run']}; give another --json")
    curve.update(run=args.run.name, bench=f"every {args.ref_every}th standard test query x the 8 representative "
                 "poses, 20 DDIM steps, CFG 3.5, seed 42, IFR on", targets=TARGETS)
    marks = curve.setdefault("milestones", {})
    if args.shipped is not None:
        curve["shipped"] = args.shipped
    todo = [d for d in sorted((args.run / "milestones").glob("step_*")) if d.name not in marks
            and (d / "milestone.json").exists()]
    refs = curve.setdefault("references", {})
    todo_refs = []
    for spec in args.model:
        name, folder = spec.split("=", 1)
        folder, _, cpu = folder.partition("@")
        if name not in refs:
            todo_refs.append((name, folder, cpu))
        elif cpu:
            refs[name]["cpu_minutes"] = float(cpu)
    if todo or todo_refs:
        ctx = build_context(args.ref_every, ["synthped-reid", "imagenet-mobilenetv2"])
        for d in todo:
            marks[d.name] = {**json.loads((d / "milestone.json").read_text()), **score_model(d, ctx)}
            logger.info("%s: %s", d.name, json.dumps(marks[d.name]))
            args.json.write_text(json.dumps(curve, indent=1))
        for name, folder, cpu in todo_refs:
            refs[name] = {**score_model(Path(folder), ctx), **({"cpu_minutes": float(cpu)} if cpu else {})}
            args.json.write_text(json.dumps(curve, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(curve, indent=1))
    if marks:
        plot(curve, args.plot)
        print(f"wrote {args.json} and {args.plot}")
    for name in sorted(marks):
        r = marks[name]
        print(f"{name}  {r['cpu_minutes']:7.1f} CPU-min  PCK {r['pck_target']:5.1f}  dir {r['direction_target']:5.1f}  "
              f"copied {r['pck_reference']:5.1f}  R1 {r['synthped-reid']:5.1f} / {r['imagenet-mobilenetv2']:5.1f}  "
              f"SSIM {r['ssim']:.3f} / {r['ssim_canonical']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
