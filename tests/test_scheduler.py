"""The app's CPU pool: a generation is served before every waiting job of lower priority (so it waits at most
until the first running job ends), jobs of one priority in arrival order, no more jobs than slots at once, a
slot is re-entrant, and a long job's checkpoint lets a waiting generation run first when every slot is busy."""

from __future__ import annotations

import threading
import time

from pose2id_demo.engine import scheduler
from pose2id_demo.engine.scheduler import BACKGROUND, GENERATION, INTERACTIVE, LONG, CpuPool

HANG_GUARD_S = 60.0


def _wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not cond():
        assert time.monotonic() < deadline, f"hang guard: {what}"
        time.sleep(0.01)


def _queue(pool: CpuPool, jobs: list[tuple[str, int]], order: list[str]) -> list[threading.Thread]:
    """Start one thread per job, each asking for a slot after the previous one is waiting."""
    threads = []
    for name, priority in jobs:
        def job(name=name, priority=priority) -> None:
            with pool.hold(priority, name):
                order.append(name)
        t = threading.Thread(target=job)
        n_waiting = len(pool._waiting)
        t.start()
        _wait_until(lambda n=n_waiting: len(pool._waiting) == n + 1, f"{name} queued")
        threads.append(t)
    return threads


def _holder(pool: CpuPool, what: str, priority: int = INTERACTIVE) -> tuple[threading.Thread, threading.Event]:
    """A thread holding a slot until the returned event is set."""
    release, holding = threading.Event(), threading.Event()

    def run() -> None:
        with pool.hold(priority, what):
            holding.set()
            release.wait(HANG_GUARD_S)

    t = threading.Thread(target=run)
    t.start()
    assert holding.wait(HANG_GUARD_S)
    return t, release


