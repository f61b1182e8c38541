"""The chunk-store protocol: everything retrieval, ingest, answering and ``check`` need from storage.

A store holds one knowledge base: documents (:class:`DocumentRow`), their chunks
(:class:`Chunk`) with BM25 tokens and L2-normalised float32 embeddings, and a few ``meta``
strings (the embedder, its width, abstention thresholds). Backends implement
:class:`ChunkStore`; a :class:`StoreBackend` opens, lists and drops the stores of one URL
scheme and is found through the ``knowbase.stores`` entry-point group
(:mod:`knowbase.knowledge.stores.registry`). Every backend runs the same conformance suite
(``tests/store_conformance.py``, in the style of Haystack's ``DocumentStoreBaseTests``).

The contract, beyond the signatures:

* ``write_documents`` replaces each document (matched by ``path``) with its chunks, tokens
  and vectors in ONE transaction: readers see the old document or the new one, never a
  mix; a crash leaves the old state. Two writers of the same path end with one document.
* BM25 is Robertson/Sparck Jones BM25 over the given tokens with k1=1.2, b=0.75 and IDF
  ``log((N - n + 0.5) / (n + 0.5))`` floored at 1e-6 (SQLite FTS5's ``bm25()``), corpus
  statistics over the whole knowledge base; scores are positive, higher is better.
* Dense search ranks by cosine similarity; filtered searches apply the
  :class:`~knowbase.knowledge.stores.filters.SearchFilter` inside the search, so they
  return ``k`` results whenever ``k`` matching chunks exist.
* Ties are broken by ascending chunk id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from knowbase.knowledge.stores.filters import SearchFilter
from knowbase.knowledge.types import CheckReport, Chunk, DocumentRow

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings

#: ``(document, its chunks in order, BM25 tokens per chunk, float32 (len(chunks), dim) vectors)``
DocumentWrite = tuple[DocumentRow, Sequence[Chunk], Sequence[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where a knowledge base lives.

    Attributes:
        scheme: the backend name (``sqlite``, ``postgresql``...), the entry-point name.
        name: the knowledge base name.
        url: the full location, e.g. ``sqlite:////home/me/.knowbase/kb/docs.db`` or
            ``postgresql://me@db.internal/kb#docs``.
        path: the file, for file-based backends; else None.
    """

    scheme: str
    name: str
    url: str
    path: Path | None = None


