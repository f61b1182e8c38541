"""Trace and span ids carried through a call tree with :mod:`contextvars`.

A higher-level operation opens a span; every model call made inside it (at any depth,
in threads started with :func:`asyncio.to_thread` or ``contextvars.copy_context``)
is recorded under the same trace id, with the innermost span as its parent::

    with span("ask", kind="kb", store=TraceStore(path)):
        with span("retrieve"):
            ...                       # embedding call recorded under this span
        model.chat(prompt)            # recorded under "ask"

Span rows are written once, when the span ends (status ``ok`` or ``error``), so an
interrupted run leaves no half-written rows. Rows produced inside an open trace (calls and
spans) are buffered on the root span and written in one transaction per store when the
trace ends, or every :data:`FLUSH_EVERY` rows in long runs (the batching idea of
OpenTelemetry's BatchSpanProcessor, without a thread): a traced 3-step chain costs one
commit instead of four.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.tracing.store import TraceStore


@dataclass(slots=True)
class Span:
    """One step of a traced operation (ids are 16 hex chars; times are Unix seconds)."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    started: float
    store: TraceStore | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    ended: float | None = None
    status: str = "ok"
    error: str | None = None
    root: Span | None = None
    pending: list[tuple[TraceStore, str, dict[str, Any]]] = field(default_factory=list)

    def set(self, **attributes: Any) -> None:
        """Attach attributes (JSON-serialisable) that are saved with the span."""
        self.attributes.update(attributes)


_CURRENT: ContextVar[Span | None] = ContextVar("knowbase_span", default=None)

FLUSH_EVERY = 64
"""Buffered rows that force an early write in a long trace (bounds what a crash loses)."""


def new_id() -> str:
    """A random 16-hex-character id."""
    return uuid.uuid4().hex[:16]


def current_span() -> Span | None:
    """The innermost open span in this context, or None."""
    return _CURRENT.get()


def current_ids() -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` of the innermost open span, or ``(None, None)``."""
    sp = _CURRENT.get()
    return (sp.trace_id, sp.span_id) if sp else (None, None)


@contextmanager
def span(name: str, *, kind: str = "step", store: TraceStore | None = None, **attributes: Any) -> Iterator[Span]:
    """Open a span; nested spans share the trace id and inherit the store.

    Args:
        name: what the step is ("LLMChain", "retrieve", "tool:calculator").
        kind: a category ("chain", "agent", "tool", "kb", "sql", "step").
        store: where to write the span; default the parent's; None at the root means
            ids only (nothing is written).
        **attributes: saved with the span.
    """
    parent = _CURRENT.get()
    sp = Span(name=name, kind=kind, trace_id=parent.trace_id if parent else new_id(), span_id=new_id(),
              parent_id=parent.span_id if parent else None, started=time.time(),
              store=store if store is not None else (parent.store if parent else None), attributes=dict(attributes))
    sp.root = (parent.root or parent) if parent else None
    token = _CURRENT.set(sp)
    try:
        yield sp
    except BaseException as exc:
        sp.status, sp.error = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        sp.ended = time.time()
        if sp.store is not None:
            sp.store.record_span(sp)  # buffered on the root while the trace is open
        _CURRENT.reset(token)
        if sp.root is None:
            flush(sp)


def buffer_row(store: TraceStore, table: str, row: dict[str, Any]) -> bool:
    """Queue a row on the open trace's root span; False when no trace is open."""
    sp = _CURRENT.get()
    if sp is None:
        return False
    root = sp.root or sp
    root.pending.append((store, table, row))
    if len(root.pending) >= FLUSH_EVERY:
        flush(root)
    return True


def flush(root: Span) -> None:
    """Write a root span's buffered rows, one transaction per store."""
    pending, root.pending = root.pending, []
    by_store: dict[int, tuple[TraceStore, list[tuple[str, dict[str, Any]]]]] = {}
    for store, table, row in pending:
        by_store.setdefault(id(store), (store, []))[1].append((table, row))
    for store, rows in by_store.values():
        store.write_rows(rows)


trace = span
"""Alias: a root span is a trace."""
