"""Searches of the PostgreSQL store: BM25 over knowbase's own tokens, pgvector HNSW, filters inside.

**BM25** is computed in SQL from the ``postings`` of the query terms with the formula of the
SQLite backend (FTS5's ``bm25()``: k1=1.2, b=0.75, IDF ``log((N - n + 0.5) / (n + 0.5))``
floored at 1e-6), N and the average chunk length from the ``corpus`` row and each term's n
counted from its postings, so both backends rank a corpus the same way.

**Dense**: pgvector's HNSW index (cosine) with ``hnsw.ef_search`` set per query from ``k``
(:func:`ef_search`); ``exact`` turns index scans off for the query (a sequential scan).

**Filters** are evaluated over the documents (:meth:`SearchFilter.matches`, the reference
semantics; the documents are read once per write generation) and the matching document ids
go into the query (``doc_id = ANY(...)``): BM25 scores only their chunks; dense search scans
their vectors exactly when they hold at most :data:`EXACT_FILTER_CHUNKS` chunks, else asks
the HNSW index with ``ef_search`` raised by the filter's selectivity, with pgvector's
iterative scan when the server has it (pgvector 0.8+), and falls back to an exact scan if
fewer than ``k`` came back. Either way ``k`` results come back whenever ``k`` match.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.knowledge.stores.filters import SearchFilter
from knowbase.knowledge.types import DocumentRow

EXACT_FILTER_CHUNKS = 20_000  # a filter matching at most this many chunks: exact dense search over them
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search

_BM25 = """
WITH q AS (SELECT DISTINCT unnest(%(terms)s::text[]) AS term),
df AS (SELECT p.term, count(*)::float8 AS n FROM postings p JOIN q ON q.term = p.term GROUP BY p.term),
c AS (SELECT chunks::float8 AS n, CASE WHEN chunks > 0 THEN tokens::float8 / chunks ELSE 1 END AS avgdl
      FROM corpus WHERE id = 1),
scored AS (
    SELECT p.chunk_id, sum(greatest(ln((c.n - df.n + 0.5) / (df.n + 0.5)), 1e-6) * p.tf * 2.2
                           / (p.tf + 1.2 * (0.25 + 0.75 * ch.length / c.avgdl))) AS score
    FROM postings p JOIN df ON df.term = p.term JOIN chunks ch ON ch.id = p.chunk_id CROSS JOIN c
    WHERE %(all)s OR ch.doc_id = ANY(%(docs)s::bigint[])
    GROUP BY p.chunk_id)
