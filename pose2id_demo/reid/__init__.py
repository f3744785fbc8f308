"""ReID backbones (a registry of name → model + preprocessing), the project's trained SynthPed ReID
network and its training script, and an on-disk feature cache.

- :func:`get_backbone`, :func:`list_backbones`, :func:`register_backbone`, :class:`Backbone` — :mod:`.backbones`
- :mod:`.model` — ``SynthPedReID`` (compact ResNet + BNNeck), safetensors round trip
- :mod:`.train` — ``python -m pose2id_demo.reid.train``
- :mod:`.features` — ``dataset_features(backbone_name, task)`` cached on disk; :mod:`.build_shipped` writes the
  float16 files of :mod:`pose2id_demo.shipped_features`
- :mod:`.transreid` — TransReID (ViT-B/16 + JPM) of the official Pose2ID release, :func:`load_transreid`
- :mod:`.hf_backbone` — ``hf:<model id or folder>``: any ``transformers`` image model (paper Table 5's ViT)
"""

from pose2id_demo.reid import hf_backbone  # noqa: F401 — registers the hf: prefix
from pose2id_demo.reid.backbones import (
    Backbone,
    backbone_slug,
    get_backbone,
    list_backbones,
    register_backbone,
    resolve_backbone,
)
from pose2id_demo.reid.transreid import TransReID, TransReIDConfig, load_transreid

__all__ = ["Backbone", "TransReID", "TransReIDConfig", "backbone_slug", "get_backbone", "list_backbones",
           "load_transreid", "register_backbone", "resolve_backbone"]
