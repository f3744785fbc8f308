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

What Gradio refuses itself before a callback runs — a path outside its cache, a file payload without
``"meta"``, too few inputs — reaches the raw API as ``{"error": null}`` (Gradio only passes on the message of a
``gr.Error``); :func:`refusals_as_sentences` turns each into the sentence the engine would give, and answers a
call of an event that runs in the browser only (its ``js``; Gradio failed with an ``IndexError``) with one. An
upload that Gradio cannot read (a part with an empty file name made it fail with HTTP 500), or one too large for
the app's limits, is answered with a sentence by :class:`UploadLimits`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import gradio as gr
from gradio import processing_utils
from gradio.utils import get_upload_folder

from pose2id_demo.engine.inputs import NOT_UPLOADED, NOT_UPLOADED_IMAGE, RequestFileRule, request_files
from pose2id_demo.ui import tempfiles
from pose2id_demo.ui.common import EXAMPLES_DIR

log = logging.getLogger("pose2id_demo.ui")

#: The answer to a call of an event that has no server function (Gradio answered ``{"error": null}``).
BROWSER_ONLY = "This event runs in the browser only; there is nothing to call on the server."
#: The sentence for a refused file input, by component id (:func:`file_input`); images default to
#: :data:`~pose2id_demo.engine.inputs.NOT_UPLOADED_IMAGE`.
_REFUSED: dict[int, str] = {}


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


def file_input(component: Any, what: str) -> Any:
    """``component`` (a file input) answered, when Gradio refuses what a request sent for it, with the engine's
    sentence for a ``what`` file it may not open (:data:`~pose2id_demo.engine.inputs.NOT_UPLOADED`)."""
    _REFUSED[component._id] = NOT_UPLOADED[what]
    return component


def _refusal(block: Any) -> str:
    if block._id in _REFUSED:
        return _REFUSED[block._id]
    if isinstance(block, (gr.Image, gr.File)):
        return NOT_UPLOADED_IMAGE if isinstance(block, gr.Image) else "Please upload a file."
    return f"{block.label or 'A value'}: the value sent cannot be used."


def refusals_as_sentences(demo: gr.Blocks) -> gr.Blocks:
    """Make what Gradio refuses before a callback runs answer with a sentence on every route (gradio_client,
    ``/gradio_api/call/…``, ``/gradio_api/queue/…``): ``demo.preprocess_data`` is wrapped (an instance attribute:
    Gradio calls it as ``self.preprocess_data``). On a refusal the inputs are looked at one by one, with Gradio's
    own steps, to name the one refused; one warning line goes to the log."""
    base = demo.preprocess_data

    async def preprocess_data(block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False) -> Any:
        if block_fn.fn is None:  # an event the browser runs by itself (its js): nothing to call on the server
            log.warning("refused a call to %s: it runs in the browser only", block_fn.api_name or "an event")
            raise gr.Error(BROWSER_ONLY, title="Cannot do that", print_exception=False)
        try:
            return await base(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 — Gradio's own refusal, answered with a sentence
            sentence = await _which_refused(block_fn, inputs, explicit_call)
            log.warning("refused input to %s: %s (%s)", block_fn.name, sentence, type(exc).__name__)
            raise gr.Error(sentence, title="Cannot do that", print_exception=False) from None

    demo.preprocess_data = preprocess_data  # type: ignore[method-assign]
    return demo


async def _which_refused(block_fn: Any, inputs: list[Any], explicit_call: bool) -> str:
    """The sentence for the first input Gradio refuses (its cache and payload checks, one input at a time)."""
    wanted, sent = len(block_fn.inputs), len(inputs)
    if sent < wanted:
        return (f"This endpoint takes {wanted} input{'' if wanted == 1 else 's'}; {sent} "
                f"{'was' if sent == 1 else 'were'} sent.")
    for block, value in zip(block_fn.inputs, inputs):
        if not isinstance(block, (gr.Image, gr.File)) or value is None:
            continue
        path = value.get("path") if isinstance(value, dict) else value
        if isinstance(path, str) and path.lower().startswith(("http://", "https://")):
            continue  # never fetched again here just to name the input
        try:
            cached = await processing_utils.async_move_files_to_cache(value, block,
                                                                       check_in_upload_folder=not explicit_call)
            if getattr(block, "data_model", None) is not None and cached is not None:
                block.data_model.model_validate(cached, context={"validate_meta": True})
        except Exception:  # noqa: BLE001 — this is the input refused
            return _refusal(block)
    names = ", ".join(str(b.label or type(b).__name__) for b in block_fn.inputs)
    return f"The inputs sent cannot be used; this endpoint takes: {names}."


class UploadLimits:
    """ASGI middleware for ``POST …/gradio_api/upload``: the request must state its size (Content-Length) and
    fit ``max_bytes``; room for it is made within the app's quota (:func:`.tempfiles.reserve`, oldest files
    first) before a byte is read; and an upload Gradio fails on is answered with a sentence (HTTP 400), not
    HTTP 500."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or \
                not scope["path"].rstrip("/").endswith("/gradio_api/upload"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if not length.isdigit():
            await _answer(send, 411, "An upload must state its size (a Content-Length header).")
            return
        n = int(length)
        if n > self.max_bytes:
            await _answer(send, 413, f"The upload is {n / 2**20:.1f} MiB, over the maximum allowed size of "
                                     f"{self.max_bytes / 2**20:.0f} MiB per request.")
            return
        if not await anyio.to_thread.run_sync(tempfiles.reserve, n):
            await _answer(send, 503, "The server is receiving too many uploads at once; please try again in a "
                                     "minute.")
            return
        started = False

        async def send_started(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        except Exception as exc:  # noqa: BLE001 — Gradio could not read the upload
            if started:
                raise
            log.warning("refused upload: %s: %s", type(exc).__name__, str(exc)[:200])
            await _answer(send, 400, "The upload could not be read: send each file as a multipart/form-data part "
                                     "named \"files\" with a file name.")
        finally:
            tempfiles.release(n)


async def _answer(send: Callable, status: int, sentence: str) -> None:
    body = sentence.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
