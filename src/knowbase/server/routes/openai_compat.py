"""OpenAI-compatible endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /v1/embeddings``.

``model: "kb:NAME"`` answers the last user message from knowledge base NAME, with citations;
any other model string must be one the server serves (``GET /v1/models``). A reply carries
the answer text as ``choices[0].message.content`` and the whole
:meth:`~knowbase.knowledge.types.Answer.to_dict` (citations with path, section, page and
offsets; retrieved passages kept apart; checked claims) as the extra top-level field
``knowbase``. Streamed (``stream: true``), the deltas are the true increments of the text
(never the growing text), and the last chunk before ``data: [DONE]`` has
``finish_reason`` and the same ``knowbase`` object; when claim checking changed the
streamed text, ``knowbase.revised`` is true and ``knowbase.answer`` is the checked text.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from knowbase.errors import KnowbaseError
from knowbase.server.app import ApiError, Caller, error_body, error_status, get_state
from knowbase.server.auth import Principal
from knowbase.server.sse import sse, sse_response
from knowbase.server.state import ServerState, kb_from_model

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


class ContentPart(BaseModel):
    """A part of a message's content; only ``text`` parts are read."""

    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request knowbase reads (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=200)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    stop: str | list[str] | None = None
    seed: int | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _usage(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def _question(req: ChatCompletionRequest, limit: int) -> str:
    question = next((m.text() for m in reversed(req.messages) if m.role == "user"), "").strip()
    if not question:
        raise ApiError("no user message with text to answer", status=400, code="no_question", param="messages")
    if len(question) > limit:
        raise ApiError(f"the question is {len(question)} characters; the limit is {limit}", status=400,
                       code="question_too_long", param="messages")
    return question


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None,
           **extra: Any) -> bytes:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return sse(body)


def _stream_error(exc: BaseException) -> bytes:
    if isinstance(exc, KnowbaseError):
        return sse(error_body(exc.message, type_="server_error" if error_status(exc) >= 500 else
                              "invalid_request_error", code=type(exc).__name__))
    return sse(error_body(f"internal error ({type(exc).__name__})", type_="server_error", code="internal_error"))


@router.post("/chat/completions", summary="Chat completion (OpenAI-compatible); kb:NAME answers with citations")
async def chat_completions(req: ChatCompletionRequest, request: Request, who: Principal = Caller) -> Any:
    """Non-streamed: a ``chat.completion`` object. ``stream: true``: SSE chunks, then ``data: [DONE]``."""
    state = get_state(request)
    kb_name = kb_from_model(req.model)
    who.require("ask", kb_name)
    if kb_name is not None:
        return await _kb_completion(state, req, request, kb_name, who)
    return await _model_completion(state, req, request, who)


async def _kb_completion(state: ServerState, req: ChatCompletionRequest, request: Request, kb_name: str,
                         who: Principal) -> Any:
    from knowbase.knowledge.stream import ClientStream

    question = _question(req, state.config.max_question_chars)
    await run_in_threadpool(state.check_kb, kb_name)
    spec = state.resolve_model_name(None)
    model = await run_in_threadpool(state.chat_model, spec)
    ticket = state.queue.ticket_for(model.backend.backend_name)
    cid, created = _completion_id(), int(time.time())

    if not req.stream:
        def run() -> Any:
            ticket.acquire()
            try:
                with state.kb(kb_name) as base:
                    return base.ask(question, model=model)
            finally:
                ticket.release()

        try:
            answer = await run_in_threadpool(run)
        finally:
            ticket.release()
        state.spend(who.key_id, answer.usage)
        data = answer.to_dict()
        return {"id": cid, "object": "chat.completion", "created": created, "model": req.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                             "finish_reason": "stop"}],
                "usage": _usage(answer.usage) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "knowbase": {**data, "revised": False}}

    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def events() -> Iterator[bytes]:
        try:
            ticket.acquire()
            yield _chunk(cid, created, req.model, {"role": "assistant", "content": ""})
            with state.kb(kb_name) as base:
                stream = ClientStream(base.ask_stream(question, model=model))
                try:
                    for event in stream:
                        if event.kind == "delta":
                            yield _chunk(cid, created, req.model, {"content": event.text})
                        elif event.kind == "answer" and event.answer is not None:
                            state.spend(who.key_id, event.answer.usage)
                            extra: dict[str, Any] = {"knowbase": {**event.answer.to_dict(),
                                                                  "revised": stream.revised}}
                            if include_usage:
                                extra["usage"] = _usage(event.answer.usage)
                            yield _chunk(cid, created, req.model, {}, "stop", **extra)
                finally:  # closed (generation ended) before the knowledge base goes back to the pool
                    stream.close()
            yield sse("[DONE]")
        except Exception as exc:  # sent to the client as an error message; the stream then ends
            yield _stream_error(exc)
            yield sse("[DONE]")
        finally:
            ticket.release()

    return sse_response(request, events(), ticket.release, headers={"X-Queue-Position": str(ticket.position)})


