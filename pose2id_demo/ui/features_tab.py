"""The **Your features** tab: a feature file → the ablation table, the same / different identity distance
distributions, the k1×k2 heatmap (Fig. 9), the η curve (Fig. 8) and the M curve (Table 6); the benchmark's own
features can be exported to try it with.
API: ``evaluate_features``, ``export_features``."""

from __future__ import annotations

import gradio as gr

from pose2id_demo.engine import TASKS, Pose2IDError, check_settings, export_benchmark_features, get_engine
from pose2id_demo.paths import REPO_ROOT, SAMPLE_FEATURES
from pose2id_demo.ui import controls, render, tempfiles
from pose2id_demo.ui.common import COLUMNS, TabContext, progress_fn, user_errors
from pose2id_demo.ui.request_files import file_input, guarded


# ---------------------------------------------------------------------------------------- callbacks
@user_errors
def evaluate_features(npz: str | None, k1: float, k2: float, eta: float, nfc_on: str, ipg_on: str,
                      exported: str | None = None, progress: gr.Progress = gr.Progress()) -> tuple:
    """Your own feature file → ablation table, k1×k2 heatmap (Fig. 9), η curve (Fig. 8), M curve (Table 6).

    ``exported`` (this user's last exported benchmark file, kept in ``gr.State``) is used when no file
    was uploaded."""
    npz = npz or exported
    if npz is None:
        raise Pose2IDError("Please upload a feature file (.npz) first.")
    settings = check_settings(k1=k1, k2=k2, eta=eta, nfc_on=nfc_on, ipg_on=ipg_on)
    res = get_engine().evaluate_features(npz, settings, progress=progress_fn(progress))
    base = res["rows"][0] if res["rows"] else None
    msg = "\n\n".join([f"{res['n_query']} queries, {res['n_gallery']} gallery features."] +
                      [f"⚠️ {n}" for n in res["notes"]])
    heat = None if res["grid"] is None else render.heatmap_figure(res["grid"])  # None: stopped at the time limit
    dists = res.get("distances")
    dist_fig, dist_msg = ((render.distance_figure(dists), render.distance_note(dists, settings)) if dists
                          else (None, ""))
    return (render.metrics_frame(res["rows"]), heat, render.eta_figure(res["eta_curve"], base),
            render.m_figure(res["m_curve"]), msg, dist_fig, dist_msg)


@user_errors
def export_features(task: str, backbone: str) -> str:
    """Write the benchmark's features (+ generated features) as a feature file to try the tab with."""
    with tempfiles.new_export(f"synthped-{task}-{backbone}.npz") as path:
        export_benchmark_features(get_engine().features, task, backbone, path)
    tempfiles.enforce_quota()  # the oldest temporary files go if the export took the app over its quota
    return str(path)


# ------------------------------------------------------------------------------------------- layout
def build(ctx: TabContext) -> None:
    """The Your-features tab and its events (an export lands in the upload box, ready to evaluate)."""
    with gr.Tab("Your features", id="features"):
        gr.Markdown("Upload an `.npz` with the keys of `python -m pose2id_demo eval`: `q_feats (nq,d)`, "
                    "`g_feats (ng,d)`, `q_pids`, `g_pids`, `q_camids`, `g_camids`, and optionally `q_gen "
                    "(nq,M,d)`, `g_gen (ng,M,d)` (features of generated images). Files are read without "
                    f"unpickling. No file at hand? Try `{SAMPLE_FEATURES.relative_to(REPO_ROOT)}` (what `python -m "
                    "pose2id_demo extract` writes for the README's demo folder; no generated features, so the table "
                    "has the baseline and +NFC rows), or export the benchmark's own (with its generated features).",
                    elem_id="features-help")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                npz = file_input(gr.File(label="Feature file (.npz)", file_types=[".npz"], elem_id="npz"), "feature")
                with gr.Row():
                    f_k1 = controls.knob("k1", label="k1")
                    f_k2 = controls.knob("k2", label="k2")
                f_eta = controls.knob("eta", label="η")
                f_nfc = controls.knob("nfc_on")
                f_ipg = controls.knob("ipg_on")
                eval_btn = gr.Button("Evaluate", variant="primary", elem_id="eval-btn")
                with gr.Row():
                    exp_task = controls.dropdown(list(TASKS), value="standard", label="export task")
                    exp_bb = controls.dropdown(ctx.backbones, value=ctx.default_backbone, label="export backbone")
                exp_btn = gr.Button("Export benchmark features", elem_id="export-btn")
                exp_file = gr.File(label="exported feature file", interactive=False)
            with gr.Column(scale=2):
                f_msg = gr.Markdown(label="message", elem_id="features-msg")
                f_table = gr.Dataframe(label="Ablation on your features (%)", headers=COLUMNS, interactive=False)
                gr.Markdown("**Distance distributions**: same vs different identity, before / after")
                dist_msg = gr.Markdown(label="overlap and means", elem_id="f-dist-msg")
                dist_plot = gr.Plot(label="query-gallery distances", elem_id="f-dist-plot")
                heat = gr.Plot(label="k1 × k2 (Fig. 9)")
                with gr.Row():
                    eta_plot = gr.Plot(label="η curve (Fig. 8)", elem_id="eta-plot")
                    m_plot = gr.Plot(label="M curve (Table 6)", elem_id="m-plot")
        exported_state = gr.State(None)
        eval_btn.click(guarded(evaluate_features, ctx.demo), [npz, f_k1, f_k2, f_eta, f_nfc, f_ipg, exported_state],
                       [f_table, heat, eta_plot, m_plot, f_msg, dist_plot, dist_msg], api_name="evaluate_features",
                       concurrency_limit=2, concurrency_id="features")
        exp_btn.click(export_features, [exp_task, exp_bb], exp_file, api_name="export_features",
                      concurrency_limit=2, concurrency_id="features").success(
            lambda f: (f, f), exp_file, [npz, exported_state], api_visibility="private")  # ready to evaluate
