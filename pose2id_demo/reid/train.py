"""Train the project's ReID network (``synthped-reid``) from scratch on a Market-1501-format train split.

    python -m pose2id_demo.reid.train --data ROOT --out assets/models/reid

``ROOT`` defaults to the SynthPed standard benchmark (rendered on first use). BoT recipe (Luo et al.
2019) at CPU scale: P×K identity-balanced batches, label-smoothed ID loss on the BNNeck output plus the
batch-hard triplet loss on the global feature, Adam with linear warm-up and cosine decay, random
flip / scale-translate / brightness-contrast / greyscale / random-erasing augmentation.

Every iteration draws its batch and augmentation from ``numpy.random.default_rng([seed, step])`` and
``torch.Generator`` seeded the same way, and the initial weights from ``torch.manual_seed(seed)``, so a
run is reproducible and a resumed run (``--resume``, from the checkpoint written every
``--ckpt-every`` steps) continues exactly where it stopped. Writes ``<out>/synthped-reid.safetensors``
and ``<out>/synthped-reid.json`` (architecture + training provenance, including the standard-task mAP).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from pose2id_demo.data import load_market
from pose2id_demo.metrics import distance_matrix, evaluate
from pose2id_demo.reid.model import ReIDConfig, SynthPedReID, save_reid

logger = logging.getLogger(__name__)

DEFAULTS = {"steps": 1500, "p": 16, "k": 4, "lr": 1.5e-3, "weight_decay": 5e-4, "warmup": 60, "margin": 0.3,
            "smoothing": 0.1, "seed": 0, "threads": 2}
ARCH = {"widths": (16, 48, 128, 256), "blocks": (1, 1, 2, 1), "strides": (2, 2, 2, 2)}


def load_images(paths: Sequence[str], size: tuple[int, int]) -> torch.Tensor:
    """Decode ``paths`` into a uint8 tensor (N, 3, H, W), resized to ``size`` = (H, W) if needed."""
    h, w = size
    out = np.empty((len(paths), h, w, 3), np.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert("RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            out[i] = np.asarray(im)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def pk_batch(labels: np.ndarray, by_label: list[np.ndarray], p: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a P×K batch: P distinct identities, K images each (with replacement if fewer)."""
    ids = rng.choice(len(by_label), size=p, replace=False)
    idx = [rng.choice(by_label[i], size=k, replace=len(by_label[i]) < k) for i in ids]
    return np.concatenate(idx)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """BoT-style augmentation of a float batch in [0, 1] (B, 3, H, W), vectorised over the batch."""
    b, _, h, w = x.shape

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    # horizontal flip
    flip = u(b) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    # random scale (0.9..1.1) and translation (±10 %): the "pad 10 + random crop" of BoT, continuous
    s = 0.9 + 0.2 * u(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, :, 2] = (u(b, 2) - 0.5) * 0.2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # brightness / contrast jitter and occasional greyscale
    bright = 0.8 + 0.4 * u(b, 1, 1, 1)
    contrast = 0.8 + 0.4 * u(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * bright
    grey = (u(b) < 0.15)[:, None, None, None]
    x = torch.where(grey, x.mean(dim=1, keepdim=True).expand_as(x), x)
    # random erasing (p = 0.5, area 2-40 %, aspect 0.3-3.3), filled with a random colour
    erase = u(b) < 0.5
    area = (0.02 + 0.38 * u(b)) * h * w
    aspect = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u(b))
    eh = torch.sqrt(area * aspect).clamp(max=h)
    ew = torch.sqrt(area / aspect).clamp(max=w)
    y0 = u(b) * (h - eh)
    x0 = u(b) * (w - ew)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    m = (ys >= y0.view(-1, 1, 1)) & (ys < (y0 + eh).view(-1, 1, 1)) & (xs >= x0.view(-1, 1, 1)) & \
        (xs < (x0 + ew).view(-1, 1, 1)) & erase.view(-1, 1, 1)
    x = torch.where(m[:, None], u(b, 3, 1, 1), x)
    return x.clamp(0, 1)


