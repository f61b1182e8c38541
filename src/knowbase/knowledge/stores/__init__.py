"""Chunk stores: the :class:`ChunkStore` protocol, backend-neutral :class:`SearchFilter`, and backends.

Stores live under ``knowledge/`` (not a foundation-layer ``stores/`` package) because their
contract is written in knowledge types (:class:`~knowbase.knowledge.types.Chunk`,
:class:`~knowbase.knowledge.types.DocumentRow`) and the SQLite backend keeps the knowledge
layer's BM25 search index (:mod:`knowbase.knowledge.index`) beside its file: a foundation
package importing them would point an import upward.
"""

from knowbase.knowledge.stores.base import ChunkStore, DocumentWrite, StoreBackend, StoreLocation
from knowbase.knowledge.stores.filters import SearchFilter
from knowbase.knowledge.stores.registry import get_backend, locate, store_backends

__all__ = ["ChunkStore", "DocumentWrite", "SearchFilter", "StoreBackend", "StoreLocation", "get_backend", "locate",
           "store_backends"]
