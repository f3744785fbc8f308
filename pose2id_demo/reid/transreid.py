"""TransReID (He et al., ICCV 2021) as released with Pose2ID: the ReID network whose feature feeds IFR.

The official IPG reads a reference image through TransReID — a ViT-B/16 with overlapping patches and
the Jigsaw Patch Module (JPM) — and hands its 3840-d output to IFR (paper §3.2.2, eq. 5). The weights are
``transformer_20.pth`` from the Hugging Face repo ``yuanc3/Pose2ID`` (trained on Market-1501 without
camera ids). This module is our own implementation; parameter names, shapes and the inference forward were
matched to github.com/yuanc3/Pose2ID (commit 0fea3b3) so that file loads with
``load_state_dict(strict=True)``.

Facts pinned, with the file each was read from:

- ``IPG/inference.py``: ``make_model(cfg_transreid, num_class=751, camera_num=0, view_num=1)``, then
  ``load_param(ckpt_dir + "/transformer_20.pth")``, fp32, ``eval()``. ReID input: the reference image
  resized to 128 × 256 (W × H) with ``Image.ANTIALIAS`` (Lanczos), ``ToTensor``, ``Normalize(0.5, 0.5)``.
  The unconditional branch feeds ``zeros_like`` of that normalised input. Output → ``ifr(reid_output)``.
- ``IPG/cfg_transreid.pkl`` (a yacs ``CfgNode``; read with ``pickletools``, never unpickled):
  ``NAME transformer``, ``TRANSFORMER_TYPE vit_base_patch16_224_TransReID``, ``STRIDE_SIZE [12, 12]``,
  ``INPUT.SIZE_TRAIN [256, 128]``, ``JPM True``, ``RE_ARRANGE True``, ``SHIFT_NUM 5``,
  ``SHUFFLE_GROUP 2``, ``DEVIDE_LENGTH 4``, ``SIE_CAMERA True`` / ``SIE_VIEW False`` / ``SIE_COE 3.0``
  (moot: ``camera_num=0`` above, so no SIE embedding exists), ``ID_LOSS_TYPE softmax``,
  ``NECK bnneck``, ``TEST.NECK_FEAT before``, ``SOLVER.MAX_EPOCHS 20`` (hence ``transformer_20``).
  Same values as ``demo/TransReID-main/configs/Market/vit_transreid_stride.yml``; the release README
  says to set ``camera_num`` to 0 for this "w/o camera ID" model.
- ``IPG/reidmodel/trainsreid/backbones/vit_pytorch.py`` (identical in ``demo/TransReID-main/model/``):
  ViT-B: ``embed_dim 768, depth 12, num_heads 12, mlp_ratio 4, qkv_bias True``, LayerNorm ``eps 1e-6``,
  attention scale ``head_dim ** -0.5``, GELU MLP. ``PatchEmbed_overlap``: ``Conv2d(3, 768, 16, stride 12)``
  → ``num_y = (256 − 16) // 12 + 1 = 21``, ``num_x = (128 − 16) // 12 + 1 = 10``: 210 patches, row-major;
  ``pos_embed (1, 211, 768)`` is added as is (no interpolation at 256 × 128; resizing only happens when
  loading ImageNet weights); ``cls_token (1, 1, 768)``. No ``sie_embed`` (camera = view = 0). The ViT keeps
  its unused ImageNet head ``fc = Linear(768, 1000)``. With ``local_feature=True`` its forward runs the
  first 11 blocks only and returns all 211 tokens *without* the final norm (``blocks[11]`` and ``norm``
  stay in the state dict but are not used at inference).
- ``IPG/reidmodel/trainsreid/make_model.py`` (``build_transformer_local``, ``shuffle_unit``): ``b1`` and
  ``b2`` are ``Sequential(deepcopy(blocks[-1]), deepcopy(norm))``. Global feature: ``b1(tokens)[:, 0]``.
  JPM (``RE_ARRANGE``): on the token sequence *with* the cls token at 0, ``cat(t[:, shift:],
  t[:, 1:shift])`` — i.e. the 210 patch tokens rotated left by ``shift − 1 = 4`` — then, if the length is
  not a multiple of ``group``, the second-to-last token is appended once; then the patch shuffle
  ``view(B, group, −1, D).transpose(1, 2)`` interleaves the ``group`` halves. With
  ``patch_length = 210 // 4 = 52``, local branch k (k = 0..3) is ``b2(cat(cls, x[:, 52k:52(k+1)]))[:, 0]``
  — the same ``b2`` for all four, cls taken from the tokens before ``b1``/``b2``; the last 2 shuffled
  tokens are never used. Heads: ``classifier``, ``classifier_1..4`` = ``Linear(768, 751, bias=False)``;
  ``bottleneck``, ``bottleneck_1..4`` = ``BatchNorm1d(768)``.
- Inference output with ``NECK_FEAT = before`` (what feeds IFR)::

      cat([global, local_1 / 4, local_2 / 4, local_3 / 4, local_4 / 4], dim=1)    # (B, 3840)

  i.e. *before* the BN necks, locals divided by 4 (with ``after``: the BN'd versions, same /4).
- Checkpoint: ``processor/processor.py`` saves ``model.state_dict()`` of the whole
  ``build_transformer_local`` (no DataParallel wrapper when training; ``load_param`` strips ``module.``
  anyway). Its keys, which :class:`TransReID` reproduces exactly::

      base.cls_token (1,1,768)  base.pos_embed (1,211,768)
      base.patch_embed.proj.{weight (768,3,16,16), bias}
      base.blocks.{0..11}.{norm1, norm2}.{weight, bias}
      base.blocks.{0..11}.attn.qkv.{weight (2304,768), bias}   .attn.proj.{weight, bias}
      base.blocks.{0..11}.mlp.fc1.{weight (3072,768), bias}    .mlp.fc2.{weight (768,3072), bias}
      base.norm.{weight, bias}  base.fc.{weight (1000,768), bias (1000)}
      b1.0.<one block as above>  b1.1.{weight, bias}  b2.0.<…>  b2.1.{weight, bias}
      classifier.weight (751,768)  classifier_{1..4}.weight (751,768)
      bottleneck{,_1,_2,_3,_4}.{weight, bias, running_mean, running_var, num_batches_tracked}

:func:`load_transreid` reads the head sizes (751 train ids, 1000 ImageNet classes) from the file's tensor
shapes, so a file without heads loads too; a file with a ``base.sie_embed`` (a camera-aware TransReID) is
refused, since IFR was trained on features without SIE.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pose2id_demo.reid.backbones import Backbone, ImageLike

logger = logging.getLogger(__name__)

NUM_LOCAL = 4            # JPM local branches (hard-coded as lf_1 … lf_4 upstream)
LOCAL_SCALE = 4.0        # upstream divides each local feature by 4 in the inference output
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TransReIDConfig:
    """Architecture of :class:`TransReID`; the defaults are the Pose2ID release (``transformer_20.pth``).

    Attributes:
        img_size: (H, W) input.
        patch_size, stride_size: overlapping patch embedding (stride < patch).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps: the ViT.
        num_classes: train ids of the ID classifiers (0: no classifier heads).
        base_num_classes: the ViT's unused ImageNet head ``base.fc`` (0: none).
        shift_num, shuffle_groups, divide_length, rearrange: JPM (``SHIFT_NUM``, ``SHUFFLE_GROUP``,
            ``DEVIDE_LENGTH``, ``RE_ARRANGE``).
        neck_feat: ``"before"`` (the release) or ``"after"`` the BN necks.
    """

    img_size: tuple[int, int] = (256, 128)
    patch_size: int = 16
    stride_size: int = 12
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    num_classes: int = 751
    base_num_classes: int = 1000
    shift_num: int = 5
    shuffle_groups: int = 2
    divide_length: int = 4
    rearrange: bool = True
    neck_feat: str = "before"

    def __post_init__(self) -> None:
        if self.neck_feat not in ("before", "after"):
            raise ValueError(f"neck_feat must be 'before' or 'after', got {self.neck_feat!r}")
        if self.shift_num < 1 or self.divide_length < NUM_LOCAL or self.depth < 2:
            raise ValueError("TransReID needs shift_num >= 1, divide_length >= 4 and depth >= 2")

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of overlapping patches: (21, 10) for the release."""
        h, w = self.img_size
        return ((h - self.patch_size) // self.stride_size + 1, (w - self.patch_size) // self.stride_size + 1)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def dim(self) -> int:
        """Output feature size: global + 4 local = 5 × embed_dim (3840)."""
        return (1 + NUM_LOCAL) * self.embed_dim


# ----------------------------------------------------------------------------------------- the ViT
class PatchEmbed(nn.Module):
    """Overlapping patches: a strided conv, flattened row-major to (B, rows·cols, D)."""

    def __init__(self, cfg: TransReIDConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.stride_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(head_dim)) v
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, cfg: TransReIDConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.attn = Attention(d, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransReIDViT(nn.Module):
    """The ``base`` ViT. Its forward returns all tokens after the first ``depth − 1`` blocks, un-normed
    (``local_feature=True`` upstream); ``blocks[-1]``, ``norm`` and ``fc`` are kept for the state dict only."""

    def __init__(self, cfg: TransReIDConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, d))
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.fc = nn.Linear(d, cfg.base_num_classes) if cfg.base_num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embed
        for blk in self.blocks[:-1]:
            tokens = blk(tokens)
        return tokens


# ----------------------------------------------------------------------------------------- JPM
def jigsaw_groups(tokens: torch.Tensor, shift_num: int, shuffle_groups: int, divide_length: int,
                  rearrange: bool = True) -> torch.Tensor:
    """The four JPM token groups, each with the cls token in front: ``(4, B, 1 + L, D)``.

    Args:
        tokens: (B, 1 + N, D), cls token first.
        shift_num: the patch tokens are rotated left by ``shift_num − 1`` (upstream's slice indices).
        shuffle_groups: patch shuffle: the sequence is cut into this many equal parts that are interleaved
            (the second-to-last token is appended once if the length is not a multiple).
        divide_length: L = N // divide_length tokens per group; groups are the first 4 runs of L.
        rearrange: False skips shift and shuffle (plain consecutive runs).
    """
    cls, patches = tokens[:, :1], tokens[:, 1:]
    b, n, d = patches.shape
    x = patches
    if rearrange:
        x = torch.cat([patches[:, shift_num - 1:], patches[:, :shift_num - 1]], dim=1)
        if n % shuffle_groups:
            x = torch.cat([x, x[:, -2:-1]], dim=1)
        if x.shape[1] % shuffle_groups:
            raise ValueError(f"{n} patches cannot be shuffled into {shuffle_groups} groups")
        x = x.view(b, shuffle_groups, -1, d).transpose(1, 2).reshape(b, -1, d)
    length = n // divide_length
    runs = x[:, :NUM_LOCAL * length].reshape(b, NUM_LOCAL, length, d).transpose(0, 1)
    return torch.cat([cls.unsqueeze(0).expand(NUM_LOCAL, -1, -1, -1), runs], dim=2)


# ----------------------------------------------------------------------------------------- the model
class TransReID(nn.Module):
    """TransReID with JPM (``build_transformer_local``). ``forward`` returns the inference feature
    ``(B, 5·embed_dim)``: ``[global, local_1/4, …, local_4/4]`` (before the BN necks by default)."""

    def __init__(self, config: TransReIDConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or TransReIDConfig()
        d = cfg.embed_dim
        self.base = TransReIDViT(cfg)
        self.b1 = nn.Sequential(Block(cfg), nn.LayerNorm(d, eps=cfg.norm_eps))  # global branch
        self.b2 = nn.Sequential(Block(cfg), nn.LayerNorm(d, eps=cfg.norm_eps))  # shared by the 4 JPM groups
        if cfg.num_classes > 0:
            self.classifier = nn.Linear(d, cfg.num_classes, bias=False)
            for i in range(1, NUM_LOCAL + 1):
                setattr(self, f"classifier_{i}", nn.Linear(d, cfg.num_classes, bias=False))
        self.bottleneck = nn.BatchNorm1d(d)
        for i in range(1, NUM_LOCAL + 1):
            setattr(self, f"bottleneck_{i}", nn.BatchNorm1d(d))

    @property
    def dim(self) -> int:
        return self.config.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        tokens = self.base(x)
        global_feat = self.b1(tokens)[:, 0]
        groups = jigsaw_groups(tokens, cfg.shift_num, cfg.shuffle_groups, cfg.divide_length, cfg.rearrange)
        k, b = groups.shape[:2]
        local_feats = self.b2(groups.flatten(0, 1))[:, 0].view(k, b, -1).unbind(0)
        if cfg.neck_feat == "after":
            global_feat = self.bottleneck(global_feat)
            local_feats = [getattr(self, f"bottleneck_{i + 1}")(f) for i, f in enumerate(local_feats)]
        return torch.cat([global_feat] + [f / LOCAL_SCALE for f in local_feats], dim=1)


# ----------------------------------------------------------------------------------------- extractor
class TransReIDBackbone(Backbone):
    """A :class:`~pose2id_demo.reid.backbones.Backbone` whose ``preprocess`` resizes with Lanczos, as the
    release's IPG inference does (``Image.ANTIALIAS``); usable as ``Pose2IDPipeline(reid=...)``."""

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        h, w = self.input_size
        resized: list[ImageLike] = []
        for im in images:
            if isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] in (3, 4):
                im = Image.fromarray(np.ascontiguousarray(im[..., :3]))
            if isinstance(im, Image.Image):
                im = im.convert("RGB")
                if im.size != (w, h):
                    im = im.resize((w, h), Image.Resampling.LANCZOS)
            resized.append(im)
        return super().preprocess(resized)


def build_transreid(config: TransReIDConfig | None = None, device: str | torch.device = "meta") -> TransReID:
    """:class:`TransReID` on ``device`` (meta by default: no memory, no initialisation)."""
    with torch.device(device):
        return TransReID(config)


def check_materialised(module: nn.Module, source: str | Path) -> None:
    """Raise if ``module`` (built on the meta device, then loaded with ``assign=True``) still holds meta
    tensors, i.e. the checkpoint ``source`` did not provide them."""
    leftover = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if leftover:
        raise RuntimeError(f"{source}: tensors not provided by the checkpoint: {leftover[:5]}")


def load_transreid(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                   config: TransReIDConfig | None = None) -> TransReIDBackbone:
    """``transformer_20.pth`` → a ready extractor (``.model(x) -> (B, 3840)``, ``.preprocess``, ``.dim``).

    The file is read with ``weights_only=True``; the model is built on the meta device and the tensors are
    assigned (``strict=True``), so nothing is randomly initialised. A ``module.`` prefix is stripped; the
    classifier sizes come from the file. ``config`` overrides the architecture (default: the release).
    """
    path = Path(path)
    where = "meta" if str(device) == "meta" else "cpu"
    sd = torch.load(path, map_location=where, weights_only=True)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if "base.sie_embed" in sd:
        raise ValueError(f"{path}: a camera-aware TransReID (base.sie_embed); Pose2ID's IFR was trained on the "
                         "features of the model without camera ids (transformer_20.pth of yuanc3/Pose2ID)")
    cfg = dataclasses.replace(
        config or TransReIDConfig(),
        num_classes=sd["classifier.weight"].shape[0] if "classifier.weight" in sd else 0,
        base_num_classes=sd["base.fc.weight"].shape[0] if "base.fc.weight" in sd else 0)
    model = build_transreid(cfg, device="meta")
    model.load_state_dict(sd, strict=True, assign=True)
    weights_id = ""
    if where != "meta":
        check_materialised(model, path)
        model = model.to(device=device, dtype=dtype)
        from pose2id_demo.reid.model import file_sha256

        weights_id = file_sha256(path)[:16]
    logger.info("loaded TransReID %s (%d tensors)", path, len(sd))
    return TransReIDBackbone(name="transreid-market1501", model=model.eval(), input_size=tuple(cfg.img_size),
                             mean=MEAN, std=STD, dim=cfg.dim, weights_id=weights_id,
                             description="TransReID ViT-B/16 + JPM (Pose2ID release, Market-1501, no camera ids)",
                             device=device)
