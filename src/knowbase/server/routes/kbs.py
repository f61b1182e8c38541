"""Native API for knowledge bases: list, create, stats, drop; search; ask (JSON or SSE);
documents (list, upload, remove).

Ask as SSE (``"stream": true``) sends ``event: sources`` (the numbered passages, as soon as
retrieval is done), ``event: delta`` (``{"text": ...}`` increments) and ``event: answer``
(:meth:`Answer.to_dict` plus ``revised``), following :class:`knowbase.knowledge.stream.ClientStream`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.datastructures import UploadFile

from knowbase.errors import KnowbaseError, UserError
from knowbase.server.app import ApiError, Caller, error_body, error_status, get_state
from knowbase.server.auth import Principal
from knowbase.server.sse import sse, sse_response
from knowbase.server.uploads import check_upload

router = APIRouter(prefix="/api/kbs", tags=["knowledge bases"])



class CreateKB(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=8000)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filter: dict[str, Any] | None = None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=8000)
    k: int = Field(default=4, ge=1, le=20)
    extractive: StrictBool = False
    stream: StrictBool = False
    verify: StrictBool = True
    model: str | None = Field(default=None, max_length=200)


def _check_name(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise ApiError(f"invalid knowledge base name {name[:100]!r}", status=400, code="invalid_name", param="name")
    return name


@router.get("", summary="Knowledge bases this key may use")
async def list_kbs(request: Request, who: Principal = Caller) -> dict[str, Any]:
    from knowbase.knowledge.base import KnowledgeBase

    state = get_state(request)
    who.require("ask")
    infos = await run_in_threadpool(KnowledgeBase.list, state.settings)
    served = set(await run_in_threadpool(state.kb_names))
    return {"data": [{"name": i.name, "embedder": i.embedder, "documents": i.documents, "chunks": i.chunks,
                      "bytes": i.bytes} for i in infos if i.name in served and who.may_use(i.name)]}


@router.post("", status_code=201, summary="Create a knowledge base (admin) with the configured embedder")
async def create_kb(body: CreateKB, request: Request, who: Principal = Caller) -> dict[str, Any]:
    from knowbase.knowledge.base import KnowledgeBase

    state = get_state(request)
    who.require("admin", body.name)
    if state.config.kbs and body.name not in state.config.kbs:
        raise ApiError(f"this server serves only {', '.join(state.config.kbs)}", status=403, code="not_served")

    def create() -> dict[str, Any]:
        emb = state.embedder(state.settings.embedder)
        base = KnowledgeBase.create(body.name, embedder=emb, settings=state.settings)
        base.close()
        return state.with_kb(body.name, _stats)

    return await run_in_threadpool(create)


def _stats(base: Any) -> dict[str, Any]:
    stats: dict[str, Any] = base.stats()
    stats.pop("path", None)  # no server paths in replies
    return stats


@router.get("/{name}", summary="Statistics of a knowledge base")
async def kb_stats(name: str, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ask", _check_name(name))
    return await run_in_threadpool(state.with_kb, name, _stats)


@router.delete("/{name}", summary="Drop a knowledge base (admin)")
async def drop_kb(name: str, request: Request, who: Principal = Caller) -> dict[str, Any]:
    from knowbase.knowledge.base import KnowledgeBase

    state = get_state(request)
    who.require("admin", _check_name(name))
    await run_in_threadpool(state.check_kb, name)  # 404 when not served
    state.forget_kb(name)
    await run_in_threadpool(KnowledgeBase.drop, name, state.settings)
    await run_in_threadpool(shutil.rmtree, state.uploads_dir(name), True)
    return {"dropped": name}


@router.post("/{name}/search", summary="Search: the k best passages")
async def search(name: str, body: SearchRequest, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ask", _check_name(name))
    hits: list[Any] = await run_in_threadpool(
        state.with_kb, name, lambda base: base.search(body.query, k=body.k, mode=body.mode, filter=body.filter))
    return {"query": body.query, "hits": [h.to_dict() for h in hits]}


@router.post("/{name}/ask", summary="Ask: a cited answer (JSON, or SSE events sources/delta/answer)")
async def ask(name: str, body: AskRequest, request: Request, who: Principal = Caller) -> Any:
    from knowbase.knowledge.stream import ClientStream

    state = get_state(request)
    who.require("ask", _check_name(name))
    await run_in_threadpool(state.check_kb, name)
    model = None
    if not body.extractive:
        spec = state.resolve_model_name(body.model)
        model = await run_in_threadpool(state.chat_model, spec)
    ticket = state.queue.ticket_for(model.backend.backend_name if model is not None else None)
    kwargs: dict[str, Any] = {"model": model, "k": body.k, "extractive": body.extractive, "verify": body.verify}

    if not body.stream:
        def run() -> dict[str, Any]:
            ticket.acquire()
            try:
                with state.kb(name) as base:
                    answer = base.ask(body.question, **kwargs)
                state.spend(who.key_id, answer.usage)
                data: dict[str, Any] = answer.to_dict()
                return data
            finally:
                ticket.release()

        try:
            return {**await run_in_threadpool(run), "revised": False}
        finally:
            ticket.release()

    def events() -> Iterator[bytes]:
        try:
            ticket.acquire()
            with state.kb(name) as base:
                stream = ClientStream(base.ask_stream(body.question, **kwargs))
                try:
                    yield from _ask_events(stream, lambda usage: state.spend(who.key_id, usage))
                finally:  # closed (generation ended) before the knowledge base goes back to the pool
                    stream.close()
        except Exception as exc:  # sent as an error event; the stream then ends
            if isinstance(exc, KnowbaseError):
                body_ = error_body(exc.message, type_="server_error" if error_status(exc) >= 500 else
                                   "invalid_request_error", code=type(exc).__name__)
            else:
                body_ = error_body(f"internal error ({type(exc).__name__})", type_="server_error",
                                   code="internal_error")
            yield sse(body_, "error")
        finally:
            ticket.release()

    return sse_response(request, events(), ticket.release, headers={"X-Queue-Position": str(ticket.position)})


def _ask_events(stream: Any, on_usage: Callable[[Any], None]) -> Iterator[bytes]:
    """SSE messages for a :class:`ClientStream`: ``sources``, ``delta``..., ``answer``."""
    for event in stream:
        if event.kind == "sources":
            yield sse({"abstained": event.abstained,
                       "passages": [{"n": i, **p.to_dict()} for i, p in enumerate(event.passages, start=1)]},
                      "sources")
        elif event.kind == "delta":
            yield sse({"text": event.text}, "delta")
        elif event.answer is not None:
            on_usage(event.answer.usage)
            yield sse({**event.answer.to_dict(), "revised": stream.revised}, "answer")


@router.get("/{name}/documents", summary="Documents of a knowledge base")
async def documents(name: str, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ask", _check_name(name))
    rows = await run_in_threadpool(state.with_kb, name, lambda base: base.documents())
    return {"data": [dataclasses.asdict(r) for r in rows]}


@router.delete("/{name}/documents/{doc_id}", summary="Remove a document by id (ingest scope)")
async def remove_document(name: str, doc_id: int, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ingest", _check_name(name))
    try:
        row = await run_in_threadpool(state.with_kb, name, lambda base: base.remove(doc_id))
    except UserError as exc:
        raise ApiError(exc.message, status=404, code="document_not_found", param="doc_id") from exc
    copy = Path(row.path)
    if copy.parent == state.uploads_dir(name):  # the server's own copy of an upload goes too
        copy.unlink(missing_ok=True)
    return {"removed": dataclasses.asdict(row)}


@router.post("/{name}/documents", status_code=202,
             summary="Upload documents (multipart field 'files'); starts an ingest job (ingest scope)")
async def upload(name: str, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ingest", _check_name(name))
    await run_in_threadpool(state.check_kb, name)
    cfg = state.config
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError("upload documents as multipart/form-data in the field 'files'", status=415,
                       code="not_multipart")
    try:
        form = await request.form(max_files=cfg.max_upload_files, max_fields=10,
                                  max_part_size=1024 * 1024)
    except KnowbaseError:
        raise
    except Exception as exc:  # Starlette's MultiPartException and friends: a malformed or oversized form
        raise ApiError(f"bad multipart form: {getattr(exc, 'message', None) or exc}", status=400,
                       code="bad_form") from exc
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not files:
        raise ApiError("no files in the form field 'files'", status=400, code="no_files", param="files")
    checked: list[tuple[str, bytes]] = []
    for f in files:
        data = await f.read(cfg.max_upload_bytes + 1)
        checked.append((check_upload(f.filename, data, max_bytes=cfg.max_upload_bytes), data))
    names = [n for n, _ in checked]
    if len(set(names)) != len(names):
        raise ApiError("two uploaded files have the same name", status=400, code="duplicate_name", param="files")
    folder = state.uploads_dir(name)

    def save() -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for fname, data in checked:
            target = folder / fname
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)  # a crash leaves the old file or the new one
            paths.append(str(target))
        return paths

    paths = await run_in_threadpool(save)
    job = state.jobs.start(name, lambda: state.kb(name), paths, names)
    return job.to_dict()
