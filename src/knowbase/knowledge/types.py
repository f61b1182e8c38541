"""Shared knowledge-base types (one definition each): Document, Chunk, DocumentRow,
CheckReport, ScoredChunk, Citation, Answer. Frozen dataclasses; offsets are character offsets into
``Document.text`` (Python ``str`` indices), pages are 1-based."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    """A heading-delimited span of a document: ``text[start:end]`` is under ``path``
    (e.g. ``("Pods", "Pod lifecycle")``)."""

    path: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Page:
    """``text[start:end]`` came from page ``number`` (1-based) of a paged source (PDF)."""

    number: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Document:
    """A loaded source file, as plain text plus structure.

    Attributes:
        path: the source path (as a string, absolute).
        text: the extracted text (markup, shortcodes and comments removed).
        title: the document title (front matter, <title>, first heading, or file name).
        metadata: loader metadata (front matter keys, CSV header, encoding...).
        sections: heading spans, in order, covering the text that has headings.
        pages: page spans for paged formats (PDF); empty otherwise.
        language: ``en``, ``zh`` ... as detected from the text, or None.
    """

    path: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()
    pages: tuple[Page, ...] = ()
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a document.

    Attributes:
        text: the chunk text (``document.text[start:end]``).
        start: character offset of the chunk in ``document.text``.
        end: end offset (exclusive).
        index: position of the chunk within its document, from 0.
        section: heading path of the chunk (may be empty).
        page: 1-based page number, for paged sources.
        tokens: length in the embedder's tokens.
        doc_id: the store's id of the document (0 before it is stored).
        chunk_id: the store's id of the chunk (0 before it is stored).
        path: the source path of the document.
    """

    text: str
    start: int
    end: int
    index: int = 0
    section: tuple[str, ...] = ()
    page: int | None = None
    tokens: int = 0
    doc_id: int = 0
    chunk_id: int = 0
    path: str = ""


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A stored document (no text: the chunks hold it).

    Attributes:
        id: store id. path: source path or memory key. sha256: hex digest of the source bytes.
        size: bytes. mtime: Unix seconds. title, language: as loaded. metadata: loader and
        user metadata (JSON-serialisable). kind: ``file`` | ``memory``. chunks: number of
        chunks. added, updated: Unix seconds of the first and the latest ingest.
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
    """Result of a store's integrity check: ``problems`` is empty when the store is sound.

    Attributes:
        documents, chunks, vectors: row counts. fts_rows: rows of the keyword (BM25) index.
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


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A retrieved chunk with its score (higher is better) and per-retriever ranks
    (1-based, None when that retriever did not return it)."""

    chunk: Chunk
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    dense_score: float | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """Passage ``n`` (1-based, as numbered in the prompt) that the answer cites."""

    n: int
    chunk: Chunk

    def label(self) -> str:
        """``[n] path § section (p. N)``."""
        out = f"[{self.n}] {self.chunk.path}"
        if self.chunk.section:
            out += " § " + " > ".join(self.chunk.section)
        if self.chunk.page:
            out += f" (p. {self.chunk.page})"
        return out


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of asking a knowledge base.

    Attributes:
        question: the question asked.
        text: the answer text (with [n] markers), or the abstention message.
        citations: passages the answer cites, valid ones only.
        passages: every passage given to the model, numbered from 1 in order.
        abstained: True when the knowledge base did not support an answer.
        language: language of the question (``en``, ``zh``...).
        invalid_citations: numbers the model cited that were not given (removed).
        extractive: True when no model wrote the answer (``--extractive``).
        attributed: True when the model cited nothing and knowbase attributed the answer
            to the passage sharing most of its words (the citation marker is appended).
        trace_id: the trace of the whole operation, when tracing is on.
        timings: seconds per stage (``retrieve``, ``first_token``, ``total``...).
        usage: the model call's prompt and completion tokens (a ``knowbase.models.base.Usage``;
            None when no model was called).
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    passages: tuple[ScoredChunk, ...] = ()
    abstained: bool = False
    language: str = "en"
    invalid_citations: tuple[int, ...] = ()
    extractive: bool = False
    attributed: bool = False
    trace_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    usage: Any = None
