"""The Gradio user interface (layout and callbacks only; all maths lives in :mod:`pose2id_demo.engine`)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before anything imports gradio

from .app import build_demo, launch  # noqa: E402

__all__ = ["build_demo", "launch"]
