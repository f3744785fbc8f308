"""Shared fixtures: the Gradio app launched on a free localhost port (one instance per test module)."""

from __future__ import annotations

import socket
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    from pose2id_demo.ui.app import build_demo, launch

    demo = build_demo()
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        yield url
    finally:
        demo.close()
