"""SynthPed's fixed numbers: image size, tasks, split sizes, identity ranges, file-name codes."""

from __future__ import annotations

VERSION = 4
H, W = 128, 64
TASKS = ("standard", "occluded", "infrared")
NUM_CAMERAS = 6
NUM_TRAIN_IDS = 300
TRAIN_IMAGES_PER_ID = 12
# The test split copies Market-1501's per-identity structure (see the package docstring for the sizing).
NUM_TEST_IDS = 56
TEST_CAMERAS = (2, 3, 4, 5, 6)               # how many cameras a test identity walks past ...
TEST_CAMERAS_P = (0.06, 0.16, 0.24, 0.30, 0.24)  # ... with these shares (mean 4.5 = Market's queries per id)
QUERIES_PER_ID = 4.5     # mean: one query per camera the identity appears in (exact for even NUM_TEST_IDS)
GALLERY_PER_ID = (10, 16)  # inclusive range; at least one gallery image in each of the identity's cameras
NUM_DISTRACTORS = None   # None: Market's share of the gallery (below)
NUM_JUNK = None          # None: Market's share of the bounding_box_test folder (below)

# Market-1501's test split (Zheng et al., ICCV 2015; counted from its folders) and the shares derived from it
MARKET = {"test_ids": 750, "query": 3368, "gallery": 15913, "gallery_of_test_ids": 13120, "distractors": 2793,
          "junk": 3819, "train_ids": 751, "train": 12936, "cameras": 6}
DISTRACTOR_SHARE = MARKET["distractors"] / MARKET["gallery"]                        # 17.55 % of the gallery
JUNK_SHARE = MARKET["junk"] / (MARKET["gallery"] + MARKET["junk"])                  # 19.35 % of the folder
TRAIN_PID0 = 1
TEST_PID0 = 1001
NEAR_DUPLICATE_FRACTION = 0.35
DIRECTIONS = ("front", "front-right", "right", "back-right", "back", "back-left", "left", "front-left")
MANIFEST = "synthped.json"

_SPLIT_CODE = {"train": 1, "query": 2, "gallery": 3, "distractor": 4, "junk": 5}
_TASK_CODE = {"standard": 0, "occluded": 1, "infrared": 2}
