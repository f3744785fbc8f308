"""The **About** tab: what the paper claims, what runs here, limits, measured speed, and a button that computes
the headline numbers on this machine, now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from pose2id_demo.engine import TASKS, get_engine, inputs, user_features
from pose2id_demo.paths import REPO_ROOT
from pose2id_demo.ui import tempfiles
from pose2id_demo.ui.common import CACHE_SWEEP, MAX_UPLOAD, TabContext, backbone_choices, user_errors

ABOUT = """
## What the paper claims
*From Poses to Identity: Training-Free Person Re-Identification via Feature Centralization* (Pose2ID,
CVPR 2025) makes a trained ReID model better **without training it again**, by pulling each feature
towards its identity's centre:

* **IPG** — an identity-guided pedestrian generator (a reference UNet + a pose-guided denoising UNet, with
  the **IFR** module turning the ReID feature into identity tokens) renders each image's person in **8
  representative poses**; the features of those images are averaged into the original one
  (**eq. 9**, a sum of vectors: f̃ = f/‖f‖ + (η/M) Σᵢ₌₁ᴹ fᵢ, then f̃ is L2-normalised; the paper prints the
  first term as ‖f‖, which stands for the normalised feature f/‖f‖, not for the scalar norm).
* **NFC** — Neighbor Feature Centralization adds each feature's *mutual* nearest neighbours
  (Alg. 1, eqs. 26-28), with no labels.
* **ID²** — identity density, the mean distance of features to their identity centre (eqs. 20-21);
  lower is denser.

On Market-1501 with TransReID the paper reports mAP 79.88 → 90.39 and Rank-1 91.48 → 94.74.

## What runs here
* **SynthPed**, a procedurally rendered pedestrian benchmark in Market-1501 layout (standard, occluded
  and infrared-like queries) — real ReID data cannot be downloaded in this offline demo.
