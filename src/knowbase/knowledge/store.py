"""The knowledge-base store: one SQLite file holding documents, chunks, BM25 and vectors.

Opened with ``apsw`` (the stdlib ``sqlite3`` of this Python cannot load extensions) and
the ``sqlite-vec`` extension. The file is in WAL mode, so readers keep answering while
one writer ingests. The schema is built by append-only named migrations
(:data:`MIGRATIONS`); the vector table is created once the embedding width is known.

Tables:

* ``meta(key, value)``: ``embedder`` (model string), ``dim``, ``created`` (Unix s), ``tokenizer``.
* ``documents``: one row per source (``path`` unique), with ``sha256``, ``size`` (bytes),
  ``mtime`` (Unix s), ``title``, ``language``, ``metadata`` (JSON), ``kind`` (file | memory).
* ``chunks``: ``doc_id``, ``idx``, ``text``, ``start``/``end`` (character offsets),
  ``section`` (JSON list), ``page``, ``tokens`` (embedder tokens), ``norm`` (hash of the
  normalised text, for collapsing near-duplicates).
* ``chunks_fts``: contentless-delete FTS5 table over BM25 tokens (:mod:`knowbase.knowledge.bm25`),
  ``rowid`` = chunk id. Ranked by SQLite's ``bm25()``: Robertson/Sparck Jones BM25 with
  k1=1.2, b=0.75 and IDF ``log((N - n + 0.5) / (n + 0.5))`` floored at 1e-6
  (https://www.sqlite.org/fts5.html#the_bm25_function).
* ``vec_chunks(chunk_id INTEGER PRIMARY KEY, embedding BLOB)``: float32 embeddings,
  L2-normalised (a plain rowid table since ``m002_plain_vectors``: point reads of a
  few hundred vectors take about a millisecond, where sqlite-vec's ``vec0`` scanned its
  whole table for them; sqlite-vec's ``vec_distance_cosine`` still serves filtered search).

Every write of one document (its row, chunks, FTS rows and vectors) is one
``BEGIN IMMEDIATE`` transaction: a crash leaves the old state or the new one. Each write
transaction also bumps ``meta.generation``, which tells the search index beside the file
(:mod:`knowbase.knowledge.index`, ``<kb>.db.index``) that it is stale.

Unfiltered searches go through that index (BM25 with FTS5's exact scores; dense by binary
codes with exact float rescoring); filtered ones run in SQL (FTS5 ``bm25()``, sqlite-vec
``vec_distance_cosine`` over the matching chunks).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import StoreError, UserError
from knowbase.knowledge.bm25 import TOKENIZER_V1, TOKENIZER_VERSION, document_tokens
from knowbase.knowledge.types import Chunk
from knowbase.storage import require_knowbase_file

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.index import SearchIndex

#: Tables every knowledge-base file holds (with ``m001_core`` in ``_migrations``).
KB_TABLES = ("meta", "documents", "chunks")
PAGE_SIZE = 8192  # bytes, for new files (SQLite's default is 4096)


def _plain_vectors(conn: Any) -> None:
    """m002: a sqlite-vec ``vec0`` ``vec_chunks`` becomes a plain rowid table (same rows)."""
    rows = list(conn.execute("SELECT sql FROM sqlite_master WHERE name = 'vec_chunks'"))
    if not rows or "vec0" not in (rows[0][0] or "").lower():
        return
    conn.execute("CREATE TABLE vec_chunks_plain (chunk_id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)")
    conn.execute("INSERT INTO vec_chunks_plain SELECT chunk_id, embedding FROM vec_chunks")
    conn.execute("DROP TABLE vec_chunks")
    conn.execute("ALTER TABLE vec_chunks_plain RENAME TO vec_chunks")


MIGRATIONS: list[tuple[str, str | Callable[[Any], None]]] = [
    ("m001_core", """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL DEFAULT 0,      -- bytes
            mtime REAL,                           -- Unix seconds
            title TEXT NOT NULL DEFAULT '',
            language TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',  -- JSON object
            kind TEXT NOT NULL DEFAULT 'file',    -- file | memory
            added REAL NOT NULL,
            updated REAL NOT NULL
        );
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            doc_id INTEGER NOT NULL REFERENCES documents(id),
            idx INTEGER NOT NULL,
            text TEXT NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            section TEXT NOT NULL DEFAULT '[]',   -- JSON list of headings
            page INTEGER,
            tokens INTEGER NOT NULL DEFAULT 0,    -- embedder tokens
            norm TEXT NOT NULL,                   -- sha1 of the normalised text
            UNIQUE (doc_id, idx)
        );
        CREATE INDEX chunks_norm ON chunks(norm);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            tokens, content='', contentless_delete=1,
            tokenize="unicode61 remove_diacritics 0 tokenchars '_'"
        );
        CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
    """),
    ("m002_plain_vectors", _plain_vectors),
]

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    """Text for near-duplicate detection: lowercase, punctuation dropped, spaces collapsed."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def norm_hash(text: str) -> str:
    """sha1 hex of :func:`normalise` (chunks with equal hashes are near-duplicates)."""
    return hashlib.sha1(normalise(text).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A stored document (no text: the chunks hold it).

    Attributes:
        id: store id. path: source path or memory key. sha256: hex digest of the source bytes.
        size: bytes. mtime: Unix seconds. chunks: number of chunks.
    """

    id: int
    path: str
    sha256: str
    size: int = 0
    mtime: float | None = None
    title: str = ""
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: str = "file"
    chunks: int = 0
    added: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Result of :meth:`KBStore.check`: ``problems`` is empty when the store is sound.

    Attributes:
        documents, chunks, fts_rows, vectors: row counts.
        problems: one line per problem found (missing vectors, orphans, duplicates...).
    """

    documents: int
    chunks: int
    fts_rows: int
    vectors: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _load_apsw():
    try:
        import apsw
        import sqlite_vec
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise StoreError(f"knowledge bases need apsw and sqlite-vec: {exc}", path=None) from exc
    return apsw, sqlite_vec


class KBStore:
    """Low-level access to one knowledge-base file. Most callers want
    :class:`knowbase.knowledge.base.KnowledgeBase`.

    Args:
        path: the SQLite file; created (with its folder) when ``create`` is true.
        create: create the file if missing; otherwise a missing file raises StoreError.
        readonly: open without write access (the schema must already be current).

    Raises:
        StoreError: the file is missing, not a database, or damaged (``path``).
    """

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        apsw, sqlite_vec = _load_apsw()
        self.path = Path(path)
        self._apsw = apsw
        self.readonly = readonly
        self._index: SearchIndex | None = None
        self._index_lock = threading.Lock()
        if not create and not self.path.exists():
            raise StoreError(f"knowledge base file not found: {self.path}", path=str(self.path))
        # another program's database is never migrated into a knowledge base
        require_knowbase_file(self.path, expected="knowledge base", migration=MIGRATIONS[0][0], tables=KB_TABLES,
                              allow_new=True)
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | (
                apsw.SQLITE_OPEN_CREATE if create else 0)
            self.conn = apsw.Connection(str(self.path), flags=flags)
            self.conn.setbusytimeout(30_000)
            self.conn.enable_load_extension(True)
            self.conn.load_extension(sqlite_vec.loadable_path())
            self.conn.enable_load_extension(False)
            if not readonly:
                if not list(self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")):
                    # a new file: 8 KiB pages hold five 1.5 KiB vectors where 4 KiB pages hold two
                    self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        except apsw.Error as exc:
            raise StoreError(f"cannot open knowledge base {self.path}: {exc}", path=str(self.path)) from exc

    # --- schema ----------------------------------------------------------------------
    def _migrate(self) -> list[str]:
        self.conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
        done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                if name in {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}:
                    continue  # another process applied it while we waited for the lock
                if callable(sql):
                    sql(self.conn)
                else:
                    self.conn.execute(sql)
                self.conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
                if name == "m001_core":
                    self.conn.execute("INSERT INTO meta VALUES ('created', ?), ('tokenizer', ?)",
                                      (str(time.time()), TOKENIZER_VERSION))
            applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.conn.close()

    # --- meta ------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """All ``meta`` rows as a dict."""
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: Any) -> None:
        """Write meta keys (values are stored as strings)."""
        with self.transaction():
            for k, v in values.items():
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, str(v)))

    @property
    def dim(self) -> int | None:
        """The embedding width, once vectors exist."""
        value = self.meta().get("dim")
        return int(value) if value else None

    def ensure_vectors(self, dim: int) -> None:
        """Create the ``vec_chunks`` table for ``dim``-wide embeddings (once).

        Raises:
            UserError: the table exists with another width.
        """
        current = self.dim
        if current is not None:
            if current != dim:
                raise UserError(f"{self.path} holds {current}-dim embeddings, not {dim}", path=str(self.path))
            return
        with self.transaction():
            self.conn.execute("CREATE TABLE IF NOT EXISTS vec_chunks (chunk_id INTEGER PRIMARY KEY, "
                              "embedding BLOB NOT NULL)")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(int(dim)),))

    def _has_vectors(self) -> bool:
        return bool(list(self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='vec_chunks'")))

    # --- documents -------------------------------------------------------------------
    _DOC_COLS = ("d.id, d.path, d.sha256, d.size, d.mtime, d.title, d.language, d.metadata, d.kind, "
                 "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id), d.added, d.updated")

    @staticmethod
    def _doc(row: Sequence[Any]) -> DocumentRow:
        return DocumentRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7] or "{}"),
                           row[8], row[9], row[10], row[11])

    def document(self, path_or_id: str | int) -> DocumentRow | None:
        """One document by id or exact path, or None."""
        col = "id" if isinstance(path_or_id, int) else "path"
        rows = list(self.conn.execute(f"SELECT {self._DOC_COLS} FROM documents d WHERE d.{col} = ?", (path_or_id,)))
        return self._doc(rows[0]) if rows else None

    def documents(self, *, kind: str | None = None) -> list[DocumentRow]:
        """All documents, ordered by path."""
        where, args = ("WHERE d.kind = ?", (kind,)) if kind else ("", ())
        return [self._doc(r) for r in self.conn.execute(
            f"SELECT {self._DOC_COLS} FROM documents d {where} ORDER BY d.path", args)]

    def write_document(self, doc: DocumentRow, chunks: Sequence[Chunk], bm25_tokens: Sequence[Sequence[str]],
                       vectors: np.ndarray) -> int:
        """Insert or replace a document and all its chunks, FTS rows and vectors in ONE transaction.

        Args:
            doc: the document row (``id`` ignored; an existing row with the same path keeps its id).
            chunks: its chunks, in order.
            bm25_tokens: BM25 tokens per chunk (same length as ``chunks``).
            vectors: float32 ``(len(chunks), dim)``, L2-normalised.

        Returns:
            the document id.

        Raises:
            ValueError: the three sequences differ in length.
            UserError: the vectors' width differs from the store's.
        """
        return self.write_documents([(doc, chunks, bm25_tokens, vectors)])[0]

    def write_documents(self, items: Sequence[tuple[DocumentRow, Sequence[Chunk], Sequence[Sequence[str]], np.ndarray]]
                        ) -> list[int]:
        """:meth:`write_document` for many documents in ONE transaction (bulk loads).

        Args:
            items: ``(doc, chunks, bm25_tokens, vectors)`` tuples as for :meth:`write_document`.

        Returns:
            the document ids, in order.
        """
        for _, chunks, toks, vecs in items:
            if not (len(chunks) == len(toks) == len(vecs)):
                raise ValueError("chunks, bm25_tokens and vectors must have the same length")
        dims = {int(v.shape[1]) for _, c, _, v in items if len(c)}
        if len(dims) > 1:
            raise UserError(f"vectors of different widths {sorted(dims)} in one write", path=str(self.path))
        if dims:
            self.ensure_vectors(dims.pop())
        now = time.time()
        ids: list[int] = []
        with self.transaction():
            for doc, chunks, bm25_tokens, vectors in items:
                ids.append(self._write_one(doc, chunks, bm25_tokens, vectors, now))
            self._bump_generation()
        return ids

    def _write_one(self, doc: DocumentRow, chunks: Sequence[Chunk], bm25_tokens: Sequence[Sequence[str]],
                   vectors: np.ndarray, now: float) -> int:
        old = list(self.conn.execute("SELECT id, added FROM documents WHERE path = ?", (doc.path,)))
        meta = json.dumps(doc.metadata, ensure_ascii=False, default=str)
        if old:
            doc_id, added = old[0]
            self._delete_chunks(doc_id)
            self.conn.execute(
                "UPDATE documents SET sha256=?, size=?, mtime=?, title=?, language=?, metadata=?, kind=?, updated=? "
                "WHERE id=?", (doc.sha256, doc.size, doc.mtime, doc.title, doc.language, meta, doc.kind, now, doc_id))
        else:
            self.conn.execute(
                "INSERT INTO documents (path, sha256, size, mtime, title, language, metadata, kind, added, updated) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (doc.path, doc.sha256, doc.size, doc.mtime, doc.title, doc.language, meta, doc.kind, now, now))
            doc_id = self.conn.last_insert_rowid()
        for i, (chunk, toks) in enumerate(zip(chunks, bm25_tokens)):
            self.conn.execute(
                'INSERT INTO chunks (doc_id, idx, text, start, "end", section, page, tokens, norm) '
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (doc_id, i, chunk.text, chunk.start, chunk.end, json.dumps(list(chunk.section), ensure_ascii=False),
                 chunk.page, chunk.tokens, norm_hash(chunk.text)))
            chunk_id = self.conn.last_insert_rowid()
            self.conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)", (chunk_id, " ".join(toks)))
            self.conn.execute("INSERT INTO vec_chunks (chunk_id, embedding) VALUES (?, ?)",
                              (chunk_id, np.ascontiguousarray(vectors[i], dtype=np.float32).tobytes()))
        return doc_id

    def _bump_generation(self) -> None:
        """Count one more write (inside the writer's transaction): caches derived from the
        file compare it to know they are stale."""
        self.conn.execute("INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE "
                          "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)")

    @property
    def generation(self) -> int:
        """Writes committed so far (0 for a store never written); see :meth:`_bump_generation`."""
        rows = list(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'"))
        return int(rows[0][0]) if rows else 0

    def _delete_chunks(self, doc_id: int) -> None:
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        has_vec = self._has_vectors()
        for cid in ids:
            self.conn.execute("DELETE FROM chunks_fts WHERE rowid = ?", (cid,))
            if has_vec:
                self.conn.execute("DELETE FROM vec_chunks WHERE chunk_id = ?", (cid,))
        self.conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))

    def delete_document(self, doc_id: int) -> bool:
        """Remove a document with its chunks, FTS rows and vectors (one transaction).

        Returns:
            True if it existed.
        """
        with self.transaction():
            if not list(self.conn.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,))):
                return False
            self._delete_chunks(doc_id)
            self.conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
            self._bump_generation()
        return True

    # --- reading chunks --------------------------------------------------------------
    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by id (ids not found are absent from the result)."""
        out: dict[int, Chunk] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(
                    f'SELECT c.id, c.doc_id, c.idx, c.text, c.start, c."end", c.section, c.page, c.tokens, d.path '
                    f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})", part):
                out[row[0]] = Chunk(text=row[3], start=row[4], end=row[5], index=row[2], section=tuple(json.loads(row[6])),
                                    page=row[7], tokens=row[8], doc_id=row[1], chunk_id=row[0], path=row[9])
        return out

    def norms(self, ids: Sequence[int]) -> dict[int, str]:
        """Near-duplicate hash per chunk id."""
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.conn.execute(f"SELECT id, norm FROM chunks WHERE id IN ({marks})", ids))

    def document_chunks(self, doc_id: int) -> list[Chunk]:
        """All chunks of one document, in order."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY idx", (doc_id,))]
        found = self.chunks(ids)
        return [found[i] for i in ids]

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored embeddings by chunk id (float32 ``(dim,)`` each)."""
        if not self._has_vectors() or not ids:
            return {}
        out = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for cid, blob in self.conn.execute(
                    f"SELECT chunk_id, embedding FROM vec_chunks WHERE chunk_id IN ({','.join('?' * len(part))})", part):
                out[cid] = np.frombuffer(blob, dtype=np.float32).copy()
        return out

    def _vector_matrix(self, ids: list[int]) -> np.ndarray:
        """float32 ``(len(ids), dim)`` stored vectors in the order of ``ids`` (zeros for missing ones)."""
        found = self.vectors(ids)
        dim = self.dim or 0
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for i, cid in enumerate(ids):
            vec = found.get(cid)
            if vec is not None and len(vec) == dim:
                out[i] = vec
        return out

    # --- the search index (a cache beside the file) ---------------------------------------
    @property
    def index_path(self) -> Path:
        """The search index file beside the knowledge base (``<kb>.db.index``)."""
        return Path(f"{self.path}.index")

    def search_index(self) -> SearchIndex:
        """The current search index: loaded from :attr:`index_path`, refreshed when the store's
        ``generation`` moved on (see :mod:`knowbase.knowledge.index`), saved back when the
        folder is writable.

        Raises:
            StoreError: reading the chunks failed.
        """
        from knowbase.knowledge import index as ix

        gen = self.generation
        current = self._index
        if current is not None and current.generation == gen:
            return current
        with self._index_lock:
            current = self._index
            if current is not None and current.generation == self.generation:
                return current
            data = current.data if current is not None else ix.load(self.index_path)
            if data is not None and data.generation == self.generation and data.tokenizer == self._tokenizer():
                self._index = ix.SearchIndex(data)
                return self._index
            self._index = ix.SearchIndex(self._refresh(data))
            return self._index

    def prepare_index(self) -> None:
        """Build or refresh the search index now (after a bulk load), so no query waits for it."""
        self.search_index()

    def _tokenizer(self) -> str:
        return self.meta().get("tokenizer", TOKENIZER_V1)

    @property
    def tokenizer(self) -> str:
        """The BM25 tokenizer version the chunks are indexed with (``meta.tokenizer``)."""
        return self._tokenizer()

    def document_tokens(self, text: str) -> list[str]:
        """BM25 tokens of a chunk's text for this store's tokenizer version."""
        return document_tokens(text, version=self._tokenizer())

    def retokenize(self) -> int:
        """Re-index every chunk's BM25 tokens with the current :data:`TOKENIZER_VERSION`
        (one transaction; vectors untouched). Returns the chunks re-indexed (0 when current)."""
        if self._tokenizer() == TOKENIZER_VERSION:
            return 0
        with self.transaction():
            rows = list(self.conn.execute("SELECT id, text FROM chunks"))
            self.conn.execute("DELETE FROM chunks_fts")
            for chunk_id, text in rows:
                self.conn.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)",
                                  (chunk_id, " ".join(document_tokens(text))))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('tokenizer', ?)", (TOKENIZER_VERSION,))
            self._bump_generation()
        return len(rows)

    def _refresh(self, old: Any) -> Any:
        from knowbase.knowledge import index as ix

        def fetch(ids: list[int]) -> tuple[list[str], np.ndarray]:
            marks = ",".join("?" * len(ids))
            texts = dict(self.conn.execute(f"SELECT id, text FROM chunks WHERE id IN ({marks})", ids))
            return [texts.get(i, "") for i in ids], self._vector_matrix(ids)

        try:
            self.conn.execute("BEGIN")  # one snapshot: the generation and the rows agree
            try:
                gen = self.generation
                tokenizer = self._tokenizer()
                current = list(self.conn.execute("SELECT id, norm FROM chunks ORDER BY id"))
                data = ix.build(old, generation=gen, tokenizer=tokenizer, dim=self.dim or 0, current=current,
                                fetch=fetch, tokenize=lambda text: document_tokens(text, version=tokenizer))
            finally:
                self.conn.execute("COMMIT")
        except self._apsw.Error as exc:
            raise StoreError(f"cannot read {self.path} to build its search index: {exc}", path=str(self.path)) from exc
        try:
            ix.save(data, self.index_path)
        except OSError:
            return data  # a read-only folder: the index lives in memory only
        mapped = ix.load(self.index_path)  # memory-mapped: pages shared with other readers, not copied
        return mapped if mapped is not None and mapped.generation == data.generation else data

    # --- search ----------------------------------------------------------------------
    def _filter_sql(self, path_glob: str | None, language: str | None) -> tuple[str, list[Any]]:
        where, args = [], []
        if path_glob:
            where.append("d.path GLOB ?")
            args.append(path_glob)
        if language:
            where.append("d.language = ?")
            args.append(language)
        return " AND ".join(where), args

    def bm25_search(self, tokens: Sequence[str], k: int, *, path_glob: str | None = None,
                    language: str | None = None, distinct: bool = False) -> list[tuple[int, float]]:
        """BM25: through the search index when unfiltered, else FTS5 in SQL (same scores).

        Args:
            tokens: query tokens from :func:`knowbase.knowledge.bm25.tokenize`.
            k: most results.
            path_glob, language: optional document filters (SQLite GLOB on the path).
            distinct: one chunk per near-duplicate text (unfiltered search only; the
                retriever collapses the rest).

        Returns:
            list of (chunk_id, score), best first; score = -bm25() (higher is better).

        Raises:
            StoreError: the query failed.
        """
        from knowbase.knowledge.bm25 import fts_query

        expr = fts_query(tokens)
        if not expr or k <= 0:
            return []
        where, args = self._filter_sql(path_glob, language)
        if not where:
            return self.search_index().bm25(tokens, k, distinct=distinct)
        if where:
            sql = ("SELECT f.rowid, -bm25(chunks_fts) AS s FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
                   f"JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND {where} ORDER BY s DESC LIMIT ?")
        else:
            sql = "SELECT rowid, -bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s DESC LIMIT ?"
        try:
            return [(int(r[0]), float(r[1])) for r in self.conn.execute(sql, [expr, *args, k])]
        except self._apsw.Error as exc:
            raise StoreError(f"BM25 query failed on {self.path}: {exc}", path=str(self.path)) from exc

    def dense_search(self, vector: np.ndarray, k: int, *, path_glob: str | None = None,
                     language: str | None = None, distinct: bool = False, exact: bool = False,
                     candidates: int = 6000, rescore: int = 100) -> list[tuple[int, float]]:
        """k-nearest-neighbour search by cosine similarity.

        Unfiltered: the search index's binary codes pick ``candidates`` chunks by Hamming
        distance, ``rescore`` of them are rescored exactly with their float32 vectors (see
        :mod:`knowbase.knowledge.index`; recall@10 against exact search is reported in
        ``benches/_kb_scale.py``). Filtered, or with ``exact``: sqlite-vec's
        ``vec_distance_cosine`` over every matching chunk (exact, slower).

        Args:
            vector: float32 ``(dim,)`` query embedding.
            k: most results.
            path_glob, language: optional document filters.
            distinct: one chunk per near-duplicate text (index path only).
            exact: brute force in SQL even without a filter.
            candidates, rescore: index search breadth (see :meth:`SearchIndex.dense`).

        Returns:
            list of (chunk_id, cosine similarity), best first.

        Raises:
            StoreError: the query failed.
        """
        if not self._has_vectors() or k <= 0:
            return []
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        where, args = self._filter_sql(path_glob, language)
        if not where and not exact:
            return self.search_index().dense(vector, k, vectors=self._vector_matrix, distinct=distinct,
                                             candidates=candidates, rescore=rescore)
        if where:
            rows = self.conn.execute(
                "SELECT v.chunk_id, vec_distance_cosine(v.embedding, ?) AS dist FROM vec_chunks v "
                "WHERE v.chunk_id IN (SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id "
                f"WHERE {where}) ORDER BY dist, v.chunk_id LIMIT ?", [blob, *args, k])
        else:
            rows = self.conn.execute("SELECT chunk_id, vec_distance_cosine(embedding, ?) AS dist FROM vec_chunks "
                                     "ORDER BY dist, chunk_id LIMIT ?", (blob, k))
        try:
            return [(int(r[0]), 1.0 - float(r[1])) for r in rows]
        except self._apsw.Error as exc:
            raise StoreError(f"vector query failed on {self.path}: {exc}", path=str(self.path)) from exc

    def doc_freqs(self, tokens: Sequence[str]) -> tuple[int, dict[str, int]]:
        """``(N chunks, {token: chunks containing it})`` from the FTS5 vocabulary."""
        n = next(iter(self.conn.execute("SELECT count(*) FROM chunks")))[0]
        uniq = list(dict.fromkeys(tokens))
        if not uniq:
            return n, {}
        marks = ",".join("?" * len(uniq))
        found = dict(self.conn.execute(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", uniq))
        return n, {t: int(found.get(t, 0)) for t in uniq}

    # --- statistics and integrity --------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Row counts: documents, chunks, fts_rows, vectors, and the bytes on disk (file, WAL
        and search index)."""
        one = lambda sql: next(iter(self.conn.execute(sql)))[0]  # noqa: E731
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), self.index_path) if p.exists())
        return {
            "documents": one("SELECT count(*) FROM documents"),
            "chunks": one("SELECT count(*) FROM chunks"),
            "fts_rows": one("SELECT count(*) FROM chunks_fts"),
            "vectors": one("SELECT count(*) FROM vec_chunks") if self._has_vectors() else 0,
            "bytes": size,
        }

    def check(self) -> CheckReport:
        """Integrity check: SQLite's own, then every chunk has its vector and FTS row,
        no orphans (FTS rows, vectors or chunks without their parent), no duplicate
        documents or chunk positions."""
        problems: list[str] = []
        rows = lambda sql: list(self.conn.execute(sql))  # noqa: E731
        quick = rows("PRAGMA quick_check")
        if quick != [("ok",)]:
            problems.extend(f"sqlite: {r[0]}" for r in quick[:10])
        try:
            self.conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 0)")
        except self._apsw.Error as exc:
            problems.append(f"fts5 index damaged: {exc}")
        chunk_ids = {r[0] for r in rows("SELECT id FROM chunks")}
        fts_ids = {r[0] for r in rows("SELECT rowid FROM chunks_fts")}
        vec_ids = {r[0] for r in rows("SELECT chunk_id FROM vec_chunks")} if self._has_vectors() else set()
        for label, missing in (("without an FTS row", chunk_ids - fts_ids), ("without a vector", chunk_ids - vec_ids)):
            if missing:
                problems.append(f"{len(missing)} chunks {label} (e.g. chunk {min(missing)})")
        for label, extra in (("FTS rows", fts_ids - chunk_ids), ("vectors", vec_ids - chunk_ids)):
            if extra:
                problems.append(f"{len(extra)} orphan {label} (e.g. chunk {min(extra)})")
        orphans = rows("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)")[0][0]
        if orphans:
            problems.append(f"{orphans} chunks whose document is gone")
        dups = rows("SELECT path, count(*) FROM documents GROUP BY path HAVING count(*) > 1")
        problems.extend(f"duplicate document {p} ({n} rows)" for p, n in dups)
        dup_chunks = rows("SELECT doc_id, idx FROM chunks GROUP BY doc_id, idx HAVING count(*) > 1")
        problems.extend(f"duplicate chunk {i} of document {d}" for d, i in dup_chunks)
        gaps = rows("SELECT doc_id FROM chunks GROUP BY doc_id HAVING max(idx) + 1 != count(*)")
        problems.extend(f"document {d} has missing chunk positions" for (d,) in gaps)
        return CheckReport(len(rows("SELECT id FROM documents")), len(chunk_ids), len(fts_ids), len(vec_ids),
                           tuple(problems))
