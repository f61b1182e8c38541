"""``server.db`` in the user directory: API keys (hashed) and answer feedback.

Feedback is kept here, beside the keys, until ``logs.db`` has its own feedback table; each
row names the trace id of the answer it judges, so it joins with ``logs.db`` traces.
Schema changes are append-only named migrations (:func:`knowbase.storage.migrate`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowbase.storage import SQLiteFile

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_api_keys", """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,             -- public id, shown in listings
            name TEXT NOT NULL DEFAULT '',
            hash TEXT NOT NULL UNIQUE,       -- SHA-256 hex of the secret key
            scope TEXT NOT NULL,             -- ask | ingest | admin
            kbs TEXT NOT NULL,               -- JSON list of knowledge base names; [] means all
            rate_per_minute INTEGER NOT NULL,
            created REAL NOT NULL,
            revoked REAL
        );
    """),
    ("m002_feedback", """
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            trace_id TEXT NOT NULL,
            rating TEXT NOT NULL,            -- up | down
            comment TEXT NOT NULL DEFAULT '',
            kb TEXT,
            key_id TEXT,
            created REAL NOT NULL
        );
        CREATE INDEX feedback_trace ON feedback(trace_id);
    """),
    ("m003_key_tokens_per_minute", """
        ALTER TABLE api_keys ADD COLUMN tokens_per_minute INTEGER;   -- NULL: no token limit
    """),
]


class ServerDB(SQLiteFile):
    """The server's own SQLite file (``home/server.db``)."""

    MIGRATIONS = MIGRATIONS

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run one write statement (autocommit: one statement, one transaction)."""
        with self.lock:
            self.conn.execute(sql, tuple(args))

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query as dicts."""
        with self.lock:
            cur = self.conn.execute(sql, tuple(args))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    # --- feedback ----------------------------------------------------------------------
    def add_feedback(self, *, trace_id: str, rating: str, comment: str, kb: str | None,
                     key_id: str | None) -> dict[str, Any]:
        """Store one judgement of an answer; returns the stored row."""
        now = time.time()
        with self.lock:
            cur = self.conn.execute(
                "INSERT INTO feedback (trace_id, rating, comment, kb, key_id, created) VALUES (?, ?, ?, ?, ?, ?)",
                (trace_id, rating, comment, kb, key_id, now))
            fid = cur.lastrowid
        return {"id": fid, "trace_id": trace_id, "rating": rating, "comment": comment, "kb": kb, "created": now}

    def feedback(self, *, trace_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Feedback rows, newest first (optionally of one trace)."""
        if trace_id:
            return self.rows("SELECT id, trace_id, rating, comment, kb, created FROM feedback WHERE trace_id = ? "
                             "ORDER BY id DESC LIMIT ?", (trace_id, limit))
        return self.rows("SELECT id, trace_id, rating, comment, kb, created FROM feedback ORDER BY id DESC LIMIT ?",
                         (limit,))


def dumps(value: Any) -> str:
    """Compact JSON for a column."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
