"""ReID backbones from ``transformers``: ``hf:<model id or local folder>`` — the paper's Table 5 setting, an
ImageNet ViT with no ReID training (``hf:google/vit-base-patch16-224``), or any other image model.

The name after ``hf:`` is a folder written by ``save_pretrained`` (model + image processor) or a Hub model id,
which ``transformers`` downloads into the Hugging Face cache on first use (``HF_HUB_OFFLINE=1`` is respected).
The model is ``AutoModel`` and its images are prepared by its own ``AutoImageProcessor`` (its resize, crop and
mean/std — for ViT-B/16 a 224 × 224 square, so a 2 : 1 person crop is squeezed; TransReID instead reads 256 ×
128 with overlapping patches). The feature is:

- the model's pooled output (``pooler_output``) when its checkpoint holds the pooler's weights;
- otherwise the first token of the last hidden state — ViT's CLS token after the final LayerNorm, the vector
  its ImageNet classifier reads (``google/vit-base-patch16-224`` ships no pooler weights, and a freshly
  initialised pooler would be a random projection);
- for a convolutional model without a pooler, the spatial mean of the last feature map.

Names are registered on demand (:func:`pose2id_demo.reid.backbones.resolve_backbone`): the CLI's ``extract``
and ``generate`` accept them directly; the app lists the ones given with ``python app.py --backbone hf:…`` (a
request can never make the server load a model nobody registered).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from pose2id_demo import lazy
from pose2id_demo.reid.backbones import Backbone, ImageLike, register_prefix, rgb_image

logger = logging.getLogger(__name__)

PREFIX = "hf:"
_MODEL_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class HFBackbone(Backbone):
    """A :class:`Backbone` whose ``preprocess`` is the model's own image processor."""

    processor: Any = None

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        pil = [rgb_image(im) for im in images]
        return self.processor(images=pil, return_tensors="pt")["pixel_values"].to(self.device)


class PooledFeature(nn.Module):
    """``pixel_values → (B, dim)``: the pooled output, or the first token, or the spatial mean (module docstring)."""

    def __init__(self, model: nn.Module, use_pooler: bool) -> None:
        super().__init__()
        self.model, self.use_pooler = model, use_pooler

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        if self.use_pooler:
            return out.pooler_output.flatten(1)
        h = out.last_hidden_state
        return h[:, 0] if h.ndim == 3 else h.mean(dim=tuple(range(2, h.ndim)))


def model_source(name: str) -> str:
    """``hf:X`` → X as ``transformers`` should read it: an absolute folder path, or a Hub model id.

    Raises:
        ValueError: one sentence, for anything that is neither an existing folder nor a model id.
    """
    spec = name[len(PREFIX):].strip() if name.startswith(PREFIX) else ""
    folder = Path(spec).expanduser()
    if spec and folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ValueError(f"{name}: the folder {folder} has no config.json (write it with save_pretrained).")
        return str(folder.resolve())
    if not _MODEL_ID.match(spec) or ".." in spec:
        raise ValueError(f"{name!r} names neither a folder nor a Hugging Face model id (hf:OWNER/NAME or "
                         "hf:/path/to/folder).")
    return spec


def _weights_id(model: nn.Module, source: str) -> str:
    """The Hub commit the model came from, or a hash of the folder's config and weight files."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return str(commit)[:16]
    h = hashlib.sha256()
    for p in sorted(Path(source).glob("*")):
        if p.is_file() and p.suffix in (".json", ".safetensors", ".bin"):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def load_hf_backbone(name: str, device: str | torch.device = "cpu") -> HFBackbone:
    """The backbone ``hf:<model id or folder>`` (see the module docstring)."""
    transformers = lazy.load("transformers")
    AutoImageProcessor, AutoModel = transformers.AutoImageProcessor, transformers.AutoModel
    source = model_source(name)
    try:
        processor = AutoImageProcessor.from_pretrained(source)
        model, info = AutoModel.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{name}: transformers could not load it ({first}).") from None
    missing = list(info.get("missing_keys", []))
    pooler_missing = [k for k in missing if "pooler" in k]
    other_missing = [k for k in missing if "pooler" not in k]
    if other_missing:
        raise ValueError(f"{name}: the checkpoint lacks {len(other_missing)} weights of the model "
                         f"({', '.join(other_missing[:3])}…), so its features would be partly random.")
    use_pooler = getattr(model, "pooler", None) is not None and not pooler_missing
    feature = PooledFeature(model.eval(), use_pooler)
    size = processor.crop_size if getattr(processor, "do_center_crop", False) else processor.size
    h = size.get("height") or size.get("shortest_edge")
    w = size.get("width") or size.get("shortest_edge")
    mean = tuple(getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5))
    std = tuple(getattr(processor, "image_std", None) or (0.5, 0.5, 0.5))
    with torch.no_grad():
        dim = int(feature(processor(images=[Image.new("RGB", (w, h))], return_tensors="pt")["pixel_values"]).shape[1])
    kind = "pooled output" if use_pooler else "first token / mean of the last hidden state"
    logger.info("loaded %s (%s, %d-d %s, input %dx%d)", name, type(model).__name__, dim, kind, h, w)
    return HFBackbone(name=name, model=feature, input_size=(int(h), int(w)), mean=mean, std=std, dim=dim,
                      weights_id=_weights_id(model, source),
                      description=f"{type(model).__name__} from transformers ({kind}), no ReID training",
                      device=device, processor=processor)


def factory(name: str) -> Callable[..., HFBackbone]:
    """The registry factory of ``name`` (checked now; the model loads when the backbone is first used)."""
    model_source(name)
    return lambda device="cpu": load_hf_backbone(name, device=device)


register_prefix(PREFIX, factory)
