"""End-to-end in a real headless Chromium (Debian's ``chromium``; Playwright from PyPI drives it, never
downloads a browser): every tab, the per-query view and the typical start query, and the layout checked by
bounding boxes, visibility and text.

Screenshots go to ``$POSE2ID_SCREENSHOTS`` (e.g. ``docs``: the README's ``screenshot.png`` and
``screenshot-benchmark.png``) or the test's tmp folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
                                                ".ci/run installs it"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TITLE = "Pose2ID · From Poses to Identity"


@pytest.fixture(scope="module")
def page(app_url: str) -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(180_000)
        pg.goto(app_url)
        pg.get_by_text(TITLE).wait_for()
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = os.environ.get("POSE2ID_SCREENSHOTS")
    folder = Path(d) if d else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def box(locator) -> dict:
    b = locator.bounding_box()
    assert b is not None, f"{locator} has no box (not visible)"
    return b


def overlap(a: dict, b: dict) -> bool:
    """Whether two boxes intersect (touching edges do not count)."""
    return (a["x"] < b["x"] + b["width"] - 0.5 and b["x"] < a["x"] + a["width"] - 0.5
            and a["y"] < b["y"] + b["height"] - 0.5 and b["y"] < a["y"] + a["height"] - 0.5)


def no_toolbar_over(page, elem: str) -> None:
    """No button of the image block lies over its picture (the toolbar covered the 10th ranked image)."""
    img = box(page.locator(f"{elem} img").first)
    for i in range(page.locator(f"{elem} button").count()):
        b = page.locator(f"{elem} button").nth(i)
        if b.is_visible() and b.locator("img").count() == 0:  # the picture itself may sit in a button
            assert not overlap(box(b), img), f"a button of {elem} covers its image"


def typed(page, elem: str, value: str) -> None:
    """Type into a slider's number box and press Enter (no blur: Enter alone must commit)."""
    field = page.locator(f"{elem} input[type=number]")
    field.fill(value)
    field.press("Enter")


def cell(page, table: str, text: str):
    """The visible table cell whose whole text is ``text`` (Gradio also keeps a hidden sizing copy)."""
    return page.locator(f"{table} [role=gridcell]").filter(has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).first


def table_text(page, elem: str = "#metrics-table") -> str:
    return page.locator(elem).inner_text()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


# ------------------------------------------------------------------------------------------- Generate
#: Every text #gen-msg shows, recorded in the page (so that a message shown for a moment is seen too).
WATCH_MSG = """() => {
  window.__msgs = [];
  const el = document.querySelector('#gen-msg');
  new MutationObserver(() => window.__msgs.push(el.innerText)).observe(el, {subtree: true, childList: true,
                                                                           characterData: true});
}"""


