"""Start the server: check the bind address against the keys, build the app, run uvicorn."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from knowbase.config import Settings
from knowbase.errors import KnowledgeBaseNotFoundError
from knowbase.server.auth import KeyStore
from knowbase.server.config import ServerConfig, check_bind
from knowbase.server.db import ServerDB


def prepare(settings: Settings, *, host: str = "127.0.0.1", kbs: tuple[str, ...] = (),
            models: tuple[str, ...] = (), insecure_no_auth: bool = False,
            config: ServerConfig | None = None) -> Any:
    """The app ``knowbase serve`` runs.

    Args:
        settings: user directory and defaults.
        host: the interface to bind (keys are required off loopback, see :func:`check_bind`).
        kbs: serve only these knowledge bases (each must exist); empty: all.
        models: chat model strings requests may name (default: the configured model).
        insecure_no_auth: serve without keys even on a network interface.
        config: further limits.

    Raises:
        ConfigError: a network interface without keys and without ``insecure_no_auth``.
        KnowledgeBaseNotFoundError: a named knowledge base does not exist.
    """
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.server.app import create_app

    db = ServerDB(settings.home / "server.db")
    try:
        require = check_bind(host, keys=KeyStore(db).active_count(), insecure_no_auth=insecure_no_auth)
    finally:
        db.close()
    existing = {info.name for info in KnowledgeBase.list(settings)}
    for name in kbs:
        if name not in existing:
            raise KnowledgeBaseNotFoundError(f"no knowledge base {name!r}; create it with: knowbase kb create {name}",
                                             name=name)
    cfg = replace(config or ServerConfig(), kbs=tuple(kbs), models=tuple(models) or (settings.chat_model,),
                  require_keys=require)
    return create_app(settings, cfg)


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Run the server until interrupted (see :func:`prepare` for the arguments)."""
    import uvicorn

    app = prepare(settings, host=host, **kwargs)
    uvicorn.run(app, host=host, port=port, log_level="info")
