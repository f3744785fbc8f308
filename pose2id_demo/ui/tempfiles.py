"""Temporary files the app writes (exported feature files) and how long they live.

Gradio removes its own files — uploads and the copies it serves — when the Blocks is built with
``delete_cache=(frequency, age)``: every ``frequency`` seconds, those older than ``age`` seconds (examples are
kept). The app's own files live in one folder per process, ``/tmp/pose2id-app-*``; :func:`lifespan` sweeps it on
the same schedule while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

log = logging.getLogger("pose2id_demo.ui")


@functools.cache
def app_dir() -> Path:
    """This process's folder for the app's temporary files (created on first use)."""
    return Path(tempfile.mkdtemp(prefix="pose2id-app-"))


def new_folder(prefix: str) -> Path:
    """A fresh folder inside :func:`app_dir` (one per export, so two users never share a file name)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=app_dir()))


def _newest_mtime(entry: Path) -> float:
    if not entry.is_dir() or entry.is_symlink():
        return entry.lstat().st_mtime
    return max([entry.lstat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")])


def sweep(age: float, now: float | None = None) -> int:
    """Remove the entries of :func:`app_dir` whose newest file is older than ``age`` seconds; how many went."""
    now = time.time() if now is None else now
    removed = 0
    for entry in list(app_dir().iterdir()):
        try:
            if now - _newest_mtime(entry) <= age:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except FileNotFoundError:  # removed meanwhile
            continue
        except OSError as exc:
            log.warning("could not remove %s: %s", entry, exc)
    return removed


def lifespan(frequency: float, age: float) -> Callable[[Any], contextlib.AbstractAsyncContextManager]:
    """A server lifespan (``launch(app_kwargs={"lifespan": ...})``) that sweeps :func:`app_dir` every
    ``frequency`` seconds while the server runs, removing entries older than ``age`` seconds."""

    @contextlib.asynccontextmanager
    async def run(_app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(frequency)
                await asyncio.to_thread(sweep, age)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run
