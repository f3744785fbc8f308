"""One CPU slot for every heavy computation of the app, handed out by priority.

On a 2-core machine, jobs that run side by side slow each other down, and a generation behind a queue of other
jobs waits for all of them. So every heavy engine call — a generation, a benchmark table, ranked lists, the
per-query view, t-SNE, cleansing, an export, a user's feature file, each warm-up step — runs while holding the
one slot of :data:`CPU`, and a waiting job of higher priority is served before any of lower priority:

=====================  ============================================================================
:data:`GENERATION`     a generation: it waits for at most the one job that holds the slot
:data:`INTERACTIVE`    every other request (first come, first served among them)
:data:`BACKGROUND`     the launch-time warm-up (:mod:`pose2id_demo.warmup`): only when nothing waits
=====================  ============================================================================

Requests check their input before they ask for the slot, so a refusal never waits. The slot is re-entrant
(an engine call inside another one does not ask twice), and it is taken before any of the engine's other
locks, so holding it can never wait on a lock that a job queued here holds. A long job calls
:meth:`CpuSlot.checkpoint` between its steps: a waiting job of higher priority runs first, then the long job
takes the slot back ahead of its own priority's queue.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["BACKGROUND", "CPU", "GENERATION", "INTERACTIVE", "CpuSlot"]

log = logging.getLogger(__name__)

GENERATION, INTERACTIVE, BACKGROUND = 0, 1, 2

ProgressFn = Callable[[float, str], None]


class CpuSlot:
    """A re-entrant, priority-ordered lock (lower number = served first; first come, first served within a
    priority). See the module docstring."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # heap of (priority, ticket)
        self._tickets = itertools.count()
        self._owner: int | None = None
        self._depth = 0
        self._held: tuple[int, int] = (BACKGROUND, 0)
        self._what = ""

    @property
    def running(self) -> str:
        """What holds the slot now ("" when free)."""
        return self._what if self._owner is not None else ""

    @contextmanager
    def hold(self, priority: int, what: str, progress: ProgressFn | None = None) -> Iterator[None]:
        """Run the block holding the slot; ``progress`` hears what the job waits for while it waits."""
        me = threading.get_ident()
        with self._cond:
            reentered = self._owner == me
            if reentered:
                self._depth += 1
        if not reentered:
            self._take((priority, next(self._tickets)), what, progress)
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._owner, self._what = None, ""
                    self._cond.notify_all()

    def checkpoint(self, progress: ProgressFn | None = None) -> float:
        """Between two steps of a long job: if a job of higher priority waits, let it run, then take the slot
        back (before this job's own priority's queue). Returns the seconds given away (0.0 when none)."""
        me = threading.get_ident()
        with self._cond:
            if self._owner != me or not self._waiting or self._waiting[0][0] >= self._held[0]:
                return 0.0
            ticket, what, depth = self._held, self._what, self._depth
            self._owner, self._what, self._depth = None, "", 0
            self._cond.notify_all()
        t = time.monotonic()
        self._take(ticket, what, progress)
        with self._cond:
            self._depth = depth
        return time.monotonic() - t

    def _take(self, ticket: tuple[int, int], what: str, progress: ProgressFn | None) -> None:
        me = threading.get_ident()
        said, behind, t0 = "", set(), time.monotonic()
        with self._cond:
            heapq.heappush(self._waiting, ticket)
        try:
            while True:
                with self._cond:
                    if self._owner is None and self._waiting[0] == ticket:
                        heapq.heappop(self._waiting)
                        self._owner, self._depth, self._held, self._what = me, 1, ticket, what
                        if time.monotonic() - t0 > 1.0:
                            log.info("%s waited %.1f s for the CPU (behind %s)", what, time.monotonic() - t0,
                                     ", ".join(sorted(behind)))
                        return
                    behind.add(self._what or "a job taking it back")
                    ahead = sum(t < ticket for t in self._waiting)
                    running = self._what
                msg = (f"Waiting for the CPU: {running or 'another job'} is running"
                       + (f", {ahead} more job{'s' if ahead > 1 else ''} first" if ahead else "") + " …")
                if progress is not None and msg != said:  # outside the lock: a progress bar is foreign code
                    progress(0.0, msg)
                    said = msg
                with self._cond:  # woken at every release; the timeout only refreshes the message
                    if not (self._owner is None and self._waiting[0] == ticket):
                        self._cond.wait(timeout=5.0)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                self._cond.notify_all()
            raise


#: The process's one slot (the app serves from one process; every engine shares it).
CPU = CpuSlot()
