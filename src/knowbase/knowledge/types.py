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
class Table:
    """A table of a document: ``text[start:header_end]`` is its header row (column
    names), ``text[header_end:end]`` its other rows, one per line. The splitter repeats
    the header row before the rows of every chunk that does not already hold it."""

    start: int
    header_end: int
    end: int

    @property
    def has_header(self) -> bool:
        """Whether the table has a header row."""
        return self.header_end > self.start


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
        tables: tables with a header row (Markdown, HTML, DOCX), in order.
        language: ``en``, ``zh`` ... as detected from the text, or None.
    """

    path: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()
    pages: tuple[Page, ...] = ()
    language: str | None = None
    tables: tuple[Table, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a document.

    Attributes:
        text: the chunk text: ``document.text[start:end]``, except that a chunk holding
            rows of a table but not its header row starts with that header row and a
            newline (:attr:`repeated` characters), so every chunk of a table names its
            columns.
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

    @property
    def repeated(self) -> int:
        """Leading characters of :attr:`text` repeated from elsewhere in the document
        (a table's header row and its newline): ``text[repeated:] == document.text[start:end]``."""
        return max(0, len(self.text) - (self.end - self.start))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, section, page, offsets into the document (``text[repeated:]`` is
        ``document.text[start:end]``), ids and text."""
        return {"path": self.path, "section": list(self.section), "page": self.page, "start": self.start,
                "end": self.end, "repeated": self.repeated, "index": self.index, "doc_id": self.doc_id,
                "chunk_id": self.chunk_id, "text": self.text}


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the chunk's fields plus ``score`` and the per-retriever ranks and scores."""
        return {**self.chunk.to_dict(), "score": self.score, "bm25_rank": self.bm25_rank,
                "dense_rank": self.dense_rank, "bm25_score": self.bm25_score, "dense_score": self.dense_score}


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``n`` and the cited chunk's fields (path, section, page, offsets, text)."""
        return {"n": self.n, **self.chunk.to_dict()}


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
        claims: every sentence of the model's answer with its check
            (``knowbase.knowledge.verify.Claim``: status, reasons, evidence offsets).
        removed_claims: sentences removed because their cited passages contradict them.
        verification: ``checked`` (claims checked, unsupported ones removed), ``fallback``
            (no sentence was supported: the passages' own sentences are quoted instead), or
            ``""`` (not checked: extractive answers, abstentions, checking turned off).
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
    claims: tuple[Any, ...] = ()
    removed_claims: tuple[str, ...] = ()
    verification: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready data, one schema for the CLI's ``--json``, the HTTP API and
        the stream's final event: the text, the citations (each checked against the passages
        given), every passage retrieved (kept apart from the cited ones), the checked claims
        with their evidence offsets, timings and usage."""
        usage = self.usage
        return {
            "question": self.question, "answer": self.text, "abstained": self.abstained, "language": self.language,
            "extractive": self.extractive, "attributed": self.attributed, "verification": self.verification,
            "citations": [c.to_dict() for c in self.citations],
            "invalid_citations": list(self.invalid_citations),
            "passages": [{"n": i, **p.to_dict()} for i, p in enumerate(self.passages, start=1)],
            "claims": [c.to_dict() if hasattr(c, "to_dict") else c for c in self.claims],
            "removed_claims": list(self.removed_claims),
            "timings": {k: round(v, 4) for k, v in self.timings.items()}, "trace_id": self.trace_id,
            "usage": ({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                      if usage is not None else None),
        }
