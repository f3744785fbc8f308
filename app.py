"""Pose2ID demo: builds the Gradio app from :mod:`pose2id_demo.ui` and launches it."""

from pose2id_demo.ui import build_demo, launch

if __name__ == "__main__":
    launch(build_demo())
