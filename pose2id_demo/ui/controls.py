"""Inputs that answer a wrong value from the raw API with a sentence naming the parameter.

Gradio's ``Slider`` and ``Number`` compare the payload with their bounds before anything else, so ``"abc"``,
``null`` or the text ``"3"`` sent to ``/gradio_api/call/benchmark`` fail inside Gradio with a ``TypeError`` and
reach the caller as ``{"error": null}`` (and a traceback in the server log). These inputs check the payload
first (:func:`slider`, :func:`number`), and a value out of range gets the engine's own sentence
(:func:`pose2id_demo.engine.inputs.check_float`: "η must be between 0 and 10; got -1."), the one an endpoint
that reads its values raw (``/generate``) gives; a checkbox takes a boolean only (:func:`checkbox`), and a
cached example's index must be one of the examples (:func:`example_index`). The page itself always sends
valid values, so nothing changes for it. Every refusal logs one warning line.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

import gradio as gr

from pose2id_demo.ablation import Settings
from pose2id_demo.engine.errors import Pose2IDError
from pose2id_demo.engine.inputs import check_float, shown_value

log = logging.getLogger("pose2id_demo.ui")

#: Whole numbers beyond this are refused before any comparison or conversion (every input's range is far below).
MAX_WHOLE = 2**64


def _param_name(label: str | None) -> str:
    """``"k1 (NFC)"`` → ``"k1"``: the label without its explanation."""
    return (label or "this value").split(" (")[0].strip()


def _refuse(message: str) -> gr.Error:
    log.warning("refused input: %s", message)
    return gr.Error(message, title="Cannot do that", print_exception=False)


def _checked_number(name: str, payload: Any) -> float | int:
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


def _gradio_says(name: str, component: Any, payload: Any, exc: gr.Error) -> str:
    """Gradio's own refusal of a value the check let through, saying which value."""
    return f"{name}: {exc.message}"


def _not_a_choice(name: str, component: Any, payload: Any, exc: gr.Error | None = None) -> str:
    values = [c[1] if isinstance(c, tuple) else c for c in component.choices]
    return f"{name} must be one of {', '.join(map(str, values))}; got {shown_value(payload)}."


def _number(name: str, component: gr.Slider | gr.Number, payload: Any) -> float | int:
    """``payload`` as a number within ``component``'s bounds, else refused with a sentence: a value out of range
    gets the engine's own (:func:`pose2id_demo.engine.inputs.check_float`: "η must be between 0 and 10; got
    -1."), not Gradio's "Value -1 is less than minimum value 0.0"."""
    value = _checked_number(name, payload)
    lo, hi = component.minimum, component.maximum
    if lo is not None or hi is not None:
        try:
            check_float(name, value, -math.inf if lo is None else lo, math.inf if hi is None else hi)
        except Pose2IDError as exc:
            raise _refuse(str(exc)) from None
    return value


def _choice(name: str, component: gr.Radio | gr.Dropdown, payload: Any) -> Any:
    """``payload``, unless it is null (Gradio passes null on; the page always sends one of the choices)."""
    if payload is None:
        raise _refuse(_not_a_choice(name, component, payload))
    return payload


def _boolean(name: str, component: gr.Checkbox, payload: Any) -> bool:
    """``payload`` if it is a boolean (what the page sends); Gradio would pass ``"yes"``, ``1`` or null on."""
    if not isinstance(payload, bool):
        raise _refuse(f"{name} must be true or false; got {shown_value(payload)}.")
    return payload


def _example(name: str, component: gr.Dataset, payload: Any) -> int:
    """``payload`` if it is the index of one of ``component``'s samples (-1 picked the last example; null or
    10**9 failed inside Gradio)."""
    n = len(component.raw_samples)
    if isinstance(payload, bool) or not isinstance(payload, int) or not 0 <= payload < n:
        raise _refuse(f"The {name} is chosen by its index, a whole number from 0 to {n - 1}; got "
                      f"{shown_value(payload)}.")
    return payload


def _whole_number(name: str, component: gr.Dropdown, payload: Any) -> int | float:
    """``payload`` as a number; text (an id typed into the box: the page sends it as text) read as a whole
    number."""
    if isinstance(payload, str):
        if not re.fullmatch(r"\s*[+-]?\d{1,40}\s*", payload):
            raise _refuse(f"{name} must be a whole number; got {shown_value(payload)}.")
        return int(payload)
    return _checked_number(name, payload)


