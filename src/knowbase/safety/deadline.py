"""Cooperative cancellation: a deadline and a cancel signal carried through contextvars.

Python cannot stop a thread, so a tool call that times out must be asked to stop. A
:class:`CancelScope` is that request: :meth:`knowbase.agents.tools.Tool.run` opens one
around each call, and work that can be interrupted registers how with
:func:`on_cancel` (the SQL executor registers the connection's ``interrupt``) or polls
:func:`check_cancelled` between steps (a model call checks between tokens). When the
call times out the scope is cancelled: the callbacks run at once from the timing
thread and the work ends with :class:`CancelledError`.

Example::

    with cancel_scope(2.0) as scope:       # nested scopes keep the earliest deadline
        remaining = effective_timeout(10.0)   # 2.0: the scope's deadline wins
        with on_cancel(conn.interrupt):
            conn.execute(sql)              # interrupted if scope.cancel() is called
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from knowbase.errors import BudgetExceeded


class CancelledError(BudgetExceeded):
    """The work was cancelled (its caller timed out or gave up); ``reason`` says why."""


class CancelScope:
    """A cancel signal with an optional deadline (``time.monotonic`` seconds).

    Thread-safe: :meth:`cancel` may be called from any thread; callbacks registered with
    :meth:`add_callback` run once, in the cancelling thread, and never raise out of it.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], object]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        """:meth:`cancel` was called."""
        return self._event.is_set()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never below 0), or None without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def cancel(self, reason: str = "cancelled") -> None:
        """Signal cancellation and run the registered callbacks (once)."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a failing interrupt must not keep the others from running
                continue

    def add_callback(self, callback: Callable[[], object]) -> int:
        """Run ``callback`` on cancellation (at once if already cancelled); returns a handle."""
        with self._lock:
            handle = self._next
            self._next += 1
            if not self._event.is_set():
                self._callbacks[handle] = callback
                return handle
        callback()
        return handle

    def remove_callback(self, handle: int) -> None:
        """Forget a callback registered with :meth:`add_callback`."""
        with self._lock:
            self._callbacks.pop(handle, None)


_SCOPE: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar("knowbase_cancel_scope", default=None)


def current_scope() -> CancelScope | None:
    """The innermost scope of this context, or None."""
    return _SCOPE.get()


@contextmanager
def cancel_scope(timeout: float | None = None, *, scope: CancelScope | None = None) -> Iterator[CancelScope]:
    """Run the block inside a scope (a new one with ``timeout`` seconds, or ``scope``).

    A scope opened inside another keeps the earlier deadline, and cancelling the outer
    scope cancels the inner one.
    """
    parent = _SCOPE.get()
    own = scope or CancelScope(None if timeout is None else time.monotonic() + timeout)
    if parent is not None and parent.deadline is not None:
        own.deadline = parent.deadline if own.deadline is None else min(own.deadline, parent.deadline)
    handle = parent.add_callback(lambda: own.cancel(parent.reason or "cancelled")) if parent is not None else None
    token = _SCOPE.set(own)
    try:
        yield own
    finally:
        _SCOPE.reset(token)
        if parent is not None and handle is not None:
            parent.remove_callback(handle)


def effective_timeout(timeout: float) -> float:
    """``timeout`` seconds, shortened to what the current scope has left."""
    scope = _SCOPE.get()
    remaining = scope.remaining() if scope is not None else None
    return timeout if remaining is None else min(timeout, remaining)


def check_cancelled() -> None:
    """Raise :class:`CancelledError` when the current scope is cancelled or past its deadline."""
    scope = _SCOPE.get()
    if scope is None:
        return
    if scope.cancelled:
        raise CancelledError(f"stopped: {scope.reason}", reason=scope.reason, partial=None)
    remaining = scope.remaining()
    if remaining is not None and remaining <= 0:
        raise CancelledError("stopped: the time limit passed", reason="deadline", partial=None)


@contextmanager
def on_cancel(callback: Callable[[], object]) -> Iterator[None]:
    """Run ``callback`` if the current scope is cancelled while the block runs (no scope: no-op)."""
    scope = _SCOPE.get()
    if scope is None:
        yield
        return
    handle = scope.add_callback(callback)
    try:
        yield
    finally:
        scope.remove_callback(handle)
