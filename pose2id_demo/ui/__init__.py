"""The Gradio user interface (layout and callbacks only; all maths lives in :mod:`pose2id_demo.engine`)."""

from .app import build_demo, launch

__all__ = ["build_demo", "launch"]
