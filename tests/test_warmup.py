"""The launch-time warm-up: steps run in order in the background, each holding a CPU slot at the lowest
priority (so a request that arrives meanwhile goes first), and a failing step is logged and left to the request
that needs it."""

from __future__ import annotations

import logging
import threading
import time

from pose2id_demo.engine.warmup import WarmUp


class FakeEngine:
    def __init__(self, gate: threading.Event, fail: str = "") -> None:
        self.gate, self.fail, self.calls = gate, fail, []
        # the engine's parts' methods (bench_data, benchmark, per_query, index_of, tsne, …) are here too
        self.bench = self.features = self.queries = self

    def _step(self, name: str) -> str:
        self.calls.append(name)
        if name == self.fail:
            raise RuntimeError("boom")
        return name

    def bench_data(self, task, bb):
        self._step(f"features:{task}:{bb}")
        return type("Data", (), {"q_paths": ["q0.jpg"]})()

    def index_of(self, image, task, bb):
        return self._step(f"qindex:{task}:{bb}:{image}")

    def benchmark(self, task, bb):
        return self._step(f"table:{task}:{bb}")

    def per_query(self, task, bb):
        return self._step(f"per_query:{task}:{bb}")

    def backbone(self, bb):
        return self._step(f"backbone:{bb}")

    def pipeline(self):
        self.gate.wait(10)  # the test holds the warm-up here
        return self._step("generator")

    def tsne(self, task, bb):
        return self._step(f"tsne:{task}:{bb}")

    def cleansing(self, task, bb):
        return self._step(f"cleansing:{task}:{bb}")


def _warm(engine) -> WarmUp:
    w = WarmUp(engine, ("standard",), ["a", "b"], "a")
    w._render = lambda task: engine._step(f"render:{task}")  # no real rendering in a unit test
    w._open = lambda path: path
    w.steps["render:standard"].run = lambda: w._render("standard")
    return w


def test_steps_run_in_order_each_holding_the_cpu_at_background_priority(monkeypatch) -> None:
    from pose2id_demo.engine import warmup
    from pose2id_demo.engine.scheduler import INTERACTIVE, CpuPool

    cpu = CpuPool(1)
    monkeypatch.setattr(warmup, "CPU", cpu)
    gate = threading.Event()
    eng = FakeEngine(gate)
    holders: list[list[str]] = []
    eng.backbone = lambda bb: holders.append(cpu.running) or eng._step(f"backbone:{bb}")
    w = _warm(eng)
    w.start()
    deadline = time.monotonic() + 10
    while w.status()["generator"]["state"] != "running":
        assert time.monotonic() < deadline, w.status()
        time.sleep(0.01)
    assert cpu.running == ["the warm-up (generator)"]

    def request() -> None:  # arrives while the warm-up is in its generator step
        with cpu.hold(INTERACTIVE, "a request"):
            eng.calls.append("request")

    req = threading.Thread(target=request)
    req.start()
    while not cpu._waiting:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    gate.set()
    req.join(10)
    assert w.wait(10)
    # The request waited for the one step the warm-up was on, then went before the rest of the warm-up.
    assert eng.calls == ["features:standard:a", "table:standard:a", "per_query:standard:a", "generator", "request",
                         "render:standard", "backbone:a", "features:standard:a", "qindex:standard:a:q0.jpg",
                         "features:standard:b", "cleansing:standard:a", "cleansing:standard:b",
                         "tsne:standard:a", "tsne:standard:b"]
    assert holders == [["the warm-up (backbone:a)"]]
    assert all(s["state"] == "done" for s in w.status().values())


def test_failed_step_is_logged_and_released(caplog) -> None:
    gate = threading.Event()
    gate.set()
    eng = FakeEngine(gate, fail="tsne:standard:a")
    w = _warm(eng)
    with caplog.at_level(logging.WARNING, logger="pose2id_demo.engine.warmup"):
        w.start()
        assert w.wait(10)
    assert w.status()["tsne:standard:a"]["state"] == "failed"
    assert eng.calls[-1] == "tsne:standard:b"  # the steps after it still ran
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tsne:standard:a" in warnings[0].getMessage()


def test_a_download_starts_first_and_the_generator_loads_last_without_holding_the_cpu(monkeypatch) -> None:
    """Official weights still to download: the download starts before the first step, the other steps run
    meanwhile, and the generator step waits for it holding no CPU slot (a request arriving then runs at once)."""
    from pose2id_demo.engine import warmup
    from pose2id_demo.engine.scheduler import INTERACTIVE, CpuPool

    cpu = CpuPool(1)
    monkeypatch.setattr(warmup, "CPU", cpu)
    gate, downloaded, waiting = threading.Event(), threading.Event(), threading.Event()
    gate.set()
    eng = FakeEngine(gate)
    eng.generator_download_pending = True

    def fetch_generator(progress=None, wait=True) -> None:
        eng.calls.append(f"fetch(wait={wait})")
        if wait:
            waiting.set()
            assert downloaded.wait(10)

    eng.fetch_generator = fetch_generator
    w = _warm(eng)
    assert list(w.steps)[-1] == "generator"
    w.start()
    assert waiting.wait(10) and cpu.running == []  # the generator step waits for the download, no slot held
    with cpu.hold(INTERACTIVE, "a request"):  # taken at once
        eng.calls.append("request")
    downloaded.set()
    assert w.wait(10)
    assert eng.calls[:2] == ["fetch(wait=False)", "features:standard:a"]
    assert eng.calls[-4:] == ["tsne:standard:b", "fetch(wait=True)", "request", "generator"]
    assert all(s["state"] == "done" for s in w.status().values())
