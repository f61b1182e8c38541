"""Open a database by URL, read-only, through SQLAlchemy.

Accepted forms (see :func:`open_database`)::

    chinook.sqlite                          # a bare path means SQLite
    sqlite:///relative/path.db              # SQLAlchemy URLs
    sqlite:////absolute/path.db
    postgresql://user:pass@host:5432/dbname # driver psycopg (the ``postgres`` extra)

Read-only holds at the engine, not only in the validator:

* SQLite: the file opens with ``file:PATH?mode=ro`` (uri), then ``PRAGMA query_only=ON``,
  ``SQLITE_LIMIT_ATTACHED=0`` (no ATTACH, and so no ``VACUUM INTO``, which attaches its
  target) and an authorizer (:func:`sqlite_authorizer`) that allows only reads.
* PostgreSQL: every session starts with ``default_transaction_read_only=on``; each query
  runs in a transaction opened with ``SET TRANSACTION READ ONLY`` and a local
  ``statement_timeout`` (see :mod:`knowbase.sql.execute`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowbase.sql.errors import DatabaseConnectError

#: SQLite pragmas the authorizer lets through with a table-name argument (SQLAlchemy's
#: inspector reads these).
TABLE_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
                           "foreign_key_list"})
#: SQLite pragmas the authorizer lets through in their argument-free (read) form only.
READ_PRAGMAS = frozenset({"query_only", "read_uncommitted", "database_list", "encoding"})

#: SQL functions refused everywhere (engine authorizer and validator), lower case.
#: SQLite: extension loading and the fileio/CLI helpers; PostgreSQL: server file access,
#: large objects, sleeping, signalling backends, running SQL from a string, settings.
DENIED_FUNCTIONS = frozenset({
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "zipfile", "sqlar_compress",
    "sqlar_uncompress", "lsmode", "shell",
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir",
    "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_file_write", "pg_file_rename", "pg_file_unlink",
    "lo_import", "lo_export", "lo_get", "lo_put", "lo_from_bytea", "lo_open", "lo_unlink", "lo_create",
    "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_terminate_backend", "pg_cancel_backend",
    "pg_reload_conf", "pg_rotate_logfile", "pg_promote", "set_config", "current_setting",
    "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml",
    "table_to_xml", "dblink", "dblink_exec", "dblink_connect", "pg_advisory_lock",
    "pg_advisory_xact_lock", "txid_current", "pg_switch_wal", "pg_create_restore_point",
    "sleep", "benchmark",
})

#: Largest string or blob SQLite may build, bytes (``SQLITE_LIMIT_LENGTH``): stops
#: ``randomblob(1e9)`` and ``zeroblob`` from eating memory.
MAX_VALUE_BYTES = 10_000_000

_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


def sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, db_name: str | None,
                      trigger: str | None) -> int:
    """An ``sqlite3`` authorizer that allows reads only (an allow-list, not a deny-list).

    Allowed: ``SELECT``, reading columns, recursive CTEs, functions not in
    :data:`DENIED_FUNCTIONS`, :data:`TABLE_PRAGMAS` and the argument-free (read) form of
    :data:`READ_PRAGMAS`. Denied: every write opcode (INSERT, UPDATE, DELETE, CREATE,
    DROP, ALTER, REINDEX, ANALYZE, virtual tables), ATTACH/DETACH (and so ``VACUUM`` and
    ``VACUUM INTO``), transactions and savepoints, PRAGMA writes, ``load_extension``.

    Action codes: https://www.sqlite.org/c3ref/c_alter_table.html
    """
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in TABLE_PRAGMAS or (name in READ_PRAGMAS and arg2 is None):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


def open_sqlite_readonly(path: Path) -> sqlite3.Connection:
    """A hardened, read-only ``sqlite3`` connection to an existing file.

    Raises:
        DatabaseConnectError: the file does not exist or is not a SQLite database.
    """
    if not path.is_file():
        raise DatabaseConnectError(f"no such SQLite file: {path}", path=str(path), url=str(path),
                                   reason="not found")
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.set_authorizer(sqlite_authorizer)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails early on a non-database file
    except sqlite3.DatabaseError as exc:
        raise DatabaseConnectError(f"cannot open {path} as SQLite: {exc}", path=str(path), url=str(path),
                                   reason=str(exc)) from exc
    return conn


def open_sqlite_query_connection(path: Path) -> Any:
    """A hardened, read-only ``apsw`` connection for running model-written SQL.

    The same guards as :func:`open_sqlite_readonly` (``mode=ro``, ``query_only``, no
    ATTACH, :data:`MAX_VALUE_BYTES`, :func:`sqlite_authorizer`), on the SQLite that apsw
    bundles rather than the system one: SQLite 3.40's ``printf('%.*c', 2000000000, 'x')``
    loops two billion times inside one VM instruction (no progress handler or interrupt can
    stop it) before noticing the length limit; SQLite >= 3.45 refuses it at once.

    Raises:
        DatabaseConnectError: the file does not exist or is not a SQLite database.
    """
    import apsw

    if not path.is_file():
        raise DatabaseConnectError(f"no such SQLite file: {path}", path=str(path), url=str(path),
                                   reason="not found")
    try:
        conn = apsw.Connection(f"{path.resolve().as_uri()}?mode=ro",
                               flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        conn.execute("PRAGMA query_only=ON")
        conn.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)
        conn.limit(apsw.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.set_authorizer(sqlite_authorizer)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # fails early on a non-database file
    except apsw.Error as exc:
        raise DatabaseConnectError(f"cannot open {path} as SQLite: {exc}", path=str(path), url=str(path),
                                   reason=str(exc)) from exc
    return conn


@dataclass(slots=True)
class Database:
    """A database reached through SQLAlchemy, always read-only. Build with :func:`open_database`.

    Attributes:
        url: the SQLAlchemy URL (password included; see :attr:`display_url`).
        dialect: the sqlglot dialect name, ``sqlite`` or ``postgres``.
        path: the file, for SQLite.
    """

    url: str
    dialect: str
    path: Path | None = None
    _engine: Any = field(default=None, repr=False)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages and traces."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (created on first use, no pooling: one connection per query)."""
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            if self.dialect == "sqlite":
                path = self.path
                assert path is not None
                self._engine = create_engine("sqlite://", creator=lambda: open_sqlite_readonly(path),
                                             poolclass=NullPool)
            else:
                self._engine = create_engine(
                    self.url, poolclass=NullPool,
                    connect_args={"options": "-c default_transaction_read_only=on"})
        return self._engine

    def raw_connection(self) -> Any:
        """A pooled DBAPI connection proxy (``.driver_connection`` is the driver's object).

        Raises:
            DatabaseConnectError: the server or file cannot be reached.
        """
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return self.engine.raw_connection()
        except DatabaseConnectError:
            raise
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            if isinstance(orig, DatabaseConnectError):
                raise orig from exc
            raise DatabaseConnectError(f"cannot connect to {self.display_url}: {orig or exc}",
                                       url=self.display_url, reason=str(orig or exc)) from exc

    def dispose(self) -> None:
        """Close the engine (no connections are kept between queries anyway)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def open_database(url: str | Path) -> Database:
    """Parse a database URL or a bare SQLite path into a :class:`Database`.

    Args:
        url: ``path/to/file.sqlite``, ``sqlite:///path``, ``postgresql://...`` or
            ``postgresql+psycopg://...`` (``postgres://`` is accepted too).

    Raises:
        DatabaseConnectError: an unsupported scheme, an in-memory SQLite URL, or a
            missing SQLite file.
    """
    text = str(url).strip()
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise DatabaseConnectError(f"no such SQLite file: {path}", path=str(path), url=text, reason="not found")
        return Database(url=f"sqlite:///{path.resolve()}", dialect="sqlite", path=path.resolve())
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(text.replace("postgres://", "postgresql://", 1) if text.startswith("postgres://") else text)
    except ArgumentError as exc:
        raise DatabaseConnectError(f"not a database URL: {text!r}", url=text, reason=str(exc)) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseConnectError("an in-memory SQLite database has nothing to ask", url=text,
                                       reason="in-memory")
        path = Path(parsed.database).expanduser().resolve()
        if not path.is_file():
            raise DatabaseConnectError(f"no such SQLite file: {path}", path=str(path), url=text, reason="not found")
        return Database(url=f"sqlite:///{path}", dialect="sqlite", path=path)
    if backend == "postgresql":
        if parsed.get_driver_name() in ("", "psycopg2", "psycopg"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return Database(url=parsed.render_as_string(hide_password=False), dialect="postgres")
    raise DatabaseConnectError(f"unsupported database {backend!r} in {text!r}; use SQLite or PostgreSQL",
                               url=text, reason="unsupported")
