"""The project's small ReID network, trained from scratch on SynthPed (``synthped-reid``).

A "bag of tricks" (BoT, Luo et al. 2019) design scaled down for CPU training:

- trunk: a compact ResNet (basic blocks, widths ``widths``, last stage at 1/16 resolution for 128 × 64
  inputs), global average pooling → the *global feature* f_t (``dim`` channels);
- BNNeck: a BatchNorm1d (bias frozen at 0) turns f_t into the *inference feature* f_i; the ID classifier
  (no bias) reads f_i. Training uses the batch-hard triplet loss on f_t and label-smoothed cross
  entropy on the classifier, as BoT does; inference returns f_i (post-BN).

The architecture is fully described by :class:`ReIDConfig`, so weights round-trip as
``<name>.safetensors`` + ``<name>.json`` (:func:`save_reid` / :func:`load_reid`).

Input: RGB 128 × 64, scaled to [0, 1] then normalised with mean = std = 0.5 per channel (as the official
Pose2ID ReID input), i.e. x = 2·(pixel/255) − 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

logger = logging.getLogger(__name__)

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@dataclass
class ReIDConfig:
    """Architecture of :class:`SynthPedReID`."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 2, 2, 1)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    stem_stride: int = 2
    num_classes: int = 300
    input_size: tuple[int, int] = (128, 64)
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    meta: dict = field(default_factory=dict)   # training provenance (not architecture)

    @property
    def dim(self) -> int:
        return self.widths[-1]

    @classmethod
    def from_dict(cls, d: dict) -> ReIDConfig:
        d = dict(d)
        for k in ("widths", "blocks", "strides", "input_size", "mean", "std"):
            if k in d:
                d[k] = tuple(d[k])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)), inplace=True)


class SynthPedReID(nn.Module):
    """Compact ResNet + BNNeck. ``forward`` returns the post-BN feature in eval mode and
    ``(logits, global_feature)`` in train mode."""

    def __init__(self, config: ReIDConfig):
        super().__init__()
        self.config = config
        w0 = config.widths[0]
        self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, config.stem_stride, 1, bias=False), nn.BatchNorm2d(w0),
                                  nn.ReLU(inplace=True))
        stages = []
        cin = w0
        for w, n, s in zip(config.widths, config.blocks, config.strides):
            blocks = [BasicBlock(cin, w, s)] + [BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.bnneck = nn.BatchNorm1d(cin)
        self.bnneck.bias.requires_grad_(False)   # BoT: no shift in the neck
        self.classifier = nn.Linear(cin, config.num_classes, bias=False)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        for m in self.modules():  # zero-init the last BN of each residual branch
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    @property
    def dim(self) -> int:
        return self.config.dim

    def global_feature(self, x: torch.Tensor) -> torch.Tensor:
        """f_t: globally average-pooled trunk output (B, dim)."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor):
        ft = self.global_feature(x)
        fi = self.bnneck(ft)
        if self.training:
            return self.classifier(fi), ft
        return fi


def save_reid(model: SynthPedReID, out_dir: str | Path, name: str = "synthped-reid") -> Path:
    """Write ``<name>.safetensors`` (weights, BN statistics included) and ``<name>.json`` (config)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    path = out / f"{name}.safetensors"
    save_file(state, str(path), metadata={"format": "pt", "name": name})
    cfg = asdict(model.config)
    (out / f"{name}.json").write_text(json.dumps(cfg, indent=1))
    return path


def load_reid(path: str | Path, device: str | torch.device = "cpu") -> SynthPedReID:
    """Load a model written by :func:`save_reid` (``path`` = the .safetensors file); eval mode."""
    path = Path(path)
    cfg_path = path.with_suffix(".json")
    if not path.exists() or not cfg_path.exists():
        raise FileNotFoundError(f"ReID weights {path} or config {cfg_path} missing; train them with "
                                f"`python -m pose2id_demo.reid.train`")
    config = ReIDConfig.from_dict(json.loads(cfg_path.read_text()))
    model = SynthPedReID(config)
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    return model.to(device).eval()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (used as the weights' identity in feature caches)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