def batch_hard_triplet(feats: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances of the global feature."""
    d = torch.cdist(feats, feats).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    hardest_pos = (d * same).max(dim=1).values
    hardest_neg = d.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def lr_at(step: int, steps: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * t)) + base * 0.01


def _save_ckpt(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    state = opt.state_dict()
    for pid, st in state["state"].items():
        for name, v in st.items():
            tensors[f"opt.{pid}.{name}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step)})
    tmp.replace(path)


def _load_ckpt(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    with safe_open(str(path), framework="pt") as f:
        step = int(f.metadata()["step"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state["state"].setdefault(int(pid), {})[name] = v
    opt.load_state_dict(state)
    return step


@torch.no_grad()
def embed(model: SynthPedReID, images_u8: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Post-BN features of uint8 images (N, 3, H, W)."""
    model.eval()
    mean = torch.tensor(model.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std).view(1, 3, 1, 1)
    out = [model((images_u8[i:i + batch].float() / 255 - mean) / std) for i in range(0, len(images_u8), batch)]
    return torch.cat(out).numpy()


def evaluate_on(model: SynthPedReID, root: str | Path) -> dict:
    """mAP / Rank-1 of ``model`` on a Market-format root (query vs gallery)."""
    ds = load_market(root)
    size = model.config.input_size
    q = embed(model, load_images([r.path for r in ds.query], size))
    g = embed(model, load_images([r.path for r in ds.gallery], size))
    dist = distance_matrix(q, g)
    res = evaluate(dist, np.array([r.pid for r in ds.query]), np.array([r.pid for r in ds.gallery]),
                   np.array([r.camid for r in ds.query]), np.array([r.camid for r in ds.gallery]))
    return {"mAP": float(res["mAP"]), "Rank-1": float(res["Rank-1"])}


def _train_split(data: str | Path, arch: dict | None) -> tuple[Any, np.ndarray, list[np.ndarray], ReIDConfig,
                                                                torch.Tensor]:
    """The train split of ``data``: records, class labels (0 … C-1), each class's indices, the model config
    with C classes, and the images as a uint8 tensor (N, 3, H, W) at the config's input size."""
    ds = load_market(data)
    if not ds.train:
        raise ValueError(f"{data} has no bounding_box_train/ images to train on")
    pids = sorted({r.pid for r in ds.train})
    pid_index = {pid: i for i, pid in enumerate(pids)}
    labels = np.array([pid_index[r.pid] for r in ds.train])
    by_label = [np.flatnonzero(labels == i) for i in range(len(pids))]
    config = ReIDConfig(**(arch or ARCH), num_classes=len(pids))
    t0 = time.time()
    images = load_images([r.path for r in ds.train], config.input_size)
    logger.info("loaded %d train images of %d ids in %.1fs", len(images), len(pids), time.time() - t0)
    return ds, labels, by_label, config, images


def _step(model: SynthPedReID, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, smoothing: float,
          margin: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step on ID loss (cross-entropy with label smoothing) + batch-hard triplet loss;
    returns the logits and both losses."""
    logits, ft = model(x)
    loss_id = F.cross_entropy(logits, y, label_smoothing=smoothing)
    loss_tri = batch_hard_triplet(ft, y, margin)
    loss = loss_id + loss_tri
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits, loss_id, loss_tri


def train(data: str | Path, out: str | Path, steps: int = DEFAULTS["steps"], p: int = DEFAULTS["p"],
          k: int = DEFAULTS["k"], lr: float = DEFAULTS["lr"], weight_decay: float = DEFAULTS["weight_decay"],
          warmup: int = DEFAULTS["warmup"], margin: float = DEFAULTS["margin"],
          smoothing: float = DEFAULTS["smoothing"], seed: int = DEFAULTS["seed"], threads: int = DEFAULTS["threads"],
          resume: bool = False, ckpt_every: int = 100, progress: bool = True, evaluate: bool = True,
          arch: dict | None = None, stop_at: int | None = None) -> Path | None:
    """Train and save ``synthped-reid``; returns the .safetensors path.

    ``stop_at``: stop after that many steps, leaving a checkpoint for ``resume=True`` (returns None).
    """
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds, labels, by_label, config, images = _train_split(data, arch)
    torch.manual_seed(seed)
    model = SynthPedReID(config)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    ckpt = out / ".synthped-reid.ckpt.safetensors"
    start = 0
    if resume and ckpt.exists():
        start = _load_ckpt(ckpt, model, opt)
        logger.info("resumed from %s at step %d", ckpt, start)
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    labels_t = torch.from_numpy(labels)

    bar = None
    if progress:
        bar = tqdm(total=steps, initial=start, desc="train synthped-reid", unit="step")
    model.train()
    t_train = time.time()
    for step in range(start, steps):
        rng = np.random.default_rng([seed, step])
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        idx = pk_batch(labels, by_label, p, k, rng)
        x = (augment(images[idx].float() / 255.0, g) - mean) / std
        y = labels_t[idx]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        logits, loss_id, loss_tri = _step(model, opt, x, y, smoothing, margin)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(id=f"{loss_id.item():.3f}", tri=f"{loss_tri.item():.3f}",
                            acc=f"{(logits.argmax(1) == y).float().mean().item():.2f}")
        if step % 50 == 0 or step == steps - 1:
            logger.info("step %d/%d loss_id %.4f loss_tri %.4f lr %.2e", step, steps, loss_id.item(),
                        loss_tri.item(), opt.param_groups[0]["lr"])
        if stop_at is not None and step + 1 >= stop_at and step + 1 < steps:
            _save_ckpt(ckpt, model, opt, step + 1)
            if bar is not None:
                bar.close()
            logger.info("stopped at step %d; continue with resume=True", step + 1)
            return None
        if (step + 1) % ckpt_every == 0 and step + 1 < steps:
            _save_ckpt(ckpt, model, opt, step + 1)
    if bar is not None:
        bar.close()
    train_s = time.time() - t_train
    model.eval()
    meta = {"data": "SynthPed standard train split" if "synthped" in str(data) else str(data),
            "steps": steps, "batch": f"{p}x{k}", "lr": lr, "weight_decay": weight_decay, "warmup": warmup,
            "margin": margin, "label_smoothing": smoothing, "seed": seed, "threads": threads,
            "train_seconds": round(train_s, 1), "torch": torch.__version__,
            "command": f"python -m pose2id_demo.reid.train --data <root> --out {out} --steps {steps} --seed {seed}"}
    if evaluate and ds.query:
        meta["eval_on_data"] = evaluate_on(model, data)
        logger.info("evaluation on %s: %s", data, meta["eval_on_data"])
    model.config.meta = meta
    path = save_reid(model, out)
    if ckpt.exists():
        ckpt.unlink()
    logger.info("saved %s (%.1f min training)", path, train_s / 60)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pose2id_demo.reid.train", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="Market-1501-format root (default: SynthPed standard)")
    ap.add_argument("--out", default="assets/models/reid")
    for name, val in DEFAULTS.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=type(val), default=val)
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = args.data
    if data is None:
        from pose2id_demo.data.synthped import ensure_benchmark
        data = ensure_benchmark("standard", progress=True)
    path = train(data, args.out, steps=args.steps, p=args.p, k=args.k, lr=args.lr, weight_decay=args.weight_decay,
                 warmup=args.warmup, margin=args.margin, smoothing=args.smoothing, seed=args.seed,
                 threads=args.threads, resume=args.resume, evaluate=not args.no_eval)
    cfg = json.loads(path.with_suffix(".json").read_text())
    print(f"saved {path} ({path.stat().st_size / 1e6:.1f} MB); eval: {cfg['meta'].get('eval_on_data')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["augment", "batch_hard_triplet", "embed", "evaluate_on", "load_images", "pk_batch", "train"]
