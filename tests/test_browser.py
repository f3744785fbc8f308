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

import pytest

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
def test_generate_tab(page, out: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageOps

    from pose2id_demo.engine import ETA_RANGE, shipped_assets
    from pose2id_demo.ui.app import EXAMPLES_DIR
    from pose2id_demo.ui.generate_tab import OUT_OF_DOMAIN, READY_MSG

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
    example = sorted(EXAMPLES_DIR.glob("*.jpg"))[0]  # the typical query
    page.locator("#ref-image input[type=file]").set_input_files(str(example))
    page.locator("#ref-image img").first.wait_for()
    typed(page, "#steps", "20")  # the paper's steps (what the README screenshot shows)
    page.locator("#generate-btn").click()
    if not (have["poses"] and have["generator"]):  # the page must say what is missing, not fake images
        page.get_by_text(re.compile(r"weights are missing|poses are not shipped")).first.wait_for(timeout=60_000)
        return
    page.get_by_text("Generated 8 poses").wait_for(timeout=600_000)
    msg = page.locator("#gen-msg").inner_text()
    assert "Benchmark query" in msg and "(steps 20," in msg, msg
    hits = re.search(r"correct in the top-10 (\d+) → (\d+)", msg)
    assert hits and int(hits[1]) + int(hits[2]) > 0, f"the first example is a total failure: {msg}"
    page.locator("#pose-sheet img").wait_for()
    for elem in ("#gen-before", "#gen-after"):
        page.locator(f"{elem} img").wait_for()
        no_toolbar_over(page, elem)
    assert page.locator("#gen-legend").is_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "screenshot.png"), full_page=True)

    # Individual images: headings above the galleries, captions are whole pose names, nothing over thumbnail 1.
    page.get_by_text("Individual images (download)").click()
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

    # Picking another example clears the previous person's results at once.
    page.locator("#ref-image input[type=file]").set_input_files(str(sorted(EXAMPLES_DIR.glob("*.jpg"))[1]))
    page.wait_for_function(f"() => document.querySelector('#gen-msg').innerText.includes({READY_MSG[:20]!r})",
                           timeout=60_000)
    assert not page.locator("#gen-before").is_visible()
    assert page.locator("#gen-on img").count() == 0

    # Not a benchmark image: no ranked-list boxes, the reason said once, and real photos' domain named.
    mirrored = tmp_path / "not-a-query.png"
    ImageOps.mirror(Image.open(example).convert("RGB")).save(mirrored)
    page.locator("#ref-image input[type=file]").set_input_files(str(mirrored))
    page.wait_for_timeout(1000)
    typed(page, "#steps", "2")
    page.locator("#generate-btn").click()
    page.get_by_text("Generated 8 poses").wait_for(timeout=600_000)
    msg = page.locator("#gen-msg").inner_text()
    assert "not a benchmark query image" in msg and "--ipg-weights DIR" in msg, msg
    assert page.locator("body").inner_text().count("not a benchmark query image") == 1
    assert OUT_OF_DOMAIN.split("(")[0].strip("ℹ️ ") in msg
    page.wait_for_timeout(1000)
    assert not page.locator("#gen-before").is_visible() and not page.locator("#gen-legend").is_visible()


# ------------------------------------------------------------------------------------------- Benchmark
def test_benchmark_tab(page, out: Path) -> None:
    from pose2id_demo.engine import get_engine

    page.reload()
    page.get_by_text(TITLE).wait_for()
    open_tab(page, "Benchmark")
    cell(page, "#metrics-table", "+NFC").wait_for()
    # The page starts on the typical query and says which rule picked it.
    pq = get_engine().bench.per_query('standard', 'synthped-reid')
    t = pq["typical"]
    page.get_by_text("typical of the measured mean change").wait_for()
    assert pq["rule"] in page.locator("#start-msg").inner_text()
    page.wait_for_function(f"() => document.querySelector('#rank-msg').innerText.includes('Query #{t} ')")
    assert page.locator("#query-index input[type=number]").input_value() == str(t)
    for elem in ("#rank-before", "#rank-after"):
        page.locator(f"{elem} img").wait_for()
        no_toolbar_over(page, elem)

    # The per-query view: a table of every query before/after, a plot, a summary; a row click shows that query.
    view = page.locator("#per-query-table")
    for head in ("query", "AP before", "AP after", "ΔAP", "rank before", "rank after"):
        assert view.locator("th", has_text=head).count() >= 1, head
    assert "improved" in page.locator("#per-query-msg").inner_text()
    page.locator("#per-query-plot .js-plotly-plot").wait_for()
    cells = view.locator("[role=gridcell][data-row='3']")
    q = cells.first.inner_text().strip()
    cells.nth(2).click()
    page.wait_for_function(f"() => document.querySelector('#rank-msg').innerText.includes('Query #{q} ')")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "screenshot-benchmark.png"), full_page=True)

    # Enter in a slider's number box commits the value (no blur needed).
    before = table_text(page)
    typed(page, "#k1", "5")
    page.wait_for_function("prev => document.querySelector('#metrics-table').innerText !== prev", arg=before,
                           timeout=120_000)
    assert "baseline" in table_text(page)
    # Re-ranking changes the baseline row too, and its label says so.
    page.locator("#rerank input[type=checkbox]").check()
    cell(page, "#metrics-table", "baseline + re-ranking").wait_for(timeout=300_000)
    page.locator("#rerank input[type=checkbox]").uncheck()
    cell(page, "#metrics-table", "baseline").wait_for(timeout=120_000)

    # t-SNE and cleansing.
    page.get_by_text("t-SNE of identities before / after (Fig. 4)").click()
    page.get_by_role("button", name="Draw t-SNE").click()
    page.get_by_text("identities, before (baseline)").first.wait_for(timeout=300_000)
    page.get_by_text("Data cleansing of the train split").click()
    page.locator("#clean-btn").click()
    page.get_by_text("Train split:").first.wait_for(timeout=600_000)
    msg = page.locator("#clean-msg").inner_text()
    assert "removed:" in msg  # the number removed per identity
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
    assert "Speed" in text
    for name, ep in api.items():  # every output has a name in the API info (no value_23)
        for r in ep["returns"]:
            assert r.get("label") and not re.fullmatch(r"value_\d+", r["label"]), (name, r)