def pixels(page, elem: str) -> list:
    """The images a gallery shows, decoded (fetched from the app as the browser fetched them)."""
    import io

    import numpy as np
    from PIL import Image

    srcs = [im.get_attribute("src") for im in page.locator(f"{elem} img").all()]
    return [np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")) for src in srcs]


def generated(page, n: int = 8) -> None:
    page.get_by_text(f"Generated {n} poses").first.wait_for(timeout=600_000)


def test_generate_tab(page, out: Path, app_url: str) -> None:
    from gradio_client import Client, handle_file

    from pose2id_demo.engine import ETA_RANGE, get_engine, load_image, shipped_assets
    from pose2id_demo.ui import tempfiles
    from pose2id_demo.ui.app import EXAMPLES_DIR
    from pose2id_demo.ui.generate_tab import GENERATE_LABEL, OUT_OF_DOMAIN

    open_tab(page, "Generate")
    # Before anything is generated: no empty ranked-list boxes.
    assert not page.locator("#gen-before").is_visible() and not page.locator("#gen-after").is_visible()
    # The custom-pose label sits above its drop zone, which keeps its height.
    label, zone = box(page.locator("#custom-pose-label")), box(page.locator("#custom-pose button").first)
    assert label["y"] + label["height"] <= zone["y"] + 1 and zone["height"] >= 120, (label, zone)
    # One η range on every tab.
    assert page.locator("#g-eta input[type=number]").get_attribute("max") == f"{ETA_RANGE[1]:g}"
    assert page.locator("#g-eta input[type=number]").get_attribute("min") == f"{ETA_RANGE[0]:g}"
    have = shipped_assets()
    examples = sorted(EXAMPLES_DIR.glob("*.jpg"))
    if not (have["poses"] and have["generator"]):  # the page must say what is missing, not fake images
        page.locator("#ref-image input[type=file]").set_input_files(str(examples[0]))
        page.locator("#generate-btn").click()
        page.get_by_text(re.compile(r"weights are missing|poses are not shipped")).first.wait_for(timeout=60_000)
        return

    # The headline example, from the examples (cached lazily): its top-10 visibly improves.
    page.locator(".gallery-item, [data-testid='dataset'] button").first.click()
    generated(page)
    msg = page.locator("#gen-msg").inner_text()
    hits = re.search(r"correct in the top-10 (\d+) → (\d+)", msg)
    assert hits and int(hits[2]) >= int(hits[1]) + 3, f"the headline example does not visibly improve: {msg}"
    assert page.locator("#steps input[type=number]").input_value() == "20" and "(steps 20," in msg
    page.locator("#pose-sheet img").wait_for()
    for elem in ("#gen-before", "#gen-after", "#pose-sheet"):
        page.locator(f"{elem} img").wait_for()
        no_toolbar_over(page, elem)
    assert page.locator("#gen-legend").is_visible()
    assert page.locator("#generate-btn").is_enabled()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "screenshot.png"), full_page=True)
    # The cached example answers the images a fresh generation with the same inputs gives.
    page.get_by_text("Individual images (download)").click()
    page.locator("#gen-on img").nth(7).wait_for()
    cached_on, cached_off = pixels(page, "#gen-on"), pixels(page, "#gen-off")
    fresh = Client(app_url, verbose=False).predict(
        handle_file(str(examples[0])), "both", 20, 3.5, get_engine().default_seed, 0.5, None, "synthped-reid",
        api_name="/generate")
    for got, want in ((cached_on, fresh[0]), (cached_off, fresh[1])):
        assert len(got) == len(want) == 8
        for a, w in zip(got, want):
            assert (a == np.asarray(Image.open(w["image"]).convert("RGB"))).all(), "cached ≠ fresh"
    cached = list(tempfiles.examples_dir().rglob("indices.csv"))  # the examples Gradio cached: the first one
    assert len(cached) == 1 and cached[0].read_text().split() == ["0"], cached
    _individual_images(page)

    # A new photo while a generation runs: the button is off during the run, the run is cancelled, and the
    # previous person's results never show under the new photo.
    old_q = get_engine().queries.index_of(load_image(examples[1]))
    new_q = get_engine().queries.index_of(load_image(examples[3]))
    page.evaluate(WATCH_MSG)
    page.locator("#ref-image input[type=file]").set_input_files(str(examples[1]))
    page.locator("#ref-image img").first.wait_for()
    page.locator("#generate-btn").click()
    page.wait_for_function("() => document.querySelector('#generate-btn').disabled")
    page.locator("#ref-image input[type=file]").set_input_files(str(examples[3]))
    page.wait_for_function(f"() => !document.querySelector('#generate-btn').disabled && "
                           f"document.querySelector('#generate-btn').innerText.includes({GENERATE_LABEL!r})")
    assert not page.locator("#gen-before").is_visible() and page.locator("#gen-on img").count() == 0
    typed(page, "#steps", "2")
    page.locator("#generate-btn").click()
    generated(page)  # (the engine runs one generation at a time: the cancelled one finished before this one)
    page.wait_for_timeout(1000)
    msgs = page.evaluate("() => window.__msgs")
    assert any(f"Benchmark query #{new_q} " in m for m in msgs), msgs
    assert not any(f"Benchmark query #{old_q} " in m for m in msgs), "the previous person's results showed"

    # Not a benchmark image, IFR on only, a photo as the custom pose: no ranked-list boxes (the reason said
    # once), the embedded generator's domain named, no empty 'without IFR' box; the 9th column keeps its title.
    mirrored = out / "not-a-query.png"
    ImageOps.mirror(Image.open(examples[0]).convert("RGB")).save(mirrored)
    page.locator("#ref-image input[type=file]").set_input_files(str(mirrored))
    page.wait_for_timeout(1000)
    page.get_by_label("on", exact=True).first.check()
    page.locator("#custom-pose input[type=file]").set_input_files(str(examples[5]))
    page.wait_for_timeout(1000)
    page.locator("#generate-btn").click()
    generated(page, 9)
    page.wait_for_timeout(1000)
    assert page.locator("#gen-on").is_visible() and page.locator("#gen-on img").count() == 9
    assert not page.locator("#gen-off").is_visible() and not page.locator("#gen-off-label").is_visible()
    msg = page.locator("#gen-msg").inner_text()
    assert "not a benchmark query image" in msg and "--ipg-weights DIR" in msg, msg
    assert page.locator("body").inner_text().count("not a benchmark query image") == 1
    assert OUT_OF_DOMAIN.split("(")[0].strip("ℹ️ ") in msg
    assert not page.locator("#gen-before").is_visible() and not page.locator("#gen-legend").is_visible()
    no_toolbar_over(page, "#pose-sheet")
    page.locator("#pose-sheet").screenshot(path=str(out / "custom-pose-sheet.png"))
    page.get_by_label("both", exact=True).first.check()
    page.locator("#custom-pose button[aria-label='Clear']").first.click()

    # A file that is not an image: a clear sentence, no broken picture, the pose sheet kept; Generate then
    # answers with a toast only (no error box over the message or the sheet).
    bad = out / "not-an-image.png"
    bad.write_bytes(b"this is a text file, not a picture\n" * 20)
    page.locator("#ref-image input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#gen-msg').innerText.includes('not an image file')")
    assert page.locator("#ref-image img").count() == 0, "a broken picture is shown"
    page.locator("#pose-sheet img").wait_for()
    page.locator("#generate-btn").click()
    page.get_by_text("Please upload a person image").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    for elem in ("#gen-msg", "#pose-sheet"):
        assert not any(e.is_visible() for e in page.locator(f"{elem} .error").all()), f"an error box over {elem}"
    assert page.locator("#pose-sheet img").is_visible()
    page.screenshot(path=str(out / "non-image-upload.png"), full_page=True)


