"""Load the official Pose2ID IPG release into :class:`~pose2id_demo.ipg.pipeline.Pose2IDPipeline`.

Where the files come from (``--ipg-weights SOURCE``; :func:`open_release`):

- ``hub[:REPO[@REVISION]]`` — the Hugging Face Hub (default repo ``yuanc3/Pose2ID``), fetched into the Hub's
  cache on first use (:mod:`pose2id_demo.ipg.hub`);
- a folder ``DIR`` as below (file names as released; the ``.pth`` files may also sit in ``DIR/pretrained/``,
  where the release README puts them)::

    DIR/reference_unet.pth     SD1.5 UNet2DConditionModel state dict
    DIR/denoising_unet.pth     Animate-Anyone UNet3DConditionModel (motion module off) state dict
    DIR/pose_guider.pth        PoseGuider(320, 3, (16, 32, 64, 128))
    DIR/IFR.pth                IFR: proj_motion Linear(3840, 20*768), norm_motion LayerNorm(768)
    DIR/transformer_20.pth     TransReID ViT-B/16 + JPM (Market-1501, no camera ids): the ReID feature for IFR
    DIR/stable-diffusion-v1-5/unet/config.json   optional (else the built-in SD1.5 UNet config)
    DIR/sd-vae-ft-mse/         diffusers AutoencoderKL folder (config.json + weights), required

Either way the result is an :class:`OfficialRelease` (the path of every file), checked before anything is
read: each ``.pth`` must be as large as its module at this architecture needs (from 2 bytes per value, fp16,
to 4, fp32) — a browser download that stopped early or saved an HTML page is named in one sentence
(:class:`ReleaseFileError`) instead of failing deep inside ``torch.load``.

Key mapping. The official 3D denoising UNet is built from the 2D SD1.5 UNet by replacing ``nn.Conv2d``
and ``nn.GroupNorm`` with "inflated" subclasses that apply them frame by frame; with the motion module off
(``motion_modules`` lists hold no parameters) and no temporal attention, its parameter *names* are those
of the diffusers 2D UNet (``down_blocks.N.resnets.M.conv1.weight``,
``...attentions.M.transformer_blocks.0.attn1.to_q.weight``, ``conv_in``, ``time_embedding.linear_1`` …) and
its conv kernels keep 2D shapes. :func:`map_official_state_dict` therefore only (a) strips a
``module.`` prefix left by DataParallel/accelerate, (b) squeezes a frame axis of size 1 out of any 5-D
kernel ``(O, I, 1, k, k)`` should a checkpoint carry true 3D convs, and (c) rejects motion-module keys
(those would need the motion module, which Pose2ID does not use). Everything is loaded with
``strict=True``, so any other difference fails loudly.

ReID: IFR's input is the 3840-d TransReID (ViT-B/16, JPM) feature of ``transformer_20.pth``, read by
:func:`pose2id_demo.reid.transreid.load_transreid` (our implementation; run in fp32 as released). To use
another extractor pass it as ``reid=`` — any object with ``preprocess(list[PIL.Image]) -> Tensor``
(256×128, mean = std = 0.5) and ``model(Tensor) -> (B, 3840)``; ``transformer_20.pth`` is then not needed.

Files are read with ``torch.load(weights_only=True)``; modules are built on the meta device and the
tensors assigned, so no random initialisation of the 860 M-parameter UNets is ever computed. On CUDA the
pipeline runs in fp16 (the VAE in fp32 is not needed: sd-vae-ft-mse decodes fine in fp16). The official
inference samples with seed :data:`OFFICIAL_SEED` (``IPG/configs/inference.yaml``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from pose2id_demo.ipg import hub
from pose2id_demo.ipg.configs import PRESETS
from pose2id_demo.ipg.ifr import IFR
from pose2id_demo.ipg.pipeline import Pose2IDPipeline, make_scheduler
from pose2id_demo.ipg.pose_encoder import PoseGuider
from pose2id_demo.ipg.unet import PoseConditionedUNet2DConditionModel
from pose2id_demo.reid.transreid import TransReIDConfig, build_transreid, check_materialised, load_transreid

logger = logging.getLogger(__name__)

OFFICIAL_FILES = {
    "reference_unet": "reference_unet.pth",
    "denoising_unet": "denoising_unet.pth",
    "pose_guider": "pose_guider.pth",
    "ifr": "IFR.pth",
}
REID_FILE = "transformer_20.pth"
#: Inside a release folder: the optional SD1.5 UNet config and the VAE.
UNET_CONFIG_PATH = Path("stable-diffusion-v1-5") / "unet" / "config.json"
VAE_FOLDER = "sd-vae-ft-mse"
#: The official inference's seed (``IPG/configs/inference.yaml``), the default when these weights generate.
OFFICIAL_SEED = 12580
#: The preset of the released weights (:data:`pose2id_demo.ipg.configs.PRESETS`): UNet config, Pose Guider
#: widths, IFR tokens, image size.
PRESET = PRESETS["sd15"]
#: The width of the TransReID feature that feeds the released IFR.
REID_DIM = 3840
_UNET_ARCH_KEYS = tuple(PRESET.unet)


class ReleaseFileError(OSError):
    """A file of the release that is missing, unreadable or of the wrong size; the message is one sentence."""


class MissingReleaseFile(ReleaseFileError, FileNotFoundError):
    """A file of the release that is not there."""


class UnreadableCheckpoint(ReleaseFileError, pickle.UnpicklingError):
    """A ``.pth`` that ``torch.load(weights_only=True)`` refuses (damaged, or a pickle with code in it)."""


@dataclass(frozen=True)
class OfficialRelease:
    """Where each file of the official release is (:func:`open_release` makes one from a folder or the Hub).

    Attributes:
        weights: module name (:data:`OFFICIAL_FILES`' keys) → its ``.pth`` file.
        reid: ``transformer_20.pth`` (None when another extractor feeds IFR).
        vae: the sd-vae-ft-mse folder (``config.json`` + weights).
        unet_config: SD1.5's ``unet/config.json`` (None: the built-in SD1.5 config).
        source: where it came from, for messages (a folder, or ``hub:REPO@COMMIT``).
    """

    weights: dict[str, Path]
    reid: Path | None
    vae: Path
    unet_config: Path | None = None
    source: str = ""

    @classmethod
    def from_folder(cls, directory: str | Path, need_reid: bool = True) -> OfficialRelease:
        """The release in ``directory`` (the layout of the module docstring); raises
        :class:`MissingReleaseFile` naming everything that is missing."""
        directory = Path(directory)
        if not directory.is_dir():
            raise MissingReleaseFile(f"{directory} is not a folder.")
        wanted = list(OFFICIAL_FILES.values()) + ([REID_FILE] if need_reid else [])
        found = {n: next((p for p in (directory / n, directory / "pretrained" / n) if p.is_file()), None)
                 for n in wanted}
        missing = [n for n, p in found.items() if p is None]
        if missing:
            hint = (f" ({REID_FILE} holds the TransReID weights that feed IFR; or pass --reid-extractor)"
                    if REID_FILE in missing else "")
            raise MissingReleaseFile(f"{directory} lacks {', '.join(missing)} (looked in it and in its pretrained/ "
                                     f"subfolder){hint}.")
        vae = directory / VAE_FOLDER
        unet_config = directory / UNET_CONFIG_PATH
        return cls(weights={m: found[f] for m, f in OFFICIAL_FILES.items()},  # type: ignore[misc]
                   reid=found.get(REID_FILE), vae=vae, unet_config=unet_config if unet_config.is_file() else None,
                   source=str(directory))

    def unet_architecture(self) -> dict[str, Any]:
        """The UNets' architecture: SD1.5's ``unet/config.json`` when the release has one, else the built-in."""
        if self.unet_config is None:
            return dict(PRESET.unet)
        try:
            cfg = json.loads(self.unet_config.read_text())
        except (OSError, ValueError) as exc:
            raise ReleaseFileError(f"{self.unet_config} is not a readable UNet config ({type(exc).__name__}).") \
                from None
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in _UNET_ARCH_KEYS}

    def check(self, vae: bool = True) -> None:
        """Every ``.pth`` file's size fits its module at this architecture (:func:`check_checkpoint_size`), and
        (``vae``) the VAE folder is there."""
        if vae and not (self.vae / "config.json").is_file():
            raise MissingReleaseFile(f"{self.vae.parent} lacks {self.vae.name}/ (the diffusers AutoencoderKL folder "
                                     "of stabilityai/sd-vae-ft-mse, config.json + weights).")
        modules = build_official_modules(self.unet_architecture(), device="meta")
        for name, path in self.weights.items():
            check_checkpoint_size(path, modules[name], OFFICIAL_FILES[name])
        if self.reid is not None:  # the classifier heads' sizes vary: the lower bound only
            core = build_transreid(TransReIDConfig(num_classes=0, base_num_classes=0), device="meta")
            check_checkpoint_size(self.reid, core, REID_FILE, upper=False)

    def identity(self) -> str:
        """A short id of these files (names, sizes and the first MiB of each), for caches keyed by the model."""
        h = hashlib.sha256()
        files = [*self.weights.values(), *([self.reid] if self.reid else []), *sorted(self.vae.glob("*")),
                 *([self.unet_config] if self.unet_config else [])]
        for path in files:
            if path.is_file():
                h.update(path.name.encode() + str(path.stat().st_size).encode())
                with open(path, "rb") as f:
                    h.update(f.read(1 << 20))
        return h.hexdigest()[:12]


def checkpoint_size_bounds(module: torch.nn.Module) -> tuple[int, int]:
    """(fewest, most) bytes a ``torch.save`` of ``module``'s state dict can take: every value in fp16 up to every
    value in fp32 plus the zip/pickle overhead (a few kB per tensor)."""
    sd = module.state_dict()
    n = sum(t.numel() for t in sd.values())
    return 2 * n, 4 * n + 4096 * len(sd) + (1 << 20)


def check_checkpoint_size(path: Path, module: torch.nn.Module, what: str, upper: bool = True) -> None:
    """Raise :class:`ReleaseFileError` (one sentence) if ``path`` cannot hold ``module``'s tensors."""
    lo, hi = checkpoint_size_bounds(module)
    size = path.stat().st_size
    if size < lo or (upper and size > hi):
        need = f"{hub.human_bytes(lo)} to {hub.human_bytes(hi)}" if upper else f"at least {hub.human_bytes(lo)}"
        raise ReleaseFileError(
            f"{path} is {size:,} bytes but {what} at this architecture needs {need} (its {lo // 2:,} values in fp16 or "
            "fp32): the file is incomplete or not the released one, so delete it and fetch it again.")


def _load_checkpoint(path: Path, map_location: str) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)``; a file that is no PyTorch checkpoint is one sentence naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UnreadableCheckpoint(f"{path} is not a readable PyTorch checkpoint ({reason}): delete it and fetch "
                                   "it again.") from None


