"""Searches of the SQLite store: BM25 and dense through the search index, with filters applied inside.

Both searches go through the search index (:mod:`knowbase.knowledge.index`): BM25 with
FTS5's exact scores, dense by binary codes with int8 and exact float32 rescoring. A
:class:`~knowbase.knowledge.stores.filters.SearchFilter` is a pre-filter: it is evaluated
over the documents (their fields and metadata, read once per write generation), and the
index then scores only the matching documents' chunks, so ``k`` results come back whenever
``k`` matching chunks exist. ``exact`` dense search scans every (matching) stored vector.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import StoreError
from knowbase.knowledge.stores.filters import SearchFilter
from knowbase.knowledge.types import DocumentRow

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.index import SearchIndex

EXACT_BLOCK = 4096  # vectors per block of an exact filtered scan


class _FilterTable:
    """The documents (fields and metadata) and every chunk's document, as of one generation."""

    def __init__(self, generation: int, docs: list[DocumentRow], chunk_ids: np.ndarray, chunk_docs: np.ndarray):
        self.generation = generation
        self.docs = docs
        self.chunk_ids = chunk_ids  # int64, ascending
        self.chunk_docs = chunk_docs  # int64, the document of each chunk
        keys: set[str] = set()
        for d in docs:
            keys.update(d.metadata)
        self.keys = keys


