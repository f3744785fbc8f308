"""The **Generate** tab: identity-guided generation in the 8 representative poses, the IFR ablation, and the
ranked lists before/after eq. 9 with the user's own generations (API: ``generate``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from pose2id_demo.ablation import DEFAULT_ETA
from pose2id_demo.engine import (
    CFG_RANGE,
    SEED_RANGE,
    STEPS_RANGE,
    Pose2IDError,
    get_engine,
    load_custom_pose,
    load_image,
    shipped_assets,
)
from pose2id_demo.ui import controls, render
from pose2id_demo.ui.common import (
    BENCH_CONCURRENCY,
    EXAMPLES_DIR,
    LEGEND,
    TabContext,
    log,
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


#: Said next to the generations when the upload is not a benchmark image (a photo from elsewhere).
OUT_OF_DOMAIN = ("ℹ️ Real photos are outside the embedded generator's domain (the tiny IPG was trained on SynthPed "
                 "only; it reads the person at 64 × 32 and draws 128 × 64): expect a SynthPed-like figure. For "
                 "real photos run the official Pose2ID weights on a GPU: `python app.py --ipg-weights DIR`.")
READY_MSG = "Upload a person or pick an example, then press **Generate**."
NO_IMAGE = "Please upload a person image or pick one of the examples first."
#: The generation defaults the controls start at (and the cached examples run with): the paper's.
DEFAULT_STEPS, DEFAULT_CFG = 20, 3.5


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
        raise Pose2IDError(NO_IMAGE)
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
    state = {"query_index": res["query_index"], "backbone": backbone, "modes": sorted(res["images"]),
             "gen_feats": None if res["gen_feats"] is None else np.asarray(res["gen_feats"]).tolist()}
    skel = [(render.image_file(a), n) for a, n in res["skeletons"]]
    sheet_rows = [("pose", [a for a, _ in res["skeletons"]])]
    sheet_rows += [(f"IFR {m}", res["images"][m]) for m in ("on", "off") if m in res["images"]]
    sheet = render.image_file(render.pose_sheet(names, sheet_rows))
    # Not a benchmark image: no gallery to rank; the ranked-list images are then hidden (_ranked_shown).
    return (on, off, skel, *render.ranked_strip_files(ranks), "\n\n".join(lines), sheet, state)


def _as_state(state: Any) -> dict:
    """The generation's state: a dict (``gr.State``), or as a cached example's hidden ``gr.JSON`` hands it over."""
    if hasattr(state, "model_dump"):
        state = state.model_dump()
    if isinstance(state, str):
        try:
            state = json.loads(state)
        except ValueError:
            return {}
    return state if isinstance(state, dict) else {}


@user_errors
def rerank_generated(eta: float, state: dict | str | None) -> tuple:
    """Re-rank the gallery with the user's last generations at a new η (no regeneration)."""
    state = _as_state(state)
    if state.get("gen_feats") is None:
        return gr.skip(), gr.skip(), gr.skip()
    ranks = get_engine().ranks_with_generations(state["query_index"], np.asarray(state["gen_feats"], np.float32),
                                                eta=eta, backbone=state["backbone"])
    msg = (f"Benchmark query #{state['query_index']}: correct in the top-10 **{render.hits(ranks, 'before')} → "
           f"{render.hits(ranks, 'after')}** with eq. 9 (η={float(eta):g}).")
    return *render.ranked_strip_files(ranks), msg


def _shown(state: dict | str | None) -> tuple:
    """After a generation (or a cached example): the ranked lists and their legend only for a benchmark query,
    each IFR gallery and its heading only when that IFR setting was generated — no empty boxes (the message
    says why once) — and the Generate button usable again."""
    state = _as_state(state)
    ranked = gr.update(visible=state.get("query_index") is not None)
    modes = state.get("modes") or ["on", "off"]
    on, off = gr.update(visible="on" in modes), gr.update(visible="off" in modes)
    return ranked, ranked, ranked, on, on, off, off, _idle()