@dataclass
class ReleaseHandle:
    """An official release that was found and checked, ready to :meth:`fetch` (downloading what is missing).

    Attributes:
        source: what was asked for (a folder, or ``hub:REPO[@REVISION]``).
        download_bytes: bytes :meth:`fetch` will download (0 for a folder or a complete Hub cache).
        progress: the download's progress (its ``describe()`` is the sentence an app shows while it runs).
    """

    source: str
    need_reid: bool = True
    download_bytes: int = 0
    progress: hub.DownloadProgress = field(default_factory=hub.DownloadProgress)
    _release: OfficialRelease | None = None
    _plan: hub.HubPlan | None = None

    def fetch(self) -> OfficialRelease:
        """The release's local files (downloaded into the Hub cache first when needed), size-checked."""
        if self._release is None:
            assert self._plan is not None
            paths = self._plan.fetch(self.progress)
            config = paths["unet_config"]
            self._release = OfficialRelease(
                weights={m: paths[f] for m, f in OFFICIAL_FILES.items()}, reid=paths.get(REID_FILE),
                vae=paths["vae/config.json"].parent, unet_config=config,
                source=f"hub:{self._plan.spec.repo}@{self._plan.files[0].commit[:12]}")
            self._release.check()
        return self._release


def open_release(source: str | Path, need_reid: bool = True) -> ReleaseHandle:
    """Find and check the official release named by ``source`` — ``hub[:REPO[@REVISION]]`` or a folder — without
    downloading or loading anything yet.

    A folder is checked completely (files present, sizes plausible). A Hub source asks the Hub which files exist
    (root or ``pretrained/``) and how large they are; offline (``HF_HUB_OFFLINE=1``) it looks into the cache and,
    when everything is there, checks the sizes too.

    Raises:
        ReleaseFileError / hub.HubError: one sentence naming the missing or wrong file.
    """
    spec = hub.parse_hub_spec(source)
    if spec is None:
        release = OfficialRelease.from_folder(source, need_reid)
        release.check()
        return ReleaseHandle(str(source), need_reid, _release=release)
    files = list(OFFICIAL_FILES.values()) + ([REID_FILE] if need_reid else [])
    plan = hub.plan(spec, files)
    handle = ReleaseHandle(str(spec), need_reid, download_bytes=plan.download_bytes, _plan=plan)
    if plan.download_bytes == 0:
        handle.fetch()  # all cached: resolve and check now, so that a wrong file fails at start
    return handle


