"""Quality of the shipped tiny IPG on SynthPed "standard" test identities (never trained on).

    python bench/ipg_quality.py [--backbone synthped-reid] [--steps 20] [--json docs/ipg_quality.json]

1. Identity consistency: every test query is the reference for the 8 representative poses; each generation,
   as a query, is ranked against the test gallery (Euclidean on L2-normalised features, no camera
   filtering — generated images have no camera). Rank-1 = its reference's identity comes first. IFR on vs
   off (Fig. 5 ablation: off = zero-image identity tokens). Also the real queries' own Rank-1 for scale,
   and IFR-on Rank-1 against the classifier-free guidance scale (``--guidance-sweep``, every 4th query).
2. The IPG effect, eq. 9 (``pose2id_demo.centralization.centralize``) on query and gallery features with
   their 8 generations, for η ∈ {0.25, 0.5, 1, 2}: mAP / Rank-1 (standard Market-1501 protocol, camera
   filtering on) and ID² (eq. 20) of the gallery, vs the baseline; and the trend with the first M = 0..8
   poses (Table 6). Generated features are L2-normalised before eq. 9 (their raw norms differ from the
   originals', see the centralize docstring); η is therefore on the scale of the unit original feature.
3. ``docs/ipg_grid.png``: 6 test references × 8 poses, IFR on (top row of each pair) and off.

Generations for the query+gallery images come from ``pose2id_demo.ipg.precompute``'s cache (same
settings), the IFR-off query generations are made here (and cached the same way).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
from PIL import ImageDraw

from pose2id_demo.centralization import centralize
from pose2id_demo.metrics import distance_matrix, evaluate, id2

REPO = Path(__file__).resolve().parent.parent
logger = logging.getLogger("ipg_quality")


def l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def consistency_rank1(gen_feats: np.ndarray, q_pids: np.ndarray, g_feats: np.ndarray, g_pids: np.ndarray) -> float:
    """Fraction of generations (nq, M, d) whose nearest gallery image has their reference's identity."""
    nq, m, d = gen_feats.shape
    dist = distance_matrix(l2n(gen_feats.reshape(nq * m, d)), l2n(g_feats))
    top = g_pids[np.argmin(dist, axis=1)]
    return float(np.mean(top == np.repeat(q_pids, m)))


