"""Which benchmark query an uploaded image is: the Generate tab ranks the gallery of a benchmark query image (its
examples are such images), recognised pixel for pixel however it arrives (:func:`.inputs.image_digest`)."""

from __future__ import annotations

from PIL import Image

from .errors import DependencyMissing
from .features import BenchData, FeatureStore
from .inputs import image_digest
from .models import Models
from .scheduler import INTERACTIVE

__all__ = ["QueryImages"]


class QueryImages:
    """The query images of the benchmark tasks, indexed by content once per (task, backbone).

    Args:
        features: the tasks' features and image paths.
        models: where the index is kept once (:meth:`~.models.Models.once`) and the CPU pool.
    """

    def __init__(self, features: FeatureStore, models: Models) -> None:
        self.features, self.models = features, models

    def index_of(self, image: Image.Image, task: str = "standard", backbone: str = "synthped-reid") -> int | None:
        """The benchmark query index of ``image`` if it is (pixel for pixel) a query image of ``task``."""
        with self.models.cpu.hold(INTERACTIVE, "recognising a benchmark query"):
            try:
                data = self.features.bench_data(task, backbone)
            except DependencyMissing:
                return None
            return self.models.once(("qindex", task, backbone), lambda: self._index(task, data)).get(
                image_digest(image))

    def _index(self, task: str, data: BenchData) -> dict[str, int]:
        """Image digest → query index of ``task``'s query images (the first of identical ones)."""
        self.features.images(task)
        out: dict[str, int] = {}
        for i, p in enumerate(data.q_paths):
            try:
                with Image.open(p) as im:
                    out.setdefault(image_digest(im.convert("RGB")), i)
            except OSError:
                continue
        return out
