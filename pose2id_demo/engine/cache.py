"""Bounded, thread-safe caches, and the adapter that hands them to :mod:`pose2id_demo.ablation`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

__all__ = ["LRU", "ScopedCache"]


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._d)


class ScopedCache:
    """LRUs as one ablation cache for one feature set: keys are prefixed with ``scope`` (e.g. the task and
    backbone) and routed by their first element, the kind (``row``, ``feats``, ``dist``)."""

    def __init__(self, scope: tuple, lrus: dict[str, LRU]) -> None:
        self.scope, self.lrus = scope, lrus

    def get(self, key: tuple) -> Any:
        return self.lrus[key[0]].get(self.scope + key)

    def put(self, key: tuple, value: Any) -> Any:
        return self.lrus[key[0]].put(self.scope + key, value)
