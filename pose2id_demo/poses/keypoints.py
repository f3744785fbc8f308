"""The project's one keypoint type: OpenPose-18 body keypoints with confidences.

A pose is a float32 array of shape ``(18, 3)``: ``x, y`` in pixels of the image it was measured on and
a confidence ``c`` in [0, 1] (0 = not visible). The image size travels with it (:class:`Pose`), so a pose
can be drawn at any resolution. Order (OpenPose COCO-18):

0 nose, 1 neck, 2 r_shoulder, 3 r_elbow, 4 r_wrist, 5 l_shoulder, 6 l_elbow, 7 l_wrist, 8 r_hip, 9 r_knee,
10 r_ankle, 11 l_hip, 12 l_knee, 13 l_ankle, 14 r_eye, 15 l_eye, 16 r_ear, 17 l_ear.

JSON form (written beside every SynthPed image, and accepted as a custom target pose)::

    {"format": "openpose18", "width": W, "height": H, "keypoints": [[x, y, c], ... 18 rows]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEYPOINT_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = 18
# Limbs as (a, b) index pairs, in OpenPose's drawing order.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)


@dataclass
class Pose:
    """OpenPose-18 keypoints (18, 3) = (x, y, confidence) in pixels of a ``width`` × ``height`` image."""

    keypoints: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"a pose needs 18 keypoints of (x, y, confidence); got shape {kp.shape}")
        if not np.all(np.isfinite(kp)):
            raise ValueError("pose keypoints contain NaN or infinity")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"pose image size must be positive, got {self.width}x{self.height}")
        self.keypoints = kp

    @property
    def visible(self) -> np.ndarray:
        """Boolean mask (18,) of keypoints with confidence > 0."""
        return self.keypoints[:, 2] > 0

    def resized(self, width: int, height: int) -> Pose:
        """The same pose in pixel coordinates of a ``width`` × ``height`` image."""
        kp = self.keypoints.copy()
        kp[:, 0] *= width / self.width
        kp[:, 1] *= height / self.height
        return Pose(kp, width, height)

    def to_json(self) -> dict:
        return {"format": "openpose18", "width": int(self.width), "height": int(self.height),
                "keypoints": [[round(float(v), 3) for v in row] for row in self.keypoints]}

    @classmethod
    def from_json(cls, obj: dict) -> Pose:
        if not isinstance(obj, dict) or "keypoints" not in obj:
            raise ValueError("pose json must be an object with a 'keypoints' list of 18 [x, y, c] rows")
        fmt = obj.get("format", "openpose18")
        if fmt != "openpose18":
            raise ValueError(f"unsupported pose format {fmt!r}; expected 'openpose18'")
        try:
            kp = np.asarray(obj["keypoints"], dtype=np.float64)
        except OverflowError:  # a json integer beyond any float, e.g. 10**400
            raise ValueError("pose keypoints must be pixel coordinates; one is a whole number too large for any "
                             "float") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"pose keypoints are not numeric: {exc}") from None
        if np.isfinite(kp).all() and np.abs(kp).max(initial=0.0) > np.finfo(np.float32).max:
            raise ValueError("pose keypoints must be pixel coordinates; one is beyond the float32 range")
        if kp.ndim == 2 and kp.shape == (NUM_KEYPOINTS, 2):
            kp = np.concatenate([kp, np.ones((NUM_KEYPOINTS, 1), np.float32)], axis=1)
        width = obj.get("width")
        height = obj.get("height")
        if width is None or height is None:  # normalised coordinates if no size is given
            width, height = 1, 1
        return cls(kp, _canvas_side("width", width), _canvas_side("height", height))


#: Largest canvas side a pose json may state (pixels).
MAX_CANVAS_SIDE = 100_000
#: Deepest nesting of arrays/objects a pose json may have (a pose needs 3: object → keypoints → row).
MAX_JSON_DEPTH = 8


def _canvas_side(name: str, value: object) -> int:
    """A canvas side from json: a finite number in [1, :data:`MAX_CANVAS_SIDE`] (``1e999`` reads as inf, and
    an integer may have hundreds of digits: compared as it is, never converted to a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"pose {name} must be a number of pixels, got {str(value)[:40]}")
    if not 1 <= value <= MAX_CANVAS_SIDE:  # also false for NaN
        shown = f"{value:g}" if isinstance(value, float) or abs(value) < 10**15 else "a far larger number"
        raise ValueError(f"pose {name} must be between 1 and {MAX_CANVAS_SIDE} pixels, got {shown}")
    return int(value)


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in json ``text`` (brackets inside strings do not count).

    One pass over the characters, so the time is linear in the length whatever the text holds (a backtracking
    pattern over the strings is not: ``docs/design-notes.md``).
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "[" or ch == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "]" or ch == "}":
            depth -= 1
    return deepest


def save_pose_json(pose: Pose, path: str | Path) -> None:
    Path(path).write_text(json.dumps(pose.to_json()))


def load_pose_json(path: str | Path, max_bytes: int = 1 << 20) -> Pose:
    """Read a pose json file (at most ``max_bytes``); raises ``ValueError`` with a readable message."""
    p = Path(path)
    if p.stat().st_size > max_bytes:
        raise ValueError(f"pose json is larger than {max_bytes} bytes")
    try:
        text = p.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a valid pose json: {exc}") from None
    if json_depth(text) > MAX_JSON_DEPTH:  # checked before parsing: a deep file would exhaust the recursion
        raise ValueError(f"pose json nests arrays or objects more than {MAX_JSON_DEPTH} deep; a pose needs 3")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer of over 4,300 digits
        raise ValueError(f"not a valid pose json: {exc}") from None
    return Pose.from_json(obj)
