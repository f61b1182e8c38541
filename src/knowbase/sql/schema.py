"""Schema introspection and the compact CREATE TABLE text the model reads.

:func:`introspect` reads tables, columns, types, primary and foreign keys and comments
through SQLAlchemy's inspector, and optionally a few distinct sample values per text
column. :meth:`Schema.render` writes it as lean ``CREATE TABLE`` statements; sample
values appear as quoted, one-line SQL comments (``-- values: 'AC/DC', 'Accept'``), so
they are data for the model, never instructions: newlines, backticks and comment
markers are removed and each value is cut to :data:`SAMPLE_CHARS` characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from knowbase.sql.database import Database

_log = logging.getLogger(__name__)

#: Longest sample value shown to the model, characters.
SAMPLE_CHARS = 40
_TEXTY = re.compile(r"char|clob|text|string|date|time|enum|uuid", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``type`` as the database declares it (``""`` when untyped)."""

    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    comment: str | None = None
    samples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """``columns`` of this table reference ``ref_columns`` of ``ref_table``."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One table or view."""

    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    comment: str | None = None

    def column(self, name: str) -> Column | None:
        """The column called ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((c for c in self.columns if c.name.lower() == low), None)

    def description(self) -> str:
        """Words describing the table, for retrieval: names, comments, sample values."""
        parts = [self.name, self.comment or ""]
        for col in self.columns:
            parts += [col.name, col.comment or "", *col.samples]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Schema:
    """The tables of one database, in a stable order: creation order on SQLite, else by name
    (views after tables)."""

    dialect: str
    tables: tuple[Table, ...]
    namespace: str | None = None
    warnings: tuple[str, ...] = ()
    _index: dict[str, Table] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({t.name.lower(): t for t in self.tables})

    def table(self, name: str) -> Table | None:
        """The table called ``name`` (case-insensitive), or None."""
        return self._index.get(name.lower())

    def subset(self, names: Iterable[str]) -> Schema:
        """A schema with only the named tables (unknown names are ignored), same order."""
        keep = {n.lower() for n in names}
        return Schema(self.dialect, tuple(t for t in self.tables if t.name.lower() in keep), self.namespace,
                      self.warnings)

    def render(self, *, samples: bool = True) -> str:
        """Compact CREATE TABLE statements, one blank line apart.

        Example::

            CREATE TABLE artists (
              ArtistId INTEGER PRIMARY KEY,
              Name NVARCHAR(120) -- values: 'AC/DC', 'Accept'
            );
        """
        return "\n\n".join(render_table(t, samples=samples, dialect=self.dialect) for t in self.tables)


#: PostgreSQL key words that cannot be used as plain identifiers: those marked "reserved"
#: (including "requires AS" and "can be function or type") and "non-reserved (cannot be
#: function or type)" in Appendix C of the PostgreSQL 17 manual ("SQL Key Words").
POSTGRES_RESERVED = frozenset("""
ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BETWEEN BIGINT BINARY BIT BOOLEAN BOTH CASE CAST
CHAR CHARACTER CHECK COALESCE COLLATE COLLATION COLUMN CONCURRENTLY CONSTRAINT CREATE CROSS CURRENT_CATALOG
CURRENT_DATE CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DAY DEC DECIMAL DEFAULT
DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT EXISTS EXTRACT FALSE FETCH FILTER FLOAT FOR FOREIGN FREEZE FROM FULL
GRANT GREATEST GROUP GROUPING HAVING HOUR ILIKE IN INITIALLY INNER INOUT INT INTEGER INTERSECT INTERVAL INTO IS
ISNULL JOIN JSON JSON_ARRAY JSON_ARRAYAGG JSON_EXISTS JSON_OBJECT JSON_OBJECTAGG JSON_QUERY JSON_SCALAR
JSON_SERIALIZE JSON_TABLE JSON_VALUE LATERAL LEADING LEAST LEFT LIKE LIMIT LOCALTIME LOCALTIMESTAMP MERGE_ACTION
MINUTE MONTH NATIONAL NATURAL NCHAR NONE NORMALIZE NOT NOTNULL NULL NULLIF NUMERIC OFFSET ON ONLY OR ORDER OUT
OUTER OVER OVERLAPS OVERLAY PLACING POSITION PRECISION PRIMARY REAL REFERENCES RETURNING RIGHT ROW SECOND SELECT
SESSION_USER SETOF SIMILAR SMALLINT SOME SUBSTRING SYMMETRIC SYSTEM_USER TABLE TABLESAMPLE THEN TIME TIMESTAMP TO
TRAILING TREAT TRIM TRUE UNION UNIQUE USER USING VALUES VARCHAR VARIADIC VARYING VERBOSE WHEN WHERE WINDOW WITH
WITHIN WITHOUT XMLATTRIBUTES XMLCONCAT XMLELEMENT XMLEXISTS XMLFOREST XMLNAMESPACES XMLPARSE XMLPI XMLROOT
XMLSERIALIZE XMLTABLE YEAR
""".split())

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _sqlite_keywords() -> frozenset[str]:
    """SQLite's own key words (``sqlite3_keyword_name``, through apsw), upper case."""
    import apsw

    return frozenset(k.upper() for k in apsw.keywords)