@runtime_checkable
class ChunkStore(Protocol):
    """One knowledge base's storage (see the module docstring for the contract).

    Attributes:
        location: where it lives. readonly: opened without write access.
    """

    location: StoreLocation
    readonly: bool

    # --- meta ----------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """All meta keys and values."""
        ...

    def set_meta(self, **values: object) -> None:
        """Write meta keys (stored as strings), in one transaction."""
        ...

    @property
    def tokenizer(self) -> str:
        """The BM25 tokenizer version the chunks are indexed with
        (:data:`knowbase.knowledge.bm25.TOKENIZER_VERSION` for a new store)."""
        ...

    def retokenize(self) -> int:
        """Re-index every chunk's BM25 tokens with the current tokenizer version, in one
        transaction (vectors untouched); returns the chunks re-indexed (0 when current)."""
        ...

    @property
    def dim(self) -> int | None:
        """The embedding width, once vectors exist."""
        ...

    # --- documents and chunks ------------------------------------------------------
    def document(self, path_or_id: str | int) -> DocumentRow | None:
        """One document by id or exact path, or None."""
        ...

    def documents(self, *, kind: str | None = None) -> list[DocumentRow]:
        """All documents (of ``kind`` when given), ordered by path."""
        ...

    def write_document(self, doc: DocumentRow, chunks: Sequence[Chunk], bm25_tokens: Sequence[Sequence[str]],
                       vectors: np.ndarray) -> int:
        """Insert or replace one document (by path) with its chunks, tokens and vectors; returns its id.

        Raises:
            ValueError: the three sequences differ in length.
            UserError: the vectors' width differs from the store's.
        """
        ...

    def write_documents(self, items: Sequence[DocumentWrite]) -> list[int]:
        """:meth:`write_document` for many documents in ONE transaction; returns the ids in order."""
        ...

    def delete_document(self, doc_id: int) -> bool:
        """Remove a document with its chunks, tokens and vectors (one transaction); True if it existed."""
        ...

    def chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by id (ids not found are absent)."""
        ...

    def document_chunks(self, doc_id: int) -> list[Chunk]:
        """All chunks of one document, in order."""
        ...

    def norms(self, ids: Sequence[int]) -> dict[int, str]:
        """Near-duplicate key per chunk id (equal keys: the same normalised text)."""
        ...

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored embeddings by chunk id (float32 ``(dim,)`` each)."""
        ...

    # --- search --------------------------------------------------------------------
    def bm25_search(self, tokens: Sequence[str], k: int, *, filter: SearchFilter | None = None,
                    distinct: bool = False) -> list[tuple[int, float]]:
        """BM25 top ``k`` for the distinct ``tokens`` (any of them matches).

        Args:
            tokens: query tokens from :func:`knowbase.knowledge.bm25.query_tokens`.
            k: most results.
            filter: only chunks of matching documents.
            distinct: one chunk per near-duplicate key (the lowest chunk id of each group
                among the matching chunks).

        Returns:
            list of (chunk_id, score), best first.
        """
        ...

    def dense_search(self, vector: np.ndarray, k: int, *, filter: SearchFilter | None = None,
                     distinct: bool = False, exact: bool = False) -> list[tuple[int, float]]:
        """k-nearest chunks by cosine similarity.

        Args:
            vector: float32 ``(dim,)`` query embedding.
            k: most results.
            filter: only chunks of matching documents.
            distinct: one chunk per near-duplicate key.
            exact: exhaustive search (no approximate index).

        Returns:
            list of (chunk_id, cosine similarity), best first.
        """
        ...

    def doc_freqs(self, tokens: Sequence[str]) -> tuple[int, dict[str, int]]:
        """``(N chunks, {token: chunks containing it})`` for the distinct ``tokens``."""
        ...

    def metadata_keys(self) -> set[str]:
        """Every top-level metadata key some document has (filters on other keys are typos)."""
        ...

    def prepare(self) -> None:
        """Build or refresh derived search structures now (after a bulk load), so no query waits."""
        ...

    # --- statistics and integrity ---------------------------------------------------
    def counts(self) -> dict[str, int]:
        """``documents``, ``chunks``, ``vectors``, ``bytes`` on disk; backends may add keys."""
        ...

    def check(self) -> CheckReport:
        """Integrity check; ``report.ok`` when sound."""
        ...

    def close(self) -> None:
        """Release connections (idempotent)."""
        ...


@runtime_checkable
class StoreBackend(Protocol):
    """Opens, finds and drops the stores of one URL scheme (an entry point of ``knowbase.stores``)."""

    def locate(self, name: str, url: str, settings: Settings) -> StoreLocation:
        """The location of knowledge base ``name`` given a URL of this scheme.

        Raises:
            UserError: the URL is malformed (names the part).
        """
        ...

    def exists(self, location: StoreLocation) -> bool:
        """Whether a knowledge base is at ``location``."""
        ...

    def open(self, location: StoreLocation, *, create: bool = False, readonly: bool = False) -> ChunkStore:
        """Open (with ``create``: create if missing) the store at ``location``.

        Raises:
            StoreError: it cannot be opened, is not a knowledge base, or is damaged.
        """
        ...

    def list(self, settings: Settings) -> list[StoreLocation]:
        """The knowledge bases this backend finds without being told where (may be empty)."""
        ...

    def drop(self, location: StoreLocation) -> None:
        """Delete the knowledge base at ``location`` and everything derived from it.

        Raises:
            KnowledgeBaseNotFoundError: nothing is there.
        """
        ...
