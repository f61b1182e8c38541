"""Run one validated SELECT on a read-only connection, bounded in time, rows and bytes.

Time:

* SQLite runs on apsw's bundled SQLite (:func:`~knowbase.sql.database.open_sqlite_query_connection`,
  whose ``SQLITE_LIMIT_LENGTH`` stops oversized strings inside one instruction), with a
  progress handler that interrupts the statement once the deadline passes (checked every
  :data:`PROGRESS_STEPS` virtual-machine instructions) and a watchdog thread that calls
  ``interrupt()`` at the deadline in case one instruction runs long.
* PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout`` open the
  transaction, which is always rolled back; the same watchdog cancels the query on the
  client side (``Connection.cancel``) at the deadline.
* Both honour the caller's :mod:`knowbase.safety.deadline` scope: a tool call that times
  out interrupts the statement instead of leaving it running.

Size: rows are read one at a time (PostgreSQL: psycopg's ``Cursor.stream``, so the
server's result set is never buffered whole; other DBAPI drivers: ``fetchmany`` in
batches of :data:`FETCH_BATCH`) and reading stops at ``row_limit`` rows or
``max_bytes`` bytes of values, whichever comes first; :attr:`QueryResult.truncated_by`
says which.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from knowbase.safety.deadline import current_scope, effective_timeout, on_cancel
from knowbase.sql.database import MAX_VALUE_BYTES, Database, open_sqlite_query_connection
from knowbase.sql.errors import QueryTimeoutError, SQLExecutionError, SQLRefusedError

#: Fragments of SQLite errors raised by the read-only guard (authorizer, query_only,
#: mode=ro, SQLITE_LIMIT_ATTACHED=0, one statement per call, SQLITE_LIMIT_LENGTH).
_GUARD_MESSAGES = ("not authorized", "authorization denied", "readonly", "too many attached",
                   "one statement at a time", "string or blob too big")

#: SQLite VM instructions between two deadline checks (a few microseconds of work).
PROGRESS_STEPS = 10_000

#: Most bytes of result values kept per query (Python object sizes, ``sys.getsizeof``).
MAX_RESULT_BYTES = 32 * 1024 * 1024

#: Rows fetched per ``fetchmany`` call from a DBAPI driver without streaming.
FETCH_BATCH = 100

TruncatedBy = Literal["rows", "bytes"]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of one query.

    Attributes:
        columns: column names, in order.
        rows: at most ``row_limit`` rows, each a tuple of Python values, together at most
            ``max_bytes`` bytes (the row that would cross the budget is not kept).
        truncated: the query had more rows than were kept.
        elapsed: wall time of execute + fetch, seconds.
        truncated_by: ``"rows"`` (the row limit) or ``"bytes"`` (the byte budget) when
            ``truncated``; None otherwise.
        nbytes: bytes of the kept values.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed: float
    truncated_by: TruncatedBy | None = None
    nbytes: int = 0


def value_bytes(row: Sequence[Any]) -> int:
    """Memory of one row's values, bytes (``sys.getsizeof`` of each value)."""
    return sum(sys.getsizeof(v) for v in row)


def collect(rows: Iterable[Sequence[Any]], *, row_limit: int,
            max_bytes: int = MAX_RESULT_BYTES) -> tuple[list[tuple[Any, ...]], TruncatedBy | None, int]:
    """Read ``rows`` until ``row_limit`` rows or ``max_bytes`` bytes; returns ``(rows, truncated_by, nbytes)``.

    At most one row past a limit is read (to know whether there were more); a row that
    would cross the byte budget is dropped. The caller closes the source.
    """
    kept: list[tuple[Any, ...]] = []
    total = 0
    for row in rows:
        if len(kept) >= row_limit:
            return kept, "rows", total
        size = value_bytes(row)
        if total + size > max_bytes:
            return kept, "bytes", total
        kept.append(tuple(row))
        total += size
    return kept, None, total


class _Watchdog:
    """Calls ``interrupt`` once ``timeout`` seconds pass (or when the current cancel scope is
    cancelled), unless stopped first. ``fired`` says whether it did."""

    def __init__(self, timeout: float, interrupt: Callable[[], object]) -> None:
        self.fired = False
        self._interrupt = interrupt
        self._timer = threading.Timer(max(0.0, timeout), self.fire)
        self._timer.daemon = True

    def fire(self) -> None:
        self.fired = True
        try:
            self._interrupt()
        except Exception:  # the connection may already be closed
            pass

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def execute(db: Database, sql: str, *, row_limit: int = 1000, timeout: float = 10.0,
            max_bytes: int = MAX_RESULT_BYTES) -> QueryResult:
    """Run ``sql`` (one statement, already validated) read-only.

    Args:
        db: the database.
        sql: one SELECT statement.
        row_limit: most rows returned (more are not fetched).
        timeout: time limit for execute + fetch, seconds (shortened to what the current
            :mod:`~knowbase.safety.deadline` scope has left).
        max_bytes: most bytes of values returned (see :data:`MAX_RESULT_BYTES`).

    Raises:
        QueryTimeoutError: the time limit passed, or the caller's scope was cancelled;
            the statement was interrupted.
        SQLRefusedError: the engine guard refused the statement (write, ATTACH, PRAGMA,
            a value over ``SQLITE_LIMIT_LENGTH``...).
        SQLExecutionError: any other database error (``reason`` is the database's message).
        DatabaseConnectError: the database cannot be opened.
    """
    limit = effective_timeout(timeout)
    if db.dialect == "sqlite":
        return _execute_sqlite(db, sql, row_limit=row_limit, timeout=limit, max_bytes=max_bytes)
    return _execute_postgres(db, sql, row_limit=row_limit, timeout=limit, max_bytes=max_bytes)


