"""The one API the user interface calls: :class:`Engine`, a thin façade over the engine's parts.

============================  ===================================================================================
module                        job
============================  ===================================================================================
:mod:`.inputs`                every check of user input and every file opened on a request's behalf
:mod:`.models`                lazy, thread-safe loading of backbones, the pipeline and the poses (heavy imports)
:mod:`.benchmark`             a benchmark session: features per (task, backbone), caches, rows via ``ablation``
:mod:`.generation`            the Generate tab: IPG images, and the gallery ranked before/after eq. 9
:mod:`.user_features`         a user's feature file: rows, Fig. 9 grid, Fig. 8 η curve, Table 6 M curve
:mod:`.cleansing`             the train split's Mahalanobis outliers (eqs. 29-31) and PoseValid rejects (eq. 32)
:mod:`.scheduler`              the CPU pool (a slot per core) every heavy call holds, a generation first
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
from PIL import Image

from pose2id_demo import ablation
from pose2id_demo.cleansing import BANDS as CLEANSING_BANDS
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.metrics import ID2_VARIANTS
from pose2id_demo.metrics import identity_density as _identity_density
from pose2id_demo.paths import ASSETS, MODELS_DIR, POSES_DIR
from pose2id_demo.visualize import tsne_2d

from . import cleansing as _cleansing
from .benchmark import BenchData, BenchmarkSession, ProgressFn, noop_progress
from .cache import LRU as _LRU
from .errors import DependencyMissing, Pose2IDError
from .generation import Generator
from .inputs import (APPLY_CHOICES, CFG_RANGE, ETA_RANGE, IFR_CHOICES, K_RANGE, MAX_FEATURE_BYTES,
                     MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_POSE_JSON_BYTES, METRIC_COLUMNS, MIN_IMAGE_SIDE,
                     N_IDS_RANGE, QUERY_TOP, ROW_NAMES, SEED_RANGE, STEPS_RANGE, TASKS, WORK_MAX_SIDE, BenchSettings,
                     check_choice, check_float, check_int, image_digest, load_custom_pose, load_image,
                     open_feature_file, resolve_request_file)
from .models import Models
from .scheduler import LONG
from .user_features import evaluate_feature_file, evaluate_feature_set

__all__ = [
    "APPLY_CHOICES", "CFG_RANGE", "CLEANSING_BANDS", "ETA_RANGE", "ID2_VARIANTS", "IFR_CHOICES", "K_RANGE", "MAX_FEATURE_BYTES",
    "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MAX_POSE_JSON_BYTES", "METRIC_COLUMNS", "MIN_IMAGE_SIDE", "N_IDS_RANGE",
    "QUERY_TOP", "ROW_NAMES", "SEED_RANGE", "STEPS_RANGE", "TASKS", "WORK_MAX_SIDE", "BenchData", "BenchSettings",
    "DependencyMissing", "Engine", "Pose2IDError", "ProgressFn", "check_choice", "check_float", "check_int",
    "get_engine", "identity_density", "image_digest", "load_custom_pose", "load_image", "open_feature_file",
    "resolve_request_file", "shipped_assets", "tsne_2d",
]

_noop_progress = noop_progress


class Engine:
    """Lazily loaded models and cached benchmark computations shared by all users of the demo.

    A façade: each method checks what it needs and hands over to :class:`~.models.Models`,
    :class:`~.benchmark.BenchmarkSession`, :class:`~.generation.Generator`, :mod:`.user_features` or
    :mod:`.cleansing`.
    """

    def __init__(self, device: str | None = None) -> None:
        self.models = Models(device)
        self.bench = BenchmarkSession(self.models, lambda name: self._check_backbone(name))
        self.generator = Generator(self.models, self.bench, lambda name: self.backbone(name))

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
    def warm_up(self, background: bool = True) -> Any:
        """Prepare, in one background thread and only while no request needs the CPU, what first clicks would
        otherwise compute (:mod:`pose2id_demo.warmup`)."""
        from pose2id_demo import warmup

        return warmup.start(self, background=background)

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

    # ---------------------------------------------------------------- benchmark
    def add_dataset(self, name: str, root: str | Path) -> dict[str, Any]:
        """Add a Market-layout folder as a benchmark task (``python app.py --dataset NAME=ROOT``;
        :meth:`.benchmark.BenchmarkSession.add_dataset`); raises :class:`Pose2IDError` naming what is wrong."""
        return self.bench.add_dataset(name, root)

    def n_queries(self, task: str) -> int:
        """The number of queries of ``task`` (:meth:`.benchmark.BenchmarkSession.n_queries`)."""
        return self.bench.n_queries(task)

    def tasks(self) -> list[str]:
        """The benchmark's task names: SynthPed's three, then the added datasets."""
        return self.bench.tasks()

    def bench_data(self, task: str, backbone: str, progress: ProgressFn = noop_progress) -> BenchData:
        """Benchmark features of ``(task, backbone)``: extracted once (disk-cached), kept in memory."""
        return self.bench.bench_data(task, backbone, progress)

    def benchmark(self, task: str = "standard", backbone: str = "synthped-reid", eta: float = 0.5,
                  k1: int = 2, k2: int = 2, nfc_on: str = "both", ipg_on: str = "both",
                  rerank: bool = False, id2_variant: str = "paper",
                  progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """The ablation table of Table 2 on a SynthPed task (:meth:`.benchmark.BenchmarkSession.benchmark`)."""
        return self.bench.benchmark(task, backbone, eta, k1, k2, nfc_on, ipg_on, rerank, id2_variant, progress)

    def ranks(self, task: str = "standard", backbone: str = "synthped-reid", query_index: int = 0,
              eta: float = 0.5, k1: int = 2, k2: int = 2, nfc_on: str = "both", ipg_on: str = "both",
              rerank: bool = False, top: int = QUERY_TOP) -> dict[str, Any]:
        """Top-``top`` gallery list of one query before and after (:meth:`.benchmark.BenchmarkSession.ranks`)."""
        return self.bench.ranks(task, backbone, query_index, eta, k1, k2, nfc_on, ipg_on, rerank, top)

    def per_query(self, task: str = "standard", backbone: str = "synthped-reid", eta: float = 0.5, k1: int = 2,
                  k2: int = 2, nfc_on: str = "both", ipg_on: str = "both", rerank: bool = False,
                  progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """Every query's AP and first-correct rank before/after, and the typical query
        (:meth:`.benchmark.BenchmarkSession.per_query`)."""
        return self.bench.per_query(task, backbone, eta, k1, k2, nfc_on, ipg_on, rerank, progress)

    def tsne(self, task: str = "standard", backbone: str = "synthped-reid", eta: float = 0.5, k1: int = 2,
             k2: int = 2, nfc_on: str = "both", ipg_on: str = "both", n_ids: int = 10, id2_variant: str = "paper",
             progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """2-D t-SNE before/after centralization, Fig. 4 (:meth:`.benchmark.BenchmarkSession.tsne`)."""
        return self.bench.tsne(task, backbone, eta, k1, k2, nfc_on, ipg_on, n_ids, id2_variant, progress)

    def benchmark_query_index(self, image: Image.Image, task: str = "standard",
                              backbone: str = "synthped-reid") -> int | None:
        """The benchmark query index of ``image`` if it is (pixel for pixel) a benchmark query image."""
        return self.bench.benchmark_query_index(image, task, backbone)

    def benchmark_examples(self, n: int = 6, task: str = "standard") -> list[str]:
        """Paths of ``n`` benchmark query images of distinct identities (for the UI's examples)."""
        return self.bench.benchmark_examples(n, task)

    def export_features(self, task: str, backbone: str, path: str | Path) -> Path:
        """Write the benchmark's features as a feature file (the CLI's keys; ``q_gen``/``g_gen`` if shipped)."""
        return self.bench.export_features(task, backbone, path)

    # ---------------------------------------------------------------- cleansing
    def cleansing(self, task: str = "standard", backbone: str = "synthped-reid", quantile: float = 0.005,
                  band: str = "pooled", progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """Data cleansing of the train split, Supplementary 7.1 (:func:`.cleansing.cleanse_train_split`):
        ``band="pooled"`` (default) or ``"per_identity"`` (eq. 31's literal reading)."""
        if str(task).strip() in self.bench.datasets:
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
                 eta: float = 0.5, custom_pose: Any = None, backbone: str = "synthped-reid",
                 progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """The reference person in the 8 representative poses (+ a custom pose), and the ranked lists of a
        benchmark query before/after eq. 9 (:meth:`.generation.Generator.generate`); ``seed=None`` is
        :attr:`default_seed`."""
        return self.generator.generate(image, use_ifr, steps, cfg, seed, eta, custom_pose, backbone, progress)

    def ranks_with_generations(self, query_index: int, gen_feats: np.ndarray, eta: float = 0.5,
                               backbone: str = "synthped-reid", task: str = "standard") -> dict[str, Any]:
        """Top-10 of a benchmark query before and after eq. 9 with the user's own generations."""
        return self.generator.ranks_with_generations(query_index, gen_feats, eta, backbone, task)

    # ---------------------------------------------------------------- your features
    def evaluate_features(self, npz_path: Any, k1: int = 2, k2: int = 2, eta: float = 0.5,
                          nfc_on: str = "both", ipg_on: str = "both", grid_max: int = 6,
                          id2_variant: str = "paper", progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """A user's feature file: rows, k1×k2 grid (Fig. 9), η curve (Fig. 8), M curve (Table 6)
        (:func:`.user_features.evaluate_feature_file`)."""
        return evaluate_feature_file(npz_path, k1, k2, eta, nfc_on, ipg_on, grid_max, id2_variant, progress)

    def _evaluate_loaded(self, fs: Any, k1: int, k2: int, eta: float, nfc_on: str, ipg_on: str,
                         grid_max: int, progress: ProgressFn, id2_variant: str = "paper") -> dict[str, Any]:
        """The Your-features report of raw feature-file arrays (attributes ``q_feats`` … ``g_gen``)."""
        feats = FeatureSet.from_arrays({k: getattr(fs, k, None) for k in ("q_feats", "g_feats", "q_pids", "g_pids",
                                                                          "q_camids", "g_camids", "q_gen", "g_gen")})
        s = ablation.Settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_on, ipg_on=ipg_on, id2_variant=id2_variant)
        return evaluate_feature_set(feats, s, grid_max, progress)


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
        "generated_features": (ASSETS / "features" / f"synthped-{task}-{backbone}-gen.npz").is_file(),
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
