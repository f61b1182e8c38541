"""Everything one server process shares between requests (no module-level state).

Open knowledge bases are kept (one per name) and chat models and embedders loaded once per
model string. ``chat_model_factory`` and ``embedder_factory`` default to
:func:`knowbase.models.registry.get_chat_model` / ``get_embedder``; tests and embedding
applications may pass their own.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from knowbase.config import Settings
from knowbase.errors import KnowledgeBaseNotFoundError, UserError
from knowbase.server.auth import KeyStore, RateLimiter
from knowbase.server.config import ServerConfig
from knowbase.server.db import ServerDB
from knowbase.server.jobs import IngestJobs
from knowbase.server.kbpool import KBPool
from knowbase.server.queue import ModelQueue

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel, Embedder


T = TypeVar("T")
_KB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # as KnowledgeBase names are checked


class UnknownServedModelError(UserError):
    """A request named a model this server does not serve (``model``; HTTP 404)."""


class ServerState:
    """Shared server resources.

    Args:
        settings: the user directory, default models, tracing.
        config: the server's limits and allowed models.
        chat_model_factory: ``spec -> ChatModel``.
        embedder_factory: ``spec -> Embedder``.
    """

    def __init__(self, settings: Settings, config: ServerConfig, *,
                 chat_model_factory: Callable[[str], ChatModel] | None = None,
                 embedder_factory: Callable[[str], Embedder] | None = None) -> None:
        self.settings = settings
        self.config = config if config.models else _with_default_model(config, settings)
        self.db = ServerDB(settings.home / "server.db")
        self.keys = KeyStore(self.db)
        self.limiter = RateLimiter()
        self.queue = ModelQueue(concurrency=config.queue_concurrency, max_waiting=config.queue_max_waiting,
                                timeout=config.queue_timeout)
        self.jobs = IngestJobs()
        self._chat_factory = chat_model_factory or self._default_chat
        self._embed_factory = embedder_factory or self._default_embedder
        self._lock = threading.Lock()
        self._kbs: dict[str, KBPool] = {}
        self._models: dict[str, ChatModel] = {}
        self._embedders: dict[str, Embedder] = {}

    def spend(self, key_id: str | None, usage: Any) -> None:
        """Count a model call's tokens (a ``Usage`` or None) against a key's tokens-per-minute limit."""
        if usage is not None:
            self.limiter.add_tokens(key_id, usage.prompt_tokens + usage.completion_tokens)

    # --- models --------------------------------------------------------------------------
    def _default_chat(self, spec: str) -> ChatModel:
        from knowbase.models.registry import get_chat_model

        return get_chat_model(spec, settings=self.settings)

    def _default_embedder(self, spec: str) -> Embedder:
        from knowbase.models.registry import get_embedder

        return get_embedder(spec, settings=self.settings)

    def resolve_model_name(self, name: str | None) -> str:
        """The served chat model string for a request's ``model`` (None/``default``: the first).

        Raises:
            UnknownServedModelError: not one of the served models.
        """
        if not name or name == "default":
            return self.config.models[0]
        if name in self.config.models:
            return name
        raise UnknownServedModelError(f"model {name!r} is not served here; GET /v1/models lists them", model=name)

    def chat_model(self, spec: str) -> ChatModel:
        """The loaded chat model for a served model string (loaded once)."""
        with self._lock:
            if spec not in self._models:
                self._models[spec] = self._chat_factory(spec)
            return self._models[spec]

    def embedder(self, spec: str) -> Embedder:
        """The loaded embedder for a model string (loaded once)."""
        with self._lock:
            if spec not in self._embedders:
                self._embedders[spec] = self._embed_factory(spec)
            return self._embedders[spec]

    # --- knowledge bases ------------------------------------------------------------------
    def kb_names(self) -> list[str]:
        """Knowledge bases served (the configured ones, or every one in the user directory)."""
        from knowbase.knowledge.base import KnowledgeBase

        names = [info.name for info in KnowledgeBase.list(self.settings)]
        return [n for n in names if n in self.config.kbs] if self.config.kbs else names

    def _pool(self, name: str) -> KBPool:
        """The pool of ``name`` (checked: served, valid, and its file exists).

        Raises:
            KnowledgeBaseNotFoundError: not served or does not exist.
            UserError: an invalid name.
        """
        if not _KB_NAME.fullmatch(name):
            raise UserError(f"invalid knowledge base name {name[:100]!r}", field="name")
        if self.config.kbs and name not in self.config.kbs:
            raise KnowledgeBaseNotFoundError(f"no knowledge base {name!r} is served here", name=name)
        path = self.settings.kb_dir / f"{name}.db"
        if not path.exists():
            with self._lock:
                stale = self._kbs.pop(name, None)
            if stale is not None:
                stale.close()
            raise KnowledgeBaseNotFoundError(f"no knowledge base {name!r}", name=name)
        with self._lock:
            pool = self._kbs.get(name)
            if pool is None:
                pool = self._kbs[name] = KBPool(lambda: self._open_kb(name), size=8)
            return pool

    def _open_kb(self, name: str) -> KnowledgeBase:
        from knowbase.knowledge.base import KnowledgeBase

        opened = KnowledgeBase.open(name, settings=self.settings)
        if not opened.embedder_spec:
            return opened
        spec = opened.embedder_spec
        opened.close()
        return KnowledgeBase.open(name, settings=self.settings, embedder=self.embedder(spec))

    def check_kb(self, name: str) -> None:
        """Raise :class:`KnowledgeBaseNotFoundError` unless ``name`` is served and exists."""
        self._pool(name)

    @contextmanager
    def kb(self, name: str) -> Iterator[KnowledgeBase]:
        """Lease an open knowledge base for this thread (``with state.kb(name) as base``).

        Raises:
            KnowledgeBaseNotFoundError: not served or does not exist.
            UserError: an invalid name.
        """
        with self._pool(name).lease() as base:
            yield base

    def with_kb(self, name: str, fn: Callable[[KnowledgeBase], T]) -> T:
        """``fn(base)`` with a leased knowledge base (for ``run_in_threadpool``)."""
        with self.kb(name) as base:
            return fn(base)

    def uploads_dir(self, name: str) -> Path:
        """Where uploads to knowledge base ``name`` are kept (``home/uploads/NAME``): the server's own
        copies, ingested from there; removing a document removes its copy."""
        return self.settings.home / "uploads" / name

    def resume_uploads(self) -> list[str]:
        """Start an ingest job over the saved uploads of each served knowledge base, so files saved
        by a server that stopped before ingesting them are ingested now (ingest is incremental:
        files already ingested are skipped). Returns the job ids."""
        jobs = []
        for name in self.kb_names():
            folder = self.uploads_dir(name)
            files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")) \
                if folder.is_dir() else []
            if files:
                job = self.jobs.start(name, functools.partial(self.kb, name), [str(p) for p in files],
                                      [p.name for p in files])
                jobs.append(job.id)
        return jobs

    def forget_kb(self, name: str) -> None:
        """Close and forget a knowledge base's open instances (before it is dropped)."""
        with self._lock:
            pool = self._kbs.pop(name, None)
        if pool is not None:
            pool.close()

    def close(self) -> None:
        """Close every open knowledge base and the server database."""
        with self._lock:
            pools = list(self._kbs.values())
            self._kbs.clear()
        for pool in pools:
            pool.close()
        self.db.close()


def _with_default_model(config: ServerConfig, settings: Settings) -> ServerConfig:
    from dataclasses import replace

    return replace(config, models=(settings.chat_model,))


def kb_from_model(model: str) -> str | None:
    """``"kb:NAME"`` -> ``NAME``; any other model string -> None."""
    return model[3:] if model.startswith("kb:") and len(model) > 3 else None


__all__ = ["ServerState", "UnknownServedModelError", "kb_from_model"]