def _example_shown(state: Any) -> tuple:
    """After a cached example: its state (kept in a hidden JSON box by the cache, which cannot hold a
    ``gr.State``) becomes the tab's state, for the η slider's re-ranking; then :func:`_shown`."""
    state = _as_state(state)
    return (state or None), *_shown(state)


def _running() -> Any:
    """While a generation runs the button is off: a click cannot queue another run."""
    return gr.Button(value="Generating …", interactive=False)


GENERATE_LABEL = "Generate 8 poses"


def _idle() -> Any:
    return gr.Button(value=GENERATE_LABEL, interactive=True)


@user_errors
def check_request(image: Any, custom_pose: Any) -> None:
    """Before a generation is queued: the reference (and a custom pose) can be read, else a sentence (a toast
    only: the results shown stay as they are, the pose sheet included)."""
    image, custom_pose = payload_path(image), payload_path(custom_pose)
    if image is None:
        raise Pose2IDError(NO_IMAGE)
    load_image(image, what="reference image")
    if custom_pose is not None:
        load_custom_pose(custom_pose)


@user_errors
def new_reference(image: Any) -> tuple:
    """A new reference image from the user (upload, paste or clear): the previous person's results go at once (a
    generation still running for it is cancelled), the button is usable. A file that is not a readable image
    is taken out of the box (no broken picture) and the message says why; the pose sheet stays."""
    skel, sheet = _skeleton_views()
    path, message, box = payload_path(image), READY_MSG, gr.skip()
    if path is not None:
        try:
            load_image(path, what="uploaded file")
        except Pose2IDError as exc:
            log.warning("new_reference: %s", exc)
            message, box = f"⚠️ {exc}", None
    hidden = gr.update(value=None, visible=False)
    return ([], [], hidden, hidden, message, sheet, None, gr.update(visible=False), _idle(), box)


@user_errors
def _skeleton_views() -> tuple:
    """The 8 representative poses, as a gallery and as the first row of the pose sheet."""
    sk = get_engine().skeletons()
    sheet = render.pose_sheet([n for _, n in sk], [("pose", [a for a, _ in sk])])
    return [(render.image_file(a), n) for a, n in sk], render.image_file(sheet)


# ------------------------------------------------------------------------------------------- layout
def _controls(ctx: TabContext) -> dict[str, Any]:
    """The inputs, made before they are placed (render=False): the cached examples need them and the outputs."""
    c: dict[str, Any] = {}
    # The engine decodes uploads itself (bounded, validated); see preprocess=False below.
    c["ref"] = gr.Image(label="Person image", type="filepath", image_mode=None, height=260,
                        sources=["upload", "clipboard"], elem_id="ref-image", render=False)
    c["custom_pose"] = file_input(gr.File(label="Custom target pose", show_label=False, height=150,
                                          file_types=[".json", ".png", ".jpg", ".jpeg", ".webp"],
                                          elem_id="custom-pose", render=False), "custom pose")
    c["use_ifr"] = gr.Radio(["on", "off", "both"], value="both", label="IFR", info="both = side by side, same seed",
                            elem_id="use-ifr", render=False)
    c["backbone"] = gr.Dropdown(ctx.backbones, value=ctx.default_backbone, label="ReID backbone (ranked lists)",
                                render=False)
    # Named as the engine names them, so that a value out of range gets the same sentence on every endpoint.
    c["steps"] = controls.slider(*STEPS_RANGE, value=DEFAULT_STEPS, step=1, label="Steps", name="steps",
                                 elem_id="steps", render=False)
    c["cfg"] = controls.slider(*CFG_RANGE, value=DEFAULT_CFG, step=0.5, label="CFG scale", render=False)
    c["seed"] = controls.number(get_engine().default_seed, precision=0, label="Seed", name="seed",
                                minimum=SEED_RANGE[0], maximum=SEED_RANGE[1], info=_seed_note(), elem_id="seed",
                                render=False)
    c["eta"] = controls.knob("eta", elem_id="g-eta", render=False)
    return c


