"""API keys, scopes, per-key access to knowledge bases, and per-key rate limits.

A key is ``kb_`` plus 32 random bytes (URL-safe base64), shown once when created; only its
SHA-256 digest is stored (``server.db``). A fast hash is the standard choice for random,
high-entropy tokens (GitHub and Stripe tokens are handled the same way): there is no
password to guess, so a slow hash would only slow every request.

Scopes are ordered: ``ask`` (search, ask, chat completions, embeddings, feedback) <
``ingest`` (also upload and remove documents) < ``admin`` (also create and drop knowledge
bases, read traces). A key limited to some knowledge bases sees only those.

Rate limits: at most ``rate_per_minute`` requests, and (when set) ``tokens_per_minute``
model tokens (prompt plus completion, counted after each answer), in any sliding 60 s
window per key; beyond either :class:`RateLimitedError` carries ``retry_after`` (seconds
until the oldest entry in the window leaves it).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from knowbase.errors import UserError
from knowbase.server.db import ServerDB, dumps

SCOPES = ("ask", "ingest", "admin")
"""Scopes from least to most allowed; each includes the ones before it."""

KEY_PREFIX = "kb_"


class AuthError(UserError):
    """No key, or a key that is unknown or revoked (HTTP 401)."""


class ForbiddenError(UserError):
    """The key exists but may not do this (scope or knowledge base; HTTP 403)."""


class RateLimitedError(UserError):
    """The key made too many requests in the last minute (HTTP 429; ``retry_after`` seconds)."""


def hash_key(secret: str) -> str:
    """SHA-256 hex digest of a key (what is stored)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's id, scope, knowledge bases (empty: all) and rate limit.

    ``Principal.open()`` is the caller when the server runs without keys (loopback only).
    """

    key_id: str | None
    scope: str
    kbs: tuple[str, ...] = ()
    rate_per_minute: int = 0
    tokens_per_minute: int | None = None

    @classmethod
    def open(cls) -> Principal:
        return cls(None, "admin")

    def allows(self, scope: str) -> bool:
        """True when this caller's scope includes ``scope``."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def may_use(self, kb: str) -> bool:
        """True when this caller may use knowledge base ``kb``."""
        return not self.kbs or kb in self.kbs

    def require(self, scope: str, kb: str | None = None) -> None:
        """Raises :class:`ForbiddenError` unless this caller has ``scope`` (and may use ``kb``)."""
        if not self.allows(scope):
            raise ForbiddenError(f"this key has scope {self.scope!r}; {scope!r} is needed", scope=scope)
        if kb is not None and not self.may_use(kb):
            raise ForbiddenError(f"this key may not use knowledge base {kb!r}", kb=kb)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``secret`` is shown once and never stored."""

    id: str
    secret: str
    scope: str
    kbs: tuple[str, ...]
    rate_per_minute: int
    name: str = ""
    tokens_per_minute: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.secret, "scope": self.scope, "kbs": list(self.kbs),
                "rate_per_minute": self.rate_per_minute, "tokens_per_minute": self.tokens_per_minute,
                "name": self.name}


class KeyStore:
    """API keys in ``server.db``.

    Args:
        db: the server database.
    """

    def __init__(self, db: ServerDB) -> None:
        self.db = db

    def create(self, *, scope: str = "ask", kbs: tuple[str, ...] | list[str] = (), rate_per_minute: int = 60,
               tokens_per_minute: int | None = None, name: str = "") -> CreatedKey:
        """Create a key; the returned ``secret`` is the only time it is seen.

        Raises:
            UserError: unknown scope or a rate below 1.
        """
        if scope not in SCOPES:
            raise UserError(f"unknown scope {scope!r}; one of {', '.join(SCOPES)}", field="scope")
        if rate_per_minute < 1:
            raise UserError("rate_per_minute must be at least 1", field="rate_per_minute")
        if tokens_per_minute is not None and tokens_per_minute < 1:
            raise UserError("tokens_per_minute must be at least 1", field="tokens_per_minute")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(6)
        self.db.execute("INSERT INTO api_keys (id, name, hash, scope, kbs, rate_per_minute, tokens_per_minute, created) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (key_id, name, hash_key(secret), scope, dumps(sorted(set(kbs))), rate_per_minute,
                         tokens_per_minute, time.time()))
        return CreatedKey(key_id, secret, scope, tuple(sorted(set(kbs))), rate_per_minute, name, tokens_per_minute)

    def list(self) -> list[dict[str, Any]]:
        """Every key (never the secret): id, name, scope, kbs, rate_per_minute, tokens_per_minute,
        created, revoked."""
        rows = self.db.rows("SELECT id, name, scope, kbs, rate_per_minute, tokens_per_minute, created, revoked "
                            "FROM api_keys ORDER BY created")
        return [{**r, "kbs": json.loads(r["kbs"])} for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; returns False when there is no such active key."""
        found = self.db.rows("SELECT id FROM api_keys WHERE id = ? AND revoked IS NULL", (key_id,))
        if not found:
            return False
        self.db.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (time.time(), key_id))
        return True

    def active_count(self) -> int:
        """Keys not revoked."""
        return int(self.db.rows("SELECT count(*) AS n FROM api_keys WHERE revoked IS NULL")[0]["n"])

    def lookup(self, secret: str) -> Principal:
        """The principal of a presented key.

        Raises:
            AuthError: unknown or revoked key.
        """
        rows = self.db.rows("SELECT id, scope, kbs, rate_per_minute, tokens_per_minute FROM api_keys "
                            "WHERE hash = ? AND revoked IS NULL", (hash_key(secret),))
        if not rows:
            raise AuthError("invalid API key")
        r = rows[0]
        tpm = r["tokens_per_minute"]
        return Principal(r["id"], r["scope"], tuple(json.loads(r["kbs"])), int(r["rate_per_minute"]),
                         int(tpm) if tpm is not None else None)


@dataclass
class RateLimiter:
    """Sliding 60-second windows of request times and model tokens per key (in memory, per
    server process)."""

    window: float = 60.0
    _hits: dict[str, deque[float]] = field(default_factory=dict)
    _tokens: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key_id: str, limit: int, *, tokens_limit: int | None = None, now: float | None = None) -> None:
        """Count one request for ``key_id``.

        Raises:
            RateLimitedError: ``limit`` requests already fell in the window, or the tokens used in
                it reached ``tokens_limit`` (``retry_after`` seconds, >= 1).
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key_id, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= limit:
                retry = max(1, math.ceil(hits[0] + self.window - now))
                raise RateLimitedError(f"rate limit of {limit} requests per minute reached; retry in {retry} s",
                                       retry_after=retry)
            if tokens_limit is not None:
                used = self._tokens.setdefault(key_id, deque())
                while used and used[0][0] <= now - self.window:
                    used.popleft()
                if sum(n for _, n in used) >= tokens_limit:
                    retry = max(1, math.ceil(used[0][0] + self.window - now))
                    raise RateLimitedError(f"token limit of {tokens_limit} tokens per minute reached; retry in "
                                           f"{retry} s", retry_after=retry)
            hits.append(now)

    def add_tokens(self, key_id: str | None, tokens: int, *, now: float | None = None) -> None:
        """Record ``tokens`` model tokens used by ``key_id`` (None: no key, nothing recorded)."""
        if key_id is None or tokens <= 0:
            return
        with self._lock:
            self._tokens.setdefault(key_id, deque()).append((time.monotonic() if now is None else now, tokens))


def bearer(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer KEY`` (what OpenAI clients send) or ``X-API-Key``."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        kind, _, value = authorization.strip().partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    return None
