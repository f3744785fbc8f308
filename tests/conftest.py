"""Shared fixtures: the Gradio app launched on a free localhost port (one instance per test module)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

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


def raw_call(url: str, api_name: str, data: list, timeout: float = 600) -> tuple[str, object]:
    """POST ``data`` as it is (no client-side checks, no upload) to ``/gradio_api/call/<api_name>`` and read the
    answer's server-sent events: ``("complete", outputs)`` or ``("error", message or None)``."""
    import json

    import httpx

    base = url.rstrip("/")
    r = httpx.post(f"{base}/gradio_api/call/{api_name}", json={"data": data}, timeout=600)
    r.raise_for_status()
    event_id = r.json()["event_id"]
    event = None
    with httpx.stream("GET", f"{base}/gradio_api/call/{api_name}/{event_id}", timeout=timeout) as s:
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line[5:].strip() or "null")
                if event == "error":
                    return "error", payload.get("error") if isinstance(payload, dict) else payload
                return "complete", payload
    raise AssertionError(f"/{api_name} ended without an answer")


def upload(url: str, path, name: str | None = None) -> str:
    """Upload ``path`` the way the page does (as ``name``, default its own); the server path Gradio gives it."""
    import httpx

    with open(path, "rb") as f:
        r = httpx.post(url.rstrip("/") + "/gradio_api/upload", files={"files": (name or path.name, f)}, timeout=600)
    r.raise_for_status()
    return r.json()[0]


def file_data(path: str, meta: bool = True) -> dict:
    """A raw Gradio file payload naming ``path`` (with ``"meta"`` as gradio_client sends it, or without)."""
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}} if meta else {"path": str(path)}