def _outputs() -> dict[str, Any]:
    """The results, made before they are placed (render=False), so that the examples above them can name them."""
    o: dict[str, Any] = {}
    o["msg"] = gr.Markdown(READY_MSG, label="message", elem_id="gen-msg", render=False)
    # No toolbar on the sheet: its buttons covered the last column's title (the images download below).
    o["sheet"] = gr.Image(label="poses and generations", show_label=False, type="numpy", format="png",
                          interactive=False, buttons=[], elem_id="pose-sheet", render=False)
    # No toolbar on the ranked strips: its buttons covered the 10th image.
    o["before"] = gr.Image(label="Top-10 before", show_label=False, type="numpy", format="png", interactive=False,
                           buttons=[], visible=False, elem_id="gen-before", render=False)
    o["after"] = gr.Image(label="Top-10 after eq. 9", show_label=False, type="numpy", format="png",
                          interactive=False, buttons=[], visible=False, elem_id="gen-after", render=False)
    for key, label, elem in (("skel", "Target poses", "skeletons"), ("on", "Generated with IFR", "gen-on"),
                             ("off", "Generated without IFR", "gen-off")):
        o[key] = gr.Gallery(label=label, show_label=False, columns=9, height=250, object_fit="contain",
                            elem_id=elem, render=False)
    o["state"] = gr.State(None)
    # A cached example's state: Gradio's example cache stores no gr.State, so examples answer it here.
    o["example_state"] = gr.JSON(None, visible=False, label="example state", render=False)
    return o


def _examples(c: dict[str, Any], o: dict[str, Any], demo: gr.Blocks) -> gr.Examples | None:
    """The shipped benchmark queries, cached lazily: a click fills the controls with the defaults the example ran
    with and shows its results — generated on the example's first click in this process, then read back."""
    examples = _example_images()
    if not examples:
        return None
    seed = get_engine().default_seed
    ex = gr.Examples(
        examples=[[e, "both", DEFAULT_STEPS, DEFAULT_CFG, seed, DEFAULT_ETA, c["backbone"].value] for e in examples],
        inputs=[c[k] for k in GEN_INPUTS if k != "custom_pose"],
        outputs=[o[k] for k in GEN_OUTPUTS[:-1]] + [o["example_state"]],
        fn=guarded(generate_example, demo), cache_examples=True, cache_mode="lazy", preprocess=False,
        visible_columns=[0], examples_per_page=8,
        label="SynthPed benchmark queries (ranked lists shown for these; results cached after the first click)")
    # Gradio's two events of a click on an example (load_example_input, load_example) take the example's index
    # from any caller: one that is not an example's gets a sentence.
    controls.example_index(ex.dataset)
    return ex


