"""The model as a shared resource: a bounded queue in front of in-process models.

One in-process llama.cpp model answers one request at a time (a ``Llama`` object is not
thread-safe, and on a few CPU cores two generations at once are each slower than one after
the other). A request first takes a :class:`Ticket` (:meth:`ModelQueue.reserve`, at once,
in the request handler: when ``concurrency + max_waiting`` tickets are out it raises
:class:`QueueFullError`, which the server sends as ``503`` with ``Retry-After``), then waits
for the model in its worker thread (:meth:`Ticket.acquire`) and gives it back with
:meth:`Ticket.release` as soon as it is done or its client has gone away.

Models behind an OpenAI-compatible URL (vLLM, Ollama...) do not queue here: their
concurrency is the backend's (:meth:`ModelQueue.ticket_for` returns a no-op ticket).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from knowbase.errors import RuntimeFailure

IN_PROCESS_BACKENDS = frozenset({"llamacpp", "fake"})
"""Chat backends that run in this process and therefore share the queue."""


class QueueFullError(RuntimeFailure):
    """Every model slot is busy and the waiting line is full (``retry_after`` in seconds)."""


class QueueTimeoutError(RuntimeFailure):
    """A request waited longer than the queue's ``timeout`` for the model (``timeout`` seconds)."""


@dataclass
class Ticket:
    """A place in the queue. ``position`` is how many requests were ahead of it when it was
    taken (0: the model was free). Release it exactly once (later calls do nothing)."""

    queue: ModelQueue | None
    position: int = 0
    _acquired: bool = False
    _released: bool = False

    def acquire(self) -> None:
        """Wait for the model (blocks this thread).

        Raises:
            QueueTimeoutError: the wait exceeded the queue's timeout (the ticket is released).
        """
        if self.queue is None or self._acquired or self._released:
            return
        if not self.queue._slots.acquire(timeout=self.queue.timeout):
            self.release()
            raise QueueTimeoutError(f"waited {self.queue.timeout:.0f} s for the model; try again later",
                                    timeout=self.queue.timeout, retry_after=self.queue.retry_after)
        self._acquired = True

    def release(self) -> None:
        """Give the model (or the place in line) back."""
        q = self.queue
        if q is None:
            return
        with q._lock:  # release may be called from the worker thread and the request's thread
            if self._released:
                return
            self._released = True
            q._out -= 1
            acquired = self._acquired
        if acquired:
            q._slots.release()


class ModelQueue:
    """A bounded queue for in-process model work.

    Args:
        concurrency: requests the model serves at once (1 for one llama.cpp model).
        max_waiting: requests allowed to wait behind them; more get :class:`QueueFullError`.
        timeout: seconds a request may wait for the model.
        retry_after: seconds suggested to a refused client (the ``Retry-After`` header).
    """

    def __init__(self, *, concurrency: int = 1, max_waiting: int = 8, timeout: float = 300.0,
                 retry_after: int = 5) -> None:
        if concurrency < 1 or max_waiting < 0:
            raise ValueError("concurrency must be >= 1 and max_waiting >= 0")
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self.timeout = timeout
        self.retry_after = retry_after
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._out = 0

    @property
    def in_use(self) -> int:
        """Tickets out now (running plus waiting)."""
        with self._lock:
            return self._out

    def reserve(self) -> Ticket:
        """Take a place in line without waiting.

        Raises:
            QueueFullError: ``concurrency + max_waiting`` tickets are already out.
        """
        with self._lock:
            if self._out >= self.concurrency + self.max_waiting:
                raise QueueFullError(f"the model is busy: {self._out} requests running or waiting; retry later",
                                     retry_after=self.retry_after)
            position = max(0, self._out - self.concurrency + 1)
            self._out += 1
        return Ticket(self, position)

    def ticket_for(self, backend_name: str | None) -> Ticket:
        """A real ticket for an in-process backend; a no-op one for remote backends or no model (None)."""
        if backend_name in IN_PROCESS_BACKENDS:
            return self.reserve()
        return Ticket(None)
