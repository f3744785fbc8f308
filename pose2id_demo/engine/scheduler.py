"""A bounded pool of CPU slots for every heavy computation of the app, handed out by priority.

On a 2-core machine, more jobs than cores slow each other down, and a generation behind a queue of other jobs
waits for all of them. So every heavy engine call — a generation, a benchmark table, ranked lists, the
per-query view, t-SNE, cleansing, an export, a user's feature file, each warm-up step — runs while holding one
of the :data:`CPU` pool's slots (one per core; each job computes on one thread: ``pose2id_demo.ui.app.
limit_threads``), and a waiting job of higher priority is served before any of lower priority:

=====================  ============================================================================
:data:`GENERATION`     a generation: it waits at most until the first running job ends
:data:`INTERACTIVE`    every other request (first come, first served among them)
:data:`BACKGROUND`     the launch-time warm-up (:mod:`pose2id_demo.warmup`): only when nothing waits and
                       nothing else runs (it would slow down what does)
=====================  ============================================================================

Requests check their input before they ask for a slot, so a refusal never waits. A slot is re-entrant (an
engine call inside another one does not ask twice), and it is taken before any of the engine's other locks, so
holding one can never wait on a lock that a job queued here holds. A long job calls :meth:`CpuPool.checkpoint`
between its steps: when every slot is busy and a job of higher priority waits, it lets that job run first, then
takes a slot back ahead of its own priority's queue.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = ["BACKGROUND", "CPU", "GENERATION", "INTERACTIVE", "CpuPool"]

log = logging.getLogger(__name__)

GENERATION, INTERACTIVE, BACKGROUND = 0, 1, 2

ProgressFn = Callable[[float, str], None]


@dataclass
class _Held:
    ticket: tuple[int, int]  # (priority, arrival)
    what: str
    depth: int = 1


class CpuPool:
    """``size`` re-entrant slots, priority-ordered (lower number = served first; first come, first served within
    a priority). See the module docstring."""

    def __init__(self, size: int = 1) -> None:
        self.size = max(1, int(size))
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # heap of (priority, ticket)
        self._tickets = itertools.count()
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
            self._take((priority, next(self._tickets)), what, progress)
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
            if (mine is None or len(self._held) < self.size or not self._waiting
                    or self._waiting[0][0] >= mine.ticket[0]):
                return 0.0
            del self._held[me]
            self._cond.notify_all()
        t = time.monotonic()
        self._take(mine.ticket, mine.what, progress)
        with self._cond:
            self._held[me].depth = mine.depth
        return time.monotonic() - t

    def _free(self, ticket: tuple[int, int]) -> bool:
        """Whether a job with ``ticket`` may take a slot now (lock held): a free slot, and for the background
        all of them."""
        return not self._held if ticket[0] >= BACKGROUND else len(self._held) < self.size

    def _take(self, ticket: tuple[int, int], what: str, progress: ProgressFn | None) -> None:
        me = threading.get_ident()
        said, behind, t0 = "", set(), time.monotonic()
        with self._cond:
            heapq.heappush(self._waiting, ticket)
        try:
            while True:
                with self._cond:
                    if self._free(ticket) and self._waiting[0] == ticket:
                        heapq.heappop(self._waiting)
                        self._held[me] = _Held(ticket, what)
                        self._cond.notify_all()  # another slot may be free for the next in line
                        if time.monotonic() - t0 > 1.0:
                            log.info("%s waited %.1f s for the CPU (behind %s)", what, time.monotonic() - t0,
                                     ", ".join(sorted(behind)))
                        return
                    running = [h.what for h in self._held.values()]
                    behind.update(running)
                    ahead = sum(t < ticket for t in self._waiting)
                msg = (f"Waiting for the CPU: {', '.join(running) or 'another job'} "
                       f"{'is' if len(running) < 2 else 'are'} running"
                       + (f", {ahead} more job{'s' if ahead > 1 else ''} first" if ahead else "") + " …")
                if progress is not None and msg != said:  # outside the lock: a progress bar is foreign code
                    progress(0.0, msg)
                    said = msg
                with self._cond:  # woken at every release; the timeout only refreshes the message
                    if not (self._free(ticket) and self._waiting[0] == ticket):
                        self._cond.wait(timeout=5.0)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                self._cond.notify_all()
            raise


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: The process's pool: one slot per core this process may use (the app serves from one process).
CPU = CpuPool(_cores())
