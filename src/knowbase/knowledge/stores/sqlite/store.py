"""The SQLite chunk store: one file holding documents, chunks, BM25 tokens and vectors.

Opened with ``apsw`` (the stdlib ``sqlite3`` of this Python cannot load extensions) and
the ``sqlite-vec`` extension. The file is in WAL mode, so readers keep answering while
one writer ingests. The schema (:mod:`.schema`) is built by append-only named migrations
applied by the shared :func:`knowbase.storage.migrate`.

Every write of one document (its row, chunks, FTS rows and vectors) is one
``BEGIN IMMEDIATE`` transaction: a crash leaves the old state or the new one, and two
processes writing the same path are serialised into one document. Each write transaction
also bumps ``meta.generation``, which tells the search index beside the file
(:mod:`.index_cache`, ``<kb>.db.index``) and the filter table (:mod:`.search`) that they
are stale. The parts: :mod:`.documents` (meta, documents and chunks), :mod:`.search`
(BM25, dense, filters), :mod:`.index_cache`, :mod:`.check` (counts and integrity).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.errors import StoreError
from knowbase.knowledge.stores.base import StoreLocation
from knowbase.knowledge.stores.sqlite.check import CheckMixin
from knowbase.knowledge.stores.sqlite.documents import DocumentsMixin
from knowbase.knowledge.stores.sqlite.index_cache import IndexCacheMixin
from knowbase.knowledge.stores.sqlite.schema import KB_TABLES, MIGRATIONS, PAGE_SIZE
from knowbase.knowledge.stores.sqlite.search import SearchMixin, _FilterTable
from knowbase.storage import require_knowbase_file

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.index import SearchIndex


def _load_apsw() -> tuple[Any, Any]:
    try:
        import apsw
        import sqlite_vec
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise StoreError(f"knowledge bases need apsw and sqlite-vec: {exc}", path=None) from exc
    return apsw, sqlite_vec


def sqlite_location(path: str | Path) -> StoreLocation:
    """The :class:`StoreLocation` of a knowledge-base file (name = file stem)."""
    path = Path(path)
    return StoreLocation("sqlite", path.stem, f"sqlite:///{path.absolute()}", path)


class SQLiteStore(DocumentsMixin, SearchMixin, IndexCacheMixin, CheckMixin):
    """A :class:`~knowbase.knowledge.stores.base.ChunkStore` in one SQLite file. Most callers
    want :class:`knowbase.knowledge.base.KnowledgeBase`.

    Args:
        path: the SQLite file; created (with its folder) when ``create`` is true.
        create: create the file if missing; otherwise a missing file raises StoreError.
        readonly: open without write access (the schema must already be current).

    Raises:
        StoreError: the file is missing, not a database, or damaged (``path``).
    """

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        apsw, sqlite_vec = _load_apsw()
        self.path = Path(path)
        self.location = sqlite_location(self.path)
        self._apsw = apsw
        self.readonly = readonly
        self._index: SearchIndex | None = None
        self._index_lock = threading.Lock()
        self._filters: _FilterTable | None = None
        self._filters_lock = threading.Lock()
        if not create and not self.path.exists():
            raise StoreError(f"knowledge base file not found: {self.path}", path=str(self.path))
        # another program's database is never migrated into (or opened as) a knowledge base
        require_knowbase_file(self.path, expected="knowledge base", migration=MIGRATIONS[0][0], tables=KB_TABLES,
                              allow_new=True)
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | (
                apsw.SQLITE_OPEN_CREATE if create else 0)
            self.conn = apsw.Connection(str(self.path), flags=flags)
            self.conn.setbusytimeout(30_000)
            self.conn.enable_load_extension(True)
            self.conn.load_extension(sqlite_vec.loadable_path())
            self.conn.enable_load_extension(False)
            if not readonly:
                if not list(self.conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")):
                    # a new file: 8 KiB pages hold five 1.5 KiB vectors where 4 KiB pages hold two
                    self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        except apsw.Error as exc:
            raise StoreError(f"cannot open knowledge base {self.path}: {exc}", path=str(self.path)) from exc

    def _migrate(self) -> list[str]:
        from knowbase.storage import migrate

        return migrate(self.conn, MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