def _individual_images(page) -> None:
    """Individual images: headings above the galleries, captions are whole pose names, nothing over thumbnail 1."""
    for gal in ("#gen-on", "#gen-off", "#skeletons"):
        page.locator(f"{gal} img").nth(7).wait_for()
        first = box(page.locator(f"{gal} img").first)
        for lab in page.locator(f"{gal} [data-testid='block-label']").all():
            assert not (lab.is_visible() and overlap(box(lab), first)), f"a label covers {gal}'s first thumbnail"
        caps = page.locator(f"{gal} .caption-label")
        for i in range(caps.count()):
            c = caps.nth(i)
            assert "IFR" not in c.inner_text() and "…" not in c.inner_text()
            assert c.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"caption {c.inner_text()!r} is cut"


# ------------------------------------------------------------------------------------------- Benchmark
def numbers_even(page, elem: str, columns: tuple[int, ...]) -> None:
    """Every shown number of these columns has two decimals (or is — for no valid match)."""
    for i in range(4):
        for c in columns:
            text = row_cells(page, elem, i).nth(c).inner_text().strip()
            assert re.fullmatch(r"-?\d+\.\d\d|—", text), (elem, i, c, text)


def row_cells(page, elem: str, i: int):
    """The visible cells of displayed row ``i`` of a table (Gradio also keeps a hidden sizing copy)."""
    return page.locator(f"{elem} [role=gridcell][data-row='{i}']:visible")


