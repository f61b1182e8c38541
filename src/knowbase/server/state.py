"""Everything one server process shares between requests (no module-level state).

Open knowledge bases are kept (one per name) and chat models and embedders loaded once per
model string. ``chat_model_factory`` and ``embedder_factory`` default to
:func:`knowbase.models.registry.get_chat_model` / ``get_embedder``; tests and embedding
applications may pass their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from knowbase.config import Settings
from knowbase.errors import KnowledgeBaseNotFoundError, UserError
from knowbase.server.auth import KeyStore, RateLimiter
from knowbase.server.config import ServerConfig
from knowbase.server.db import ServerDB
from knowbase.server.jobs import IngestJobs
from knowbase.server.queue import ModelQueue

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel, Embedder


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
        self._kbs: dict[str, KnowledgeBase] = {}
        self._models: dict[str, ChatModel] = {}
        self._embedders: dict[str, Embedder] = {}

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

    def kb(self, name: str) -> KnowledgeBase:
        """An open knowledge base by name (opened once, with the server's embedder for its model string).

        Raises:
            KnowledgeBaseNotFoundError: not served or does not exist.
            UserError: an invalid name.
        """
        from knowbase.knowledge.base import KnowledgeBase

        if self.config.kbs and name not in self.config.kbs:
            raise KnowledgeBaseNotFoundError(f"no knowledge base {name!r} is served here", name=name)
        with self._lock:
            base = self._kbs.get(name)
            if base is not None and base.path.exists():
                return base
        opened = KnowledgeBase.open(name, settings=self.settings)
        if opened.embedder_spec:
            try:
                emb = self.embedder(opened.embedder_spec)
            except BaseException:
                opened.close()
                raise
            opened.close()
            opened = KnowledgeBase.open(name, settings=self.settings, embedder=emb)
        with self._lock:
            old = self._kbs.get(name)
            if old is not None and old.path.exists():
                opened.close()
                return old
            self._kbs[name] = opened
        return opened

    def forget_kb(self, name: str) -> None:
        """Close and forget an open knowledge base (before it is dropped)."""
        with self._lock:
            base = self._kbs.pop(name, None)
        if base is not None:
            base.close()

    def close(self) -> None:
        """Close every open knowledge base and the server database."""
        with self._lock:
            bases = list(self._kbs.values())
            self._kbs.clear()
        for base in bases:
            base.close()
        self.db.close()


def _with_default_model(config: ServerConfig, settings: Settings) -> ServerConfig:
    from dataclasses import replace

    return replace(config, models=(settings.chat_model,))


def kb_from_model(model: str) -> str | None:
    """``"kb:NAME"`` -> ``NAME``; any other model string -> None."""
    return model[3:] if model.startswith("kb:") and len(model) > 3 else None


__all__ = ["ServerState", "UnknownServedModelError", "kb_from_model"]
