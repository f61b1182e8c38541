"""Ingest jobs: uploads are ingested in a background thread whose progress can be polled
(``GET /api/jobs/ID``) or streamed (``GET /api/jobs/ID/events``, SSE).

Jobs on the same knowledge base run one after another (a per-knowledge-base lock); jobs
live in memory for the life of the server process (the uploaded files stay on disk, so an
interrupted job can be re-run by uploading again or with ``knowbase kb ingest``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.knowledge.ingest import IngestProgress


@dataclass
class Job:
    """One ingest job.

    Attributes:
        id: ``job_`` + hex. kb: knowledge base name. files: uploaded file names.
        status: ``queued``, ``running``, ``done`` or ``failed``.
        events: progress events so far (dicts: files_done, files_total, chunks, seconds, path, status).
        report: the :class:`IngestReport` as a dict, when done. error: the failure message.
    """

    id: str
    kb: str
    files: list[str]
    status: str = "queued"
    events: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def to_dict(self) -> dict[str, Any]:
        with self.cond:
            last = self.events[-1] if self.events else None
            return {"id": self.id, "kb": self.kb, "files": list(self.files), "status": self.status,
                    "progress": last, "report": self.report, "error": self.error, "created": self.created}

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def wait_events(self, start: int, timeout: float) -> tuple[list[dict[str, Any]], bool]:
        """Events from index ``start`` (waits up to ``timeout`` s for new ones); and whether the job is finished."""
        with self.cond:
            if len(self.events) <= start and not self.finished:
                self.cond.wait(timeout)
            return list(self.events[start:]), self.finished


class IngestJobs:
    """Start and look up ingest jobs (one thread per job)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._kb_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def start(self, kb: str, lease: Callable[[], AbstractContextManager[KnowledgeBase]], paths: list[str],
              files: list[str]) -> Job:
        """Ingest ``paths`` into knowledge base ``kb`` in a background thread; returns the job at once.

        Args:
            lease: ``() -> context manager of a KnowledgeBase`` held for the job's duration.
        """
        job = Job("job_" + secrets.token_hex(8), kb, files)
        with self._lock:
            self._jobs[job.id] = job
            kb_lock = self._kb_locks.setdefault(kb, threading.Lock())
        threading.Thread(target=self._run, args=(job, lease, paths, kb_lock), name=f"ingest-{job.id}",
                         daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self, kb: str | None = None) -> list[Job]:
        """Jobs of this process (of one knowledge base, if given), oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if kb is None or j.kb == kb]

    @staticmethod
    def _run(job: Job, lease: Callable[[], AbstractContextManager[KnowledgeBase]], paths: list[str],
             kb_lock: threading.Lock) -> None:
        def progress(p: IngestProgress) -> None:
            with job.cond:
                job.events.append({"files_done": p.files_done, "files_total": p.files_total, "chunks": p.chunks,
                                   "seconds": round(p.seconds, 3), "path": p.path, "status": p.status})
                job.cond.notify_all()

        with kb_lock:
            with job.cond:
                job.status = "running"
                job.cond.notify_all()
            try:
                with lease() as base:
                    report = base.ingest(paths, progress=progress).to_dict()
            except Exception as exc:  # reported on the job, never lost in the thread
                with job.cond:
                    job.status, job.error = "failed", str(exc) or type(exc).__name__
                    job.cond.notify_all()
                return
            with job.cond:
                job.report = report
                job.status = "failed" if report["failed"] and not (report["added"] or report["updated"]
                                                                   or report["skipped"]) else "done"
                job.cond.notify_all()
