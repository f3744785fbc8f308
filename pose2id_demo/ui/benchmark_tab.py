"""The **Benchmark** tab: the Table 2 ablation on SynthPed with live η/k1/k2 controls, the ranked lists of one
query, t-SNE (Fig. 4) and data cleansing (Supplementary 7.1). API: ``benchmark``, ``ranks``, ``tsne``,
``cleansing``."""

from __future__ import annotations

from typing import Any

import gradio as gr

from pose2id_demo.engine import APPLY_CHOICES, ETA_RANGE, K_RANGE, N_IDS_RANGE, TASKS, get_engine
from pose2id_demo.ui import render
from pose2id_demo.ui.common import (
    BENCH_CONCURRENCY,
    COLUMNS,
    LEGEND,
    TabContext,
    progress_fn,
    user_errors,
)


def _n_queries() -> int:
    """Queries per SynthPed task (the same for the three tasks); the engine re-checks the range."""
    try:
        from pose2id_demo.data import synthped

        return int(synthped.NUM_TEST_IDS * synthped.QUERIES_PER_ID)
    except (ImportError, AttributeError):
        return 200


# ---------------------------------------------------------------------------------------- callbacks
@user_errors
def benchmark(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
              rerank: bool, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """The Table 2 ablation on a SynthPed task (metrics in %, ID² lower is better)."""
    res = get_engine().benchmark(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on,
                                 ipg_on=ipg_on, rerank=rerank, progress=progress_fn(progress))
    s = res["settings"]
    head = (f"**SynthPed-{s['task']}**, {s['backbone']}: {res['n_query']} queries, {res['n_gallery']} gallery "
            f"images · η={s['eta']:g}, k1={s['k1']}, k2={s['k2']}, NFC on {s['nfc_on']} (separate sets), "
            f"IPG on {s['ipg_on']}, re-ranking {'on' if s['rerank'] else 'off'}.")
    notes = "\n\n".join([head] + [f"⚠️ {n}" for n in res["notes"]])
    return render.metrics_frame(res["rows"]), notes


@user_errors
def ranks(task: str, backbone: str, query_index: float, eta: float, k1: float, k2: float, nfc_on: str,
          ipg_on: str, rerank: bool) -> tuple:
    """Top-10 gallery list of one query before and after centralization (green = same identity)."""
    r = get_engine().ranks(task=task, backbone=backbone, query_index=query_index, eta=eta, k1=k1, k2=k2,
                           nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank)
    msg = (f"Query #{int(query_index)} (id {r['query']['pid']}, cam {r['query']['camid']}): correct in the top-10 "
           f"**{render.hits(r, 'before')} → {render.hits(r, 'after')}** (after = {r['after_setting']}).")
    return *render.ranked_strip_files(r), msg


@user_errors
def tsne(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str, n_ids: float,
         progress: gr.Progress = gr.Progress()) -> Any:
    """t-SNE of ~10 identities before/after centralization (paper Fig. 4)."""
    res = get_engine().tsne(task=task, backbone=backbone, eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on,
                            n_ids=n_ids, progress=progress_fn(progress))
    return render.tsne_figure(res)


@user_errors
def cleansing(task: str, backbone: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """Mahalanobis outliers and PoseValid rejects of the train split (Supplementary 7.1)."""
    res = get_engine().cleansing(task=task, backbone=backbone, progress=progress_fn(progress))
    outl = render.image_file(render.tile_grid([(o["path"], render.RED, f"id {o['pid']} d={o['distance']:.1f}")
                                               for o in res["outliers"][:36]]))
    rej = render.image_file(render.tile_grid([(o["path"], render.RED, o["reason"])
                                              for o in res["pose_rejects"][:36]]))
    msg = (f"Train split: {res['n_train']} images of {res['n_ids']} identities. Mahalanobis filter (keeps "
           f"[Q_{res['quantile']:g}, Q_{1 - res['quantile']:g}] per identity, eq. 31): **{len(res['outliers'])}** outliers (most distant shown). PoseValid: "
           f"**{len(res['pose_rejects'])}** rejects ({res['n_no_pose']} without keypoints).")
    return outl, rej, msg


# ------------------------------------------------------------------------------------------- layout
def build(ctx: TabContext) -> None:
    """The Benchmark tab and its events; the table and the ranked lists fill in when the page opens."""
    with gr.Tab("Benchmark", id="benchmark"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                task = gr.Radio(list(TASKS), value="standard", label="Task (SynthPed)")
                backbone = gr.Dropdown(ctx.backbones, value=ctx.default_backbone, label="ReID backbone")
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

    # Fill the tab once the page is open (features load on first use, with progress).
    ctx.demo.load(benchmark, bench_inputs, [table, bench_msg], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
    ctx.demo.load(ranks, rank_inputs, [r_before, r_after, rank_msg], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