def _checked(component: Any, refusal: Callable[[str, Any, Any, gr.Error], str],
             check: Callable[[str, Any, Any], Any] | None = None, allow_none: bool = False,
             name: str | None = None) -> Any:
    """``component`` with its ``preprocess`` checking the payload first (``check(name, component, payload)``
    gives the value or refuses it with a sentence; ``allow_none``: an empty value stays None) and refusing what
    Gradio's own check refuses with ``refusal(name, component, payload, error)``'s sentence and one warning line,
    instead of Gradio's message and a traceback (an instance attribute: a subclass would make Gradio write a
    ``.pyi`` stub beside this module at import). ``name`` is what the sentences call it (default: its label
    without the explanation), the engine's name for the same value where the engine reads it too."""
    base = component.preprocess
    name = name or _param_name(component.label)

    def preprocess(payload: Any) -> Any:
        if payload is None and allow_none:
            return None
        value = payload if check is None else check(name, component, payload)
        try:
            return base(value)
        except gr.Error as exc:
            raise _refuse(refusal(name, component, payload, exc)) from None

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def radio(*args: Any, **kwargs: Any) -> gr.Radio:
    """``gr.Radio(*args, **kwargs)`` that refuses a value outside its choices (null too) with a sentence naming
    it."""
    return _checked(gr.Radio(*args, **kwargs), _not_a_choice, _choice)


def dropdown(*args: Any, **kwargs: Any) -> gr.Dropdown:
    """``gr.Dropdown(*args, **kwargs)`` that refuses a value outside its choices (null too) with a sentence naming
    it (a dropdown that allows custom values is passed through)."""
    component = gr.Dropdown(*args, **kwargs)
    return component if kwargs.get("allow_custom_value") else _checked(component, _not_a_choice, _choice)


def slider(*args: Any, name: str | None = None, **kwargs: Any) -> gr.Slider:
    """``gr.Slider(*args, **kwargs)`` that refuses a non-number, or one out of its range, with a sentence naming
    it ``name`` (default: its label without the explanation)."""
    return _checked(gr.Slider(*args, **kwargs), _gradio_says, _number, name=name)


def number(*args: Any, name: str | None = None, **kwargs: Any) -> gr.Number:
    """``gr.Number(*args, **kwargs)`` that refuses a non-number, or one out of its range, with a sentence naming
    it ``name`` (empty stays None)."""
    return _checked(gr.Number(*args, **kwargs), _gradio_says, _number, allow_none=True, name=name)


def checkbox(*args: Any, name: str | None = None, **kwargs: Any) -> gr.Checkbox:
    """``gr.Checkbox(*args, **kwargs)`` that takes a boolean only (what the page sends): ``"yes"``, ``1`` or
    ``null`` from the raw API get a sentence naming it ``name``, where Gradio would pass them on as they are."""
    return _checked(gr.Checkbox(*args, **kwargs), _gradio_says, _boolean, name=name)


def example_index(dataset: gr.Dataset, what: str = "example") -> gr.Dataset:
    """``dataset`` (the one ``gr.Examples`` makes) refusing an index that is not one of its samples with a
    sentence: Gradio's ``load_example_input`` / ``load_example`` events take it from the raw API as it comes, and
    -1 picked the last example, ``null`` or 10**9 answered ``{"error": null}`` with a traceback."""
    return _checked(dataset, _gradio_says, _example, name=what)


def identity_picker(**kwargs: Any) -> gr.Dropdown:
    """A dropdown of identities whose choices come later (a task's identities, set by an event), documented to
    the API as what it takes, an integer identity (an empty choice list would show as ``Literal[]``); an id typed
    into the box arrives as text and is read as a whole number; anything else that is not a number gets a
    sentence here, and the engine checks the identity
    (:func:`pose2id_demo.engine.inputs.check_identity`). ``kwargs`` go to ``gr.Dropdown``."""
    component = gr.Dropdown([], allow_custom_value=True, **kwargs)

    def api_info() -> dict[str, Any]:
        return {"type": "integer", "description": "an identity of the task with at least two query + gallery "
                                                  "images; null: the one with the most"}

    component.api_info = api_info  # type: ignore[method-assign]
    return _checked(component, _gradio_says, _whole_number, allow_none=True, name="identity")


def knob(name: str, **kwargs: Any) -> gr.components.Component:
    """The control of the settings field ``name`` (:meth:`pose2id_demo.ablation.Settings.knob`): its default, its
    label, and a checked :func:`slider` over its limits, a radio of its choices or a checkbox; ``kwargs`` (an
    ``elem_id``, ``info``, another ``label``) go to the component."""
    k = Settings.knob(name)
    kwargs.setdefault("label", k["label"])
    if k["choices"] is not None:
        return radio(list(k["choices"]), value=k["default"], **kwargs)
    if isinstance(k["default"], bool):
        return checkbox(k["default"], name=k["name"], **kwargs)
    return slider(*k["limits"], value=k["default"], step=k["step"], name=k["name"], **kwargs)
