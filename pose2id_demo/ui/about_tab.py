"""The **About** tab: what the paper claims, what runs here, limits, measured speed, and a button that computes
the headline numbers on this machine, now."""

from __future__ import annotations

from typing import Any

import gradio as gr

from pose2id_demo.engine import TASKS, get_engine
from pose2id_demo.ui.common import TabContext, backbone_choices, user_errors

ABOUT = """
## What the paper claims
*From Poses to Identity: Training-Free Person Re-Identification via Feature Centralization* (Pose2ID,
CVPR 2025) makes a trained ReID model better **without training it again**, by pulling each feature
towards its identity's centre:

* **IPG** — an identity-guided pedestrian generator (a reference UNet + a pose-guided denoising UNet, with
  the **IFR** module turning the ReID feature into identity tokens) renders each image's person in **8
  representative poses**; the features of those images are averaged into the original one
  (**eq. 9**: f̃ = ‖f‖ + η/M Σ fᵢ).
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
`pose2id_demo.ipg.official` — see the README. They are not bundled and never downloaded by the app.

## Limits and safety
Uploads: images up to 30 MB and 40 megapixels (bigger JPEGs are decoded at reduced scale; other formats
are refused), any upload up to 100 MB; feature files are read without unpickling and checked for keys,
shapes, dtypes and finite values. Generation runs one request at a time (the queue holds the rest).

## Speed, measured (`python -m bench.load --slider`, `python app.py`; 2 shared CPU cores, 2026-11-25)
* Cold start, `python app.py` to a served page: 6.5 s (17 s while 5 other jobs loaded the machine);
  models and features load on first use, with a progress bar.
* Moving a slider to a new table (settings never computed before, NFC included): median 0.21 s, max 0.33 s.
* 8 concurrent API clients for 20 s (random settings each): 0 failures; benchmark median 1.2 s, ranks 3.0 s.
* Generating 8 poses with the embedded tiny IPG (20 steps, CFG 3.5, IFR on) and ranking: 8.3 s on a free
  machine, up to 48 s while other jobs share the 2 cores; IFR on + off side by side costs about 1.5×.

## API
Every tab is also an API: `generate`, `benchmark`, `ranks`, `tsne`, `evaluate_features`, `cleansing`
(see "Use via API" at the bottom of the page, or the README's `gradio_client` example).
"""


@user_errors
def summary(progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Any:
    """Baseline and +NFC+IPG (defaults: η=0.5, k1=k2=2, both sets) for every task × backbone, computed now."""
    import pandas as pd

    eng, rows = get_engine(), []
    combos = [(t, b) for b in backbone_choices() for t in TASKS]
    for i, (task, bb) in enumerate(combos):
        progress(i / len(combos), desc=f"{task} · {bb}")
        res = eng.benchmark(task=task, backbone=bb)
        by_name = {r["setting"]: r for r in res["rows"]}
        for name in ("baseline", "+NFC+IPG" if "+NFC+IPG" in by_name else "+NFC"):
            r = by_name[name]
            rows.append([task, bb, name, r["mAP"], r["Rank-1"], r["ID²"]])
    return pd.DataFrame(rows, columns=["task", "backbone", "setting", "mAP", "Rank-1", "ID²"])


def build(ctx: TabContext) -> None:  # noqa: ARG001 — the About tab needs nothing from the others
    """The About tab: the text above and the "compute here, now" summary table."""
    with gr.Tab("About", id="about"):
        gr.Markdown(ABOUT)
        sum_btn = gr.Button("Compute the numbers on this machine (all tasks × backbones, default settings)")
        sum_table = gr.Dataframe(headers=["task", "backbone", "setting", "mAP", "Rank-1", "ID²"],
                                 interactive=False, label="Measured here, now")
        sum_btn.click(summary, None, sum_table, api_visibility="private", concurrency_limit=1,
                      concurrency_id="summary")
