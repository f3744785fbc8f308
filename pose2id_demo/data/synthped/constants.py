"""SynthPed's fixed numbers: image size, tasks, split sizes, identity ranges, file-name codes."""

from __future__ import annotations

VERSION = 3
H, W = 128, 64
TASKS = ("standard", "occluded", "infrared")
NUM_CAMERAS = 6
NUM_TRAIN_IDS = 300
TRAIN_IMAGES_PER_ID = 12
NUM_TEST_IDS = 100
QUERIES_PER_ID = 2
GALLERY_PER_ID = (5, 8)  # inclusive range
NUM_DISTRACTORS = 100
TRAIN_PID0 = 1
TEST_PID0 = 1001
NEAR_DUPLICATE_FRACTION = 0.35
DIRECTIONS = ("front", "front-right", "right", "back-right", "back", "back-left", "left", "front-left")
MANIFEST = "synthped.json"

_SPLIT_CODE = {"train": 1, "query": 2, "gallery": 3, "distractor": 4}
_TASK_CODE = {"standard": 0, "occluded": 1, "infrared": 2}
