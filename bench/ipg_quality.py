"""Quality of the embedded IPG on SynthPed "standard" test identities (never trained on), with ground truth.

    python -m bench.ipg_quality [--ref-every 8] [--steps 20] [--json docs/ipg_quality.json] [--eq9]

SynthPed can render the reference's person, camera and background in exactly a target pose
(:func:`pose2id_demo.data.synthped.render_ground_truth`), so every generation has a ground truth.

Subset: references = every ``--ref-every``-th test query (read through the dataset reader, so the counts
follow the split); targets = the source training images of the 8 shipped representative poses
(``assets/poses/index.json``), with *their own* keypoints (the ground truth is rendered in exactly those).
Generation: 20 DDIM steps, CFG 3.5, seed 42, IFR on and off.

1. Pose adherence, judged by the project's keypoint estimator (:mod:`pose2id_demo.poses.keypoint_net`,
   trained on SynthPed train images): PCK@0.1 of the person height and 8-way view direction (the
   estimator's direction head; the label of a pose is ``classify_direction`` of its keypoints) of each
   generation against its target pose; the same estimator on real test images (all queries and gallery
   images, at 128×64 and at the generator's 64×32) and on the ground-truth renders is the ceiling. "Copied
   the reference": the same scores against the *reference's own* pose; the real images' own rate is that
   of the ground-truth renders (the same 8 targets: what a perfect generator scores) and of the real
   gallery images of the reference's identity (how often two photos of a person share a pose).
2. Identity: Rank-1 of each generation against the test gallery (no camera filtering), with
   ``synthped-reid`` (IFR's own backbone) and ``imagenet-mobilenetv2`` (independent), beside the real
   queries' own Rank-1 and the ground-truth renders' (at 64×32).
3. Fidelity: SSIM and PSNR at the generations' own size (64×32, or 128×64 when the autoencoder's decoder
   upsamples) against the box-resized ground truth, and for the baselines "the reference image itself",
   "the mean training image", and the autoencoder's reconstruction of the ground truth (the ceiling of a
   latent generator), all at that size.
4. Time for 8 (IFR on) and 16 (IFR on + off) generations with 1 and 2 torch threads, interleaved, with
   the machine's load.

``--eq9`` also runs the older identity-consistency / eq. 9 section on all queries and gallery images
(needs the precomputed generations of :mod:`pose2id_demo.ipg.precompute`); without it the old keys of
the json are kept as they are.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import PIL.Image
from PIL import ImageDraw

from pose2id_demo import ablation
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import distance_matrix

REPO = Path(__file__).resolve().parent.parent
logger = logging.getLogger("ipg_quality")
GEN_SIZE = (64, 32)  # (H, W) the embedded generator works at (its output is this × the decoder's upsampling)


def l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def consistency_rank1(gen_feats: np.ndarray, q_pids: np.ndarray, g_feats: np.ndarray, g_pids: np.ndarray) -> float:
    """Fraction of generations (nq, M, d) whose nearest gallery image has their reference's identity."""
    nq, m, d = gen_feats.shape
    dist = distance_matrix(l2n(gen_feats.reshape(nq * m, d)), l2n(g_feats))
    top = g_pids[np.argmin(dist, axis=1)]
    return float(np.mean(top == np.repeat(q_pids, m)))


def load_line() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def box(img: np.ndarray | PIL.Image.Image, size: tuple[int, int] = GEN_SIZE) -> np.ndarray:
    pil = img if isinstance(img, PIL.Image.Image) else PIL.Image.fromarray(img)
    return np.asarray(pil.convert("RGB").resize((size[1], size[0]), PIL.Image.BOX))


# ----------------------------------------------------------------------------------------------------
# The fixed part of the bench: references, targets, ground truth, real-image ceilings, gallery features
# ----------------------------------------------------------------------------------------------------

@dataclass
class Context:
    root: Path
    refs: list  # Records of the reference queries
    ref_images: list  # PIL 128×64
    ref_kps: list  # (18, 3) pixel keypoints of each reference (64×128 frame)
    ref_dirs: np.ndarray
    target_names: list
    target_poses: list  # Pose objects (their own keypoints)
    target_kps: list
    target_dirs: np.ndarray
    gt: np.ndarray  # (R, T, 128, 64, 3) uint8 ground-truth renders
    gt_canonical: np.ndarray  # the same on the canonical studio shot (render_ground_truth background="canonical")
    estimator: object
    frontal_width: float
    gallery: dict  # backbone -> dict(q_feats, q_pids, g_feats, g_pids)
    backbones: dict
    mean_train: np.ndarray  # (64, 32, 3) float
    mean_train_full: np.ndarray  # (128, 64, 3) float: the same at the images' own size


def direction_index(pose, fw: float) -> int:
    from pose2id_demo.poses.representative import DIRECTIONS, classify_direction

    d = classify_direction(pose, fw)
    return DIRECTIONS.index(d) if d is not None else -1


