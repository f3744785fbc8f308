"""Representative poses (paper §3.2.3, eqs. 7–8) and body-direction classification.

For every identity of a training split with L2-normalised ReID features ``f_1 … f_N``:

    f_mean = (1/N) Σ_i f_i                       (eq. 7)
    pose   = argmin_i d(f_mean, f_i)             (eq. 8, d = Euclidean)

— the sample nearest its identity centre, whose pose is the identity's *representative pose*. The paper
then picks "8 representative poses with different directions". We classify each representative's body
direction from its keypoints (:func:`classify_direction`, so it works on real data with estimated
poses), keep those that pass PoseValid (supplementary eq. 32), and per direction take the most central
one (smallest ``d(f_mean, f_i)``, preferring unambiguous views). Each chosen pose is then placed like
the median training pose (:func:`standard_placement`: a shift and uniform scale only), so all 8 targets
show a person of the same size at the same spot. If no identity's representative faces some direction, that slot
falls back to eq. 8 restricted to the samples facing it (the sample of any identity that is nearest its
own identity centre among those facing that direction).

Directions are the way the person faces *on screen*: ``front`` (towards the camera), ``right`` (towards
the image's right edge), ``back``, … in 45° steps. The shipped set lives in ``assets/poses/``
(``<direction>.json`` + ``<direction>.png``, ``index.json``, ``README.md``); recompute it with::

    python -m pose2id_demo.poses.representative --data synthped --backbone synthped-reid --out assets/poses
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pose2id_demo.data import load_market
from pose2id_demo.data.synthped import ensure_benchmark
from pose2id_demo.paths import POSES_DIR
from pose2id_demo.reid import get_backbone

from .draw import draw_pose
from .estimator import NoPersonFound, estimate_pose
from .keypoints import Pose, load_pose_json, save_pose_json
from .posevalid import body_height, pose_valid

logger = logging.getLogger(__name__)

# In order of yaw: 0° = facing the camera, +45° per step turning towards the image's right.
DIRECTIONS = ("front", "front-right", "right", "back-right", "back", "back-left", "left", "front-left")
# Frontal body width (mean of shoulder and hip widths) in units of the neck–hip height: a human
# prior (biacromial ≈ 0.75 h, hip joints ≈ 0.5 h); SynthPed's frontal poses measure 0.64 ± 0.06.
FRONTAL_WIDTH = 0.62
PNG_SIZE = (256, 512)  # (W, H) of the shipped skeleton images: IPG's 512 × 256 generation resolution

NOSE, NECK, R_SHO, L_SHO, R_HIP, L_HIP, R_EAR, L_EAR = 0, 1, 2, 5, 8, 11, 16, 17


# ----------------------------------------------------------------------------------------------------
# Body direction from keypoints
# ----------------------------------------------------------------------------------------------------

def body_yaw(pose: Pose, frontal_width: float = FRONTAL_WIDTH) -> float | None:
    """Estimated body yaw in degrees (0 = facing the camera, +90 = facing image-right, ±180 = back).

    Under a (near-)orthographic view, the signed left-minus-right width of shoulders and hips is
    ``W0 · cos(yaw)`` (positive when the person's left side is on the image's right, i.e. facing the
    camera). The sign of ``sin(yaw)`` comes from the nose's offset from the neck when the nose is
    visible (it points where the face points), else from which single ear is visible (the far ear is
    hidden). Returns None when neck, hips or both shoulders/hips pairs are missing.
    """
    kp, vis = pose.keypoints, pose.visible
    width = body_width(pose)
    if width is None:
        return None
    h = body_height(pose)
    c = float(np.clip(width / frontal_width, -1.0, 1.0))
    side = 0.0
    if vis[NOSE] and abs(kp[NOSE, 0] - kp[NECK, 0]) / h > 0.04:
        side = float(np.sign(kp[NOSE, 0] - kp[NECK, 0]))
    elif vis[R_EAR] != vis[L_EAR]:
        side = 1.0 if vis[R_EAR] else -1.0
    s = side * math.sqrt(max(0.0, 1.0 - c * c))
    return math.degrees(math.atan2(s, c))


def body_width(pose: Pose) -> float | None:
    """Signed mean of the shoulder and hip widths (left minus right x) in units of the neck–hip height."""
    kp, vis = pose.keypoints, pose.visible
    h = body_height(pose)
    widths = [kp[b, 0] - kp[a, 0] for a, b in ((R_SHO, L_SHO), (R_HIP, L_HIP)) if vis[a] and vis[b]]
    if h <= 0 or not widths:
        return None
    return float(np.mean(widths) / h)


def frontal_width_from(poses: Sequence[Pose | None], quantile: float = 0.85) -> float:
    """Calibrate :data:`FRONTAL_WIDTH` on a data set: the ``quantile`` of ``|body_width|``, clipped to [0.45, 0.8].

    With yaws spread over all directions, the widest ~15 % of bodies are the (near-)frontal and back
    views, so this quantile is close to the frontal width (SynthPed: 0.64; people in real photos are
    narrower at the hips than SynthPed's figures).
    """
    ws = [abs(w) for p in poses if p is not None and (w := body_width(p)) is not None]
    if not ws:
        return FRONTAL_WIDTH
    return float(np.clip(np.quantile(ws, quantile), 0.45, 0.8))


def classify_direction(pose: Pose, frontal_width: float = FRONTAL_WIDTH) -> str | None:
    """One of :data:`DIRECTIONS` (45° sectors of :func:`body_yaw`), or None if the yaw is unknown."""
    yaw = body_yaw(pose, frontal_width)
    if yaw is None:
        return None
    return DIRECTIONS[round(yaw / 45.0) % 8]


# ----------------------------------------------------------------------------------------------------
# Eqs. 7–8
# ----------------------------------------------------------------------------------------------------

def l2_normalize(feats: np.ndarray) -> np.ndarray:
    f = np.asarray(feats, dtype=np.float32)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def centre_distances(feats: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """``d(f_mean(pid_i), f_i)`` for every sample (eq. 7 means of L2-normalised features), shape (N,)."""
    f = l2_normalize(feats)
    pids = np.asarray(pids)
    uniq, inv = np.unique(pids, return_inverse=True)
    sums = np.zeros((len(uniq), f.shape[1]), np.float64)
    np.add.at(sums, inv, f)
    means = sums / np.bincount(inv, minlength=len(uniq))[:, None]
    return np.linalg.norm(f - means[inv], axis=1)


def representative_indices(feats: np.ndarray, pids: np.ndarray) -> dict[int, int]:
    """Eq. 8 for every identity: ``{pid: index of the sample nearest the identity's mean feature}``.

    Ties go to the lower index. Vectorised: one sort by (pid, distance, index).
    """
    pids = np.asarray(pids)
    if len(pids) == 0:
        return {}
    d = centre_distances(feats, pids)
    order = np.lexsort((np.arange(len(pids)), d, pids))
    first = np.ones(len(order), bool)
    first[1:] = pids[order][1:] != pids[order][:-1]
    return {int(pids[i]): int(i) for i in order[first]}


@dataclass
class Selected:
    """One chosen representative pose and where it came from."""

    direction: str
    index: int
    pid: int
    image: str
    distance: float      # d(f_mean, f_i) to its identity's centre (eq. 8)
    yaw: float
    fallback: bool       # True: chosen by eq. 8 restricted to this direction (no identity representative faced it)


def select_representative_poses(feats: np.ndarray, pids: Sequence[int], poses: Sequence[Pose | None],
                                images: Sequence[str], frontal_width: float = FRONTAL_WIDTH,
                                clear_view_deg: float = 15.0) -> list[tuple[Selected, Pose]]:
    """Pick up to 8 representative poses of different directions (§3.2.3), in :data:`DIRECTIONS` order.

    ``poses[i]`` is the pose of sample ``i`` (None if unknown). Only poses passing PoseValid with a
    known direction are eligible. See the module docstring for the rule; within a direction, candidates
    whose yaw is within ``clear_view_deg`` of the sector centre are preferred (so the 8 views are
    clearly distinct), then the smallest distance to the identity centre wins.
    """
    pids = np.asarray(pids)
    n = len(pids)
    if not (len(feats) == len(poses) == len(images) == n):
        raise ValueError("feats, pids, poses and images must have the same length")
    dist = centre_distances(feats, pids)
    direction: list[str | None] = [None] * n
    yaw = np.full(n, np.nan)
    for i, p in enumerate(poses):
        if p is None or not pose_valid(p)[0]:
            continue
        y = body_yaw(p, frontal_width)
        if y is not None:
            yaw[i] = y
            direction[i] = DIRECTIONS[round(y / 45.0) % 8]
    reps = representative_indices(feats, pids)
    chosen: list[tuple[Selected, Pose]] = []
    for k, dname in enumerate(DIRECTIONS):
        cand = [i for i in reps.values() if direction[i] == dname]
        fallback = False
        if not cand:
            cand = [i for i in range(n) if direction[i] == dname]
            fallback = True
        if not cand:
            logger.warning("no valid pose faces %s; that direction is left out", dname)
            continue
        # prefer unambiguous views: yaw within `clear_view_deg` of the sector's centre, when there are any
        off = {i: abs((yaw[i] - 45.0 * k + 180.0) % 360.0 - 180.0) for i in cand}
        clear = [i for i in cand if off[i] <= clear_view_deg]
        best = min(clear or cand, key=lambda i: (dist[i], i))
        chosen.append((Selected(dname, int(best), int(pids[best]), str(images[best]), float(dist[best]),
                                float(yaw[best]), fallback), poses[best]))
    return chosen


def _extent(pose: Pose) -> tuple[float, float, float] | None:
    """(top y, bottom y, neck x) of the visible keypoints, or None without a neck."""
    kp, vis = pose.keypoints, pose.visible
    if not vis[NECK] or vis.sum() < 2:
        return None
    ys = kp[vis, 1]
    return float(ys.min()), float(ys.max()), float(kp[NECK, 0])


def standard_placement(poses: Sequence[Pose | None]) -> tuple[float, float, float, int, int] | None:
    """Median (top y, bottom y, neck x, width, height) over the given poses (in the first pose's size)."""
    ext = [(e, p) for p in poses if p is not None and (e := _extent(p)) is not None]
    if not ext:
        return None
    w, h = ext[0][1].width, ext[0][1].height
    arr = np.array([[t / p.height * h, b / p.height * h, x / p.width * w] for (t, b, x), p in ext])
    top, bottom, cx = np.median(arr, axis=0)
    return float(top), float(bottom), float(cx), w, h


def place_pose(pose: Pose, placement: tuple[float, float, float, int, int]) -> Pose:
    """Shift and uniformly scale ``pose`` so its top/bottom/neck-x match ``placement`` (a similarity)."""
    top, bottom, cx, w, h = placement
    src = pose.resized(w, h)
    ext = _extent(src)
    if ext is None or ext[1] - ext[0] <= 0:
        return src
    scale = (bottom - top) / (ext[1] - ext[0])
    kp = src.keypoints.copy()
    vis = src.visible
    kp[vis, 0] = (kp[vis, 0] - ext[2]) * scale + cx
    kp[vis, 1] = (kp[vis, 1] - ext[0]) * scale + top
    return Pose(kp, w, h)


# ----------------------------------------------------------------------------------------------------
# Shipped assets
# ----------------------------------------------------------------------------------------------------

def load_representative_poses(directory: str | Path | None = None) -> list[tuple[str, Pose]]:
    """The shipped representative poses as ``[(direction, Pose), ...]`` in :data:`DIRECTIONS` order.

    Reads ``<direction>.json`` from ``directory`` (default ``assets/poses``); the order is
    ``index.json``'s when present. Raises ``FileNotFoundError`` if there are none.
    """
    root = Path(directory) if directory is not None else POSES_DIR
    names: list[str] = list(DIRECTIONS)
    index = root / "index.json"
    if index.exists():
        names = [p["direction"] for p in json.loads(index.read_text())["poses"]]
    out = [(name, load_pose_json(root / f"{name}.json")) for name in names if (root / f"{name}.json").exists()]
    if not out:
        raise FileNotFoundError(f"no representative poses in {root}; run python -m pose2id_demo.poses.representative")
    return out


def _load_pose_for(path: Path, estimate: bool) -> Pose | None:
    js = path.with_suffix(".json")
    if js.exists():
        try:
            return load_pose_json(js)
        except ValueError as exc:
            logger.warning("bad pose json %s: %s", js, exc)
            return None
    if not estimate:
        return None
    try:
        with Image.open(path) as im:
            return estimate_pose(im)
    except (NoPersonFound, OSError):
        return None


def write_assets(chosen: list[tuple[Selected, Pose]], out: Path, meta: dict) -> None:
    """Write ``<direction>.json``/``.png``, ``index.json``, ``overview.png`` and ``README.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for sel, pose in chosen:
        save_pose_json(pose, out / f"{sel.direction}.json")
        img = draw_pose(pose, *PNG_SIZE)
        Image.fromarray(img).save(out / f"{sel.direction}.png", optimize=True)
        tiles.append(img)
    if tiles:
        gap = np.full((PNG_SIZE[1], 8, 3), 40, np.uint8)
        parts = [part for t in tiles for part in (t, gap)][:-1]
        strip = np.concatenate(parts, axis=1)
        Image.fromarray(strip).resize((strip.shape[1] // 2, strip.shape[0] // 2), Image.Resampling.LANCZOS).save(
            out / "overview.png", optimize=True)
    index = {**meta, "poses": [asdict(s) for s, _ in chosen]}
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    rows = "\n".join(f"| {s.direction} | {s.pid} | `{s.image}` | {s.distance:.4f} | {s.yaw:+.0f} |"
                     f"{' fallback' if s.fallback else ''}" for s, _ in chosen)
    note = meta.get("note", "")
    (out / "README.md").write_text(f"""# Representative poses

The 8 target poses IPG generates every person in (paper §3.2.3, eqs. 7–8), one per body direction.
Made by `pose2id_demo/poses/representative.py` with:

```
{meta["command"]}
```

Data: {meta["data_desc"]} ({meta["num_images"]} training images, {meta["num_ids"]} identities).
ReID backbone for the features: `{meta["backbone"]}`.{(" " + note) if note else ""}
Direction classifier's frontal body width: {meta.get("frontal_width", FRONTAL_WIDTH)} neck–hip heights.

For each identity the image whose L2-normalised feature is nearest the identity's mean feature gives its
representative pose (eq. 8); its body direction is classified from its keypoints; poses failing
PoseValid (supplementary eq. 32) are dropped; per direction the most central representative (smallest
distance to its identity centre) among those within 15° of the direction's centre (if any) is kept; the
pose is then moved and scaled (not otherwise changed) to the training set's median body placement.
"fallback" marks a direction that no identity's representative faced (eq. 8 restricted to that
direction instead).

Files: `<direction>.json` (OpenPose-18 keypoints on the 64 × 128 source image), `<direction>.png`
(skeleton at 256 × 512, W × H), `overview.png` (all 8), `index.json` (the table below, machine-readable).

| direction | pid | source image | d(f_mean, f) | yaw (deg) |
| --- | --- | --- | --- | --- |
{rows}
""")


def _resolve_data(data: str) -> tuple[Path, str]:
    if data.startswith("synthped"):
        task = data.split(":", 1)[1] if ":" in data else "standard"
        return Path(ensure_benchmark(task, progress=False)), f"the bundled SynthPed benchmark (`{task}` task, seed 0)"
    return Path(data), f"Market-1501-format folder `{data}`"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pose2id_demo.poses.representative", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True,
                    help="Market-1501-format root, or 'synthped[:task]' for the bundled benchmark")
    ap.add_argument("--backbone", required=True, help="ReID backbone name (see pose2id_demo.reid.list_backbones())")
    ap.add_argument("--out", default=None, help="output folder (default: assets/poses)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--estimate-missing", action="store_true",
                    help="estimate poses with MediaPipe for images without a keypoint json")
    ap.add_argument("--frontal-width", default="auto",
                    help="frontal body width in neck-hip heights for the direction classifier, or 'auto' "
                         "(calibrated on the data's poses, see frontal_width_from)")
    ap.add_argument("--note", default="", help="a sentence added to the README")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root, data_desc = _resolve_data(args.data)
    ds = load_market(root)
    records = ds.train
    if not records:
        print(f"no training images under {root}/bounding_box_train", file=sys.stderr)
        return 2
    print(f"{len(records)} training images, {len({r.pid for r in records})} identities from {root}")
    backbone = get_backbone(args.backbone, device=args.device)
    images = []
    for r in records:
        with Image.open(r.path) as im:
            images.append(im.convert("RGB"))
    feats = backbone.extract(images, batch_size=args.batch_size, progress=True)
    poses = [_load_pose_for(Path(r.path), args.estimate_missing) for r in records]
    print(f"{sum(p is not None for p in poses)} poses available")
    valid_poses = [p for p in poses if p is not None and pose_valid(p)[0]]
    fw = frontal_width_from(valid_poses) if args.frontal_width == "auto" else float(args.frontal_width)
    print(f"frontal width for the direction classifier: {fw:.3f} neck-hip heights")
    chosen = select_representative_poses(feats, [r.pid for r in records], poses,
                                         [Path(r.path).name for r in records], frontal_width=fw)
    placement = standard_placement(valid_poses)
    if placement is not None:
        chosen = [(sel, place_pose(p, placement)) for sel, p in chosen]
    out = Path(args.out) if args.out else POSES_DIR
    argv_list = list(argv) if argv is not None else sys.argv[1:]
    command = "python -m pose2id_demo.poses.representative " + " ".join(shlex.quote(a) for a in argv_list)
    meta = {"command": command, "backbone": args.backbone, "data": args.data, "data_desc": data_desc,
            "num_images": len(records), "num_ids": len({r.pid for r in records}), "note": args.note,
            "frontal_width": round(fw, 4), "placement": placement and [round(v, 2) for v in placement[:3]]}
    write_assets(chosen, out, meta)
    for sel, _ in chosen:
        print(f"{sel.direction:12s} pid {sel.pid:5d}  {sel.image}  d={sel.distance:.4f}  yaw={sel.yaw:+.0f}"
              f"{'  (fallback)' if sel.fallback else ''}")
    print(f"wrote {len(chosen)} poses to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
