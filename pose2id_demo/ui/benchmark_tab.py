"""The **Benchmark** tab: the Table 2 ablation on SynthPed with live η/k1/k2 controls, the ranked lists of one
query, every query's AP before/after (sortable; the page starts on the typical query), t-SNE (Fig. 4) and data
cleansing (Supplementary 7.1). API: ``benchmark``, ``per_query``, ``ranks``, ``tsne``, ``cleansing``.

Every view answers with its real result (or a sentence saying why not): the engine checks the input, then waits
for the CPU and for what the view needs — the progress bar says what it waits for."""

from __future__ import annotations

from typing import Any

import gradio as gr

from pose2id_demo.ablation import Settings
from pose2id_demo.engine import N_IDS_RANGE, TASKS, Pose2IDError, check_int, check_settings, get_engine
from pose2id_demo.paper_reference import TABLES, reference_rows
from pose2id_demo.ui import controls, render
from pose2id_demo.ui.common import (
    BENCH_CONCURRENCY,
    COLUMNS,
    LEGEND,
    TabContext,
    progress_fn,
    user_errors,
)

#: How the per-query table sorts (Gradio 6's table: the ⋮ menu of each column header; a click on a header only
#: selects the column).
SORT_HINT = ("Sort by any column with the **⋮** menu in its header (Sort ascending / descending); click a row to "
             "show that query's ranked lists.")
PAPER_LABEL = ("Pose2ID's own results on Market-1501 (TransReID, Tables 1-2; ImageNet-only weights, Table 5): "
               "a real dataset and the official generator, not this demo's SynthPed")


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
    row = get_engine().bench.per_query(task, backbone, settings)["rows"][int(query_index)]
    msg = (f"Query #{int(query_index)} (id {r['query']['pid']}, cam {r['query']['camid']}): AP "
           f"**{render.pct(row['AP before'])} → {render.pct(row['AP after'])} %**, correct in the top-10 "
           f"**{render.hits(r, 'before')} → {render.hits(r, 'after')}**. Before: "
           f"{render.describe_setting('baseline', settings)}; after: "
           f"{render.describe_setting(r['after_setting'], settings)}.")
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
    typical = (f" Typical query: **#{t}** (ΔAP {res['rows'][t]['ΔAP']:+.{render.PCT_DECIMALS}f}) — {res['rule']}."
               if t is not None else "")
    msg = (f"{len(res['rows'])} queries; after = {render.describe_setting(res['after_setting'], settings)}: "
           f"**{up} improved, {down} worse, {len(d) - up - down} unchanged**; mean ΔAP "
           f"**{res['mean_delta_ap']:+.{render.PCT_DECIMALS}f}**.{typical} {SORT_HINT}")
    return render.per_query_frame(res), render.per_query_figure(res), msg


@user_errors
def typical_note(task: str, backbone: str, query_index: float, eta: float, k1: float, k2: float, nfc_on: str,
                 ipg_on: str, rerank: bool, nfc_mode: str = "separate") -> str:
    """Which query the ranked lists show, and the typical query of the current task and setting."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    res = get_engine().bench.per_query(task, backbone, settings)
    t = res["typical"]
    if t is None:
        return f"Showing query **#{int(query_index)}** of {task}."
    here = "it is" if int(query_index) == t else f"the typical query is **#{t}**"
    return (f"Showing query **#{int(query_index)}** of {task}; for these settings {here} (ΔAP "
            f"{res['rows'][t]['ΔAP']:+.{render.PCT_DECIMALS}f}: {res['rule']}).")


@user_errors
def _start_view(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
                rerank: bool, nfc_mode: str = "separate") -> tuple:
    """When the page opens or the task changes: the per-query view, and the query slider, over the task's
    queries, on its typical query."""
    table, fig, msg = per_query(task, backbone, eta, k1, k2, nfc_on, ipg_on, rerank, nfc_mode)
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    res = get_engine().bench.per_query(task, backbone, settings)
    t = res["typical"]
    n = get_engine().features.n_queries(task)
    return table, fig, msg, gr.Slider(maximum=n - 1, value=t if t is not None else 0)


@user_errors
def _pick_query(evt: gr.EventData) -> Any:
    """A click on a row of the per-query table shows that query's ranked lists. Typed ``gr.EventData``, not
    ``gr.SelectData``: Gradio builds a ``SelectData`` from the event's data before the call, and failed with a
    ``TypeError`` on a call without it (from the raw API), which now gets a sentence."""
    data = getattr(evt, "_data", None)
    row = data.get("row_value") if isinstance(data, dict) else None
    if not isinstance(row, list) or not row:
        raise Pose2IDError("This event is a click on a table row; it takes no input of its own.")
    return gr.update(value=check_int("query index", row[0], 0, 10**9))


@user_errors
def distances(task: str, backbone: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str, rerank: bool,
              nfc_mode: str = "separate", progress: gr.Progress = gr.Progress()) -> tuple:
    """Same-identity vs different-identity query-gallery distances of every row, with their overlap."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    dd = get_engine().bench.distance_distributions(task, backbone, settings, progress=progress_fn(progress))
    return render.distance_figure(dd), render.distance_note(dd, settings)


