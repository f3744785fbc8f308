"""The **Generate** tab: identity-guided generation in the 8 representative poses, the IFR ablation, and the
ranked lists before/after eq. 9 with the user's own generations (API: ``generate``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from pose2id_demo.engine import STEPS_RANGE, get_engine, shipped_assets
from pose2id_demo.ui import controls, render
from pose2id_demo.ui.common import (
    BENCH_CONCURRENCY,
    EXAMPLES_DIR,
    LEGEND,
    TabContext,
    payload_path,
    progress_fn,
    user_errors,
)
from pose2id_demo.ui.request_files import file_input, guarded

try:  # Optional ZeroGPU on Hugging Face Spaces: only when the `spaces` package is installed.
    import spaces  # type: ignore[import-not-found]

    _gpu: Callable[[Callable], Callable] = spaces.GPU(duration=120)
except ImportError:  # the usual case: plain CPU or a dedicated GPU
    def _gpu(fn: Callable) -> Callable:
        return fn


def _missing_notice() -> str:
    """A visible notice when shipped assets that generation needs are absent (nothing is faked)."""
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


def _seed_note() -> str | None:
    """Next to the seed box when the official weights generate: why its default is 12580."""
    if get_engine().generator_is_embedded:
        return None
    return f"{get_engine().default_seed}: the official inference's seed (IPG/configs/inference.yaml)"


#: Said next to the generations when the upload is not a benchmark image (issue: real photos).
OUT_OF_DOMAIN = ("ℹ️ Real photos are outside the embedded generator's domain (the tiny IPG was trained on SynthPed "
                 "only, at 64 × 32): expect a SynthPed-like figure. For real photos run the official Pose2ID "
                 "weights on a GPU: `python app.py --ipg-weights DIR`.")
READY_MSG = "Upload a person or pick an example, then press **Generate**."


# ---------------------------------------------------------------------------------------- callbacks
@user_errors
def generate(image: str | None, use_ifr: str, steps: float, cfg: float, seed: float, eta: float,
             custom_pose: str | None, backbone: str, progress: gr.Progress = gr.Progress(track_tqdm=True)
             ) -> tuple:
    """Generate the person in the 8 representative poses (and the custom pose); rank the gallery.

    Runs with ``preprocess=False``: Gradio hands over the raw upload payloads (already moved into its
    upload cache), and the engine decodes them with its own limits instead of PIL inside Gradio (which
    would fail on a corrupt file or a decompression bomb with a generic message).
    """
    image, custom_pose = payload_path(image), payload_path(custom_pose)
    if image is None:
        raise gr.Error("Please upload a person image or pick one of the examples first.", print_exception=False)
    res = _generate_on_device(image, use_ifr=use_ifr, steps=steps, cfg=cfg, seed=seed, eta=eta,
                              custom_pose=custom_pose, backbone=backbone, progress=progress_fn(progress))
    names = res["poses"]
    # Captions are the pose names only: each gallery's heading says IFR on / off (longer captions were cut).
    on = [(render.image_file(im), n) for im, n in zip(res["images"].get("on", []), names)]
    off = [(render.image_file(im), n) for im, n in zip(res["images"].get("off", []), names)]
    ranks = res["ranks"]
    lines = [f"Generated {len(names)} poses × {len(res['images'])} IFR setting(s) in {res['seconds']:.1f} s "
             f"(steps {int(steps)}, CFG {float(cfg):g}, seed {res['seed']})."]
    if res["query_index"] is None and getattr(get_engine(), "generator_is_embedded", True):
        lines.append(OUT_OF_DOMAIN)
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
    # Not a benchmark image: no gallery to rank; the ranked-list images are then hidden (_ranked_shown).
    return (on, off, skel, *render.ranked_strip_files(ranks), "\n\n".join(lines), sheet, state)


@user_errors
def rerank_generated(eta: float, state: dict | None) -> tuple:
    """Re-rank the gallery with the user's last generations at a new η (no regeneration)."""
    if not state or state.get("gen_feats") is None:
        return gr.skip(), gr.skip(), gr.skip()
    ranks = get_engine().ranks_with_generations(state["query_index"], np.asarray(state["gen_feats"], np.float32),
                                                eta=eta, backbone=state["backbone"])
    msg = (f"Benchmark query #{state['query_index']}: correct in the top-10 **{render.hits(ranks, 'before')} → "
           f"{render.hits(ranks, 'after')}** with eq. 9 (η={float(eta):g}).")
    return *render.ranked_strip_files(ranks), msg


def _ranked_shown(state: dict | None) -> tuple:
    """The ranked lists and their legend show only when there are ranked lists (a benchmark query): no empty
    boxes for other uploads (the message says why once)."""
    shown = bool(state and state.get("query_index") is not None)
    return gr.update(visible=shown), gr.update(visible=shown), gr.update(visible=shown)


