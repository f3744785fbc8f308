"""The walking body: a small 3-D skeleton rotated about the vertical axis and projected
orthographically, painted far-to-near (painter's algorithm on rotated depth), and its OpenPose-18
keypoints."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pose2id_demo.data.synthped.cameras import Shot
from pose2id_demo.data.synthped.canvas import Canvas
from pose2id_demo.data.synthped.identities import Identity


def _rot(v: np.ndarray, theta: float) -> np.ndarray:
    """Rotate body-frame points (x right-negative, y up, z forward) about y; returns (u, y, depth)."""
    c, s = math.cos(theta), math.sin(theta)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([x * c + z * s, y, -x * s + z * c], -1)


def _skeleton(ident: Identity, phase: float, amp: float) -> dict[str, np.ndarray]:
    """3-D joints in body units (x: person's left is +x, y: up from the soles, z: forward)."""
    sw, hw, leg = ident.shoulder, ident.hip, ident.leg
    thigh, shin = leg * 0.5, leg * 0.46
    j: dict[str, np.ndarray] = {}
    swing = amp * math.sin(phase)
    legs = {}
    for side, sgn in (("r", 1.0), ("l", -1.0)):
        a = sgn * swing                                     # hip flexion (forward positive)
        k = 0.12 + 0.5 * max(0.0, math.sin(phase * sgn + 1.2)) * amp / 0.4  # knee flexion
        knee = np.array([0, -thigh * math.cos(a), thigh * math.sin(a)])
        ankle = knee + np.array([0, -shin * math.cos(a - k), shin * math.sin(a - k)])
        legs[side] = (knee, ankle)
    drop = max(-legs["r"][1][1], -legs["l"][1][1])          # lowest ankle sits on the ground
    pelvis_y = drop + 0.035
    for side, xs in (("r", -hw), ("l", hw)):
        hip = np.array([xs, pelvis_y, 0.0])
        knee, ankle = legs[side]
        j[side + "_hip"] = hip
        j[side + "_knee"] = hip + knee
        j[side + "_ankle"] = hip + ankle
        j[side + "_toe"] = hip + ankle + np.array([0, -0.02, 0.06])
    neck_y = pelvis_y + (1.0 - ident.leg) * 0.62
    j["neck"] = np.array([0, neck_y, 0.0])
    j["head"] = np.array([0, neck_y + ident.head * 1.35, 0.01])
    upper, fore = 0.15 * (0.9 + 0.2 * ident.leg), 0.14 * (0.9 + 0.2 * ident.leg)
    for side, xs, sgn in (("r", -sw, -1.0), ("l", sw, 1.0)):
        sh = np.array([xs, neck_y - 0.02, 0.0])
        a = sgn * swing * 0.8                               # arms swing against the same-side leg
        e = 0.15 + 0.35 * max(0.0, a)
        elbow = sh + np.array([xs * 0.12, -upper * math.cos(a), upper * math.sin(a)])
        wrist = elbow + np.array([xs * 0.05, -fore * math.cos(a + e), fore * math.sin(a + e)])
        j[side + "_shoulder"], j[side + "_elbow"], j[side + "_wrist"] = sh, elbow, wrist
    return j


def _top_field(ident: Identity, theta: float, y_sh: float, y_hip: float, cx: float, hw: float, s: float):
    """Colour field of the top's pattern as seen from direction ``theta``."""
    c, sn = math.cos(theta), math.sin(theta)
    top, top2 = ident.top, ident.top2
    pat = ident.top_pattern
    if pat == "stripes":
        period = max(ident.stripe_period * s, 2.5)

        def f(xs, ys):
            band = (np.floor((ys - y_sh) / period) % 2 == 0)
            return np.where(band[..., None], top, top2) * np.ones_like(xs)[..., None]
        return f
    if pat == "two_tone_h":
        cut = y_sh + 0.45 * (y_hip - y_sh)
        return lambda xs, ys: np.where((ys < cut)[..., None], top2, top) * np.ones_like(xs)[..., None]
    if pat == "two_tone_v":
        # person's right half = top, left half = top2; which image side that is depends on the view
        if abs(c) < 0.35:
            col = top if sn > 0 else top2
            return lambda xs, ys: np.broadcast_to(col, ys.shape[:1] + xs.shape[1:] + (3,))
        right_on_left = c > 0

        def f(xs, ys):
            left = (xs < cx)
            pick = left if right_on_left else ~left
            return np.where(pick[..., None], top, top2) * np.ones_like(ys)[..., None]
        return f
    if pat == "open_jacket" and c > 0.3:
        half = max(1.0, 0.28 * hw * c)
        return lambda xs, ys: np.where((np.abs(xs - cx) < half)[..., None] & (ys > y_sh + 1)[..., None],
                                       top2, top) * np.ones_like(ys)[..., None]
    if (pat == "logo" and c > 0.3) or (pat == "back_print" and c < -0.3):
        lc = cx + sn * hw * 0.15 * (1 if c > 0 else -1)
        ly = y_sh + 0.32 * (y_hip - y_sh)
        size = max(2.0, 0.22 * hw * 2) if pat == "logo" else max(2.5, 0.3 * hw * 2)
        sx = size * abs(c)
        shape = ident.logo_shape

        def f(xs, ys):
            dx, dy = (xs - lc) / max(sx, 0.8), (ys - ly) / size
            if shape == "circle":
                m = dx * dx + dy * dy < 1
            elif shape == "square":
                m = (np.abs(dx) < 0.9) & (np.abs(dy) < 0.9)
            elif shape == "diamond":
                m = np.abs(dx) + np.abs(dy) < 1.1
            else:
                m = (np.abs(dx) < 1.2) & (np.abs(dy) < 0.45)
            return np.where(m[..., None], top2, top)
        return f
    return top


@dataclass
class _View:
    """The skeleton of one shot projected into the crop: pixel position and rotated depth of every joint,
    plus the torso's outline numbers that several body parts and the keypoints share."""

    theta: float
    c: float                 # cos(theta): > 0 when the person faces the camera
    sn: float                # sin(theta)
    s: float                 # pixels per body unit (total height = 1)
    joints: dict[str, np.ndarray]
    proj: dict[str, tuple[float, float, float]]
    sh_hw: float = 0.0       # torso half-width at the shoulders / hips as seen from theta (body units)
    hp_hw: float = 0.0
    nx: float = 0.0          # neck (pixels)
    ny: float = 0.0
    hx: float = 0.0          # hip centre (pixels)
    hy: float = 0.0
    y_sh: float = 0.0        # shoulder line (pixels)

    def uv(self, n: str) -> tuple[float, float]:
        return self.proj[n][0], self.proj[n][1]

    def dep(self, *ns: str) -> float:
        return float(np.mean([self.proj[n][2] for n in ns]))


def _project(ident: Identity, shot: Shot) -> _View:
    """Pose the skeleton (gait phase, amplitude), rotate it to the view direction and project it."""
    theta = shot.theta
    c, sn = math.cos(theta), math.sin(theta)
    s = shot.height_px / 1.0  # pixels per body unit (total height = 1)
    joints = _skeleton(ident, shot.phase, shot.amp)
    names = list(joints)
    P3 = _rot(np.stack([joints[n] for n in names]), theta)
    proj = {n: (shot.cx + s * P3[i, 0], shot.foot_y - s * P3[i, 1], P3[i, 2]) for i, n in enumerate(names)}
    v = _View(theta, c, sn, s, joints, proj)
    v.sh_hw = ident.shoulder * abs(c) + ident.depth * abs(sn)
    v.hp_hw = (ident.hip + 0.01) * abs(c) + ident.depth * abs(sn)
    v.nx, v.ny = v.uv("neck")
    v.hx = 0.5 * (proj["r_hip"][0] + proj["l_hip"][0])
    v.hy = 0.5 * (proj["r_hip"][1] + proj["l_hip"][1])
    v.y_sh = v.ny + 0.01 * s
    return v


class _DepthQueue:
    """Painter's algorithm: paint calls queued with a depth, run far-to-near (ties in queueing order)."""

    def __init__(self) -> None:
        self.ops: list[tuple[float, int, Callable[[], None]]] = []

    def add(self, depth: float, fn: Callable[[], None]) -> None:
        self.ops.append((depth, len(self.ops) + 1, fn))

    def paint(self) -> None:
        for _, _, fn in sorted(self.ops, key=lambda t: (t[0], t[1])):
            fn()


def _queue_legs(q: _DepthQueue, canvas: Canvas, ident: Identity, v: _View) -> None:
    """Legs (trousers / shorts / skirt) and shoes, one queue entry per leg."""
    s, uv = v.s, v.uv
    r_thigh, r_shin = 0.046 * ident.limb * s, 0.034 * ident.limb * s
    for side in ("r", "l"):
        hip, knee, ankle, toe = side + "_hip", side + "_knee", side + "_ankle", side + "_toe"
        thigh_col = ident.bottom
        shin_col = ident.bottom if ident.bottom_style == "trousers" else ident.skin
        if ident.bottom_style == "skirt":
            thigh_col = ident.skin

        def legs(hip=hip, knee=knee, ankle=ankle, toe=toe, thigh_col=thigh_col, shin_col=shin_col):
            canvas.capsule(uv(hip), uv(knee), r_thigh, r_thigh * 0.85, thigh_col)
            canvas.capsule(uv(knee), uv(ankle), r_shin, r_shin * 0.8, shin_col)
            if ident.bottom_style == "shorts":
                (kx, ky), (hx, hy) = uv(knee), uv(hip)
                canvas.capsule((hx, hy), (hx + 0.75 * (kx - hx), hy + 0.75 * (ky - hy)), r_thigh * 1.05, r_thigh,
                               ident.bottom)
            canvas.capsule(uv(ankle), uv(toe), 0.028 * s, 0.022 * s, ident.shoes)
        q.add(v.dep(hip, knee, ankle), legs)


def _queue_torso(q: _DepthQueue, canvas: Canvas, ident: Identity, v: _View) -> None:
    """Torso (+ pelvis, skirt) as rounded trapezoids whose width follows the view; the top's pattern."""
    s, nx, hx, hy, y_sh, sh_hw, hp_hw = v.s, v.nx, v.hx, v.hy, v.y_sh, v.sh_hw, v.hp_hw
    rt = 0.035 * s  # generous rounding gives sloping shoulders; the polygon is inset by the same amount
    torso_pts = np.array([[nx - sh_hw * s + rt, y_sh + rt * 0.6], [nx + sh_hw * s - rt, y_sh + rt * 0.6],
                          [hx + hp_hw * s - rt * 0.5, hy + 0.01 * s], [hx - hp_hw * s + rt * 0.5, hy + 0.01 * s]])
    pelvis_pts = np.array([[hx - hp_hw * s, hy - 0.03 * s], [hx + hp_hw * s, hy - 0.03 * s],
                           [hx + hp_hw * s * 0.8, hy + 0.07 * s], [hx - hp_hw * s * 0.8, hy + 0.07 * s]])
    field_fn = _top_field(ident, v.theta, y_sh, hy, 0.5 * (nx + hx), sh_hw * s, s)

    def torso():
        canvas.polygon(pelvis_pts, ident.bottom, rounding=0.012 * s, shade_axis=(hx, hp_hw * s))
        if ident.bottom_style == "skirt":
            sk = np.array([[hx - hp_hw * s, hy - 0.02 * s], [hx + hp_hw * s, hy - 0.02 * s],
                           [hx + hp_hw * s * 1.6, hy + 0.2 * s], [hx - hp_hw * s * 1.6, hy + 0.2 * s]])
            canvas.polygon(sk, ident.bottom, rounding=0.01 * s, shade_axis=(hx, hp_hw * s * 1.5))
        canvas.polygon(torso_pts, field_fn, rounding=rt, shade_axis=(0.5 * (nx + hx), sh_hw * s))
    q.add(0.0, torso)


def _queue_arms(q: _DepthQueue, canvas: Canvas, ident: Identity, v: _View) -> None:
    """Arms (sleeve colour on the upper arm, on the forearm too with long sleeves), hands, a handbag."""
    s, c, uv = v.s, v.c, v.uv
    r_up, r_fore = 0.030 * ident.limb * s, 0.024 * ident.limb * s
    sleeve = ident.top
    for side in ("r", "l"):
        sh, el, wr = side + "_shoulder", side + "_elbow", side + "_wrist"
        d_arm = v.dep(sh, el, wr) + (0.01 if v.dep(sh) > 0 else -0.01)

        def arm(sh=sh, el=el, wr=wr, side=side):
            canvas.capsule(uv(sh), uv(el), r_up, r_up * 0.9, sleeve)
            canvas.capsule(uv(el), uv(wr), r_fore, r_fore * 0.85, sleeve if ident.long_sleeves else ident.skin)
            wx, wy = uv(wr)
            canvas.ellipse((wx, wy + 0.012 * s), 0.022 * s, 0.026 * s, ident.skin, shade=True)
            if ident.bag == "handbag" and (side == "r") == (ident.bag_side < 0):
                bw = 0.06 * s * (abs(c) * 0.5 + 0.5)
                canvas.capsule((wx, wy), (wx, wy + 0.05 * s), 0.004 * s + 0.3, None, ident.bag_colour * 0.6,
                               shade=False)
                canvas.polygon(np.array([[wx - bw, wy + 0.04 * s], [wx + bw, wy + 0.04 * s],
                                         [wx + bw, wy + 0.13 * s], [wx - bw, wy + 0.13 * s]]),
                               ident.bag_colour, rounding=0.01 * s, shade_axis=(wx, bw))
        q.add(d_arm, arm)


def _queue_bag(q: _DepthQueue, canvas: Canvas, ident: Identity, v: _View) -> None:
    """A backpack (straps across the chest when seen from the front) or a shoulder bag and its strap."""
    s, c, sn, nx, hx, hy, y_sh = v.s, v.c, v.sn, v.nx, v.hx, v.hy, v.y_sh
    if ident.bag == "backpack":
        off = ident.depth + 0.035
        bx = nx - sn * off * s
        bd = -c * off
        bhw = (0.085 * abs(c) + 0.04 * abs(sn)) * s
        pts = np.array([[bx - bhw, y_sh + 0.02 * s], [bx + bhw, y_sh + 0.02 * s],
                        [bx + bhw, y_sh + 0.24 * s], [bx - bhw, y_sh + 0.24 * s]])
        q.add(bd, lambda: canvas.polygon(pts, ident.bag_colour, rounding=0.02 * s, shade_axis=(bx, bhw)))
        if c > 0.2:  # straps across the chest
            sh_hw = v.sh_hw

            def straps():
                for k in (-1, 1):
                    x = nx + k * sh_hw * s * 0.55
                    canvas.capsule((x, y_sh), (x + k * 0.5, y_sh + 0.18 * s), 0.012 * s, None,
                                   ident.bag_colour * 0.7, shade=False)
            q.add(0.001, straps)
    elif ident.bag == "shoulder_bag":
        side_x = ident.bag_side * (ident.hip + 0.04)
        p = _rot(np.array([side_x, 0, 0.0]), v.theta)
        bx = hx + p[0] * s
        bhw = (0.02 * abs(c) + 0.07 * abs(sn)) * s + 1.0
        pts = np.array([[bx - bhw, hy - 0.04 * s], [bx + bhw, hy - 0.04 * s],
                        [bx + bhw, hy + 0.08 * s], [bx - bhw, hy + 0.08 * s]])
        q.add(p[2] + 0.002, lambda: canvas.polygon(pts, ident.bag_colour, rounding=0.01 * s, shade_axis=(bx, bhw)))
        shoulder = "l" if ident.bag_side < 0 else "r"   # strap over the opposite shoulder
        sx_, sy_ = v.uv(shoulder + "_shoulder")
        q.add(0.002 if c > 0 else -0.002 if c < -0.5 else 0.002,
              lambda: canvas.capsule((sx_, sy_), (bx, hy - 0.04 * s), 0.009 * s, None, ident.bag_colour * 0.7,
                                     shade=False))


def _queue_head_and_hair(q: _DepthQueue, canvas: Canvas, ident: Identity, v: _View) -> None:
    """Neck and head, long hair / ponytail behind, the hair mass, then cap or hair on top and the eyes."""
    s, c, sn, nx, ny = v.s, v.c, v.sn, v.nx, v.ny
    hcx, hcy = v.uv("head")
    hr = ident.head * s
    d_head = 0.02

    def head():
        canvas.capsule((nx, ny + 0.01 * s), (hcx, hcy), 0.022 * s, None, ident.skin)  # neck
        canvas.ellipse((hcx, hcy), hr * 0.9, hr, ident.skin, shade=True)
    q.add(d_head, head)
    back_dx = -sn * hr * 0.35
    hair_depth = d_head - c * 0.05
    style = ident.hair_style
    hair_col = ident.hair if style != "buzz" else ident.hair * 0.6 + ident.skin * 0.4
    if style == "long":
        q.add(-c * 0.08, lambda: canvas.capsule((hcx + back_dx, hcy), (hcx + back_dx * 1.4, hcy + 2.2 * hr),
                                                hr * 0.95, hr * 0.8, ident.hair))
    if style == "ponytail":
        q.add(-c * 0.08 - 0.001, lambda: canvas.capsule((hcx + back_dx * 2.2, hcy - 0.2 * hr),
                                                        (hcx + back_dx * 2.8, hcy + 1.3 * hr),
                                                        hr * 0.35, hr * 0.25, ident.hair))

    def hair_back():
        canvas.ellipse((hcx + back_dx, hcy - 0.08 * hr), hr * 0.95, hr * 1.02, hair_col, shade=True)
    q.add(hair_depth, hair_back)

    def hair_top():
        if style == "cap":
            canvas.ellipse((hcx, hcy - 0.15 * hr), hr * 1.0, hr * 0.95, ident.cap, shade=True,
                           clip_above=hcy - 0.2 * hr)
            canvas.ellipse((hcx + sn * hr * 0.7, hcy - 0.25 * hr), hr * (0.45 + 0.6 * abs(sn)), hr * 0.18,
                           ident.cap * 0.8)
        else:
            canvas.ellipse((hcx + back_dx * 0.5, hcy - 0.12 * hr), hr * 1.0, hr * 0.98, hair_col, shade=True,
                           clip_above=hcy - (0.35 if c > 0 else -0.1) * hr)
        if c > 0.35:  # eyes
            for k in (-1, 1):
                ex = hcx + (k * 0.38 * c + sn * 0.5) * hr
                canvas.ellipse((ex, hcy + 0.05 * hr), max(0.5, 0.12 * hr), max(0.5, 0.1 * hr),
                               np.array([0.1, 0.08, 0.07]), opacity=0.7)
    q.add(max(d_head, hair_depth) + 0.001, hair_top)


# body-frame offsets of the face keypoints from the head centre, in head radii (person's right = -x), and
# the surface normal that decides whether the point faces the camera
_FACE = {
    "nose": (np.array([0.0, -0.15, 0.95]), np.array([0.0, 0.0, 1.0])),
    "r_eye": (np.array([-0.38, 0.05, 0.85]), np.array([-0.35, 0.0, 0.94])),
    "l_eye": (np.array([0.38, 0.05, 0.85]), np.array([0.35, 0.0, 0.94])),
    "r_ear": (np.array([-0.92, 0.0, 0.0]), np.array([-1.0, 0.0, -0.1])),
    "l_ear": (np.array([0.92, 0.0, 0.0]), np.array([1.0, 0.0, -0.1])),
}
_FACE_INDEX = {"nose": 0, "r_eye": 14, "l_eye": 15, "r_ear": 16, "l_ear": 17}
_BODY_INDEX = {"neck": 1, "r_shoulder": 2, "r_elbow": 3, "r_wrist": 4, "l_shoulder": 5, "l_elbow": 6, "l_wrist": 7,
               "r_hip": 8, "r_knee": 9, "r_ankle": 10, "l_hip": 11, "l_knee": 12, "l_ankle": 13}


def _keypoints(ident: Identity, shot: Shot, v: _View) -> np.ndarray:
    """OpenPose-18 keypoints ``(18, 3)`` in pixels: body joints always visible (the crop clips later),
    face points visible when they face the camera."""
    s = v.s
    kp = np.zeros((18, 3), np.float32)
    for n, i in _BODY_INDEX.items():
        kp[i] = (*v.uv(n), 1.0)
    kp[1, 1] = v.ny + 0.01 * s
    head3 = v.joints["head"]
    for n, (off, normal) in _FACE.items():
        p = _rot(head3 + off * ident.head * np.array([0.9, 1.0, 0.9]), v.theta)
        nz = _rot(normal, v.theta)[2]
        thresh = 0.1 if n in ("nose", "r_eye", "l_eye") else -0.35
        kp[_FACE_INDEX[n]] = (shot.cx + s * p[0], shot.foot_y - s * p[1], 1.0 if nz > thresh else 0.0)
    return kp


def render_person(canvas: Canvas, ident: Identity, shot: Shot) -> np.ndarray:
    """Paint ``ident`` as seen in ``shot``; returns OpenPose-18 keypoints (18, 3) in pixels.

    The body parts are queued with their rotated depth and painted far-to-near, so limbs on the far side
    are hidden behind the torso and a backpack shows from the back only.
    """
    v = _project(ident, shot)
    q = _DepthQueue()
    _queue_legs(q, canvas, ident, v)
    _queue_torso(q, canvas, ident, v)
    _queue_arms(q, canvas, ident, v)
    _queue_bag(q, canvas, ident, v)
    _queue_head_and_hair(q, canvas, ident, v)
    q.paint()
    return _keypoints(ident, shot, v)
