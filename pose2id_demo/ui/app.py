"""Gradio Blocks layout (placeholder until the full app lands)."""

from __future__ import annotations

import os

import gradio as gr


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Pose2ID demo") as demo:
        gr.Markdown("# Pose2ID — training-free ReID via feature centralization\nThe full app is being built.")
    return demo


def launch(demo: gr.Blocks, **kwargs) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo.queue(default_concurrency_limit=1, max_size=64).launch(**kwargs)
