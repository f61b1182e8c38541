"""The SQLite backend: one file per knowledge base, ``settings.kb_dir / f"{name}.db"`` by default.

URLs follow SQLAlchemy's form: ``sqlite:////absolute/path/NAME.db`` (four slashes),
``sqlite:///relative/NAME.db`` (three), ``sqlite://#NAME`` (the default folder); a bare name
or a path ending in ``.db`` is the same thing without the scheme. Registered in the
``knowbase.stores`` entry-point group as ``sqlite``, like any plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from knowbase.errors import KnowledgeBaseNotFoundError, UserError
from knowbase.knowledge.stores.base import StoreLocation
from knowbase.knowledge.stores.norms import norm_hash, normalise
from knowbase.knowledge.stores.sqlite.schema import KB_TABLES, MIGRATIONS
from knowbase.knowledge.stores.sqlite.store import SQLiteStore, sqlite_location
from knowbase.storage import require_knowbase_file

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings

__all__ = ["MIGRATIONS", "SQLiteBackend", "SQLiteStore", "norm_hash", "normalise", "sqlite_location"]


class SQLiteBackend:
    """Opens, lists and drops SQLite knowledge bases (the ``sqlite`` entry point of ``knowbase.stores``)."""

    def locate(self, name: str, url: str, settings: Settings) -> StoreLocation:
        """``sqlite:////abs/path.db`` or ``sqlite:///rel/path.db`` -> its location; a URL
        without a path (``sqlite://``) means ``settings.kb_dir / f"{name}.db"``.

        Raises:
            UserError: the URL is not a sqlite URL.
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme != "sqlite":
            raise UserError(f"not a sqlite URL: {url!r} (use sqlite:////abs/path/NAME.db)", field="store")
        rest = rest.split("#", 1)[0]
        rest = rest[1:] if rest.startswith("/") else rest  # the slash that ends the (empty) host part
        if not rest:
            return sqlite_location(settings.kb_dir / f"{name}.db")
        return sqlite_location(Path(rest).expanduser())

    def exists(self, location: StoreLocation) -> bool:
        """Whether the file exists."""
        return location.path is not None and location.path.exists()

    def open(self, location: StoreLocation, *, create: bool = False, readonly: bool = False) -> SQLiteStore:
        """Open (or create) the file; see :class:`SQLiteStore`."""
        assert location.path is not None
        return SQLiteStore(location.path, create=create, readonly=readonly)

    def list(self, settings: Settings) -> list[StoreLocation]:
        """Every ``*.db`` file in ``settings.kb_dir``, by name."""
        return [sqlite_location(p) for p in sorted(settings.kb_dir.glob("*.db"))]

    def drop(self, location: StoreLocation) -> None:
        """Delete the file with its WAL files and search index.

        Raises:
            KnowledgeBaseNotFoundError: no file there.
            NotAKnowbaseFileError: the file is not a knowbase knowledge base (nothing is deleted).
        """
        path = location.path
        if path is None or not (path.exists() or path.is_symlink()):
            raise KnowledgeBaseNotFoundError(f"no knowledge base {location.name!r} at {path}", name=location.name,
                                             path=str(path))
        # only a knowledge base is deleted: m001_core recorded and the core tables present
        require_knowbase_file(path, expected="knowledge base", migration=MIGRATIONS[0][0], tables=KB_TABLES)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.index")):
            p.unlink(missing_ok=True)
