"""Which server files a request may make the engine open: the rule of :class:`pose2id_demo.engine.inputs.
RequestFileRule`, filled in with what Gradio 6 knows about this app's files.

Gradio moves every upload into its upload cache (``gradio.utils.get_upload_folder()``: ``$GRADIO_TEMP_DIR`` or
``/tmp/gradio``) at ``<cache>/<sha256 of the content>/<name>`` and records the path in the Blocks'
``upload_file_set``; the shipped examples it copies there are in their component's ``keep_in_cache``, and the
outputs it serves in the output component's ``temp_files``. Gradio keeps these records per app, not per
session, so the rule accepts a file Gradio put in its cache for *a* request of this app. (An input
component's own ``temp_files`` is no evidence: Gradio adds to it any cache path a ``"meta"`` payload names.)
Gradio's own check — a payload with ``"meta"`` must name a file inside the cache — is skipped for payloads
without ``"meta"``, e.g. ``{"path": "/etc/shadow"}``: hence the engine's check on every file it opens.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from gradio.utils import get_upload_folder

from pose2id_demo.engine.inputs import RequestFileRule, request_files
from pose2id_demo.ui.common import EXAMPLES_DIR


def rule_for(demo: gr.Blocks) -> RequestFileRule:
    """The files ``demo``'s requests may name: its uploads, the outputs it served, the shipped examples."""
    cache = Path(get_upload_folder())
    resolved_cache = cache.resolve()

    def records() -> list[set[str]]:
        sets: list[set[str]] = [demo.upload_file_set]
        for block in list(demo.blocks.values()):
            sets.append(getattr(block, "keep_in_cache", set()))
            is_file_input = isinstance(block, (gr.Image, gr.File)) and block.interactive is not False
            if not is_file_input:
                sets.append(getattr(block, "temp_files", set()))
        return sets

    def uploaded(path: Path) -> bool:
        names = {str(path)}
        try:  # the records spell paths under the cache folder as Gradio does (it may be a symlink)
            names.add(str(cache / path.relative_to(resolved_cache)))
        except ValueError:
            pass
        return any(not names.isdisjoint(files) for files in records())

    return RequestFileRule(uploads=resolved_cache, uploaded=uploaded, shipped=(EXAMPLES_DIR.resolve(),))


def guarded(fn: Callable, demo: gr.Blocks) -> Callable:
    """``fn`` (a callback that takes files) run under ``demo``'s request-file rule."""
    rule = rule_for(demo)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with request_files(rule):
            return fn(*args, **kwargs)

    return wrapper
