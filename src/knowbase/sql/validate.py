"""Static validation of model-written SQL with sqlglot, in the database's dialect.

:func:`validate_sql` accepts exactly one read-only query: ``SELECT``, ``WITH ... SELECT``
or a compound (``UNION``/``INTERSECT``/``EXCEPT``) of selects. Refused anywhere in the
tree: DDL and DML (also inside CTEs), ``SELECT ... INTO``, ``FOR UPDATE``, PRAGMA,
ATTACH/DETACH, COPY, VACUUM and any statement sqlglot can only read as a raw command,
functions in :data:`~knowbase.sql.database.DENIED_FUNCTIONS`, ``randomblob``/``zeroblob``
above :data:`MAX_BLOB_BYTES` (or with a computed size), system catalogs
(``sqlite_master``, ``pg_catalog``, ``information_schema``), table-valued pragma
functions, and tables of other attached databases or catalogs.

With a :class:`~knowbase.sql.schema.Schema`, unknown tables and columns are reported
with the names that do exist, and a column used without the table that holds it is
reported with that table, so the model can correct itself (:func:`with_column_hint`
adds the same hint to a database's ``no such column`` error). The statement that runs
is sqlglot's rendering of the tree without comments, with ``LIMIT n`` added when the
query has none and a limit is asked for.

This is one layer of two: the engine guard in :mod:`knowbase.sql.database` holds even
when a statement slips past this validator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from knowbase.sql.database import DENIED_FUNCTIONS
from knowbase.sql.errors import SQLRefusedError, SQLValidationError
from knowbase.sql.schema import Schema

#: Largest literal size allowed in ``randomblob(n)`` / ``zeroblob(n)``, bytes.
MAX_BLOB_BYTES = 1_000_000
#: Longest statement validated, characters (model replies are far shorter).
MAX_SQL_CHARS = 100_000
#: Deepest parenthesis nesting validated. sqlglot's parser recurses about 20 Python frames
#: per level and fails near 40 levels under CPython's default limit of 1,000 frames; real
#: queries nest a few levels. Deeper nesting without parentheses (``NOT NOT ...``, nested
#: ``CASE``) is caught as a ``RecursionError`` and reported the same way.
MAX_SQL_DEPTH = 24
_BLOB_FUNCS = {"randomblob", "zeroblob"}
_TABLE_FUNCS = {"json_each", "json_tree", "generate_series", "unnest", "jsonb_each", "json_array_elements",
                "jsonb_array_elements", "regexp_split_to_table"}
_FORBIDDEN_NODES = ("Insert", "Update", "Delete", "Merge", "Drop", "Create", "Alter", "AlterTable", "Command",
                    "Copy", "Pragma", "Attach", "Detach", "Into", "Lock", "Set", "Transaction", "Commit",
                    "Rollback", "Use", "LoadData", "Analyze", "Grant", "Revoke", "TruncateTable", "Cache",
                    "Uncache", "Refresh", "Describe", "Kill", "Execute")
_CATALOG_SCHEMAS = {"pg_catalog", "information_schema", "pg_toast"}


@dataclass(frozen=True, slots=True)
class ValidatedSQL:
    """A statement that passed validation.

    Attributes:
        sql: what runs: sqlglot's rendering in the dialect, comments dropped, LIMIT added.
        source: the statement as given.
        tables: schema tables it reads (lower case, sorted).
        limit_added: a LIMIT was added.
    """

    sql: str
    source: str
    tables: tuple[str, ...]
    limit_added: bool


def _refuse(sql: str, reason: str) -> SQLRefusedError:
    return SQLRefusedError(f"refused: {reason}", sql=sql, reason=reason)


def _invalid(sql: str, reason: str) -> SQLValidationError:
    return SQLValidationError(reason, sql=sql, reason=reason)


def validate_sql(sql: str, *, dialect: str = "sqlite", schema: Schema | None = None,
                 limit: int | None = None) -> ValidatedSQL:
    """Check that ``sql`` is one read-only query and return what to run.

    Args:
        sql: the statement (a trailing ``;`` is fine).
        dialect: sqlglot dialect (``sqlite``, ``postgres``).
        schema: known tables and columns; None skips the unknown-name checks.
        limit: add ``LIMIT limit`` when the query has no LIMIT; None adds nothing.

    Raises:
        SQLRefusedError: not a single read-only query, or it uses a refused feature.
        SQLValidationError: the SQL does not parse, names unknown tables or columns, is
            longer than :data:`MAX_SQL_CHARS` or nests deeper than :data:`MAX_SQL_DEPTH`.
    """
    text = (sql or "").strip()
    if not text:
        raise _invalid(sql, "empty statement")
    if len(text) > MAX_SQL_CHARS:
        raise _invalid(sql, f"statement of {len(text)} characters; the limit is {MAX_SQL_CHARS}")
    depth = _paren_depth(text)
    if depth > MAX_SQL_DEPTH:
        raise _invalid(sql, f"parentheses nested {depth} deep; the limit is {MAX_SQL_DEPTH}")
    try:
        return _validate(sql, text, dialect, schema, limit)
    except (SQLRefusedError, SQLValidationError):
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        # sqlglot (or a check below) failed on an input it does not expect: the statement is
        # refused as unreadable rather than crashing the caller.
        raise _invalid(sql, f"cannot analyse the statement ({type(exc).__name__}: {exc})") from exc


def _paren_depth(text: str) -> int:
    """Deepest ``(`` nesting outside SQL string literals and quoted identifiers (linear)."""
    depth = deepest = 0
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")" and depth:
            depth -= 1
    return deepest


def _validate(sql: str, text: str, dialect: str, schema: Schema | None, limit: int | None) -> ValidatedSQL:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)  # sqlglot warns when it falls back to a raw Command
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except SqlglotError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _invalid(sql, f"syntax error: {message}") from exc
    finally:
        logger.setLevel(level)
    if not statements:
        raise _invalid(sql, "empty statement")
    if len(statements) > 1:
        raise _refuse(sql, f"{len(statements)} statements; exactly one SELECT is allowed")
    root = statements[0]
    if isinstance(root, exp.Subquery):
        root = root.unnest()
    if not isinstance(root, (exp.Select, exp.SetOperation)):
        kind = root.key.upper() if not isinstance(root, exp.Command) else str(root.this).upper()
        raise _refuse(sql, f"{kind} statement; only SELECT (or WITH ... SELECT) is allowed")
    forbidden = tuple(c for c in (getattr(exp, n, None) for n in _FORBIDDEN_NODES) if isinstance(c, type))
    for node in root.walk():
        if isinstance(node, forbidden):
            raise _refuse(sql, f"{node.key.upper()} is not allowed in a read-only query")
        if isinstance(node, exp.Func):
            _check_function(sql, node)
    cte_names = {c.alias_or_name.lower() for c in root.find_all(exp.CTE)}
    tables = _check_tables(sql, root, dialect, schema, cte_names)
    if schema is not None:
        _check_columns(sql, root, dialect, schema, cte_names)
    limit_added = False
    if limit is not None and root.args.get("limit") is None and root.args.get("fetch") is None:
        root.set("limit", exp.Limit(expression=exp.Literal.number(int(limit))))
        limit_added = True
    try:
        out = root.sql(dialect=dialect, comments=False)
    except SqlglotError as exc:
        raise _invalid(sql, f"cannot render the statement: {exc}") from exc
    return ValidatedSQL(out, sql, tables, limit_added)


def _func_name(node: object) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()  # type: ignore[attr-defined]


def _check_function(sql: str, node: object) -> None:
    from sqlglot import exp

    name = _func_name(node)
    if name in DENIED_FUNCTIONS or name.startswith("pragma_"):
        raise _refuse(sql, f"function {name}() is not allowed")
    if name in _BLOB_FUNCS:
        args = list(node.expressions) if isinstance(node, exp.Anonymous) else [node.this]  # type: ignore[attr-defined]
        size = args[0] if args else None
        if not (isinstance(size, exp.Literal) and not size.is_string) or not _number_at_most(size.this, MAX_BLOB_BYTES):
            raise _refuse(sql, f"{name}() larger than {MAX_BLOB_BYTES} bytes or with a computed size")


def _number_at_most(text: str, maximum: float) -> bool:
    """``text`` is a plain numeric literal no larger than ``maximum`` (sqlglot reads
    ``1e6+1`` as one number token: that is not a plain literal)."""
    try:
        return float(str(text).replace("_", "")) <= maximum
    except ValueError:
        return False


def _check_tables(sql: str, root: object, dialect: str, schema: Schema | None, cte_names: set[str]) -> tuple[str, ...]:
    from sqlglot import exp

    used: set[str] = set()
    unknown: list[str] = []
    for table in root.find_all(exp.Table):  # type: ignore[attr-defined]
        if isinstance(table.this, exp.Func) or isinstance(table.this, exp.Anonymous):
            name = _func_name(table.this)
            if name not in _TABLE_FUNCS:
                raise _refuse(sql, f"table function {name}() is not allowed")
            continue
        name = table.name
        low = name.lower()
        db = (table.db or "").lower()
        if table.catalog:
            raise _refuse(sql, f"{table.sql(dialect=dialect)} reads another database")
        if low.startswith("sqlite_") or low.startswith("pg_") or db in _CATALOG_SCHEMAS:
            raise _refuse(sql, f"system catalog {table.sql(dialect=dialect)} is not readable")
        if dialect == "sqlite" and db not in ("", "main"):
            raise _refuse(sql, f"{table.sql(dialect=dialect)} reads another attached database")
        if db and dialect != "sqlite" and schema is not None and db != (schema.namespace or "public").lower():
            raise _refuse(sql, f"{table.sql(dialect=dialect)} is outside schema {schema.namespace or 'public'}")
        if not db and low in cte_names:
            continue
        if schema is not None and schema.table(name) is None:
            unknown.append(name)
        else:
            used.add(low)
    if unknown and schema is not None:
        known = ", ".join(t.name for t in schema.tables)
        raise _invalid(sql, f"unknown table {', '.join(sorted(set(unknown)))}; the tables are: {known}")
    return tuple(sorted(used))


def _check_columns(sql: str, root: object, dialect: str, schema: Schema, cte_names: set[str]) -> None:
    """Report columns that exist in no table of the schema and are no alias of the query.

    Qualified columns (``t.c``) whose qualifier names schema tables only are checked
    against those tables. An unqualified column that no table of the query holds (when
    every source of the query is a schema table) is reported with the tables that do
    hold it, so the model can add the join: small models often write
    ``SELECT count(*) FROM a WHERE b_col = 1`` for a column of a joined table ``b``.
    SQLite reads an unknown double-quoted identifier as a string literal, so those are
    left alone there.
    """
    from sqlglot import exp

    all_cols = {c.name.lower() for t in schema.tables for c in t.columns}
    aliases: set[str] = set(cte_names)
    qualifier: dict[str, set[str]] = {}
    spelled: dict[str, str] = {}  # qualifier as the query writes it
    for node in root.walk():  # type: ignore[attr-defined]
        if isinstance(node, exp.Alias):
            aliases.add(node.alias.lower())
        elif isinstance(node, exp.TableAlias):
            aliases.add(node.name.lower())
            aliases.update(c.name.lower() for c in node.columns)
        elif isinstance(node, exp.Table) and not isinstance(node.this, (exp.Func, exp.Anonymous)):
            table = schema.table(node.name) if node.name.lower() not in cte_names else None
            key = node.alias_or_name.lower()
            qualifier.setdefault(key, set()).add(table.name if table else "")
            spelled.setdefault(key, node.alias_or_name)
        elif isinstance(node, exp.Subquery) and node.alias:
            qualifier.setdefault(node.alias.lower(), set()).add("")
    sources = {name for names in qualifier.values() for name in names}
    in_query = [schema.table(n) for n in sorted(sources) if n]
    problems: list[str] = []
    for col in root.find_all(exp.Column):  # type: ignore[attr-defined]
        if isinstance(col.this, exp.Star) or not col.name:
            continue
        low = col.name.lower()
        quoted = bool(getattr(col.this, "quoted", False))
        if low in aliases:
            continue
        if low not in all_cols:
            if dialect == "sqlite" and quoted and not col.table:
                continue  # SQLite falls back to a string literal
            problems.append(f"unknown column {col.sql(dialect=dialect)}")
            continue
        owners = qualifier.get(col.table.lower()) if col.table else None
        if owners and "" not in owners:
            tables = [schema.table(o) for o in owners]
            if not any(t is not None and t.column(col.name) for t in tables):
                cols = ", ".join(c.name for t in tables if t for c in t.columns)
                joined = [f"{spelled[alias]}.{col.name}" for alias, names in sorted(qualifier.items())
                          for n in names if n and alias != col.table.lower()
                          and (held := schema.table(n)) is not None and held.column(col.name)]
                hint = (f"; the query already reads a table that holds it: write {' or '.join(joined)}" if joined
                        else _held_by(schema, col.name))
                problems.append(f"column {col.name} is not in table {', '.join(sorted(owners))} "
                                f"(its columns: {cols}){hint}")
        elif not col.table and in_query and "" not in sources and not (dialect == "sqlite" and quoted) \
                and not any(t is not None and t.column(col.name) for t in in_query):
            names = ", ".join(t.name for t in in_query if t is not None)
            problems.append(f"column {col.name} is not in table {names} of the query{_held_by(schema, col.name)}")
    if problems:
        raise _invalid(sql, "; ".join(dict.fromkeys(problems)))


def with_column_hint(reason: str, schema: Schema) -> str:
    """``reason`` plus the tables that hold the column a database error calls missing.

    SQLite says ``no such column: T2.name``, PostgreSQL ``column "name" does not exist``;
    either gets ``"; name is a column of t1, t2: join that table through its key"``.
    Other reasons come back unchanged.

    >>> with_column_hint("no such column: x", Schema("sqlite", ()))
    'no such column: x'
    """
    import re

    match = re.search(r'no such column: (?:\w+\.)?(\w+)|column "?(?:\w+\.)?(\w+)"? does not exist', reason or "")
    if not match:
        return reason
    return reason + _held_by(schema, match.group(1) or match.group(2))


def _held_by(schema: Schema, column: str) -> str:
    """``"; it is a column of t1, t2: join that table through its key"`` (``""`` when none holds it)."""
    owners = [t.name for t in schema.tables if t.column(column) is not None]
    if not owners:
        return ""
    return f"; {column} is a column of {', '.join(owners)}: join that table through its key"
