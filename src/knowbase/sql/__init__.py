"""Text2SQL: ask a SQLite or PostgreSQL database in plain language, read-only.

* :class:`Text2SQL` (``.ask``, ``.generate``, ``.run``) and :class:`SQLAnswer` -- :mod:`.pipeline`
* :func:`open_database`, :class:`Database` -- :mod:`.database` (URLs, read-only engine guard)
* :func:`introspect`, :class:`Schema` -- :mod:`.schema` (introspection, CREATE TABLE text, table selection)
* :func:`validate_sql` -- :mod:`.validate` (sqlglot: one read-only SELECT, unknown names)
* :func:`execute` -- :mod:`.execute` (row and time limits)
"""

from __future__ import annotations

from knowbase._lazy import lazy_exports

_EXPORTS = {
    "Text2SQL": "knowbase.sql.pipeline",
    "SQLAnswer": "knowbase.sql.pipeline",
    "Example": "knowbase.sql.generate",
    "Database": "knowbase.sql.database",
    "open_database": "knowbase.sql.database",
    "Schema": "knowbase.sql.schema",
    "introspect": "knowbase.sql.schema",
    "validate_sql": "knowbase.sql.validate",
    "ValidatedSQL": "knowbase.sql.validate",
    "execute": "knowbase.sql.execute",
    "QueryResult": "knowbase.sql.execute",
    "SQLRefusedError": "knowbase.sql.errors",
    "SQLValidationError": "knowbase.sql.errors",
    "SQLExecutionError": "knowbase.sql.errors",
    "QueryTimeoutError": "knowbase.sql.errors",
    "DatabaseConnectError": "knowbase.sql.errors",
}


__getattr__, __dir__ = lazy_exports('knowbase.sql', _EXPORTS, globals())


__all__ = sorted(_EXPORTS)
