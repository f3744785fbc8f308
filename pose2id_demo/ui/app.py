"""The Gradio Blocks app: layout and callbacks only — every number comes from :mod:`pose2id_demo.engine`.

Tabs: **Generate** (identity-guided generation in the 8 representative poses, IFR ablation, ranked lists
before/after eq. 9), **Benchmark** (the Table 2 ablation on SynthPed with live η/k1/k2 controls, ranked
lists, t-SNE, data cleansing), **Your features** (a feature file → table, Fig. 9 heatmap, Fig. 8 η curve,
Table 6 M curve) and **About**.

Named API endpoints (``gradio_client``): ``generate``, ``benchmark``, ``ranks``, ``tsne``,
``evaluate_features``, ``cleansing``, ``export_features``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from pose2id_demo.engine import (  # noqa: E402
    APPLY_CHOICES,
    ETA_RANGE,
    K_RANGE,
    N_IDS_RANGE,
    STEPS_RANGE,
    TASKS,
    Pose2IDError,
    get_engine,
)
from pose2id_demo.ui import render  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
COLUMNS = ["setting", "mAP", "Rank-1", "Rank-5", "Rank-10", "mINP", "ID²"]
DEFAULT_BACKBONE = "synthped-reid"
KNOWN_BACKBONES = ["synthped-reid", "imagenet-mobilenetv2"]
#: Concurrency of the cheap benchmark callbacks (generation always runs one at a time).
BENCH_CONCURRENCY = 4
#: Uploads above this are refused by Gradio before they reach the engine (documented in About).
MAX_UPLOAD = "100mb"

try:  # Optional ZeroGPU on Hugging Face Spaces: only when the `spaces` package is installed.
    import spaces  # type: ignore[import-not-found]

    _gpu: Callable[[Callable], Callable] = spaces.GPU(duration=120)
except ImportError:  # the usual case: plain CPU or a dedicated GPU
    def _gpu(fn: Callable) -> Callable:
        return fn


def _user_errors(fn: Callable) -> Callable:
    """Turn engine errors into ``gr.Error`` with the engine's sentence; never leak a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Pose2IDError as exc:
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
        except MemoryError:
            raise gr.Error("That request needs more memory than this machine has; try a smaller input.",
                           print_exception=False) from None
        except Exception as exc:  # noqa: BLE001
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong inside the demo ({type(exc).__name__}). The app is still "
                           "running; please try again or change the input.") from None

    return wrapper


