"""Number inputs that answer a wrong value from the raw API with a sentence naming the parameter.

Gradio's ``Slider`` and ``Number`` compare the payload with their bounds before anything else, so ``"abc"``,
``null`` or the text ``"3"`` sent to ``/gradio_api/call/benchmark`` fail inside Gradio with a ``TypeError`` and
reach the caller as ``{"error": null}`` (and a traceback in the server log). These inputs check the payload
first (:func:`slider`, :func:`number`); the page itself always sends numbers, so nothing changes for it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import gradio as gr

from pose2id_demo.ablation import Settings
from pose2id_demo.engine.inputs import shown_value

log = logging.getLogger("pose2id_demo.ui")

#: Whole numbers beyond this are refused before any comparison or conversion (every input's range is far below).
MAX_WHOLE = 2**64


def _param_name(label: str | None) -> str:
    """``"k1 (NFC)"`` → ``"k1"``: the label without its explanation."""
    return (label or "this value").split(" (")[0].strip()


def _refuse(message: str) -> gr.Error:
    log.warning("refused input: %s", message)
    return gr.Error(message, title="Cannot do that", print_exception=False)


def _checked_number(label: str | None, payload: Any) -> float | int:
    name = _param_name(label)
    if payload is None:
        raise _refuse(f"{name} is missing: send a number.")
    if isinstance(payload, bool) or not isinstance(payload, (int, float)):
        raise _refuse(f"{name} must be a number, not {type(payload).__name__} {shown_value(payload)}.")
    if isinstance(payload, int) and abs(payload) > MAX_WHOLE:  # e.g. 10**400: no float holds it
        digits = int(payload.bit_length() * math.log10(2)) + 1
        raise _refuse(f"{name} is far out of range: a whole number of about {digits} digits was sent.")
    if not math.isfinite(payload):
        raise _refuse(f"{name} must be a finite number, got {shown_value(payload)}.")
    return payload


def _out_of_range(name: str, component: Any, payload: Any, exc: gr.Error) -> str:
    """Gradio's "Value 99 is greater than maximum value 20.", saying which value."""
    return f"{name}: {exc.message}"


def _not_a_choice(name: str, component: Any, payload: Any, exc: gr.Error) -> str:
    values = [c[1] if isinstance(c, tuple) else c for c in component.choices]
    return f"{name} must be one of {', '.join(map(str, values))}; got {shown_value(payload)}."


def _checked(component: Any, refusal: Callable[[str, Any, Any, gr.Error], str],
             check: Callable[[str | None, Any], Any] | None = None, allow_none: bool = False) -> Any:
    """``component`` with its ``preprocess`` checking the payload first (``check(label, payload)`` gives the
    value or refuses it with a sentence; ``allow_none``: an empty value stays None) and refusing what Gradio's own
    check refuses with ``refusal(name, component, payload, error)``'s sentence and one warning line, instead of
    Gradio's message and a traceback (an instance attribute: a subclass would make Gradio write a ``.pyi`` stub
    beside this module at import)."""
    base = component.preprocess
    name = _param_name(component.label)

    def preprocess(payload: Any) -> Any:
        if payload is None and allow_none:
            return None
        value = payload if check is None else check(component.label, payload)
        try:
            return base(value)
        except gr.Error as exc:
            raise _refuse(refusal(name, component, payload, exc)) from None

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def radio(*args: Any, **kwargs: Any) -> gr.Radio:
    """``gr.Radio(*args, **kwargs)`` that refuses a value outside its choices with a sentence naming it."""
    return _checked(gr.Radio(*args, **kwargs), _not_a_choice)


def dropdown(*args: Any, **kwargs: Any) -> gr.Dropdown:
    """``gr.Dropdown(*args, **kwargs)`` that refuses a value outside its choices with a sentence naming it
    (a dropdown that allows custom values is passed through)."""
    component = gr.Dropdown(*args, **kwargs)
    return component if kwargs.get("allow_custom_value") else _checked(component, _not_a_choice)


def slider(*args: Any, **kwargs: Any) -> gr.Slider:
    """``gr.Slider(*args, **kwargs)`` that refuses a non-number with a sentence naming it."""
    return _checked(gr.Slider(*args, **kwargs), _out_of_range, _checked_number)


def number(*args: Any, **kwargs: Any) -> gr.Number:
    """``gr.Number(*args, **kwargs)`` that refuses a non-number with a sentence naming it (empty stays None)."""
    return _checked(gr.Number(*args, **kwargs), _out_of_range, _checked_number, allow_none=True)


def knob(name: str, **kwargs: Any) -> gr.components.Component:
    """The control of the settings field ``name`` (:meth:`pose2id_demo.ablation.Settings.knob`): its default, its
    label, and a checked :func:`slider` over its limits, a radio of its choices or a checkbox; ``kwargs`` (an
    ``elem_id``, ``info``, another ``label``) go to the component."""
    k = Settings.knob(name)
    kwargs.setdefault("label", k["label"])
    if k["choices"] is not None:
        return radio(list(k["choices"]), value=k["default"], **kwargs)
    if isinstance(k["default"], bool):
        return gr.Checkbox(k["default"], **kwargs)
    return slider(*k["limits"], value=k["default"], step=k["step"], **kwargs)
