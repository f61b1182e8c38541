"""The step protocol every chain implements, and the shared machinery behind it.

A step maps a dict of named inputs to a dict of named outputs::

    step.invoke({"question": "..."})     -> {"answer": ...}
    step.stream(inputs)                  -> iterator of partial output dicts
    step.batch([inputs, ...])            -> [outputs, ...]      (threads, order kept)
    await step.ainvoke(inputs) / step.abatch([...]) / step.astream(inputs)

A new kind of step subclasses :class:`Chain` and implements one method, ``_call(inputs)
-> outputs`` (and ``_stream`` if it can stream), declaring ``input_keys`` and
``output_keys`` so a pipeline can be checked when it is built. Everything else --
input checks, the trace span, batching, async forms, ``|`` composition -- lives here once.

Composition reads like a pipeline: ``summarise | translate`` is a
:class:`~knowbase.chains.sequential.SequentialChain` of the two.

Tracing: each ``invoke`` is one span (kind ``chain``, named after the step) under the
current span; the outermost step opens the trace and writes spans to its ``tracer``
(by default the tracer of the model it uses), so ``knowbase logs --trace ID`` shows the
tree of steps with the model calls under them. With no tracer and no open span, no span
is opened at all (zero tracing cost).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from knowbase.errors import ChainError
from knowbase.tracing.context import current_span, span

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.chains.sequential import SequentialChain
    from knowbase.tracing.store import TraceStore


class Chain:
    """Base of every step: implement :meth:`_call`; the rest is shared.

    Attributes:
        name: the span name and the label in errors.
        input_keys: keys ``invoke`` needs.
        output_keys: keys ``invoke`` returns.
        tracer: where the outermost span of a run is written (None: inherit or no spans).
    """

    name: str = "Chain"
    input_keys: tuple[str, ...] = ()
    output_keys: tuple[str, ...] = ()
    tracer: TraceStore | None = None

    # --- what subclasses implement --------------------------------------------------------
    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _stream(self, inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield self._call(inputs)

    # --- the protocol -----------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, in={list(self.input_keys)}, out={list(self.output_keys)})"

    def _coerce(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        if type(inputs) is dict:  # the common case, without the slower ABC check
            for key in self.input_keys:
                if key not in inputs:
                    break
            else:
                return inputs
        if not isinstance(inputs, Mapping):
            if len(self.input_keys) != 1:
                raise ChainError(f"{self.name} takes a dict with keys {list(self.input_keys)}, "
                                 f"not a bare {type(inputs).__name__}", step=self.name)
            return {self.input_keys[0]: inputs}
        missing = [k for k in self.input_keys if k not in inputs]
        if missing:
            got = ", ".join(map(str, inputs)) or "none"
            raise ChainError(f"{self.name} needs input(s) {', '.join(missing)}; got {got}", step=self.name,
                             missing=missing)
        return inputs if isinstance(inputs, dict) else dict(inputs)

    def _span(self) -> Any:
        if self.tracer is None and current_span() is None:
            return None
        return span(self.name, kind="chain", store=self.tracer)

    def invoke(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        """Run the step; returns its outputs.

        Args:
            inputs: a dict with at least :attr:`input_keys` (extra keys are ignored by the
                step and passed along by pipelines); a bare value when the step has
                exactly one input key.

        Raises:
            ChainError: a required input is missing.
            KnowbaseError: a subclass from the step (model, parse, safety errors...).
        """
        data = self._coerce(inputs)
        ctx = self._span()
        if ctx is None:
            return self._call(data)
        with ctx:
            return self._call(data)

    def stream(self, inputs: Mapping[str, Any] | Any) -> Iterator[dict[str, Any]]:
        """Yield partial outputs as they are produced (for an LLM step: text deltas under
        its output key); steps that cannot stream yield their whole output once."""
        data = self._coerce(inputs)
        ctx = self._span()
        if ctx is None:
            yield from self._stream(data)
            return
        with ctx:
            yield from self._stream(data)

    def batch(self, inputs: Sequence[Mapping[str, Any] | Any], *, max_concurrency: int = 4,
              return_exceptions: bool = False) -> list[Any]:
        """Run :meth:`invoke` on many inputs in threads; results in input order.

        Args:
            max_concurrency: threads at most (1 runs them one after another).
            return_exceptions: put a failing input's exception in its place instead of
                raising the first one.
        """
        def one(item: Any) -> Any:
            try:
                return self.invoke(item)
            except Exception as exc:
                if return_exceptions:
                    return exc
                raise

        items = list(inputs)
        if max_concurrency <= 1 or len(items) <= 1:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(max_concurrency, len(items))) as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, item) for item in items]
            return [f.result() for f in futures]

    async def ainvoke(self, inputs: Mapping[str, Any] | Any) -> dict[str, Any]:
        """Async :meth:`invoke` (runs in a worker thread; the trace context is kept)."""
        return await asyncio.to_thread(self.invoke, inputs)

    async def abatch(self, inputs: Sequence[Mapping[str, Any] | Any], *, max_concurrency: int = 4,
                     return_exceptions: bool = False) -> list[Any]:
        """Async :meth:`batch`: at most ``max_concurrency`` runs at once, results in order."""
        gate = asyncio.Semaphore(max(1, max_concurrency))

        async def one(item: Any) -> Any:
            async with gate:
                return await self.ainvoke(item)

        return list(await asyncio.gather(*(one(i) for i in inputs), return_exceptions=return_exceptions))

    async def astream(self, inputs: Mapping[str, Any] | Any) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`stream`: the step runs in one worker thread, chunks arrive here."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        ctx = contextvars.copy_context()

        def work() -> None:
            try:
                for chunk in self.stream(inputs):
                    loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
            except BaseException as exc:  # handed to the awaiting side
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("done", None))

        thread = threading.Thread(target=ctx.run, args=(work,), daemon=True)
        thread.start()
        while True:
            kind, value = await queue.get()
            if kind == "chunk":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    def __or__(self, other: Chain) -> SequentialChain:
        """``a | b``: a pipeline of the two (nested pipelines are flattened)."""
        from knowbase.chains.sequential import SequentialChain

        if not isinstance(other, Chain):
            return NotImplemented
        left = list(self.steps) if isinstance(self, SequentialChain) and self.flattenable else [self]
        right = list(other.steps) if isinstance(other, SequentialChain) and other.flattenable else [other]
        keys = self.input_keys if isinstance(self, SequentialChain) else None
        return SequentialChain([*left, *right], input_keys=keys)


def merge_chunks(chunks: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """Fold streamed chunks into one dict: strings are concatenated, other values replaced."""
    out: dict[str, Any] = {}
    for chunk in chunks:
        for key, value in chunk.items():
            if isinstance(value, str) and isinstance(out.get(key), str):
                out[key] += value
            else:
                out[key] = value
    return out