def test_generation_waits_only_for_the_running_job() -> None:
    pool, order = CpuPool(1), []
    holder, release = _holder(pool, "a long table")
    assert pool.running == ["a long table"]
    threads = _queue(pool, [("table 1", INTERACTIVE), ("warm-up", BACKGROUND), ("table 2", INTERACTIVE),
                            ("generation", GENERATION), ("table 3", INTERACTIVE)], order)
    release.set()
    for t in [holder, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["generation", "table 1", "table 2", "table 3", "warm-up"]
    assert pool.running == [] and not pool._waiting


def test_two_slots_run_two_jobs_and_a_generation_takes_the_first_freed() -> None:
    pool, order = CpuPool(2), []
    first, release_first = _holder(pool, "a t-SNE")
    second, release_second = _holder(pool, "a benchmark table")  # a second slot: no wait
    assert sorted(pool.running) == ["a benchmark table", "a t-SNE"]
    threads = _queue(pool, [("table", INTERACTIVE), ("generation", GENERATION)], order)
    release_second.set()  # the first slot freed goes to the generation, though the table came first
    second.join(HANG_GUARD_S)
    _wait_until(lambda: order[:1] == ["generation"], "the generation ran in the freed slot")
    release_first.set()
    for t in [first, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["generation", "table"]


def test_never_more_jobs_than_slots() -> None:
    pool, lock, now, most = CpuPool(2), threading.Lock(), [0], [0]

    def job(i: int) -> None:
        with pool.hold(INTERACTIVE if i % 3 else GENERATION, f"job {i}"):
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            time.sleep(0.01)
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=job, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD_S)
    assert most[0] == 2 and pool.running == []


def test_reentrant_and_released_on_error() -> None:
    pool = CpuPool(1)
    with pool.hold(INTERACTIVE, "outer"):
        with pool.hold(GENERATION, "inner"):  # the same thread: no second wait
            assert pool.running == ["outer"]
        assert pool.running == ["outer"]
    assert pool.running == []
    try:
        with pool.hold(INTERACTIVE, "failing"):
            raise ValueError("bad input")
    except ValueError:
        pass
    assert pool.running == [] and not pool._held
    t, release = _holder(pool, "next")  # the slot is free again
    release.set()
    t.join(HANG_GUARD_S)


def test_checkpoint_lets_a_generation_run_first_and_takes_the_slot_back() -> None:
    pool, order = CpuPool(1), []
    step_done, go_on = threading.Event(), threading.Event()
    given_away: list[float] = []

    def long_job() -> None:
        with pool.hold(INTERACTIVE, "a feature file"):
            order.append("evaluation step 1")
            step_done.set()
            go_on.wait(HANG_GUARD_S)
            given_away.append(pool.checkpoint())
            order.append("evaluation step 2")

    t = threading.Thread(target=long_job)
    t.start()
    assert step_done.wait(HANG_GUARD_S)
    threads = _queue(pool, [("table", INTERACTIVE), ("generation", GENERATION)], order)
    go_on.set()
    for th in [t, *threads]:
        th.join(HANG_GUARD_S)
    # The generation ran inside the evaluation; the evaluation came back before the table queued earlier.
    assert order == ["evaluation step 1", "generation", "evaluation step 2", "table"]
    assert given_away[0] > 0.0


def test_checkpoint_keeps_the_slot_when_no_higher_priority_waits() -> None:
    pool, order = CpuPool(1), []
    ready, go_on = threading.Event(), threading.Event()

    def long_job() -> None:
        with pool.hold(INTERACTIVE, "a feature file"):
            ready.set()
            go_on.wait(HANG_GUARD_S)
            assert pool.checkpoint() == 0.0
            order.append("evaluation")

    t = threading.Thread(target=long_job)
    t.start()
    assert ready.wait(HANG_GUARD_S)
    threads = _queue(pool, [("table", INTERACTIVE), ("warm-up", BACKGROUND)], order)
    go_on.set()
    for th in [t, *threads]:
        th.join(HANG_GUARD_S)
    assert order == ["evaluation", "table", "warm-up"]


def test_waiting_job_hears_what_it_waits_for() -> None:
    pool, heard = CpuPool(1), []
    holder, release = _holder(pool, "a generation", GENERATION)

    def waiter() -> None:
        with pool.hold(INTERACTIVE, "a table", lambda f, d: heard.append(d)):
            pass

    w = threading.Thread(target=waiter)
    w.start()
    _wait_until(lambda: heard, "the waiting job was told")
    release.set()
    holder.join(HANG_GUARD_S)
    w.join(HANG_GUARD_S)
    assert heard[0] == "Waiting for the CPU: a generation is running …"


def test_background_runs_only_on_an_idle_pool() -> None:
    """The warm-up waits while any job runs, even with a slot free; a request does not wait for it."""
    pool, order = CpuPool(2), []
    holder, release = _holder(pool, "a benchmark table")
    threads = _queue(pool, [("warm-up", BACKGROUND)], order)
    r, release_r = _holder(pool, "ranks")  # a request takes the free slot at once
    assert order == [] and sorted(pool.running) == ["a benchmark table", "ranks"]
    release_r.set()
    r.join(HANG_GUARD_S)
    assert order == [] and pool.running == ["a benchmark table"]  # a slot is free, yet the warm-up waits
    release.set()
    for t in [holder, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["warm-up"]


def test_long_jobs_after_interactive_ones_until_they_have_waited_long(monkeypatch) -> None:
    """A t-SNE queued first still goes after tables queued later, until it has waited AGE_S seconds: then it is
    served as one of them (in its arrival order), so a stream of tables never starves it."""
    pool, order = CpuPool(1), []
    holder, release = _holder(pool, "running")
    threads = _queue(pool, [("t-SNE", LONG), ("table 1", INTERACTIVE), ("table 2", INTERACTIVE)], order)
    release.set()
    for t in [holder, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["table 1", "table 2", "t-SNE"]

    monkeypatch.setattr(scheduler, "AGE_S", 0.2)
    order.clear()
    holder, release = _holder(pool, "running")
    threads = _queue(pool, [("t-SNE", LONG), ("table 1", INTERACTIVE)], order)
    time.sleep(0.3)  # the t-SNE has now waited longer than AGE_S (a bound from below: safe on a slow machine)
    threads += _queue(pool, [("generation", GENERATION), ("table 2", INTERACTIVE)], order)
    release.set()
    for t in [holder, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["generation", "t-SNE", "table 1", "table 2"]


def test_checkpoint_of_a_long_job_lets_a_table_in_when_every_slot_is_busy() -> None:
    pool, order = CpuPool(1), []
    ready, go_on = threading.Event(), threading.Event()

    def long_job() -> None:
        with pool.hold(LONG, "a feature file"):
            ready.set()
            go_on.wait(HANG_GUARD_S)
            pool.checkpoint()
            order.append("evaluation")

    t = threading.Thread(target=long_job)
    t.start()
    assert ready.wait(HANG_GUARD_S)
    threads = _queue(pool, [("t-SNE", LONG), ("table", INTERACTIVE)], order)
    go_on.set()
    for th in [t, *threads]:
        th.join(HANG_GUARD_S)
    assert order == ["table", "evaluation", "t-SNE"]


def test_background_holds_every_slot_while_it_runs() -> None:
    """A request arriving during a warm-up step waits for that step (even with a slot free), then runs alone."""
    pool, order = CpuPool(2), []
    step, release = _holder(pool, "the warm-up (a step)", BACKGROUND)
    threads = _queue(pool, [("generation", GENERATION)], order)
    assert order == [] and pool.running == ["the warm-up (a step)"]
    release.set()
    for t in [step, *threads]:
        t.join(HANG_GUARD_S)
    assert order == ["generation"]
