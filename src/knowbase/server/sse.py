"""Server-sent events from blocking iterators, with the model freed when the client leaves.

A model stream is a blocking generator that uses context variables (trace spans), so all of
its steps must run in one thread: :class:`Producer` runs it in its own thread and hands items
over through a small bounded queue (at most ``buffer`` items ahead of the client). When the
client disconnects or the response is cancelled, the producer stops after the item it is
making, closes the generator in its own thread — which ends the model call and releases the
model's lock — and only then is ``on_close`` called (which gives the queue ticket back).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

_END = object()
_WAIT = object()


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE message: optional ``event:`` line, ``data:`` JSON (or a raw string), blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n").encode("utf-8")


class Producer:
    """Run a blocking iterator in its own thread.

    Args:
        items: the iterator (closed in the producer thread when it ends or is cancelled).
        buffer: items it may run ahead of the consumer.
    """

    def __init__(self, items: Iterator[bytes], *, buffer: int = 8) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=buffer)
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="knowbase-stream", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self.cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
        finally:
            try:
                close = getattr(self._items, "close", None)
                if close is not None:
                    close()
            finally:
                self.done.set()
                self._put(_END)

    def get(self, timeout: float = 0.25) -> Any:
        """The next item, ``_END`` at the end, or ``_WAIT`` when none came within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return _WAIT

    def cancel(self) -> None:
        """Ask the producer to stop and close its iterator."""
        self.cancelled.set()


async def stream_closing(request: Request, items: Iterator[bytes], on_close: Callable[[], None]) -> AsyncIterator[bytes]:
    """Yield ``items``; when they end, fail, or the client goes away, close them and call ``on_close``."""
    producer = Producer(items)
    try:
        while True:
            item = await anyio.to_thread.run_sync(producer.get)
            if item is _END:
                break
            if item is _WAIT:
                if await request.is_disconnected():
                    break
                continue
            yield item
    finally:
        producer.cancel()
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(producer.done.wait, 60.0)
            finally:
                on_close()


def sse_response(request: Request, items: Iterator[bytes], on_close: Callable[[], None],
                 headers: dict[str, str] | None = None) -> StreamingResponse:
    """A ``text/event-stream`` response of ``items`` (see :func:`stream_closing`)."""
    return StreamingResponse(stream_closing(request, items, on_close), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})
