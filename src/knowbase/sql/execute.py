"""Run one validated SELECT on a read-only connection, with a row limit and a time limit.

* SQLite: the hardened connection of :func:`knowbase.sql.database.open_sqlite_readonly`
  plus a progress handler that interrupts the statement once the deadline passes
  (checked every :data:`PROGRESS_STEPS` virtual-machine instructions, so a runaway
  cross join stops within milliseconds of the limit).
* PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout`` open the
  transaction, which is always rolled back.

Rows are fetched with ``fetchmany(row_limit + 1)``: at most ``row_limit`` rows come back
and :attr:`QueryResult.truncated` says whether there were more.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from knowbase.sql.database import Database
from knowbase.sql.errors import QueryTimeoutError, SQLExecutionError, SQLRefusedError

#: Fragments of SQLite errors raised by the read-only guard (authorizer, query_only,
#: mode=ro, SQLITE_LIMIT_ATTACHED=0, one statement per call, SQLITE_LIMIT_LENGTH).
_GUARD_MESSAGES = ("not authorized", "authorization denied", "readonly", "too many attached",
                   "one statement at a time", "string or blob too big")

#: SQLite VM instructions between two deadline checks (a few microseconds of work).
PROGRESS_STEPS = 10_000


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of one query.

    Attributes:
        columns: column names, in order.
        rows: at most ``row_limit`` rows, each a tuple of Python values.
        truncated: the query had more rows than ``row_limit``.
        elapsed: wall time of execute + fetch, seconds.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed: float


def execute(db: Database, sql: str, *, row_limit: int = 1000, timeout: float = 10.0) -> QueryResult:
    """Run ``sql`` (one statement, already validated) read-only.

    Args:
        db: the database.
        sql: one SELECT statement.
        row_limit: most rows returned (more are not fetched).
        timeout: time limit for execute + fetch, seconds.

    Raises:
        QueryTimeoutError: the time limit passed; the statement was interrupted.
        SQLRefusedError: the engine guard refused the statement (write, ATTACH, PRAGMA...).
        SQLExecutionError: any other database error (``reason`` is the database's message).
        DatabaseConnectError: the database cannot be opened.
    """
    if db.dialect == "sqlite":
        return _execute_sqlite(db, sql, row_limit=row_limit, timeout=timeout)
    return _execute_postgres(db, sql, row_limit=row_limit, timeout=timeout)


def _execute_sqlite(db: Database, sql: str, *, row_limit: int, timeout: float) -> QueryResult:
    proxy = db.raw_connection()
    conn: sqlite3.Connection = proxy.driver_connection
    t0 = time.perf_counter()
    deadline = t0 + timeout
    timed_out = False

    def check() -> int:
        nonlocal timed_out
        if time.perf_counter() > deadline:
            timed_out = True
            return 1  # non-zero interrupts the statement (SQLITE_INTERRUPT)
        return 0

    conn.set_progress_handler(check, PROGRESS_STEPS)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        rows = cur.fetchmany(row_limit + 1)
        columns = tuple(d[0] for d in (cur.description or ()))
        cur.close()
    except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
        raise SQLRefusedError(f"refused: {exc}", sql=sql, reason=str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        if timed_out:
            raise QueryTimeoutError(f"query stopped at the time limit of {timeout:g} s", sql=sql,
                                    timeout=timeout, partial=None) from exc
        message = str(exc)
        if any(marker in message for marker in _GUARD_MESSAGES):
            raise SQLRefusedError(f"refused by the read-only guard: {message}", sql=sql, reason=message) from exc
        raise SQLExecutionError(message, sql=sql, reason=message) from exc
    finally:
        conn.set_progress_handler(None, 0)
        proxy.close()
    return QueryResult(columns, list(rows[:row_limit]), len(rows) > row_limit, time.perf_counter() - t0)


def postgres_preamble(timeout: float) -> list[str]:
    """The statements that open every PostgreSQL query transaction, in order.

    ``statement_timeout`` is in milliseconds (at least 1).
    """
    return ["SET TRANSACTION READ ONLY", f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}"]


def run_dbapi(conn: Any, sql: str, *, preamble: Sequence[str],
              row_limit: int) -> tuple[tuple[str, ...], list[tuple[Any, ...]], bool]:
    """Run ``preamble`` then ``sql`` on a DBAPI connection and always roll back.

    Returns ``(columns, rows, truncated)``. Exceptions of the driver propagate.
    """
    try:
        cur = conn.cursor()
        for statement in preamble:
            cur.execute(statement)
        cur.execute(sql)
        rows = cur.fetchmany(row_limit + 1)
        columns = tuple(d[0] for d in (cur.description or ()))
        cur.close()
    finally:
        conn.rollback()
    return columns, [tuple(r) for r in rows[:row_limit]], len(rows) > row_limit


def _execute_postgres(db: Database, sql: str, *, row_limit: int, timeout: float) -> QueryResult:
    import psycopg  # the `postgres` extra

    proxy = db.raw_connection()
    t0 = time.perf_counter()
    try:
        columns, rows, truncated = run_dbapi(proxy.driver_connection, sql, preamble=postgres_preamble(timeout),
                                             row_limit=row_limit)
    except psycopg.errors.QueryCanceled as exc:
        raise QueryTimeoutError(f"query stopped at the time limit of {timeout:g} s", sql=sql, timeout=timeout,
                                partial=None) from exc
    except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege) as exc:
        raise SQLRefusedError(f"refused by the read-only guard: {exc}", sql=sql, reason=str(exc)) from exc
    except psycopg.Error as exc:
        message = str(exc).strip()
        raise SQLExecutionError(message, sql=sql, reason=message) from exc
    finally:
        proxy.close()
    return QueryResult(columns, rows, truncated, time.perf_counter() - t0)
