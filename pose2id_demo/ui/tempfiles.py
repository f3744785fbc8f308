"""Every temporary file of the app, in one folder per process, with bounded total size and a bounded life.

The folder, :func:`root` — ``<tmp>/pose2id-<pid>-<random>/`` (``<tmp>`` is ``$GRADIO_TEMP_DIR`` if set, else the
system's temp folder) — holds

* ``gradio/``: Gradio's cache for this app (uploads, the copies it serves): ``GRADIO_TEMP_DIR`` points here once
  :func:`use_for_gradio` ran (:func:`pose2id_demo.ui.app.build_demo` calls it before any component exists);
* ``exports/``: exported feature files (:func:`new_export`);
* ``images/``: the PNGs the callbacks hand Gradio (:func:`images_dir`);
* ``examples/``: the Generate tab's cached examples (:func:`examples_dir`), kept while the process lives.

How big and how old it may get:

* **quota** (:data:`QUOTA_BYTES`): before an upload is read (:class:`UploadLimits`) and after an export, the
  oldest files go until the new bytes fit; an upload that cannot fit even then is refused with a sentence;
* **age**: Gradio removes its uploads and served copies older than an hour (``delete_cache``), and
  :func:`lifespan` sweeps ``exports/`` and ``images/`` on the same schedule, quota included;
* **exit**: the folder is removed when the process exits, on SIGTERM and on SIGINT (:func:`remove_on_exit`);
* **start**: folders of earlier runs whose process is gone are removed (:func:`remove_stale`): each live folder
  holds an exclusive ``flock`` on its ``.lock`` file for the life of its process, which the kernel releases
  however the process ends (SIGKILL included). Folders of older versions of the app (``pose2id-ui-*``,
  ``pose2id-app-*``, no lock) are removed once their newest file is older than :data:`STALE_AGE_S` (a day).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import functools
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("pose2id_demo.ui")

#: Total size of the app's temporary files (uploads, served copies, exports, images).
QUOTA_BYTES = 2 * 2**30
#: Folders of older versions of the app (no lock, so whether their process lives is unknown) are removed at
#: start once untouched for this long.
STALE_AGE_S = 24 * 3600.0
PREFIX = "pose2id-"
LEGACY_PREFIXES = ("pose2id-ui-", "pose2id-app-")

_lock = threading.Lock()  # quota bookkeeping
_reserved = 0  # bytes of uploads being received now
_held: list[Any] = []  # the open lock file of root()
_busy: set[Path] = set()  # export folders being written (:func:`new_export`)


def base_dir() -> Path:
    """Where the app's per-process folders live: ``$GRADIO_TEMP_DIR`` as the operator set it, else the system's
    temp folder."""
    return Path(_operator_gradio_dir() or tempfile.gettempdir())


@functools.cache
def _operator_gradio_dir() -> str | None:
    return os.environ.get("GRADIO_TEMP_DIR") or None


@functools.cache
def root() -> Path:
    """This process's folder (created, and earlier runs' folders removed, on first use)."""
    base = base_dir()
    base.mkdir(parents=True, exist_ok=True)
    removed = remove_stale(base)
    if removed:
        log.info("removed %d temporary folder(s) of earlier runs from %s", removed, base)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    lock = open(folder / ".lock", "w")  # noqa: SIM115 — held (and so locked) for the life of the process
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held.append(lock)
    return folder


def gradio_dir() -> Path:
    """Gradio's cache for this app, inside :func:`root`."""
    return root() / "gradio"


def use_for_gradio() -> Path:
    """Point ``GRADIO_TEMP_DIR`` at :func:`gradio_dir` (Gradio reads it when components and the server are
    made, and on every upload), and ``GRADIO_EXAMPLES_CACHE`` at :func:`examples_dir` unless the operator set
    it; returns the first."""
    folder = gradio_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    os.environ["GRADIO_EXAMPLES_CACHE"] = _operator_examples_cache() or str(examples_dir())
    return folder


@functools.cache
def _operator_examples_cache() -> str | None:
    return os.environ.get("GRADIO_EXAMPLES_CACHE") or None


def examples_dir() -> Path:
    """Where Gradio keeps the Generate tab's cached examples (``gr.Examples(cache_mode="lazy")``): inside
    :func:`root`, so an example is generated once per process, never read back from an earlier run made with
    other code or weights. Kept for the life of the process (a few small PNGs per example): neither the sweep
    nor the quota removes them, since Gradio serves them by the paths it recorded."""
    folder = root() / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def images_dir() -> Path:
    """Where :func:`pose2id_demo.ui.render.image_file` writes."""
    folder = root() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def new_export(name: str) -> Iterator[Path]:
    """A path for one export, ``exports/<random>/<name>`` (so two users never share a file name); while the
    block writes it, neither the sweep nor the quota touches its folder (a long write may go seconds without
    changing the file's time)."""
    path = root() / "exports" / secrets.token_hex(8) / name
    path.parent.mkdir(parents=True)
    with _lock:
        _busy.add(path.parent)
    try:
        yield path
    finally:
        with _lock:
            _busy.discard(path.parent)


