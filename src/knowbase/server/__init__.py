"""``knowbase serve``: the HTTP API (OpenAI-compatible and native) over knowledge bases.

Needs the ``server`` extra (FastAPI, uvicorn). See :func:`knowbase.server.app.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.server.app import create_app
    from knowbase.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from knowbase.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from knowbase.server.config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