@user_errors
def ranked_lists(task: str, backbone: str, order: str, eta: float, k1: float, k2: float, nfc_on: str, ipg_on: str,
                 rerank: bool, nfc_mode: str = "separate") -> tuple:
    """Every query's ranked list after the current setting: AP before / after, each gallery item's identity,
    camera and distance; worst AP first, best first or in query order."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    res = get_engine().bench.ranked_rows(task, backbone, settings, order=order)
    how = {"worst": "worst AP (after) first", "best": "best AP (after) first", "query": "in query order"}[order]
    msg = (f"{len(res['rows'])} queries, {how}; after = {render.describe_setting(res['after_setting'], settings)}. "
           "Click a row to show its ranked lists above.")
    return render.ranked_rows_frame(res), msg


@user_errors
def identity_choices(task: str, backbone: str) -> Any:
    """The identities of the task, most images first (the first one selected)."""
    ids = get_engine().bench.identities(task, backbone)
    choices = [(f"id {pid} ({n} images)", pid) for pid, n in ids if n >= 2]
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


@user_errors
def identity(task: str, backbone: str, pid: Any, eta: float, k1: float, k2: float, nfc_on: str,
             ipg_on: str, rerank: bool, nfc_mode: str = "separate") -> tuple:
    """The paper's Fig. 2 for one identity: one feature dimension of its images around the identity centre,
    before and after the current setting."""
    settings = check_settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, rerank=rerank, nfc_mode=nfc_mode)
    view = get_engine().bench.identity_view(task, backbone, settings, pid)
    b, a = view["before"], view["after"]
    msg = (f"Identity {view['pid']}: {len(b['values'])} query + gallery images, dimension {view['dim']} (where they "
           f"vary most at the baseline). σ {b['std']:.4f} → {a['std']:.4f}; mean distance to the identity centre "
           f"{b['mean_distance_to_centre']:.3f} → {a['mean_distance_to_centre']:.3f} "
           f"(after = {render.describe_setting(view['row'], settings)}).")
    return render.identity_figure(view), msg


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


def _rejects_shown(msg: str) -> tuple:
    """No empty placeholder: the PoseValid panel and its heading show only when there are rejects (the message
    counts them)."""
    shown = isinstance(msg, str) and bool(msg) and "nothing to show" not in msg
    return gr.update(visible=shown), gr.update(visible=shown)


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
    tasks = get_engine().features.tasks()  # SynthPed's three, then any `python app.py --dataset NAME=ROOT`
    task = controls.radio(tasks, value="standard", label="Task (SynthPed)" if len(tasks) == len(TASKS)
                          else "Task (SynthPed, then your --dataset folders)")
    backbone = controls.dropdown(ctx.backbones, value=ctx.default_backbone, label="ReID backbone")
    eta = controls.knob("eta", elem_id="eta", info="0.5 suits the tiny embedded generator (η curve: Your features tab)")
    with gr.Row():
        k1 = controls.knob("k1", elem_id="k1")
        k2 = controls.knob("k2", elem_id="k2")
    nfc_on = controls.knob("nfc_on")
    nfc_mode = controls.knob("nfc_mode", elem_id="nfc-mode")
    ipg_on = controls.knob("ipg_on")
    rerank = controls.knob("rerank", elem_id="rerank")
    return task, backbone, eta, k1, k2, nfc_on, nfc_mode, ipg_on, rerank


def _views_layout() -> dict[str, Any]:
    """The accordions below the table: every query's AP, the ranked-list table, the distance distributions,
    Fig. 2, t-SNE and cleansing (their components by name)."""
    c: dict[str, Any] = {}
    with gr.Accordion("Every query: AP and first-correct rank before / after (sortable)", open=True,
                      elem_id="per-query"):
        c["pq_msg"] = gr.Markdown(label="summary", elem_id="per-query-msg")
        with gr.Row():
            c["pq_table"] = gr.Dataframe(headers=render.PER_QUERY_COLUMNS, interactive=False, max_height=380,
                                         label="per query (AP in %, rank 0 = no valid match)", scale=3,
                                         elem_id="per-query-table")
            c["pq_plot"] = gr.Plot(label="AP after vs before (one point per query)", scale=2, elem_id="per-query-plot")
    with gr.Accordion("Ranked lists of every query: AP, and each gallery item's identity, camera and distance",
                      open=False, elem_id="ranked-lists"):
        c["rl_order"] = controls.radio(
            [("worst AP first", "worst"), ("best AP first", "best"), ("query order", "query")],
            value="worst", label="order", elem_id="rl-order")
        c["rl_msg"] = gr.Markdown(label="message", elem_id="rl-msg")
        c["rl_table"] = gr.Dataframe(headers=render.RANKED_COLUMNS, interactive=False, max_height=420, wrap=False,
                                     label="ranked lists after (✓ same identity, ✗ another; c = camera, then the "
                                           "distance); AP in %", elem_id="rl-table")
    with gr.Accordion("Distance distributions: same vs different identity, before / after", open=True,
                      elem_id="distances"):
        c["dist_msg"] = gr.Markdown(label="overlap and means", elem_id="dist-msg")
        c["dist_plot"] = gr.Plot(label="query-gallery distances", elem_id="dist-plot")
    with gr.Accordion("One identity around its centre (Fig. 2)", open=False, elem_id="identity"):
        # Its choices come with the task's features; the engine checks a value sent through the API.
        c["pid"] = controls.identity_picker(label="identity (most images first)", elem_id="identity-pid")
        c["id_msg"] = gr.Markdown(label="message", elem_id="identity-msg")
        c["id_plot"] = gr.Plot(label="Fig. 2", elem_id="identity-plot")
    with gr.Accordion("t-SNE of identities before / after (Fig. 4)", open=False):
        with gr.Row():
            c["n_ids"] = controls.slider(*N_IDS_RANGE, value=10, step=1, label="identities",
                                         name="number of identities")
            c["tsne_btn"] = gr.Button("Draw t-SNE")
        c["tsne_msg"] = gr.Markdown(label="message", elem_id="tsne-msg")
        c["tsne_plot"] = gr.Plot(label="t-SNE", elem_id="tsne-plot")
    with gr.Accordion("Data cleansing of the train split (Supplementary 7.1)", open=False):
        c["clean_btn"] = gr.Button("Run cleansing", elem_id="clean-btn")
        c["clean_msg"] = gr.Markdown(label="message", elem_id="clean-msg")
        # The heading as text above the picture: a floating block label covered the first row of tiles.
        gr.Markdown("**Mahalanobis outliers** (most distant first)", elem_id="clean-out-label")
        c["clean_out"] = gr.Image(label="Mahalanobis outliers (most distant first)", show_label=False, type="numpy",
                                  format="png", interactive=False, elem_id="clean-out")
        c["clean_rej_label"] = gr.Markdown("**PoseValid rejects**", visible=False, elem_id="clean-rej-label")
        c["clean_rej"] = gr.Image(label="PoseValid rejects", show_label=False, type="numpy", format="png",
                                  interactive=False, visible=False, elem_id="clean-rej")
        c["clean_ids"] = gr.Dataframe(headers=["id", "removed"], interactive=False, max_height=240,
                                      label="images removed per identity (ids with none left out)", elem_id="clean-ids")
    return c


def _main_layout(ctx: TabContext) -> dict[str, Any]:
    """The settings column, and beside it the table, the paper's numbers and one query's ranked lists."""
    c: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            (c["task"], c["backbone"], c["eta"], c["k1"], c["k2"], c["nfc_on"], c["nfc_mode"], c["ipg_on"],
             c["rerank"]) = _setting_controls(ctx)
        with gr.Column(scale=2):
            c["table"] = gr.Dataframe(label="Ablation (Table 2) on this benchmark, measured here: metrics in %, "
                                      "ID² lower = denser", headers=COLUMNS, interactive=False, elem_id="metrics-table")
            c["bench_msg"] = gr.Markdown(label="notes", elem_id="bench-msg")
            with gr.Accordion("The paper's numbers (Market-1501; quoted from the paper, not computed here)",
                              open=True, elem_id="paper-numbers"):
                gr.Dataframe(render.paper_frame([(TABLES[n]["title"].split(":")[0], *reference_rows(n))
                                                 for n in ("table2", "table5")]),
                             interactive=False, label=PAPER_LABEL, elem_id="paper-table")
            with gr.Accordion("Ranked lists for one query", open=True):
                c["start_msg"] = gr.Markdown(label="query shown", elem_id="start-msg")
                c["query_index"] = controls.slider(0, get_engine().features.n_queries("standard") - 1, value=0, step=1,
                                                   label="Query index", name="query index", elem_id="query-index")
                c["rank_msg"] = gr.Markdown(label="message", elem_id="rank-msg")
                gr.Markdown(LEGEND.format(before="baseline", after="centralization with the settings") +
                            " Under each image: its camera and its distance to the query.")
                # No toolbar on the ranked strips: its buttons covered the 10th image.
                c["r_before"] = gr.Image(label="before", show_label=False, type="numpy", format="png",
                                         interactive=False, buttons=[], elem_id="rank-before")
                c["r_after"] = gr.Image(label="after", show_label=False, type="numpy", format="png",
                                        interactive=False, buttons=[], elem_id="rank-after")
    return c


def build(ctx: TabContext) -> None:
    """The Benchmark tab and its events; the table, the per-query view and the ranked lists (on the typical
    query) fill in when the page opens."""
    with gr.Tab("Benchmark", id="benchmark"):
        c = _main_layout(ctx)
        c.update(_views_layout())
    _wire(ctx, c)


def _wire(ctx: TabContext, c: dict[str, Any]) -> None:
    """The tab's events: every view follows the settings; a new task or a picked row moves the query slider."""
    settings = [c[k] for k in ("eta", "k1", "k2", "nfc_on", "ipg_on", "rerank", "nfc_mode")]
    bench_inputs = [c["task"], c["backbone"], *settings]
    rank_inputs = [c["task"], c["backbone"], c["query_index"], *settings]
    tsne_inputs = [c["task"], c["backbone"], *settings[:5], c["n_ids"], c["nfc_mode"]]
    ranks_out = [c["r_before"], c["r_after"], c["rank_msg"]]
    common = dict(trigger_mode="always_last", concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
    private = dict(api_visibility="private", **common)
    setting_changed = [c[k].change for k in ("backbone", "nfc_on", "nfc_mode", "ipg_on", "rerank")] + \
                      [c[k].release for k in ("eta", "k1", "k2")]
    controls_changed = [c["task"].change] + setting_changed
    gr.on(controls_changed, benchmark, bench_inputs, [c["table"], c["bench_msg"]], api_name="benchmark", **common)
    gr.on(controls_changed, distances, bench_inputs, [c["dist_plot"], c["dist_msg"]], api_name="distances", **common)
    gr.on(setting_changed, per_query, bench_inputs, [c["pq_table"], c["pq_plot"], c["pq_msg"]], api_name="per_query",
          **common)
    rl_inputs = [c["task"], c["backbone"], c["rl_order"], *settings]
    gr.on(setting_changed + [c["rl_order"].change], ranked_lists, rl_inputs, [c["rl_table"], c["rl_msg"]],
          api_name="ranked_lists", **common)
    # The query shown, and the typical query of the task and setting, said after every change of either.
    shown = [c["query_index"].release] + setting_changed
    gr.on(shown, ranks, rank_inputs, ranks_out, api_name="ranks", **common).then(
        typical_note, rank_inputs, c["start_msg"], **private)
    # A new task: its own queries (the slider's range), its typical query, its identities.
    start_out = [c["pq_table"], c["pq_plot"], c["pq_msg"], c["query_index"]]
    c["task"].change(_start_view, bench_inputs, start_out, **private).then(
        ranks, rank_inputs, ranks_out, **private).then(typical_note, rank_inputs, c["start_msg"], **private).then(
        ranked_lists, rl_inputs, [c["rl_table"], c["rl_msg"]], **private)
    id_inputs = [c["task"], c["backbone"], c["pid"], *settings]
    gr.on([c["pid"].input] + setting_changed[1:], identity, id_inputs, [c["id_plot"], c["id_msg"]],
          api_name="identity", **common)
    gr.on([c["task"].change, c["backbone"].change], identity_choices, [c["task"], c["backbone"]], c["pid"],
          **private).then(identity, id_inputs, [c["id_plot"], c["id_msg"]], **private)
    for table in (c["pq_table"], c["rl_table"]):  # a click on a row shows that query's ranked lists
        table.select(_pick_query, None, c["query_index"], api_visibility="private").then(
            ranks, rank_inputs, ranks_out, **private).then(typical_note, rank_inputs, c["start_msg"], **private)
    c["tsne_btn"].click(tsne, tsne_inputs, [c["tsne_plot"], c["tsne_msg"]], api_name="tsne", concurrency_limit=2,
                        concurrency_id="tsne")
    c["clean_btn"].click(cleansing, [c["task"], c["backbone"]], [c["clean_out"], c["clean_rej"], c["clean_msg"],
                                                                 c["clean_ids"]],
                         api_name="cleansing", concurrency_limit=1, concurrency_id="cleansing").then(
        _rejects_shown, c["clean_msg"], [c["clean_rej"], c["clean_rej_label"]], api_visibility="private")
    _on_open(ctx, c, bench_inputs, rank_inputs, rl_inputs, id_inputs, start_out, ranks_out)


def _on_open(ctx: TabContext, c: dict[str, Any], bench_inputs: list, rank_inputs: list, rl_inputs: list,
             id_inputs: list, start_out: list, ranks_out: list) -> None:
    """Fill the tab once the page is open: the table, the distance distributions, the per-query view, then the
    typical query's ranked lists, the ranked-list table and the identity view."""
    private = dict(api_visibility="private", concurrency_limit=BENCH_CONCURRENCY, concurrency_id="bench")
    ctx.demo.load(benchmark, bench_inputs, [c["table"], c["bench_msg"]], **private)
    ctx.demo.load(_start_view, bench_inputs, start_out, **private).then(
        ranks, rank_inputs, ranks_out, **private).then(typical_note, rank_inputs, c["start_msg"], **private).then(
        distances, bench_inputs, [c["dist_plot"], c["dist_msg"]], **private).then(
        ranked_lists, rl_inputs, [c["rl_table"], c["rl_msg"]], **private).then(
        identity_choices, [c["task"], c["backbone"]], c["pid"], **private).then(
        identity, id_inputs, [c["id_plot"], c["id_msg"]], **private)
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
