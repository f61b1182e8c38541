"""The PostgreSQL backend: knowledge bases as schemas of one database, pgvector for vectors.

URL: ``postgresql://user@host[:port]/database[?options]#NAME`` (any libpq URI; ``postgres://``
works too), so ``knowbase kb create NAME --store postgresql://me@db.internal/kb`` and
``KnowledgeBase.open("postgresql://me@db.internal/kb#NAME")``. Needs the ``postgres`` extra
(psycopg 3, pgvector) and a server with the pgvector extension (created on first use when
the user may). Registered in the ``knowbase.stores`` entry-point group as ``postgresql``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from knowbase.errors import KnowledgeBaseNotFoundError, StoreError, UserError
from knowbase.knowledge.stores.base import StoreLocation
from knowbase.knowledge.stores.postgresql.store import PostgreSQLStore, connect, quote, schema_name

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings

__all__ = ["PostgreSQLBackend", "PostgreSQLStore"]


class PostgreSQLBackend:
    """Opens, lists and drops knowledge bases in PostgreSQL (the ``postgresql`` entry point)."""

    def locate(self, name: str, url: str, settings: Settings) -> StoreLocation:
        """``postgresql://...`` (+ ``#NAME``) -> the location of knowledge base ``name``.

        Raises:
            UserError: not a postgresql URL, or a name PostgreSQL cannot hold.
        """
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("postgresql", "postgres"):
            raise UserError(f"not a PostgreSQL URL: {url!r} (use postgresql://user@host/db)", field="store")
        dsn = f"postgresql://{rest.split('#', 1)[0]}"
        try:
            schema_name(name)
        except Exception as exc:
            raise UserError(str(exc), field="name") from exc
        return StoreLocation("postgresql", name, f"{dsn}#{name}", None)

    def exists(self, location: StoreLocation) -> bool:
        """Whether the knowledge base's schema exists (with its ``meta`` table)."""
        conn = connect(location.url.split("#", 1)[0], readonly=True)
        try:
            return conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND "
                                "table_name = 'meta'", (schema_name(location.name),)).fetchone() is not None
        finally:
            conn.close()

    def open(self, location: StoreLocation, *, create: bool = False, readonly: bool = False) -> PostgreSQLStore:
        """Open (or create) the knowledge base; see :class:`PostgreSQLStore`."""
        return PostgreSQLStore(location, create=create, readonly=readonly)

    def list(self, settings: Settings) -> list[StoreLocation]:
        """The knowledge bases of the PostgreSQL URLs in the ``store`` and ``stores`` settings
        (``config.toml``); a server that cannot be reached is left out."""
        urls = [settings.extra.get("store"), *(settings.extra.get("stores") or [])]
        out: list[StoreLocation] = []
        for url in dict.fromkeys(u for u in urls if isinstance(u, str) and u.split("://")[0] in ("postgresql", "postgres")):
            try:
                out.extend(self.locate(name, url, settings) for name in self.names(url))
            except (StoreError, UserError):
                continue
        return out

    def names(self, url: str) -> builtins.list[str]:
        """The knowledge bases in the database at ``url``."""
        conn = connect(url.split("#", 1)[0], readonly=True)
        try:
            rows = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'meta' "
                                "AND table_schema LIKE 'kb\\_%' ORDER BY 1").fetchall()
            return [r[0][3:] for r in rows]
        finally:
            conn.close()

    def drop(self, location: StoreLocation) -> None:
        """``DROP SCHEMA kb_NAME CASCADE``.

        Raises:
            KnowledgeBaseNotFoundError: no such knowledge base.
        """
        if not self.exists(location):
            raise KnowledgeBaseNotFoundError(f"no knowledge base {location.name!r} at {location.url}",
                                             name=location.name, path=location.url)
        conn = connect(location.url.split("#", 1)[0], readonly=True)
        try:
            conn.execute(f"DROP SCHEMA {quote(schema_name(location.name))} CASCADE")
        finally:
            conn.close()