def test_benchmark_tab(page, out: Path) -> None:
    from pose2id_demo.ablation import Settings
    from pose2id_demo.engine import get_engine
    from pose2id_demo.ui import render
    from pose2id_demo.ui.benchmark_tab import SORT_HINT

    page.reload()
    page.get_by_text(TITLE).wait_for()
    open_tab(page, "Benchmark")
    cell(page, "#metrics-table", "+NFC").wait_for()
    numbers_even(page, "#metrics-table", (1, 2, 3, 4, 5))
    # The paper's numbers beside ours, labelled as the paper's.
    paper = page.locator("#paper-table")
    assert "quoted from the paper, not computed here" in page.locator("#paper-numbers").inner_text()
    for n in ("79.88", "83.92", "88.02", "90.39", "3.34", "52.81", "57.27"):
        assert n in paper.inner_text(), n
    # The page starts on the typical query and says which rule picked it.
    pq = get_engine().bench.per_query('standard', 'synthped-reid')
    t = pq["typical"]
    page.wait_for_function(f"() => document.querySelector('#rank-msg').innerText.includes('Query #{t} ')")
    page.wait_for_function(f"() => document.querySelector('#start-msg').innerText.includes('#{t} of standard')")
    assert pq["rule"] in page.locator("#start-msg").inner_text()
    assert page.locator("#query-index input[type=number]").input_value() == str(t)
    rank_msg = page.locator("#rank-msg").inner_text()
    assert "after: +NFC+IPG: IPG (eq. 9, η=0.5) on query and gallery, then NFC (k1=2, k2=2, separate" in rank_msg
    assert re.search(r"AP \d+\.\d\d → \d+\.\d\d %", rank_msg), rank_msg
    for elem in ("#rank-before", "#rank-after"):
        page.locator(f"{elem} img").wait_for()
        no_toolbar_over(page, elem)

    # Distance distributions: one panel per row, each with its overlap; the note says the same numbers.
    page.locator("#dist-plot .js-plotly-plot").wait_for()
    dd = get_engine().bench.distance_distributions("standard", "synthped-reid", Settings())
    titles = page.locator("#dist-plot .annotation").all_text_contents()
    assert [f"overlap {h['overlap']:.3f}" in " ".join(titles) for h in dd["rows"].values()] == [True] * 4, titles

    # The per-query view: sortable by the header menu, as the hint says; a row click shows that query.
    view = page.locator("#per-query-table")
    for head in ("query", "AP before", "AP after", "ΔAP", "rank before", "rank after"):
        assert view.locator("th", has_text=head).count() >= 1, head
    msg = page.locator("#per-query-msg").inner_text()
    assert "improved" in msg and SORT_HINT.replace("**", "").split(";")[0] in msg
    numbers_even(page, "#per-query-table", (2, 3, 4))
    page.locator("#per-query-plot .js-plotly-plot").wait_for()
    cells = view.locator("[role=gridcell][data-row='3']")
    q = cells.first.inner_text().strip()
    cells.nth(2).click()
    page.wait_for_function(f"() => document.querySelector('#rank-msg').innerText.includes('Query #{q} ')")
    page.wait_for_function(f"() => document.querySelector('#start-msg').innerText.includes('Showing query #{q} ')")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "screenshot-benchmark.png"), full_page=True)
    header = view.locator("th", has_text="AP after").first
    header.hover()
    header.locator("button[aria-label='Open cell menu']").click()
    page.locator("[role=menu]").get_by_text("Sort ascending").click()
    page.wait_for_timeout(500)
    shown = page.locator("#per-query-table [role=gridcell]:visible").all_inner_texts()  # displayed order
    after = [float(x) for x in shown[3::len(render.PER_QUERY_COLUMNS)] if x.strip() not in ("", "—")]
    assert len(after) >= 5 and after == sorted(after), after  # the rows shown, in ascending AP after

    # Ranked lists of every query, worst AP first; Fig. 2 for the identity with most images.
    page.get_by_text("Ranked lists of every query").click()
    row_cells(page, "#rl-table", 0).first.wait_for()
    worst = get_engine().bench.ranked_rows("standard", "synthped-reid", Settings())["rows"][0]
    first = row_cells(page, "#rl-table", 0)
    assert first.nth(0).inner_text().strip() == str(worst["query"])
    assert first.nth(4).inner_text().strip() == f"{worst['AP']:.2f}"
    g = worst["gallery"][0]
    assert f"id {g['pid']} · c{g['camid']} · {g['distance']:.3f}" in first.nth(6).inner_text()
    page.get_by_text("One identity around its centre (Fig. 2)").click()
    page.locator("#identity-plot .js-plotly-plot").wait_for()
    ids = get_engine().bench.identities("standard", "synthped-reid")
    pid = ids[0][0]
    page.wait_for_function(f"() => document.querySelector('#identity-msg').innerText.includes('Identity {pid}:')")
    # Another identity picked from the list (the API documents the parameter as an integer; the page still works).
    page.locator("#identity-pid input").click()
    page.get_by_role("option", name=f"id {ids[1][0]} ({ids[1][1]} images)").click()
    page.wait_for_function(f"() => document.querySelector('#identity-msg').innerText.includes('Identity {ids[1][0]}:')")

    # Enter in a slider's number box commits the value (no blur needed).
    before = table_text(page)
    typed(page, "#k1", "5")
    page.wait_for_function("prev => document.querySelector('#metrics-table').innerText !== prev", arg=before,
                           timeout=120_000)
    assert "baseline" in table_text(page)
    # Re-ranking changes the baseline row too, and its label says so; the ranked-list message says it too.
    page.locator("#rerank input[type=checkbox]").check()
    cell(page, "#metrics-table", "baseline + re-ranking").wait_for(timeout=300_000)
    page.wait_for_function("() => document.querySelector('#rank-msg').innerText.includes('k-reciprocal')",
                           timeout=300_000)
    page.locator("#rerank input[type=checkbox]").uncheck()
    cell(page, "#metrics-table", "baseline").wait_for(timeout=120_000)

    # Another task: the slider spans its queries and starts on its typical query; the note follows the slider.
    page.get_by_label("occluded").check()
    t_occ = get_engine().bench.per_query("occluded", "synthped-reid", Settings(k1=5))["typical"]
    page.wait_for_function(f"() => document.querySelector('#start-msg').innerText.includes('#{t_occ} of occluded')",
                           timeout=300_000)
    typed(page, "#query-index", "23")
    page.wait_for_function("() => document.querySelector('#start-msg').innerText.includes('Showing query #23 of "
                           "occluded')", timeout=120_000)
    assert f"the typical query is **#{t_occ}**".replace("**", "") in page.locator("#start-msg").inner_text()

    # t-SNE: the legend explains colours, circles and diamonds.
    page.get_by_text("t-SNE of identities before / after (Fig. 4)").click()
    page.get_by_role("button", name="Draw t-SNE").click()
    page.get_by_text("identities, before (baseline)").first.wait_for(timeout=300_000)
    legend = page.locator("#tsne-plot .legend").first.text_content() or ""
    assert "circle: gallery image" in legend and "diamond: query" in legend, legend
    # Cleansing: the heading above the tiles, nothing over them.
    page.get_by_text("Data cleansing of the train split").click()
    page.locator("#clean-btn").click()
    page.get_by_text("Train split:").first.wait_for(timeout=600_000)
    msg = page.locator("#clean-msg").inner_text()
    assert "removed:" in msg  # the number removed per identity
    page.locator("#clean-out img").wait_for()
    img, head = box(page.locator("#clean-out img")), box(page.locator("#clean-out-label"))
    assert head["y"] + head["height"] <= img["y"] + 1, (head, img)
    for lab in page.locator("#clean-out [data-testid='block-label'], #clean-out button").all():
        assert not (lab.is_visible() and lab.locator("img").count() == 0 and overlap(box(lab), img)), \
            "something covers the cleansing tiles"
    page.locator("#clean-out").screenshot(path=str(out / "cleansing.png"))
    if "nothing to show" in msg:  # 0 PoseValid rejects: no empty placeholder panel
        page.wait_for_timeout(1000)
        assert not page.locator("#clean-rej").is_visible()
    assert page.locator("#clean-ids").is_visible()


