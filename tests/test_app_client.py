"""The launched app, driven through ``gradio_client`` on a free localhost port: every named endpoint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pose2id_demo.ablation import Settings
from pose2id_demo.engine import get_engine, shipped_assets
from pose2id_demo.ui import render
from pose2id_demo.ui.app import EXAMPLES_DIR

ENDPOINTS = ("generate", "benchmark", "per_query", "ranks", "tsne", "evaluate_features", "cleansing",
             "export_features", "distances", "ranked_lists", "identity")
BENCH = ("standard", "synthped-reid")


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


ASSETS_PRESENT = shipped_assets(*BENCH)
ROWS = ["baseline", "+NFC", "+IPG", "+NFC+IPG"] if ASSETS_PRESENT["generated_features"] else ["baseline", "+NFC"]


def table_rows(table: dict) -> dict[str, dict]:
    return {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}


def test_named_endpoints(client: Client) -> None:
    names = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for ep in ENDPOINTS:
        assert f"/{ep}" in names, ep


@pytest.mark.slow
def test_benchmark_and_new_slider_setting(client: Client) -> None:
    table, msg = client.predict(*BENCH, 1.0, 2, 2, "both", "both", False, api_name="/benchmark")
    rows = table_rows(table)
    assert list(rows) == ROWS, msg
    if not ASSETS_PRESENT["generated_features"]:  # the app says why the IPG rows are missing
        assert "No generated features are shipped" in msg
    for r in rows.values():
        assert 0 <= r["mAP"] <= 100 and 0 <= r["Rank-1"] <= 100 and r["ID²"] > 0
    # A new slider value recomputes only the rows it changes (its latency is `python -m bench.load --slider`).
    table2, _ = client.predict(*BENCH, 1.0, 4, 3, "both", "both", False, api_name="/benchmark")
    rows2 = table_rows(table2)
    assert rows2["baseline"] == rows["baseline"] and rows2["+NFC"] != rows["+NFC"]
    # Centralization tightens identities (ID² is what it acts on directly).
    assert rows[ROWS[-1]]["ID²"] < rows["baseline"]["ID²"]


@pytest.mark.slow
def test_benchmark_nfc_mode_separate_and_joint(client: Client) -> None:
    """The published separate NFC and the joint one, chosen in the Benchmark tab: the table is the ablation's at
    that mode (only the NFC rows change), and the default stays the published separate mode."""
    tables = {mode: table_rows(client.predict(*BENCH, 0.5, 2, 2, "both", "both", False, mode, api_name="/benchmark")[0])
              for mode in ("separate", "joint")}
    default = table_rows(client.predict(*BENCH, 0.5, 2, 2, "both", "both", False, api_name="/benchmark")[0])
    assert default == tables["separate"]
    for mode, rows in tables.items():
        ref = get_engine().bench.benchmark(*BENCH, Settings(nfc_mode=mode))
        assert rows == {r["setting"]: r for r in ref["rows"]}, mode
    sep, joint = tables["separate"], tables["joint"]
    assert sep["baseline"] == joint["baseline"] and sep["+NFC"] != joint["+NFC"]
    if "+IPG" in sep:
        assert sep["+IPG"] == joint["+IPG"] and sep["+NFC+IPG"] != joint["+NFC+IPG"]


def test_api_refuses_out_of_range_parameters(client: Client) -> None:
    # The sliders answer first, with the engine's sentence; the engine re-checks (see test_hardening.py).
    for args, frag in (((*BENCH, 1.0, -3, 2, "both", "both", False), "k1 must be between 1 and 20; got -3."),
                       ((*BENCH, 1.0, 2, 10**6, "both", "both", False), "k2 must be between 1 and 20; got 1000000."),
                       (("mars", BENCH[1], 1.0, 2, 2, "both", "both", False), "mars")):
        with pytest.raises(AppError) as exc:
            client.predict(*args, api_name="/benchmark")
        assert frag in str(exc.value)
    with pytest.raises(ValueError, match="JSON"):  # NaN cannot even be sent as JSON
        client.predict(*BENCH, float("nan"), 2, 2, "both", "both", False, api_name="/benchmark")
    table, _ = client.predict(*BENCH, 1.0, 2, 2, "both", "both", False, api_name="/benchmark")
    assert len(table["data"]) == len(ROWS)  # still serving


@pytest.mark.slow
def test_ranks_and_tsne(client: Client) -> None:
    before, after, msg = client.predict(*BENCH, 5, 1.0, 2, 2, "both", "both", False, api_name="/ranks")
    assert "correct in the top-10" in msg
    ref = get_engine().bench.ranks(*BENCH, query_index=5, settings=Settings(eta=1.0, k1=2, k2=2))
    for path, which in ((before, "before"), (after, "after")):
        strip = np.asarray(Image.open(path).convert("RGB"))
        for i, r in enumerate(ref[which], 1):  # the border colour of each tile is its match flag
            x, y = render.tile_origin(i)
            assert tuple(strip[y + 1, x + 1]) == (render.GREEN if r["match"] else render.RED), (which, i)
    fig, msg = client.predict(*BENCH, 1.0, 2, 2, "both", "both", 6, api_name="/tsne")
    assert fig is not None and "6 identities" in msg


@pytest.mark.slow
def test_per_query_view(client: Client) -> None:
    table, fig, msg = client.predict(*BENCH, 1.0, 2, 2, "both", "both", False, api_name="/per_query")
    ref = get_engine().bench.per_query(*BENCH, settings=Settings(eta=1.0, k1=2, k2=2))
    assert table["headers"] == render.PER_QUERY_COLUMNS and len(table["data"]) == len(ref["rows"])
    for row, r in zip(table["data"], ref["rows"]):
        assert row[0] == r["query"] and row[5:] == [r["rank before"], r["rank after"]]
    assert f"Typical query: **#{ref['typical']}**" in msg and ref["rule"] in msg
    assert fig is not None


@pytest.mark.slow
def test_distances_ranked_lists_and_identity(client: Client) -> None:
    s = Settings(eta=1.0, k1=2, k2=2, nfc_on="query")
    raw = (1.0, 2, 2, "query", "both", False, "separate")
    fig, msg = client.predict(*BENCH, *raw, api_name="/distances")
    ref = get_engine().bench.distance_distributions(*BENCH, s)
    assert fig is not None and all(f"{row} {h['overlap']:.3f}" in msg for row, h in ref["rows"].items())
    assert "NFC (k1=2, k2=2, separate neighbour sets) on the query set only" in msg
    table, msg = client.predict(*BENCH, "worst", *raw, api_name="/ranked_lists")
    rows = get_engine().bench.ranked_rows(*BENCH, s, order="worst")["rows"]
    assert table["headers"][:6] == render.RANKED_COLUMNS and [r[0] for r in table["data"]] == [r["query"] for r in rows]
    aps = [r[4] for r in table["data"]]
    assert aps == sorted(aps) and "worst AP (after) first" in msg
    pid = get_engine().bench.identities(*BENCH)[3][0]
    fig, msg = client.predict(*BENCH, pid, *raw, api_name="/identity")
    view = get_engine().bench.identity_view(*BENCH, s, pid)
    assert fig is not None and f"Identity {pid}:" in msg and f"σ {view['before']['std']:.4f}" in msg
    with pytest.raises(AppError, match="identity"):
        client.predict(*BENCH, 999999, *raw, api_name="/identity")


@pytest.mark.slow
def test_export_then_evaluate_features(client: Client) -> None:
    path = client.predict(*BENCH, api_name="/export_features")
    table, heat, eta_plot, m_plot, msg, dist_plot, dist_msg = client.predict(
        handle_file(path), 2, 2, 1.0, "both", "both", api_name="/evaluate_features")
    bench, _ = client.predict(*BENCH, 1.0, 2, 2, "both", "both", False, api_name="/benchmark")
    mine, theirs = table_rows(table), table_rows(bench)
    assert list(mine) == list(theirs) == ROWS
    for k in ROWS:
        assert mine[k]["mAP"] == pytest.approx(theirs[k]["mAP"], abs=0.01), k
    assert heat is not None and eta_plot is not None and m_plot is not None and dist_plot is not None
    # the same file's distance distributions are the benchmark's (the file holds the same features)
    ref = get_engine().bench.distance_distributions(*BENCH, Settings(eta=1.0, k1=2, k2=2))
    for row, h in ref["rows"].items():
        assert f"{row} {h['overlap']:.3f}" in dist_msg, (row, dist_msg)
    assert ("No generated features" in msg) != ASSETS_PRESENT["generated_features"]


def test_shipped_sample_features_in_the_tab_and_eval(client: Client, capsys: pytest.CaptureFixture) -> None:
    """The shipped sample feature file is one that ``eval`` and the Your-features tab take, with the same numbers
    in both; the tab's help text names it."""
    from pose2id_demo import cli
    from pose2id_demo.paths import REPO_ROOT, SAMPLE_FEATURES

    assert SAMPLE_FEATURES.is_file() and SAMPLE_FEATURES.stat().st_size < 2 * 2**20
    assert cli.main(["eval", str(SAMPLE_FEATURES)]) == 0
    printed = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in capsys.readouterr().out.splitlines()
               if ln.split()[:1] in (["baseline"], ["+NFC"])}
    table, *_ = client.predict(handle_file(str(SAMPLE_FEATURES)), 2, 2, 0.5, "both", "both",
                               api_name="/evaluate_features")
    rows = table_rows(table)
    assert list(rows) == list(printed) == ["baseline", "+NFC"]
    for name, row in rows.items():
        assert [row[h] for h in table["headers"][1:]] == printed[name], name
    assert rows["+NFC"]["mAP"] != rows["baseline"]["mAP"]  # NFC acts on it
    help_text = next(c["props"]["value"] for c in client.config["components"]
                     if c["props"].get("elem_id") == "features-help")
    assert str(SAMPLE_FEATURES.relative_to(REPO_ROOT)) in help_text