def build_context(ref_every: int, backbones: list[str], estimator_dir: Path | None = None) -> Context:
    from pose2id_demo.data import load_market
    from pose2id_demo.data.synthped import ensure_benchmark, item_for_file, render_ground_truth
    from pose2id_demo.paths import POSES_DIR
    from pose2id_demo.poses.keypoint_net import KeypointEstimator
    from pose2id_demo.poses.keypoints import load_pose_json
    from pose2id_demo.reid import get_backbone
    from pose2id_demo.reid.features import dataset_features

    root = Path(ensure_benchmark("standard", progress=False))
    ds = load_market(root)
    est = KeypointEstimator.from_pretrained(estimator_dir)
    fw = est.model.config.frontal_width
    refs = ds.query[::ref_every]
    index = json.loads((POSES_DIR / "index.json").read_text())["poses"]
    by_name = {Path(r.path).name: r for r in ds.train}
    targets = [by_name[p["image"]] for p in index]
    t_poses = [load_pose_json(Path(r.path).with_suffix(".json")) for r in targets]
    r_poses = [load_pose_json(Path(r.path).with_suffix(".json")) for r in refs]
    t_items = [item_for_file(f"bounding_box_train/{Path(r.path).name}") for r in targets]
    gt = np.zeros((len(refs), len(targets), 128, 64, 3), np.uint8)
    gt_canonical = np.zeros_like(gt)
    for i, r in enumerate(refs):
        ri = item_for_file(f"query/{Path(r.path).name}")
        for j, ti in enumerate(t_items):
            img, kp = render_ground_truth(0, ri, ti)
            if not np.allclose(kp, t_poses[j].keypoints, atol=1e-2):
                raise RuntimeError("ground-truth keypoints differ from the target's json")
            gt[i, j] = img
            gt_canonical[i, j] = render_ground_truth(0, ri, ti, background="canonical")[0]
    gallery, bbs = {}, {}
    for name in backbones:
        f = dataset_features(name, "standard")
        gallery[name] = {k: f[k] for k in ("q_feats", "q_pids", "g_feats", "g_pids", "q_paths")}
        bbs[name] = get_backbone(name)
    mean_train = np.mean([box(PIL.Image.open(r.path)) for r in ds.train[::4]], axis=0)
    mean_full = np.mean([np.asarray(PIL.Image.open(r.path).convert("RGB")) for r in ds.train[::4]], axis=0)
    return Context(root, refs, [PIL.Image.open(r.path).convert("RGB") for r in refs], [p.keypoints for p in r_poses],
                   np.array([direction_index(p, fw) for p in r_poses]), [p["direction"] for p in index], t_poses,
                   [p.keypoints for p in t_poses], np.array([direction_index(p, fw) for p in t_poses]), gt,
                   gt_canonical, est, fw, gallery, bbs, mean_train, mean_full)


def pose_block(ctx: Context, images: np.ndarray) -> dict:
    """Pose adherence (vs target) and copy rate (vs reference) of images (R, T, H, W, 3)."""
    from pose2id_demo.ipg.quality import pose_scores
    from pose2id_demo.poses.representative import DIRECTIONS

    r, t = images.shape[:2]
    coords, _, dprob = ctx.estimator.predict_arrays(list(images.reshape(r * t, *images.shape[2:])))
    dirs = dprob.argmax(1)
    tgt = pose_scores(coords, dirs, [ctx.target_kps[j] for i in range(r) for j in range(t)],
                      [ctx.target_dirs[j] for i in range(r) for j in range(t)], (64, 128))
    ref = pose_scores(coords, dirs, [ctx.ref_kps[i] for i in range(r) for j in range(t)],
                      [ctx.ref_dirs[i] for i in range(r) for j in range(t)], (64, 128))
    per_dir = {}
    for j in range(t):
        sel = np.arange(r) * t + j
        per_dir[ctx.target_names[j]] = {
            "direction_acc": round(100 * float(np.mean(dirs[sel] == ctx.target_dirs[j])), 1),
            "most_predicted": DIRECTIONS[int(np.bincount(dirs[sel], minlength=8).argmax())]}
    return {"pck_target": round(100 * tgt["pck"], 2), "direction_target": round(100 * tgt["direction"], 2),
            "pck_reference": round(100 * ref["pck"], 2), "direction_reference": round(100 * ref["direction"], 2),
            "n": tgt["n"], "per_target_direction": per_dir}


def identity_block(ctx: Context, images: np.ndarray) -> dict:
    from pose2id_demo.ipg.precompute import gen_features

    qp = np.array([r.pid for r in ctx.refs])
    out = {}
    for name, bb in ctx.backbones.items():
        g = ctx.gallery[name]
        out[name] = round(100 * consistency_rank1(gen_features(bb, images), qp, g["g_feats"], g["g_pids"]), 2)
    return out