async def _model_completion(state: ServerState, req: ChatCompletionRequest, request: Request,
                            who: Principal) -> Any:
    from knowbase.models.base import Message

    spec = state.resolve_model_name(req.model)
    model = await run_in_threadpool(state.chat_model, spec)
    for m in req.messages:
        if len(m.text()) > state.config.max_question_chars * 4:
            raise ApiError("a message is too long", status=400, code="message_too_long", param="messages")
    messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in req.messages]
    stop = [req.stop] if isinstance(req.stop, str) else req.stop
    overrides: dict[str, Any] = {"temperature": req.temperature, "top_p": req.top_p, "seed": req.seed,
                                 "max_tokens": req.max_completion_tokens or req.max_tokens, "stop": stop}
    ticket = state.queue.ticket_for(model.backend.backend_name)
    cid, created = _completion_id(), int(time.time())

    if not req.stream:
        def run() -> Any:
            ticket.acquire()
            try:
                return model.chat(messages, **overrides)
            finally:
                ticket.release()

        try:
            result = await run_in_threadpool(run)
        finally:
            ticket.release()
        state.spend(who.key_id, result.usage)
        return {"id": cid, "object": "chat.completion", "created": created, "model": spec,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "finish_reason": result.finish_reason}],
                "usage": _usage(result.usage)}

    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def events() -> Iterator[bytes]:
        stream = None
        try:
            ticket.acquire()
            yield _chunk(cid, created, spec, {"role": "assistant", "content": ""})
            stream = model.stream(messages, **overrides)
            for delta in stream:
                yield _chunk(cid, created, spec, {"content": delta})
            result = stream.result
            state.spend(who.key_id, result.usage if result is not None else None)
            extra = {"usage": _usage(result.usage)} if include_usage and result is not None else {}
            yield _chunk(cid, created, spec, {}, result.finish_reason if result is not None else "stop", **extra)
            yield sse("[DONE]")
        except Exception as exc:  # sent to the client as an error message; the stream then ends
            yield _stream_error(exc)
            yield sse("[DONE]")
        finally:
            if stream is not None:
                stream.close()
            ticket.release()

    return sse_response(request, events(), ticket.release, headers={"X-Queue-Position": str(ticket.position)})


@router.get("/models", summary="Models served: chat models and kb:NAME for each knowledge base")
async def list_models(request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ask")
    names = await run_in_threadpool(state.kb_names)
    ids = [*state.config.models, *(f"kb:{n}" for n in names if who.may_use(n))]
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "knowbase"}
                                       for i in ids]}


@router.post("/embeddings", summary="Embeddings (OpenAI-compatible): the configured embedder or kb:NAME's")
async def embeddings(req: EmbeddingRequest, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    kb_name = kb_from_model(req.model)
    who.require("ask", kb_name)
    texts = [req.input] if isinstance(req.input, str) else req.input
    limit = state.config.max_embedding_inputs
    if not texts or len(texts) > limit:
        raise ApiError(f"input must hold 1 to {limit} texts, got {len(texts)}", status=400, code="invalid_input",
                       param="input")
    if any(len(t) > state.config.max_question_chars * 4 for t in texts):
        raise ApiError("an input text is too long", status=400, code="input_too_long", param="input")
    if kb_name is not None:
        spec = await run_in_threadpool(state.with_kb, kb_name, lambda base: base.embedder_spec)
    elif req.model in (state.settings.embedder, "default"):
        spec = state.settings.embedder
    else:
        raise ApiError(f"embedding model {req.model!r} is not served here; use kb:NAME or "
                       f"{state.settings.embedder!r}", status=404, code="model_not_found", param="model")
    embedder = await run_in_threadpool(state.embedder, spec)
    if req.dimensions is not None and req.dimensions != embedder.dim:
        raise ApiError(f"this model makes {embedder.dim}-dimensional vectors", status=400, code="invalid_dimensions",
                       param="dimensions")
    vectors = np.asarray(await run_in_threadpool(embedder.embed, texts), dtype=np.float32)
    tokens = sum(embedder.count_tokens(t) for t in texts)
    data = []
    for i, vec in enumerate(vectors):
        value: Any = (base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
                      if req.encoding_format == "base64" else [float(x) for x in vec])
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": req.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
