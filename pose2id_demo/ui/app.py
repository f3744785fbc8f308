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
from collections.abc import Callable
from typing import Any

import gradio as gr
import torch
from starlette.middleware import Middleware

from pose2id_demo.engine import get_engine
from pose2id_demo.ui import about_tab, benchmark_tab, features_tab, generate_tab, request_files, tempfiles
from pose2id_demo.ui.common import CACHE_SWEEP, DEFAULT_BACKBONE, EXAMPLES_DIR, MAX_UPLOAD, TabContext, backbone_choices

__all__ = ["EXAMPLES_DIR", "MAX_UPLOAD", "TABS", "TORCH_THREADS", "build_demo", "launch"]

log = logging.getLogger("pose2id_demo.ui")

#: The tabs, in page order: each ``build(ctx)`` lays out one tab and wires its events.
TABS: tuple[Callable[[TabContext], None], ...] = (
    generate_tab.build,
    benchmark_tab.build,
    features_tab.build,
    about_tab.build,
)
#: Torch threads in the served process: generation on 1 thread kept its speed beside outside CPU load, where 2
#: threads collapsed (``python -m bench.load --torch-threads``; README, "App").
TORCH_THREADS = 1

CSS = """
.p2i-small .wrap { min-height: 0 !important; }
#p2i-title { margin-bottom: 0; }
"""


def build_demo(delete_cache: tuple[int, int] = CACHE_SWEEP) -> gr.Blocks:
    """Build the Blocks app (nothing heavy is loaded here; the engine loads lazily on first use).

    ``delete_cache``: (frequency, age) of the sweep of temporary files (:mod:`.tempfiles`)."""
    tempfiles.use_for_gradio()  # before any component: Gradio's cache is this process's own folder
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
    return request_files.refusals_as_sentences(demo)


def limit_threads(torch_threads: int = TORCH_THREADS) -> None:
    """BLAS and OpenMP pools on one thread and torch on ``torch_threads`` in this process: there is one job per
    core at most (:mod:`pose2id_demo.engine.scheduler`), and a thread team that waits for a descheduled member
    loses far more than it gains on a shared 2-core machine (:data:`TORCH_THREADS`). Libraries loaded later
    (scikit-learn's OpenMP for t-SNE) read ``OMP_NUM_THREADS``, set here unless the operator set it."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except Exception as exc:  # noqa: BLE001 — threadpoolctl missing or an unknown BLAS: leave it
        log.debug("could not limit the BLAS threads: %s", exc)
    torch.set_num_threads(torch_threads)


def launch(demo: gr.Blocks | None = None, **kwargs: Any) -> Any:
    """Queue and launch offline: host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, no share link,
    no analytics; at most one heavy job per core runs at a time, a generation first
    (:mod:`pose2id_demo.engine.scheduler`); at most 64 requests wait. Uploads are bounded before they are read
    (:class:`.request_files.UploadLimits`); the app's temporary files are swept on the Blocks' ``delete_cache``
    schedule and held within a quota (:func:`.tempfiles.lifespan`), and removed when the process ends
    (:func:`.tempfiles.remove_on_exit`)."""
    demo = demo if demo is not None else build_demo()
    frequency, age = demo.delete_cache or CACHE_SWEEP
    opts: dict[str, Any] = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
        share=False, ssr_mode=False, mcp_server=False, max_file_size=MAX_UPLOAD, show_error=False,
        theme=gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"]),
        css=CSS, app_kwargs={"lifespan": tempfiles.lifespan(frequency, age),
                             "middleware": [Middleware(request_files.UploadLimits, max_bytes=MAX_UPLOAD + 2**16)]},
    )
    opts.update(kwargs)
    tempfiles.remove_on_exit()
    limit_threads()
    get_engine().preload()  # the first table's imports, before the page is served
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo.launch(**opts)
