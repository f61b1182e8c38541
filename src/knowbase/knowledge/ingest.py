"""Ingest: files -> documents -> chunks -> embeddings -> store, incrementally.

Per source: hash the bytes (sha256); an unchanged file is skipped with no loading or
embedding work; otherwise load (:func:`knowbase.knowledge.loaders.load_document`), split
(:func:`knowbase.knowledge.splitter.split_document`, sizes in the embedder's tokens, no
chunk above ``embedder.max_input_tokens``), embed in batches across documents, and write
each document in one transaction (:meth:`ChunkStore.write_document`). A file that cannot be
read or parsed, or exceeds a per-file limit (:class:`knowbase.safety.files.FileLimits`), is
reported in :attr:`IngestReport.failed` and the rest carries on; a symbolic link leading
outside the folder being ingested is not followed unless asked, and is listed in
:attr:`IngestReport.ignored` with the reason.

A changed file is usually a small edit: when its new chunks include texts identical to
chunks of its stored version, their stored vectors are reused and only the other chunks
go to the embedding model (:attr:`IngestReport.reused` counts them). The match is on the
exact chunk text, not on the store's near-duplicate ``norm`` hash, which ignores case and
punctuation that the model does see; so the result equals a full re-embedding (for int8
ONNX, whose vectors depend slightly on the batch, up to its quantisation noise).

Metadata given at ingest (``kb ingest --meta team=infra``, ``KnowledgeBase.ingest(...,
metadata={"team": "infra"})``) is merged over the loader's (front matter, CSV columns...)
and stored with each document, for search filters. An unchanged file whose stored metadata
lacks those values is updated (its chunks keep their vectors, nothing is embedded again).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import InputFileError, KnowbaseError, SkippedFileError, UserError
from knowbase.knowledge.bm25 import document_tokens
from knowbase.knowledge.types import DocumentRow

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.loaders.options import LoadOptions
    from knowbase.knowledge.stores.base import ChunkStore
    from knowbase.knowledge.types import Chunk, Document
    from knowbase.models.base import Embedder

EMBED_BATCH_CHUNKS = 64  # chunks gathered across documents before one embedding call
MAX_USER_METADATA_KEYS = 64
MAX_USER_METADATA_CHARS = 1000  # per key and per value (as text)


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """User metadata for ingest, checked: at most :data:`MAX_USER_METADATA_KEYS` keys, each a
    non-empty string, values text, numbers or booleans, each key and value at most
    :data:`MAX_USER_METADATA_CHARS` characters.

    Raises:
        UserError: a key or value breaks a rule (``field`` names the key).
    """
    if not metadata:
        return {}
    if len(metadata) > MAX_USER_METADATA_KEYS:
        raise UserError(f"{len(metadata)} metadata keys; the limit is {MAX_USER_METADATA_KEYS}", field="metadata")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_USER_METADATA_CHARS:
            raise UserError(f"bad metadata key {key!r}: a non-empty name up to {MAX_USER_METADATA_CHARS} characters",
                            field=str(key))
        if not isinstance(value, (str, int, float, bool)) or len(str(value)) > MAX_USER_METADATA_CHARS:
            raise UserError(f"metadata {key!r} must be text, a number or a boolean up to "
                            f"{MAX_USER_METADATA_CHARS} characters", field=key)
        out[key.strip()] = value
    return out


def parse_metadata_items(items: Iterable[str]) -> dict[str, str]:
    """``["team=infra", "year=2023"]`` -> ``{"team": "infra", "year": "2023"}`` (values stay text;
    filters compare numeric text as numbers).

    Raises:
        UserError: an item without ``=`` or an empty key.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"metadata {item!r} is not KEY=VALUE (e.g. team=infra)", field="metadata")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Progress so far, passed to the ``progress`` callback after each file.

    Attributes:
        files_done: sources handled (any outcome). files_total: sources found (the walk
            happens first), plus documents pruned. chunks: chunks written. seconds: elapsed.
        path: the file just handled. status: added | updated | skipped | failed | removed
            (``started``, with ``files_done`` 0 and no path, once the sources are found).
    """

    files_done: int
    files_total: int
    chunks: int
    seconds: float
    path: str
    status: str

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class IngestReport:
    """What an ingest did. Lists hold document paths; ``failed`` holds (path, reason).

    ``ignored`` holds (path, reason) of files left out on purpose (a symbolic link leading
    outside the folder); they do not make the ingest fail. ``warnings`` holds (path,
    message) of loaded documents' warnings (an uncertain encoding, skipped CSV rows...).
    ``chunks`` counts chunks written; ``reused`` how many of them kept the stored vector of
    an identical chunk text of the same document (not sent to the embedding model);
    ``retokenized`` the chunks whose BM25 tokens were rebuilt first because the knowledge
    base was indexed by an older tokenizer version.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    reused: int = 0
    seconds: float = 0.0
    retokenized: int = 0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "skipped": self.skipped, "removed": self.removed,
                "failed": [{"path": p, "reason": r} for p, r in self.failed],
                "ignored": [{"path": p, "reason": r} for p, r in self.ignored],
                "warnings": [{"path": p, "warning": w} for p, w in self.warnings], "chunks": self.chunks,
                "reused": self.reused, "retokenized": self.retokenized, "seconds": round(self.seconds, 3)}


