"""One small LRU for loaded models (process-wide resource caches).

Loading a model costs seconds and hundreds of MB, so each backend keeps the few it used
last: llama.cpp GGUF models (:data:`knowbase.models.llamacpp.MODELS`), sentence-transformers
models (:data:`knowbase.models.sentence_transformers.MODELS`) and ONNX Runtime sessions
(:data:`knowbase.models.onnx_embedder.SESSIONS`). They are caches of immutable loaded
resources, never of user state; a test or a caller can pass its own instance.

Example::

    >>> cache = LoadedCache(size=2)
    >>> cache.get("a", lambda: [1])
    [1]
    >>> cache.get("a", lambda: [2])       # a hit: the loader is not called
    [1]
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LoadedCache(Generic[V]):
    """A thread-safe LRU of at most ``size`` loaded values.

    A load runs under the cache's lock, so two threads asking for the same model load it
    once. An evicted value is dropped, not closed: a thread still using it keeps its
    reference, and the memory is freed when the last user lets go.

    Args:
        size: values kept at once (the least recently used is dropped); at least 1.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The value for ``key``, calling ``load()`` on a miss (its errors propagate and
        nothing is cached)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = load()
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return value

    def keys(self) -> list[Hashable]:
        """The keys held now, least recently used first. (No ``__len__``: an empty cache
        must stay truthy, since callers write ``cache or DEFAULT``.)"""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget every value (each is freed once nothing else holds it)."""
        with self._lock:
            self._items.clear()