def fidelity_block(ctx: Context, images: np.ndarray) -> dict:
    """SSIM / PSNR at the images' own size against the ground truth (the reference's camera and background),
    and against the canonical-background ground truth (``*_canonical``: what a generator trained on canonical
    targets draws)."""
    from pose2id_demo.ipg.quality import psnr, ssim

    size = images.shape[2:4]
    out = {"size": [int(v) for v in size]}
    for tag, truth in (("", ctx.gt), ("_canonical", ctx.gt_canonical)):
        gt = np.stack([[box(g, size) for g in row] for row in truth])
        pairs = list(zip(images.reshape(-1, *images.shape[2:]), gt.reshape(-1, *gt.shape[2:])))
        out[f"ssim{tag}"] = round(float(np.mean([ssim(a, b) for a, b in pairs])), 4)
        out[f"psnr{tag}_db"] = round(float(np.mean([psnr(a, b) for a, b in pairs])), 2)
    return out


def generate(pipe, ctx: Context, use_ifr: bool, steps: int, guidance: float = 3.5, seed: int = 42,
             refs_per_batch: int = 4, **kw) -> np.ndarray:
    out = []
    for s in range(0, len(ctx.refs), refs_per_batch):
        ims = pipe(ctx.ref_images[s:s + refs_per_batch], ctx.target_poses, num_inference_steps=steps,
                   guidance_scale=guidance, seed=seed, use_ifr=use_ifr, output_type="np", **kw).images
        out.append((np.asarray(ims) * 255).round().astype(np.uint8))
    ims = np.concatenate(out)
    return ims.reshape(len(ctx.refs), len(ctx.target_poses), *ims.shape[1:])


def score_generations(ctx: Context, images: np.ndarray) -> dict:
    return {"pose": pose_block(ctx, images), "identity_rank1": identity_block(ctx, images),
            "fidelity": fidelity_block(ctx, images)}


