"""Documents and chunks in the PostgreSQL store: meta, writes in one transaction, deletes, reads."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from knowbase.errors import StoreError, UserError
from knowbase.knowledge.stores.base import DocumentWrite, StoreLocation
from knowbase.knowledge.stores.norms import norm_hash
from knowbase.knowledge.stores.postgresql.schema import vectors_ddl
from knowbase.knowledge.types import Chunk, DocumentRow

_CHUNK_COLS = 'c.id, c.doc_id, c.idx, c.text, c.start, c."end", c.section, c.page, c.tokens, d.path'
_DOC_COLS = ("d.id, d.path, d.sha256, d.size, d.mtime, d.title, d.language, d.metadata, d.kind, "
             "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id), d.added, d.updated")


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters: they become U+FFFD."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _vector_text(vector: np.ndarray) -> str:
    """pgvector's text form ``[x,y,...]`` of a float32 vector (shortest round-trip float32 digits)."""
    return "[" + ",".join(np.format_float_positional(x, unique=True, trim="-")
                          for x in np.asarray(vector, dtype=np.float32)) + "]"


def _array(value: Any) -> np.ndarray:
    """A pgvector value as float32 ``(dim,)`` (pgvector >= 0.4 returns its own ``Vector``)."""
    from pgvector import Vector

    return np.asarray(value.to_numpy() if isinstance(value, Vector) else value, dtype=np.float32)


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(text=row[3], start=row[4], end=row[5], index=row[2], section=tuple(row[6]), page=row[7],
                 tokens=row[8], doc_id=int(row[1]), chunk_id=int(row[0]), path=row[9])


def _doc(row: Sequence[Any]) -> DocumentRow:
    return DocumentRow(int(row[0]), row[1], row[2], int(row[3]), row[4], row[5], row[6], dict(row[7] or {}), row[8],
                       int(row[9]), row[10], row[11])


