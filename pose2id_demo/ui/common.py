"""What every tab shares: the error wrapper, payload and progress helpers, the backbone list, the legend of
the ranked lists, and :class:`TabContext` (what :func:`pose2id_demo.ui.app.build_demo` hands each tab's
``build``)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pose2id_demo.engine import Pose2IDError, get_engine
from pose2id_demo.engine.inputs import MAX_FEATURE_BYTES

#: Uploads above this many bytes are refused before they are read (documented in About): the largest input the
#: app evaluates, a feature file whose arrays total MAX_FEATURE_BYTES uncompressed (+ its zip and .npy headers).
MAX_UPLOAD = MAX_FEATURE_BYTES + 2**20
#: (frequency, age) in seconds: every 10 minutes, uploads, served copies and exports older than an hour go.
CACHE_SWEEP = (600, 3600)

log = logging.getLogger("pose2id_demo.ui")

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
COLUMNS = ["setting", "mAP", "Rank-1", "Rank-5", "Rank-10", "mINP", "ID²"]
DEFAULT_BACKBONE = "synthped-reid"
#: Concurrency of the cheap benchmark callbacks (generation runs one at a time, in its own queue). One at a
#: time on 2 cores: four at once (each on torch's 2 threads) starved generation (bench/load.py --gen-under-load).
BENCH_CONCURRENCY = 1

LEGEND = ("Top-10 gallery images, **upper row before** ({before}), **lower row after** ({after}); query framed "
          "blue, same identity <span style='color:#16a34a'>green</span>, other identity "
          "<span style='color:#dc2626'>red</span>.")


@dataclass
class TabContext:
    """What a tab's ``build(ctx)`` may use besides its own components.

    Attributes:
        demo: the Blocks being built (for ``demo.load`` events that fill the tab when the page opens).
        backbones: the ReID backbones offered in every dropdown.
        default_backbone: the one selected at first.
    """

    demo: gr.Blocks
    backbones: list[str]
    default_backbone: str


def user_errors(fn: Callable) -> Callable:
    """Turn engine errors into ``gr.Error`` with the engine's sentence; never leak a traceback.

    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Pose2IDError as exc:  # a user's mistake: one warning line in the log, no traceback
            log.warning("%s: %s", fn.__name__, exc)
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
        except MemoryError:
            raise gr.Error("That request needs more memory than this machine has; try a smaller input.",
                           print_exception=False) from None
        except Exception as exc:  # noqa: BLE001
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong inside the demo ({type(exc).__name__}). The app is still "
                           "running; please try again or change the input.") from None

    return wrapper


def payload_path(value: Any) -> str | None:
    """The server-side file path of a raw Gradio file payload (or a plain path)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path") or None
    return str(value)


def progress_fn(progress: gr.Progress) -> Callable[[float, str], None]:
    """The engine's ``progress(frac, desc)`` reported to a Gradio progress bar (cosmetic: never fails)."""

    def report(frac: float, desc: str) -> None:
        try:
            progress(min(max(float(frac), 0.0), 1.0), desc=desc)
        except Exception:  # noqa: BLE001 — progress is cosmetic (e.g. not inside a queued event)
            pass

    return report


def backbone_choices() -> list[str]:
    """The ReID registry's backbones (:func:`pose2id_demo.reid.list_backbones`, with any ``--backbone`` added)."""
    return get_engine().backbones()