"""


def ef_search(k: int, selectivity: float = 1.0) -> int:
    """``hnsw.ef_search`` for a top-``k`` query: 10k and at least 100, divided by the share of
    chunks a filter keeps (0 < selectivity <= 1), at most 1000 (pgvector's limit).

    On 100k chunks of near-duplicate pages (``benches/store_scale.py``: 32 noisy copies of
    each chunk) dense recall@10 was 0.571 with pgvector's default 40 (and 2k), 0.787 with this
    rule, where the SQLite index found all of the exact top 10: near-duplicates are HNSW's hard
    case; ask for more (``k``) or search ``exact`` when recall matters more than time."""
    want = max(100, 10 * k) / max(selectivity, 1e-9)
    return int(min(MAX_EF_SEARCH, math.ceil(want)))


class _Docs:
    def __init__(self, generation: int, docs: list[DocumentRow]) -> None:
        self.generation = generation
        self.docs = docs
        self.keys: set[str] = set()
        for d in docs:
            self.keys.update(d.metadata)


class SearchMixin:
    """BM25, dense search, document frequencies and filters of a PostgreSQL store."""

    conn: Any
    _docs: _Docs | None
    _docs_lock: threading.Lock
    _iterative_scan: bool

    if TYPE_CHECKING:  # defined by the other parts of the store
        @property
        def generation(self) -> int: ...
        def _has_vectors(self) -> bool: ...

    # --- filters ---------------------------------------------------------------------
    def _documents_table(self) -> _Docs:
        gen = self.generation
        cached = self._docs
        if cached is not None and cached.generation == gen:
            return cached
        with self._docs_lock, self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # generation and rows agree
            gen = self.generation
            rows = self.conn.execute(
                "SELECT d.id, d.path, d.sha256, d.size, d.mtime, d.title, d.language, d.metadata, d.kind, "
                "coalesce(n.n, 0), d.added, d.updated FROM documents d "
                "LEFT JOIN (SELECT doc_id, count(*) AS n FROM chunks GROUP BY doc_id) n ON n.doc_id = d.id").fetchall()
            self._docs = _Docs(gen, [DocumentRow(int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], dict(r[7] or {}),
                                                 r[8], int(r[9]), r[10], r[11]) for r in rows])
        return self._docs

    def metadata_keys(self) -> set[str]:
        """Every top-level metadata key some document has."""
        return set(self._documents_table().keys)

    def _matching(self, flt: SearchFilter) -> tuple[list[int], int, int]:
        """(matching document ids, their chunks, all chunks)."""
        table = self._documents_table()
        docs = [d for d in table.docs if flt.matches(d)]
        return [d.id for d in docs], sum(d.chunks for d in docs), sum(d.chunks for d in table.docs)

    # --- search ----------------------------------------------------------------------
    def bm25_search(self, tokens: Sequence[str], k: int, *, filter: SearchFilter | None = None,
                    distinct: bool = False) -> list[tuple[int, float]]:
        """BM25 top ``k`` (see the module docstring); list of (chunk_id, score), best first."""
        terms = [t for t in dict.fromkeys(tokens) if t]
        if k <= 0 or not terms:
            return []
        docs: list[int] = []
        if filter:
            docs = self._matching(filter)[0]
            if not docs:
                return []
        if distinct:
            sql = _BM25 + ("SELECT chunk_id, score FROM (SELECT DISTINCT ON (ch.norm) s.chunk_id, s.score "
                           "FROM scored s JOIN chunks ch ON ch.id = s.chunk_id ORDER BY ch.norm, s.chunk_id) d "
                           "ORDER BY score DESC, chunk_id LIMIT %(k)s")
        else:
            sql = _BM25 + "SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id LIMIT %(k)s"
        rows = self.conn.execute(sql, {"terms": terms, "all": not filter, "docs": docs, "k": k}).fetchall()
        return [(int(c), float(s)) for c, s in rows]

    def dense_search(self, vector: np.ndarray, k: int, *, filter: SearchFilter | None = None,
                     distinct: bool = False, exact: bool = False) -> list[tuple[int, float]]:
        """Cosine top ``k`` (see the module docstring); list of (chunk_id, similarity), best first."""
        if k <= 0 or not self._has_vectors():
            return []
        q = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        want = 3 * k if distinct else k  # near-duplicates are dropped afterwards
        if not filter:
            hits = self._dense(q, want, docs=None, exact=exact, ef=ef_search(want))
        else:
            docs, matching, total = self._matching(filter)
            if not docs:
                return []
            small = matching <= EXACT_FILTER_CHUNKS
            hits = self._dense(q, want, docs=docs, exact=exact or small,
                               ef=ef_search(want, matching / max(total, 1)))
            if len(hits) < min(want, matching) and not (exact or small):
                hits = self._dense(q, want, docs=docs, exact=True, ef=0)
        if distinct:
            hits = self._collapse(hits)
        return hits[:k]

    def _dense(self, q: np.ndarray, k: int, *, docs: list[int] | None, exact: bool, ef: int) -> list[tuple[int, float]]:
        where = "" if docs is None else "WHERE v.chunk_id IN (SELECT id FROM chunks WHERE doc_id = ANY(%(docs)s::bigint[]))"
        order = "dist, v.chunk_id" if exact else "dist"  # a second key would stop pgvector using its index
        with self.conn.transaction():
            if exact:
                self.conn.execute("SET LOCAL enable_indexscan = off")
            else:
                self.conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
                if docs is not None and self._iterative_scan:
                    self.conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = self.conn.execute(f"SELECT v.chunk_id, v.embedding <=> %(q)s AS dist FROM vectors v {where} "
                                     f"ORDER BY {order} LIMIT %(k)s", {"q": q, "docs": docs, "k": k}).fetchall()
        hits = [(int(c), 1.0 - float(d)) for c, d in rows]
        return sorted(hits, key=lambda cs: (-cs[1], cs[0]))

    def _collapse(self, hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
        norms = dict(self.conn.execute("SELECT id, norm FROM chunks WHERE id = ANY(%s)",
                                       ([c for c, _ in hits],)).fetchall())
        seen: set[str] = set()
        out = []
        for cid, score in hits:
            key = norms.get(cid)
            if key is not None and key not in seen:
                seen.add(key)
                out.append((cid, score))
        return out

    def doc_freqs(self, tokens: Sequence[str]) -> tuple[int, dict[str, int]]:
        """``(N chunks, {token: chunks containing it})``."""
        n = int(self.conn.execute("SELECT chunks FROM corpus WHERE id = 1").fetchone()[0])
        uniq = list(dict.fromkeys(tokens))
        if not uniq:
            return n, {}
        found = dict(self.conn.execute("SELECT term, count(*) FROM postings WHERE term = ANY(%s) GROUP BY term",
                                       (uniq,)).fetchall())
        return n, {t: int(found.get(t, 0)) for t in uniq}
