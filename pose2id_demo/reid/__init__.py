"""ReID backbones (a registry of name → model + preprocessing), the project's trained SynthPed ReID
network and its training script, and an on-disk feature cache.

- :func:`get_backbone`, :func:`list_backbones`, :func:`register_backbone`, :class:`Backbone` — :mod:`.backbones`
- :mod:`.model` — ``SynthPedReID`` (compact ResNet + BNNeck), safetensors round trip
- :mod:`.train` — ``python -m pose2id_demo.reid.train``
- :mod:`.features` — ``dataset_features(backbone_name, task)`` cached on disk
"""

from pose2id_demo.reid.backbones import (
    Backbone,
    get_backbone,
    list_backbones,
    register_backbone,
)

__all__ = ["Backbone", "get_backbone", "list_backbones", "register_backbone"]
