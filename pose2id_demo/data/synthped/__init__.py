"""SynthPed: a deterministic procedural pedestrian benchmark in Market-1501 layout.

No real ReID data can be downloaded here, so the demo renders its own labelled pedestrians. Every image
is a 128 × 64 (H × W) crop like Market-1501's, written with its ground-truth OpenPose-18 keypoints
(:class:`pose2id_demo.poses.keypoints.Pose` json beside the image).

What tells identities apart is what ReID models really look at — body build (shoulder/hip width, leg
length, head size), skin, hair style and colour, top and bottom colours and patterns (horizontal
stripes, a chest logo, two-tone halves, an open jacket), trousers / shorts / skirt, shoes and bags
(backpack, shoulder bag, handbag) — and about a third of the identities are deliberate near-duplicates
of another one (same outfit, one or two attributes changed) so the task is not trivial.

Each image shows a walking person in one of 8 view directions (the direction the person faces:
front, front-right, right, back-right, back, back-left, left, front-left) at a random gait phase. The
body is a small 3-D skeleton rotated about the vertical axis and projected orthographically; limbs,
torso, head, hair and bags are drawn far-to-near (painter's algorithm on their rotated depth), so far
limbs are hidden behind the torso. Primitives are signed-distance shapes evaluated on numpy grids
(anti-aliased by the distance itself), so all three tasks render in about a minute of CPU time.

Six cameras each have their own background texture, colour cast and light, blur, sensor noise, scale
jitter, JPEG quality and preferred walking directions.

The test split has Market-1501's per-identity structure, scaled down (``--stats ROOT`` prints it beside
Market's): each of the 56 test identities walks past 2–6 of the cameras (mean 4.5) and has one query in
each camera it appears in (252 queries, Market 4.49 per identity) and 10–16 gallery images, at least one
per camera (721, 12.9 per identity; Market 17.5); 153 distractors (pid 0: people who are not test
identities, some as bad detections) make 17.5 % of the evaluated gallery (Market 2,793 / 15,913 =
17.6 %); 210 junk crops (pid −1: partial bodies, mostly-background and far too tight boxes of the test
identities) make 19.4 % of ``bounding_box_test/`` (Market 3,819 / 19,732 = 19.4 %), and are dropped by
the reader (:mod:`pose2id_demo.data.market`) as torchreid and fast-reid drop them. The train split is
SynthPed v3's, byte for byte (300 identities × 12 images), so the shipped backbone and poses stay valid.

IPG is applied to every query of the three tasks and to the shared gallery (distractors included, junk
not), 8 poses each: 3 × 252 + 874 = 1,630 reference images (why 56 test identities: ``docs/design-notes.md``).

Tasks (they share the train split and the gallery; only the query images differ):

- ``standard``: Market-1501-like.
- ``occluded``: the same queries partly covered by occluders (cars/boxes, poles, bushes, other
  pedestrians, signs) like Occluded-REID; keypoints under an occluder get confidence 0.
- ``infrared``: the same queries rendered as near-infrared grey images (grey levels mostly from luminance
  but perturbed by a dye reflectance unrelated to hue, illuminator vignette, extra noise and blur) like
  SYSU-MM01's IR cameras, against a visible gallery — colour is no longer available, shape, pattern and
  brightness structure are. (With pure dye reflectances both shipped backbones were at chance level.)

Determinism: every image is drawn from its own ``numpy.random.default_rng([seed, split, pid, k])`` and
written with fixed PIL settings, so rendering is byte-for-byte reproducible and independent of render
order.  Usage::

    python -m pose2id_demo.data.synthped --out DIR --seed 0 [--task standard]
    python -m pose2id_demo.data.synthped --stats DIR/standard

Package layout (one file per job)::

    constants.py   sizes, tasks, split sizes, pid ranges, file-name codes
    identities.py  palettes and Identity (who is drawn), near-duplicates
    cameras.py     the six cameras, their background canvases, the per-image Shot
    canvas.py      the signed-distance painter
    person.py      skeleton, projection, painting a person far-to-near, OpenPose-18 keypoints
    occluders.py   the occluded task's occluders
    infrared.py    the infrared task's near-infrared grey map
    render.py      one image: background, person, task effects, camera response
    benchmark.py   the plan of a benchmark, rendering a task to disk once, the montage
    stats.py       per-identity statistics of a test split beside Market-1501's
    ground_truth.py  a person drawn in another image's exact pose (ground truth for generation)
    cli.py         ``python -m pose2id_demo.data.synthped``
"""