def needs_quotes(name: str, dialect: str = "sqlite") -> bool:
    """``name`` must be double-quoted to be read as that identifier in ``dialect``.

    True for anything but ``[A-Za-z_][A-Za-z0-9_]*``, for a key word of the dialect
    (SQLite: every key word SQLite itself lists, and :data:`POSTGRES_RESERVED`, which
    sqlglot also refuses as a bare name; PostgreSQL: :data:`POSTGRES_RESERVED`), and on
    PostgreSQL for a name with capitals (unquoted names fold to lower case there).

    >>> [needs_quotes(n) for n in ("Track", "order", "group", "desc", "select", "My Col")]
    [False, True, True, True, True, True]
    >>> needs_quotes("ArtistId", "postgres"), needs_quotes("artist_id", "postgres")
    (True, False)
    """
    if not _PLAIN.fullmatch(name):
        return True
    if dialect in ("postgres", "postgresql"):
        return name.upper() in POSTGRES_RESERVED or name != name.lower()
    return name.upper() in _sqlite_keywords() or name.upper() in POSTGRES_RESERVED


def quote_ident(name: str, dialect: str = "sqlite") -> str:
    """``name`` as is when the dialect reads it plainly, else double-quoted (see :func:`needs_quotes`).

    >>> quote_ident("order"), quote_ident("Name"), quote_ident('a"b')
    ('"order"', 'Name', '"a""b"')
    """
    return '"' + name.replace('"', '""') + '"' if needs_quotes(name, dialect) else name


