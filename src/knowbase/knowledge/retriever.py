"""Retrieval: BM25, dense (exact k-NN) and hybrid fusion by weighted Reciprocal Rank Fusion.

Hybrid = weighted RRF (Cormack, Clarke & Buettcher, SIGIR 2009, k=60)::

    score(chunk) = sum_r  w_r / (60 + rank_r(chunk))

over the BM25 and dense rankings (each ``depth`` deep). Near-duplicate chunks (same
normalised text, e.g. a paragraph repeated across pages) are collapsed to the best one.

The default dense weight follows the embedder's language coverage
(:func:`default_weights`): a ranking from a model that was not trained on the query's
language is close to noise (all-MiniLM-L6-v2 on CMRC 2018 Chinese questions: recall@5
0.294 against 0.991 for BM25 with jieba), and fusing noise with equal weight drags the
good ranking down (plain RRF: 0.616). So when ``Embedder.languages`` is known and does
not contain the query's language (:func:`knowbase.knowledge.language.detect_language`),
the dense weight is 0: dense search then only annotates the BM25 hits (``dense_rank``,
``dense_score``), and chunks found by dense search alone are not listed, since their fused
evidence is zero. Otherwise both weights are 1 (plain RRF). No per-data-set switch is needed.

Both searches ask the store for one chunk per near-duplicate text (``distinct``), and
the fused list is collapsed again (the best of each group), so a knowledge base holding
the same page many times still returns ``k`` different passages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from knowbase.errors import UserError
from knowbase.knowledge.bm25 import query_tokens
from knowbase.knowledge.query import check_query
from knowbase.knowledge.stores.filters import BUILTIN_FIELDS, SearchFilter
from knowbase.knowledge.types import ScoredChunk

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.rerank import Reranker
    from knowbase.knowledge.stores.base import ChunkStore
    from knowbase.models.base import Embedder

Mode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
RRF_K = 60  # Cormack et al. 2009


@dataclass(frozen=True, slots=True)
class Weights:
    """RRF weights of the two rankings (0 removes a ranking from the fusion score)."""

    bm25: float = 1.0
    dense: float = 1.0


def default_weights(query_language: str, embedder_languages: Sequence[str] | None) -> Weights:
    """The default hybrid weights for a query (see the module docstring for the rule and its data).

    Args:
        query_language: ``en``, ``zh``... of the query.
        embedder_languages: languages the embedder was trained on, or None (multilingual/unknown).
    """
    if embedder_languages is not None and query_language not in embedder_languages:
        return Weights(bm25=1.0, dense=0.0)
    return Weights()


def rrf(rankings: Sequence[Sequence[int]], weights: Sequence[float], *, k: int = RRF_K) -> list[tuple[int, float]]:
    """Weighted Reciprocal Rank Fusion (Cormack et al. 2009).

    Args:
        rankings: lists of ids, best first.
        weights: one weight per ranking.
        k: the RRF constant (60 in the paper).

    Returns:
        list of (id, fused score), best first. Ties keep the order of the first ranking
        that has them. Ids found only by zero-weight rankings have score 0 (callers that
        list results drop them: see :meth:`Retriever.search`).

    Example::

        >>> [i for i, _ in rrf([[1, 2, 3], [3, 1]], [1.0, 1.0])]
        [1, 3, 2]
    """
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for r_i, (ranking, w) in enumerate(zip(rankings, weights)):
        for pos, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + pos)
            first_seen.setdefault(item, (pos, r_i))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


class Retriever:
    """Searches one store by BM25, dense k-NN, or both fused.

    Args:
        store: the knowledge-base store (any :class:`~knowbase.knowledge.stores.base.ChunkStore`).
        embedder: a function returning the embedder (called only when dense search runs,
            so BM25-only queries never load a model).
        depth: candidates taken from each ranking before fusion (at least ``k``).
        reranker: optional :class:`~knowbase.knowledge.rerank.Reranker` run on the fused list.
    """

    def __init__(self, store: ChunkStore, embedder: Callable[[], Embedder], *, depth: int = 50,
                 reranker: Reranker | None = None) -> None:
        self.store = store
        self._embedder = embedder
        self.depth = depth
        self.reranker = reranker
        self.last_timings: dict[str, float] = {}

    def search(self, query: str, *, k: int = 5, mode: str = "hybrid", filter: SearchFilter | dict | str | None = None,
               weights: Weights | None = None, reranker: Reranker | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``query``.

        Args:
            query: the question or keywords.
            k: number of results.
            mode: ``bm25``, ``dense`` or ``hybrid``.
            filter: restrict to documents matching a :class:`SearchFilter` (or its text or
                dict form); applied inside both searches.
            weights: hybrid RRF weights; default :func:`default_weights`.
            reranker: overrides the retriever's reranker for this call.

        Returns:
            list of ScoredChunk, best first; ``score`` is BM25 (bm25 mode), cosine
            similarity (dense), or the fused RRF score (hybrid). Per-retriever ranks and
            scores are filled where known.

        Raises:
            EmptyQueryError: ``query`` has no letter or digit (nothing is embedded).
            UserError: unknown mode, ``k`` < 1, or a bad filter (bad syntax, or a field no
                document has).
        """
        check_query(query)
        if mode not in MODES:
            raise UserError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}", field="mode")
        if k < 1:
            raise UserError(f"k must be at least 1, not {k}", field="k")
        flt = SearchFilter.parse(filter) or SearchFilter()
        self._check_fields(flt)
        depth = max(self.depth, 4 * k)
        timings: dict[str, float] = {}
        bm25_hits: list[tuple[int, float]] = []
        dense_hits: list[tuple[int, float]] = []
        if mode in ("bm25", "hybrid"):
            t0 = time.perf_counter()
            bm25_hits = self.store.bm25_search(query_tokens(query), depth, filter=flt or None, distinct=True)
            timings["bm25"] = time.perf_counter() - t0
        w = weights
        if mode == "hybrid" and w is None:
            from knowbase.knowledge.language import detect_language

            emb_langs = self._embedder_languages()
            w = default_weights(detect_language(query), emb_langs)
        if mode == "dense" or (mode == "hybrid" and (w is None or w.dense > 0 or len(bm25_hits) < depth)):
            t0 = time.perf_counter()
            vec = self._embedder().embed_query(query)
            dense_hits = self.store.dense_search(vec, depth, filter=flt or None, distinct=True)
            timings["dense"] = time.perf_counter() - t0
        b_rank = {cid: (i, s) for i, (cid, s) in enumerate(bm25_hits, start=1)}
        d_rank = {cid: (i, s) for i, (cid, s) in enumerate(dense_hits, start=1)}
        if mode == "bm25":
            fused = bm25_hits
        elif mode == "dense":
            fused = dense_hits
        else:
            w = w or Weights()
            fused = [(c, s) for c, s in rrf([[c for c, _ in bm25_hits], [c for c, _ in dense_hits]],
                                            [w.bm25, w.dense]) if s > 0]  # no evidence, no listing
        fused = self._collapse(fused, k * 3)
        chunks = self.store.chunks([cid for cid, _ in fused])
        out = []
        for cid, score in fused:
            if cid not in chunks:
                continue  # deleted by a writer between the two reads
            b, d = b_rank.get(cid), d_rank.get(cid)
            out.append(ScoredChunk(chunks[cid], float(score), bm25_rank=b[0] if b else None,
                                   dense_rank=d[0] if d else None, bm25_score=b[1] if b else None,
                                   dense_score=d[1] if d else None))
        rr = reranker or self.reranker
        if rr is not None:
            t0 = time.perf_counter()
            out = rr.rerank(query, out)
            timings["rerank"] = time.perf_counter() - t0
        self.last_timings = timings
        return out[:k]

    def _check_fields(self, flt: SearchFilter) -> None:
        """A filter on a field that no document has is a typo: say so, with the known fields."""
        names = {f[5:] if f.startswith("meta.") else f for f in flt.fields() - BUILTIN_FIELDS}
        unknown = {n for n in names if n.split(".")[0] not in self.store.metadata_keys() and n not in
                   self.store.metadata_keys()}
        if unknown:
            name = sorted(unknown)[0]
            known = sorted(BUILTIN_FIELDS | self.store.metadata_keys())
            raise UserError(f"unknown filter field {name!r}: no document has it; known: {', '.join(known)}",
                            field=name)

    def _embedder_languages(self) -> tuple[str, ...] | None:
        return self._embedder().languages

    def _collapse(self, hits: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
        """Keep the best of each group of near-duplicate chunks; at most ``limit`` results.

        Args:
            hits: (chunk_id, score), best first (all of them are looked at).
            limit: most results kept.
        """
        head = hits
        norms = self.store.norms([cid for cid, _ in head])
        seen: set[str] = set()
        out = []
        for cid, score in head:
            key = norms.get(cid)
            if key is None or key in seen:
                continue
            seen.add(key)
            out.append((cid, score))
            if len(out) >= limit:
                break
        return out


def with_score(hit: ScoredChunk, score: float) -> ScoredChunk:
    """A copy of ``hit`` with another score (for rerankers)."""
    return replace(hit, score=score)
