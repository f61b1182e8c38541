"""The PostgreSQL chunk store: one knowledge base in one PostgreSQL schema, pgvector for vectors.

Opened with psycopg 3 (autocommit; every write is an explicit transaction). The parts:
:mod:`.schema` (tables and migrations), :mod:`.documents` (meta, documents and chunks),
:mod:`.search` (BM25, dense, filters); counts and the integrity check are here.
"""

from __future__ import annotations

import threading
from typing import Any

from knowbase.errors import StoreError
from knowbase.knowledge.stores.base import StoreLocation
from knowbase.knowledge.stores.postgresql.documents import DocumentsMixin
from knowbase.knowledge.stores.postgresql.schema import migrate
from knowbase.knowledge.stores.postgresql.search import SearchMixin, _Docs
from knowbase.knowledge.types import CheckReport


def schema_name(name: str) -> str:
    """The PostgreSQL schema of knowledge base ``name`` (``kb_`` + name; at most 63 bytes)."""
    schema = f"kb_{name}"
    if len(schema.encode()) > 63:
        raise StoreError(f"knowledge base name {name!r} is too long for PostgreSQL (60 bytes at most)", path=name)
    return schema


def quote(identifier: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def connect(dsn: str, *, readonly: bool = False) -> Any:
    """A psycopg 3 connection (autocommit) with the pgvector types registered.

    Raises:
        StoreError: psycopg or pgvector is missing, or the server cannot be reached.
    """
    try:
        import psycopg
        from pgvector.psycopg import register_vector
    except ImportError as exc:
        raise StoreError(f"PostgreSQL stores need the postgres extra (pip install 'knowbase[postgres]'): {exc}",
                         path=dsn) from exc
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {dsn}: {str(exc).strip()}", path=dsn) from exc
    try:
        if not readonly:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"{dsn} has no pgvector extension (CREATE EXTENSION vector): {str(exc).strip()}",
                         path=dsn) from exc
    except Exception as exc:  # register_vector: the vector type is missing
        conn.close()
        raise StoreError(f"{dsn} has no pgvector extension: {exc}", path=dsn) from exc
    return conn


class PostgreSQLStore(DocumentsMixin, SearchMixin):
    """A :class:`~knowbase.knowledge.stores.base.ChunkStore` in a PostgreSQL schema.

    Args:
        location: from :meth:`PostgreSQLBackend.locate` (``url`` = DSN + ``#NAME``).
        create: create the schema when missing.
        readonly: refuse writes (``default_transaction_read_only``).

    Raises:
        StoreError: the server cannot be reached, lacks pgvector, or the knowledge base is missing.
    """

    def __init__(self, location: StoreLocation, *, create: bool = False, readonly: bool = False) -> None:
        import psycopg

        self.location = location
        self.readonly = readonly
        self.dsn = location.url.split("#", 1)[0]
        self.schema = schema_name(location.name)
        self._docs: _Docs | None = None
        self._docs_lock = threading.Lock()
        self.conn = connect(self.dsn, readonly=readonly)
        try:
            version = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            parts = tuple(int(p) for p in (version[0] if version else "0").split(".")[:2] if p.isdigit())
            self._iterative_scan = parts >= (0, 8)
            if create:
                self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
            elif not self.conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                                       "AND table_name = 'meta'", (self.schema,)).fetchone():
                raise StoreError(f"no knowledge base {location.name!r} at {self.dsn}", path=location.url)
            self.conn.execute(f"SET search_path TO {quote(self.schema)}, public")
            if readonly:
                self.conn.execute("SET default_transaction_read_only = on")
            else:
                migrate(self.conn, f"knowbase:{self.schema}")
        except psycopg.Error as exc:
            self.conn.close()
            raise StoreError(f"cannot open knowledge base {location.name!r} at {self.dsn}: {str(exc).strip()}",
                             path=location.url) from exc
        except BaseException:
            self.conn.close()
            raise

    def prepare(self) -> None:
        """Nothing to build: PostgreSQL keeps its indexes current on every write."""

    def counts(self) -> dict[str, int]:
        """documents, chunks, vectors, postings, and bytes (every table and index of the schema)."""
        def one(sql: str) -> int:
            return int(self.conn.execute(sql).fetchone()[0])

        size = one("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                   f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{self.schema}' "
                   "AND c.relkind = 'r'")
        return {"documents": one("SELECT count(*) FROM documents"), "chunks": one("SELECT count(*) FROM chunks"),
                "vectors": one("SELECT count(*) FROM vectors") if self._has_vectors() else 0,
                "postings": one("SELECT count(*) FROM postings"), "bytes": size}

    def check(self) -> CheckReport:
        """Integrity: every chunk has its vector and exactly its postings (``fts_rows`` counts
        chunks whose postings add up to their BM25 length), the corpus row matches the chunks,
        no duplicate or missing chunk positions."""
        problems: list[str] = []
        def rows(sql: str) -> list[Any]:
            return list(self.conn.execute(sql).fetchall())

        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            n_docs = rows("SELECT count(*) FROM documents")[0][0]
            chunk_ids = {r[0] for r in rows("SELECT id FROM chunks")}
            vec_ids = {r[0] for r in rows("SELECT chunk_id FROM vectors")} if self._has_vectors() else set()
            bad_postings = {r[0] for r in rows(
                "SELECT c.id FROM chunks c LEFT JOIN (SELECT chunk_id, sum(tf) AS n FROM postings GROUP BY chunk_id) p "
                "ON p.chunk_id = c.id WHERE coalesce(p.n, 0) <> c.length")}
            corpus = rows("SELECT chunks, tokens FROM corpus WHERE id = 1")[0]
            actual = rows("SELECT count(*), coalesce(sum(length), 0) FROM chunks")[0]
            gaps = rows("SELECT doc_id FROM chunks GROUP BY doc_id HAVING max(idx) + 1 <> count(*)")
        if chunk_ids - vec_ids:
            missing = chunk_ids - vec_ids
            problems.append(f"{len(missing)} chunks without a vector (e.g. chunk {min(missing)})")
        if vec_ids - chunk_ids:
            extra = vec_ids - chunk_ids
            problems.append(f"{len(extra)} orphan vectors (e.g. chunk {min(extra)})")
        if bad_postings:
            problems.append(f"{len(bad_postings)} chunks whose BM25 postings do not match their length "
                            f"(e.g. chunk {min(bad_postings)})")
        if tuple(corpus) != tuple(actual):
            problems.append(f"corpus statistics {tuple(corpus)} differ from the chunks {tuple(actual)}")
        problems.extend(f"document {d} has missing chunk positions" for (d,) in gaps)
        return CheckReport(int(n_docs), len(chunk_ids), len(chunk_ids - bad_postings), len(vec_ids), tuple(problems))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.conn.close()

    def __repr__(self) -> str:
        return f"PostgreSQLStore({self.location.url!r})"