def grid(refs: list[PIL.Image.Image], on: np.ndarray, off: np.ndarray, names: list[str], path: Path) -> None:
    """Rows: reference | 8 IFR-on | gap | 8 IFR-off, per reference; images shown at 128×64."""
    w, h = 64, 128
    n, m = on.shape[:2]
    head = 14
    canvas = PIL.Image.new("RGB", (w * (1 + 2 * m) + 8, head + h * n), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 1), "ref", fill="black")
    draw.text((w + 2, 1), "IFR on: " + ", ".join(names), fill="black")
    draw.text((w * (1 + m) + 10, 1), "IFR off (zero-image identity tokens)", fill="black")
    for i in range(n):
        y = head + i * h
        canvas.paste(refs[i].resize((w, h), PIL.Image.BILINEAR), (0, y))
        for j in range(m):
            canvas.paste(PIL.Image.fromarray(on[i, j]).resize((w, h), PIL.Image.BILINEAR), (w * (1 + j), y))
            canvas.paste(PIL.Image.fromarray(off[i, j]).resize((w, h), PIL.Image.BILINEAR), (w * (1 + m + j) + 8, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="synthped-reid")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps (must match the precompute cache)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on the shared 2-core box)")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "ipg_quality.json")
    ap.add_argument("--grid", type=Path, default=REPO / "docs" / "ipg_grid.png")
    ap.add_argument("--guidance-sweep", type=float, nargs="*", default=[1.0, 2.0, 3.5, 5.0, 7.5],
                    help="also measure identity consistency (IFR on) at these CFG scales, on every 4th query")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)

    import torch

    torch.set_num_threads(args.threads)
    from pose2id_demo.data.synthped import ensure_benchmark
    from pose2id_demo.ipg.pipeline import Pose2IDPipeline
    from pose2id_demo.ipg.precompute import gen_features, generate_all, generation_cache_path, model_hash
    from pose2id_demo.paths import MODELS_DIR
    from pose2id_demo.poses.representative import load_representative_poses
    from pose2id_demo.reid import get_backbone
    from pose2id_demo.reid.features import dataset_features

    model_dir = args.model or MODELS_DIR / "ipg-tiny"
    pipe = Pose2IDPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    ensure_benchmark("standard")
    f = dataset_features(args.backbone, "standard")
    q_paths, g_paths = [str(p) for p in f["q_paths"]], [str(p) for p in f["g_paths"]]
    named = load_representative_poses()
    names, poses = [n for n, _ in named], [p for _, p in named]
    mh = model_hash(Path(model_dir))
    kw = dict(steps=args.steps, guidance=3.5, seed=42)
    t0 = time.time()
    gens_on = generate_all(pipe, q_paths + g_paths, poses, use_ifr=True,
                           cache=generation_cache_path("standard", mh, use_ifr=True, **kw), **kw)
    gens_off_q = generate_all(pipe, q_paths, poses, use_ifr=False,
                              cache=generation_cache_path("standard", mh, use_ifr=False, **kw), **kw)
    gen_s = time.time() - t0
    bb = get_backbone(args.backbone)
    nq = len(q_paths)
    feats_on = gen_features(bb, gens_on)
    feats_off_q = gen_features(bb, gens_off_q)
    q, g = f["q_feats"], f["g_feats"]
    qp, gp, qc, gc = f["q_pids"], f["g_pids"], f["q_camids"], f["g_camids"]

    # 1. identity consistency
    real_r1 = consistency_rank1(q[:, None, :], qp, g, gp)
    r1_on = consistency_rank1(feats_on[:nq], qp, g, gp)
    r1_off = consistency_rank1(feats_off_q, qp, g, gp)

    sweep = {}
    sub = list(range(0, nq, 4))
    for gs in args.guidance_sweep:
        kws = dict(kw, guidance=gs)
        gen = generate_all(pipe, [q_paths[i] for i in sub], poses, use_ifr=True,
                           cache=generation_cache_path("standard", mh, use_ifr=True, **kws), **kws)
        sweep[f"{gs:g}"] = round(100 * consistency_rank1(gen_features(bb, gen), qp[sub], g, gp), 2)
        logger.info("guidance %g: identity Rank-1 %.1f %% on %d queries", gs, sweep[f"{gs:g}"], len(sub))

    # 2. eq. 9
    def run(eta: float, m: int) -> dict:
        qn = centralize(q, l2n(feats_on[:nq, :m]), eta)
        gn = centralize(g, l2n(feats_on[nq:, :m]), eta)
        r = evaluate(distance_matrix(qn, gn), qp, gp, qc, gc)
        return {"mAP": round(100 * r["mAP"], 2), "Rank-1": round(100 * r["Rank-1"], 2),
                "ID2_gallery": round(id2(gn[gp > 0], gp[gp > 0]), 4)}

    base = run(0.0, 0)
    etas = {str(eta): run(eta, 8) for eta in (0.25, 0.5, 1.0, 2.0)}
    best_eta = max(etas, key=lambda e: etas[e]["mAP"])
    trend = {str(m): run(float(best_eta), m) for m in range(0, 9)}
    result = {
        "model": str(model_dir.name if hasattr(model_dir, "name") else model_dir), "model_sha": mh,
        "backbone": args.backbone, "ddim_steps": args.steps, "guidance_scale": 3.5, "seed": 42, "poses": names,
        "identity_consistency_rank1": {"ifr_on": round(100 * r1_on, 2), "ifr_off": round(100 * r1_off, 2),
                                       "real_queries": round(100 * real_r1, 2),
                                       "chance": round(100 / len(np.unique(gp[gp > 0])), 2),
                                       "n_generations": int(feats_off_q.shape[0] * feats_off_q.shape[1]),
                                       "ifr_on_by_guidance_every_4th_query": sweep},
        "eq9_baseline": base, "eq9_eta_M8": etas, "eq9_best_eta": float(best_eta), "eq9_trend_M": trend,
        "generation_seconds": round(gen_s, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))

    # 3. grid: 6 test references (distinct identities, spread over the query list)
    rng = np.random.default_rng(0)
    picks = []
    for i in rng.permutation(nq):
        if qp[i] not in [qp[j] for j in picks]:
            picks.append(int(i))
        if len(picks) == 6:
            break
    grid([PIL.Image.open(q_paths[i]).convert("RGB") for i in picks], gens_on[picks], gens_off_q[picks], names,
         args.grid)
    print(f"wrote {args.grid} and {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