def _as_release(source: str | Path | OfficialRelease, need_reid: bool, device: str | torch.device = "cpu"
                ) -> OfficialRelease:
    """``source`` as a release: a Hub source through :func:`open_release`; a folder read and its file sizes
    checked (not on the meta device, where only names and shapes are loaded)."""
    if isinstance(source, OfficialRelease):
        return source
    if hub.parse_hub_spec(source) is not None:
        return open_release(source, need_reid).fetch()
    release = OfficialRelease.from_folder(source, need_reid)
    if str(device) != "meta":
        release.check(vae=False)
    return release


def build_official_modules(unet_config: dict[str, Any] | None = None, device: str | torch.device = "meta"
                           ) -> dict[str, torch.nn.Module]:
    """The four trained modules at the sizes of :data:`PRESET` (on the meta device by default: no memory, no
    init); ``unet_config`` replaces the preset's UNet config, and IFR's token width follows its
    ``cross_attention_dim``."""
    cfg = dict(unet_config or PRESET.unet)
    with torch.device(device):
        return {
            "reference_unet": UNet2DConditionModel(**cfg),
            "denoising_unet": PoseConditionedUNet2DConditionModel(**cfg),
            "pose_guider": PoseGuider(conditioning_embedding_channels=cfg["block_out_channels"][0],
                                      conditioning_channels=3, block_out_channels=PRESET.pose_widths),
            "ifr": IFR(in_dim=REID_DIM, num_tokens=PRESET.ifr_tokens, dim=cfg["cross_attention_dim"]),
        }