@user_errors
def _cleared(_image: Any) -> tuple:
    """A new reference image (upload or example): the previous person's results are cleared."""
    skel, sheet = _skeleton_views()
    return ([], [], gr.update(value=None, visible=False), gr.update(value=None, visible=False), READY_MSG, sheet,
            None, gr.update(visible=False))


@user_errors
def _skeleton_views() -> tuple:
    """The 8 representative poses, as a gallery and as the first row of the pose sheet."""
    sk = get_engine().skeletons()
    sheet = render.pose_sheet([n for _, n in sk], [("pose", [a for a, _ in sk])])
    return [(render.image_file(a), n) for a, n in sk], render.image_file(sheet)


# ------------------------------------------------------------------------------------------- layout
def build(ctx: TabContext) -> None:
    """The Generate tab and its events (``generate``; the η slider re-ranks without regenerating)."""
    gen_state = gr.State(None)
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
                # The label sits above the drop zone as text (a floating block label squeezed the zone).
                gr.Markdown("**Custom target pose** (optional): a keypoint json, a skeleton image or a photo",
                            elem_id="custom-pose-label")
                custom_pose = file_input(gr.File(label="Custom target pose", show_label=False, height=150,
                                                 file_types=[".json", ".png", ".jpg", ".jpeg", ".webp"],
                                                 elem_id="custom-pose"), "custom pose")
                with gr.Row():
                    use_ifr = gr.Radio(["on", "off", "both"], value="both", label="IFR",
                                       info="both = side by side, same seed")
                    g_backbone = gr.Dropdown(ctx.backbones, value=ctx.default_backbone,
                                             label="ReID backbone (ranked lists)")
                with gr.Row():
                    steps = controls.slider(*STEPS_RANGE, value=20, step=1, label="Steps", elem_id="steps")
                    cfg = controls.slider(1.0, 10.0, value=3.5, step=0.5, label="CFG scale")
                with gr.Row():
                    seed = controls.number(get_engine().default_seed, precision=0, label="Seed", minimum=0,
                                           maximum=2**32 - 1, info=_seed_note(), elem_id="seed")
                    g_eta = controls.knob("eta", elem_id="g-eta")
                gen_btn = gr.Button("Generate 8 poses", variant="primary", elem_id="generate-btn")
            with gr.Column(scale=2):
                gen_msg = gr.Markdown(READY_MSG, label="message", elem_id="gen-msg")
                gr.Markdown("**Target poses** (the 8 representative poses, eqs. 7-8) and the generations **with / "
                            "without IFR** (same seed, as in Fig. 5).")
                sheet = gr.Image(label="poses and generations", show_label=False, type="numpy", format="png",
                                 interactive=False, elem_id="pose-sheet")
                legend = gr.Markdown(LEGEND.format(before="the query's own feature",
                                                   after="eq. 9 with these generations"), visible=False,
                                     elem_id="gen-legend")
                # No toolbar on the ranked strips: its buttons covered the 10th image.
                g_before = gr.Image(label="Top-10 before", show_label=False, type="numpy", format="png",
                                    interactive=False, buttons=[], visible=False, elem_id="gen-before")
                g_after = gr.Image(label="Top-10 after eq. 9", show_label=False, type="numpy", format="png",
                                   interactive=False, buttons=[], visible=False, elem_id="gen-after")
        with gr.Accordion("Individual images (download)", open=False):
            # Headings as text above each gallery: a floating block label covered the first thumbnail.
            gr.Markdown("**Target poses**")
            skel = gr.Gallery(label="Target poses", show_label=False, columns=9, height=250, object_fit="contain",
                              elem_id="skeletons")
            gr.Markdown("**Generated with IFR**")
            out_on = gr.Gallery(label="Generated with IFR", show_label=False, columns=9, height=250,
                                object_fit="contain", elem_id="gen-on")
            gr.Markdown("**Generated without IFR** (zero-image identity tokens)")
            out_off = gr.Gallery(label="Generated without IFR", show_label=False, columns=9, height=250,
                                 object_fit="contain", elem_id="gen-off")
        gen_btn.click(guarded(generate, ctx.demo), [ref, use_ifr, steps, cfg, seed, g_eta, custom_pose, g_backbone],
                      [out_on, out_off, skel, g_before, g_after, gen_msg, sheet, gen_state], api_name="generate",
                      concurrency_limit=1, concurrency_id="generation", preprocess=False).then(
            _ranked_shown, gen_state, [legend, g_before, g_after], api_visibility="private")
        # Picking another example (or uploading) clears the previous person's results at once.
        ref.change(_cleared, ref, [out_on, out_off, g_before, g_after, gen_msg, sheet, gen_state, legend],
                   api_visibility="private", preprocess=False)
        g_eta.release(rerank_generated, [g_eta, gen_state], [g_before, g_after, gen_msg],
                      api_visibility="private", trigger_mode="always_last")
    # Show the 8 target poses once the page is open.
    ctx.demo.load(_skeleton_views, None, [skel, sheet], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