from __future__ import annotations

# The private helpers _identities_for, _is_complete, _write and _draw_shot are re-exported for the tests and for
# tools that drive the renderer directly.
from pose2id_demo.data.synthped.benchmark import (  # noqa: F401
    DEMO_TEST_IDS,
    Item,
    _identities_for,
    _is_complete,
    _write,
    ensure_benchmark,
    make_montage,
    plan,
    render_benchmark,
    render_item,
    write_demo_market,
)
from pose2id_demo.data.synthped.cameras import (  # noqa: F401
    BG_BLUR,
    BG_CONTRAST,
    BG_DESATURATE,
    CAMERAS,
    Camera,
    Shot,
    _draw_shot,
    camera_background,
)
from pose2id_demo.data.synthped.canvas import Canvas
from pose2id_demo.data.synthped.cli import main
from pose2id_demo.data.synthped.constants import (
    DIRECTIONS,
    DISTRACTOR_SHARE,
    GALLERY_PER_ID,
    JUNK_SHARE,
    MANIFEST,
    MARKET,
    NEAR_DUPLICATE_FRACTION,
    NUM_CAMERAS,
    NUM_DISTRACTORS,
    NUM_JUNK,
    NUM_TEST_IDS,
    NUM_TRAIN_IDS,
    QUERIES_PER_ID,
    TASKS,
    TEST_CAMERAS,
    TEST_CAMERAS_P,
    TEST_PID0,
    TRAIN_IMAGES_PER_ID,
    TRAIN_PID0,
    VERSION,
    H,
    W,
)
from pose2id_demo.data.synthped.ground_truth import item_for_file, render_ground_truth
from pose2id_demo.data.synthped.identities import (
    BAGS,
    BOTTOMS,
    CLOTH,
    HAIR,
    HAIR_STYLES,
    LOGO_SHAPES,
    SHOES,
    SKIN,
    TOP_PATTERNS,
    Identity,
    make_identities,
)
from pose2id_demo.data.synthped.infrared import IR_BACKGROUND, IR_LUMA, IR_NOISE, IR_VIGNETTE
from pose2id_demo.data.synthped.person import render_person
from pose2id_demo.data.synthped.render import Rendered, render_image
from pose2id_demo.data.synthped.stats import format_statistics, market_statistics, split_statistics

__all__ = [
    "BAGS", "BG_BLUR", "BG_CONTRAST", "BG_DESATURATE", "BOTTOMS", "CAMERAS", "CLOTH", "DIRECTIONS", "DISTRACTOR_SHARE",
    "GALLERY_PER_ID", "H", "HAIR", "HAIR_STYLES", "IR_BACKGROUND", "IR_LUMA", "IR_NOISE", "IR_VIGNETTE", "JUNK_SHARE",
    "LOGO_SHAPES", "MANIFEST", "MARKET", "NEAR_DUPLICATE_FRACTION", "NUM_CAMERAS", "NUM_DISTRACTORS", "NUM_JUNK",
    "NUM_TEST_IDS", "NUM_TRAIN_IDS", "QUERIES_PER_ID", "SHOES", "SKIN", "TASKS", "TEST_CAMERAS", "TEST_CAMERAS_P",
    "TEST_PID0", "TOP_PATTERNS", "TRAIN_IMAGES_PER_ID", "TRAIN_PID0", "VERSION", "W",
    "Camera", "Canvas", "Identity", "Item", "Rendered", "Shot", "camera_background", "ensure_benchmark",
    "format_statistics", "item_for_file", "main", "make_identities", "make_montage", "market_statistics", "plan",
    "render_benchmark", "render_ground_truth", "render_image", "render_item", "render_person", "split_statistics",
    "DEMO_TEST_IDS", "write_demo_market",
]