class SearchMixin:
    """BM25, dense search, document frequencies and filters of a SQLite store."""

    conn: Any
    path: Path
    _apsw: Any
    _filters: _FilterTable | None
    _filters_lock: threading.Lock




    if TYPE_CHECKING:  # defined by the other parts of the store
        @property
        def generation(self) -> int: ...
        def search_index(self) -> SearchIndex: ...
        def _has_vectors(self) -> bool: ...
        def _vector_matrix(self, ids: list[int]) -> np.ndarray: ...

    # --- filters ---------------------------------------------------------------------
    def _filter_table(self) -> _FilterTable:
        gen = self.generation
        table = self._filters
        if table is not None and table.generation == gen:
            return table
        with self._filters_lock:
            try:
                self.conn.execute("BEGIN")  # the generation and the rows from one snapshot
                try:
                    gen = self.generation
                    docs = [DocumentRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7] or "{}"), r[8],
                                        0, r[9], r[10]) for r in self.conn.execute(
                        "SELECT id, path, sha256, size, mtime, title, language, metadata, kind, added, updated "
                        "FROM documents")]
                    pairs = np.array(list(self.conn.execute("SELECT id, doc_id FROM chunks ORDER BY id")),
                                     dtype=np.int64).reshape(-1, 2)
                finally:
                    self.conn.execute("COMMIT")
            except self._apsw.Error as exc:
                raise StoreError(f"cannot read the documents of {self.path}: {exc}", path=str(self.path)) from exc
            self._filters = _FilterTable(gen, docs, pairs[:, 0].copy(), pairs[:, 1].copy())
            return self._filters

    def metadata_keys(self) -> set[str]:
        """Every top-level metadata key some document has."""
        return set(self._filter_table().keys)

    def filtered_chunk_ids(self, flt: SearchFilter) -> np.ndarray:
        """int64 ids (ascending) of the chunks whose documents match ``flt``."""
        table = self._filter_table()
        docs = np.fromiter((d.id for d in table.docs if flt.matches(d)), dtype=np.int64)
        return table.chunk_ids[np.isin(table.chunk_docs, docs)]

    # --- search ----------------------------------------------------------------------
    def bm25_search(self, tokens: Sequence[str], k: int, *, filter: SearchFilter | None = None,
                    distinct: bool = False) -> list[tuple[int, float]]:
        """BM25 through the search index (FTS5's exact scores), restricted to ``filter``'s documents.

        Args:
            tokens: query tokens from :func:`knowbase.knowledge.bm25.query_tokens`.
            k: most results.
            filter: only chunks of matching documents (a pre-filter).
            distinct: one chunk per near-duplicate text (the lowest matching chunk id of each group).

        Returns:
            list of (chunk_id, score), best first; score = -bm25() (higher is better).

        Raises:
            StoreError: the index could not be built.
        """
        if k <= 0 or not any(tokens):
            return []
        allowed = self.filtered_chunk_ids(filter) if filter else None
        if allowed is not None and not len(allowed):
            return []
        return self.search_index().bm25(tokens, k, distinct=distinct, allowed=allowed)

    def dense_search(self, vector: np.ndarray, k: int, *, filter: SearchFilter | None = None,
                     distinct: bool = False, exact: bool = False, candidates: int = 6000,
                     rescore: int = 100) -> list[tuple[int, float]]:
        """k-nearest-neighbour search by cosine similarity.

        The search index's binary codes pick ``candidates`` chunks (of the matching ones,
        with a filter) by Hamming distance, ``rescore`` of them are rescored exactly with
        their float32 vectors (see :mod:`knowbase.knowledge.index`; recall@10 against exact
        search is reported in ``benches/_kb_scale.py``). With ``exact``: every stored
        vector (sqlite-vec's ``vec_distance_cosine``; numpy over the matching ones with a filter).

        Args:
            vector: float32 ``(dim,)`` query embedding.
            k: most results.
            filter: only chunks of matching documents (a pre-filter).
            distinct: one chunk per near-duplicate text (index search only).
            exact: exhaustive search.
            candidates, rescore: index search breadth (see :meth:`SearchIndex.dense`).

        Returns:
            list of (chunk_id, cosine similarity), best first.

        Raises:
            StoreError: the query failed.
        """
        if not self._has_vectors() or k <= 0:
            return []
        allowed = self.filtered_chunk_ids(filter) if filter else None
        if allowed is not None and not len(allowed):
            return []
        if not exact:
            return self.search_index().dense(vector, k, vectors=self._vector_matrix, distinct=distinct,
                                             candidates=candidates, rescore=rescore, allowed=allowed)
        if allowed is not None:
            return self._exact_among(vector, k, allowed.tolist())
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        try:
            rows = self.conn.execute("SELECT chunk_id, vec_distance_cosine(embedding, ?) AS dist FROM vec_chunks "
                                     "ORDER BY dist, chunk_id LIMIT ?", (blob, k))
            return [(int(r[0]), 1.0 - float(r[1])) for r in rows]
        except self._apsw.Error as exc:
            raise StoreError(f"vector query failed on {self.path}: {exc}", path=str(self.path)) from exc

    def _exact_among(self, vector: np.ndarray, k: int, ids: list[int]) -> list[tuple[int, float]]:
        """Exact cosine top ``k`` among the chunks ``ids`` (read in blocks of :data:`EXACT_BLOCK`)."""
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        q_norm = float(np.linalg.norm(q)) or 1.0
        best: list[tuple[int, float]] = []
        for at in range(0, len(ids), EXACT_BLOCK):
            part = ids[at:at + EXACT_BLOCK]
            mat = self._vector_matrix(part)
            norms = np.linalg.norm(mat, axis=1) * q_norm
            sims = np.einsum("ij,j->i", mat, q[: mat.shape[1]]) / np.where(norms > 0, norms, 1.0)
            best.extend(zip(part, sims.tolist()))
            best = sorted(best, key=lambda cs: (-cs[1], cs[0]))[:k]
        return [(int(c), float(s)) for c, s in best]

    def doc_freqs(self, tokens: Sequence[str]) -> tuple[int, dict[str, int]]:
        """``(N chunks, {token: chunks containing it})`` from the FTS5 vocabulary."""
        n = next(iter(self.conn.execute("SELECT count(*) FROM chunks")))[0]
        uniq = list(dict.fromkeys(tokens))
        if not uniq:
            return n, {}
        marks = ",".join("?" * len(uniq))
        found = dict(self.conn.execute(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", uniq))
        return n, {t: int(found.get(t, 0)) for t in uniq}