# ------------------------------------------------------------------------------------------- Your features
def test_features_tab(page) -> None:
    open_tab(page, "Your features")
    page.locator("#export-btn").click()
    # The exported file's name, not ".npz": Gradio's drop zone lists the accepted types (".npz") before any
    # file is in it, and an Evaluate clicked then rightly answers "Please upload a feature file".
    page.locator("#npz").get_by_text("synthped-standard").first.wait_for(timeout=300_000)
    page.locator("#eval-btn").click()
    page.get_by_text("gallery features.").first.wait_for(timeout=600_000)
    page.locator("#m-plot .js-plotly-plot").wait_for()
    page.locator("#f-dist-plot .js-plotly-plot").wait_for()
    assert "overlap" in " ".join(page.locator("#f-dist-plot .annotation").all_text_contents())
    page.wait_for_timeout(1500)
    # M curve: the title is inside the figure, the two panels' titles do not collide.
    fig = box(page.locator("#m-plot .main-svg").first)
    title = box(page.locator("#m-plot .gtitle"))
    assert title["y"] >= fig["y"] - 1 and title["x"] >= fig["x"] - 1, (title, fig)
    assert title["x"] + title["width"] <= fig["x"] + fig["width"] + 1, "the M-curve title is cut off"
    subs = [box(a) for a in page.locator("#m-plot .annotation").all() if a.is_visible()]
    assert len(subs) >= 2
    assert not any(overlap(a, b) for i, a in enumerate(subs) for b in subs[i + 1:]), "M-curve panel titles overlap"
    # η curve: the baselines are named in the legend, not by text labels lying on top of each other.
    title = page.locator("#eta-plot .gtitle").text_content() or ""
    if "no generated features" not in title:  # (an exported file without q_gen/g_gen has no η curve)
        legend = page.locator("#eta-plot .legend").first.text_content() or ""
        assert "baseline mAP" in legend and "baseline Rank-1" in legend, legend
    notes = [box(a) for a in page.locator("#eta-plot .annotation").all() if a.is_visible()]
    assert not any(overlap(a, b) for i, a in enumerate(notes) for b in notes[i + 1:])


# ------------------------------------------------------------------------------------------- About + API
def test_about_tab_and_api_names(page, app_url: str) -> None:
    from gradio_client import Client

    open_tab(page, "About")
    text = page.locator("#about-text").inner_text()
    api = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in api:
        assert name.lstrip("/") in text, f"About does not list {name}"
    assert "Speed" in text and "f̃ = f/‖f‖ + (η/M) Σ" in text
    for name, ep in api.items():  # every output has a name in the API info (no value_23)
        for r in ep["returns"]:
            assert r.get("label") and not re.fullmatch(r"value_\d+", r["label"]), (name, r)