def _payload_path(value: Any) -> str | None:
    """The server-side file path of a raw Gradio file payload (or a plain path)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path") or None
    return str(value)


def _progress_fn(progress: gr.Progress) -> Callable[[float, str], None]:
    def report(frac: float, desc: str) -> None:
        try:
            progress(min(max(float(frac), 0.0), 1.0), desc=desc)
        except Exception:  # noqa: BLE001 — progress is cosmetic (e.g. not inside a queued event)
            pass

    return report


def _backbone_choices() -> list[str]:
    """The registry's backbones if it is already imported; else the built-in names (importing the
    registry imports torch, which would add seconds to the cold start)."""
    if "pose2id_demo.reid" in sys.modules:
        try:
            return get_engine().backbones()
        except Pose2IDError:
            pass
    return list(KNOWN_BACKBONES)


def _n_queries() -> int:
    """Queries per SynthPed task (the same for the three tasks); the engine re-checks the range."""
    try:
        from pose2id_demo.data import synthped

        return int(synthped.NUM_TEST_IDS * synthped.QUERIES_PER_ID)
    except (ImportError, AttributeError):
        return 200


def _missing_notice() -> str:
    """A visible notice when shipped assets that generation needs are absent (nothing is faked)."""
    from pose2id_demo.engine import shipped_assets

    have = shipped_assets()
    lack = [what for key, what in (("poses", "the 8 representative poses (assets/poses)"),
                                   ("generator", "the embedded generator (assets/models/ipg-tiny)"),
                                   ("generated_features", "the benchmark's generated features (assets/features)"))
            if not have[key]]
    if not lack:
        return ""
    return ("⚠️ **Not shipped in this installation:** " + "; ".join(lack) + ". What needs them answers with "
            "a message instead of results.")


def _example_images() -> list[str]:
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(str(p) for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


@_gpu
def _generate_on_device(*args: Any, **kwargs: Any) -> dict:
    """The one GPU-worthy call (decorated for ZeroGPU when `spaces` is installed)."""
    return get_engine().generate(*args, **kwargs)


# ---------------------------------------------------------------------------------------- callbacks
@_user_errors
def generate(image: str | None, use_ifr: str, steps: float, cfg: float, seed: float, eta: float,
             custom_pose: str | None, backbone: str, progress: gr.Progress = gr.Progress(track_tqdm=True)
             ) -> tuple:
    """Generate the person in the 8 representative poses (and the custom pose); rank the gallery.

    Runs with ``preprocess=False``: Gradio hands over the raw upload payloads (already moved into its
    upload cache), and the engine decodes them with its own limits instead of PIL inside Gradio (which
    would fail on a corrupt file or a decompression bomb with a generic message).
    """
    image, custom_pose = _payload_path(image), _payload_path(custom_pose)
    if image is None:
        raise gr.Error("Please upload a person image or pick one of the examples first.", print_exception=False)
    res = _generate_on_device(image, use_ifr=use_ifr, steps=steps, cfg=cfg, seed=seed, eta=eta,
                              custom_pose=custom_pose, backbone=backbone, progress=_progress_fn(progress))
    names = res["poses"]
    on = [(render.image_file(im), f"IFR on · {n}") for im, n in zip(res["images"].get("on", []), names)]
    off = [(render.image_file(im), f"IFR off · {n}") for im, n in zip(res["images"].get("off", []), names)]
    ranks = res["ranks"]
    lines = [f"Generated {len(names)} poses × {len(res['images'])} IFR setting(s) in {res['seconds']:.1f} s "
             f"(steps {int(steps)}, CFG {float(cfg):g}, seed {int(seed)})."]
    if ranks:
        lines.append(f"Benchmark query #{res['query_index']} (id {ranks['query']['pid']}): correct in the top-10 "
                     f"**{render.hits(ranks, 'before')} → {render.hits(ranks, 'after')}** "
                     f"with eq. 9 (η={float(eta):g}) and these generations.")
    lines += res["notes"]
    state = {"query_index": res["query_index"], "backbone": backbone,
             "gen_feats": None if res["gen_feats"] is None else np.asarray(res["gen_feats"]).tolist()}
    skel = [(render.image_file(a), n) for a, n in res["skeletons"]]
    sheet_rows = [("pose", [a for a, _ in res["skeletons"]])]
    sheet_rows += [(f"IFR {m}", res["images"][m]) for m in ("on", "off") if m in res["images"]]
    sheet = render.image_file(render.pose_sheet(names, sheet_rows))
    return (on, off, skel, *render.ranked_strip_files(ranks),
            "\n\n".join(lines), sheet, state)


@_user_errors
def rerank_generated(eta: float, state: dict | None) -> tuple:
    """Re-rank the gallery with the user's last generations at a new η (no regeneration)."""
    if not state or state.get("gen_feats") is None:
        return gr.skip(), gr.skip(), gr.skip()
    ranks = get_engine().ranks_with_generations(state["query_index"], np.asarray(state["gen_feats"], np.float32),
                                                eta=eta, backbone=state["backbone"])
    msg = (f"Benchmark query #{state['query_index']}: correct in the top-10 **{render.hits(ranks, 'before')} → "
           f"{render.hits(ranks, 'after')}** with eq. 9 (η={float(eta):g}).")
    return *render.ranked_strip_files(ranks), msg


