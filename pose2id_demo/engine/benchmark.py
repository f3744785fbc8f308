"""A benchmark session: the SynthPed features per (task, backbone), kept in memory, with the Table-2 rows,
ranked lists, per-query table and t-SNE of any setting computed by :mod:`pose2id_demo.ablation` and cached
by the settings they depend on (moving one slider recomputes only the rows that slider touches).

Besides the three SynthPed tasks, a session holds a registry of extra datasets — Market-layout folders added
with :meth:`BenchmarkSession.add_dataset` (``python app.py --dataset NAME=ROOT``) — which are tasks like the
others: their features are extracted once per backbone (:meth:`~.models.Models.folder_features`) and their
generated features are the ones ``python -m pose2id_demo generate`` wrote into the folder.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pose2id_demo import ablation
from pose2id_demo.centralization import l2_normalize as _l2n
from pose2id_demo.data import load_market
from pose2id_demo.data.synthped import ensure_benchmark
from pose2id_demo.featurefile import DEFAULT_MAX_BYTES, FeatureSet
from pose2id_demo.ipg.precompute import read_generated
from pose2id_demo.metrics import id2, id2_label
from pose2id_demo.paths import ASSETS
from pose2id_demo.visualize import tsne_2d

from .cache import LRU, ScopedCache
from .errors import DependencyMissing, Pose2IDError
from .inputs import N_IDS_RANGE, QUERY_TOP, TASKS, check_choice, check_identity, check_int, image_digest
from .models import Models
from .scheduler import INTERACTIVE, LONG

__all__ = ["BenchData", "BenchmarkSession", "ProgressFn", "noop_progress"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

#: A ``--dataset`` name: what the task radio shows.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
#: At most this many ``.npz`` files in a dataset folder are looked at for generated features.
MAX_GEN_CANDIDATES = 32


def noop_progress(frac: float, desc: str) -> None:  # noqa: ARG001
    return None


@dataclass
class BenchData(FeatureSet):
    """Benchmark features of one (task, backbone) — a :class:`FeatureSet` (L2-normalised; ``q_gen``/``g_gen``
    the shipped generated-image features, if any) plus the image paths and a note on the generated ones."""

    q_paths: list[str] = field(default_factory=list)
    g_paths: list[str] = field(default_factory=list)
    gen_note: str = ""


class BenchmarkSession:
    """Benchmark features and cached ablation results shared by every user.

    Args:
        models: where features are extracted and results are kept once (:class:`~.models.Models`).
        check_backbone: validates a backbone name (raises ``Pose2IDError``) and returns it.
    """

    def __init__(self, models: Models, check_backbone: Callable[[str], str]) -> None:
        self.models = models
        self.check_backbone = check_backbone
        self.results = LRU(512)  # metric rows and per-query tables
        self.feats = LRU(24)  # centralized feature sets (≤ ~5 MB each on SynthPed)
        self.dists = LRU(12)  # distance matrices (re-ranking is the slow one)
        self.tsne_cache = LRU(32)
        self.datasets: dict[str, Path] = {}  # extra tasks: name → Market-layout root

    # ---------------------------------------------------------------- extra datasets
    def add_dataset(self, name: str, root: str | Path) -> dict[str, Any]:
        """Add the Market-layout folder ``root`` as the task ``name`` (``python app.py --dataset NAME=ROOT``).

        The folder is read now (:func:`pose2id_demo.data.load_market`, strict: junk, pid −1, dropped;
        distractors, pid 0, kept in the gallery; a file not named ``{pid}_c{cam}…`` is an error naming it);
        features are extracted on first use.

        Returns:
            ``{"name", "root", "n_query", "n_gallery", "n_train"}``.

        Raises:
            Pose2IDError: a bad name (taken, or not 1-40 letters, digits, ``_.-``), a missing folder, a folder
                not in Market layout or one with a badly named image.
        """
        name = str(name).strip()
        if not DATASET_NAME.fullmatch(name):
            raise Pose2IDError(f"dataset name {name[:40]!r} must be 1-40 letters, digits, '_', '.' or '-' "
                               "(starting with a letter or digit).")
        if name.lower() in (t.lower() for t in self.tasks()):
            raise Pose2IDError(f"dataset name {name!r} is taken (tasks: {', '.join(self.tasks())}).")
        if not Path(root).is_dir():
            raise Pose2IDError(f"dataset folder {root} does not exist or is not a folder.")
        try:
            ds = load_market(root, strict=True)
        except (ValueError, OSError) as exc:
            raise Pose2IDError(str(exc)) from None
        self.datasets[name] = Path(ds.root)
        log.info("dataset %s: %s", name, ds)
        return {"name": name, "root": str(ds.root), "n_query": len(ds.query), "n_gallery": len(ds.gallery),
                "n_train": len(ds.train)}

    def tasks(self) -> list[str]:
        """The task names: SynthPed's three, then the extra datasets in the order they were added."""
        return [*TASKS, *self.datasets]

    def n_queries(self, task: str) -> int:
        """How many queries ``task`` has, read from file names only (no features): the query slider's range."""
        task = check_choice("task", task, self.tasks())
        if task in self.datasets:
            return self.models.once(("n_queries", task), lambda: len(load_market(self.datasets[task]).query))
        from pose2id_demo.data import synthped

        return int(synthped.NUM_TEST_IDS * synthped.QUERIES_PER_ID)

    def images(self, task: str) -> None:
        """Make sure the image files behind ``task``'s paths exist: a SynthPed task's features come shipped
        (no rendering needed for the tables), but ranked lists and the query index open the images, which
        are rendered once into the cache (about a minute; the app's warm-up does it at launch)."""
        if task in TASKS:
            self.models.once(("images", task), lambda: ensure_benchmark(task, progress=False))

    def _request(self, task: str, backbone: str, settings: ablation.Settings | None) -> tuple[str, str,
                                                                                             ablation.Settings]:
        """``(task, backbone, settings)`` with the task checked; ``settings`` default to Settings' defaults (a
        request's raw values are checked once, by :func:`.inputs.check_settings`, where they come in)."""
        return check_choice("task", task, self.tasks()), str(backbone)[:64], settings or ablation.Settings()

    def _cache(self, key: tuple) -> ScopedCache:
        return ScopedCache(key, {"row": self.results, "feats": self.feats, "dist": self.dists})

    def bench_data(self, task: str, backbone: str, progress: ProgressFn = noop_progress) -> BenchData:
        """Benchmark features of ``(task, backbone)``: extracted once (disk-cached by DATA), kept here."""
        task = check_choice("task", task, self.tasks())
        backbone = self.check_backbone(backbone)
        hit = self.models.store.get(("bench", task, backbone))
        if hit is not None:  # loaded: no need to wait for the CPU
            return hit
        with self.models.cpu.hold(INTERACTIVE, f"loading the {task} features", progress):
            return self.models.once(("bench", task, backbone), lambda: self._load(task, backbone, progress))

    def _load(self, task: str, backbone: str, progress: ProgressFn) -> BenchData:
        """The features of ``(task, backbone)`` as :meth:`bench_data` keeps them."""
        t = time.perf_counter()
        if task in self.datasets:
            progress(0.05, f"Features of {task} ({backbone}): extracted once, then read from the disk cache …")
            d = self.models.folder_features(backbone, task, self.datasets[task], progress=True)
        else:
            progress(0.05, f"Loading {task} benchmark features ({backbone}) …")
            d = self.models.dataset_features(backbone, task, progress=True)
        data = BenchData(
            q=_l2n(d["q_feats"]), g=_l2n(d["g_feats"]),
            q_pids=np.asarray(d["q_pids"]), g_pids=np.asarray(d["g_pids"]),
            q_camids=np.asarray(d["q_camids"]), g_camids=np.asarray(d["g_camids"]),
            q_paths=[str(p) for p in d["q_paths"]], g_paths=[str(p) for p in d["g_paths"]],
        )
        if task in self.datasets:
            self._attach_user_generated(data, task, backbone)
        else:
            self._attach_generated(data, task, backbone)
        log.info("benchmark %s/%s: %d query, %d gallery in %.1f s", task, backbone, len(data.q),
                 len(data.g), time.perf_counter() - t)
        return data

    def _attach_generated(self, data: BenchData, task: str, backbone: str) -> None:
        """Attach the shipped generated-image features (IPG) when they match this image list."""
        path = ASSETS / "features" / f"synthped-{task}-{backbone}-gen.npz"
        if not path.is_file():
            data.gen_note = (f"No generated features are shipped for {task}/{backbone} "
                             f"({path.name}); the IPG rows are not available.")
            return
        if not self._use_generated(data, path):
            data.gen_note = (f"The shipped generated features {path.name} do not match the current "
                             f"{task} image list; the IPG rows are not available.")
            log.warning(data.gen_note)

    @staticmethod
    def _use_generated(data: BenchData, path: Path, backbone: str | None = None) -> bool:
        """Attach ``path``'s ``q_gen``/``g_gen`` if they match ``data``'s image lists (and, when given, were
        made with ``backbone``: the ``settings`` the generate command writes); False otherwise."""
        try:
            z = read_generated(path)
        except ValueError as exc:
            log.info("%s: not usable as generated features (%s)", path.name, exc)
            return False
        if backbone is not None and z["settings"].get("backbone") != backbone:
            return False
        q_gen, g_gen = z["q_gen"], z["g_gen"]
        lists = {k: z[k] for k in ("q_paths", "g_paths") if k in z}
        ok = q_gen.ndim == 3 and g_gen.ndim == 3
        ok = ok and q_gen.shape[:1] == data.q.shape[:1] and g_gen.shape[:1] == data.g.shape[:1]
        ok = ok and q_gen.shape[-1] == data.q.shape[1] and g_gen.shape[-1] == data.g.shape[1]
        for k, mine in (("q_paths", data.q_paths), ("g_paths", data.g_paths)):
            if ok and k in lists:
                ok = [Path(p).name for p in lists[k]] == [Path(p).name for p in mine]
        if not ok:
            return False
        # Unit-length per generated image, like the originals: η then weighs unit vectors (eq. 9's ‖·‖), instead
        # of being rescaled by the backbone's raw feature norm (≈ 19 for synthped-reid, ≈ 27 for MobileNetV2).
        data.q_gen, data.g_gen = _l2n(q_gen), _l2n(g_gen)
        return True

    def _attach_user_generated(self, data: BenchData, task: str, backbone: str) -> None:
        """Generated features of an extra dataset: the first ``ROOT/*.npz`` (name order) that ``python -m
        pose2id_demo generate`` wrote for this backbone and this folder's image list; else a note on how to
        make them."""
        root = self.datasets[task]
        candidates = sorted(p for p in root.glob("*.npz") if p.is_file())[:MAX_GEN_CANDIDATES]
        for path in candidates:
            if path.stat().st_size > DEFAULT_MAX_BYTES:
                continue
            try:
                if self._use_generated(data, path, backbone):
                    data.gen_note = f"Generated features: {path.name}."
                    log.info("dataset %s/%s: generated features from %s", task, backbone, path)
                    return
            except Exception as exc:  # noqa: BLE001 — any .npz in the folder: unreadable means "not one of ours"
                log.warning("dataset %s: %s is not a generated-feature file (%s)", task, path.name, exc)
        data.gen_note = (f"No generated features for {task}/{backbone} in {root}; the IPG rows are not available. "
                         f"Make them with: python -m pose2id_demo generate --data {root} --backbone {backbone} "
                         f"--out {root / f'gen-{backbone}.npz'} (then restart the app).")

    def benchmark(self, task: str = "standard", backbone: str = "synthped-reid",
                  settings: ablation.Settings | None = None, progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """The ablation table of Table 2 on a task: baseline, +NFC, +IPG, +NFC+IPG
        (:func:`pose2id_demo.ablation.table`) at ``settings`` (default: :class:`~pose2id_demo.ablation.Settings`'s).

        Returns:
            ``{"rows": [dict(setting, mAP, Rank-1, Rank-5, Rank-10, mINP, ID²)], "notes": [str],
            "task": str, "backbone": str, "settings": Settings (as checked), "n_query": int, "n_gallery": int,
            "id2_variant": str, "id2_label": str}``; metrics in percent, ID² in the variant the settings name
            (``paper``: eqs. 20-21; ``official``: ID2.py). Rows that cannot be computed (no generated features
            for the task) are left out and a note says why.
        """
        task, backbone, s = self._request(task, backbone, settings)
        with self.models.cpu.hold(INTERACTIVE, "a benchmark table", progress):
            data = self.bench_data(task, backbone, progress)
            notes = []
            if s.nfc_on == "none":
                notes.append("NFC is switched off: the +NFC rows are left out.")
            if s.ipg_on == "none":
                notes.append("IPG is switched off: the +IPG rows are left out.")
            elif data.q_gen is None:
                notes.append(data.gen_note)
            rows = ablation.table(data, s, self._cache((task, backbone)), progress)
            return {"rows": [ablation.percent_row(r) for r in rows], "notes": notes, "task": task,
                    "backbone": backbone, "settings": s, "n_query": int(len(data.q)), "n_gallery": int(len(data.g)),
                    "id2_variant": s.id2_variant, "id2_label": id2_label(s.id2_variant)}

    def ranks(self, task: str = "standard", backbone: str = "synthped-reid", query_index: int = 0,
              settings: ablation.Settings | None = None, top: int = QUERY_TOP) -> dict[str, Any]:
        """Top-``top`` gallery list of one query before (baseline) and after (+NFC+IPG, or what is on).

        Gallery images of the query's identity from the query's camera are left out, as in the
        Market-1501 protocol the metrics use.

        Returns:
            ``{"query": dict(path, pid, camid), "before": [dict(path, pid, camid, distance, match)],
            "after": [...], "after_setting": str}``.
        """
        task, backbone, s = self._request(task, backbone, settings)
        check_int("query index", query_index, 0, self.n_queries(task) - 1)
        top = check_int("top", top, 1, 50)
        with self.models.cpu.hold(INTERACTIVE, "ranked lists"):
            return self._ranks(task, backbone, s, query_index, top)

    def _ranks(self, task: str, backbone: str, s: ablation.Settings, query_index: int, top: int) -> dict[str, Any]:
        data = self.bench_data(task, backbone)
        qi = check_int("query index", query_index, 0, len(data.q) - 1)
        a, cache = replace(s, id2_variant="paper"), self._cache((task, backbone))
        self.images(task)
        after_row = ablation.after_row(data, a)
        out = {"query": {"path": data.q_paths[qi], "pid": int(data.q_pids[qi]), "camid": int(data.q_camids[qi])},
               "after_setting": after_row}
        for name, row in (("before", "baseline"), ("after", after_row)):
            if s.rerank:
                dist = ablation.distances(data, a, row, cache)[qi]
            else:
                q, g = ablation.stage_features(data, a, row, cache)
                dist = np.linalg.norm(g - q[qi][None], axis=1)
            out[name] = self.top_list(data, qi, dist, top)
        return out

    def per_query(self, task: str = "standard", backbone: str = "synthped-reid",
                  settings: ablation.Settings | None = None, progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """Every query's AP (%) and first-correct rank under the baseline and under the current setting
        (:func:`pose2id_demo.ablation.per_query`), and the typical query of that change
        (:func:`pose2id_demo.ablation.typical_query`: AP change closest to the mean change; ties → the
        baseline first-correct rank closest to the median).

        Returns:
            ``{"rows": [dict(query, pid, AP before, AP after, ΔAP, rank before, rank after)],
            "typical": int | None, "mean_delta_ap": float, "after_setting": str, "rule": str}``.
        """
        task, backbone, s = self._request(task, backbone, settings)
        with self.models.cpu.hold(INTERACTIVE, "the per-query view", progress):
            data = self.bench_data(task, backbone, progress)
            a, key = replace(s, id2_variant="paper"), (task, backbone)
            ck = ("per_query", key) + ablation.row_key(a, ablation.after_row(data, a)) + (s.rerank,)
            hit = self.results.get(ck)
            if hit is not None:
                return hit
            pq = ablation.per_query(data, a, self._cache(key))
            delta = pq["ap_after"] - pq["ap_before"]
            rows = [{"query": int(i), "pid": int(pq["pid"][i]), "AP before": float(pq["ap_before"][i]),
                     "AP after": float(pq["ap_after"][i]), "ΔAP": round(float(delta[i]), 2),
                     "rank before": int(pq["rank_before"][i]), "rank after": int(pq["rank_after"][i])}
                    for i in range(len(data.q))]
            valid = np.isfinite(delta)
            out = {"rows": rows, "typical": ablation.typical_query(pq), "after_setting": pq["after_setting"],
                   "mean_delta_ap": round(float(delta[valid].mean()), 2) if valid.any() else float("nan"),
                   "rule": ablation.TYPICAL_RULE}
            return self.results.put(ck, out)

    def distance_distributions(self, task: str = "standard", backbone: str = "synthped-reid",
                               settings: ablation.Settings | None = None, progress: ProgressFn = noop_progress
                               ) -> dict[str, Any]:
        """Same-identity vs different-identity query-gallery distance histograms of every row the settings allow,
        with their overlap (:func:`pose2id_demo.ablation.distance_distributions`; Euclidean distances of each row's
        features, so re-ranking does not apply).

        Returns:
            ablation's ``{"edges", "rows": {row: {"same", "different", "overlap", "mean_same", …}}}`` plus
            ``"after_setting"`` (the row that stands for the current setting), ``"task"`` and ``"backbone"``.
        """
        task, backbone, s = self._request(task, backbone, settings)
        with self.models.cpu.hold(INTERACTIVE, "the distance distributions", progress):
            data = self.bench_data(task, backbone, progress)
            a = replace(s, rerank=False, id2_variant="paper")
            names = ablation.row_names(data, a)
            ck = ("distances", task, backbone) + tuple(ablation.row_key(a, r) for r in names)
            hit = self.results.get(ck)
            if hit is not None:
                return hit
            dd = ablation.distance_distributions(data, a, cache=self._cache((task, backbone)))
            return self.results.put(ck, {**dd, "after_setting": ablation.after_row(data, a), "task": task,
                                         "backbone": backbone})

    def identities(self, task: str = "standard", backbone: str = "synthped-reid") -> list[tuple[int, int]]:
        """``(pid, number of query + gallery images)`` of every identity of ``task`` (pid > 0), most images
        first (ties by pid): the choices of the Fig. 2 view."""
        task, backbone, _ = self._request(task, backbone, None)
        data = self.bench_data(task, backbone)
        pids = np.concatenate([data.q_pids, data.g_pids])
        uniq, counts = np.unique(pids[pids > 0], return_counts=True)
        order = np.lexsort((uniq, -counts))
        return [(int(uniq[i]), int(counts[i])) for i in order]

    def identity_view(self, task: str = "standard", backbone: str = "synthped-reid",
                      settings: ablation.Settings | None = None, pid: int | None = None) -> dict[str, Any]:
        """The paper's Fig. 2 for one identity of ``task``: one feature dimension of its query + gallery features
        around the identity centre, at the baseline and after the current setting
        (:func:`pose2id_demo.ablation.identity_view`; ``pid`` None: the identity with most images).

        Raises:
            Pose2IDError: ``pid`` is not an identity of the task with at least 2 images.
        """
        task, backbone, s = self._request(task, backbone, settings)
        if pid is not None:
            pid = check_identity(pid, dict(self.identities(task, backbone)), task)
        with self.models.cpu.hold(INTERACTIVE, "the identity view"):
            data = self.bench_data(task, backbone)
            a = replace(s, rerank=False, id2_variant="paper")
            return ablation.identity_view(data, a, pid, cache=self._cache((task, backbone)))

    def ranked_rows(self, task: str = "standard", backbone: str = "synthped-reid",
                    settings: ablation.Settings | None = None, order: str = "worst", top: int = 5
                    ) -> dict[str, Any]:
        """Every query's ranked list under the current setting with its AP, and each listed gallery item's
        distance, camera and match (:func:`pose2id_demo.ablation.ranked_rows`, ``order`` worst / best AP first or
        query order), with each query's baseline AP beside it.

        Returns:
            ``{"rows": ablation's rows, each with "AP before" added, "after_setting": str}``.
        """
        task, backbone, s = self._request(task, backbone, settings)
        order = check_choice("order", order, ablation.RANK_ORDERS)
        top = check_int("top", top, 1, QUERY_TOP)
        with self.models.cpu.hold(INTERACTIVE, "the ranked-list table"):
            data = self.bench_data(task, backbone)
            a, cache = replace(s, id2_variant="paper"), self._cache((task, backbone))
            after = ablation.after_row(data, a)
            ck = ("ranked_rows", task, backbone, order, top, s.rerank) + ablation.row_key(a, after)
            hit = self.results.get(ck)
            if hit is not None:
                return hit
            rows = ablation.ranked_rows(data, a, order=order, top=top, cache=cache)
            base = ablation.ranked_rows(data, a, row="baseline", order="query", top=1, cache=cache)
            for r in rows:
                r["AP before"] = base[r["query"]]["AP"]
            return self.results.put(ck, {"rows": rows, "after_setting": after})

    @staticmethod
    def top_list(data: BenchData, qi: int, dist: np.ndarray, top: int) -> list[dict[str, Any]]:
        keep = ~((data.g_pids == data.q_pids[qi]) & (data.g_camids == data.q_camids[qi]))
        idx = np.flatnonzero(keep)
        order = idx[np.argsort(dist[idx], kind="stable")[:top]]
        return [{"path": data.g_paths[j], "pid": int(data.g_pids[j]), "camid": int(data.g_camids[j]),
                 "distance": round(float(dist[j]), 4), "match": bool(data.g_pids[j] == data.q_pids[qi])}
                for j in order]

    def tsne(self, task: str = "standard", backbone: str = "synthped-reid", settings: ablation.Settings | None = None,
             n_ids: int = 10, progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """2-D t-SNE of ``n_ids`` identities' query+gallery features before and after centralization (Fig. 4).

        PCA to at most 50 dimensions first; perplexity clamped below the number of samples; fixed
        ``random_state`` so that the picture is reproducible. The identities are the ``n_ids`` with the
        most images (ties by id), the same for every setting.

        Returns:
            ``{"before": (n, 2), "after": (n, 2), "pids": (n,), "is_query": (n,), "after_setting": str,
            "id2_before": float, "id2_after": float}``.
        """
        task, backbone, s = self._request(task, backbone, settings)
        n_ids = check_int("number of identities", n_ids, *N_IDS_RANGE)
        id2_variant = s.id2_variant
        with self.models.cpu.hold(LONG, "a t-SNE", progress):
            data = self.bench_data(task, backbone, progress)
            key = (task, backbone)
            a, cache = replace(s, rerank=False), self._cache(key)
            after_row = ablation.after_row(data, a)
            ck = ("tsne", key, n_ids, id2_variant) + ablation.row_key(a, after_row)
            hit = self.tsne_cache.get(ck)
            if hit is not None:
                return hit
            pids = np.concatenate([data.q_pids, data.g_pids])
            is_query = np.concatenate([np.ones(len(data.q), bool), np.zeros(len(data.g), bool)])
            uniq, counts = np.unique(pids[pids > 0], return_counts=True)  # no distractors (0) / junk (-1)
            chosen = uniq[np.lexsort((uniq, -counts))][:n_ids]
            sel = np.flatnonzero(np.isin(pids, chosen))
            out: dict[str, Any] = {"pids": pids[sel], "is_query": is_query[sel], "after_setting": after_row,
                                   "id2_variant": id2_variant}
            for i, (name, row) in enumerate((("before", "baseline"), ("after", after_row))):
                progress(0.3 + 0.35 * i, f"t-SNE {name} …")
                q, g = ablation.stage_features(data, a, row, cache)
                x = np.concatenate([q, g])[sel]
                out[name] = tsne_2d(x)
                out[f"id2_{name}"] = round(float(id2(x, pids[sel], variant=id2_variant)), 4)
            return self.tsne_cache.put(ck, out)

    def benchmark_query_index(self, image: Image.Image, task: str = "standard",
                              backbone: str = "synthped-reid") -> int | None:
        """The benchmark query index of ``image`` if it is (pixel for pixel) a benchmark query image."""
        with self.models.cpu.hold(INTERACTIVE, "recognising a benchmark query"):
            try:
                data = self.bench_data(task, backbone)
            except DependencyMissing:
                return None
            return self.models.once(("qindex", task, backbone), lambda: self._query_index(task, data)).get(
                image_digest(image))

    def _query_index(self, task: str, data: BenchData) -> dict[str, int]:
        """Image digest → query index of ``task``'s query images (the first of identical ones)."""
        self.images(task)
        out: dict[str, int] = {}
        for i, p in enumerate(data.q_paths):
            try:
                with Image.open(p) as im:
                    out.setdefault(image_digest(im.convert("RGB")), i)
            except OSError:
                continue
        return out

    def benchmark_examples(self, n: int = 6, task: str = "standard") -> list[str]:
        """Paths of ``n`` benchmark query images of distinct identities (for the UI's examples)."""
        ds = load_market(ensure_benchmark(task, progress=False))
        seen, out = set(), []
        for r in ds.query:
            if r.pid not in seen:
                seen.add(r.pid)
                out.append(r.path)
            if len(out) >= n:
                break
        return out

    def export_features(self, task: str, backbone: str, path: str | Path) -> Path:
        """Write the benchmark's features as a feature file (the CLI's keys; ``q_gen``/``g_gen`` if shipped)."""
        task, backbone = check_choice("task", task, TASKS), self.check_backbone(backbone)
        with self.models.cpu.hold(LONG, "an export of the benchmark features"):
            data = self.bench_data(task, backbone)
            raw = self.models.dataset_features(backbone, task, progress=False)
            # Raw features (as the backbone gave them): evaluating the file repeats exactly the benchmark's steps.
            arrays = {"q_feats": np.asarray(raw["q_feats"], np.float32),
                      "g_feats": np.asarray(raw["g_feats"], np.float32), "q_pids": data.q_pids,
                      "g_pids": data.g_pids, "q_camids": data.q_camids, "g_camids": data.g_camids}
            if data.q_gen is not None and data.g_gen is not None:  # as shipped (raw): evaluation repeats our steps
                z = read_generated(ASSETS / "features" / f"synthped-{task}-{backbone}-gen.npz")
                arrays.update(q_gen=z["q_gen"], g_gen=z["g_gen"])
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **arrays)
            return path
