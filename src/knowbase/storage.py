"""SQLite helpers shared by knowbase's own stores (traces, response cache, memory, agents).

Every schema change is an append-only, named migration (the simonw/llm and sqlite-utils
pattern): a list of ``(name, sql)`` pairs, each applied once, in its own transaction,
and recorded in ``_migrations``. Files open in WAL mode with ``synchronous=NORMAL``, so
readers keep working while a writer commits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from knowbase.errors import StoreError


def migrate(conn: Any, migrations: Sequence[tuple[str, str | Callable[[Any], None]]]) -> list[str]:
    """Apply the named migrations not yet applied, each in its own transaction.

    A migration is ``(name, sql)`` or ``(name, function(conn))`` for steps SQL cannot say.
    Works for stdlib-sqlite3 connections (the memory and response-cache stores) and for
    ``apsw`` connections (knowledge bases, which load the sqlite-vec extension). With apsw,
    each step runs under ``BEGIN IMMEDIATE`` and the applied names are read again inside
    it, so processes opening one file at once apply each step exactly once.

    Returns the names applied now.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, step in migrations:
        if name in done:
            continue
        if isinstance(conn, sqlite3.Connection) and isinstance(step, str):
            with conn:
                conn.executescript("BEGIN;" + step + f";INSERT INTO _migrations VALUES ('{name}', {time.time()});COMMIT;")
        elif not _apply_locked(conn, name, step):
            continue
        applied.append(name)
    return applied


def _apply_locked(conn: Any, name: str, step: str | Callable[[Any], None]) -> bool:
    """One migration under ``BEGIN IMMEDIATE``; False when another process applied it first."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if list(conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,))):
            conn.execute("ROLLBACK")
            return False
        if callable(step):
            step(conn)
        else:
            conn.execute(step)  # apsw runs every statement of a script
        conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True


def connect(path: Path, migrations: Sequence[tuple[str, str]]) -> sqlite3.Connection:
    """Open (creating folders) a WAL-mode SQLite file and bring its schema up to date."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn, migrations)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open {path}: {exc}", path=str(path)) from exc
    return conn


class SQLiteFile:
    """A SQLite file opened on first use, with its migrations applied and a lock.

    Stores subclass it and declare ``MIGRATIONS``; the connection is shared by threads
    (``check_same_thread=False``), with :attr:`lock` guarding each use.

    Args:
        path: the database file (created with its folder if missing).
    """

    MIGRATIONS: Sequence[tuple[str, str]] = ()

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self.lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (opened, and migrated, on first use).

        Raises:
            StoreError: the file cannot be opened or is not a database.
        """
        if self._conn is None:
            self._conn = connect(self.path, self.MIGRATIONS)
        return self._conn

    def close(self) -> None:
        """Close the connection; the next use opens it again."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
