"""The one API the user interface calls: :class:`Engine`, a thin façade over the engine's parts.

============================  ===================================================================================
module                        job
============================  ===================================================================================
:mod:`.inputs`                every check of user input and every file opened on a request's behalf
:mod:`.models`                lazy, thread-safe loading of backbones, the pipeline and the poses (heavy imports)
:mod:`.features`              the tasks (SynthPed's and added folders) and their features per (task, backbone)
:mod:`.benchmark`             the benchmark session: the Benchmark tab's views, checked, cached by their settings
:mod:`.views`                 those views as pure functions of features and settings (shared by the two sessions)
:mod:`.query_images`          which benchmark query an uploaded image is
:mod:`.export`                the benchmark's features written as a feature file
:mod:`.generation`            the Generate tab: IPG images, and the gallery ranked before/after eq. 9
:mod:`.user_features`         a user's feature file: rows, Fig. 9 grid, Fig. 8 η curve, Table 6 M curve
:mod:`.cleansing`             the train split's Mahalanobis outliers (eqs. 29-31) and PoseValid rejects (eq. 32)
:mod:`.scheduler`             the CPU pool (a slot per core) every heavy call holds, a generation first
:mod:`.cache`, :mod:`.errors`  bounded caches; :class:`Pose2IDError` / :class:`DependencyMissing`
============================  ===================================================================================

The maths lives in the modules named after the paper's concepts (:mod:`pose2id_demo.centralization`,
:mod:`pose2id_demo.metrics`, :mod:`pose2id_demo.cleansing`, :mod:`pose2id_demo.visualize`) and the ablation
that combines them (:mod:`pose2id_demo.ablation`); the engine validates, loads, caches and calls them.
Every public method checks its input first — raising :class:`Pose2IDError` with a sentence for the user on bad
input — and only then waits for the CPU (:mod:`.scheduler`) and for the models it needs. State here is
shared and read-mostly (models, features, caches keyed by the full settings); per-user state lives in the
UI's ``gr.State``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from pose2id_demo import ablation
from pose2id_demo.ablation import APPLY_CHOICES, DEFAULT_ETA, ROW_NAMES
from pose2id_demo.cleansing import BANDS as CLEANSING_BANDS
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import ID2_VARIANTS
from pose2id_demo.metrics import identity_density as _identity_density
from pose2id_demo.paths import MODELS_DIR, POSES_DIR
from pose2id_demo.visualize import tsne_2d

from . import cleansing as _cleansing
from .benchmark import BenchmarkSession
from .errors import DependencyMissing, Pose2IDError
from .export import export_benchmark_features
from .features import BenchData, FeatureStore, shipped_generated_path
from .generation import Generator
from .inputs import (
    CFG_RANGE,
    ETA_RANGE,
    IFR_CHOICES,
    K_RANGE,
    MAX_FEATURE_BYTES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_POSE_JSON_BYTES,
    METRIC_COLUMNS,
    MIN_IMAGE_SIDE,
    N_IDS_RANGE,
    QUERY_TOP,
    SEED_RANGE,
    STEPS_RANGE,
    TASKS,
    WORK_MAX_SIDE,
    check_choice,
    check_float,
    check_int,
    check_settings,
    image_digest,
    load_custom_pose,
    load_image,
    open_feature_file,
    resolve_request_file,
)
from .models import Models
from .query_images import QueryImages
from .scheduler import LONG, ProgressFn, noop_progress
from .user_features import evaluate_feature_file, evaluate_feature_set
from .warmup import DEFAULT_BACKBONES, WarmUp, preload

__all__ = [
    "APPLY_CHOICES", "CFG_RANGE", "CLEANSING_BANDS", "ETA_RANGE", "ID2_VARIANTS", "IFR_CHOICES", "K_RANGE",
    "MAX_FEATURE_BYTES", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MAX_POSE_JSON_BYTES", "METRIC_COLUMNS",
    "MIN_IMAGE_SIDE", "N_IDS_RANGE", "QUERY_TOP", "ROW_NAMES", "SEED_RANGE", "STEPS_RANGE", "TASKS", "WORK_MAX_SIDE",
    "BenchData", "DependencyMissing", "Engine", "Pose2IDError", "ProgressFn", "check_choice", "check_float",
    "check_int", "check_settings", "export_benchmark_features", "get_engine", "identity_density", "image_digest",
    "load_custom_pose", "load_image", "open_feature_file", "resolve_request_file", "shipped_assets", "tsne_2d",
]


class Engine:
    """Lazily loaded models and cached benchmark computations shared by all users of the demo.

    It holds the engine's parts, which the UI calls directly: :attr:`models` (:class:`~.models.Models`),
    :attr:`features` (:class:`~.features.FeatureStore`: the tasks and their features), :attr:`bench`
    (:class:`~.benchmark.BenchmarkSession`: the Benchmark tab's views), :attr:`queries`
    (:class:`~.query_images.QueryImages`) and :attr:`generator` (:class:`~.generation.Generator`); its own
    methods check what they need and hand over to them, :mod:`.user_features` or :mod:`.cleansing`.
    """

    def __init__(self, device: str | None = None) -> None:
        self.models = Models(device)
        self.features = FeatureStore(self.models, lambda name: self._check_backbone(name))
        self.bench = BenchmarkSession(self.features, self.models.cpu)
        self.queries = QueryImages(self.features, self.models)
        self.generator = Generator(self.models, self.features, self.queries, lambda name: self.backbone(name))
        #: The launch-time warm-up (:meth:`warm_up`), None until it is started.
        self.warmup: WarmUp | None = None
        self._warmup_lock = threading.Lock()

    # ---------------------------------------------------------------- resources
    @property
    def _store(self) -> dict[Any, Any]:
        return self.models.store

    def _once(self, key: Any, factory: Any) -> Any:
        return self.models.once(key, factory)

    @property
    def device(self) -> str:
        return self.models.device

    def backbones(self) -> list[str]:
        """Names of the available ReID backbones."""
        return self.models.backbones()

    def _check_backbone(self, name: str) -> str:
        names = self.backbones()
        if name not in names:
            raise Pose2IDError(f"Unknown backbone {name!r}; available: {', '.join(names)}.")
        return name

    def backbone(self, name: str) -> Any:
        """The loaded backbone ``name`` (once)."""
        return self.models.backbone(self._check_backbone(name))

    def add_backbone(self, name: str) -> str:
        """Offer another backbone everywhere (``python app.py --backbone hf:<model id or folder>``;
        :func:`pose2id_demo.reid.backbones.resolve_backbone`): checked now, loaded on first use. Requests can only
        choose among the backbones added here, so no request makes the server load a model nobody chose."""
        return self.models.add_backbone(name)

    def use_official_ipg(self, source: str | Path, reid_extractor: str | None = None) -> None:
        """Serve generations from the official Pose2ID release: ``hub[:REPO[@REVISION]]`` or a folder
        (:meth:`.models.Models.use_official_ipg`)."""
        self.models.use_official_ipg(source, reid_extractor)

    def fetch_generator(self, progress: ProgressFn = noop_progress, wait: bool = True) -> None:
        """Start (and with ``wait`` wait for) the official weights' download, holding no CPU slot
        (:meth:`.models.Models.fetch_generator`); nothing to do with the embedded generator."""
        self.models.fetch_generator(progress, wait)

    @property
    def generator_download_pending(self) -> bool:
        """Whether the official weights still have bytes to download."""
        return self.models.generator_download_pending

    def generator_status(self) -> str | None:
        """How far the official weights' download is (a sentence), or None (:meth:`.models.Models.generator_status`)."""
        return self.models.generator_status()

    @property
    def default_seed(self) -> int:
        """The generator's default seed: 12580 (the official inference's) with the official weights, else 42."""
        return self.models.default_seed

    @property
    def generator_is_embedded(self) -> bool:
        """True unless :meth:`use_official_ipg` chose the official release."""
        return self.models._pipeline_factory is None

    # ---------------------------------------------------------------- launch-time warm-up
    def warm_up(self, background: bool = True) -> WarmUp:
        """Prepare, in one background thread and only while no request needs the CPU, what first clicks would
        otherwise compute (:mod:`.warmup`); started once per engine, later calls return :attr:`warmup`."""
        with self._warmup_lock:
            if self.warmup is None:
                self.warmup = WarmUp(self, tuple(TASKS), list(DEFAULT_BACKBONES), DEFAULT_BACKBONES[0])
                self.warmup.start(background=background)
            return self.warmup

    @staticmethod
    def preload() -> float:
        """Import before the page is served what the first table would import (:func:`.warmup.preload`)."""
        return preload()

    def pipeline(self) -> Any:
        """The identity-guided generation pipeline, loaded once (the embedded tiny IPG unless
        :meth:`use_official_ipg` chose the official release)."""
        return self.models.pipeline()

    def representative_poses(self) -> list[tuple[str, Any]]:
        """The 8 representative poses (eqs. 7-8) as ``(name, Pose)``."""
        return self.models.representative_poses()

    def skeletons(self, width: int = 128, height: int = 256) -> list[tuple[np.ndarray, str]]:
        """The representative poses drawn as OpenPose skeletons, ``(image, name)``."""
        return self.models.skeletons(width, height)

    # ---------------------------------------------------------------- cleansing
    def cleansing(self, task: str = "standard", backbone: str = "synthped-reid", quantile: float = 0.005,
                  band: str = "pooled", progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """Data cleansing of the train split, Supplementary 7.1 (:func:`.cleansing.cleanse_train_split`):
        ``band="pooled"`` (default) or ``"per_identity"`` (eq. 31's literal reading)."""
        if str(task).strip() in self.features.datasets:
            raise Pose2IDError("Data cleansing runs on SynthPed's train split only (it needs the train features "
                               "and keypoints the demo ships); pick a SynthPed task.")
        task = check_choice("task", task, TASKS)
        backbone = self._check_backbone(backbone)
        quantile = check_float("quantile p", quantile, 0.0, 0.5)  # keeps [Q_p, Q_1-p] (eq. 31; paper: 0.005)
        band = check_choice("cleansing band", band, CLEANSING_BANDS)
        key = ("cleansing", task, backbone, quantile, band)
        if key in self._store:
            return self._store[key]
        with self.models.cpu.hold(LONG, "a data cleansing", progress):
            return self._once(key, lambda: _cleansing.cleanse_train_split(self.models, task, backbone, quantile,
                                                                          progress, band))

    # ---------------------------------------------------------------- generation
    def generate(self, image: Any, use_ifr: str = "both", steps: int = 20, cfg: float = 3.5, seed: int | None = None,
                 eta: float = DEFAULT_ETA, custom_pose: Any = None, backbone: str = "synthped-reid",
                 progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """The reference person in the 8 representative poses (+ a custom pose), and the ranked lists of a
        benchmark query before/after eq. 9 (:meth:`.generation.Generator.generate`); ``seed=None`` is
        :attr:`default_seed`."""
        return self.generator.generate(image, use_ifr, steps, cfg, seed, eta, custom_pose, backbone, progress)

    def ranks_with_generations(self, query_index: int, gen_feats: np.ndarray, eta: float = DEFAULT_ETA,
                               backbone: str = "synthped-reid", task: str = "standard") -> dict[str, Any]:
        """Top-10 of a benchmark query before and after eq. 9 with the user's own generations."""
        return self.generator.ranks_with_generations(query_index, gen_feats, eta, backbone, task)

    # ---------------------------------------------------------------- your features
    def evaluate_features(self, npz_path: Any, settings: ablation.Settings | None = None, grid_max: int = 6,
                          progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """A user's feature file: rows, k1×k2 grid (Fig. 9), η curve (Fig. 8), M curve (Table 6)
        (:func:`.user_features.evaluate_feature_file`)."""
        return evaluate_feature_file(npz_path, settings, grid_max, progress)

    def _evaluate_loaded(self, fs: Any, settings: ablation.Settings, grid_max: int,
                         progress: ProgressFn) -> dict[str, Any]:
        """The Your-features report of raw feature-file arrays (attributes ``q_feats`` … ``g_gen``)."""
        feats = FeatureSet.from_arrays({k: getattr(fs, k, None) for k in ("q_feats", "g_feats", "q_pids", "g_pids",
                                                                          "q_camids", "g_camids", "q_gen", "g_gen")})
        return evaluate_feature_set(feats, settings, grid_max, progress)

def identity_density(q: np.ndarray, g: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                     variant: str = "paper") -> float:
    """ID² over query ∪ gallery as the tables show it (4 decimals): :func:`pose2id_demo.metrics.identity_density`
    (distractors, pid 0, and junk, pid -1, left out)."""
    return round(_identity_density(q, g, q_pids, g_pids, variant=variant), 4)


def shipped_assets(task: str = "standard", backbone: str = "synthped-reid") -> dict[str, bool]:
    """Which shipped assets are present (for the UI's notices and for tests): the representative poses,
    the embedded generator, the generated features of ``task``/``backbone`` and the ReID weights."""
    return {
        "poses": POSES_DIR.is_dir() and any(POSES_DIR.glob("*.json")),
        "generator": (MODELS_DIR / "ipg-tiny" / "model_index.json").is_file(),
        "generated_features": shipped_generated_path(task, backbone).is_file(),
        "reid": (MODELS_DIR / "reid" / "synthped-reid.safetensors").is_file(),
    }


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine (created on first use; nothing is loaded until a method needs it)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE
