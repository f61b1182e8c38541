"""The :class:`KnowledgeBase` facade: create, ingest, search and ask, in a few lines.

Example::

    from knowbase import KnowledgeBase

    kb = KnowledgeBase.create("docs", embedder="fake")      # or the default MiniLM
    kb.ingest(["./handbook"])                              # incremental; returns an IngestReport
    for hit in kb.search("how do I reset my password", k=3):
        print(hit.score, hit.chunk.path, hit.chunk.section)
    answer = kb.ask("How do I reset my password?", model="fake:It is on the login page [1].")
    print(answer.text, [c.label() for c in answer.citations])

A knowledge base lives in a chunk store chosen by URL (:mod:`knowbase.knowledge.stores`):
by default one SQLite file at ``settings.kb_dir / f"{name}.db"``; ``store=`` (``kb create NAME
--store URL``) puts it elsewhere, and ``KnowledgeBase.open("scheme://...#NAME")`` opens it.
The embedder's model string and width are recorded in the store; opening it with another
embedder raises :class:`EmbedderMismatchError`.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.config import Settings
from knowbase.errors import (
    EmbedderMismatchError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
    NotAKnowbaseFileError,
    UserError,
)
from knowbase.knowledge.answer import AbstainPolicy, Answerer, AskEvent
from knowbase.knowledge.ingest import Ingestor, IngestReport, ProgressFn, add_texts
from knowbase.knowledge.retriever import Retriever, Weights
from knowbase.knowledge.stores.filters import SearchFilter
from knowbase.knowledge.stores.registry import get_backend, locate, store_backends
from knowbase.knowledge.types import Answer, CheckReport, Chunk, DocumentRow, ScoredChunk

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.rerank import Reranker
    from knowbase.knowledge.stores.base import ChunkStore
    from knowbase.models.base import ChatModel, Embedder


@dataclass(frozen=True, slots=True)
class KBInfo:
    """One knowledge base as listed by :meth:`KnowledgeBase.list` (``path``: the file, or the URL
    of a server store)."""

    name: str
    path: Path | str
    embedder: str
    documents: int
    chunks: int
    bytes: int


def _embedder_spec(embedder: Embedder) -> str:
    return embedder.spec


class KnowledgeBase:
    """A knowledge base: documents, chunks, a BM25 index and vectors in a chunk store.

    Build with :meth:`create` or :meth:`open`; close with :meth:`close` (or ``with``).

    Attributes:
        name: the knowledge base name.
        store: its :class:`~knowbase.knowledge.stores.base.ChunkStore`.
        path: the SQLite file, or the store URL of a server store.
        settings: the settings it was opened with.
    """

    def __init__(self, store: ChunkStore, *, name: str, settings: Settings, embedder: Embedder | None = None,
                 reranker: Reranker | None = None) -> None:
        self.store = store
        self.name = name
        self.path: Path | str = store.location.path or store.location.url
        self.settings = settings
        self._embedder = embedder
        self._models: dict[str, ChatModel] = {}
        self._lock = threading.Lock()
        meta = store.meta()
        self.embedder_spec: str = meta.get("embedder", "")
        if embedder is not None:
            self._check_embedder(embedder)
        self.retriever = Retriever(store, self.embedder, reranker=reranker)
        self.policy = AbstainPolicy.from_meta(meta)

    def set_abstain(self, *, reset: bool = False, **changes: Any) -> AbstainPolicy:
        """Change this knowledge base's abstention thresholds and store them in its file.

        Args:
            reset: start from the defaults (and forget stored values) before ``changes``.
            **changes: :class:`AbstainPolicy` fields: ``min_coverage``, ``min_cosine`` and
                ``max_unknown`` (0..1; ``max_unknown`` may be ``"off"``/None),
                ``unknown_min_chunks`` (a chunk count).

        Returns the policy now in force.

        Raises:
            ValueError: an unknown field or a value out of range (names it).
        """
        policy = (AbstainPolicy() if reset else self.policy).with_checked(**changes)
        self.store.set_meta(**policy.to_meta())
        self.policy = policy
        return policy

    # --- lifecycle -------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, *, embedder: str | Embedder | None = None, settings: Settings | None = None,
               exist_ok: bool = False, store: str | None = None) -> KnowledgeBase:
        """Create a knowledge base bound to an embedder.

        Args:
            name: letters, digits, ``-``, ``_``, ``.``; or a path ending in ``.db``; or a
                store URL ending in ``#NAME``.
            embedder: a model string (default: the configured embedder) or an Embedder.
            settings: default :meth:`Settings.load`.
            exist_ok: open an existing one instead of failing (its embedder must match).
            store: the store URL to create it in (e.g. ``sqlite:////srv/kb/NAME.db``; a
                backend of the ``knowbase.stores`` entry-point group); default SQLite in
                ``settings.kb_dir``.

        Raises:
            KnowledgeBaseExistsError: it exists and ``exist_ok`` is false.
            EmbedderMismatchError: ``exist_ok`` and it was built with another embedder.
            UserError: a bad name or store URL.
        """
        settings = settings or Settings.load()
        backend, loc = locate(name, settings, store=store)
        where = loc.path or loc.url
        if backend.exists(loc):
            if not exist_ok:
                raise KnowledgeBaseExistsError(f"knowledge base {loc.name!r} already exists at {where}",
                                               name=loc.name, path=str(where))
            return cls.open(loc.url, settings=settings, embedder=embedder)
        emb_obj, spec = cls._resolve_embedder(embedder, settings)
        chunk_store = backend.open(loc, create=True)
        meta = chunk_store.meta()
        if meta.get("embedder") and meta["embedder"] != spec:  # created concurrently by someone else
            chunk_store.close()
            raise EmbedderMismatchError(f"{where} was created with embedder {meta['embedder']!r}, not {spec!r}",
                                        expected=meta["embedder"], actual=spec, path=str(where))
        chunk_store.set_meta(embedder=spec, name=loc.name)
        return cls(chunk_store, name=loc.name, settings=settings, embedder=emb_obj)

    @classmethod
    def open(cls, name_or_path: str | os.PathLike[str], *, settings: Settings | None = None,
             embedder: str | Embedder | None = None, store: str | None = None) -> KnowledgeBase:
        """Open an existing knowledge base by name (in ``settings.kb_dir``, or in ``store``),
        path, or store URL (``postgresql://me@db/kb#NAME``).

        Args:
            embedder: check it against the recorded one (and use it); default: load the
                recorded model string when first needed.
            store: the store URL holding the named knowledge base.

        Raises:
            KnowledgeBaseNotFoundError: no such knowledge base.
            EmbedderMismatchError: ``embedder`` differs from the recorded one.
            NotAKnowbaseFileError: the file is not a knowledge base (it is left untouched).
            StoreError: the store is damaged.
        """
        settings = settings or Settings.load()
        backend, loc = locate(name_or_path, settings, store=store)
        if not backend.exists(loc):
            raise KnowledgeBaseNotFoundError(
                f"no knowledge base {loc.name!r} (looked for {loc.path or loc.url}); create it with: "
                f"knowbase kb create {loc.name}", name=loc.name, path=str(loc.path or loc.url))
        chunk_store = backend.open(loc)
        try:
            emb_obj = cls._resolve_embedder(embedder, settings)[0] if embedder is not None else None
            return cls(chunk_store, name=loc.name, settings=settings, embedder=emb_obj)
        except BaseException:
            chunk_store.close()
            raise

    @staticmethod
    def _resolve_embedder(embedder: str | Embedder | None, settings: Settings) -> tuple[Embedder, str]:
        if embedder is None or isinstance(embedder, str):
            from knowbase.models.registry import get_embedder

            emb = get_embedder(embedder or settings.embedder, settings=settings)
        else:
            emb = embedder
        return emb, _embedder_spec(emb)

    @classmethod
    def list(cls, settings: Settings | None = None) -> list[KBInfo]:
        """Every knowledge base the store backends find (SQLite: the files in ``settings.kb_dir``), by name."""
        settings = settings or Settings.load()
        out = []
        for scheme in store_backends():
            for loc in get_backend(scheme).list(settings):
                out.append(cls._info(scheme, loc, settings))
        return sorted(out, key=lambda i: (i.name, str(i.path)))

    @staticmethod
    def _info(scheme: str, loc: Any, settings: Settings) -> KBInfo:
        where = loc.path or loc.url
        size = loc.path.stat().st_size if loc.path is not None and loc.path.exists() else 0
        try:
            chunk_store = get_backend(scheme).open(loc, readonly=True)
        except Exception:  # not a knowledge base: list it as unreadable rather than fail
            return KBInfo(loc.name, where, "?", 0, 0, size)
        try:
            c = chunk_store.counts()
            return KBInfo(loc.name, where, chunk_store.meta().get("embedder", "?"), c["documents"], c["chunks"],
                          c["bytes"])
        except Exception:
            return KBInfo(loc.name, where, "?", 0, 0, size)
        finally:
            chunk_store.close()

    @classmethod
    def drop(cls, name: str, settings: Settings | None = None, *, store: str | None = None) -> Path | str:
        """Delete a knowledge base (a SQLite file with its WAL files and search index). Returns
        the path (or store URL) removed.

        Only a knowledge base is deleted: a SQLite file whose ``_migrations`` records
        ``m001_core`` and that holds the ``meta``, ``documents`` and ``chunks`` tables; a
        name must resolve to a file inside ``settings.kb_dir``.

        Raises:
            KnowledgeBaseNotFoundError: no such knowledge base.
            NotAKnowbaseFileError: the path is not a knowledge base (nothing is deleted).
        """
        settings = settings or Settings.load()
        backend, loc = locate(name, settings, store=store)
        text = os.fspath(name)
        named = "://" not in text and os.sep not in text and not text.endswith(".db") and not (
            os.altsep and os.altsep in text)
        if (named and loc.path is not None and (loc.path.exists() or loc.path.is_symlink())
                and loc.path.resolve().parent != settings.kb_dir.resolve()):
            raise NotAKnowbaseFileError(f"{loc.path} is not a knowbase knowledge base: it resolves outside "
                                        f"{settings.kb_dir}; nothing was changed", path=str(loc.path),
                                        expected="knowledge base", reason="outside the knowledge-base folder")
        backend.drop(loc)
        return loc.path or loc.url

    def close(self) -> None:
        """Close the file (the object cannot be used afterwards)."""
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KnowledgeBase({self.name!r}, path={str(self.path)!r}, embedder={self.embedder_spec!r})"

    # --- models ----------------------------------------------------------------------
    def _check_embedder(self, embedder: Embedder) -> None:
        spec = _embedder_spec(embedder)
        if self.embedder_spec and spec != self.embedder_spec:
            raise EmbedderMismatchError(
                f"knowledge base {self.name!r} was built with embedder {self.embedder_spec!r}, not {spec!r}; "
                f"use the same embedder or create a new knowledge base",
                expected=self.embedder_spec, actual=spec, path=str(self.path))
        dim = self.store.dim
        if dim is not None and dim != embedder.dim:
            raise EmbedderMismatchError(f"knowledge base {self.name!r} holds {dim}-dim vectors; {spec} makes {embedder.dim}",
                                        expected=self.embedder_spec, actual=spec, path=str(self.path))

    def embedder(self) -> Embedder:
        """The knowledge base's embedder (loaded from the recorded model string on first use)."""
        with self._lock:
            if self._embedder is None:
                if not self.embedder_spec:
                    raise UserError(f"knowledge base {self.name!r} records no embedder", path=str(self.path))
                emb, _ = self._resolve_embedder(self.embedder_spec, self.settings)
                self._check_embedder(emb)
                self._embedder = emb
            return self._embedder

    def chat_model(self, model: str | ChatModel | None = None) -> ChatModel:
        """A chat model by string (cached per knowledge base) or as given; default the configured one."""
        if model is not None and not isinstance(model, str):
            return model
        spec = model or self.settings.chat_model
        with self._lock:
            if spec not in self._models:
                from knowbase.models.registry import get_chat_model

                self._models[spec] = get_chat_model(spec, settings=self.settings)
            return self._models[spec]

    # --- writing ---------------------------------------------------------------------
    def ingest(self, paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], *, prune: bool = False,
               progress: ProgressFn | None = None, recursive: bool = True, encoding: str | None = None,
               pdf_password: str | None = None, pdf_passwords: Mapping[str, str] | None = None,
               follow_links: bool = False, metadata: dict[str, Any] | None = None) -> IngestReport:
        """Ingest files, folders and globs incrementally (see :mod:`knowbase.knowledge.ingest`).

        Args:
            paths: files, folders (walked) and glob patterns.
            prune: remove documents whose files are gone.
            progress: called after each file.
            recursive: walk sub-folders.
            encoding: the encoding of every text file (``cp1252``, ``gb18030``...); detection
                is skipped and never overrides it. None detects per file.
            pdf_password: user password tried on every encrypted PDF.
            pdf_passwords: ``{path or file name: password}`` for particular PDFs.
            follow_links: follow symbolic links leading outside the folders being ingested
                (by default they are listed in ``report.ignored``).
            metadata: stored with every document ingested now (``{"team": "infra"}``), for
                search filters; over the loaders' keys.

        Per-file limits come from ``settings.file_limits``.

        Returns:
            an :class:`IngestReport` (added, updated, skipped, removed, failed, ignored,
            warnings, chunks, seconds).

        Raises:
            ConfigError: ``encoding`` is not a codec name.
            UserError: bad ``metadata`` (see :func:`knowbase.knowledge.ingest.check_metadata`).
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        from knowbase.knowledge.loaders.options import LoadOptions
        from knowbase.tracing.context import span

        options = LoadOptions(limits=self.settings.file_limits, encoding=encoding, pdf_password=pdf_password,
                              pdf_passwords=dict(pdf_passwords or {}))
        with span("kb.ingest", kind="kb", store=self._tracer(), kb=self.name) as sp:
            report = Ingestor(self.store, self.embedder(), options=options, follow_links=follow_links,
                              metadata=metadata).run(
                paths, prune=prune, progress=progress, recursive=recursive)
            sp.set(added=len(report.added), updated=len(report.updated), skipped=len(report.skipped),
                   removed=len(report.removed), failed=len(report.failed), chunks=report.chunks)
            if report.added or report.updated or report.removed:
                self.store.prepare()  # the first query after an ingest should not wait for the index
        return report

    def add_texts(self, texts: Sequence[str], *, metadatas: Sequence[dict] | None = None,
                  source: str = "memory") -> builtins.list[int]:
        """Store texts directly (vector memory for agents). Returns one document id per text."""
        ingestor = Ingestor(self.store, self.embedder())
        return add_texts(self.store, ingestor.embedder, texts, metadatas=metadatas, source=source,
                         split=ingestor.split)

    def remove(self, doc: str | int) -> DocumentRow:
        """Remove one document by id, path (absolute or as given), or memory key.

        Raises:
            UserError: no such document (``doc``).
        """
        row = self._find(doc)
        self.store.delete_document(row.id)
        return row

    def _find(self, doc: str | int) -> DocumentRow:
        row = None
        if isinstance(doc, int) or (isinstance(doc, str) and doc.isdigit()):
            row = self.store.document(int(doc))
        if row is None and isinstance(doc, str):
            row = self.store.document(doc) or self.store.document(os.path.abspath(doc))
        if row is None:
            raise UserError(f"no document {doc!r} in knowledge base {self.name!r}", doc=str(doc), path=str(self.path))
        return row

    # --- reading ---------------------------------------------------------------------
    def search(self, query: str, *, k: int = 5, mode: str = "hybrid", filter: SearchFilter | dict | str | None = None,
               weights: Weights | None = None, reranker: Reranker | None = None) -> builtins.list[ScoredChunk]:
        """The ``k`` best chunks for ``query`` (see :meth:`Retriever.search`).

        ``filter``: a :class:`SearchFilter`, its text (``"team=infra and year>=2023"``, see
        :mod:`knowbase.knowledge.stores.filters`) or a dict (``{"team": "infra"}``).
        """
        return self.retriever.search(query, k=k, mode=mode, filter=filter, weights=weights, reranker=reranker)

    def _answerer(self, model: str | ChatModel | None, filter: Any, mode: str, verify: bool = True) -> Answerer:
        return Answerer(
            search=lambda q, k: self.search(q, k=k, mode=mode, filter=filter),
            doc_freqs=self.store.doc_freqs,
            chat_model=lambda: self.chat_model(model),
            embedder_languages=lambda: self.embedder().languages,
            policy=self.policy,
            verify=verify,
        )

    def ask(self, question: str, *, model: str | ChatModel | None = None, k: int = 4, extractive: bool = False,
            filter: SearchFilter | dict | str | None = None, mode: str = "hybrid", verify: bool = True) -> Answer:
        """Answer a question from the knowledge base with citations (see :mod:`knowbase.knowledge.answer`).

        Args:
            model: model string or ChatModel; default the configured model (the embedded Qwen).
            k: passages given to the model.
            extractive: no model: the best supporting sentences with their citations.
            verify: check each answer sentence against the passage it cites, remove the
                unsupported ones and repair citations (:mod:`knowbase.knowledge.verify`).
        """
        final = None
        for event in self.ask_stream(question, model=model, k=k, extractive=extractive, filter=filter, mode=mode,
                                     verify=verify):
            if event.kind == "answer":
                final = event.answer
        assert final is not None
        return final

    def ask_stream(self, question: str, *, model: str | ChatModel | None = None, k: int = 4,
                   extractive: bool = False, filter: SearchFilter | dict | str | None = None,
                   mode: str = "hybrid", verify: bool = True) -> Iterator[AskEvent]:
        """:meth:`ask` as events: ``sources`` as soon as retrieval is done, ``delta`` text pieces, ``answer``."""
        from knowbase.tracing.context import current_span, span

        if current_span() is None:
            with span("kb", kind="kb", store=self._tracer(), kb=self.name):
                yield from self._answerer(model, filter, mode, verify).ask_stream(question, k=k, extractive=extractive)
        else:
            yield from self._answerer(model, filter, mode, verify).ask_stream(question, k=k, extractive=extractive)

    def _tracer(self) -> Any:
        if not self.settings.tracing:
            return None
        from knowbase.tracing.store import TraceStore

        return TraceStore(self.settings.logs_path, secrets=self.settings.secrets())

    def documents(self) -> builtins.list[DocumentRow]:
        """Every document, by path."""
        return self.store.documents()

    def chunks(self, doc: str | int) -> builtins.list[Chunk]:
        """The chunks of one document, in order."""
        return self.store.document_chunks(self._find(doc).id)

    def stats(self) -> dict[str, Any]:
        """Counts and facts: name, path, embedder, dim, the store's counts (documents, chunks,
        vectors, bytes; SQLite adds fts_rows), bytes_per_1000_chunks, languages (documents per language)."""
        c = self.store.counts()
        langs: dict[str, int] = {}
        for row in self.store.documents():
            langs[row.language or "?"] = langs.get(row.language or "?", 0) + 1
        return {"name": self.name, "path": str(self.path), "embedder": self.embedder_spec, "dim": self.store.dim,
                **c, "bytes_per_1000_chunks": int(c["bytes"] * 1000 / c["chunks"]) if c["chunks"] else None,
                "languages": langs}

    def check(self) -> CheckReport:
        """Integrity check (see :meth:`ChunkStore.check`); ``report.ok`` is True when sound."""
        return self.store.check()
