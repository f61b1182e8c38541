"""``POST /v1/diagnose``: Kubernetes problems in kubectl output sent as text, explained on request.

The body names one or more documents (``kubectl get -o json|yaml``, ``describe``,
``get events``, ``get pods`` tables, container logs; the format is detected from the text as
``knowbase diagnose`` does) and the CLI's options. The reply is
:meth:`knowbase.diagnose.Diagnosis.to_dict`, the JSON of ``knowbase diagnose --output json``.

Each document is refused above :attr:`ServerConfig.max_document_bytes` (the CLI's per-file
limit) before any is parsed (413); a document that is binary or malformed JSON/YAML is a 400
naming the document and the line. Objects missing a field inside a readable document are
listed in the reply's ``errors``, as the CLI does. With ``explain``, the model is one the
server serves (``model``, default the first), its work waits in the model queue like ``ask``,
the documentation comes from knowledge base ``kb`` (default ``k8s-sample``, which must exist:
the server does not build it), and names are masked unless the model runs in-process.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from knowbase.errors import InputFileError
from knowbase.server.app import ApiError, Caller, get_state
from knowbase.server.auth import Principal
from knowbase.server.queue import Ticket

router = APIRouter(prefix="/v1", tags=["diagnosis"])


class DiagnoseDocument(BaseModel):
    """One input: ``name`` (as a file name: errors and evidence cite it, a log's name is matched
    against Pod names) and ``text`` (what kubectl printed)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    text: str


class DiagnoseRequest(BaseModel):
    """The body of ``POST /v1/diagnose`` (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")
    documents: list[DiagnoseDocument] = Field(min_length=1, max_length=100)
    explain: StrictBool = False
    model: str | None = Field(default=None, max_length=200)
    kb: str | None = Field(default=None, max_length=100)
    language: Literal["en", "zh"] = "en"
    max_chars: int = Field(default=280, ge=20, le=4000)
    filter: list[str] | None = Field(default=None, max_length=50)
    anonymize: StrictBool | None = None


@router.post("/diagnose", summary="Kubernetes problems in kubectl output; Error / Solution with explain")
async def diagnose(body: DiagnoseRequest, request: Request, who: Principal = Caller) -> dict[str, Any]:
    """The diagnosis as ``knowbase diagnose --output json`` prints it (scope ``ask``)."""
    from dataclasses import replace

    from knowbase.diagnose import diagnose as run
    from knowbase.diagnose.inputs import read_texts
    from knowbase.knowledge.sample import SAMPLE_KB
    from knowbase.safety.datafiles import DEFAULT_LIMITS

    state = get_state(request)
    kb_name = body.kb or SAMPLE_KB
    who.require("ask", kb_name if body.explain or body.kb else None)
    names = [d.name for d in body.documents]
    if len(set(names)) != len(names):
        raise ApiError("two documents have the same name", status=400, code="duplicate_name", param="documents")
    if any(len(k) > 100 or not k.strip() for k in body.filter or ()):
        raise ApiError("a filter Kind is empty or longer than 100 characters", status=400, code="invalid_value",
                       param="filter")
    spec = state.resolve_model_name(body.model)  # 404 for a model not served, explain or not
    if body.explain or body.kb:
        await run_in_threadpool(state.check_kb, kb_name)  # 404 before any parsing or model loading
    limits = replace(DEFAULT_LIMITS, max_bytes=state.config.max_document_bytes)
    try:
        snap = await run_in_threadpool(read_texts, [(d.name, d.text) for d in body.documents], limits=limits)
    except InputFileError as exc:
        index = exc.detail.get("index", 0)
        too_large = exc.detail.get("reason") == "size"
        raise ApiError(exc.message, status=413 if too_large else 400,
                       code="document_too_large" if too_large else "invalid_document",
                       param=f"documents[{index}].text") from exc
    kwargs: dict[str, Any] = {"snapshot": snap, "kinds": body.filter or None, "settings": state.settings}
    if not body.explain:
        d = await run_in_threadpool(lambda: run(**kwargs))
        result: dict[str, Any] = d.to_dict()
        return result
    model = await run_in_threadpool(state.chat_model, spec)
    ticket: Ticket = state.queue.ticket_for(model.backend.backend_name)

    def explain() -> dict[str, Any]:
        ticket.acquire()
        try:
            with state.kb(kb_name) as base:
                d = run(explain=True, model=model, kb=base, language=body.language, max_chars=body.max_chars,
                        anonymize=body.anonymize, **kwargs)
            out: dict[str, Any] = d.to_dict()
            return out
        finally:
            ticket.release()

    try:
        return await run_in_threadpool(explain)
    finally:
        ticket.release()
