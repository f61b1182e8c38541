"""Errors of the Text2SQL pipeline, all under :class:`~knowbase.errors.KnowbaseError`.

* :class:`SQLRefusedError` -- the validator or the engine guard refused a statement
  (write, DDL, PRAGMA, ATTACH, file or system function, several statements).
* :class:`SQLValidationError` -- the SQL does not parse or names unknown tables or columns.
* :class:`SQLExecutionError` -- the database rejected the statement (``reason`` holds its message).
* :class:`QueryTimeoutError` -- the statement ran past the time limit (``timeout`` seconds).
* :class:`DatabaseConnectError` -- the database URL or file cannot be opened.

Every one carries ``sql`` (the statement concerned) so the pipeline can feed it back
to the model with the reason.
"""

from __future__ import annotations

from knowbase.errors import BudgetExceeded, RuntimeFailure, SafetyError, UserError


class SQLValidationError(UserError):
    """The statement does not parse, or names unknown tables/columns (``sql``, ``reason``)."""

    sql: str
    reason: str


class SQLRefusedError(SafetyError):
    """A guard refused the statement: it is not a single read-only SELECT (``sql``, ``reason``)."""

    sql: str


class SQLExecutionError(RuntimeFailure):
    """The database raised an error while running the statement (``sql``, ``reason``)."""


class QueryTimeoutError(BudgetExceeded):
    """The statement ran longer than ``timeout`` seconds and was interrupted (``sql``)."""


class DatabaseConnectError(UserError):
    """The database cannot be opened (``url``, ``path`` for SQLite files, ``reason``)."""
