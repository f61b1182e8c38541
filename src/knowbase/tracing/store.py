"""``logs.db``: the SQLite store of model calls and spans (LLMOps monitoring).

Schema changes are append-only named migrations (see :data:`MIGRATIONS`). Each call or
span is one row written in one transaction after it finishes, so a crash never leaves a
half-written record. Reads for ``knowbase logs`` live here too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.redaction import redact
from knowbase.storage import SQLiteFile, connect, migrate  # noqa: F401  (re-exported)
from knowbase.tracing.context import Span, buffer_row, new_id

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatOptions, ChatResult, Message

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_calls", """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            span_id TEXT,
            kind TEXT NOT NULL,              -- chat | embed
            started REAL NOT NULL,           -- Unix seconds
            model TEXT NOT NULL,             -- backend:model
            messages TEXT,                   -- JSON list of messages (chat) or texts (embed)
            options TEXT,                    -- JSON
            output TEXT,
            tool_calls TEXT,                 -- JSON
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            latency_ms REAL,
            error TEXT,
            cached INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX calls_started ON calls(started);
        CREATE INDEX calls_trace ON calls(trace_id);
        CREATE INDEX calls_model ON calls(model);
    """),
    ("m002_spans", """
        CREATE TABLE spans (
            id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            parent_id TEXT,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            status TEXT NOT NULL,
            error TEXT,
            attributes TEXT
        );
        CREATE INDEX spans_trace ON spans(trace_id);
    """),
    ("m003_feedback", """
        CREATE TABLE feedback (
            id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            rating INTEGER NOT NULL,         -- 1 up, -1 down
            comment TEXT,
            created REAL NOT NULL,           -- Unix seconds
            source TEXT                      -- who or what gave it (cli, api, a user id...)
        );
        CREATE INDEX feedback_trace ON feedback(trace_id);
        CREATE INDEX feedback_created ON feedback(created);
    """),
    ("m004_spans_started", """
        CREATE INDEX spans_started ON spans(started);
    """),
]

MAX_COMMENT_CHARS = 4000
"""Longest feedback comment kept (characters); longer ones are refused."""
_RATINGS = {"up": 1, "down": -1, "+1": 1, "-1": -1, "1": 1, "👍": 1, "👎": -1}


def _messages_json(messages: Sequence[Message]) -> str:
    return json.dumps([m.to_openai() for m in messages], ensure_ascii=False)


class TraceStore(SQLiteFile):
    """Records calls and spans in ``logs.db``; the file is opened on first use.

    Every text written or read is passed through :func:`knowbase.redaction.redact`: the
    ``secrets`` given (the API key) and key-like text (``sk-...``, ``Bearer ...``) are stored
    and shown as ``[REDACTED]``.

    Args:
        path: the SQLite file (created with its folder if missing).
        secrets: values never to store (``Settings.secrets()``).
    """

    MIGRATIONS = MIGRATIONS
    KIND = "trace log"

    def __init__(self, path: str | Path, *, secrets: Sequence[str] = ()) -> None:
        super().__init__(path)
        self.secrets = tuple(secrets)

    def _redacted(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: redact(v, self.secrets) if isinstance(v, str) else v for k, v in row.items()}

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        """Write a row now, or buffer it on the open trace (written when the trace ends)."""
        if not buffer_row(self, table, row):
            self.write_rows([(table, row)])

    def write_rows(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Insert ``(table, row)`` pairs in one transaction."""
        if not rows:
            return
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN")
            try:
                for table, raw in rows:
                    row = self._redacted(raw)
                    cols = ",".join(row)
                    marks = ",".join("?" * len(row))
                    conn.execute(f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- writing ---------------------------------------------------------------------
    def record_chat(self, *, model: str, messages: Sequence[Message], options: ChatOptions,
                    result: ChatResult | None, error: Exception | None, started: float,
                    trace_id: str | None, span_id: str | None, latency_ms: float | None = None) -> str:
        """Write one chat call; returns its id."""
        call_id = new_id()
        row = {
            "id": call_id, "trace_id": trace_id or call_id, "span_id": span_id, "kind": "chat",
            "started": started, "model": model, "messages": _messages_json(messages),
            "options": json.dumps(options.to_dict(), ensure_ascii=False, default=str),
            "output": result.text if result else None,
            "tool_calls": json.dumps([{"name": c.name, "arguments": c.arguments} for c in result.tool_calls],
                                     ensure_ascii=False) if result and result.tool_calls else None,
            "finish_reason": result.finish_reason if result else "error",
            "prompt_tokens": result.usage.prompt_tokens if result else None,
            "completion_tokens": result.usage.completion_tokens if result else None,
            "latency_ms": result.latency_ms if result else latency_ms,
            "error": f"{type(error).__name__}: {error}" if error else None,
            "cached": int(bool(result and result.cached)),
        }
        self._insert("calls", row)
        return call_id

    def record_embedding(self, *, model: str, texts: Sequence[str], error: Exception | None, started: float,
                         latency_ms: float, trace_id: str | None, span_id: str | None) -> str:
        """Write one embedding call (the texts are kept, each cut to 200 characters)."""
        call_id = new_id()
        row = {
            "id": call_id, "trace_id": trace_id or call_id, "span_id": span_id, "kind": "embed", "started": started,
            "model": model, "messages": json.dumps([t[:200] for t in texts[:50]], ensure_ascii=False),
            "options": json.dumps({"n_texts": len(texts), "n_chars": sum(map(len, texts))}),
            "output": None, "tool_calls": None, "finish_reason": "error" if error else "stop",
            "prompt_tokens": None, "completion_tokens": None, "latency_ms": latency_ms,
            "error": f"{type(error).__name__}: {error}" if error else None, "cached": 0,
        }
        self._insert("calls", row)
        return call_id

    def record_span(self, sp: Span) -> None:
        """Write one finished span."""
        self._insert("spans", {
            "id": sp.span_id, "trace_id": sp.trace_id, "parent_id": sp.parent_id, "name": sp.name, "kind": sp.kind,
            "started": sp.started, "ended": sp.ended, "status": sp.status, "error": sp.error,
            "attributes": json.dumps(sp.attributes, ensure_ascii=False, default=str) if sp.attributes else None,
        })

    def add_feedback(self, trace_id: str, rating: str | int, *, comment: str | None = None,
                     source: str | None = None, created: float | None = None) -> str:
        """Store a thumbs-up or thumbs-down (and an optional comment) on a recorded trace.

        Args:
            trace_id: the trace of the answer (``Answer.trace_id``); it must be in this log.
            rating: ``"up"``/``"down"``, ``1``/``-1``.
            comment: free text, at most :data:`MAX_COMMENT_CHARS` characters.
            source: who gave it (``cli``, a user id...).
            created: Unix seconds (default now).

        Returns:
            The feedback id.

        Raises:
            UserError: an unknown rating, a comment too long, or no such trace.
        """
        from knowbase.errors import UserError

        value = rating if isinstance(rating, int) and not isinstance(rating, bool) else _RATINGS.get(
            str(rating).strip().lower())
        if value not in (1, -1):
            raise UserError(f"feedback rating must be 'up' or 'down', got {rating!r}", field="rating")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise UserError(f"feedback comment is {len(comment)} characters, over {MAX_COMMENT_CHARS}",
                            field="comment")
        if not self.has_trace(trace_id):
            raise UserError(f"no trace {trace_id!r} in {self.path}", trace_id=trace_id)
        fid = new_id()
        self.write_rows([("feedback", {"id": fid, "trace_id": trace_id, "rating": value, "comment": comment,
                                       "created": time.time() if created is None else created, "source": source})])
        return fid

    def has_trace(self, trace_id: str) -> bool:
        """True when a call or span of ``trace_id`` is recorded."""
        if not self.path.exists():
            return False
        with self.lock:
            return self.conn.execute(
                "SELECT 1 FROM calls WHERE trace_id = ? UNION ALL SELECT 1 FROM spans WHERE trace_id = ? LIMIT 1",
                (trace_id, trace_id)).fetchone() is not None

    # --- reading ---------------------------------------------------------------------
    def feedback(self, *, trace_id: str | None = None, since: float | None = None,
                 limit: int = 100_000) -> list[dict[str, Any]]:
        """Feedback rows (``id``, ``trace_id``, ``rating`` 1/-1, ``comment``, ``created``, ``source``),
        newest first."""
        where: list[str] = []
        args: list[Any] = []
        if trace_id:
            where.append("trace_id = ?")
            args.append(trace_id)
        if since:
            where.append("created >= ?")
            args.append(since)
        sql = "SELECT * FROM feedback" + (" WHERE " + " AND ".join(where) if where else "")
        return self._rows(sql + " ORDER BY created DESC LIMIT ?", [*args, limit])

    def call_rows(self, *, since: float | None = None, until: float | None = None,
                  columns: Sequence[str] = ("id", "trace_id", "kind", "started", "model", "prompt_tokens",
                                            "completion_tokens", "latency_ms", "error", "cached",
                                            "finish_reason")) -> list[dict[str, Any]]:
        """Calls oldest first with only ``columns`` (no message text), for statistics and export.

        Raises:
            ValueError: a column that is not in the ``calls`` table.
        """
        known = {"id", "trace_id", "span_id", "kind", "started", "model", "messages", "options", "output",
                 "tool_calls", "finish_reason", "prompt_tokens", "completion_tokens", "latency_ms", "error", "cached"}
        bad = [c for c in columns if c not in known]
        if bad:
            raise ValueError(f"unknown calls column(s): {bad}")
        where, args = [], []
        if since:
            where.append("started >= ?")
            args.append(since)
        if until:
            where.append("started < ?")
            args.append(until)
        sql = f"SELECT {', '.join(columns)} FROM calls" + (" WHERE " + " AND ".join(where) if where else "")
        return self._rows(sql + " ORDER BY started", args)

    def span_rows(self, names: Sequence[str], *, since: float | None = None) -> list[dict[str, Any]]:
        """Spans with one of ``names`` (``trace_id``, ``name``, ``started``, ``status``, ``attributes``
        decoded from JSON), oldest first."""
        marks = ",".join("?" * len(names))
        where = f"name IN ({marks})" + (" AND started >= ?" if since else "")
        rows = self._rows(f"SELECT trace_id, name, started, status, attributes FROM spans WHERE {where} "
                          "ORDER BY started", [*names, *([since] if since else [])])
        for r in rows:
            try:
                r["attributes"] = json.loads(r["attributes"]) if r["attributes"] else {}
            except ValueError:
                r["attributes"] = {}
        return rows

    def calls(self, *, limit: int = 20, model: str | None = None, trace_id: str | None = None,
              since: float | None = None) -> list[dict[str, Any]]:
        """Recent calls, newest first, as dicts of the ``calls`` columns."""
        where: list[str] = []
        args: list[object] = []
        if model:
            where.append("model LIKE ?")
            args.append(f"%{model}%")
        if trace_id:
            where.append("trace_id = ?")
            args.append(trace_id)
        if since:
            where.append("started >= ?")
            args.append(since)
        sql = "SELECT * FROM calls" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started DESC LIMIT ?"
        return self._rows(sql, [*args, limit])

    def call(self, call_id: str) -> dict[str, Any] | None:
        """One call by id (a unique prefix is enough)."""
        rows = self._rows("SELECT * FROM calls WHERE id LIKE ? LIMIT 2", [call_id + "%"])
        return rows[0] if len(rows) == 1 else None

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        """All spans of a trace, oldest first."""
        return self._rows("SELECT * FROM spans WHERE trace_id = ? ORDER BY started", [trace_id])

    def totals(self, *, since: float | None = None) -> list[dict[str, Any]]:
        """Per model: calls, errors, prompt and completion tokens, mean and p95 latency (ms)."""
        where = "WHERE started >= ?" if since else ""
        rows = self._rows(f"SELECT model, latency_ms, prompt_tokens, completion_tokens, error FROM calls {where}",
                          [since] if since else [])
        by_model: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_model.setdefault(r["model"], []).append(r)
        out = []
        for model, rs in sorted(by_model.items()):
            lat = sorted(r["latency_ms"] or 0.0 for r in rs)
            p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else 0.0
            out.append({
                "model": model, "calls": len(rs), "errors": sum(1 for r in rs if r["error"]),
                "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in rs),
                "completion_tokens": sum(r["completion_tokens"] or 0 for r in rs),
                "mean_latency_ms": sum(lat) / len(lat) if lat else 0.0, "p95_latency_ms": p95,
            })
        return out

    def _rows(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.lock:
            cur = self.conn.execute(sql, tuple(args))
            names = [d[0] for d in cur.description]
            return [self._redacted(dict(zip(names, r))) for r in cur.fetchall()]
