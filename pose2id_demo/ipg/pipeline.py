"""Identity-Guided Pedestrian Generation (IPG) pipeline, paper §3.2.2 (eqs. 4-5), diffusers style.

``Pose2IDPipeline(reference_image, poses)`` generates the reference person in each target pose:

1. ``check_inputs``;
2. ``encode_identity`` — ReID feature f(x) of the reference → IFR tokens ``H`` (eq. 5); the
   *unconditional* tokens are the IFR tokens of an all-zeros ReID input tensor (official release), so CFG
   compares "this identity" with "no identity";
3. ``encode_reference`` — the reference image's latent, run once through the reference UNet at ``t = 0``
   with the same tokens; its self-attention states are injected into the denoising UNet
   (:mod:`pose2id_demo.ipg.reference_attention`);
4. ``encode_poses`` — skeleton renders → Pose Guider embedding ``E_pose`` (§6.3), added after the
   denoising UNet's ``conv_in`` (:mod:`pose2id_demo.ipg.unet`);
5. ``prepare_latents`` — ``z_T = ε`` from a seeded generator;
6. denoising loop ``z_{t-1} = ε_θ(z_t, t, E_pose, H)`` (eq. 4) with DDIM (v-prediction, zero-SNR,
   trailing spacing as released) and classifier-free guidance;
7. ``decode``.

``use_ifr=False`` is the paper's Fig. 5 ablation: the cross-attention context carries no identity — both
CFG branches get the zero-image tokens (so guidance is a no-op and only one branch is computed); the
reference attention still sees the reference image.

Noise: generation ``i`` starts from noise drawn from its own generator seeded with ``seed[i]`` (an int
seed is used for every pose), so a pose's image does not depend on which other poses share the batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL
from pose2id_demo.ipg.ifr import IFR
from pose2id_demo.ipg.pose_encoder import PoseGuider
from pose2id_demo.ipg.reference_attention import reference_attention
from pose2id_demo.ipg.unet import PoseConditionedUNet2DConditionModel
from pose2id_demo.ipg.vae import PixelUnshuffleVAE
from pose2id_demo.paths import MODELS_DIR
from pose2id_demo.poses.draw import draw_pose
from pose2id_demo.poses.keypoints import Pose

logger = logging.getLogger(__name__)

# The classes a saved pipeline folder may name (model_index.json) — a closed list, nothing is imported by name.
_CLASSES: dict[str, Any] = {
    "UNet2DConditionModel": UNet2DConditionModel,
    "PoseConditionedUNet2DConditionModel": PoseConditionedUNet2DConditionModel,
    "PoseGuider": PoseGuider,
    "IFR": IFR,
    "PixelUnshuffleVAE": PixelUnshuffleVAE,
    "AutoencoderKL": AutoencoderKL,
    "TinyAutoencoderKL": TinyAutoencoderKL,
    "DDIMScheduler": DDIMScheduler,
}
_MODULES = ("reference_unet", "denoising_unet", "pose_guider", "ifr", "vae", "scheduler")


def load_vae(directory: str | Path) -> Any:
    """A saved VAE folder (``AutoencoderKL``, :class:`TinyAutoencoderKL` or :class:`PixelUnshuffleVAE`)."""
    name = json.loads((Path(directory) / "config.json").read_text()).get("_class_name")
    klass = {"AutoencoderKL": AutoencoderKL, "TinyAutoencoderKL": TinyAutoencoderKL,
             "PixelUnshuffleVAE": PixelUnshuffleVAE}.get(name)
    if klass is None:
        raise ValueError(f"{directory}: unknown VAE class {name!r}")
    if klass is PixelUnshuffleVAE:
        return klass.from_config(klass.load_config(directory))
    return klass.from_pretrained(directory, low_cpu_mem_usage=False).eval()


def vae_scale_factor(vae: Any) -> int:
    """Spatial downsampling of an ``AutoencoderKL`` (2^(blocks-1)) or a :class:`PixelUnshuffleVAE` (its factor)."""
    if isinstance(vae, PixelUnshuffleVAE):
        return int(vae.config.factor)
    return 2 ** (len(vae.config.block_out_channels) - 1)


def make_scheduler(**overrides: Any) -> DDIMScheduler:
    """DDIM exactly as the official inference config: scaled-linear betas, zero-SNR, trailing, v-prediction."""
    kwargs = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  steps_offset=1, clip_sample=False, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                  prediction_type="v_prediction")
    kwargs.update(overrides)
    return DDIMScheduler(**kwargs)


@dataclass
class Pose2IDPipelineOutput(BaseOutput):
    """``images``: one generation per pose (PIL images, or an array/tensor for other ``output_type``s)."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


