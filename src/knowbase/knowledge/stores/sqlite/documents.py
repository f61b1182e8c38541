"""Documents and chunks in the SQLite store: meta, writes in one transaction, deletes, reads."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import UserError
from knowbase.knowledge.stores.base import DocumentWrite
from knowbase.knowledge.stores.norms import norm_hash
from knowbase.knowledge.types import Chunk, DocumentRow


class DocumentsMixin:
    """Meta, document and chunk rows of :class:`~knowbase.knowledge.stores.sqlite.store.SQLiteStore`.

    Every write transaction bumps ``meta.generation``, which tells caches derived from the
    file (the search index, the filter cache) that they are stale.
    """

    conn: Any
    path: Path


    if TYPE_CHECKING:  # defined by the other parts of the store
        def transaction(self) -> AbstractContextManager[None]: ...

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

    @property
    def generation(self) -> int:
        """Writes committed so far (0 for a store never written); see :meth:`_bump_generation`."""
        rows = list(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'"))
        return int(rows[0][0]) if rows else 0

    def _bump_generation(self) -> None:
        """Count one more write (inside the writer's transaction): caches derived from the
        file compare it to know they are stale."""
        self.conn.execute("INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE "
                          "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)")

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

    def write_documents(self, items: Sequence[DocumentWrite]) -> list[int]:
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
        return int(doc_id)

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
        """All chunks of one document, in order (one statement: one snapshot, never half of a rewrite)."""
        return [Chunk(text=row[3], start=row[4], end=row[5], index=row[2], section=tuple(json.loads(row[6])),
                      page=row[7], tokens=row[8], doc_id=row[1], chunk_id=row[0], path=row[9])
                for row in self.conn.execute(
                    'SELECT c.id, c.doc_id, c.idx, c.text, c.start, c."end", c.section, c.page, c.tokens, d.path '
                    "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.doc_id = ? ORDER BY c.idx", (doc_id,))]

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

