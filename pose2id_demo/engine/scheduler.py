"""A bounded pool of CPU slots for every heavy computation of the app, handed out by priority.

On a 2-core machine, more jobs than cores slow each other down, and a generation behind a queue of other jobs
waits for all of them. So every heavy engine call — a generation, a benchmark table, ranked lists, the
per-query view, t-SNE, cleansing, an export, a user's feature file, each warm-up step — runs while holding one
of the :data:`CPU` pool's slots (one per core; each job computes on one thread: ``pose2id_demo.ui.app.
limit_threads``), and a waiting job of higher priority is served before any of lower priority:

=====================  ============================================================================
:data:`GENERATION`     a generation: it waits at most until the first running job ends
:data:`INTERACTIVE`    a table, ranked lists, the per-query view: a second or so each
:data:`LONG`           t-SNE, cleansing, an export, a user's feature file: seconds to minutes; one that
                       has waited :data:`AGE_S` seconds is served as an interactive one (it is never
                       starved by a stream of those)
:data:`BACKGROUND`     the launch-time warm-up (:mod:`pose2id_demo.engine.warmup`): only when nothing waits and
                       nothing else runs, and then it holds every slot (beside a request it would slow
                       the request down)
=====================  ============================================================================

First come, first served within a priority. Requests check their input before they ask for a slot, so a
refusal never waits. A slot is re-entrant (an engine call inside another one does not ask twice), and it is
taken before any of the engine's other locks, so holding one can never wait on a lock that a job queued here
holds. A long job calls :meth:`CpuPool.checkpoint` between its steps: when every slot is busy and a job of
higher priority waits, it lets that job run first, then takes a slot back ahead of its own priority's queue.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["AGE_S", "BACKGROUND", "CPU", "GENERATION", "INTERACTIVE", "LONG", "CpuPool", "ProgressFn",
           "noop_progress"]

log = logging.getLogger(__name__)

GENERATION, INTERACTIVE, LONG, BACKGROUND = 0, 1, 2, 3
#: Seconds after which a waiting long job is served as an interactive one.
AGE_S = 30.0

ProgressFn = Callable[[float, str], None]


def noop_progress(frac: float, desc: str) -> None:  # noqa: ARG001
    return None


@dataclass(frozen=True)
class _Ticket:
    priority: int
    arrival: int  # order of asking
    since: float  # monotonic time it started waiting


@dataclass
class _Held:
    ticket: _Ticket
    what: str
    depth: int = 1


class CpuPool:
    """``size`` re-entrant slots, handed out by priority (see the module docstring)."""

    def __init__(self, size: int = 1) -> None:
        self.size = max(1, int(size))
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._arrivals = itertools.count()
        self._held: dict[int, _Held] = {}  # thread id → what it holds

    @property
    def running(self) -> list[str]:
        """What holds the slots now."""
        with self._cond:
            return [h.what for h in self._held.values()]

    @contextmanager
    def hold(self, priority: int, what: str, progress: ProgressFn | None = None) -> Iterator[None]:
        """Run the block holding a slot; ``progress`` hears what the job waits for while it waits."""
        me = threading.get_ident()
        with self._cond:
            mine = self._held.get(me)
            if mine is not None:
                mine.depth += 1
        if mine is None:
            self._take(_Ticket(priority, next(self._arrivals), time.monotonic()), what, progress)
        try:
            yield
        finally:
            with self._cond:
                mine = self._held[me]
                mine.depth -= 1
                if mine.depth == 0:
                    del self._held[me]
                    self._cond.notify_all()

    def checkpoint(self, progress: ProgressFn | None = None) -> float:
        """Between two steps of a long job: if every slot is busy and a job of higher priority waits, let it run,
        then take a slot back (before this job's own priority's queue). Returns the seconds given away (0.0 when
        none)."""
        me = threading.get_ident()
        with self._cond:
            mine = self._held.get(me)
            now = time.monotonic()
            if (mine is None or len(self._held) < self.size or not self._waiting
                    or self._rank(self._first(now), now) >= mine.ticket.priority):
                return 0.0
            del self._held[me]
            self._cond.notify_all()
        t = time.monotonic()
        # Back in the queue with its first arrival (ahead of its priority's later ones), not aged meanwhile.
        self._take(_Ticket(mine.ticket.priority, mine.ticket.arrival, t), mine.what, progress)
        with self._cond:
            self._held[me].depth = mine.depth
        return time.monotonic() - t

    @staticmethod
    def _rank(t: _Ticket, now: float) -> int:
        """A ticket's priority now: a long job that has waited :data:`AGE_S` ranks as an interactive one."""
        return INTERACTIVE if t.priority == LONG and now - t.since >= AGE_S else t.priority

    def _first(self, now: float) -> _Ticket:
        return min(self._waiting, key=lambda t: (self._rank(t, now), t.arrival))

    def _may_take(self, ticket: _Ticket) -> bool:
        """Whether ``ticket`` takes a slot now (lock held): it is first in line and a slot is free. The background
        needs every slot free and, while it runs, holds them all: a request waits for its one step, then runs
        alone instead of sharing the cores with it."""
        if ticket.priority >= BACKGROUND:
            free = not self._held
        else:
            free = len(self._held) < self.size and all(h.ticket.priority < BACKGROUND for h in self._held.values())
        return free and self._first(time.monotonic()) is ticket

    def _take(self, ticket: _Ticket, what: str, progress: ProgressFn | None) -> None:
        me = threading.get_ident()
        said, behind, t0 = "", set(), time.monotonic()
        with self._cond:
            self._waiting.append(ticket)
        try:
            while True:
                with self._cond:
                    if self._may_take(ticket):
                        self._waiting.remove(ticket)
                        self._held[me] = _Held(ticket, what)
                        self._cond.notify_all()  # another slot may be free for the next in line
                        if time.monotonic() - t0 > 1.0:
                            log.info("%s waited %.1f s for the CPU (behind %s)", what, time.monotonic() - t0,
                                     ", ".join(sorted(behind)))
                        return
                    running = [h.what for h in self._held.values()]
                    behind.update(running)
                    now = time.monotonic()
                    mine = (self._rank(ticket, now), ticket.arrival)
                    ahead = sum((self._rank(t, now), t.arrival) < mine for t in self._waiting)
                msg = (f"Waiting for the CPU: {', '.join(running) or 'another job'} "
                       f"{'is' if len(running) < 2 else 'are'} running"
                       + (f", {ahead} more job{'s' if ahead > 1 else ''} first" if ahead else "") + " …")
                if progress is not None and msg != said:  # outside the lock: a progress bar is foreign code
                    progress(0.0, msg)
                    said = msg
                with self._cond:  # woken at every release; the timeout also lets a long job's rank age
                    if not self._may_take(ticket):
                        self._cond.wait(timeout=5.0)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()
            raise


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: The process's pool: one slot per core this process may use (the app serves from one process).
CPU = CpuPool(_cores())