def render_pose(pose: Pose, width: int, height: int) -> np.ndarray:
    """Skeleton render ``(height, width, 3)`` uint8 (:func:`pose2id_demo.poses.draw.draw_pose`)."""
    return draw_pose(pose, width, height)


def _to_pil(image: Any) -> PIL.Image.Image:
    if isinstance(image, PIL.Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("images must be PIL images or uint8 arrays of shape (H, W, 3)")
    return PIL.Image.fromarray(arr)


def _pil_to_tensor(images: Sequence[PIL.Image.Image], height: int, width: int, normalize: bool) -> torch.Tensor:
    arrs = [np.asarray(im.convert("RGB").resize((width, height), PIL.Image.BILINEAR), dtype=np.float32) / 255.0
            for im in images]
    t = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
    return t * 2.0 - 1.0 if normalize else t


class Pose2IDPipeline(DiffusionPipeline):
    """Reference image + target poses → generated images of the same identity (IPG, paper §3.2.2).

    Components: ``reference_unet`` (``UNet2DConditionModel``), ``denoising_unet``
    (:class:`PoseConditionedUNet2DConditionModel`), ``pose_guider`` (:class:`PoseGuider`), ``ifr``
    (:class:`IFR`), ``vae`` (``AutoencoderKL`` or :class:`PixelUnshuffleVAE`), ``scheduler``
    (``DDIMScheduler``), and ``reid``: the frozen ReID feature extractor — any object with
    ``preprocess(list[PIL.Image]) -> Tensor (B, 3, H, W)`` and ``model`` (a callable/module mapping that tensor
    to ``(B, ifr.config.in_dim)`` features), e.g. a :class:`pose2id_demo.reid` backbone.
    """

    model_cpu_offload_seq = "reference_unet->denoising_unet"

    def __init__(self, reference_unet: UNet2DConditionModel, denoising_unet: PoseConditionedUNet2DConditionModel,
                 pose_guider: PoseGuider, ifr: IFR, vae: Any, scheduler: DDIMScheduler, reid: Any = None,
                 image_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.register_modules(reference_unet=reference_unet, denoising_unet=denoising_unet,
                              pose_guider=pose_guider, ifr=ifr, vae=vae, scheduler=scheduler, reid=reid)
        self.vae_scale_factor = vae_scale_factor(vae)
        if image_size is None:
            s = denoising_unet.config.sample_size
            s = (s, s) if isinstance(s, int) else tuple(s)
            image_size = (s[0] * self.vae_scale_factor, s[1] * self.vae_scale_factor)
        self.register_to_config(image_size=tuple(int(v) for v in image_size))

    # ------------------------------------------------------------------ helpers
    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the model works at: the reference is resized to it, the latents are it divided by
        the VAE's downsampling."""
        return tuple(self.config.image_size)

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the generated images: ``image_size`` times the VAE decoder's upsampling (1 for
        SD's VAE; 2 for a tiny autoencoder whose decoder maps the 64 × 32 model's latent to 128 × 64)."""
        u = int(getattr(self.vae.config, "decoder_upsample", 1))
        h, w = self.image_size
        return (h * u, w * u)

    @property
    def pose_size(self) -> tuple[int, int]:
        """(height, width) of the skeleton image fed to the Pose Guider (latent size × its downsampling)."""
        h, w = self.image_size
        k = self.pose_guider.downsample_factor
        return (h // self.vae_scale_factor * k, w // self.vae_scale_factor * k)

    def to(self, *args, **kwargs):  # also move the ReID model, which is not a registered nn.Module
        out = super().to(*args, **kwargs)
        model = getattr(self.reid, "model", None)
        if isinstance(model, torch.nn.Module):
            device = kwargs.get("device") or next((a for a in args if isinstance(a, (str, torch.device))), None)
            if device is not None:
                model.to(device)
        return out

    # ------------------------------------------------------------------ steps of the algorithm
    def check_inputs(self, reference_image: Any, poses: Sequence[Any], num_inference_steps: int,
                     guidance_scale: float) -> None:
        if reference_image is None:
            raise ValueError("a reference image is required")
        if not isinstance(poses, (list, tuple)) or len(poses) == 0:
            raise ValueError("poses must be a non-empty list of Pose objects or skeleton images")
        for p in poses:
            if not isinstance(p, (Pose, PIL.Image.Image, np.ndarray)):
                raise ValueError(f"unsupported pose type {type(p).__name__}; use Pose or a skeleton image")
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= 1000:
            raise ValueError("num_inference_steps must be an integer in [1, 1000]")
        if not guidance_scale >= 1.0:
            raise ValueError("guidance_scale must be >= 1 (1 disables classifier-free guidance)")
        if self.reid is None:
            raise ValueError("this pipeline has no ReID feature extractor (reid=None); IFR needs one")

    @torch.no_grad()
    def reid_features(self, images: Sequence[PIL.Image.Image] | None = None, zero: bool = False,
                      n: int = 1) -> torch.Tensor:
        """ReID features ``(B, in_dim)`` of ``images``, or of ``n`` all-zeros ReID input tensors if ``zero``."""
        model = self.reid.model
        if zero:
            h, w = getattr(self.reid, "input_size", None) or (256, 128)
            x = torch.zeros(n, 3, h, w)
        else:
            x = self.reid.preprocess(list(images))
        dev = next(model.parameters()).device if isinstance(model, torch.nn.Module) else self.device
        if isinstance(model, torch.nn.Module):
            x = x.to(device=dev, dtype=next(model.parameters()).dtype)
        feats = model(x)
        return feats.float().to(self.device)

    def encode_identity(self, reference_images: Sequence[PIL.Image.Image], use_ifr: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """IFR tokens ``cond (R, N, D)`` and ``uncond (1, N, D)`` (eq. 5); ``cond = uncond`` if not ``use_ifr``."""
        dtype = self.ifr.dtype
        uncond = self.ifr(self.reid_features(zero=True).to(dtype))
        if not use_ifr:
            return uncond, uncond
        return self.ifr(self.reid_features(reference_images).to(dtype)), uncond

    def encode_reference(self, reference_images: Sequence[PIL.Image.Image]) -> torch.Tensor:
        """Reference latents ``(R, C, h, w)``, scaled by the VAE's scaling factor."""
        h, w = self.image_size
        x = _pil_to_tensor(list(reference_images), h, w, normalize=True).to(self.device, self.vae.dtype)
        return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

    def encode_poses(self, poses: Sequence[Any]) -> torch.Tensor:
        """Pose embeddings ``E_pose`` ``(P, C0, h, w)`` from Pose objects or skeleton images (§6.3)."""
        ph, pw = self.pose_size
        imgs = [PIL.Image.fromarray(render_pose(p, pw, ph)) if isinstance(p, Pose) else _to_pil(p) for p in poses]
        x = _pil_to_tensor(imgs, ph, pw, normalize=False).to(self.device, self.pose_guider.dtype)
        return self.pose_guider(x)

    def prepare_latents(self, seeds: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """``z_T = ε`` ``(P, C, h, w)``; sample ``i`` drawn from ``torch.Generator().manual_seed(seeds[i])``."""
        h, w = self.image_size
        shape = (1, self.denoising_unet.config.in_channels, h // self.vae_scale_factor, w // self.vae_scale_factor)
        noise = [randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(int(s)), device=self.device,
                              dtype=dtype) for s in seeds]
        return torch.cat(noise) * self.scheduler.init_noise_sigma

    def decode(self, latents: torch.Tensor, output_type: str = "pil") -> Any:
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        images = (images.float() / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            return images
        arr = images.permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return arr
        return [PIL.Image.fromarray((a * 255).round().astype(np.uint8)) for a in arr]

    def prepare_conditions(self, refs: Sequence[PIL.Image.Image], poses: Sequence[Any], use_ifr: bool, do_cfg: bool,
                           pose_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Identity tokens, the reference UNet's tokens and latents, and the pose features, batched
        reference-major (R references × P poses); with CFG the unconditional half comes first.

        Returns:
            ``tokens`` (B, N, D) for the denoising UNet, ``ref_tokens`` (R', N, D) and ``ref_latents``
            (R', C, h, w) for the reference UNet, ``pose_fea`` (B, C0, h, w); B = R·P (2·R·P with CFG),
            R' = R (2·R).
        """
        n, n_ref = len(poses), len(refs)
        cond, uncond = self.encode_identity(refs, use_ifr=use_ifr)  # (R, N, D), (1, N, D)
        ref_latent = self.encode_reference(refs).to(self.reference_unet.dtype)  # (R, C, h, w)
        pose_fea = self.encode_poses(poses).repeat(n_ref, 1, 1, 1) * pose_scale  # reference-major: (R·P, C0, h, w)
        cond_tokens = cond.expand(n_ref, -1, -1).repeat_interleave(n, dim=0)
        if do_cfg:  # batch layout: [R·P uncond ; R·P cond]; bank: [R uncond ; R cond]
            ref_tokens = torch.cat([uncond.expand(n_ref, -1, -1), cond.expand(n_ref, -1, -1)])
            ref_latents = torch.cat([ref_latent, ref_latent])
            tokens = torch.cat([uncond.expand(n_ref * n, -1, -1), cond_tokens])
            pose_fea = torch.cat([pose_fea, pose_fea])
        else:
            ref_tokens, ref_latents = cond.expand(n_ref, -1, -1), ref_latent
            tokens = cond_tokens
        unet_dtype = self.denoising_unet.dtype
        return tokens.to(unet_dtype), ref_tokens.to(unet_dtype), ref_latents, pose_fea.to(unet_dtype)

    def denoise(self, latents: torch.Tensor, tokens: torch.Tensor, pose_fea: torch.Tensor, do_cfg: bool,
                guidance_scale: float, callback_on_step_end: Callable | None = None,
                callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",)) -> torch.Tensor:
        """The DDIM loop over the scheduler's timesteps: ε/v = UNet(z_t, t, tokens, E_pose), classifier-free
        guidance ``uncond + s · (cond - uncond)`` when ``do_cfg``, then the scheduler step; (B, C, h, w)."""
        with self.progress_bar(total=len(self.scheduler.timesteps)) as bar:
            for i, t in enumerate(self.scheduler.timesteps):
                model_in = torch.cat([latents, latents]) if do_cfg else latents
                model_in = self.scheduler.scale_model_input(model_in, t)
                pred = self.denoising_unet(model_in, t, encoder_hidden_states=tokens, pose_cond_fea=pose_fea,
                                           return_dict=False)[0]
                if do_cfg:
                    pred_uncond, pred_cond = pred.chunk(2)
                    pred = pred_uncond + guidance_scale * (pred_cond - pred_uncond)
                latents = self.scheduler.step(pred, t, latents, return_dict=False)[0]
                if callback_on_step_end is not None:
                    state = {"latents": latents, "pose_fea": pose_fea, "tokens": tokens}
                    out = callback_on_step_end(self, i, t, {k: state[k] for k in callback_on_step_end_tensor_inputs})
                    if out and "latents" in out:
                        latents = out["latents"]
                bar.update()
        return latents

    @torch.no_grad()
    def __call__(self, reference_image: PIL.Image.Image | np.ndarray | Sequence[PIL.Image.Image],
                 poses: Sequence[Pose | PIL.Image.Image],
                 num_inference_steps: int = 20, guidance_scale: float = 3.5, seed: int | Sequence[int] = 42,
                 use_ifr: bool = True, output_type: str = "pil", return_dict: bool = True,
                 callback_on_step_end: Callable[[Pose2IDPipeline, int, Any, dict], dict | None] | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                 use_reference_attention: bool = True, pose_scale: float = 1.0,
                 ) -> Pose2IDPipelineOutput | tuple:
        """Generate ``reference_image``'s identity in each of ``poses``.

        Args:
            reference_image: the person (PIL or uint8 HxWx3), resized to ``image_size``; a list of references
                gives ``len(references) · len(poses)`` images, reference-major (one batched run).
            poses: target poses, :class:`Pose` objects (drawn as OpenPose skeletons) or skeleton images.
            num_inference_steps: DDIM steps (paper: 20).
            guidance_scale: CFG scale (paper: 3.5); 1 disables guidance.
            seed: noise seed, one int for all poses or one per pose (paper: 42).
            use_ifr: feed the reference's identity tokens (True) or the zero-image tokens (False).
            callback_on_step_end: ``f(pipe, step, timestep, {"latents": ...}) -> dict | None`` after each step;
                a returned ``"latents"`` replaces the current latents.
            use_reference_attention: run the reference UNet and let the denoising UNet attend to it (True, the
                method); False skips it (plain self-attention) — a diagnosis knob of the quality bench.
            pose_scale: multiplies the Pose Guider's embedding ``E_pose`` (1, the method; other values are a
                diagnosis knob: how much does the pose signal's size matter).
        Returns:
            :class:`Pose2IDPipelineOutput` with one image per pose.
        """
        refs = list(reference_image) if isinstance(reference_image, (list, tuple)) else [reference_image]
        if not refs:
            raise ValueError("a reference image is required")
        for r in refs:
            self.check_inputs(r, poses, num_inference_steps, guidance_scale)
        refs = [_to_pil(r) for r in refs]
        n, n_ref = len(poses), len(refs)
        seeds = [int(seed)] * n if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} poses")
        do_cfg = use_ifr and guidance_scale > 1.0

        tokens, ref_tokens, ref_latents, pose_fea = self.prepare_conditions(refs, poses, use_ifr, do_cfg, pose_scale)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        latents = self.prepare_latents(seeds, dtype=self.denoising_unet.dtype).repeat(n_ref, 1, 1, 1)
        with reference_attention(self.reference_unet, self.denoising_unet):
            if use_reference_attention:  # the reference UNet once, at t = 0, with the same tokens (writes the bank)
                self.reference_unet(ref_latents, torch.zeros((), device=self.device), encoder_hidden_states=ref_tokens,
                                    return_dict=False)
            latents = self.denoise(latents, tokens, pose_fea, do_cfg, guidance_scale, callback_on_step_end,
                                   callback_on_step_end_tensor_inputs)

        images = self.decode(latents, output_type)
        if not return_dict:
            return (images,)
        return Pose2IDPipelineOutput(images=images)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """One sub-folder per module (safetensors + config json) and ``model_index.json``."""
        root = Path(save_directory)
        root.mkdir(parents=True, exist_ok=True)
        index: dict[str, Any] = {"_class_name": type(self).__name__, "image_size": list(self.image_size)}
        for name in _MODULES:
            module = getattr(self, name)
            index[name] = type(module).__name__
            if name == "scheduler":
                module.save_pretrained(root / name)
            else:
                module.save_pretrained(root / name, safe_serialization=True)
        index["reid"] = getattr(self.reid, "name", None)
        (root / "model_index.json").write_text(json.dumps(index, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path, reid: Any = None, device: str | torch.device = "cpu",
                        torch_dtype: torch.dtype | None = None, **components: Any) -> Pose2IDPipeline:
        """Load a folder written by :meth:`save_pretrained`.

        ``reid`` defaults to the backbone named in ``model_index.json`` (``pose2id_demo.reid.get_backbone``).
        ``components`` (diffusers' habit): a module given by name, e.g. ``vae=load_vae(other_folder)``, is used
        instead of the folder's; any other keyword is an error.
        """
        unknown = set(components) - set(_MODULES)
        if unknown:
            raise TypeError(f"unknown pipeline component(s): {sorted(unknown)}; expected some of {_MODULES}")
        root = Path(directory)
        index = json.loads((root / "model_index.json").read_text())
        modules: dict[str, Any] = dict(components)
        for name in _MODULES:
            if name in modules:
                continue
            klass = _CLASSES.get(index[name])
            if klass is None:
                raise ValueError(f"{root}: unknown class {index[name]!r} for {name}")
            if name == "scheduler":
                modules[name] = klass.from_pretrained(root / name)
            elif klass is PixelUnshuffleVAE:  # parameter-free: config only
                modules[name] = klass.from_config(klass.load_config(root / name))
            else:
                modules[name] = klass.from_pretrained(root / name, torch_dtype=torch_dtype,
                                                      low_cpu_mem_usage=False).eval()
        if reid is None and index.get("reid"):
            from pose2id_demo.reid import get_backbone

            reid = get_backbone(index["reid"], device=str(device))
        pipe = cls(**modules, reid=reid, image_size=tuple(index["image_size"]))
        return pipe.to(device)


def load_embedded(device: str | torch.device = "cpu") -> Pose2IDPipeline:
    """The shipped tiny IPG (``assets/models/ipg-tiny``), trained by ``pose2id_demo.ipg.train``."""
    root = MODELS_DIR / "ipg-tiny"
    if not (root / "model_index.json").exists():
        raise FileNotFoundError(f"{root} has no trained tiny IPG (model_index.json missing)")
    pipe = Pose2IDPipeline.from_pretrained(root, device=device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