def _timeout_error(sql: str, timeout: float) -> QueryTimeoutError:
    scope = current_scope()
    if scope is not None and scope.cancelled:
        return QueryTimeoutError(f"query stopped: {scope.reason}", sql=sql, timeout=timeout, partial=None)
    return QueryTimeoutError(f"query stopped at the time limit of {timeout:g} s", sql=sql, timeout=timeout,
                             partial=None)


def _execute_sqlite(db: Database, sql: str, *, row_limit: int, timeout: float, max_bytes: int) -> QueryResult:
    import apsw

    assert db.path is not None
    conn = open_sqlite_query_connection(db.path)
    t0 = time.perf_counter()
    deadline = t0 + timeout
    timed_out = False

    def check() -> bool:
        nonlocal timed_out
        if time.perf_counter() > deadline:
            timed_out = True
            return True  # true interrupts the statement (SQLITE_INTERRUPT)
        return False

    statements = 0
    columns: tuple[str, ...] = ()

    def one_statement(cursor: Any, _sql: str, _bindings: Any) -> bool:
        nonlocal statements, columns
        statements += 1
        if statements == 1:
            columns = tuple(d[0] for d in cursor.description)
        return statements == 1  # false aborts the second statement of "SELECT 1; DROP ..."

    conn.set_progress_handler(check, PROGRESS_STEPS)
    try:
        with _Watchdog(timeout, conn.interrupt) as dog, on_cancel(conn.interrupt):
            cur = conn.cursor()
            cur.exec_trace = one_statement
            try:
                rows, truncated_by, nbytes = collect(cur.execute(sql), row_limit=row_limit, max_bytes=max_bytes)
            except apsw.ExecTraceAbort as exc:
                reason = "You can only execute one statement at a time."
                raise SQLRefusedError(f"refused: {reason}", sql=sql, reason=reason) from exc
            except apsw.InterruptError as exc:
                raise _timeout_error(sql, timeout) from exc
            except apsw.Error as exc:
                if timed_out or dog.fired:
                    raise _timeout_error(sql, timeout) from exc
                message = str(exc)
                if "string or blob too big" in message.lower():
                    message = f"a string or blob value is larger than the limit of {MAX_VALUE_BYTES:,} bytes"
                    raise SQLRefusedError(f"refused: {message}", sql=sql, reason=message) from exc
                if any(marker in message.lower() for marker in _GUARD_MESSAGES):
                    raise SQLRefusedError(f"refused by the read-only guard: {message}", sql=sql,
                                          reason=message) from exc
                raise SQLExecutionError(message, sql=sql, reason=message) from exc
    finally:
        conn.set_progress_handler(None, 0)
        conn.close()
    return QueryResult(columns, rows, truncated_by is not None, time.perf_counter() - t0, truncated_by, nbytes)


def postgres_preamble(timeout: float) -> list[str]:
    """The statements that open every PostgreSQL query transaction, in order.

    ``statement_timeout`` is in milliseconds (at least 1).
    """
    return ["SET TRANSACTION READ ONLY", f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}"]


def _batches(cur: Any, size: int) -> Iterator[Sequence[Any]]:
    while True:
        batch = cur.fetchmany(size)
        if not batch:
            return
        yield from batch


def run_dbapi(conn: Any, sql: str, *, preamble: Sequence[str], row_limit: int,
              max_bytes: int = MAX_RESULT_BYTES) -> QueryResult:
    """Run ``preamble`` then ``sql`` on a DBAPI connection and always roll back.

    Rows stream one at a time where the cursor offers ``stream`` (psycopg 3), else come in
    ``fetchmany`` batches of :data:`FETCH_BATCH`; reading stops at ``row_limit`` rows or
    ``max_bytes`` bytes (see :func:`collect`). Exceptions of the driver propagate.
    """
    t0 = time.perf_counter()
    try:
        cur = conn.cursor()
        for statement in preamble:
            cur.execute(statement)
        stream = getattr(cur, "stream", None)
        if callable(stream):
            source: Iterator[Sequence[Any]] = stream(sql)
        else:
            cur.execute(sql)
            source = _batches(cur, FETCH_BATCH)
        try:
            rows, truncated_by, nbytes = collect(source, row_limit=row_limit, max_bytes=max_bytes)
        finally:
            close = getattr(source, "close", None)
            if callable(close):
                close()
        columns = tuple(d[0] for d in (cur.description or ()))
        cur.close()
    finally:
        conn.rollback()
    return QueryResult(columns, rows, truncated_by is not None, time.perf_counter() - t0, truncated_by, nbytes)


def _execute_postgres(db: Database, sql: str, *, row_limit: int, timeout: float, max_bytes: int) -> QueryResult:
    import psycopg  # the `postgres` extra

    proxy = db.raw_connection()
    driver = proxy.driver_connection
    cancel = getattr(driver, "cancel_safe", None) or driver.cancel
    try:
        with _Watchdog(timeout + 0.5, cancel), on_cancel(cancel):  # statement_timeout first, the watchdog backs it up
            return run_dbapi(driver, sql, preamble=postgres_preamble(timeout), row_limit=row_limit,
                             max_bytes=max_bytes)
    except psycopg.errors.QueryCanceled as exc:
        raise _timeout_error(sql, timeout) from exc
    except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege) as exc:
        raise SQLRefusedError(f"refused by the read-only guard: {exc}", sql=sql, reason=str(exc)) from exc
    except psycopg.Error as exc:
        message = str(exc).strip()
        raise SQLExecutionError(message, sql=sql, reason=message) from exc
    finally:
        proxy.close()
