"""Shared fixtures: the Gradio app launched on a free localhost port (one instance per test module), a small
Market-layout folder per test module, a stand-in generator, a tiny mean-colour backbone, and an engine serving
a toy benchmark."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from market_folder import write_market
from torch import nn
from toy_bench import toy_engine

from pose2id_demo.engine import Engine
from pose2id_demo.reid import Backbone, register_backbone

#: A registered backbone whose feature of an image is its mean colour per channel (d = 3).
COLOUR_BACKBONE = "test-extract-colour"


class MeanColour(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


register_backbone(COLOUR_BACKBONE, lambda device="cpu": Backbone(
    COLOUR_BACKBONE, MeanColour(), (32, 16), (0.5,) * 3, (0.5,) * 3, 3, "w-test", device=device), overwrite=True)


@pytest.fixture(scope="module")
def market(tmp_path_factory, request) -> Path:
    """A Market-layout folder of SynthPed renders (:func:`market_folder.write_market`), one per test module (a
    module may write into it): the module's ``MARKET_TEST_IDS`` test identities (default 2), one query per
    camera each, their gallery, 3 distractors and 4 junk images."""
    return write_market(tmp_path_factory.mktemp("market"), num_test_ids=getattr(request.module, "MARKET_TEST_IDS", 2))


@pytest.fixture()
def eng() -> Engine:
    """A fresh engine serving the toy benchmark (:func:`toy_bench.toy_data`) as task ``standard``, backbone
    ``toy`` (one per test)."""
    return toy_engine()


class FakePipe:
    """Stand-in for Pose2IDPipeline: generation j of a reference is its mean colour shifted by j."""

    image_size = (8, 4)

    def __init__(self):
        self.calls = []

    def set_progress_bar_config(self, **kw):
        pass

    def __call__(self, refs, poses, num_inference_steps, guidance_scale, seed, use_ifr, output_type):
        self.calls.append(len(refs))
        out = [np.full((8, 4, 3), (np.asarray(r, np.float32).mean() / 255 + j) / 10) for r in refs
               for j in range(len(poses))]
        return SimpleNamespace(images=np.stack(out))


@pytest.fixture
def fake_generator(monkeypatch, tmp_path) -> list[FakePipe]:
    """Every ``Pose2IDPipeline.from_pretrained`` makes a new :class:`FakePipe`, appended to the list returned;
    the cache (``POSE2ID_CACHE``) is ``tmp_path / "cache"``."""
    pipes: list[FakePipe] = []

    def from_pretrained(path, **kw):
        pipes.append(FakePipe())
        return pipes[-1]

    monkeypatch.setattr("pose2id_demo.ipg.pipeline.Pose2IDPipeline.from_pretrained", staticmethod(from_pretrained))
    monkeypatch.setenv("POSE2ID_CACHE", str(tmp_path / "cache"))
    return pipes


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
