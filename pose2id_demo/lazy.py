"""The one place where the package imports third-party modules late, and why.

Every other import sits at the top of the module that uses it. The modules below are imported by the first
call that needs them, through :func:`load` (or :func:`optional`), because importing them costs seconds that
most uses never need, or because they are optional extras:

======================  =============================================================================
module                  why it is imported late
======================  =============================================================================
``torch``               in the numpy modules of the paper's maths (:mod:`pose2id_demo.centralization`,
                        :mod:`pose2id_demo.metrics`) only for the fast GEMM path; those modules stay
                        importable, and usable, without it
``faiss``               optional (``requirements-scale.txt``): NFC's approximate neighbour search
``mediapipe``           seconds and a TFLite runtime: only the pose estimator of uploaded photos
``transformers``        seconds: only ``hf:<model>`` backbones
``accelerate``          only ``accelerate launch … generate`` (several processes)
``sklearn.*``           only t-SNE pictures (:mod:`pose2id_demo.visualize`)
``plotly.*``            only the app's figures (:mod:`pose2id_demo.ui.render`)
======================  =============================================================================
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The modules that may be imported late (their top-level package), with the reason.
LATE = {
    "torch": "the fast GEMM path of the numpy maths modules",
    "faiss": "NFC's approximate neighbour search (pip install -r requirements-scale.txt)",
    "mediapipe": "the pose estimator of uploaded photos",
    "transformers": "hf:<model> backbones",
    "accelerate": "generation over several processes",
    "sklearn": "t-SNE pictures",
    "plotly": "the app's figures",
}


def load(name: str) -> ModuleType:
    """Import ``name`` (a module whose top-level package is in :data:`LATE`) and return it; raises
    ``ImportError`` when it is not installed."""
    top = name.split(".")[0]
    if top not in LATE:
        raise ValueError(f"{name} is not imported late; import it at the top of the module that uses it")
    return importlib.import_module(name)


def optional(name: str) -> ModuleType | None:
    """:func:`load`, or None when the module is not installed."""
    try:
        return load(name)
    except ImportError:
        return None
