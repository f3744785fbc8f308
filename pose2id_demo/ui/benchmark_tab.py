"""The **Benchmark** tab: the Table 2 ablation on SynthPed with live η/k1/k2 controls, the ranked lists of one
query, every query's AP before/after (sortable; the page starts on the typical query), t-SNE (Fig. 4) and data
cleansing (Supplementary 7.1). API: ``benchmark``, ``per_query``, ``ranks``, ``tsne``, ``cleansing``.

Every view answers with its real result (or a sentence saying why not): the engine checks the input, then waits
for the CPU and for what the view needs — the progress bar says what it waits for."""

from __future__ import annotations

from typing import Any

import gradio as gr

from pose2id_demo.ablation import Settings
from pose2id_demo.engine import N_IDS_RANGE, TASKS, check_settings, get_engine
from pose2id_demo.ui import controls, render
from pose2id_demo.ui.common import (
    BENCH_CONCURRENCY,
    COLUMNS,
    LEGEND,
    TabContext,
    progress_fn,
    user_errors,
)


# ---------------------------------------------------------------------------------------- callbacks
@user_errors
def benchmark(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
              rerank: bool, nfc_mode: str = "separate", progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """The Table 2 ablation on a SynthPed task (metrics in %, ID² lower is better)."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    res = get_engine().bench.benchmark(task, backbone, settings, progress=progress_fn(progress))
    s: Settings = res["settings"]
    if s.rerank:  # every row's distances are re-ranked, the baseline's too: the labels say so
        for r in res["rows"]:
            r["setting"] = f"{r['setting']} + re-ranking"
    name = f"SynthPed-{res['task']}" if res["task"] in TASKS else res["task"]  # else a `--dataset` folder
    head = (f"**{name}**, {res['backbone']}: {res['n_query']} queries, {res['n_gallery']} gallery "
            f"images · η={s.eta:g}, k1={s.k1}, k2={s.k2}, NFC on {s.nfc_on} ({s.nfc_mode} sets), "
            f"IPG on {s.ipg_on}, re-ranking {'on' if s.rerank else 'off'}.")
    notes = "\n\n".join([head] + [f"⚠️ {n}" for n in res["notes"]])
    return render.metrics_frame(res["rows"]), notes


@user_errors
def ranks(task: str, backbone: str, query_index: float, eta: float, k1: float, k2: float, nfc_on: str,
          ipg_on: str, rerank: bool, nfc_mode: str = "separate") -> tuple:
    """Top-10 gallery list of one query before and after centralization (green = same identity)."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    r = get_engine().bench.ranks(task, backbone, query_index, settings)
    msg = (f"Query #{int(query_index)} (id {r['query']['pid']}, cam {r['query']['camid']}): correct in the top-10 "
           f"**{render.hits(r, 'before')} → {render.hits(r, 'after')}** (after = {r['after_setting']}).")
    return *render.ranked_strip_files(r), msg


@user_errors
def per_query(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
              rerank: bool, nfc_mode: str = "separate") -> tuple:
    """Every query's AP (%) and first-correct rank before (baseline) and after the current setting."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    res = get_engine().bench.per_query(task, backbone, settings)
    d = [r["ΔAP"] for r in res["rows"] if r["ΔAP"] == r["ΔAP"]]
    up, down = sum(x > 0 for x in d), sum(x < 0 for x in d)
    t = res["typical"]
    typical = (f" Typical query: **#{t}** (ΔAP {res['rows'][t]['ΔAP']:+.2f}) — {res['rule']}." if t is not None
               else "")
    msg = (f"{len(res['rows'])} queries, after = {res['after_setting']}{' + re-ranking' if rerank else ''}: "
           f"**{up} improved, {down} worse, {len(d) - up - down} unchanged**; mean ΔAP **{res['mean_delta_ap']:+.2f}**."
           f"{typical} Click a column header to sort, a row to show its ranked lists.")
    return render.per_query_frame(res), render.per_query_figure(res), msg


@user_errors
def _start_view(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
                rerank: bool, nfc_mode: str = "separate") -> tuple:
    """When the page opens: the per-query view, and the ranked lists start on the typical query."""
    table, fig, msg = per_query(task, backbone, eta, k1, k2, nfc_on, ipg_on, rerank, nfc_mode)
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    res = get_engine().bench.per_query(task, backbone, settings)
    t = res["typical"]
    start = (f"Starting on query **#{t}**, typical of the measured mean change ({res['rule']})."
             if t is not None else "")
    return table, fig, msg, gr.update(value=t if t is not None else 0), start


@user_errors
def _query_range(task: str, query_index: float) -> Any:
    """The query slider spans the chosen task's queries (an added dataset has its own count)."""
    n = get_engine().bench.n_queries(task)
    return gr.Slider(maximum=n - 1, value=min(int(query_index or 0), n - 1))


def _pick_query(evt: gr.SelectData) -> Any:
    """A click on a row of the per-query table shows that query's ranked lists."""
    row = evt.row_value if evt.row_value is not None else None
    return gr.update(value=int(row[0])) if row else gr.skip()


@user_errors
def tsne(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str, n_ids: float,
         nfc_mode: str = "separate", progress: gr.Progress = gr.Progress()) -> Any:
    """t-SNE of ~10 identities before/after centralization (paper Fig. 4)."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, nfc_mode=nfc_mode)
    res = get_engine().bench.tsne(task, backbone, settings, n_ids=n_ids, progress=progress_fn(progress))
    return render.tsne_figure(res), (f"{int(n_ids)} identities, before (baseline) and after "
                                     f"({res['after_setting']}); ID² {res['id2_before']:.3f} → {res['id2_after']:.3f}.")


@user_errors
def cleansing(task: str, backbone: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
    """Mahalanobis outliers and PoseValid rejects of the train split (Supplementary 7.1)."""
    res = get_engine().cleansing(task=task, backbone=backbone, progress=progress_fn(progress))
    outl = render.image_file(render.tile_grid([(o["path"], render.RED, f"id {o['pid']} d={o['distance']:.1f}")
                                               for o in res["outliers"][:36]]))
    rej = (render.image_file(render.tile_grid([(o["path"], render.RED, o["reason"]) for o in res["pose_rejects"][:36]]))
           if res["pose_rejects"] else None)
    q = f"[Q_{res['quantile']:g}, Q_{1 - res['quantile']:g}]"
    rule = (f"removes distances above Q_{1 - res['quantile']:g} of all identities' distances pooled, each "
            "identity's scaled by its median (a small distance is typical, never an outlier; eq. 31)"
            if res.get("band") == "pooled" else f"keeps {q} per identity, the literal eq. 31")
    removed = _removed_per_identity(res)
    hist = {}
    for n in removed.values():
        hist[n] = hist.get(n, 0) + 1
    spread = ", ".join(f"{n} removed: {hist[n]} ids" for n in sorted(hist))
    msg = (f"Train split: {res['n_train']} images of {res['n_ids']} identities. Mahalanobis filter ({rule}): "
           f"**{len(res['outliers'])}** outliers (most distant shown); per identity {spread}. PoseValid: "
           f"**{len(res['pose_rejects'])}** rejects ({res['n_no_pose']} without keypoints)"
           f"{'' if res['pose_rejects'] else ' — nothing to show'}.")
    import pandas as pd

    per_id = pd.DataFrame(sorted(([pid, n] for pid, n in removed.items() if n), key=lambda r: (-r[1], r[0])),
                          columns=["id", "removed"])
    return outl, rej, msg, per_id


def _rejects_shown(msg: str) -> Any:
    """No empty placeholder: the PoseValid panel shows only when there are rejects (the message counts them)."""
    return gr.update(visible=bool(msg) and "nothing to show" not in msg)


def _removed_per_identity(res: dict[str, Any]) -> dict[int, int]:
    """Images removed per identity: the engine's count when it gives one, else counted from its outlier list."""
    given = res.get("removed_per_id")
    if given:
        return {int(k): int(v) for k, v in dict(given).items()}
    out: dict[int, int] = {}
    for o in res["outliers"]:
        out[int(o["pid"])] = out.get(int(o["pid"]), 0) + 1
    return out


# ------------------------------------------------------------------------------------------- layout
def _setting_controls(ctx: TabContext) -> tuple:
    """The task, the backbone and the settings' controls (:func:`pose2id_demo.ui.controls.knob`), in the order
    of the callbacks' parameters (the NFC mode last)."""
    tasks = get_engine().bench.tasks()  # SynthPed's three, then any `python app.py --dataset NAME=ROOT`
    task = gr.Radio(tasks, value="standard", label="Task (SynthPed)" if len(tasks) == len(TASKS)
                    else "Task (SynthPed, then your --dataset folders)")
    backbone = gr.Dropdown(ctx.backbones, value=ctx.default_backbone, label="ReID backbone")
    eta = controls.knob("eta", elem_id="eta", info="0.5 suits the tiny embedded generator (η curve: Your features tab)")
    with gr.Row():
        k1 = controls.knob("k1", elem_id="k1")
        k2 = controls.knob("k2", elem_id="k2")
    nfc_on = controls.knob("nfc_on")
    nfc_mode = controls.knob("nfc_mode", elem_id="nfc-mode")
    ipg_on = controls.knob("ipg_on")
    rerank = controls.knob("rerank", elem_id="rerank")
    return task, backbone, eta, k1, k2, nfc_on, nfc_mode, ipg_on, rerank


def build(ctx: TabContext) -> None:
    """The Benchmark tab and its events; the table, the per-query view and the ranked lists (on the typical
    query) fill in when the page opens."""
    with gr.Tab("Benchmark", id="benchmark"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                task, backbone, eta, k1, k2, nfc_on, nfc_mode, ipg_on, rerank = _setting_controls(ctx)
            with gr.Column(scale=2):
                table = gr.Dataframe(label="Ablation (Table 2): metrics in %, ID² lower = denser", headers=COLUMNS,
                                     interactive=False, elem_id="metrics-table")
                bench_msg = gr.Markdown(label="notes", elem_id="bench-msg")
                with gr.Accordion("Ranked lists for one query", open=True):
                    start_msg = gr.Markdown(elem_id="start-msg")
                    query_index = controls.slider(0, get_engine().bench.n_queries("standard") - 1, value=0, step=1,
                                                  label="Query index", elem_id="query-index")
                    rank_msg = gr.Markdown(label="message", elem_id="rank-msg")
                    gr.Markdown(LEGEND.format(before="baseline", after="centralization with the settings"))
                    # No toolbar on the ranked strips: its buttons covered the 10th image.
                    r_before = gr.Image(label="before", show_label=False, type="numpy", format="png",
                                        interactive=False, buttons=[], elem_id="rank-before")
                    r_after = gr.Image(label="after", show_label=False, type="numpy", format="png",
                                       interactive=False, buttons=[], elem_id="rank-after")
        with gr.Accordion("Every query: AP and first-correct rank before / after (sortable)", open=True,
                          elem_id="per-query"):
            pq_msg = gr.Markdown(label="summary", elem_id="per-query-msg")
            with gr.Row():
                pq_table = gr.Dataframe(headers=render.PER_QUERY_COLUMNS, interactive=False, max_height=380,
                                        label="per query (AP in %, rank 0 = no valid match)", scale=3,
                                        elem_id="per-query-table")
                pq_plot = gr.Plot(label="AP after vs before (one point per query)", scale=2, elem_id="per-query-plot")
        with gr.Accordion("t-SNE of identities before / after (Fig. 4)", open=False):
            with gr.Row():
                n_ids = controls.slider(*N_IDS_RANGE, value=10, step=1, label="identities")
                tsne_btn = gr.Button("Draw t-SNE")
            tsne_msg = gr.Markdown(label="message", elem_id="tsne-msg")
            tsne_plot = gr.Plot(label="t-SNE")
        with gr.Accordion("Data cleansing of the train split (Supplementary 7.1)", open=False):
            clean_btn = gr.Button("Run cleansing", elem_id="clean-btn")
            clean_msg = gr.Markdown(label="message", elem_id="clean-msg")
            clean_out = gr.Image(label="Mahalanobis outliers (most distant first)", type="numpy", format="png",
                                 interactive=False, elem_id="clean-out")
            clean_rej = gr.Image(label="PoseValid rejects", type="numpy", format="png", interactive=False,
                                 visible=False, elem_id="clean-rej")
            clean_ids = gr.Dataframe(headers=["id", "removed"], interactive=False, max_height=240,
                                     label="images removed per identity (ids with none left out)", elem_id="clean-ids")

        bench_inputs = [task, backbone, eta, k1, k2, nfc_on, ipg_on, rerank, nfc_mode]
        rank_inputs = [task, backbone, query_index, eta, k1, k2, nfc_on, ipg_on, rerank, nfc_mode]
        tsne_inputs = [task, backbone, eta, k1, k2, nfc_on, ipg_on, n_ids, nfc_mode]
        controls_changed = [c.change for c in (task, backbone, nfc_on, nfc_mode, ipg_on, rerank)] + \
                           [c.release for c in (eta, k1, k2)]
        common = dict(trigger_mode="always_last", concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
        gr.on(controls_changed, benchmark, bench_inputs, [table, bench_msg], api_name="benchmark", **common)
        gr.on(controls_changed, per_query, bench_inputs, [pq_table, pq_plot, pq_msg], api_name="per_query", **common)
        # A new task first sets the query slider's range (its index may be past the new task's last query).
        rank_changed = [c.change for c in (backbone, nfc_on, nfc_mode, ipg_on, rerank)] + \
                       [c.release for c in (eta, k1, k2)]
        gr.on(rank_changed + [query_index.release], ranks, rank_inputs,
              [r_before, r_after, rank_msg], api_name="ranks", **common)
        task.change(_query_range, [task, query_index], query_index, api_visibility="private").then(
            ranks, rank_inputs, [r_before, r_after, rank_msg], api_visibility="private", **common)
        pq_table.select(_pick_query, None, query_index, api_visibility="private").then(
            ranks, rank_inputs, [r_before, r_after, rank_msg], api_visibility="private", **common)
        tsne_btn.click(tsne, tsne_inputs, [tsne_plot, tsne_msg], api_name="tsne", concurrency_limit=2,
                       concurrency_id="tsne")
        clean_btn.click(cleansing, [task, backbone], [clean_out, clean_rej, clean_msg, clean_ids],
                        api_name="cleansing", concurrency_limit=1, concurrency_id="cleansing").then(
            _rejects_shown, clean_msg, clean_rej, api_visibility="private")

    # Fill the tab once the page is open: the table, the per-query view, then the typical query's ranked lists.
    ctx.demo.load(benchmark, bench_inputs, [table, bench_msg], api_visibility="private",
                  concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
    ctx.demo.load(_start_view, bench_inputs, [pq_table, pq_plot, pq_msg, query_index, start_msg],
                  api_visibility="private", concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench").then(
        ranks, rank_inputs, [r_before, r_after, rank_msg], api_visibility="private",
        concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
    # Enter in any slider's number box commits the value (Gradio fires "release" only on blur), on every tab.
    ctx.demo.load(None, None, None, js=ENTER_COMMITS)


#: Browser-side: Enter in a slider's number box blurs it, which makes Gradio fire the slider's release event.
ENTER_COMMITS = """() => {
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.key === "Enter" && t instanceof HTMLInputElement && t.type === "number"
        && (t.getAttribute("aria-label") || "").startsWith("number input for")) {
      t.blur();
    }
  }, true);
}"""
