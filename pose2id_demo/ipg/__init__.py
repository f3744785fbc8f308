"""Identity-Guided Pedestrian Generation (IPG), paper §3.2.2: IFR, Pose Guider, reference attention, pipeline.

Public API (imported lazily so that ``import pose2id_demo.ipg`` does not pull in diffusers):
``Pose2IDPipeline``, ``Pose2IDPipelineOutput``, ``load_embedded(device)`` (the shipped tiny model),
``load_official(source, device, reid=...)`` (the released SD1.5-based weights: ``"hub"`` — fetched from the
Hugging Face repo yuanc3/Pose2ID into the Hub cache, :mod:`pose2id_demo.ipg.hub` — or a folder), ``IFR``,
``PoseGuider``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Pose2IDPipeline": "pose2id_demo.ipg.pipeline",
    "Pose2IDPipelineOutput": "pose2id_demo.ipg.pipeline",
    "load_embedded": "pose2id_demo.ipg.pipeline",
    "make_scheduler": "pose2id_demo.ipg.pipeline",
    "load_official": "pose2id_demo.ipg.official",
    "IFR": "pose2id_demo.ipg.ifr",
    "PoseGuider": "pose2id_demo.ipg.pose_encoder",
    "PixelUnshuffleVAE": "pose2id_demo.ipg.vae",
    "PoseConditionedUNet2DConditionModel": "pose2id_demo.ipg.unet",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pose2id_demo.ipg' has no attribute {name!r}")
