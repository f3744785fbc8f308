"""The app's one CPU slot: a generation is served before every waiting job of lower priority (so it waits for at
most the one job that holds the slot), jobs of one priority in arrival order, the slot is re-entrant, and a long
job's checkpoint lets a waiting generation run first."""

from __future__ import annotations

import threading
import time

from pose2id_demo.engine.scheduler import BACKGROUND, GENERATION, INTERACTIVE, CpuSlot

HANG_GUARD_S = 60.0


def _wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not cond():
        assert time.monotonic() < deadline, f"hang guard: {what}"
        time.sleep(0.01)


def _queue(slot: CpuSlot, jobs: list[tuple[str, int]], order: list[str]) -> list[threading.Thread]:
    """Start one thread per job, each asking for the slot after the previous one is waiting."""
    threads = []
    for name, priority in jobs:
        def job(name=name, priority=priority) -> None:
            with slot.hold(priority, name):
                order.append(name)
        t = threading.Thread(target=job)
        n_waiting = len(slot._waiting)
        t.start()
        _wait_until(lambda n=n_waiting: len(slot._waiting) == n + 1, f"{name} queued")
        threads.append(t)
    return threads


def test_generation_waits_only_for_the_running_job() -> None:
    slot, order, release = CpuSlot(), [], threading.Event()

    def running() -> None:
        with slot.hold(INTERACTIVE, "a long table"):
            order.append("running")
            release.wait(HANG_GUARD_S)

    holder = threading.Thread(target=running)
    holder.start()
    _wait_until(lambda: order == ["running"], "the first job holds the slot")
    assert slot.running == "a long table"
    threads = _queue(slot, [("table 1", INTERACTIVE), ("warm-up", BACKGROUND), ("table 2", INTERACTIVE),
                            ("generation", GENERATION), ("table 3", INTERACTIVE)], order)
    release.set()
    for t in [holder, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["running", "generation", "table 1", "table 2", "table 3", "warm-up"]
    assert slot.running == "" and not slot._waiting


def test_reentrant_and_released_on_error() -> None:
    slot = CpuSlot()
    with slot.hold(INTERACTIVE, "outer"):
        with slot.hold(GENERATION, "inner"):  # the same thread: no second wait
            assert slot.running == "outer"
        assert slot.running == "outer"
    assert slot.running == ""
    try:
        with slot.hold(INTERACTIVE, "failing"):
            raise ValueError("bad input")
    except ValueError:
        pass
    assert slot.running == "" and slot._depth == 0
    done = threading.Event()
    threading.Thread(target=lambda: (slot.hold(INTERACTIVE, "next").__enter__(), done.set())).start()
    assert done.wait(HANG_GUARD_S), "the slot was not released after an exception"


def test_checkpoint_lets_a_generation_run_first_and_takes_the_slot_back() -> None:
    slot, order = CpuSlot(), []
    step_done, go_on = threading.Event(), threading.Event()
    given_away: list[float] = []

    def long_job() -> None:
        with slot.hold(INTERACTIVE, "a feature file"):
            order.append("evaluation step 1")
            step_done.set()
            go_on.wait(HANG_GUARD_S)
            given_away.append(slot.checkpoint())
            order.append("evaluation step 2")

    t = threading.Thread(target=long_job)
    t.start()
    assert step_done.wait(HANG_GUARD_S)
    threads = _queue(slot, [("table", INTERACTIVE), ("generation", GENERATION)], order)
    go_on.set()
    for th in [t, *threads]:
        th.join(HANG_GUARD_S)
    # The generation ran inside the evaluation; the evaluation came back before the table queued earlier.
    assert order == ["evaluation step 1", "generation", "evaluation step 2", "table"]
    assert given_away[0] > 0.0


def test_checkpoint_keeps_the_slot_when_no_higher_priority_waits() -> None:
    slot, order = CpuSlot(), []
    ready, go_on = threading.Event(), threading.Event()

    def long_job() -> None:
        with slot.hold(INTERACTIVE, "a feature file"):
            ready.set()
            go_on.wait(HANG_GUARD_S)
            assert slot.checkpoint() == 0.0
            order.append("evaluation")

    t = threading.Thread(target=long_job)
    t.start()
    assert ready.wait(HANG_GUARD_S)
    threads = _queue(slot, [("table", INTERACTIVE), ("warm-up", BACKGROUND)], order)
    go_on.set()
    for th in [t, *threads]:
        th.join(HANG_GUARD_S)
    assert order == ["evaluation", "table", "warm-up"]


def test_waiting_job_hears_what_it_waits_for() -> None:
    slot, heard, release = CpuSlot(), [], threading.Event()
    holding = threading.Event()

    def running() -> None:
        with slot.hold(GENERATION, "a generation"):
            holding.set()
            release.wait(HANG_GUARD_S)

    t = threading.Thread(target=running)
    t.start()
    assert holding.wait(HANG_GUARD_S)
    waiter = threading.Thread(target=lambda: slot.hold(INTERACTIVE, "a table", lambda f, d: heard.append(d))
                              .__enter__())
    waiter.start()
    _wait_until(lambda: heard, "the waiting job was told")
    release.set()
    t.join(HANG_GUARD_S)
    waiter.join(HANG_GUARD_S)
    assert heard[0].startswith("Waiting for the CPU: a generation is running")
