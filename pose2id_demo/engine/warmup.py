"""Warm-up at launch: what a first click would otherwise compute is prepared in one background thread.

``python app.py`` calls :meth:`pose2id_demo.engine.Engine.warm_up` once the page is built; the engine keeps the
one :class:`WarmUp` it starts (:attr:`~pose2id_demo.engine.Engine.warmup`). The thread works
through its steps in order — the default task's features, table and per-query view (what the page asks for
first), the generator, the standard task's SynthPed images (rendered once into the cache; the ranked lists, the
recognition of uploaded benchmark queries and the cleansing tiles need them), the ReID backbone and the query
index (what a first generation needs), the other benchmark features (shipped, see
:mod:`pose2id_demo.shipped_features`), the default cleansing, the other tasks' images, then the default t-SNE.

Each step holds the app's CPU pool at the lowest priority (:data:`pose2id_demo.engine.scheduler.BACKGROUND`):
it starts only when no request waits and nothing else runs, and holds every slot while it runs, so the warm-up
never delays a request by more than the one step it is on. With the official weights still to download
(``--ipg-weights hub``), the download starts first, in its own thread and holding no CPU slot, and the generator
is loaded last, once it is done. A request never waits for the warm-up as such: it computes what it needs
itself (the engine makes each resource once, so a step and a request never do the same work twice) and answers
with the real result. A failed step is logged in one line and left to the request that needs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .scheduler import BACKGROUND, CPU

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str  # e.g. "render:standard"
    run: Callable[[], Any]
    before: Callable[[], Any] | None = None  # run first, holding no CPU slot (waiting for a download)
    state: str = "pending"  # pending | running | done | failed
    seconds: float = 0.0
    error: str = ""


class WarmUp:
    """The launch-time warm-up of one :class:`~pose2id_demo.engine.Engine` (see the module docstring)."""

    def __init__(self, engine: Any, tasks: tuple[str, ...], backbones: list[str], default_backbone: str) -> None:
        self.engine = engine
        steps: list[Step] = []
        add = lambda name, fn: steps.append(Step(name, fn))  # noqa: E731
        first, rest = tasks[0], tasks[1:]
        # What the page asks for when it opens comes first: the default task's table and per-query view
        # (the engine keeps them, so the page's own requests find them), then the other features.
        add(f"features:{first}:{default_backbone}", lambda: engine.features.bench_data(first, default_backbone))
        add(f"table:{first}:{default_backbone}", lambda: engine.bench.benchmark(first, default_backbone))
        add(f"per_query:{first}:{default_backbone}", lambda: engine.bench.per_query(first, default_backbone))
        # Then what a first generation needs (importing diffusers alone takes seconds): the generator, the
        # images behind the benchmark queries, the backbone and the index that recognises an uploaded query.
        # The official weights' download, if any, runs beside the other steps (started first in _run); the
        # step then waits for it holding no CPU slot, and comes last so that the others do not wait for it.
        downloading = bool(getattr(engine, "generator_download_pending", False))
        generator = Step("generator", engine.pipeline, getattr(engine, "fetch_generator", None))
        if not downloading:
            steps.append(generator)
        add(f"render:{first}", lambda: self._render(first))
        add(f"backbone:{default_backbone}", lambda: engine.backbone(default_backbone))
        add(f"qindex:{first}:{default_backbone}", lambda: engine.queries.index_of(
            self._open(engine.features.bench_data(first, default_backbone).q_paths[0]), first, default_backbone))
        for task in tasks:
            for bb in backbones:
                if (task, bb) != (first, default_backbone):
                    add(f"features:{task}:{bb}", lambda t=task, b=bb: engine.features.bench_data(t, b))
        for bb in backbones:  # the train split's keypoint files and images come with the render
            add(f"cleansing:{first}:{bb}", lambda b=bb: engine.cleansing(first, b))
        for task in rest:
            add(f"render:{task}", lambda t=task: self._render(t))
        for bb in backbones:  # last: one t-SNE is a single step of seconds that a request arriving would wait for
            add(f"tsne:standard:{bb}", lambda b=bb: engine.bench.tsne('standard', b))
        if downloading:
            steps.append(generator)
        self.steps = {s.name: s for s in steps}
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.started_at = 0.0

    @staticmethod
    def _render(task: str) -> Any:
        from pose2id_demo.data.synthped import ensure_benchmark

        return ensure_benchmark(task, progress=False)

    @staticmethod
    def _open(path: str) -> Any:
        from PIL import Image

        with Image.open(path) as im:
            return im.convert("RGB")

    # ------------------------------------------------------------------ running
    def start(self, background: bool = True) -> WarmUp:
        if self._thread is not None:
            return self
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="pose2id-warm-up", daemon=True)
        if background:
            self._thread.start()
        else:
            self._thread.run()
        return self

    def _run(self) -> None:
        if "generator" in self.steps and self.steps["generator"].before is not None:
            try:  # start the official weights' download now (nothing to do with the embedded generator)
                self.engine.fetch_generator(wait=False)
            except Exception as exc:  # noqa: BLE001 — the generator step reports it
                log.warning("could not start the generator's download (%s)", exc)
        for step in self.steps.values():
            t = time.perf_counter()
            try:
                if step.before is not None:
                    step.before()
                with CPU.hold(BACKGROUND, f"the warm-up ({step.name})"):
                    step.state = "running"
                    t = time.perf_counter()
                    step.run()
                step.state = "done"
            except Exception as exc:  # noqa: BLE001 — the callback that needs it will compute and report
                step.state, step.error = "failed", f"{type(exc).__name__}: {exc}"
                log.warning("warm-up step %s failed (%s); it is computed on first use instead", step.name,
                            step.error)
            step.seconds = time.perf_counter() - t
            log.info("warm-up %s: %s in %.1f s", step.name, step.state, step.seconds)
        self._done.set()
        log.info("warm-up finished in %.1f s", time.perf_counter() - self.started_at)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def status(self) -> dict[str, dict[str, Any]]:
        return {n: {"state": s.state, "seconds": round(s.seconds, 2), **({"error": s.error} if s.error else {})}
                for n, s in self.steps.items()}


def preload() -> float:
    """Import, before the page is served, what the first table itself would import: torch, whose GEMM the
    neighbour search of NFC uses (paid in the cold start instead of by the first click).
    Returns the seconds it took (0 when already imported or not installed)."""
    import importlib
    import importlib.util
    import sys

    if "torch" in sys.modules or importlib.util.find_spec("torch") is None:
        return 0.0
    t = time.perf_counter()
    importlib.import_module("torch")

    took = time.perf_counter() - t
    log.info("preloaded torch in %.1f s", took)
    return took


DEFAULT_BACKBONES = ("synthped-reid", "imagenet-mobilenetv2")