ProgressFn = Callable[[IngestProgress], None]


def file_sha256(path: Path) -> tuple[str, int]:
    """``(hex sha256, size in bytes)`` of a file, read in 1 MiB blocks.

    Raises:
        InputFileError: the file cannot be read (``path``, ``reason``).
    """
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
                size += len(block)
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror or exc}", path=str(path), reason=exc.strerror or str(exc)) from exc
    return h.hexdigest(), size


@dataclass(slots=True)
class _Pending:
    """A loaded, split document waiting for embeddings; ``known`` maps chunk index -> a
    stored vector of the same text (from the document's previous version)."""

    row: DocumentRow
    chunks: list[Chunk]
    status: str
    known: dict[int, np.ndarray] = field(default_factory=dict)


class Ingestor:
    """Runs one ingest against a store with an embedder.

    Args:
        store: the knowledge-base store (its embedder was checked by the caller).
        embedder: the embedder recorded for the store.
        chunk_size, chunk_overlap: splitter sizes in embedder tokens.
        options: loader options (per-file limits, a fixed text encoding, PDF passwords);
            default :class:`~knowbase.knowledge.loaders.options.LoadOptions`.
        follow_links: follow symbolic links leading outside the folders being ingested.
        metadata: user metadata stored with every document of this ingest (see
            :func:`check_metadata`), over the loader's keys.

    Raises:
        UserError: bad ``metadata``.
    """

    def __init__(self, store: ChunkStore, embedder: Embedder, *, chunk_size: int = 200, chunk_overlap: int = 30,
                 options: LoadOptions | None = None, follow_links: bool = False,
                 metadata: Mapping[str, Any] | None = None) -> None:
        from knowbase.knowledge.loaders.options import LoadOptions

        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.options = options or LoadOptions()
        self.follow_links = follow_links
        self.metadata = check_metadata(metadata)

    def split(self, doc: Document) -> list[Chunk]:
        """Chunks of a document, sized in the embedder's tokens."""
        from knowbase.knowledge.splitter import split_document

        return split_document(doc, count_tokens=self.embedder.count_tokens, chunk_size=self.chunk_size,
                              chunk_overlap=self.chunk_overlap, max_tokens=self.embedder.max_input_tokens)

    def run(self, paths: Sequence[str | os.PathLike[str]], *, prune: bool = False,
            progress: ProgressFn | None = None, recursive: bool = True) -> IngestReport:
        """Ingest files, folders and globs; see the module docstring.

        Args:
            paths: files, folders (walked recursively) or glob patterns.
            prune: afterwards remove file documents whose files no longer exist.
            progress: called after each file with an :class:`IngestProgress`.
            recursive: walk sub-folders.

        Returns:
            the :class:`IngestReport`.

        Raises:
            KnowbaseError: the embedder or the store failed (bad files never raise).
        """
        from knowbase.knowledge.files import iter_sources

        report = IngestReport()
        t0 = time.perf_counter()
        report.retokenized = self.store.retokenize()  # a knowledge base indexed by an older tokenizer
        version = self.store.tokenizer
        pending: list[_Pending] = []
        counts = {"done": 0, "total": 0}

        def tick(path: str, status: str) -> None:
            counts["done"] += 1
            if progress is not None:
                progress(IngestProgress(counts["done"], max(counts["total"], counts["done"]), report.chunks,
                                        time.perf_counter() - t0, path, status))

        def flush() -> None:
            if not pending:
                return
            texts = [c.text for p in pending for i, c in enumerate(p.chunks) if i not in p.known]
            fresh = iter(self.embedder.embed(texts)) if texts else iter(())
            for p in pending:
                n = len(p.chunks)
                if n:
                    vectors = np.stack([p.known[i] if i in p.known else next(fresh) for i in range(n)])
                else:
                    vectors = np.zeros((0, self.embedder.dim), dtype=np.float32)
                self.store.write_document(p.row, p.chunks, [document_tokens(c.text, version=version)
                                                            for c in p.chunks], vectors)
                report.chunks += n
                report.reused += len(p.known)
                (report.added if p.status == "added" else report.updated).append(p.row.path)
                tick(p.row.path, p.status)
            pending.clear()

        seen: set[str] = set()
        sources = list(iter_sources([Path(p) for p in paths], recursive=recursive,  # walk first: a known total
                                    follow_links=self.follow_links))
        counts["total"] = len(sources)
        if progress is not None:
            progress(IngestProgress(0, len(sources), 0, time.perf_counter() - t0, "", "started"))
        for item in sources:
            if isinstance(item, SkippedFileError):
                path = str(getattr(item, "path", "") or "?")
                report.ignored.append((path, _reason(item)))
                tick(path, "ignored")
                continue
            if isinstance(item, BaseException):
                path = str(getattr(item, "path", "") or "?")
                report.failed.append((path, _reason(item)))
                tick(path, "failed")
                continue
            key = os.path.abspath(item)
            if key in seen:
                counts["total"] -= 1
                continue
            seen.add(key)
            try:
                entry = self._prepare(Path(key))
            except KnowbaseError as exc:
                report.failed.append((key, _reason(exc)))
                tick(key, "failed")
                continue
            except Exception as exc:  # a loader bug must not stop the ingest
                report.failed.append((key, f"{type(exc).__name__}: {exc}"))
                tick(key, "failed")
                continue
            if entry is None:
                report.skipped.append(key)
                tick(key, "skipped")
                continue
            report.warnings.extend((key, str(w)) for w in entry.row.metadata.get("warnings", ()) or ())
            pending.append(entry)
            if sum(len(p.chunks) - len(p.known) for p in pending) >= EMBED_BATCH_CHUNKS:
                flush()
        flush()
        if prune:
            for row in self.store.documents(kind="file"):
                if not os.path.lexists(row.path):
                    self.store.delete_document(row.id)
                    report.removed.append(row.path)
                    counts["total"] += 1
                    tick(row.path, "removed")
        report.seconds = time.perf_counter() - t0
        return report

    def _prepare(self, path: Path) -> _Pending | None:
        """Load and split one file; None when its stored copy has the same sha256."""
        from knowbase.knowledge.loaders import load_document

        sha, size = file_sha256(path)
        old = self.store.document(str(path))
        if old is not None and old.sha256 == sha and all(
                k in old.metadata and old.metadata[k] == v for k, v in self.metadata.items()):
            return None
        doc = load_document(path, options=self.options)
        chunks = self.split(doc)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = None
        row = DocumentRow(id=0, path=str(path), sha256=sha, size=size, mtime=mtime, title=doc.title,
                          language=doc.language, metadata={**doc.metadata, **self.metadata}, kind="file")
        known = self._stored_vectors(old.id, chunks) if old is not None else {}
        return _Pending(row, chunks, "updated" if old is not None else "added", known)

    def _stored_vectors(self, doc_id: int, chunks: Sequence[Chunk]) -> dict[int, np.ndarray]:
        """``{index in chunks: stored vector}`` for new chunks whose exact text a stored chunk
        of document ``doc_id`` has (its vector came from the same embedder: the store
        records one embedder and the caller checked it)."""
        stored = self.store.document_chunks(doc_id)
        wanted = {c.text for c in chunks}
        ids_by_text = {c.text: c.chunk_id for c in stored if c.text in wanted and c.chunk_id}
        if not ids_by_text:
            return {}
        vectors = self.store.vectors(list(ids_by_text.values()))
        dim = self.embedder.dim
        out: dict[int, np.ndarray] = {}
        for i, chunk in enumerate(chunks):
            vec = vectors.get(ids_by_text.get(chunk.text, -1))
            if vec is not None and vec.shape == (dim,):
                out[i] = vec
        return out


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def add_texts(store: ChunkStore, embedder: Embedder, texts: Iterable[str], *, metadatas: Sequence[dict] | None = None,
              source: str = "memory", split: Callable[[Document], list[Chunk]] | None = None) -> list[int]:
    """Store texts as small documents (agents use a knowledge base as vector memory).

    Each text becomes a document at path ``{source}:{sha256[:16]}`` (the same text added
    twice is stored once), split like a file when longer than the embedder's window.

    Returns:
        the document id of each text, in order.
    """
    from knowbase.knowledge.language import detect_language
    from knowbase.knowledge.types import Document

    texts = list(texts)
    metas = list(metadatas) if metadatas is not None else [{} for _ in texts]
    if len(metas) != len(texts):
        raise ValueError("metadatas must have one entry per text")
    ids: list[int] = []
    version = store.tokenizer
    for text, meta in zip(texts, metas):
        sha = hashlib.sha256(text.encode()).hexdigest()
        path = f"{source}:{sha[:16]}"
        old = store.document(path)
        if old is not None:
            ids.append(old.id)
            continue
        lang = detect_language(text)
        doc = Document(path=path, text=text, title=str(meta.get("title", "")), metadata=dict(meta), language=lang)
        n_tokens = embedder.count_tokens(text)
        chunks = split(doc) if split is not None and n_tokens > embedder.max_input_tokens else []
        if not chunks:  # a text that fits the embedder's window stays one chunk
            from knowbase.knowledge.types import Chunk

            chunks = [Chunk(text=text, start=0, end=len(text), path=path, tokens=n_tokens)]
        vectors = embedder.embed([c.text for c in chunks])
        row = DocumentRow(id=0, path=path, sha256=sha, size=len(text.encode()), title=doc.title, language=lang,
                          metadata=dict(meta), kind="memory")
        ids.append(store.write_document(row, chunks, [document_tokens(c.text, version=version) for c in chunks],
                                        vectors))
    return ids
