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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from knowbase.errors import NotAKnowbaseFileError, StoreError

#: The first 16 bytes of every SQLite 3 database file (https://www.sqlite.org/fileformat.html).
SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_schema(path: Path) -> tuple[frozenset[str], frozenset[str]] | None:
    """``(table names, applied migration names)`` of the SQLite file at ``path``, read-only.

    Nothing is written: the file is opened with ``mode=ro`` after its 16-byte header is
    checked. Returns None when ``path`` is not a regular file holding a SQLite database
    (an empty file counts as none). The migration names come from ``_migrations`` (empty
    when the table is missing).

    Raises:
        StoreError: the file is a SQLite database that cannot be read (locked, damaged).
    """
    try:
        if not path.is_file():
            return None
        with path.open("rb") as fh:
            if fh.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            tables = frozenset(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            names = (frozenset(r[0] for r in conn.execute("SELECT name FROM _migrations"))
                     if "_migrations" in tables else frozenset())
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read {path}: {exc}", path=str(path)) from exc
    return tables, names


def require_knowbase_file(path: Path, *, expected: str, migration: str, tables: Iterable[str] = (),
                          allow_new: bool = False) -> None:
    """Raise unless ``path`` is a SQLite file that knowbase made for this purpose.

    The file is one when its ``_migrations`` table records ``migration`` (the first
    migration of the store that made it) and it holds every table in ``tables``. Call it
    before deleting a file (``allow_new=False``) and before migrating or writing to one
    (``allow_new=True``).

    Args:
        path: the file.
        expected: what it should be, for the message (``"knowledge base"``, ``"memory store"``).
        migration: the name of the store's first migration (e.g. ``"m001_core"``).
        tables: tables it must hold.
        allow_new: also accept what would become a new store: no file, an empty file, or a
            SQLite database without tables.

    Raises:
        NotAKnowbaseFileError: it is missing, not a regular file, not SQLite, or another
            program's database (``path``, ``expected``, ``reason``).
        StoreError: it is SQLite but cannot be read.
    """
    if allow_new and (not path.exists() or (path.is_file() and path.stat().st_size == 0)):
        return
    schema = sqlite_schema(path)
    if allow_new and schema is not None and not schema[0]:
        return
    if schema is None:
        reason = ("it does not exist" if not path.exists() and not path.is_symlink()
                  else "it is not a regular file" if not path.is_file() else "it is not a SQLite database")
    else:
        have, applied = schema
        missing = sorted(set(tables) - have)
        if migration not in applied:
            reason = "it is a SQLite database that knowbase did not create"
        elif missing:
            reason = f"it lacks the table(s) {', '.join(missing)}"
        else:
            return
    raise NotAKnowbaseFileError(f"{path} is not a knowbase {expected}: {reason}; nothing was changed",
                                path=str(path), expected=expected, reason=reason)


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


def connect(path: Path, migrations: Sequence[tuple[str, str]], *, expected: str = "store") -> sqlite3.Connection:
    """Open (creating folders) a WAL-mode SQLite file and bring its schema up to date.

    An existing database with tables must be one these ``migrations`` made: another
    program's database is refused untouched (no migration is applied to it).

    Raises:
        NotAKnowbaseFileError: the file is another program's database, or not SQLite.
        StoreError: it cannot be opened.
    """
    require_knowbase_file(path, expected=expected, migration=migrations[0][0] if migrations else "", allow_new=True)
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
    #: What the file is, for error messages ("trace log", "agent store").
    KIND = "store"

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
            self._conn = connect(self.path, self.MIGRATIONS, expected=self.KIND)
        return self._conn

    def close(self) -> None:
        """Close the connection; the next use opens it again."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
