"""The Gradio Blocks app: the page header, the tabs in order, and the launch settings — every number comes
from :mod:`pose2id_demo.engine`.

Each tab is one module with a ``build(ctx)`` that lays it out and wires its events (:data:`TABS`):
**Generate** (:mod:`.generate_tab`), **Benchmark** (:mod:`.benchmark_tab`), **Your features**
(:mod:`.features_tab`) and **About** (:mod:`.about_tab`); what they share is in :mod:`.common`. Adding a tab
is one new module and one line in :data:`TABS`.

Named API endpoints (``gradio_client``): ``generate``, ``benchmark``, ``ranks``, ``tsne``,
``evaluate_features``, ``cleansing``, ``export_features``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import gradio as gr

from pose2id_demo import warmup
from pose2id_demo.ui import about_tab, benchmark_tab, features_tab, generate_tab, tempfiles
from pose2id_demo.ui.common import DEFAULT_BACKBONE, EXAMPLES_DIR, TabContext, backbone_choices

__all__ = ["EXAMPLES_DIR", "MAX_UPLOAD", "TABS", "build_demo", "launch"]

log = logging.getLogger("pose2id_demo.ui")

#: The tabs, in page order: each ``build(ctx)`` lays out one tab and wires its events.
TABS: tuple[Callable[[TabContext], None], ...] = (
    generate_tab.build,
    benchmark_tab.build,
    features_tab.build,
    about_tab.build,
)
#: Uploads above this are refused by Gradio before they reach the engine (documented in About).
MAX_UPLOAD = "100mb"
#: (frequency, age) in seconds: every 10 minutes, uploads, served copies and exports older than an hour go.
CACHE_SWEEP = (600, 3600)

CSS = """
.p2i-small .wrap { min-height: 0 !important; }
#p2i-title { margin-bottom: 0; }
"""


def build_demo(delete_cache: tuple[int, int] = CACHE_SWEEP) -> gr.Blocks:
    """Build the Blocks app (nothing heavy is loaded here; the engine loads lazily on first use).

    ``delete_cache``: (frequency, age) of the sweep of temporary files (:mod:`.tempfiles`)."""
    backbones = backbone_choices()
    default_bb = DEFAULT_BACKBONE if DEFAULT_BACKBONE in backbones else backbones[0]
    with gr.Blocks(title="Pose2ID — training-free ReID by feature centralization", analytics_enabled=False,
                   delete_cache=delete_cache) as demo:
        gr.Markdown("# Pose2ID · From Poses to Identity\nTraining-free person re-identification by **feature "
                    "centralization** (CVPR 2025): generate a person in 8 poses, pull features to their "
                    "identity centre, and watch mAP, Rank-k and identity density move.", elem_id="p2i-title")
        ctx = TabContext(demo=demo, backbones=backbones, default_backbone=default_bb)
        for build_tab in TABS:
            build_tab(ctx)
    return demo


def limit_blas_threads() -> None:
    """NumPy's BLAS (OpenBLAS) on one thread in this process, so that the cheap callbacks' matrix products do
    not take every core from generation (torch's threads, which generation uses, are not touched)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except Exception as exc:  # noqa: BLE001 — threadpoolctl missing or an unknown BLAS: leave it
        log.debug("could not limit the BLAS threads: %s", exc)


def launch(demo: gr.Blocks | None = None, **kwargs: Any) -> Any:
    """Queue and launch offline: host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, no share link,
    no analytics; generation runs one request at a time, at most 64 requests wait. The app's own temporary
    files are swept on the Blocks' ``delete_cache`` schedule (:func:`.tempfiles.lifespan`)."""
    demo = demo if demo is not None else build_demo()
    frequency, age = demo.delete_cache or CACHE_SWEEP
    opts: dict[str, Any] = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        share=False, ssr_mode=False, mcp_server=False, max_file_size=MAX_UPLOAD, show_error=False,
        theme=gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"]),
        css=CSS, app_kwargs={"lifespan": tempfiles.lifespan(frequency, age)},
    )
    opts.update(kwargs)
    limit_blas_threads()
    warmup.preload()  # the first table's imports, before the page is served
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo.launch(**opts)