# ------------------------------------------------------------------------------------------------ stale folders
def _owner_gone(folder: Path) -> bool:
    """Whether no live process holds ``folder``'s lock (a folder without one is not ours to judge)."""
    try:
        with open(folder / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except BlockingIOError:
        return False
    except OSError:
        return False


def remove_stale(base: Path, now: float | None = None) -> int:
    """Remove, from ``base``, the folders of earlier runs: this version's whose process is gone, and older
    versions' untouched for :data:`STALE_AGE_S`. Returns how many went."""
    now = time.time() if now is None else now
    removed = 0
    for entry in base.iterdir() if base.is_dir() else ():
        if not entry.name.startswith(PREFIX) or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            if any(entry.name.startswith(p) for p in LEGACY_PREFIXES):
                stale = now - _newest_mtime(entry) > STALE_AGE_S
            else:  # a folder made in the last minute may not hold its lock yet
                stale = (entry / ".lock").is_file() and now - entry.stat().st_mtime > 60 and _owner_gone(entry)
            if stale:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        except OSError as exc:
            log.warning("could not check or remove %s: %s", entry, exc)
    return removed


# ------------------------------------------------------------------------------------------------------- quota
def _files() -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of every file under :func:`root` but the lock."""
    out = []
    for dirpath, _, names in os.walk(root()):
        for name in names:
            p = Path(dirpath) / name
            if name == ".lock" and p.parent == root():
                continue
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, p))
    return out


def usage() -> int:
    """Bytes under :func:`root`."""
    return sum(size for _, size, _ in _files())


def make_room(incoming: int, quota: int | None = None) -> int:
    """Remove the oldest files under :func:`root` until ``incoming`` more bytes (plus uploads being received)
    fit in ``quota`` (default :data:`QUOTA_BYTES`); returns the bytes freed. Empty folders left behind go too."""
    quota = QUOTA_BYTES if quota is None else quota
    files = sorted(_files())
    total = sum(size for _, size, _ in files)
    freed = 0
    for _, size, path in files:
        if total - freed + incoming + _reserved <= quota:
            break
        if path.parent in _busy or root() / "examples" in path.parents:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            freed += size
            _prune_empty(path.parent)
    if freed:
        log.info("temporary files over the %d MiB quota: removed the oldest, %.1f MiB", quota >> 20, freed / 2**20)
    return freed


def _prune_empty(folder: Path) -> None:
    """Remove ``folder`` and its parents while empty, up to (not including) the first level under :func:`root`."""
    top = root()
    while folder.parent != top and folder.is_relative_to(top):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def reserve(nbytes: int, quota: int | None = None) -> bool:
    """Make room for an upload of ``nbytes`` and count it as reserved until :func:`release`; False when it
    cannot fit even with every old file gone (other uploads being received hold the rest)."""
    global _reserved
    quota = QUOTA_BYTES if quota is None else quota
    with _lock:
        make_room(nbytes, quota)
        if usage() + _reserved + nbytes > quota:
            return False
        _reserved += nbytes
        return True


def release(nbytes: int) -> None:
    global _reserved
    with _lock:
        _reserved = max(0, _reserved - nbytes)


def enforce_quota(quota: int | None = None) -> int:
    """:func:`make_room` for nothing more: back within ``quota`` (after an export, on the sweep)."""
    with _lock:
        return make_room(0, quota)


# ----------------------------------------------------------------------------------------------- age and exit
def _newest_mtime(entry: Path) -> float:
    if not entry.is_dir() or entry.is_symlink():
        return entry.lstat().st_mtime
    return max([entry.lstat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")])


def sweep(age: float, now: float | None = None) -> int:
    """Remove the entries of ``exports/`` and ``images/`` whose newest file is older than ``age`` seconds
    (Gradio sweeps its own); how many went."""
    now = time.time() if now is None else now
    removed = 0
    for sub in ("exports", "images"):
        folder = root() / sub
        for entry in list(folder.iterdir()) if folder.is_dir() else ():
            try:
                if entry in _busy or now - _newest_mtime(entry) <= age:
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


def remove_all() -> None:
    """Remove this process's folder (at exit)."""
    if root.cache_info().currsize:  # only if it was ever made
        shutil.rmtree(root(), ignore_errors=True)


def remove_on_exit() -> None:
    """Remove :func:`root` when the process exits: normally, on SIGINT (which ends ``block_thread`` and so the
    process) and on SIGTERM (whose default action would skip every exit handler). A SIGTERM handler someone
    else installed is called after the removal; without one the process then ends as SIGTERM would end it."""
    atexit.register(remove_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    previous = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "_pose2id", False):
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        remove_all()
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    on_sigterm._pose2id = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_sigterm)


def lifespan(frequency: float, age: float) -> Callable[[Any], contextlib.AbstractAsyncContextManager]:
    """A server lifespan (``launch(app_kwargs={"lifespan": ...})``) that, every ``frequency`` seconds while the
    server runs, removes app files older than ``age`` seconds (:func:`sweep`) and holds the quota."""

    @contextlib.asynccontextmanager
    async def run(_app: Any) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(frequency)
                await asyncio.to_thread(sweep, age)
                await asyncio.to_thread(enforce_quota)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run