@pytest.mark.slow
def test_generate_with_benchmark_example(client: Client) -> None:
    example = sorted(EXAMPLES_DIR.glob("*.jpg"))[0]
    if not (ASSETS_PRESENT["poses"] and ASSETS_PRESENT["generator"]):  # the app must say what is missing
        with pytest.raises(AppError, match="not shipped|not available|missing"):
            client.predict(handle_file(str(example)), "both", 4, 3.5, 42, 1.0, None, BENCH[1], api_name="/generate")
        return
    t = time.perf_counter()
    on, off, skel, before, after, msg, *_ = client.predict(
        handle_file(str(example)), "both", 4, 3.5, 42, 1.0, None, BENCH[1], api_name="/generate")
    seconds = time.perf_counter() - t
    assert len(on) == 8 and len(off) == 8 and len(skel) == 8, msg
    assert Path(before).is_file() and Path(after).is_file()
    assert "Benchmark query" in msg, msg
    a = np.asarray(Image.open(on[0]["image"]))
    assert a.ndim == 3 and a.std() > 1  # a real picture, not a blank
    print(f"generate (2 × 8 poses, 4 steps) took {seconds:.1f} s")


@pytest.mark.slow
def test_cleansing(client: Client) -> None:
    outliers, rejects, msg, per_id = client.predict(*BENCH, api_name="/cleansing")
    assert "Train split" in msg and "outliers" in msg
    res = get_engine().cleansing(*BENCH)
    assert f"**{len(res['outliers'])}** outliers" in msg and f"**{len(res['pose_rejects'])}** rejects" in msg
    assert (outliers is not None) == bool(res["outliers"]) and (rejects is not None) == bool(res["pose_rejects"])
    removed: dict[int, int] = {}  # images removed per identity, as the table lists them
    for o in res["outliers"]:
        removed[o["pid"]] = removed.get(o["pid"], 0) + 1
    assert {int(row[0]): int(row[1]) for row in per_id["data"]} == removed
