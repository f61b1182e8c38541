"""The search index cache of the SQLite store: :mod:`knowbase.knowledge.index` kept beside the file.

The index (``<kb>.db.index``) is derived from the file and refreshed when ``meta.generation``
moved on; the file stays the single source of truth, so a missing or damaged index only
costs a rebuild (``knowbase kb check`` never needs it).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import StoreError
from knowbase.knowledge.bm25 import TOKENIZER_V1, TOKENIZER_VERSION, document_tokens

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.index import IndexData, SearchIndex


class IndexCacheMixin:
    """Loads, refreshes and saves the search index of a SQLite store."""

    conn: Any
    path: Path
    _apsw: Any
    _index: SearchIndex | None
    _index_lock: threading.Lock

    if TYPE_CHECKING:  # defined by the other parts of the store
        @property
        def generation(self) -> int: ...
        @property
        def dim(self) -> int | None: ...
        def meta(self) -> dict[str, str]: ...
        def _vector_matrix(self, ids: list[int]) -> np.ndarray: ...
        def transaction(self) -> AbstractContextManager[None]: ...
        def _bump_generation(self) -> None: ...

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

    def prepare(self) -> None:
        """Build or refresh the search index now (after a bulk load), so no query waits for it."""
        self.search_index()

    prepare_index = prepare  # the name before the ChunkStore protocol

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

    def _refresh(self, old: IndexData | None) -> IndexData:
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
