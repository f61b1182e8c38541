"""What the server is allowed to do: models, limits, keys. One frozen object per server."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from knowbase.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Server settings (the user directory, models' defaults and tracing come from :class:`Settings`).

    Attributes:
        models: chat model strings a request may name (the first is the default, also used
            for ``kb:NAME``); a request never supplies its own model string or URL.
        kbs: knowledge bases served (empty: every one in the user directory).
        require_keys: every request needs an API key (``Authorization: Bearer ...``).
        max_body_bytes: largest request body (uploads included), bytes.
        max_upload_bytes: largest uploaded file, bytes.
        max_upload_files: most files in one upload.
        max_embedding_inputs: most texts in one embeddings request.
        max_question_chars: longest question or chat message, characters.
        max_document_bytes: largest kubectl document in a ``/v1/diagnose`` request, UTF-8
            bytes (the CLI's per-file limit, :data:`knowbase.safety.datafiles.DEFAULT_LIMITS`).
        queue_concurrency: requests an in-process model serves at once.
        queue_max_waiting: requests that may wait for it; more get 503 with Retry-After.
        queue_timeout: seconds a request may wait for the model.
        rate_per_minute: default per-key request limit for new keys.
    """

    models: tuple[str, ...] = ()
    kbs: tuple[str, ...] = ()
    require_keys: bool = False
    max_body_bytes: int = 64 * 1024 * 1024
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_files: int = 20
    max_embedding_inputs: int = 256
    max_question_chars: int = 8000
    max_document_bytes: int = 64 * 1024 * 1024
    queue_concurrency: int = 1
    queue_max_waiting: int = 8
    queue_timeout: float = 300.0
    rate_per_minute: int = 60


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, keys: int, insecure_no_auth: bool) -> bool:
    """Decide whether requests need keys, refusing an open server on a network interface.

    Args:
        host: the interface to bind.
        keys: active API keys in the key store.
        insecure_no_auth: the operator explicitly asked for an open server.

    Returns ``require_keys``: True whenever keys exist (unless ``insecure_no_auth``).

    Raises:
        ConfigError: ``host`` is not loopback, no key exists and ``insecure_no_auth`` is false.
    """
    if insecure_no_auth:
        return False
    if keys == 0 and not is_loopback(host):
        raise ConfigError(f"refusing to serve on {host} without API keys: create one with "
                          "'knowbase keys create --scope ask', or pass --insecure-no-auth", host=host)
    return keys > 0
