"""The reranking extension point: reorder retrieved chunks, best first.

Off by default: no benchmark in ``benches/`` has yet shown a reranker that helps on
these 2-core machines (a cross-encoder costs a forward pass per candidate). A reranker
is any object with one method::

    class MyReranker:
        def rerank(self, query: str, hits: list[ScoredChunk]) -> list[ScoredChunk]: ...

and is passed as ``KnowledgeBase.search(..., reranker=MyReranker())``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from knowbase.knowledge.types import ScoredChunk


@runtime_checkable
class Reranker(Protocol):
    """Reorders retrieved chunks for a query; may drop some; returns best first."""

    def rerank(self, query: str, hits: list[ScoredChunk]) -> list[ScoredChunk]: ...
