"""Open knowledge bases for concurrent requests: a small pool of connections per knowledge base.

A :class:`~knowbase.knowledge.base.KnowledgeBase` holds one SQLite connection, which one
thread may use at a time. Requests run in many threads, so each request leases an instance
(:meth:`KBPool.lease`) and gives it back when done; up to ``size`` instances per knowledge
base are opened on demand (they share the embedder; SQLite's WAL mode lets them read while
one of them writes). A request beyond ``size`` waits for a free instance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.base import KnowledgeBase


class KBPool:
    """Instances of one knowledge base.

    Args:
        opener: ``() -> KnowledgeBase`` (raises when it cannot be opened).
        size: most instances open at once.
    """

    def __init__(self, opener: Callable[[], KnowledgeBase], *, size: int = 8) -> None:
        self._open = opener
        self.size = size
        self._free: list[KnowledgeBase] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    @contextmanager
    def lease(self) -> Iterator[KnowledgeBase]:
        """An instance for this thread's exclusive use until the ``with`` block ends."""
        with self._cond:
            while not self._free and self._count >= self.size:
                self._cond.wait()
            base = self._free.pop() if self._free else None
            if base is None:
                self._count += 1
        if base is None:
            try:
                base = self._open()
            except BaseException:
                with self._cond:
                    self._count -= 1
                    self._cond.notify()
                raise
        try:
            yield base
        finally:
            with self._cond:
                if self._closed:
                    self._count -= 1
                    base.close()
                else:
                    self._free.append(base)
                self._cond.notify()

    def close(self) -> None:
        """Close the free instances now and the leased ones when they come back."""
        with self._cond:
            self._closed = True
            free, self._free = self._free, []
            self._count -= len(free)
        for base in free:
            base.close()