def map_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official checkpoint keys/tensors → ours (see the module docstring for the three rules)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if ".motion_modules." in key:
            raise ValueError(f"checkpoint has motion-module weights ({key}); Pose2ID's denoising UNet has none")
        if value.ndim == 5 and value.shape[2] == 1:  # a true 3D conv over a length-1 frame axis
            value = value[:, :, 0]
        out[key] = value
    return out


def load_official_modules(source: str | Path | OfficialRelease, device: str | torch.device = "cpu",
                          dtype: torch.dtype = torch.float32) -> dict[str, torch.nn.Module]:
    """Read the four ``.pth`` files of ``source`` (a folder, a Hub source or an :class:`OfficialRelease`) into
    freshly built modules with ``strict=True``."""
    release = _as_release(source, need_reid=False, device=device)
    modules = build_official_modules(release.unet_architecture(), device="meta")
    for name, path in release.weights.items():
        where = "cpu" if str(device) != "meta" else "meta"
        sd = _load_checkpoint(path, where)
        mapped = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in map_official_state_dict(sd).items()}
        modules[name].load_state_dict(mapped, strict=True, assign=True)  # in dtype already: no second copy
        if str(device) != "meta":
            check_materialised(modules[name], path.name)
            modules[name] = modules[name].to(device).eval()
        logger.info("loaded %s (%d tensors)", path.name, len(sd))
    return modules


def default_dtype(device: str | torch.device) -> torch.dtype:
    """fp16 on CUDA (as released), fp32 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def load_official(source: str | Path | OfficialRelease, device: str | torch.device = "cpu", reid: Any = None,
                  vae_dir: str | Path | None = None, dtype: torch.dtype | None = None) -> Pose2IDPipeline:
    """The official IPG as a :class:`Pose2IDPipeline` (512×256, DDIM as released).

    Args:
        source: ``"hub"`` / ``"hub:REPO@REVISION"`` (fetched into the Hugging Face cache if needed), a folder as
            described in the module docstring, or an :class:`OfficialRelease` from :func:`open_release`.
        device: e.g. ``"cuda"`` (fp16) or ``"cpu"`` (fp32; very slow at this size).
        reid: a 3840-d ReID extractor overriding the TransReID of ``transformer_20.pth`` (see the module
            docstring); ``None`` (default) loads that file, and raises if it is missing.
        vae_dir: sd-vae-ft-mse folder overriding the release's.
    """
    release = _as_release(source, need_reid=reid is None, device=device)
    if reid is None and release.reid is None:
        raise MissingReleaseFile(f"{release.source} lacks {REID_FILE}: the official IPG needs the TransReID weights "
                                 "that feed IFR (3840-d); add it, or pass reid=<extractor>.")
    dtype = dtype or default_dtype(device)
    if reid is None:
        reid = load_transreid(release.reid, device=device, dtype=torch.float32)
    modules = load_official_modules(release, device=device, dtype=dtype)
    vae_path = Path(vae_dir) if vae_dir is not None else release.vae
    if not (vae_path / "config.json").exists():
        raise MissingReleaseFile(f"{vae_path}: sd-vae-ft-mse (diffusers AutoencoderKL folder) not found.")
    try:
        vae = AutoencoderKL.from_pretrained(vae_path, local_files_only=True, torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ReleaseFileError(f"{vae_path}: sd-vae-ft-mse could not be read ({type(exc).__name__}); delete it and "
                               "fetch it again.") from None
    pipe = Pose2IDPipeline(**modules, vae=vae.to(device).eval(), scheduler=make_scheduler(), reid=reid,
                           image_size=PRESET.image_size)
    return pipe.to(device)