class DocumentsMixin:
    """Meta, document and chunk rows of :class:`~knowbase.knowledge.stores.postgresql.store.PostgreSQLStore`."""

    conn: Any
    location: StoreLocation

    # --- meta ------------------------------------------------------------------------
    @property
    def tokenizer(self) -> str:
        """The BM25 tokenizer version of this knowledge base (``meta.tokenizer``)."""
        from knowbase.knowledge.bm25 import TOKENIZER_VERSION

        return self.meta().get("tokenizer", TOKENIZER_VERSION)

    def retokenize(self) -> int:
        """0: PostgreSQL knowledge bases were created with the current tokenizer version.

        Raises:
            StoreError: the store records another version (re-create and re-ingest it).
        """
        from knowbase.errors import StoreError
        from knowbase.knowledge.bm25 import TOKENIZER_VERSION

        if self.tokenizer != TOKENIZER_VERSION:
            raise StoreError(f"{self.location.url} was indexed with BM25 tokenizer {self.tokenizer!r}, not "
                             f"{TOKENIZER_VERSION!r}: re-create it and ingest again", path=self.location.url)
        return 0

    def meta(self) -> dict[str, str]:
        """All ``meta`` rows as a dict."""
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: Any) -> None:
        """Write meta keys (values are stored as strings), in one transaction."""
        with self.conn.transaction():
            for k, v in values.items():
                self.conn.execute("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                                  (k, str(v)))

    @property
    def dim(self) -> int | None:
        """The embedding width, once vectors exist."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        return int(row[0]) if row else None

    @property
    def generation(self) -> int:
        """Write transactions committed so far."""
        return int(self.conn.execute("SELECT generation FROM corpus WHERE id = 1").fetchone()[0])

    def ensure_vectors(self, dim: int) -> None:
        """Create the vector table and its HNSW index for ``dim``-wide embeddings (once).

        Raises:
            UserError: the store holds another width.
        """
        current = self.dim
        if current is None:
            with self.conn.transaction():
                self.conn.execute("SELECT 1 FROM corpus WHERE id = 1 FOR UPDATE")  # one creator at a time
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
                if row is None:
                    self.conn.execute(vectors_ddl(dim))
                    self.conn.execute("INSERT INTO meta VALUES ('dim', %s)", (str(int(dim)),))
                    return
                current = int(row[0])
        if current != dim:
            raise UserError(f"{self.location.url} holds {current}-dim embeddings, not {dim}", path=self.location.url)

    def _has_vectors(self) -> bool:
        return self.dim is not None

    # --- documents -------------------------------------------------------------------
    def document(self, path_or_id: str | int) -> DocumentRow | None:
        """One document by id or exact path, or None."""
        col = "id" if isinstance(path_or_id, int) else "path"
        row = self.conn.execute(f"SELECT {_DOC_COLS} FROM documents d WHERE d.{col} = %s", (path_or_id,)).fetchone()
        return _doc(row) if row else None

    def documents(self, *, kind: str | None = None) -> list[DocumentRow]:
        """All documents, ordered by path (byte order, as SQLite)."""
        where, args = ("WHERE d.kind = %s", (kind,)) if kind else ("", ())
        return [_doc(r) for r in self.conn.execute(
            f'SELECT {_DOC_COLS} FROM documents d {where} ORDER BY d.path COLLATE "C"', args).fetchall()]

    def write_document(self, doc: DocumentRow, chunks: Sequence[Chunk], bm25_tokens: Sequence[Sequence[str]],
                       vectors: np.ndarray) -> int:
        """Insert or replace one document (by path) with its chunks, postings and vectors; see
        :meth:`write_documents`."""
        return self.write_documents([(doc, chunks, bm25_tokens, vectors)])[0]

    def write_documents(self, items: Sequence[DocumentWrite]) -> list[int]:
        """Insert or replace documents in ONE transaction (``INSERT ... ON CONFLICT (path)``: two
        writers of one path end with one document; a killed writer leaves nothing).

        Raises:
            ValueError: chunks, tokens and vectors differ in length.
            UserError: the vectors' width differs from the store's.
        """
        for _, chunks, toks, vecs in items:
            if not (len(chunks) == len(toks) == len(vecs)):
                raise ValueError("chunks, bm25_tokens and vectors must have the same length")
        dims = {int(v.shape[1]) for _, c, _, v in items if len(c)}
        if len(dims) > 1:
            raise UserError(f"vectors of different widths {sorted(dims)} in one write", path=self.location.url)
        if dims:
            self.ensure_vectors(dims.pop())
        import psycopg

        now = time.time()
        ids: list[int] = []
        try:
            with self.conn.transaction():
                # the corpus row first: writers queue here, so statistics stay exact and no two deadlock
                self.conn.execute("SELECT 1 FROM corpus WHERE id = 1 FOR UPDATE")
                d_chunks = d_tokens = 0
                for doc, chunks, toks, vecs in items:
                    doc_id, dc, dt = self._write_one(doc, chunks, toks, vecs, now)
                    ids.append(doc_id)
                    d_chunks += dc
                    d_tokens += dt
                self.conn.execute("UPDATE corpus SET chunks = chunks + %s, tokens = tokens + %s, "
                                  "generation = generation + 1 WHERE id = 1", (d_chunks, d_tokens))
        except psycopg.Error as exc:  # rolled back: nothing of these documents was written
            paths = ", ".join(d.path for d, *_ in items[:3]) + (" ..." if len(items) > 3 else "")
            raise StoreError(f"writing {paths} to {self.location.url} failed: {str(exc).strip()}",
                             path=self.location.url) from exc
        return ids

    def _write_one(self, doc: DocumentRow, chunks: Sequence[Chunk], bm25_tokens: Sequence[Sequence[str]],
                   vectors: np.ndarray, now: float) -> tuple[int, int, int]:
        from psycopg.types.json import Jsonb

        dumps = partial(json.dumps, ensure_ascii=False, default=str)
        meta = json.loads(_text(dumps(doc.metadata)))
        row = self.conn.execute(
            "INSERT INTO documents (path, sha256, size, mtime, title, language, metadata, kind, added, updated) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (path) DO UPDATE SET "
            "sha256 = EXCLUDED.sha256, size = EXCLUDED.size, mtime = EXCLUDED.mtime, title = EXCLUDED.title, "
            "language = EXCLUDED.language, metadata = EXCLUDED.metadata, kind = EXCLUDED.kind, "
            "updated = EXCLUDED.updated RETURNING id",
            (_text(doc.path), doc.sha256, doc.size, doc.mtime, _text(doc.title), doc.language,
             Jsonb(meta, dumps=dumps), doc.kind, now, now)).fetchone()
        doc_id = int(row[0])
        old_n, old_len = self._delete_chunks(doc_id)
        if not chunks:
            return doc_id, -old_n, -old_len
        with self.conn.cursor() as cur:
            # one statement for the chunks, COPY for their postings and vectors
            cur.execute(
                'INSERT INTO chunks (doc_id, idx, text, start, "end", section, page, tokens, norm, length) '
                "SELECT %s, i, t, s, e, sec::jsonb, p, n, h, l FROM unnest(%s::int[], %s::text[], %s::int[], %s::int[], "
                "%s::text[], %s::int[], %s::int[], %s::text[], %s::int[]) AS u(i, t, s, e, sec, p, n, h, l) "
                "RETURNING idx, id",
                (doc_id, list(range(len(chunks))), [_text(c.text) for c in chunks], [c.start for c in chunks],
                 [c.end for c in chunks], [json.dumps([_text(x) for x in c.section], ensure_ascii=False) for c in chunks],
                 [c.page for c in chunks], [c.tokens for c in chunks], [norm_hash(c.text) for c in chunks],
                 [len(t) for t in bm25_tokens]))
            ids = dict(cur.fetchall())
            with cur.copy("COPY postings (term, chunk_id, tf) FROM STDIN") as copy:
                for i, toks in enumerate(bm25_tokens):
                    for term, n in Counter(_text(t) for t in toks).items():
                        copy.write_row((term, ids[i], n))
            with cur.copy("COPY vectors (chunk_id, embedding) FROM STDIN") as copy:
                for i in range(len(chunks)):
                    copy.write_row((ids[i], _vector_text(vectors[i])))
        return doc_id, len(chunks) - old_n, sum(len(t) for t in bm25_tokens) - old_len

    def _delete_chunks(self, doc_id: int) -> tuple[int, int]:
        """Delete a document's chunks (postings and vectors cascade); returns (chunks, BM25 tokens) removed."""
        row = self.conn.execute("SELECT count(*), coalesce(sum(length), 0) FROM chunks WHERE doc_id = %s",
                                (doc_id,)).fetchone()
        self.conn.execute("DELETE FROM chunks WHERE doc_id = %s", (doc_id,))
        return int(row[0]), int(row[1])

    def delete_document(self, doc_id: int) -> bool:
        """Remove a document with its chunks, postings and vectors (one transaction); True if it existed."""
        with self.conn.transaction():
            self.conn.execute("SELECT 1 FROM corpus WHERE id = 1 FOR UPDATE")
            if not self.conn.execute("SELECT 1 FROM documents WHERE id = %s", (doc_id,)).fetchone():
                return False
            n, length = self._delete_chunks(doc_id)
            self.conn.execute("DELETE FROM documents WHERE id = %s", (doc_id,))
            self.conn.execute("UPDATE corpus SET chunks = chunks - %s, tokens = tokens - %s, "
                              "generation = generation + 1 WHERE id = 1", (n, length))
        return True

    # --- reading chunks --------------------------------------------------------------
    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by id (ids not found are absent)."""
        if not ids:
            return {}
        rows = self.conn.execute(f"SELECT {_CHUNK_COLS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                 "WHERE c.id = ANY(%s)", ([int(i) for i in ids],)).fetchall()
        return {int(r[0]): _chunk(r) for r in rows}

    def document_chunks(self, doc_id: int) -> list[Chunk]:
        """All chunks of one document, in order (one statement: one snapshot)."""
        return [_chunk(r) for r in self.conn.execute(
            f"SELECT {_CHUNK_COLS} FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.doc_id = %s "
            "ORDER BY c.idx", (doc_id,)).fetchall()]

    def norms(self, ids: Sequence[int]) -> dict[int, str]:
        """Near-duplicate hash per chunk id."""
        if not ids:
            return {}
        return {int(r[0]): r[1] for r in self.conn.execute(
            "SELECT id, norm FROM chunks WHERE id = ANY(%s)", ([int(i) for i in ids],)).fetchall()}

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored embeddings by chunk id (float32 ``(dim,)`` each)."""
        if not ids or not self._has_vectors():
            return {}
        return {int(r[0]): _array(r[1]) for r in self.conn.execute(
            "SELECT chunk_id, embedding FROM vectors WHERE chunk_id = ANY(%s)", ([int(i) for i in ids],)).fetchall()}
