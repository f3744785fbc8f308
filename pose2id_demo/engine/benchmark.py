"""A benchmark session: the Benchmark tab's views (:mod:`.views`) of the benchmark features
(:class:`~.features.FeatureStore`) at any setting — the Table-2 rows, ranked lists, per-query table, distance
distributions, Fig. 2 and t-SNE — each request checked, computed holding a CPU slot and kept by the settings it
depends on (moving one slider recomputes only the rows that slider touches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pose2id_demo import ablation

from . import views
from .cache import LRU, ScopedCache
from .features import FeatureStore
from .inputs import N_IDS_RANGE, QUERY_TOP, check_choice, check_identity, check_int
from .scheduler import INTERACTIVE, LONG, CpuPool, ProgressFn, noop_progress

__all__ = ["BenchmarkSession"]


class BenchmarkSession:
    """Cached views of the benchmark shared by every user; every method takes ``(task, backbone, Settings)``
    (``settings`` None: :class:`~pose2id_demo.ablation.Settings`' defaults; a request's raw values are checked
    once, by :func:`.inputs.check_settings`, where they come in)."""

    def __init__(self, features: FeatureStore, cpu: CpuPool) -> None:
        self.features, self.cpu = features, cpu
        self.results = LRU(512)  # metric rows, per-query tables, distributions, ranked-list tables
        self.feats = LRU(24)  # centralized feature sets (≤ ~5 MB each on SynthPed)
        self.dists = LRU(12)  # distance matrices (re-ranking is the slow one)
        self.tsne_cache = LRU(32)

    def _request(self, task: str, backbone: str, settings: ablation.Settings | None) -> tuple[str, str,
                                                                                             ablation.Settings]:
        return check_choice("task", task, self.features.tasks()), str(backbone)[:64], settings or ablation.Settings()

    def _cache(self, key: tuple) -> ScopedCache:
        """The ablation's cache of one (task, backbone)."""
        return ScopedCache(key, {"row": self.results, "feats": self.feats, "dist": self.dists})

    @staticmethod
    def _kept(lru: LRU, key: tuple, make: Callable[[], Any]) -> Any:
        hit = lru.get(key)
        return hit if hit is not None else lru.put(key, make())

    def benchmark(self, task: str = "standard", backbone: str = "synthped-reid",
                  settings: ablation.Settings | None = None, progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """The ablation table of Table 2 on a task (:func:`.views.table_rows`): baseline, +NFC, +IPG, +NFC+IPG.

        Returns:
            ``{"rows", "notes": [why rows are left out], "task", "backbone", "settings": Settings (as checked),
            "n_query", "n_gallery", "id2_variant", "id2_label"}``.
        """
        task, backbone, s = self._request(task, backbone, settings)
        with self.cpu.hold(INTERACTIVE, "a benchmark table", progress):
            data = self.features.bench_data(task, backbone, progress)
            notes = views.table_notes(data, s)
            rows = views.table_rows(data, s, self._cache((task, backbone)), progress)
            return {"rows": rows, "notes": notes, "task": task, "backbone": backbone, "settings": s,
                    **views.table_summary(data, s)}

    def ranks(self, task: str = "standard", backbone: str = "synthped-reid", query_index: int = 0,
              settings: ablation.Settings | None = None, top: int = QUERY_TOP) -> dict[str, Any]:
        """Top-``top`` gallery list of one query before and after the setting (:func:`.views.ranks`)."""
        task, backbone, s = self._request(task, backbone, settings)
        check_int("query index", query_index, 0, self.features.n_queries(task) - 1)
        top = check_int("top", top, 1, 50)
        with self.cpu.hold(INTERACTIVE, "ranked lists"):
            data = self.features.bench_data(task, backbone)
            qi = check_int("query index", query_index, 0, len(data.q) - 1)
            self.features.images(task)
            return views.ranks(data, s, qi, top, self._cache((task, backbone)))

    def per_query(self, task: str = "standard", backbone: str = "synthped-reid",
                  settings: ablation.Settings | None = None, progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """Every query's AP and first-correct rank before and after, and the typical query
        (:func:`.views.per_query`)."""
        task, backbone, s = self._request(task, backbone, settings)
        with self.cpu.hold(INTERACTIVE, "the per-query view", progress):
            data, key = self.features.bench_data(task, backbone, progress), (task, backbone)
            return self._kept(self.results, ("per_query", key) + views.per_query_key(data, s),
                              lambda: views.per_query(data, s, self._cache(key)))

    def distance_distributions(self, task: str = "standard", backbone: str = "synthped-reid",
                               settings: ablation.Settings | None = None, progress: ProgressFn = noop_progress
                               ) -> dict[str, Any]:
        """Same / different identity distance histograms of every row (:func:`.views.distributions`) with
        ``"task"`` and ``"backbone"``."""
        task, backbone, s = self._request(task, backbone, settings)
        with self.cpu.hold(INTERACTIVE, "the distance distributions", progress):
            data = self.features.bench_data(task, backbone, progress)
            return self._kept(self.results, ("distances", task, backbone) + views.distributions_key(data, s),
                              lambda: {**views.distributions(data, s, self._cache((task, backbone))), "task": task,
                                       "backbone": backbone})

    def identities(self, task: str = "standard", backbone: str = "synthped-reid") -> list[tuple[int, int]]:
        """``(pid, images)`` of every identity of ``task``, most images first: the Fig. 2 view's choices."""
        task, backbone, _ = self._request(task, backbone, None)
        return views.identities(self.features.bench_data(task, backbone))

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
        with self.cpu.hold(INTERACTIVE, "the identity view"):
            data = self.features.bench_data(task, backbone)
            a = replace(s, rerank=False, id2_variant="paper")
            return ablation.identity_view(data, a, pid, cache=self._cache((task, backbone)))

    def ranked_rows(self, task: str = "standard", backbone: str = "synthped-reid",
                    settings: ablation.Settings | None = None, order: str = "worst", top: int = 5
                    ) -> dict[str, Any]:
        """Every query's ranked list under the setting, with its AP before and after (:func:`.views.ranked_rows`)."""
        task, backbone, s = self._request(task, backbone, settings)
        order = check_choice("order", order, ablation.RANK_ORDERS)
        top = check_int("top", top, 1, QUERY_TOP)
        with self.cpu.hold(INTERACTIVE, "the ranked-list table"):
            data = self.features.bench_data(task, backbone)
            key = ("ranked_rows", task, backbone) + views.ranked_rows_key(data, s, order, top)
            return self._kept(self.results, key, lambda: views.ranked_rows(data, s, order, top,
                                                                           self._cache((task, backbone))))

    def tsne(self, task: str = "standard", backbone: str = "synthped-reid", settings: ablation.Settings | None = None,
             n_ids: int = 10, progress: ProgressFn = noop_progress) -> dict[str, Any]:
        """2-D t-SNE of ``n_ids`` identities before and after centralization, Fig. 4 (:func:`.views.tsne`)."""
        task, backbone, s = self._request(task, backbone, settings)
        n_ids = check_int("number of identities", n_ids, *N_IDS_RANGE)
        with self.cpu.hold(LONG, "a t-SNE", progress):
            data, key = self.features.bench_data(task, backbone, progress), (task, backbone)
            return self._kept(self.tsne_cache, ("tsne", key) + views.tsne_key(data, s, n_ids),
                              lambda: views.tsne(data, s, n_ids, self._cache(key), progress))
