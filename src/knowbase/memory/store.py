"""``memory.db``: conversations persisted per session id (stdlib sqlite3, named migrations).

Tables: ``sessions`` (id, memory type, running summary, how many turns the summary
covers), ``turns`` (numbered user/assistant pairs) and ``entities`` (per-entity notes).
Saving a turn writes the turn, the new summary and the entity notes in one transaction:
a crash leaves the old state or the new one, never half of it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from knowbase.errors import StoreError, UserError
from knowbase.storage import connect, migrate

MIGRATIONS: list[tuple[str, str]] = [
    ("m001_memory", """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            memory_type TEXT NOT NULL,
            created REAL NOT NULL,             -- Unix seconds
            updated REAL NOT NULL,
            summary TEXT NOT NULL DEFAULT '',  -- running summary (summary memories)
            folded INTEGER NOT NULL DEFAULT 0  -- turns 1..folded are in the summary
        );
        CREATE TABLE turns (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            n INTEGER NOT NULL,                -- 1-based turn number
            user TEXT NOT NULL,
            assistant TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (session_id, n)
        );
        CREATE TABLE entities (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            key TEXT NOT NULL,                 -- lower-case name
            name TEXT NOT NULL,
            facts TEXT NOT NULL,               -- JSON list of strings
            updated REAL NOT NULL,
            PRIMARY KEY (session_id, key)
        );
    """),
]

MAX_SESSION_ID = 200


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: turn ``n`` (1-based), the user's text and the assistant's reply."""

    n: int
    user: str
    assistant: str
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A stored conversation.

    Attributes:
        id: the session id.
        memory_type: ``buffer``, ``summary``, ``summary_buffer`` or ``entity``.
        created, updated: Unix seconds.
        turns: number of turns.
        summary: the running summary ('' when none).
        folded: turns covered by the summary.
        entities: ``{name: [fact, ...]}``.
    """

    id: str
    memory_type: str
    created: float
    updated: float
    turns: int
    summary: str = ""
    folded: int = 0
    entities: dict[str, list[str]] = field(default_factory=dict)


def check_session_id(session_id: str) -> str:
    """Return ``session_id`` if usable (1-200 printable characters), else raise UserError."""
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > MAX_SESSION_ID \
            or not session_id.isprintable():
        raise UserError(f"bad session id {str(session_id)[:40]!r}: use 1-{MAX_SESSION_ID} printable characters",
                        session_id=str(session_id))
    return session_id


class MemoryStore:
    """Conversation memory in SQLite.

    Args:
        path: the database file (created with its folder); None keeps everything in
            memory for this process only.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        if self.path is None:
            self.conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            migrate(self.conn, MIGRATIONS)
        else:
            self.conn = connect(self.path, MIGRATIONS, expected="memory store")
        self.conn.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        try:
            with self._lock:
                return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"memory store {self.path or ':memory:'}: {exc}", path=str(self.path)) from exc

    # --- writing -----------------------------------------------------------------------------
    def ensure_session(self, session_id: str, memory_type: str) -> None:
        """Create the session if new; record ``memory_type`` as its current type."""
        check_session_id(session_id)
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT INTO sessions (id, memory_type, created, updated) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET memory_type = excluded.memory_type",
                         (session_id, memory_type, now, now))

    def add_turn(self, session_id: str, user: str, assistant: str, *, memory_type: str = "buffer",
                 summary: str | None = None, folded: int | None = None,
                 entities: Mapping[str, Sequence[str]] | None = None) -> int:
        """Append a turn (and the new summary / entity notes) in one transaction.

        Args:
            summary: the new running summary, if it changed.
            folded: turns now covered by the summary.
            entities: ``{name: facts}`` to store for those entities (replacing their notes).

        Returns:
            The new turn's number (1-based).
        """
        check_session_id(session_id)
        now = time.time()
        try:
            with self._tx() as conn:
                conn.execute("INSERT INTO sessions (id, memory_type, created, updated) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated",
                             (session_id, memory_type, now, now))
                n = conn.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM turns WHERE session_id = ?",
                                 (session_id,)).fetchone()[0]
                conn.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?)", (session_id, n, user, assistant, now))
                if summary is not None:
                    conn.execute("UPDATE sessions SET summary = ? WHERE id = ?", (summary, session_id))
                if folded is not None:
                    conn.execute("UPDATE sessions SET folded = ? WHERE id = ?", (folded, session_id))
                for name, facts in (entities or {}).items():
                    conn.execute("INSERT INTO entities VALUES (?, ?, ?, ?, ?) ON CONFLICT(session_id, key) DO "
                                 "UPDATE SET name = excluded.name, facts = excluded.facts, updated = excluded.updated",
                                 (session_id, name.lower(), name, json.dumps(list(facts), ensure_ascii=False), now))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot save turn in {self.path or ':memory:'}: {exc}", path=str(self.path)) from exc
        return int(n)

    def set_summary(self, session_id: str, summary: str, folded: int) -> None:
        """Replace the running summary and the number of turns it covers (no new turn)."""
        try:
            with self._tx() as conn:
                conn.execute("UPDATE sessions SET summary = ?, folded = ?, updated = ? WHERE id = ?",
                             (summary, folded, time.time(), session_id))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot save summary in {self.path or ':memory:'}: {exc}", path=str(self.path)) from exc

    def delete(self, session_id: str) -> bool:
        """Delete a session with its turns and notes; returns False when there was none."""
        with self._tx() as conn:
            conn.execute("DELETE FROM turns WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM entities WHERE session_id = ?", (session_id,))
            cur = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return cur.rowcount > 0

    # --- reading -------------------------------------------------------------------------------
    def turns(self, session_id: str, *, after: int = 0, last: int | None = None) -> list[Turn]:
        """Turns numbered above ``after``, oldest first; only the ``last`` ones if given."""
        if last is not None:
            if last <= 0:
                return []
            rows = self._query("SELECT n, user, assistant, created FROM turns WHERE session_id = ? AND n > ? "
                               "ORDER BY n DESC LIMIT ?", (session_id, after, last))
            rows.reverse()
        else:
            rows = self._query("SELECT n, user, assistant, created FROM turns WHERE session_id = ? AND n > ? "
                               "ORDER BY n", (session_id, after))
        return [Turn(*r) for r in rows]

    def summary(self, session_id: str) -> tuple[str, int]:
        """``(running summary, turns folded into it)``; ``("", 0)`` for a new session."""
        rows = self._query("SELECT summary, folded FROM sessions WHERE id = ?", (session_id,))
        return (rows[0][0], int(rows[0][1])) if rows else ("", 0)

    def entities(self, session_id: str) -> dict[str, list[str]]:
        """``{name: [fact, ...]}`` for the session, in name order."""
        rows = self._query("SELECT name, facts FROM entities WHERE session_id = ? ORDER BY key", (session_id,))
        return {name: json.loads(facts) for name, facts in rows}

    def sessions(self) -> list[SessionInfo]:
        """Every session, most recently updated first."""
        rows = self._query("SELECT s.id, s.memory_type, s.created, s.updated, "
                           "(SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id), s.summary, s.folded "
                           "FROM sessions s ORDER BY s.updated DESC")
        return [SessionInfo(*r) for r in rows]

    def get(self, session_id: str) -> SessionInfo | None:
        """One session with its summary and entity notes, or None."""
        rows = self._query("SELECT s.id, s.memory_type, s.created, s.updated, "
                           "(SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id), s.summary, s.folded "
                           "FROM sessions s WHERE s.id = ?", (session_id,))
        if not rows:
            return None
        sid, memory_type, created, updated, turns, summary, folded = rows[0]
        return SessionInfo(sid, memory_type, created, updated, turns, summary, folded,
                           entities=self.entities(session_id))
