"""The FastAPI application: :func:`create_app` builds it from settings.

Every error is a JSON body ``{"error": {"message", "type", "code", "param"}}`` (the shape
OpenAI clients parse) with a 4xx status for the caller's mistakes: malformed JSON and wrong
types 400, missing or wrong key 401, scope 403, unknown knowledge base or model 404, an
existing one 409, a body over the cap 413, wrong file type 415, rate limit 429 and a full
model queue 503 (both with ``Retry-After``). A 500 carries no traceback.

Run it with ``knowbase serve`` or any ASGI server::

    from knowbase.config import Settings
    from knowbase.server import create_app
    app = create_app(Settings.load())        # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from knowbase.config import Settings
from knowbase.errors import (
    ContextLengthError,
    KnowbaseError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
    ModelHTTPError,
    UnknownModelError,
    UserError,
)
from knowbase.server.auth import AuthError, ForbiddenError, Principal, RateLimitedError, bearer
from knowbase.server.config import ServerConfig
from knowbase.server.queue import QueueFullError, QueueTimeoutError
from knowbase.server.state import ServerState, UnknownServedModelError
from knowbase.server.uploads import UploadTypeError

log = logging.getLogger("knowbase.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(UserError):
    """A request the API refuses: ``status`` (HTTP), ``code`` (a short name), ``param`` (the field)."""


def error_status(exc: KnowbaseError) -> int:
    """HTTP status for a knowbase error (see the module docstring)."""
    status = exc.detail.get("status")
    if isinstance(status, int) and 400 <= status < 600:
        return status
    table: list[tuple[type[KnowbaseError], int]] = [
        (AuthError, 401), (ForbiddenError, 403), (RateLimitedError, 429),
        (KnowledgeBaseNotFoundError, 404), (UnknownServedModelError, 404), (UnknownModelError, 404),
        (KnowledgeBaseExistsError, 409), (ContextLengthError, 400), (UploadTypeError, 415),
        (QueueFullError, 503), (QueueTimeoutError, 503), (ModelHTTPError, 502),
    ]
    for cls, status in table:
        if isinstance(exc, cls):
            return status
    return 400 if isinstance(exc, UserError) else 503


def error_body(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The JSON error body (OpenAI's shape)."""
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def error_response(exc: KnowbaseError) -> JSONResponse:
    """A JSON response for a knowbase error, with ``Retry-After`` when the error has one."""
    status = error_status(exc)
    headers = {}
    retry = exc.detail.get("retry_after")
    if retry is not None and status in (429, 503):
        headers["Retry-After"] = str(int(retry))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    code = exc.detail.get("code") or type(exc).__name__
    param = exc.detail.get("param") or exc.detail.get("field")
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(error_body(exc.message, type_=kind, code=str(code), param=param), status_code=status,
                        headers=headers)


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 (by Content-Length at once,
    else while the body streams in), before any of it is parsed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(error_body(f"request body is larger than the limit of {self.limit} bytes",
                                           type_="invalid_request_error", code="body_too_large"), status_code=413)
        await response({"type": "http"}, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Message:  # pragma: no cover - JSONResponse never reads
    return {"type": "http.disconnect"}


def get_state(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request``."""
    state: ServerState = request.app.state.knowbase
    return state


def principal(request: Request, authorization: str | None = Header(default=None, include_in_schema=False),
              x_api_key: str | None = Header(default=None, include_in_schema=False)) -> Principal:
    """The caller (FastAPI dependency): the key's principal, rate-limited; open when keys are off.

    Raises:
        AuthError: keys are required and none or a wrong one was given.
        RateLimitedError: the key is over its per-minute limit.
    """
    state = get_state(request)
    if not state.config.require_keys:
        return Principal.open()
    secret = bearer(authorization, x_api_key)
    if not secret:
        raise AuthError("an API key is required: send 'Authorization: Bearer KEY'")
    who = state.keys.lookup(secret)
    assert who.key_id is not None
    state.limiter.check(who.key_id, who.rate_per_minute, tokens_limit=who.tokens_per_minute)
    return who


Caller = Depends(principal)


def create_app(settings: Settings | None = None, config: ServerConfig | None = None, *,
               chat_model_factory: Callable[[str], Any] | None = None,
               embedder_factory: Callable[[str], Any] | None = None) -> FastAPI:
    """Build the knowbase HTTP application.

    Args:
        settings: the user directory and defaults (default :meth:`Settings.load`).
        config: limits, served models and whether keys are required (default :class:`ServerConfig`).
        chat_model_factory: ``spec -> ChatModel`` (default: the model registry).
        embedder_factory: ``spec -> Embedder`` (default: the model registry).

    Returns a FastAPI app; its OpenAPI documentation is at ``/docs``.
    """
    from knowbase.server.routes import diagnose, kbs, openai_compat, ops

    settings = settings or Settings.load()
    state = ServerState(settings, config or ServerConfig(), chat_model_factory=chat_model_factory,
                        embedder_factory=embedder_factory)
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            state.resume_uploads()  # uploads saved but not ingested when the server last stopped
        except KnowbaseError as exc:
            log.warning("could not resume ingesting saved uploads: %s", exc)
        yield
        state.close()

    app = FastAPI(title="knowbase", version=_version(), lifespan=lifespan,
                  description="Cited answers, search and ingest over your knowledge bases; OpenAI-compatible "
                              "chat completions, models and embeddings.")
    app.state.knowbase = state

    @app.exception_handler(KnowbaseError)
    async def _knowbase_error(request: Request, exc: KnowbaseError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            message, code = "malformed JSON in the request body", "invalid_json"
        else:
            parts = []
            for err in errors[:5]:
                where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
            message, code = "invalid request: " + "; ".join(parts), "invalid_value"
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        return JSONResponse(error_body(message, type_="invalid_request_error", code=code,
                                       param=".".join(loc) or None), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, _TooLarge):  # a body streamed past the limit while FastAPI read it
            return JSONResponse(error_body(f"request body is larger than the limit of {state.config.max_body_bytes} "
                                           "bytes", type_="invalid_request_error", code="body_too_large"),
                                status_code=413)
        return JSONResponse(error_body(str(exc.detail), type_="invalid_request_error", code=f"http_{exc.status_code}"),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(f"internal error ({type(exc).__name__})", type_="server_error",
                                       code="internal_error"), status_code=500)

    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        """The web page (no CDN: everything it loads is served from /static)."""
        return FileResponse(static / "index.html", media_type="text/html")

    app.include_router(openai_compat.router)
    app.include_router(kbs.router)
    app.include_router(ops.router)
    app.include_router(diagnose.router)
    app.add_middleware(BodyLimit, limit=state.config.max_body_bytes)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("knowbase")
    except Exception:  # pragma: no cover - running from a source tree
        return "0"
