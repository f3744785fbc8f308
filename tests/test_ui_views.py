"""The Benchmark and Your-features tabs' pictures of the ablation — the engine's session methods against the
library functions and brute-force references, and what the UI draws and writes from them: the distance
distributions, the Fig. 2 view, the ranked-list table, the paper's quoted numbers, the setting described in
words, numbers formatted evenly, column titles never cut, the t-SNE legend and About's eq. 9."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pose2id_demo import ablation
from pose2id_demo.ablation import Settings
from pose2id_demo.engine import Engine, Pose2IDError
from pose2id_demo.metrics import distance_matrix, per_query_ap
from pose2id_demo.paper_reference import TABLES, reference_rows
from pose2id_demo.ui import render

PAPER = Path("/work/shared/paper/pose2id.txt")


# ------------------------------------------------------------------------------------ the session's views
def test_distance_distributions_are_the_ablations_and_centralization_lowers_the_overlap(eng: Engine) -> None:
    data = eng._store[("bench", "standard", "toy")]
    s = Settings(eta=1.0, rerank=True)  # re-ranking does not apply to feature distances: same histograms
    dd = eng.bench.distance_distributions("standard", "toy", s)
    ref = ablation.distance_distributions(data, Settings(eta=1.0))
    assert list(dd["rows"]) == ["baseline", "+NFC", "+IPG", "+NFC+IPG"] and dd["after_setting"] == "+NFC+IPG"
    for row, h in ref["rows"].items():
        assert np.array_equal(dd["rows"][row]["same"], h["same"]) and dd["rows"][row]["overlap"] == h["overlap"]
    # brute force: the baseline's same-identity pairs are every non-same-camera (query, gallery) of one pid
    d = distance_matrix(data.q, data.g)
    same = (data.q_pids[:, None] == data.g_pids[None]) & (data.q_camids[:, None] != data.g_camids[None])
    assert dd["rows"]["baseline"]["n_same"] == int(same.sum())
    assert dd["rows"]["baseline"]["mean_same"] == pytest.approx(d[same].mean(), abs=1e-9)
    # the toy generations sit near the identity centres: eq. 9 pulls same-identity pairs together
    assert dd["rows"]["+IPG"]["mean_same"] < dd["rows"]["baseline"]["mean_same"]
    assert dd["rows"]["+NFC+IPG"]["overlap"] < dd["rows"]["baseline"]["overlap"]
    assert eng.bench.distance_distributions("standard", "toy", s) is dd  # cached by the rows' settings
    fig = render.distance_figure(dd)
    assert len(fig.data) == 2 * len(dd["rows"])
    assert all(f"overlap {h['overlap']:.3f}" in a.text for a, h in zip(fig.layout.annotations, dd["rows"].values()))
    note = render.distance_note(dd, s)
    assert "re-ranking does not apply" in note and f"baseline {dd['rows']['baseline']['overlap']:.3f}" in note


def test_identity_view_is_fig2_of_the_chosen_identity(eng: Engine) -> None:
    data = eng._store[("bench", "standard", "toy")]
    ids = eng.bench.identities("standard", "toy")
    assert ids[0] == (1, 8) and [n for _, n in ids] == sorted((n for _, n in ids), reverse=True)
    view = eng.bench.identity_view("standard", "toy", Settings(eta=1.0), pid=5)
    assert view["pid"] == 5 and view["row"] == "+NFC+IPG"
    sel = np.flatnonzero(np.concatenate([data.q_pids, data.g_pids]) == 5)
    before = np.concatenate([data.q, data.g])[sel].astype(np.float64)
    assert view["dim"] == int(np.argmax(before.std(axis=0)))
    assert view["before"]["std"] == pytest.approx(before[:, view["dim"]].std())
    assert view["after"]["mean_distance_to_centre"] < view["before"]["mean_distance_to_centre"]
    assert eng.bench.identity_view("standard", "toy", Settings())["pid"] == ids[0][0]  # default: most images
    for bad in (0, 999, "x"):
        with pytest.raises(Pose2IDError, match="identity"):
            eng.bench.identity_view("standard", "toy", Settings(), pid=bad)
    fig = render.identity_figure(view)
    assert f"identity 5, dimension {view['dim']}" in fig.layout.annotations[0].text


@pytest.mark.parametrize("order", ["worst", "best", "query"])
def test_ranked_rows_carry_ap_before_after_distance_and_camera(eng: Engine, order: str) -> None:
    data = eng._store[("bench", "standard", "toy")]
    s = Settings(eta=1.0)
    res = eng.bench.ranked_rows("standard", "toy", s, order=order, top=5)
    rows = res["rows"]
    assert res["after_setting"] == "+NFC+IPG" and len(rows) == len(data.q)
    ap_after, _ = per_query_ap(ablation.distances(data, s, "+NFC+IPG"), data.q_pids, data.g_pids, data.q_camids,
                               data.g_camids)
    ap_before, _ = per_query_ap(distance_matrix(data.q, data.g), data.q_pids, data.g_pids, data.q_camids,
                                data.g_camids)
    for r in rows:
        assert r["AP"] == pytest.approx(100 * ap_after[r["query"]]) and len(r["gallery"]) == 5
        assert r["AP before"] == pytest.approx(100 * ap_before[r["query"]])
        for g in r["gallery"]:
            assert g["camid"] == data.g_camids[g["index"]] and g["match"] == (data.g_pids[g["index"]] == r["pid"])
    aps = [r["AP"] for r in rows]
    if order == "worst":
        assert aps == sorted(aps)
    elif order == "best":
        assert aps == sorted(aps, reverse=True)
    else:
        assert [r["query"] for r in rows] == list(range(len(data.q)))
    frame = render.ranked_rows_frame(res)
    table = frame.data
    assert list(table.columns) == render.RANKED_COLUMNS + ["#1", "#2", "#3", "#4", "#5"]
    g0 = rows[0]["gallery"][0]
    mark = "✓" if g0["match"] else "✗"
    assert table.iloc[0]["#1"] == f"{mark} id {g0['pid']} · c{g0['camid']} · {g0['distance']:.3f}"
    shown = frame.to_html()
    assert f"{rows[0]['AP']:.2f}" in shown  # every AP to two decimals
    # the values themselves (what the API returns) are rounded as shown, not 15 digits
    assert table.iloc[0]["AP after"] == round(rows[0]["AP"], 2)
    assert all(v == round(v, 2) for v in table["AP before"])


# ------------------------------------------------------------------------------------ the paper's numbers
def test_the_papers_numbers_are_the_papers() -> None:
    text = PAPER.read_text() if PAPER.is_file() else pytest.skip("the paper's text is not on this machine")
    lines = {"baseline": "Base", "+NFC": "+NFC", "+IPG": "+IPG", "+NFC+IPG": "+NFC+IPG"}
    for setting, values in TABLES["table2"]["rows"]:  # Table 2's first columns: mAP, Rank-1, ID²
        line = next(ln for ln in text.splitlines() if ln.startswith(lines[setting] + "\t"))
        assert line.split("\t")[1:4] == [f"{v:g}" if k < 2 else f"{v:.4f}" for k, v in enumerate(values)], setting
    t5 = {"baseline (w/o training)": "w/o training", "+IPG": "+IPG\t52.81", "+NFC+IPG (+IPG+NFC)": "+IPG+NFC"}
    for setting, values in TABLES["table5"]["rows"]:
        line = next(ln for ln in text.splitlines() if ln.startswith(t5[setting]))
        got = [float(x) for x in line.split("\t")[1:6]]
        assert got == list(values), setting
    headers, rows = reference_rows("table2")
    assert headers == ["setting", "mAP", "Rank-1", "ID²"] and rows[-1] == ["+NFC+IPG", 90.39, 94.74, 0.1357]
    frame = render.paper_frame([("Table 2", *reference_rows("table2")), ("Table 5", *reference_rows("table5"))])
    assert frame["mAP"].tolist() == ["79.88", "83.92", "88.02", "90.39", "3.34", "52.81", "57.27"]


# ------------------------------------------------------------------------------------ words and numbers
def test_describe_setting_says_what_after_is() -> None:
    s = Settings(eta=0.5, nfc_on="query", ipg_on="gallery", rerank=True, nfc_mode="joint")
    text = render.describe_setting("+NFC+IPG", s)
    assert "IPG (eq. 9, η=0.5) on the gallery set only" in text
    assert "NFC (k1=2, k2=2, joint neighbour sets) on the query set only" in text
    assert text.endswith("ranked by k-reciprocal re-ranking")
    assert render.describe_setting("baseline", Settings()) == "the baseline features"
    assert "IPG" not in render.describe_setting("+NFC", s)


def test_tables_show_every_number_with_the_same_decimals() -> None:
    frame = render.metrics_frame([{"setting": "baseline", "mAP": 61.9, "Rank-1": 50.0, "Rank-5": 59.13,
                                   "Rank-10": 62.5, "mINP": 7.0, "ID²": 0.5}])
    html = frame.to_html()
    for shown in ("61.90", "50.00", "59.13", "62.50", "7.00", "0.5000"):
        assert shown in html, shown
    assert frame.data["mAP"].tolist() == [61.9]  # the values stay numbers: the table sorts by them
    pq = render.per_query_frame({"rows": [{"query": 0, "pid": 3, "AP before": 50.0, "AP after": float("nan"),
                                           "ΔAP": float("nan"), "rank before": 1, "rank after": 0}]})
    assert "50.00" in pq.to_html() and "—" in pq.to_html()


def test_pose_sheet_column_titles_are_never_cut() -> None:
    from PIL import Image, ImageDraw

    font, width = render._font(10), render.THUMB[0] + 6
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    for name in ("front", "custom (pose estimated from the photo)", "custom (skeleton image)", "custom (json)"):
        lines = render.column_title(name, width, font)
        assert " ".join(lines) == name  # every word kept, in order
        assert all(measure(ln, font=font) <= width or " " not in ln for ln in lines), lines
    assert len(render.column_title("custom (pose estimated from the photo)", width, font)) >= 3
    tile = np.zeros((128, 64, 3), np.uint8)
    long = render.pose_sheet(["front", "custom (pose estimated from the photo)"], [("pose", [tile] * 2)])
    short = render.pose_sheet(["front", "back"], [("pose", [tile] * 2)])
    assert long.shape[0] > short.shape[0]  # the header grew for the long title's lines


def test_tsne_legend_explains_circles_and_diamonds() -> None:
    res = {"before": np.zeros((4, 2)), "after": np.ones((4, 2)), "pids": np.array([1, 1, 2, 2]),
           "is_query": np.array([True, False, True, False]), "after_setting": "+NFC", "id2_before": 0.5,
           "id2_after": 0.4}
    fig = render.tsne_figure(res)
    shapes = {t.name: t.marker.symbol for t in fig.data if t.legendgroup == "shape"}
    assert shapes == {"circle: gallery image": "circle", "diamond: query": "diamond"}
    ids = [t for t in fig.data if t.legendgroup != "shape"]
    assert all(t.marker.symbol == ("diamond" if "(query)" in t.hovertemplate else "circle") for t in ids)


def test_about_writes_eq9_as_a_vector_sum() -> None:
    from pose2id_demo.ui.about_tab import ABOUT

    assert "f̃ = f/‖f‖ + (η/M) Σᵢ₌₁ᴹ fᵢ, then f̃ is L2-normalised" in ABOUT
    assert not re.search(r"f̃ = ‖f‖ \+", ABOUT)


def test_the_per_query_sorting_hint_names_the_menu_gradio_has() -> None:
    from pose2id_demo.ui.benchmark_tab import SORT_HINT

    assert "Click a column header to sort" not in SORT_HINT and "⋮" in SORT_HINT and "Sort ascending" in SORT_HINT


def test_choice_controls_refuse_unknown_values_with_one_sentence(caplog):
    """A task, backbone, order or settings choice that does not exist gets the project's sentence naming the
    control and its choices (the value cut to 40 characters) and one warning line, not Gradio's traceback."""
    import logging

    import gradio as gr

    from pose2id_demo.ui import controls

    order = controls.radio([("worst AP first", "worst"), ("query order", "query")], value="worst", label="order")
    assert order.preprocess("query") == "query"
    with caplog.at_level(logging.WARNING, logger="pose2id_demo.ui"):
        with pytest.raises(gr.Error) as err:
            order.preprocess("x" * 100_000)
    assert err.value.message.startswith("order must be one of worst, query; got 'xxxx")
    assert len(err.value.message) < 100
    assert [r.getMessage()[:40] for r in caplog.records if r.name == "pose2id_demo.ui"] == [
        "refused input: order must be one of wors"]
    backbone = controls.dropdown(["synthped-reid", "imagenet-mobilenetv2"], value="synthped-reid",
                                 label="ReID backbone")
    with pytest.raises(gr.Error) as err:
        backbone.preprocess("nope")
    assert err.value.message == "ReID backbone must be one of synthped-reid, imagenet-mobilenetv2; got 'nope'."
    with pytest.raises(gr.Error) as err:
        controls.knob("nfc_on").preprocess("sideways")
    assert err.value.message == "NFC on must be one of none, query, gallery, both; got 'sideways'."
    free = controls.dropdown([], label="identity", allow_custom_value=True)
    assert free.preprocess("1019") == "1019"