* Two ReID backbones: `synthped-reid` (trained by this project on SynthPed's train split) and
  `imagenet-mobilenetv2` (ImageNet weights only, no ReID training — the paper's Table 5 setting).
* A **tiny IPG** with the paper's architecture (reference attention, pose encoder, IFR), trained by this
  project on SynthPed, small enough to generate 8 poses on a CPU. Its pictures are coarse; the point is the
  mechanism and its effect on the features.
* NFC in the *separate* mode of the published numbers: neighbours are searched within the query set and
  within the gallery set.

## Official weights
The same pipeline class loads the official SD1.5-based Pose2ID weights (`reference_unet.pth`,
`denoising_unet.pth`, `pose_guider.pth`, `IFR.pth`, `transformer_20.pth`) on a GPU with
`pose2id_demo.ipg.official` — see the README. They are not bundled: `python app.py --ipg-weights hub` fetches them
from the Hugging Face repo `yuanc3/Pose2ID` into the Hub cache when the operator asks for them (never on a
user's request), `--ipg-weights DIR` reads a folder.

## Limits and safety
{limits}

{speed}

## API
{api}
"""


@user_errors
def summary(progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Any:
    """Baseline and +NFC+IPG (defaults: η=0.5, k1=k2=2, both sets) for every task × backbone, computed now."""
    import pandas as pd

    eng, rows = get_engine(), []
    combos = [(t, b) for b in backbone_choices() for t in TASKS]
    for i, (task, bb) in enumerate(combos):
        progress(i / len(combos), desc=f"{task} · {bb}")
        res = eng.bench.benchmark(task=task, backbone=bb)
        by_name = {r["setting"]: r for r in res["rows"]}
        for name in ("baseline", "+NFC+IPG" if "+NFC+IPG" in by_name else "+NFC"):
            r = by_name[name]
            rows.append([task, bb, name, r["mAP"], r["Rank-1"], r["ID²"]])
    return pd.DataFrame(rows, columns=["task", "backbone", "setting", "mAP", "Rank-1", "ID²"])


SPEED_JSON = REPO_ROOT / "docs" / "speed.json"


def speed_lines(path: Path = SPEED_JSON) -> str:
    """The "Speed, measured" section, written from ``docs/speed.json`` (``python -m bench.speed``, the one
    source of every speed figure in the README and here)."""
    try:
        sp = json.loads(path.read_text())
    except (OSError, ValueError):
        return "## Speed\nNot measured in this installation (`python -m bench.speed` writes docs/speed.json)."
    m = sp["machine_before"]
    peak = max(m["load"][0], sp["machine_after"]["load"][0])
    busy = "other jobs on the machine" if peak > 1.5 * m["nproc"] else "a quiet machine"
    out = [f"## Speed, measured (`python -m bench.speed`, {m['time_utc'][:10]}; {m['nproc']} CPU cores, load "
           f"{m['load'][0]:g} → {sp['machine_after']['load'][0]:g}: {busy}). Every figure is the time until the "
           "*result* (the app never answers with a placeholder)."]
    for name, sc in sp["scenarios"].items():
        where = ("empty cache, as on a newcomer's machine" if name.startswith("fresh")
                 else "the cache already filled")
        if "isolated" in sc:
            ok = [r for r in sc["isolated"] if r.get("error") is None]
            if ok:
                slow = max(ok, key=lambda r: r["since_start_s"])
                out.append(f"* **{where}, each interaction the first call after `python app.py`**: its result "
                           f"within **{slow['since_start_s']:.1f} s** of the start (slowest: {slow['what']})")
            continue
        first = [r for r in sc.get("first", []) if r.get("error") is None and r["endpoint"] != "/generate"]
        if not first:
            continue
        since = [r["since_start_s"] for r in first if "since_start_s" in r]
        out.append(f"* **{where}**: `python app.py` to a served page **{sc['cold_start_s']:.1f} s**; one after the "
                   f"other, each first result of a view within **{max(r['seconds'] for r in first):.1f} s** of its "
                   "call" + (f" (all of them **{max(since):.0f} s** after the start)" if since else ""))
        for r in sc.get("first", []):
            if r["endpoint"] == "/generate" and r.get("error") is None:
                out.append(f"  * first {r['what']}: {r['seconds']:.1f} s")
        for w in sc.get("warm", []):
            out.append(f"  * {w['what']}: median {w['median_s']:.2f} s of {len(w['runs_s'])}")
    return "\n".join(out)


def api_line(demo: gr.Blocks) -> str:
    """Every named endpoint of the wired app (so the list cannot fall behind the code)."""
    names = sorted({f.api_name for f in demo.fns.values() if f.api_name and f.api_visibility == "public"})
    return ("Every tab is also an API: " + ", ".join(f"`{n}`" for n in names) +
            " (see \"Use via API\" at the bottom of the page, or the README's `gradio_client` example).")


def limits_lines() -> str:
    """The request limits, from the constants the engine and the app enforce."""
    every, age = CACHE_SWEEP
    return (f"Uploads: images up to {inputs.MAX_IMAGE_BYTES // 2**20} MB and {inputs.MAX_IMAGE_PIXELS / 1e6:g} "
            "megapixels (bigger JPEGs are decoded at reduced scale; other formats are refused). A request may "
            "only name files uploaded to this app or its shipped examples; anything else gets \"Please upload "
            "an image.\" whether or not it exists. Feature files are read without unpickling; their members must be "
            "exactly the documented .npy names, each array is priced from its own header before anything is "
            "decompressed (generated features included) and checked for shapes, dtypes and finite values: up to "
            f"{user_features.MAX_DIM:,} dimensions and {user_features.MAX_ROWS:,} query + gallery "
            "rows for the table (a Market-1501-size file, 3,368 × 15,913 × 768, is accepted), the k1×k2 / η / M "
            "curves on a subset of identities when the file is large (the M curve on at most 12 values of M), and "
            f"each call stops after {user_features.TIME_BUDGET_S:.0f} s of computing, checked before every "
            "evaluation (the CLI, `python -m pose2id_demo eval`, has no such limits). "
            "At most one heavy computation per CPU core runs at a time, each on one thread, and a generation goes "
            "before every other waiting request, so it waits at most until the first running job ends. Uploads "
            f"are refused above {MAX_UPLOAD / 2**20:.0f} MiB (the largest feature file the app evaluates); the app's "
            f"temporary files are held within {tempfiles.QUOTA_BYTES / 2**30:.0f} GiB (the oldest go first), "
            f"deleted after {age // 60} minutes (checked every {every // 60} minutes) and when the app stops.")


def build(ctx: TabContext) -> None:
    """The About tab: the text above (speed from docs/speed.json, the endpoints of the wired app) and the
    "compute here, now" summary table. Built last, so that every endpoint is wired already."""
    with gr.Tab("About", id="about"):
        gr.Markdown(ABOUT.replace("{speed}", speed_lines()).replace("{api}", api_line(ctx.demo))
                    .replace("{limits}", limits_lines()),
                    elem_id="about-text")
        sum_btn = gr.Button("Compute the numbers on this machine (all tasks × backbones, default settings)")
        sum_table = gr.Dataframe(headers=["task", "backbone", "setting", "mAP", "Rank-1", "ID²"],
                                 interactive=False, label="Measured here, now")
        sum_btn.click(summary, None, sum_table, api_visibility="private", concurrency_limit=1,
                      concurrency_id="summary")
