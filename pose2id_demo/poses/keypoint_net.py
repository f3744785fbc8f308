"""A small keypoint estimator trained on SynthPed: the pose-adherence judge of the IPG quality bench.

    python -m pose2id_demo.poses.keypoint_net --data ROOT --out assets/models/keypoint-net --seed 0 --max-minutes 6

:class:`KeypointNet` maps a pedestrian crop (any size; resized to ``input_size`` = 128 × 64, H × W) to

- 18 OpenPose keypoints by *integral regression* (soft-argmax of one heatmap per keypoint on a 32 × 16
  grid — the heatmap's expected position, so coordinates are continuous and the loss is an L1 on them);
- 18 visibility logits (confidence 0 in the ground truth = not visible, e.g. the nose of a back view);
- 8 view-direction logits, in :data:`pose2id_demo.poses.representative.DIRECTIONS` order.

Labels are SynthPed's ground-truth keypoint jsons; the direction label of an image is
:func:`~pose2id_demo.poses.representative.classify_direction` of its ground-truth keypoints (with the
frontal width calibrated on the training poses), which agrees with the renderer's own view direction on
99 % of training images. The bench reports direction from the direction head (``direction`` of
:class:`Estimate`); ``classify_direction`` of the *predicted* keypoints is available as well.

Input size: 64 × 32, the tiny generator's output; 128 × 64 images (SynthPed's crops, ground-truth renders)
are resized down (bilinear), so both resolutions are read the same way — and four times cheaper to train
than at 128 × 64 on a shared CPU. Augmentation: horizontal flip (left/right keypoints swapped, direction
re-derived from the flipped pose), and a mild Gaussian blur with probability 1/4, so the judge is fair to
soft generations.

Metric helpers (pure numpy): :func:`pck` (PCK@α of the person height — the vertical extent of the
reference pose's visible keypoints) and :func:`person_height`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageFilter
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .keypoints import NUM_KEYPOINTS, Pose, load_pose_json
from .representative import DIRECTIONS, classify_direction, frontal_width_from

logger = logging.getLogger(__name__)

# Left/right keypoint pairs (swapped by a horizontal flip).
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
FLIP_INDEX = np.arange(NUM_KEYPOINTS)
for _a, _b in FLIP_PAIRS:
    FLIP_INDEX[_a], FLIP_INDEX[_b] = _b, _a


@dataclass
class KeypointNetConfig:
    input_size: tuple[int, int] = (64, 32)  # (H, W) every input is resized to
    widths: tuple[int, int, int, int] = (24, 48, 64, 96)
    frontal_width: float = 0.62  # classify_direction's calibration used for the direction labels


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class KeypointNet(nn.Module):
    """Image ``(B, 3, 64, 32)`` in [0, 1] → keypoints ``(B, 18, 2)`` in [0, 1] (x / W, y / H),
    visibility logits ``(B, 18)`` and direction logits ``(B, 8)``.

    A 4-stage encoder (÷2 each: 32×16, 16×8, 8×4, 4×2) whose two deepest stages are upsampled back onto
    the first (added, U-Net style), so every heatmap pixel sees the whole person — needed to tell the
    person's left from right, which depends on the view direction. Heatmaps are 32 × 16.
    """

    def __init__(self, config: KeypointNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or KeypointNetConfig()
        c0, c1, c2, c3 = self.config.widths
        self.enc = nn.ModuleList([_block(3, c0, 2), _block(c0, c1, 2), _block(c1, c2, 2), _block(c2, c3, 2)])
        self.lat = nn.Conv2d(c3, c0, 1)
        self.mid = nn.Conv2d(c2, c0, 1)
        self.low = nn.Conv2d(c1, c0, 1)
        self.fuse = _block(c0, c0, 1)
        self.heat = nn.Conv2d(c0, NUM_KEYPOINTS, 1)
        self.vis = nn.Linear(c3, NUM_KEYPOINTS)
        self.direction = nn.Linear(c3, len(DIRECTIONS))
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = (x - self.mean) / 0.25
        f0 = self.enc[0](x)  # 32×16
        f1 = self.enc[1](f0)  # 16×8
        f2 = self.enc[2](f1)  # 8×4
        f3 = self.enc[3](f2)  # 4×2
        up = sum(F.interpolate(conv(f), size=f0.shape[-2:], mode="bilinear", align_corners=False)
                 for conv, f in ((self.lat, f3), (self.mid, f2), (self.low, f1)))
        h = self.heat(self.fuse(f0 + up))  # (B, 18, 32, 16)
        coords = soft_argmax(h)
        g = f3.mean(dim=(2, 3))
        return coords, self.vis(g), self.direction(g)


def soft_argmax(heat: torch.Tensor) -> torch.Tensor:
    """Expected (x, y) of ``softmax(heat)`` per channel, in [0, 1] image units (pixel centres).

    ``heat`` (B, K, h, w) → ``(B, K, 2)``: x = Σ p · (j + 0.5) / w, y = Σ p · (i + 0.5) / h.
    """
    b, k, h, w = heat.shape
    p = heat.flatten(2).softmax(-1).view(b, k, h, w)
    xs = (torch.arange(w, dtype=p.dtype, device=p.device) + 0.5) / w
    ys = (torch.arange(h, dtype=p.dtype, device=p.device) + 0.5) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


# ----------------------------------------------------------------------------------------------------
# Inference
# ----------------------------------------------------------------------------------------------------

@dataclass
class Estimate:
    """One image's estimate: ``pose`` (in that image's pixels, confidence = visibility probability, 0 below
    0.5), ``direction`` (the direction head's argmax) and ``direction_probs`` (8,)."""

    pose: Pose
    direction: str
    direction_probs: np.ndarray

    @property
    def direction_from_keypoints(self) -> str | None:
        return classify_direction(self.pose)


def to_input(images: Sequence[PIL.Image.Image | np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """Images (PIL or uint8 HxWx3, any size) → ``(B, 3, H, W)`` float in [0, 1], bilinear-resized to ``size``."""
    h, w = size
    arrs = []
    for im in images:
        pil = im if isinstance(im, PIL.Image.Image) else PIL.Image.fromarray(np.asarray(im, np.uint8))
        pil = pil.convert("RGB")
        if pil.size != (w, h):
            pil = pil.resize((w, h), PIL.Image.BILINEAR)
        arrs.append(np.asarray(pil, np.float32) / 255.0)
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


class KeypointEstimator:
    """A loaded :class:`KeypointNet` (eval mode) with ``__call__(images) -> list[Estimate]``."""

    def __init__(self, model: KeypointNet) -> None:
        self.model = model.eval()

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None) -> KeypointEstimator:
        """Load ``config.json`` + ``model.safetensors`` (default: ``assets/models/keypoint-net``)."""
        from pose2id_demo.paths import MODELS_DIR

        root = Path(directory) if directory is not None else MODELS_DIR / "keypoint-net"
        cfg = json.loads((root / "config.json").read_text())
        config = KeypointNetConfig(input_size=tuple(cfg["input_size"]), widths=tuple(cfg["widths"]),
                                   frontal_width=float(cfg["frontal_width"]))
        model = KeypointNet(config)
        model.load_state_dict(load_file(root / "model.safetensors"))
        return cls(model)

    @torch.no_grad()
    def predict_arrays(self, images: Sequence[PIL.Image.Image | np.ndarray], batch_size: int = 256
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(coords (N, 18, 2) in [0, 1], visibility probs (N, 18), direction probs (N, 8))``."""
        out = ([], [], [])
        for s in range(0, len(images), batch_size):
            x = to_input(images[s:s + batch_size], self.model.config.input_size)
            c, v, d = self.model(x)
            out[0].append(c.numpy())
            out[1].append(torch.sigmoid(v).numpy())
            out[2].append(d.softmax(-1).numpy())
        return tuple(np.concatenate(o) for o in out)  # type: ignore[return-value]

    def __call__(self, images: Sequence[PIL.Image.Image | np.ndarray]) -> list[Estimate]:
        coords, vis, dirs = self.predict_arrays(images)
        res = []
        for im, c, v, d in zip(images, coords, vis, dirs):
            w, h = im.size if isinstance(im, PIL.Image.Image) else (np.asarray(im).shape[1], np.asarray(im).shape[0])
            kp = np.concatenate([c * [w, h] - 0.5, np.where(v >= 0.5, v, 0.0)[:, None]], axis=1)
            res.append(Estimate(Pose(kp, w, h), DIRECTIONS[int(d.argmax())], d))
        return res


# ----------------------------------------------------------------------------------------------------
# Metrics (numpy)
# ----------------------------------------------------------------------------------------------------

def person_height(pose: Pose) -> float:
    """Vertical extent (pixels) of the visible keypoints (0 if fewer than two are visible)."""
    ys = pose.keypoints[pose.visible, 1]
    return float(ys.max() - ys.min()) if len(ys) >= 2 else 0.0


def pck(pred_xy: np.ndarray, ref_kp: np.ndarray, ref_size: tuple[int, int], alpha: float = 0.1
        ) -> tuple[int, int]:
    """(correct, total) keypoints of one image: PCK@``alpha`` of the person height.

    Args:
        pred_xy: predicted keypoints ``(18, 2)`` in [0, 1] image units (pixel ``j``'s centre is (j + 0.5) / W).
        ref_kp: reference keypoints ``(18, 3)`` (x, y, confidence) in pixels of a ``ref_size`` = (W, H) image
            (pixel ``j``'s centre at x = j, as in the keypoint jsons).
    A reference keypoint counts if visible (confidence > 0); it is correct when the predicted one lies
    within ``alpha`` × the reference's :func:`person_height`, both measured in the reference's pixels.
    """
    w, h = ref_size
    vis = ref_kp[:, 2] > 0
    if vis.sum() < 2:
        return 0, 0
    height = float(ref_kp[vis, 1].max() - ref_kp[vis, 1].min())
    d = np.hypot(pred_xy[:, 0] * w - 0.5 - ref_kp[:, 0], pred_xy[:, 1] * h - 0.5 - ref_kp[:, 1])
    return int(np.sum(vis & (d <= alpha * height))), int(vis.sum())


# ----------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------

def flip_labels(kp: np.ndarray, width: float) -> np.ndarray:
    """Keypoints (…, 18, 3) of the horizontally flipped image (x → width − x, left/right swapped).

    ``width`` is the image width in the keypoints' units (1 for [0, 1] coordinates, with pixel centres at
    (j + 0.5) / W this is exact)."""
    out = kp[..., FLIP_INDEX, :].copy()
    out[..., 0] = width - out[..., 0]
    return out


def load_split(records, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W, 3)`` uint8 at ``size`` and keypoints ``(N, 18, 3)`` in [0, 1] units (x/W, y/H, c)."""
    h, w = size
    imgs, kps = [], []
    for r in records:
        js = Path(r.path).with_suffix(".json")
        if not js.exists():
            continue
        pose = load_pose_json(js)
        with PIL.Image.open(r.path) as im:
            imgs.append(np.asarray(im.convert("RGB").resize((w, h), PIL.Image.BILINEAR)))
        kp = pose.keypoints.copy()
        # pixel-index coordinates → [0, 1] units with pixel centres at (j + 0.5) / W
        kp[:, 0] = (kp[:, 0] + 0.5) / pose.width
        kp[:, 1] = (kp[:, 1] + 0.5) / pose.height
        kps.append(kp)
    return np.stack(imgs), np.stack(kps).astype(np.float32)


def direction_labels(kps: np.ndarray, frontal_width: float) -> np.ndarray:
    """classify_direction index of each (18, 3) keypoint array in [0, 1] units (−1 when unknown)."""
    out = np.full(len(kps), -1, np.int64)
    for i, kp in enumerate(kps):
        d = classify_direction(Pose(kp * [64.0, 128.0, 1.0], 64, 128), frontal_width)
        if d is not None:
            out[i] = DIRECTIONS.index(d)
    return out


def augment_batch(imgs: np.ndarray, kps: np.ndarray, rng: np.random.Generator,
                  low_res: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flip (p 1/2), a ``low_res`` round trip (p 1/2, if given) and Gaussian blur (p 1/4) of uint8 images
    with their keypoints."""
    out_i, out_k = [], []
    lh, lw = low_res or (0, 0)
    for im, kp in zip(imgs, kps):
        if rng.random() < 0.5:
            im = im[:, ::-1]
            kp = flip_labels(kp, 1.0)
        pil = PIL.Image.fromarray(np.ascontiguousarray(im))
        if low_res is not None and rng.random() < 0.5:
            pil = pil.resize((lw, lh), PIL.Image.BOX).resize((im.shape[1], im.shape[0]), PIL.Image.BILINEAR)
        if rng.random() < 0.25:
            pil = pil.filter(PIL.ImageFilter.GaussianBlur(radius=float(rng.uniform(0.4, 1.2))))
        out_i.append(np.asarray(pil))
        out_k.append(kp)
    return np.stack(out_i), np.stack(out_k)


def keypoint_loss(model: KeypointNet, x: torch.Tensor, kp: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    coords, vis_logit, dir_logit = model(x)
    vis = (kp[..., 2] > 0).float()
    l1 = ((coords - kp[..., :2]).abs().sum(-1) * vis).sum() / vis.sum().clamp_min(1.0)
    bce = F.binary_cross_entropy_with_logits(vis_logit, vis)
    ce = F.cross_entropy(dir_logit, dirs, ignore_index=-1)
    return 10.0 * l1 + bce + 0.5 * ce


@torch.no_grad()
def evaluate(model: KeypointNet, imgs: np.ndarray, kps: np.ndarray, dirs: np.ndarray,
             low_res: tuple[int, int] | None = None) -> dict:
    """PCK@0.1, visibility accuracy and direction accuracy (head; and from predicted keypoints) on a split."""
    model.eval()
    if low_res is not None:
        lh, lw = low_res
        imgs = np.stack([np.asarray(PIL.Image.fromarray(im).resize((lw, lh), PIL.Image.BOX)
                                    .resize((im.shape[1], im.shape[0]), PIL.Image.BILINEAR)) for im in imgs])
    est = KeypointEstimator(model)
    coords, vis, dprob = est.predict_arrays(list(imgs))
    ok = tot = 0
    for c, kp in zip(coords, kps):
        a, b = pck(c, kp * [64.0, 128.0, 1.0] - [0.5, 0.5, 0.0], (64, 128))
        ok, tot = ok + a, tot + b
    known = dirs >= 0
    pred_kp = np.concatenate([coords, (vis >= 0.5).astype(np.float32)[..., None]], axis=-1)
    from_kp = direction_labels(pred_kp, model.config.frontal_width)
    return {"pck@0.1": ok / max(tot, 1), "visibility_acc": float(np.mean((vis >= 0.5) == (kps[..., 2] > 0))),
            "direction_acc_head": float(np.mean(dprob.argmax(1)[known] == dirs[known])),
            "direction_acc_keypoints": float(np.mean(from_kp[known] == dirs[known])), "n": int(len(imgs))}


def main(argv: list[str] | None = None) -> int:
    from pose2id_demo.training_cli import parse_small_training

    args, rng = parse_small_training("Train the SynthPed keypoint estimator (the IPG bench's pose judge)", argv,
                                     minutes=6.0, steps=4000, batch_size=64, lr=3e-3,
                                     data_help="Market-1501-format root with keypoint jsons (SynthPed)")
    from pose2id_demo.data import load_market

    ds = load_market(args.data)
    config = KeypointNetConfig()
    size = config.input_size
    tr_i, tr_k = load_split(ds.train, size)
    te_i, te_k = load_split(list(ds.query) + [r for r in ds.gallery if r.pid > 0], size)
    fw = frontal_width_from([Pose(k * [64.0, 128.0, 1.0], 64, 128) for k in tr_k])
    config.frontal_width = round(float(fw), 4)
    te_d = direction_labels(te_k, config.frontal_width)
    logger.info("train %d images, test %d; frontal width %.4f", len(tr_i), len(te_i), config.frontal_width)
    model = KeypointNet(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    t0 = time.time()
    step, avg = 0, None
    full = (128, 64)
    te_full, _ = load_split(list(ds.query) + [r for r in ds.gallery if r.pid > 0], full)
    while step < args.max_steps and time.time() - t0 < args.max_minutes * 60:
        frac = min(1.0, max(step / args.max_steps, (time.time() - t0) / (args.max_minutes * 60)))
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 100) * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * frac)))
        idx = rng.integers(0, len(tr_i), args.batch_size)
        im, kp = augment_batch(tr_i[idx], tr_k[idx], rng)
        d = torch.from_numpy(direction_labels(kp, config.frontal_width))
        x = torch.from_numpy(im).permute(0, 3, 1, 2).float() / 255.0
        model.train()
        loss = keypoint_loss(model, x, torch.from_numpy(kp), d)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        lv = float(loss.detach())
        avg = lv if avg is None else 0.95 * avg + 0.05 * lv
        if step % 100 == 0:
            logger.info("step %d loss %.4f (avg %.4f) %.1f min", step, lv, avg, (time.time() - t0) / 60)
    minutes = (time.time() - t0) / 60
    res = {"test_at_64x32": evaluate(model, te_i, te_k, te_d), "test_at_128x64": evaluate(model, te_full, te_k, te_d)}
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out / "model.safetensors")
    cfg = asdict(config)
    (args.out / "config.json").write_text(json.dumps(cfg, indent=1))
    info = {"steps": step, "minutes": round(minutes, 2), "threads": args.threads, "batch_size": args.batch_size,
            "test": res, "argv": sys.argv[1:],
            "params": sum(p.numel() for p in model.parameters())}
    (args.out / "train_info.json").write_text(json.dumps(info, indent=1))
    logger.info("saved %s after %d steps (%.1f min): %s", args.out, step, minutes, json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