@_user_errors
def benchmark(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
              rerank: bool, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """The Table 2 ablation on a SynthPed task (metrics in %, ID² lower is better)."""
    res = get_engine().benchmark(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on,
                                 ipg_on=ipg_on, rerank=rerank, progress=_progress_fn(progress))
    s = res["settings"]
    head = (f"**SynthPed-{s['task']}**, {s['backbone']}: {res['n_query']} queries, {res['n_gallery']} gallery "
            f"images · η={s['eta']:g}, k1={s['k1']}, k2={s['k2']}, NFC on {s['nfc_on']} (separate sets), "
            f"IPG on {s['ipg_on']}, re-ranking {'on' if s['rerank'] else 'off'}.")
    notes = "\n\n".join([head] + [f"⚠️ {n}" for n in res["notes"]])
    return render.metrics_frame(res["rows"]), notes


@_user_errors
def ranks(task: str, backbone: str, query_index: float, eta: float, k1: float, k2: float, nfc_on: str,
          ipg_on: str, rerank: bool) -> tuple:
    """Top-10 gallery list of one query before and after centralization (green = same identity)."""
    r = get_engine().ranks(task=task, backbone=backbone, query_index=query_index, eta=eta, k1=k1, k2=k2,
                           nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank)
    msg = (f"Query #{int(query_index)} (id {r['query']['pid']}, cam {r['query']['camid']}): correct in the top-10 "
           f"**{render.hits(r, 'before')} → {render.hits(r, 'after')}** (after = {r['after_setting']}).")
    return *render.ranked_strip_files(r), msg


@_user_errors
def tsne(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str, n_ids: float,
         progress: gr.Progress = gr.Progress()) -> Any:
    """t-SNE of ~10 identities before/after centralization (paper Fig. 4)."""
    res = get_engine().tsne(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on,
                            n_ids=n_ids, progress=_progress_fn(progress))
    return render.tsne_figure(res)


@_user_errors
def cleansing(task: str, backbone: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """Mahalanobis outliers and PoseValid rejects of the train split (Supplementary 7.1)."""
    res = get_engine().cleansing(task=task, backbone=backbone, progress=_progress_fn(progress))
    outl = render.image_file(render.tile_grid([(o["path"], render.RED, f"id {o['pid']} d={o['distance']:.1f}")
                                               for o in res["outliers"][:36]]))
    rej = render.image_file(render.tile_grid([(o["path"], render.RED, o["reason"])
                                              for o in res["pose_rejects"][:36]]))
    msg = (f"Train split: {res['n_train']} images of {res['n_ids']} identities. Mahalanobis filter (keeps "
           f"[Q_{res['quantile']:g}, Q_{1 - res['quantile']:g}] per identity, eq. 31): **{len(res['outliers'])}** outliers (most distant shown). PoseValid: "
           f"**{len(res['pose_rejects'])}** rejects ({res['n_no_pose']} without keypoints).")
    return outl, rej, msg


@_user_errors
def evaluate_features(npz: str | None, k1: float, k2: float, eta: float, nfc_on: str, ipg_on: str,
                      exported: str | None = None, progress: gr.Progress = gr.Progress()) -> tuple:
    """Your own feature file → ablation table, k1×k2 heatmap (Fig. 9), η curve (Fig. 8), M curve (Table 6).

    ``exported`` (this user's last exported benchmark file, kept in ``gr.State``) is used when no file
    was uploaded."""
    npz = npz or exported
    if npz is None:
        raise gr.Error("Please upload a feature file (.npz) first.", print_exception=False)
    res = get_engine().evaluate_features(npz, k1=k1, k2=k2, eta=eta, nfc_on=nfc_on, ipg_on=ipg_on,
                                         progress=_progress_fn(progress))
    base = res["rows"][0] if res["rows"] else None
    msg = "\n\n".join([f"{res['n_query']} queries, {res['n_gallery']} gallery features."] +
                      [f"⚠️ {n}" for n in res["notes"]])
    return (render.metrics_frame(res["rows"]), render.heatmap_figure(res["grid"]),
            render.eta_figure(res["eta_curve"], base), render.m_figure(res["m_curve"]), msg)


@_user_errors
def summary(progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Any:
    """Baseline and +NFC+IPG (defaults: η=0.5, k1=k2=2, both sets) for every task × backbone, computed now."""
    import pandas as pd

    eng, rows = get_engine(), []
    combos = [(t, b) for b in _backbone_choices() for t in TASKS]
    for i, (task, bb) in enumerate(combos):
        progress(i / len(combos), desc=f"{task} · {bb}")
        res = eng.benchmark(task=task, backbone=bb)
        by_name = {r["setting"]: r for r in res["rows"]}
        for name in ("baseline", "+NFC+IPG" if "+NFC+IPG" in by_name else "+NFC"):
            r = by_name[name]
            rows.append([task, bb, name, r["mAP"], r["Rank-1"], r["ID²"]])
    return pd.DataFrame(rows, columns=["task", "backbone", "setting", "mAP", "Rank-1", "ID²"])


@_user_errors
def export_features(task: str, backbone: str) -> str:
    """Write the benchmark's features (+ generated features) as a feature file to try the tab with."""
    path = Path(tempfile.mkdtemp(prefix="pose2id-")) / f"synthped-{task}-{backbone}.npz"
    get_engine().export_features(task, backbone, path)
    return str(path)


# ------------------------------------------------------------------------------------------- layout
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

LEGEND = ("Top-10 gallery images, **upper row before** ({before}), **lower row after** ({after}); query framed "
          "blue, same identity <span style='color:#16a34a'>green</span>, other identity "
          "<span style='color:#dc2626'>red</span>.")

CSS = """
.p2i-small .wrap { min-height: 0 !important; }
#p2i-title { margin-bottom: 0; }
"""


def build_demo() -> gr.Blocks:
    """Build the Blocks app (nothing heavy is loaded here; the engine loads lazily on first use)."""
    backbones = _backbone_choices()
    default_bb = DEFAULT_BACKBONE if DEFAULT_BACKBONE in backbones else backbones[0]
    with gr.Blocks(title="Pose2ID — training-free ReID by feature centralization", analytics_enabled=False) as demo:
        gr.Markdown("# Pose2ID · From Poses to Identity\nTraining-free person re-identification by **feature "
                    "centralization** (CVPR 2025): generate a person in 8 poses, pull features to their "
                    "identity centre, and watch mAP, Rank-k and identity density move.", elem_id="p2i-title")
        gen_state = gr.State(None)

        # ---------------------------------------------------------------- Generate
        with gr.Tab("Generate", id="generate"):
            missing = _missing_notice()
            if missing:
                gr.Markdown(missing, elem_id="missing-notice")
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    # The engine decodes uploads itself (bounded, validated); see preprocess=False below.
                    ref = gr.Image(label="Person image", type="filepath", image_mode=None, height=260,
                                      sources=["upload", "clipboard"], elem_id="ref-image")
                    examples = _example_images()
                    if examples:
                        gr.Examples(examples=[[e] for e in examples], inputs=[ref],
                                    label="SynthPed benchmark queries (ranked lists shown for these)",
                                    examples_per_page=8)
                    custom_pose = gr.File(label="Custom target pose (optional): json, skeleton or photo",
                                          file_types=[".json", ".png", ".jpg", ".jpeg", ".webp"], height=120)
                    with gr.Row():
                        use_ifr = gr.Radio(["on", "off", "both"], value="both", label="IFR",
                                           info="both = side by side, same seed")
                        g_backbone = gr.Dropdown(backbones, value=default_bb, label="ReID backbone (ranked lists)")
                    with gr.Row():
                        steps = gr.Slider(*STEPS_RANGE, value=20, step=1, label="Steps", elem_id="steps")
                        cfg = gr.Slider(1.0, 10.0, value=3.5, step=0.5, label="CFG scale")
                    with gr.Row():
                        seed = gr.Number(42, precision=0, label="Seed", minimum=0, maximum=2**32 - 1)
                        g_eta = gr.Slider(0.0, 6.0, value=0.5, step=0.25, label="η (eq. 9)")
                    gen_btn = gr.Button("Generate 8 poses", variant="primary", elem_id="generate-btn")
                with gr.Column(scale=2):
                    gen_msg = gr.Markdown("Upload a person or pick an example, then press **Generate**.",
                                          elem_id="gen-msg")
                    gr.Markdown("**Target poses** (the 8 representative poses, eqs. 7-8) and the generations **with / "
                                "without IFR** (same seed, as in Fig. 5).")
                    sheet = gr.Image(label="poses and generations", show_label=False, type="numpy", format="png",
                                     interactive=False, elem_id="pose-sheet")
                    gr.Markdown(LEGEND.format(before="the query's own feature", after="eq. 9 with these generations"))
                    g_before = gr.Image(label="Top-10 before", show_label=False, type="numpy", format="png",
                                        interactive=False, elem_id="gen-before")
                    g_after = gr.Image(label="Top-10 after eq. 9", show_label=False, type="numpy", format="png",
                                       interactive=False, elem_id="gen-after")
            with gr.Accordion("Individual images (download)", open=False):
                skel = gr.Gallery(label="Target poses", columns=9, height=230, object_fit="contain",
                                  elem_id="skeletons")
                out_on = gr.Gallery(label="Generated with IFR", columns=9, height=230, object_fit="contain",
                                    elem_id="gen-on")
                out_off = gr.Gallery(label="Generated without IFR (zero-image identity tokens)", columns=9, height=230,
                                     object_fit="contain", elem_id="gen-off")
            gen_btn.click(generate, [ref, use_ifr, steps, cfg, seed, g_eta, custom_pose, g_backbone],
                          [out_on, out_off, skel, g_before, g_after, gen_msg, sheet, gen_state], api_name="generate",
                          concurrency_limit=1, concurrency_id="generation", preprocess=False)
            g_eta.release(rerank_generated, [g_eta, gen_state], [g_before, g_after, gen_msg],
                          api_visibility="private", trigger_mode="always_last")

        # ---------------------------------------------------------------- Benchmark
        with gr.Tab("Benchmark", id="benchmark"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    task = gr.Radio(list(TASKS), value="standard", label="Task (SynthPed)")
                    backbone = gr.Dropdown(backbones, value=default_bb, label="ReID backbone")
                    eta = gr.Slider(*ETA_RANGE, value=0.5, step=0.25, label="η (eq. 9)", elem_id="eta",
                                    info="0.5 suits the tiny embedded generator (η curve: Your features tab)")
                    with gr.Row():
                        k1 = gr.Slider(*K_RANGE, value=2, step=1, label="k1 (NFC)", elem_id="k1")
                        k2 = gr.Slider(*K_RANGE, value=2, step=1, label="k2 (NFC)", elem_id="k2")
                    nfc_on = gr.Radio(list(APPLY_CHOICES), value="both", label="NFC on")
                    ipg_on = gr.Radio(list(APPLY_CHOICES), value="both", label="IPG on")
                    rerank = gr.Checkbox(False, label="k-reciprocal re-ranking (k1=20, k2=6, λ=0.3)")
                with gr.Column(scale=2):
                    table = gr.Dataframe(label="Ablation (Table 2): metrics in %, ID² lower = denser", headers=COLUMNS,
                                         interactive=False, elem_id="metrics-table")
                    bench_msg = gr.Markdown(elem_id="bench-msg")
                    with gr.Accordion("Ranked lists for one query", open=True):
                        query_index = gr.Slider(0, _n_queries() - 1, value=0, step=1, label="Query index",
                                                elem_id="query-index")
                        rank_msg = gr.Markdown()
                        gr.Markdown(LEGEND.format(before="baseline", after="centralization with the settings"))
                        r_before = gr.Image(label="before", show_label=False, type="numpy", format="png",
                                            interactive=False, elem_id="rank-before")
                        r_after = gr.Image(label="after", show_label=False, type="numpy", format="png",
                                           interactive=False, elem_id="rank-after")
            with gr.Accordion("t-SNE of identities before / after (Fig. 4)", open=False):
                with gr.Row():
                    n_ids = gr.Slider(*N_IDS_RANGE, value=10, step=1, label="identities")
                    tsne_btn = gr.Button("Draw t-SNE")
                tsne_plot = gr.Plot(label="t-SNE")
            with gr.Accordion("Data cleansing of the train split (Supplementary 7.1)", open=False):
                clean_btn = gr.Button("Run cleansing")
                clean_msg = gr.Markdown()
                clean_out = gr.Image(label="Mahalanobis outliers (most distant first)", type="numpy", format="png",
                                     interactive=False)
                clean_rej = gr.Image(label="PoseValid rejects", type="numpy", format="png", interactive=False)

            bench_inputs = [task, backbone, eta, k1, k2, nfc_on, ipg_on, rerank]
            rank_inputs = [task, backbone, query_index, eta, k1, k2, nfc_on, ipg_on, rerank]
            controls_changed = [c.change for c in (task, backbone, nfc_on, ipg_on, rerank)] + \
                               [c.release for c in (eta, k1, k2)]
            gr.on(controls_changed, benchmark, bench_inputs, [table, bench_msg], api_name="benchmark",
                  trigger_mode="always_last", concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
            gr.on(controls_changed + [query_index.release], ranks, rank_inputs, [r_before, r_after, rank_msg],
                  api_name="ranks", trigger_mode="always_last", concurrency_limit=BENCH_CONCURRENCY,
                  concurrency_id="bench")
            tsne_btn.click(tsne, [task, backbone, eta, k1, k2, nfc_on, ipg_on, n_ids], tsne_plot, api_name="tsne",
                           concurrency_limit=2, concurrency_id="tsne")
            clean_btn.click(cleansing, [task, backbone], [clean_out, clean_rej, clean_msg], api_name="cleansing",
                            concurrency_limit=1, concurrency_id="cleansing")

        # ---------------------------------------------------------------- Your features
        with gr.Tab("Your features", id="features"):
            gr.Markdown("Upload an `.npz` with the keys of `python -m pose2id_demo eval`: `q_feats (nq,d)`, "
                        "`g_feats (ng,d)`, `q_pids`, `g_pids`, `q_camids`, `g_camids`, and optionally `q_gen "
                        "(nq,M,d)`, `g_gen (ng,M,d)` (features of generated images). Files are read without "
                        "unpickling. No file at hand? Export the benchmark's own.")
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    npz = gr.File(label="Feature file (.npz)", file_types=[".npz"], elem_id="npz")
                    with gr.Row():
                        f_k1 = gr.Slider(*K_RANGE, value=2, step=1, label="k1")
                        f_k2 = gr.Slider(*K_RANGE, value=2, step=1, label="k2")
                    f_eta = gr.Slider(*ETA_RANGE, value=0.5, step=0.25, label="η")
                    f_nfc = gr.Radio(list(APPLY_CHOICES), value="both", label="NFC on")
                    f_ipg = gr.Radio(list(APPLY_CHOICES), value="both", label="IPG on")
                    eval_btn = gr.Button("Evaluate", variant="primary")
                    with gr.Row():
                        exp_task = gr.Dropdown(list(TASKS), value="standard", label="export task")
                        exp_bb = gr.Dropdown(backbones, value=default_bb, label="export backbone")
                    exp_btn = gr.Button("Export benchmark features")
                    exp_file = gr.File(label="exported feature file", interactive=False)
                with gr.Column(scale=2):
                    f_msg = gr.Markdown()
                    f_table = gr.Dataframe(label="Ablation on your features (%)", headers=COLUMNS, interactive=False)
                    heat = gr.Plot(label="k1 × k2 (Fig. 9)")
                    with gr.Row():
                        eta_plot = gr.Plot(label="η curve (Fig. 8)")
                        m_plot = gr.Plot(label="M curve (Table 6)")
            exported_state = gr.State(None)
            eval_btn.click(evaluate_features, [npz, f_k1, f_k2, f_eta, f_nfc, f_ipg, exported_state],
                           [f_table, heat, eta_plot, m_plot, f_msg], api_name="evaluate_features",
                           concurrency_limit=2, concurrency_id="features")
            exp_btn.click(export_features, [exp_task, exp_bb], exp_file, api_name="export_features",
                          concurrency_limit=2, concurrency_id="features").success(
                lambda f: (f, f), exp_file, [npz, exported_state], api_visibility="private")  # ready to evaluate

        # ---------------------------------------------------------------- About
        with gr.Tab("About", id="about"):
            gr.Markdown(ABOUT)
            sum_btn = gr.Button("Compute the numbers on this machine (all tasks × backbones, default settings)")
            sum_table = gr.Dataframe(headers=["task", "backbone", "setting", "mAP", "Rank-1", "ID²"],
                                     interactive=False, label="Measured here, now")
            sum_btn.click(summary, None, sum_table, api_visibility="private", concurrency_limit=1,
                          concurrency_id="summary")

        # Fill the benchmark tab once the page is open (features load on first use, with progress).
        demo.load(benchmark, bench_inputs, [table, bench_msg], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
        demo.load(ranks, rank_inputs, [r_before, r_after, rank_msg], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
        demo.load(_skeleton_views, None, [skel, sheet], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
    return demo


@_user_errors
def _skeleton_views() -> tuple:
    """The 8 representative poses, as a gallery and as the first row of the pose sheet."""
    sk = get_engine().skeletons()
    sheet = render.pose_sheet([n for _, n in sk], [("pose", [a for a, _ in sk])])
    return [(render.image_file(a), n) for a, n in sk], render.image_file(sheet)


def launch(demo: gr.Blocks | None = None, **kwargs: Any) -> Any:
    """Queue and launch offline: host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, no share link,
    no analytics; generation runs one request at a time, at most 64 requests wait."""
    demo = demo if demo is not None else build_demo()
    opts: dict[str, Any] = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        share=False, ssr_mode=False, mcp_server=False, max_file_size=MAX_UPLOAD, show_error=False,
        theme=gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"]),
        css=CSS,
    )
    opts.update(kwargs)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo.launch(**opts)