def fence_value(value: object) -> str:
    """A sample value as a one-line SQL string literal, safe inside a ``--`` comment.

    Control characters, backticks and comment markers become spaces; the value is cut to
    :data:`SAMPLE_CHARS` characters (``...`` marks a cut); quotes are doubled.
    """
    text = str(value)
    text = re.sub(r"[\x00-\x1f\x7f`]|--|/\*|\*/", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > SAMPLE_CHARS:
        text = text[:SAMPLE_CHARS].rstrip() + "..."
    return "'" + text.replace("'", "''") + "'"


def _clean_comment(text: str | None) -> str:
    return re.sub(r"\s+", " ", re.sub(r"--|/\*|\*/|`", " ", text or "")).strip()[:200]


def render_table(table: Table, *, samples: bool = True, dialect: str = "sqlite") -> str:
    """One table as a compact CREATE TABLE statement (see :meth:`Schema.render`), identifiers
    quoted as ``dialect`` needs them."""
    pk = [c.name for c in table.columns if c.primary_key]

    def q(name: str) -> str:
        return quote_ident(name, dialect)

    lines: list[tuple[str, str]] = []
    for col in table.columns:
        line = f"  {q(col.name)}" + (f" {col.type}" if col.type else "")
        if col.primary_key and len(pk) == 1:
            line += " PRIMARY KEY"
        notes = []
        if col.comment:
            notes.append(_clean_comment(col.comment))
        if samples and col.samples:
            notes.append("values: " + ", ".join(col.samples))
        lines.append((line, "; ".join(notes)))
    extra = []
    if len(pk) > 1:
        extra.append("  PRIMARY KEY (" + ", ".join(map(q, pk)) + ")")
    for fk in table.foreign_keys:
        extra.append(f"  FOREIGN KEY ({', '.join(map(q, fk.columns))}) REFERENCES "
                     f"{q(fk.ref_table)}({', '.join(map(q, fk.ref_columns))})")
    body = []
    items = [*lines, *((e, "") for e in extra)]
    for i, (text, note) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        body.append(f"{text}{comma}" + (f" -- {note}" if note else ""))
    head = f"CREATE TABLE {q(table.name)} ("
    if table.comment:
        head += f" -- {_clean_comment(table.comment)}"
    return head + "\n" + "\n".join(body) + "\n);"


def introspect(db: Database, *, sample_values: int = 0, namespace: str | None = None,
               sample_timeout: float = 1.0) -> Schema:
    """Read the schema of ``db`` (tables and views).

    Args:
        db: the database.
        sample_values: distinct non-null sample values per text-like column (0: none).
        namespace: PostgreSQL schema to read (default: the connection's default, ``public``).
        sample_timeout: time limit per sample query, seconds (a column that times out gets
            none, and a line in :attr:`Schema.warnings`).

    Raises:
        DatabaseConnectError: the database cannot be opened.
        SQLExecutionError: the catalog cannot be read.
    """
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from knowbase.sql.errors import SQLExecutionError

    try:
        insp = inspect(db.engine)
        rank = _creation_rank(db)
        names = _ordered(insp.get_table_names(schema=namespace), rank or {}) + \
            _ordered(insp.get_view_names(schema=namespace), rank or {})
        tables = []
        for name in names:
            pk_cols = set((insp.get_pk_constraint(name, schema=namespace) or {}).get("constrained_columns") or [])
            fks = tuple(
                ForeignKey(tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in insp.get_foreign_keys(name, schema=namespace) if fk.get("referred_table"))
            try:
                comment = (insp.get_table_comment(name, schema=namespace) or {}).get("text")
            except NotImplementedError:
                comment = None
            cols = []
            for c in insp.get_columns(name, schema=namespace):
                cols.append(Column(c["name"], _type_name(c["type"]), bool(c.get("nullable", True)),
                                   c["name"] in pk_cols or bool(c.get("primary_key")), c.get("comment") or None))
            tables.append(Table(name, tuple(cols), fks, comment))
    except SQLAlchemyError as exc:
        raise SQLExecutionError(f"cannot read the schema of {db.display_url}: {exc}", sql=None,
                                reason=str(exc)) from exc
    warnings: list[str] = []
    if rank is None:
        message = "the creation order of tables could not be read; tables are sorted by name"
        _log.warning(message)
        warnings.append(message)
    if sample_values > 0:
        tables = [_with_samples(db, t, sample_values, namespace, sample_timeout, warnings) for t in tables]
    return Schema(db.dialect, tuple(tables), namespace, tuple(warnings))


def _creation_rank(db: Database) -> dict[str, int] | None:
    """``{name: position}`` of tables and views in the order the database's author created
    them (SQLite: ``sqlite_master`` rowid order); ``{}`` for other databases or when the
    catalog cannot be read. Creation order reads like the author's own DDL, where a table
    is usually defined before the tables that reference it. None when the catalog query
    failed (the caller reports it)."""
    if db.dialect != "sqlite":
        return {}
    from knowbase.errors import KnowbaseError
    from knowbase.sql.execute import execute

    try:
        rows = execute(db, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY rowid",
                       row_limit=100_000, timeout=5.0).rows
    except KnowbaseError as exc:
        _log.warning("cannot read the creation order of %s: %s", db.display_url, exc)
        return None
    return {str(r[0]): i for i, r in enumerate(rows)}


def _ordered(names: Sequence[str], rank: dict[str, int]) -> list[str]:
    """``names`` by creation ``rank`` (unranked ones last), ties and the rest by name."""
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _type_name(sa_type: object) -> str:
    """The declared type, or "" when there is none (SQLAlchemy's NullType prints as "NULL",
    which would tell the model the column holds only NULLs)."""
    from sqlalchemy.types import NullType

    if isinstance(sa_type, NullType):
        return ""
    try:
        return str(sa_type)
    except Exception:  # NullType and some dialect types cannot compile on their own
        return ""


def _with_samples(db: Database, table: Table, k: int, namespace: str | None, timeout: float,
                  warnings: list[str]) -> Table:
    """Add the ``k`` most frequent values of each text-like column; a failed query adds to ``warnings``.

    A column whose most frequent value occurs once (a near-unique column: names,
    addresses, phone numbers) gets none: such samples cost prompt tokens and rarely help
    the model match a value; categorical columns (country, status, genre) keep theirs.
    """
    from knowbase.errors import KnowbaseError
    from knowbase.sql.execute import execute

    qualified = (quote_ident(namespace, db.dialect) + "." if namespace else "") + quote_ident(table.name, db.dialect)
    cols = []
    for col in table.columns:
        if not col.type or _TEXTY.search(col.type):
            name = quote_ident(col.name, db.dialect)
            sql = (f"SELECT {name}, COUNT(*) AS n FROM {qualified} WHERE {name} IS NOT NULL "
                   f"GROUP BY {name} ORDER BY n DESC LIMIT {k}")
            try:
                rows = [r for r in execute(db, sql, row_limit=k, timeout=timeout).rows if str(r[0]).strip()]
            except KnowbaseError as exc:  # a sample is optional: the column gets none, and it is reported
                rows = []
                message = f"sample values of {table.name}.{col.name} not read: {exc}"
                _log.warning(message)
                warnings.append(message)
            if rows and max(r[1] for r in rows) > 1:
                col = Column(col.name, col.type, col.nullable, col.primary_key, col.comment,
                             tuple(fence_value(r[0]) for r in rows))
        cols.append(col)
    return Table(table.name, tuple(cols), table.foreign_keys, table.comment)


# --- table selection for large schemas -----------------------------------------------
_WORD = re.compile(r"[A-Za-z]+|\d+|[\u4e00-\u9fff]")


def words(text: str) -> list[str]:
    """Lower-case word tokens: snake_case and CamelCase split, plural ``s`` dropped.

    >>> words("TrackId of invoice_lines")
    ['track', 'id', 'of', 'invoice', 'line']
    """
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    out = []
    for w in _WORD.findall(spaced):
        w = w.lower()
        if len(w) > 3 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def bm25_scores(query: str, docs: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 scores of ``docs`` for ``query`` (Robertson & Zaragoza 2009; k1=1.2, b=0.75).

    Returns one score per doc, in the order given.
    """
    import math

    toks = [words(d) for d in docs]
    n = len(docs)
    avg = sum(len(t) for t in toks) / max(1, n)
    df: dict[str, int] = {}
    for t in toks:
        for w in set(t):
            df[w] = df.get(w, 0) + 1
    q = set(words(query))
    scores = []
    for t in toks:
        tf: dict[str, int] = {}
        for w in t:
            tf[w] = tf.get(w, 0) + 1
        s = 0.0
        for w in q:
            if w in tf:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                s += idf * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(t) / max(avg, 1e-9)))
        scores.append(s)
    return scores


def select_tables(schema: Schema, question: str, *, max_tables: int = 12, embedder: object | None = None) -> Schema:
    """The tables relevant to ``question``, for schemas with more than ``max_tables`` tables.

    Ranks tables by BM25 over :meth:`Table.description` (or, with an ``embedder``, by the
    cosine of its embeddings, which also matches questions in other languages), keeps the
    top ``max_tables`` and adds the tables their foreign keys join to (one hop) when
    room remains. A schema within the limit is returned whole.
    """
    if len(schema.tables) <= max_tables:
        return schema
    descriptions = [t.description() for t in schema.tables]
    if embedder is not None:
        vecs = embedder.embed(descriptions)  # type: ignore[attr-defined]
        qv = embedder.embed_query(question)  # type: ignore[attr-defined]
        scores = [float(s) for s in vecs @ qv]
    else:
        scores = bm25_scores(question, descriptions)
    ranked = sorted(range(len(schema.tables)), key=lambda i: (-scores[i], i))
    chosen = [schema.tables[i].name for i in ranked[:max(1, max_tables // 2)] if scores[i] > 0] or \
        [schema.tables[ranked[0]].name]
    # one FK hop from the chosen tables, then the next best by score
    for name in list(chosen):
        table = schema.table(name)
        assert table is not None
        linked = [fk.ref_table for fk in table.foreign_keys] + \
            [t.name for t in schema.tables if any(fk.ref_table.lower() == name.lower() for fk in t.foreign_keys)]
        for other in linked:
            if len(chosen) < max_tables and other.lower() not in {c.lower() for c in chosen} and schema.table(other):
                chosen.append(schema.table(other).name)  # type: ignore[union-attr]
    for i in ranked:
        if len(chosen) >= max_tables:
            break
        if schema.tables[i].name not in chosen and scores[i] > 0:
            chosen.append(schema.tables[i].name)
    return schema.subset(chosen)