def reconstruct(vae, images: np.ndarray) -> np.ndarray:
    """``images`` (R, T, h, w, 3) uint8 through the autoencoder (posterior mean): (R, T, h·u, w·u, 3) uint8,
    u the decoder's upsampling."""
    import torch

    x = torch.from_numpy(images.reshape(-1, *images.shape[2:])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample
    rec = ((rec.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)
    return rec.reshape(*images.shape[:2], *rec.shape[1:])


def output_size(vae) -> tuple[int, int]:
    """(H, W) the autoencoder decodes a 64×32 image's latent to."""
    u = int(getattr(vae.config, "decoder_upsample", 1))
    return (GEN_SIZE[0] * u, GEN_SIZE[1] * u)


def ceiling_images(ctx: Context, vae) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ground truth at 64×32 (own and canonical background), both through the autoencoder, and the
    own-background ground truth at the autoencoder's output size (what the reconstructions are scored against)."""
    gt64 = np.stack([[box(g) for g in row] for row in ctx.gt])
    gtc64 = np.stack([[box(g) for g in row] for row in ctx.gt_canonical])
    gt_out = np.stack([[box(g, output_size(vae)) for g in row] for row in ctx.gt])
    return gt64, gtc64, reconstruct(vae, gt64), reconstruct(vae, gtc64), gt_out


def autoencoder_ceiling(ctx: Context, vae, images: tuple | None = None) -> dict:
    """What a 64×32 latent generator with this autoencoder can at best draw: the ground truth (own and
    canonical background) through the autoencoder, scored for pose, identity and fidelity. ``images``:
    :func:`ceiling_images` already made for this autoencoder."""
    from pose2id_demo.ipg.pipeline import vae_scale_factor
    from pose2id_demo.ipg.quality import psnr, ssim

    gt64, _, rec, recc, gt_out = images if images is not None else ceiling_images(ctx, vae)
    flat = lambda a: a.reshape(-1, *a.shape[2:])  # noqa: E731
    f = vae_scale_factor(vae)
    return {"pose": pose_block(ctx, rec), "identity_rank1": identity_block(ctx, rec),
            "canonical_identity_rank1": identity_block(ctx, recc), "size": list(rec.shape[2:4]),
            "ssim": round(float(np.mean([ssim(a, b) for a, b in zip(flat(rec), flat(gt_out))])), 4),
            "psnr_db": round(float(np.mean([psnr(a, b) for a, b in zip(flat(rec), flat(gt_out))])), 2),
            "latent_shape": [int(vae.config.latent_channels), gt64.shape[2] // f, gt64.shape[3] // f],
            "parameters": int(sum(p.numel() for p in vae.parameters()))}


def baselines(ctx: Context, pipe) -> dict:
    """Ceilings and trivial baselines: real images, ground-truth renders, the reference, the mean image, the AE."""
    from pose2id_demo.data import load_market
    from pose2id_demo.ipg.quality import pose_scores, psnr, ssim
    from pose2id_demo.poses.keypoints import load_pose_json

    ds = load_market(ctx.root)
    test = list(ds.query) + [r for r in ds.gallery if r.pid > 0]
    imgs = [np.asarray(PIL.Image.open(r.path).convert("RGB")) for r in test]
    poses = [load_pose_json(Path(r.path).with_suffix(".json")) for r in test]
    kps = [p.keypoints for p in poses]
    dirs = [direction_index(p, ctx.frontal_width) for p in poses]
    real = {}
    for tag, ims in (("128x64", imgs), ("64x32", [box(i) for i in imgs])):
        c, _, d = ctx.estimator.predict_arrays(ims)
        s = pose_scores(c, d.argmax(1), kps, dirs, (64, 128))
        real[tag] = {"pck": round(100 * s["pck"], 2), "direction": round(100 * s["direction"], 2), "n": s["n"]}
    images = ceiling_images(ctx, pipe.vae)
    gt64, gtc64, _, _, _ = images
    ceil = autoencoder_ceiling(ctx, pipe.vae, images)  # its pose and fidelity are the baselines' AE rows
    gt_scores = {"pose_128x64": pose_block(ctx, ctx.gt), "pose_64x32": pose_block(ctx, gt64),
                 "identity_rank1_64x32": identity_block(ctx, gt64)}
    # copy rate of real photos: the reference's other gallery images against the reference's pose
    by_pid = {}
    for r, k in zip(test, range(len(test))):
        if "query" not in Path(r.path).parent.name:
            by_pid.setdefault(r.pid, []).append(k)
    pred, rk, rd, pd = [], [], [], []
    c64, _, d64 = ctx.estimator.predict_arrays([box(i) for i in imgs])
    for i, ref in enumerate(ctx.refs):
        for k in by_pid.get(ref.pid, []):
            pred.append(c64[k])
            pd.append(int(d64[k].argmax()))
            rk.append(ctx.ref_kps[i])
            rd.append(ctx.ref_dirs[i])
    s = pose_scores(np.array(pred), pd, rk, rd, (64, 128))
    real_copy = {"pck_reference": round(100 * s["pck"], 2), "direction_reference": round(100 * s["direction"], 2),
                 "n": s["n"]}
    # identity of the real queries themselves
    own = {}
    for name, g in ctx.gallery.items():
        qp = g["q_pids"]
        own[name] = {"all_queries": round(100 * consistency_rank1(g["q_feats"][:, None], qp, g["g_feats"], g["g_pids"]),
                                          2)}
        sel = [list(map(str, g["q_paths"])).index(str(r.path)) for r in ctx.refs]
        own[name]["bench_references"] = round(100 * consistency_rank1(g["q_feats"][sel][:, None], qp[sel],
                                                                       g["g_feats"], g["g_pids"]), 2)
    # fidelity baselines at the output size
    size = output_size(pipe.vae)
    ref_o = [box(i, size) for i in ctx.ref_images]
    mean_o = ctx.mean_train if size == GEN_SIZE else box(ctx.mean_train_full.round().astype(np.uint8), size)
    gt_o = np.stack([[box(g, size) for g in row] for row in ctx.gt])
    gtc_o = np.stack([[box(g, size) for g in row] for row in ctx.gt_canonical])
    fid = {k: {"ssim": [], "psnr_db": []} for k in ("reference_image", "mean_train_image")}
    for i in range(gt_o.shape[0]):
        for j in range(gt_o.shape[1]):
            for key, im in (("reference_image", ref_o[i]), ("mean_train_image", mean_o)):
                for tag, truth in (("", gt_o), ("_canonical", gtc_o)):
                    fid[key].setdefault(f"ssim{tag}", []).append(ssim(im, truth[i, j]))
                    fid[key].setdefault(f"psnr{tag}_db", []).append(psnr(im, truth[i, j]))
    fid = {k: {m: round(float(np.mean(v)), 4 if m.startswith("ssim") else 2) for m, v in d.items()}
           for k, d in fid.items()}
    # the autoencoder reconstructs the own-background truth only
    fid["autoencoder_reconstruction"] = {"ssim": ceil["ssim"], "psnr_db": ceil["psnr_db"]}
    gt_scores["autoencoder_reconstruction_pose"] = ceil["pose"]
    gt_scores["canonical_identity_rank1_64x32"] = identity_block(ctx, gtc64)
    gt_scores["autoencoder_reconstruction_identity_rank1"] = ceil["identity_rank1"]
    gt_scores["canonical_autoencoder_reconstruction_identity_rank1"] = ceil["canonical_identity_rank1"]
    return {"estimator_on_real_test_images": real, "ground_truth_renders": gt_scores,
            "real_gallery_vs_reference_pose": real_copy, "real_queries_identity_rank1": own,
            "fidelity_baselines": {"size": list(size), **fid}}


def timing(pipe, ctx: Context, steps: int, reps: int = 3) -> dict:
    """Median seconds for 8 (IFR on) and 16 (IFR on + off) generations at 1 and 2 threads, interleaved."""
    import torch

    ref, poses = ctx.ref_images[0], ctx.target_poses
    pipe(ref, poses[:1], num_inference_steps=2)  # warm-up
    times = {f"{n}_gens_{t}_threads": [] for t in (1, 2) for n in (8, 16)}
    loads = []
    for _ in range(reps):
        for t in (1, 2):
            torch.set_num_threads(t)
            for n in (8, 16):
                t0 = time.perf_counter()
                pipe(ref, poses, num_inference_steps=steps, use_ifr=True)
                if n == 16:
                    pipe(ref, poses, num_inference_steps=steps, use_ifr=False)
                times[f"{n}_gens_{t}_threads"].append(time.perf_counter() - t0)
                loads.append(os.getloadavg()[0])
    torch.set_num_threads(1)
    out = {k: round(statistics.median(v), 2) for k, v in times.items()}
    out["load_1min_during"] = [round(min(loads), 2), round(max(loads), 2)]
    out["reps"] = reps
    logger.info("timing %s (%s)", out, load_line())
    return out


def grid(ctx: Context, on: np.ndarray, off: np.ndarray, path: Path, n: int = 4) -> None:
    """Per reference: [reference | 8 ground truth] / [ | 8 canonical ground truth] / [ | 8 IFR on] / [ | 8 IFR off];
    shown at 128×64 (the ground truth on the reference's own background, then on the canonical studio shot)."""
    w, h, head = 64, 128, 26
    m = on.shape[1]
    rows = 4
    canvas = PIL.Image.new("RGB", (w * (1 + m) + 6, head + (h * rows + 6) * n), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 1), "ref", fill="black")
    draw.text((w + 2, 1), "rows: ground truth / canonical ground truth / IFR on / IFR off", fill="black")
    draw.text((w + 2, 13), "targets: " + ", ".join(ctx.target_names), fill="black")
    for i in range(n):
        y0 = head + i * (h * rows + 6)
        canvas.paste(ctx.ref_images[i].resize((w, h), PIL.Image.BILINEAR), (0, y0))
        for j in range(m):
            canvas.paste(PIL.Image.fromarray(ctx.gt[i, j]), (w * (1 + j) + 6, y0))
            canvas.paste(PIL.Image.fromarray(ctx.gt_canonical[i, j]), (w * (1 + j) + 6, y0 + h))
            x = w * (1 + j) + 6
            canvas.paste(PIL.Image.fromarray(on[i, j]).resize((w, h), PIL.Image.BILINEAR), (x, y0 + 2 * h))
            canvas.paste(PIL.Image.fromarray(off[i, j]).resize((w, h), PIL.Image.BILINEAR), (x, y0 + 3 * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def pose_signal_ratio(pipe, ctx: Context, n_t: int = 5) -> dict:
    """RMS of the Pose Guider's embedding E_pose against the RMS of the denoising UNet's ``conv_in`` output
    on noisy latents z_t of the ground truth (what E_pose is added to), at a few timesteps."""
    import torch

    gt64 = np.stack([box(g) for g in ctx.gt[:, 0]])
    x = torch.from_numpy(gt64).permute(0, 3, 1, 2).float() / 127.5 - 1
    out = {}
    with torch.no_grad():
        z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        pose = pipe.encode_poses(ctx.target_poses[:1] * len(gt64))
        g = torch.Generator().manual_seed(0)
        for t in np.linspace(0, 999, n_t).round().astype(int):
            noise = torch.randn(z0.shape, generator=g)
            zt = pipe.scheduler.add_noise(z0, noise, torch.full((len(z0),), int(t)))
            h = pipe.denoising_unet.conv_in(zt)
            out[str(int(t))] = round(float(pose.pow(2).mean().sqrt() / h.pow(2).mean().sqrt()), 4)
    return out


def run_probes(pipe, ctx: Context, steps: int) -> dict:
    """Inference-time diagnosis of the pose adherence (IFR on): pose-embedding scale, reference attention
    off, DDIM steps; and the pose signal's size against the latent features it is added to."""
    res = {"pose_embedding_rms_over_conv_in_rms_by_t": pose_signal_ratio(pipe, ctx)}
    variants = {"pose_scale_0": dict(pose_scale=0.0), "pose_scale_1_5": dict(pose_scale=1.5),
                "pose_scale_2": dict(pose_scale=2.0), "pose_scale_4": dict(pose_scale=4.0),
                "no_reference_attention": dict(use_reference_attention=False),
                "ddim_steps_10": dict(steps=10), "ddim_steps_50": dict(steps=50)}
    for name, kw in variants.items():
        kw = dict(kw)
        st = kw.pop("steps", steps)
        t0 = time.time()
        ims = generate(pipe, ctx, True, st, **kw)
        sc = score_generations(ctx, ims)
        p = sc["pose"]
        res[name] = {"pck_target": p["pck_target"], "direction_target": p["direction_target"],
                     "pck_reference": p["pck_reference"], "direction_reference": p["direction_reference"],
                     "identity_rank1": sc["identity_rank1"], "fidelity": sc["fidelity"],
                     "seconds": round(time.time() - t0, 1)}
        logger.info("probe %s: %s (%s)", name, res[name], load_line())
    return res


def run_pose_transfer(model_dir: Path, ref_every: int, steps: int, backbones: list[str], do_timing: bool,
                      grid_path: Path | None, probes: bool = False, do_baselines: bool = True,
                      estimator_dir: Path | None = None, save=None) -> dict:
    from pose2id_demo.ipg.pipeline import Pose2IDPipeline
    from pose2id_demo.ipg.precompute import model_hash

    pipe = Pose2IDPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    t0 = time.time()
    ctx = build_context(ref_every, backbones, estimator_dir)
    logger.info("context: %d references × %d targets (%.0f s, %s)", len(ctx.refs), len(ctx.target_poses),
                time.time() - t0, load_line())
    res = {"model": model_dir.name, "model_sha": model_hash(model_dir), "ddim_steps": steps, "guidance_scale": 3.5,
           "seed": 42, "subset": f"every {ref_every}th standard test query as reference ({len(ctx.refs)}), "
                                 f"× the 8 representative poses' source training images as targets",
           "n_references": len(ctx.refs), "targets": ctx.target_names,
           "estimator": "assets/models/keypoint-net (direction: its direction head)"}
    if do_baselines:
        res["baselines"] = baselines(ctx, pipe)
        logger.info("baselines done (%s)", load_line())
    gens = {}
    for use_ifr in (True, False):
        t1 = time.time()
        gens[use_ifr] = generate(pipe, ctx, use_ifr, steps)
        key = "ifr_on" if use_ifr else "ifr_off"
        res[key] = score_generations(ctx, gens[use_ifr])
        res[key]["generation_seconds"] = round(time.time() - t1, 1)
        logger.info("%s: %s (%s)", key, json.dumps({k: v for k, v in res[key].items() if k != "pose"}), load_line())
    if save is not None:
        save(res)
    if probes:
        res["probes"] = run_probes(pipe, ctx, steps)
        if save is not None:
            save(res)
    if do_timing:
        res["timing_seconds"] = timing(pipe, ctx, steps)
    res["load_at_end"] = load_line()
    if grid_path is not None:
        grid(ctx, gens[True], gens[False], grid_path)
    return res


def eq9_effect(f: dict, feats_on: np.ndarray, etas: tuple = (0.25, 0.5, 1.0, 2.0)) -> tuple:
    """Eq. 9 on query and gallery with all generations at each η, then at the best η with the first M = 0..8
    (the ablation's +IPG row and M curve): ``(baseline, {η: row}, best η, {M: row})``, rows
    ``{"mAP", "Rank-1", "ID2_gallery"}`` (%, ID² paper variant over the gallery's identities)."""
    nq = len(f["q_pids"])
    fs = FeatureSet.from_arrays({**f, "q_gen": feats_on[:nq], "g_gen": feats_on[nq:]})
    s = ablation.Settings(ipg_on="both", nfc_on="none", id2_over="gallery")

    def row(r: dict) -> dict:
        p = ablation.percent_row(r)
        return {"mAP": p["mAP"], "Rank-1": p["Rank-1"], "ID2_gallery": p["ID²"]}

    base = row(ablation.metric_row(fs, s, "baseline"))
    by_eta = {str(e): row(ablation.metric_row(fs, replace(s, eta=e), "+IPG")) for e in etas}
    best = max(by_eta, key=lambda e: by_eta[e]["mAP"])
    mc = ablation.m_curve(fs, replace(s, eta=float(best)))["both"]
    trend = {str(m): {"mAP": mc["mAP"][m], "Rank-1": mc["Rank-1"][m], "ID2_gallery": mc["ID²"][m]}
             for m in range(len(mc["mAP"]))}
    return base, by_eta, best, trend


def run_eq9(model_dir: Path, steps: int, backbone: str = "synthped-reid",
            guidance_sweep: tuple[float, ...] = (1.0, 2.0, 3.5, 5.0, 7.5)) -> dict:
    """The older section: identity consistency of all queries' generations (IFR on/off), against the CFG
    scale (every 4th query), and eq. 9 on query + gallery with their 8 representative-pose generations
    (mAP / Rank-1 / gallery ID² against η and M). Uses (and fills) :mod:`pose2id_demo.ipg.precompute`'s cache."""
    from pose2id_demo.data.synthped import ensure_benchmark
    from pose2id_demo.ipg.pipeline import Pose2IDPipeline
    from pose2id_demo.ipg.precompute import gen_features, generate_all, generation_cache_path, model_hash
    from pose2id_demo.poses.representative import load_representative_poses
    from pose2id_demo.reid import get_backbone
    from pose2id_demo.reid.features import dataset_features

    pipe = Pose2IDPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    ensure_benchmark("standard")
    f = dataset_features(backbone, "standard")
    q_paths, g_paths = [str(p) for p in f["q_paths"]], [str(p) for p in f["g_paths"]]
    named = load_representative_poses()
    names, poses = [n for n, _ in named], [p for _, p in named]
    mh = model_hash(Path(model_dir))
    kw = dict(steps=steps, guidance=3.5, seed=42)
    t0 = time.time()
    gens_on = generate_all(pipe, q_paths + g_paths, poses, use_ifr=True,
                           cache=generation_cache_path("standard", mh, use_ifr=True, **kw), **kw)
    gens_off_q = generate_all(pipe, q_paths, poses, use_ifr=False,
                              cache=generation_cache_path("standard", mh, use_ifr=False, **kw), **kw)
    gen_s = time.time() - t0
    bb = get_backbone(backbone)
    nq = len(q_paths)
    feats_on = gen_features(bb, gens_on)
    feats_off_q = gen_features(bb, gens_off_q)
    q, g = f["q_feats"], f["g_feats"]
    qp, gp = f["q_pids"], f["g_pids"]
    real_r1 = consistency_rank1(q[:, None, :], qp, g, gp)
    r1_on = consistency_rank1(feats_on[:nq], qp, g, gp)
    r1_off = consistency_rank1(feats_off_q, qp, g, gp)
    sweep = {}
    sub = list(range(0, nq, 4))
    for gs in guidance_sweep:
        kws = dict(kw, guidance=gs)
        gen = generate_all(pipe, [q_paths[i] for i in sub], poses, use_ifr=True,
                           cache=generation_cache_path("standard", mh, use_ifr=True, **kws), **kws)
        sweep[f"{gs:g}"] = round(100 * consistency_rank1(gen_features(bb, gen), qp[sub], g, gp), 2)

    base, etas, best_eta, trend = eq9_effect(f, feats_on)
    return {
        "model": model_dir.name, "model_sha": mh, "backbone": backbone, "ddim_steps": steps, "guidance_scale": 3.5,
        "seed": 42, "poses": names,
        "identity_consistency_rank1": {"ifr_on": round(100 * r1_on, 2), "ifr_off": round(100 * r1_off, 2),
                                       "real_queries": round(100 * real_r1, 2),
                                       "chance": round(100 / len(np.unique(gp[gp > 0])), 2),
                                       "n_generations": int(feats_off_q.shape[0] * feats_off_q.shape[1]),
                                       "ifr_on_by_guidance_every_4th_query": sweep},
        "eq9_baseline": base, "eq9_eta_M8": etas, "eq9_best_eta": float(best_eta), "eq9_trend_M": trend,
        "generation_seconds": round(gen_s, 1),
    }


def step_cost(reps: int = 3, batch: int = 16) -> dict:
    """Median seconds of one training step (forward + backward + AdamW, random data, batch 16) of the tiny
    IPG at 64×32 output (latent 16×8; skeleton 64×32 or 128×64) and at 128×64 output (latent 32×16), at 1
    and 2 torch threads, interleaved; the first repetition is a warm-up and not counted."""
    import torch

    from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL
    from pose2id_demo.ipg.checkpoint import TRAINED
    from pose2id_demo.ipg.configs import build_components
    from pose2id_demo.ipg.pipeline import make_scheduler
    from pose2id_demo.ipg.train import training_loss

    def setup(hw, pose_widths):
        vae = TinyAutoencoderKL(sample_size=hw)
        vae.register_to_config(scaling_factor=0.765)
        lat = (hw[0] // 4, hw[1] // 4)
        c = build_components("tiny", 256, unet_overrides={"sample_size": lat}, vae=vae, pose_widths=pose_widths)
        m = {n: c[n].train() for n in TRAINED}
        m["vae"] = vae.requires_grad_(False)
        opt = torch.optim.AdamW([p for n in TRAINED for p in m[n].parameters()], lr=1e-4)
        k = c["pose_guider"].downsample_factor
        return m, opt, hw, (lat[0] * k, lat[1] * k)

    cfgs = {"64x32 (latent 16x8), pose 128x64": setup((64, 32), (8, 16, 32, 64)),
            "64x32 (latent 16x8), pose 64x32": setup((64, 32), None),
            "128x64 (latent 32x16), pose 128x64": setup((128, 64), None)}
    sched = make_scheduler()
    times = {(n, t): [] for n in cfgs for t in (1, 2)}
    loads = []
    for rep in range(reps):
        for t in (1, 2):
            torch.set_num_threads(t)
            for n, (m, opt, hw, ps) in cfgs.items():
                g = torch.Generator().manual_seed(rep)
                ref, trg = torch.rand(batch, 3, *hw) * 2 - 1, torch.rand(batch, 3, *hw) * 2 - 1
                skel, feats = torch.rand(batch, 3, *ps), torch.randn(batch, 256)
                t0 = time.perf_counter()
                loss = training_loss(m, sched, ref, trg, skel, feats, g, 0.05, 0.0, 0.765)
                opt.zero_grad()
                loss.backward()
                opt.step()
                times[(n, t)].append(time.perf_counter() - t0)
                loads.append(os.getloadavg()[0])
    torch.set_num_threads(1)
    out = {f"{n} | {t} thread(s)": round(statistics.median(v[1:]), 2) for (n, t), v in times.items()}
    out["load_1min"] = [min(loads), max(loads)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="pipeline folder (default assets/models/ipg-tiny)")
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps")
    ap.add_argument("--ref-every", type=int, default=8, help="every N-th test query is a reference")
    ap.add_argument("--backbones", nargs="+", default=["synthped-reid", "imagenet-mobilenetv2"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-baselines", action="store_true", help="skip the ceilings and trivial baselines")
    ap.add_argument("--probes", action="store_true", help="also the inference-time diagnosis probes")
    ap.add_argument("--estimator", type=Path, default=None,
                    help="keypoint-net folder (default assets/models/keypoint-net)")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "ipg_quality.json")
    ap.add_argument("--key", default="pose_transfer", help="key of the json the results go under")
    ap.add_argument("--grid", type=Path, default=REPO / "docs" / "ipg_grid.png")
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument("--eq9", action="store_true", help="also the older all-query identity / eq. 9 section")
    ap.add_argument("--autoencoder", type=Path, nargs="+", default=None,
                    help="only the ceilings of these autoencoder folders (ground truth through each; "
                         "key autoencoder_probes)")
    ap.add_argument("--step-cost", action="store_true",
                    help="only the training-step cost at 64x32 vs 128x64 output, 1 vs 2 threads (key step_cost)")
    ap.add_argument("--timing-only", action="store_true",
                    help="only the 8 / 16 generation timing, into --key's timing_seconds (the rest of the key kept)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    import torch

    from pose2id_demo.paths import MODELS_DIR

    torch.set_num_threads(args.threads)
    logger.info("start (%s)", load_line())
    model_dir = args.model or MODELS_DIR / "ipg-tiny"
    out = json.loads(args.json.read_text()) if args.json.exists() else {}
    if args.step_cost:
        out["step_cost_seconds"] = step_cost()
        print(json.dumps(out["step_cost_seconds"], indent=1), load_line())
        args.json.write_text(json.dumps(out, indent=1))
        return 0

    if args.timing_only:
        from pose2id_demo.ipg.pipeline import Pose2IDPipeline

        pipe = Pose2IDPipeline.from_pretrained(model_dir)
        pipe.set_progress_bar_config(disable=True)
        ctx = build_context(args.ref_every, args.backbones, args.estimator)
        out.setdefault(args.key, {})["timing_seconds"] = timing(pipe, ctx, args.steps)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
        print(json.dumps(out[args.key]["timing_seconds"]), load_line())
        return 0

    if args.autoencoder:
        from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL

        ctx = build_context(args.ref_every, args.backbones, args.estimator)
        probes = out.setdefault("autoencoder_probes", {})
        for d in args.autoencoder:
            vae = TinyAutoencoderKL.from_pretrained(d).eval()
            info = d / "train_info.json"
            ceil = autoencoder_ceiling(ctx, vae)
            ceil["pose"].pop("per_target_direction")
            probes[d.name] = {**ceil, "n_references": len(ctx.refs),
                              "training": json.loads(info.read_text()) if info.exists() else None}
            logger.info("%s: %s (%s)", d.name, json.dumps(probes[d.name]), load_line())
        args.json.write_text(json.dumps(out, indent=1))
        return 0

    def save(partial: dict) -> None:  # after each section, so a long run's numbers survive an interruption
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**out, args.key: partial}, indent=1))

    out[args.key] = run_pose_transfer(model_dir, args.ref_every, args.steps, args.backbones, not args.no_timing,
                                      None if args.no_grid else args.grid, args.probes, not args.no_baselines,
                                      args.estimator, save)
    if args.eq9:
        out.update(run_eq9(model_dir, args.steps))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(json.dumps(out[args.key], indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
