"""Native API for operations: ingest jobs (poll or stream), traces, feedback, health."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from knowbase.server.app import ApiError, Caller, get_state
from knowbase.server.auth import Principal
from knowbase.server.jobs import Job
from knowbase.server.sse import sse, sse_response

router = APIRouter(prefix="/api", tags=["operations"])


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trace_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=4000)
    kb: str | None = Field(default=None, max_length=100)


def _job(request: Request, job_id: str, who: Principal) -> Job:
    job = get_state(request).jobs.get(job_id)
    if job is None or not who.may_use(job.kb):
        raise ApiError(f"no job {job_id[:60]!r}", status=404, code="job_not_found")
    who.require("ingest", job.kb)
    return job


@router.get("/health", summary="Liveness and the model queue (no key needed)")
async def health(request: Request) -> dict[str, Any]:
    state = get_state(request)
    return {"status": "ok", "queue": {"in_use": state.queue.in_use, "concurrency": state.queue.concurrency,
                                      "max_waiting": state.queue.max_waiting}}


@router.get("/jobs", summary="Ingest jobs of this server process, oldest first (ingest scope)")
async def jobs(request: Request, who: Principal = Caller) -> dict[str, Any]:
    who.require("ingest")
    return {"data": [j.to_dict() for j in get_state(request).jobs.all() if who.may_use(j.kb)]}


@router.get("/jobs/{job_id}", summary="An ingest job: status, last progress event, report")
async def job_status(job_id: str, request: Request, who: Principal = Caller) -> dict[str, Any]:
    return _job(request, job_id, who).to_dict()


@router.get("/jobs/{job_id}/events", summary="An ingest job's progress as SSE (event: progress, then event: done)")
async def job_events(job_id: str, request: Request, who: Principal = Caller) -> Any:
    job = _job(request, job_id, who)

    def events() -> Iterator[bytes]:
        seen = 0
        while True:
            new, finished = job.wait_events(seen, 1.0)
            for ev in new:
                yield sse(ev, "progress")
            seen += len(new)
            if finished and not new:
                yield sse(job.to_dict(), "done")
                return
            if not new:
                yield b": keep-alive\n\n"

    return sse_response(request, events(), lambda: None)


@router.get("/traces", summary="Recent model calls (admin)")
async def traces(request: Request, who: Principal = Caller, limit: int = Query(20, ge=1, le=500)) -> dict[str, Any]:
    from knowbase.tracing.store import TraceStore

    state = get_state(request)
    who.require("admin")
    store = TraceStore(state.settings.logs_path)
    rows = await run_in_threadpool(lambda: store.calls(limit=limit))
    return {"data": [{k: v for k, v in r.items() if k not in ("messages", "options")} for r in rows]}


@router.get("/traces/{trace_id}", summary="One trace: its spans, calls and feedback (admin)")
async def trace(trace_id: str, request: Request, who: Principal = Caller) -> dict[str, Any]:
    from knowbase.tracing.store import TraceStore

    state = get_state(request)
    who.require("admin")
    store = TraceStore(state.settings.logs_path)
    spans = await run_in_threadpool(store.spans, trace_id)
    calls = await run_in_threadpool(lambda: store.calls(trace_id=trace_id, limit=200))
    if not spans and not calls:
        raise ApiError(f"no trace {trace_id[:60]!r}", status=404, code="trace_not_found")
    feedback = await run_in_threadpool(lambda: state.db.feedback(trace_id=trace_id))
    return {"trace_id": trace_id, "spans": spans, "calls": calls, "feedback": feedback}


@router.post("/feedback", status_code=201, summary="Feedback on an answer: up or down and a comment, by trace id")
async def feedback(body: FeedbackRequest, request: Request, who: Principal = Caller) -> dict[str, Any]:
    state = get_state(request)
    who.require("ask", body.kb)
    return await run_in_threadpool(lambda: state.db.add_feedback(trace_id=body.trace_id, rating=body.rating,
                                                                 comment=body.comment, kb=body.kb,
                                                                 key_id=who.key_id))


@router.get("/metrics", summary="Monitoring per model and knowledge base over time (admin)")
async def metrics(request: Request, who: Principal = Caller, hours: float = Query(24, gt=0, le=24 * 90),
                  bucket_minutes: int = Query(60, ge=1, le=24 * 60)) -> dict[str, Any]:
    """Calls, errors, latency p50/p95, tokens per model; asks, abstentions, latency, feedback per
    knowledge base; in buckets of ``bucket_minutes`` over the last ``hours``."""
    import time

    from knowbase.server.monitoring import monitoring

    state = get_state(request)
    who.require("admin")
    since = time.time() - hours * 3600
    feedback = await run_in_threadpool(lambda: state.db.feedback(limit=1_000_000))
    return await run_in_threadpool(lambda: monitoring(state.settings.logs_path, feedback, since=since,
                                                      bucket_seconds=bucket_minutes * 60))


@router.get("/feedback", summary="Feedback, newest first (admin)")
async def list_feedback(request: Request, who: Principal = Caller,
                        limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    state = get_state(request)
    who.require("admin")
    return {"data": await run_in_threadpool(lambda: state.db.feedback(limit=limit))}