def generate_example(image: Any, use_ifr: str, steps: float, cfg: float, seed: float, eta: float, backbone: str,
                     progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """An example's generation: :func:`generate` without a custom pose (a click on an example clears it)."""
    return generate(image, use_ifr, steps, cfg, seed, eta, None, backbone, progress=progress)


def _no_custom_pose() -> None:
    return None


#: The generation's inputs and outputs, in the order of :func:`generate`'s parameters and results.
GEN_INPUTS = ("ref", "use_ifr", "steps", "cfg", "seed", "eta", "custom_pose", "backbone")
GEN_OUTPUTS = ("on", "off", "skel", "before", "after", "msg", "sheet", "state")


def _layout(c: dict[str, Any], o: dict[str, Any], demo: gr.Blocks) -> dict[str, Any]:
    """Place the controls, the examples and the results; returns what else the events need."""
    x: dict[str, Any] = {}
    missing = _missing_notice()
    if missing:
        gr.Markdown(missing, elem_id="missing-notice")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            c["ref"].render()
            x["examples"] = _examples(c, o, demo)
            # The label sits above the drop zone as text (a floating block label squeezed the zone).
            gr.Markdown("**Custom target pose** (optional): a keypoint json, a skeleton image or a photo",
                        elem_id="custom-pose-label")
            c["custom_pose"].render()
            with gr.Row():
                c["use_ifr"].render()
                c["backbone"].render()
            with gr.Row():
                c["steps"].render()
                c["cfg"].render()
            with gr.Row():
                c["seed"].render()
                c["eta"].render()
            x["button"] = gr.Button(GENERATE_LABEL, variant="primary", elem_id="generate-btn")
        with gr.Column(scale=2):
            o["msg"].render()
            gr.Markdown("**Target poses** (the 8 representative poses, eqs. 7-8) and the generations **with / "
                        "without IFR** (same seed, as in Fig. 5).")
            o["sheet"].render()
            x["legend"] = gr.Markdown(LEGEND.format(before="the query's own feature",
                                                    after="eq. 9 with these generations"), visible=False,
                                      elem_id="gen-legend")
            o["before"].render()
            o["after"].render()
    with gr.Accordion("Individual images (download)", open=False):
        # Headings as text above each gallery: a floating block label covered the first thumbnail.
        gr.Markdown("**Target poses**")
        o["skel"].render()
        x["on_label"] = gr.Markdown("**Generated with IFR**", elem_id="gen-on-label")
        o["on"].render()
        x["off_label"] = gr.Markdown("**Generated without IFR** (zero-image identity tokens)", elem_id="gen-off-label")
        o["off"].render()
    o["example_state"].render()
    return x


def build(ctx: TabContext) -> None:
    """The Generate tab and its events (``generate``; the η slider re-ranks without regenerating)."""
    c, o = _controls(ctx), _outputs()
    with gr.Tab("Generate", id="generate"):
        x = _layout(c, o, ctx.demo)
    inputs, outputs = [c[k] for k in GEN_INPUTS], [o[k] for k in GEN_OUTPUTS]
    shown = [x["legend"], o["before"], o["after"], x["on_label"], o["on"], x["off_label"], o["off"], x["button"]]
    # The check has no outputs: a refusal is a toast only, no error box over the results shown.
    gen = x["button"].click(guarded(check_request, ctx.demo), [c["ref"], c["custom_pose"]], None, preprocess=False,
                            concurrency_limit=None, show_progress="hidden", api_visibility="private").success(
        _running, None, x["button"], queue=False, api_visibility="private").then(
        guarded(generate, ctx.demo), inputs, outputs, api_name="generate", concurrency_limit=1,
        concurrency_id="generation", preprocess=False)
    gen.then(_shown, o["state"], shown, api_visibility="private")
    rerank = c["eta"].release(rerank_generated, [c["eta"], o["state"]], [o["before"], o["after"], o["msg"]],
                              api_visibility="private", trigger_mode="always_last")
    # A new person from the user clears the previous one's results at once, and cancels a generation running
    # for it (its results would otherwise land under the new photo).
    cleared = [o["on"], o["off"], o["before"], o["after"], o["msg"], o["sheet"], o["state"], x["legend"], x["button"],
               c["ref"]]
    c["ref"].input(guarded(new_reference, ctx.demo), c["ref"], cleared, api_visibility="private", preprocess=False,
                   cancels=[gen, rerank])
    if x["examples"] is not None:  # an example's cached results replace the shown ones: nothing may land after
        x["examples"].dataset.click(_no_custom_pose, None, c["custom_pose"], cancels=[gen, rerank], queue=False,
                                    api_visibility="private")
        x["examples"].cache_event.then(_example_shown, o["example_state"], [o["state"], *shown],
                                       api_visibility="private")
    # Show the 8 target poses once the page is open.
    ctx.demo.load(_skeleton_views, None, [o["skel"], o["sheet"]], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
