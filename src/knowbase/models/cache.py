"""An optional response cache in SQLite, keyed by model, options and the full prompt.

:class:`~knowbase.models.base.ChatModel` consults it before calling the backend; a hit
returns the stored :class:`ChatResult` marked ``cached=True`` (also in the trace)::

    cache = ResponseCache(settings.home / "cache.db")
    model = get_chat_model("llamacpp:qwen2.5-coder-1.5b", cache=cache)

The key is the SHA-256 of the canonical JSON of ``(model string, messages, options)``, so
any change to the prompt, a tool, the schema, temperature or seed is a different entry.
Sampled replies (temperature > 0 without a seed) are cached too when asked -- a cache
makes calls repeatable by design; pass ``only_deterministic=True`` to skip them.
Failed calls are never stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.errors import StoreError
from knowbase.models.base import ChatResult, ToolCall, Usage
from knowbase.storage import SQLiteFile

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatOptions, Message

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_responses", """
        CREATE TABLE responses (
            key TEXT PRIMARY KEY,          -- sha256 hex of (model, messages, options)
            model TEXT NOT NULL,
            result TEXT NOT NULL,          -- JSON of the ChatResult
            created REAL NOT NULL,         -- Unix seconds
            hits INTEGER NOT NULL DEFAULT 0
        );
    """),
]


class ResponseCache(SQLiteFile):
    """Chat responses stored in SQLite.

    Args:
        path: the database file (created with its folder).
        only_deterministic: do not store replies sampled with temperature > 0 and no seed.
        max_age: entries older than this many seconds are ignored (None: no expiry).
    """

    MIGRATIONS = MIGRATIONS
    KIND = "response cache"

    def __init__(self, path: str | Path, *, only_deterministic: bool = False, max_age: float | None = None) -> None:
        super().__init__(path)
        self.only_deterministic = only_deterministic
        self.max_age = max_age
        self._skip: set[str] = set()

    def key(self, spec: str, messages: Sequence[Message], options: ChatOptions) -> str:
        """The cache key: SHA-256 hex of the canonical JSON of model, messages and options."""
        payload = {"model": spec, "messages": [m.to_openai() for m in messages], "options": options.to_dict()}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode())
        key = digest.hexdigest()
        if self.only_deterministic and options.temperature > 0 and options.seed is None:
            self._skip.add(key)
        return key

    def get(self, key: str) -> ChatResult | None:
        """The stored result for ``key``, or None."""
        try:
            with self.lock:
                row = self.conn.execute("SELECT result, created FROM responses WHERE key = ?", (key,)).fetchone()
                if row is None or (self.max_age is not None and time.time() - row[1] > self.max_age):
                    return None
                self.conn.execute("UPDATE responses SET hits = hits + 1 WHERE key = ?", (key,))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"response cache {self.path}: {exc}", path=str(self.path)) from exc
        return _result_from_json(row[0])

    def put(self, key: str, result: ChatResult) -> None:
        """Store ``result`` under ``key`` (errors and skipped sampled calls are not stored)."""
        if key in self._skip:
            self._skip.discard(key)
            return
        if result.finish_reason == "error":
            return
        data = json.dumps(_result_to_json(result), ensure_ascii=False)
        try:
            with self.lock:
                self.conn.execute("INSERT OR REPLACE INTO responses (key, model, result, created) VALUES (?, ?, ?, ?)",
                                  (key, result.model, data, time.time()))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"response cache {self.path}: {exc}", path=str(self.path)) from exc

    def stats(self) -> dict[str, int]:
        """``{"entries": n, "hits": total hits}``."""
        with self.lock:
            entries, hits = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(hits), 0) FROM responses").fetchone()
        return {"entries": int(entries), "hits": int(hits)}

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        with self.lock:
            return self.conn.execute("DELETE FROM responses").rowcount


def _result_to_json(result: ChatResult) -> dict[str, Any]:
    out = asdict(result)
    out.pop("trace_id", None)
    out.pop("cached", None)
    return out


def _result_from_json(text: str) -> ChatResult:
    data = json.loads(text)
    calls = tuple(ToolCall(**c) for c in data.get("tool_calls") or ())
    usage = Usage(**(data.get("usage") or {}))
    return ChatResult(text=data.get("text", ""), tool_calls=calls, finish_reason=data.get("finish_reason", "stop"),
                      usage=usage, model=data.get("model", ""), latency_ms=float(data.get("latency_ms", 0.0)))
