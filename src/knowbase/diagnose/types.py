"""Shared diagnosis types: :class:`ObjectRef`, :class:`Evidence`, :class:`Explanation`,
:class:`Finding` and :class:`Diagnosis`. Frozen dataclasses with ``to_dict()``; the JSON
output of ``knowbase diagnose --output json`` is :meth:`Diagnosis.to_dict`.

JSON schema (version 1)::

    {
      "version": 1,
      "problems": true,                      # any finding of severity critical or warning
      "summary": {"findings": 2, "critical": 1, "warning": 1, "info": 0,
                  "objects": 14, "events": 9, "logs": 1},
      "inputs": ["pods.json", "events.txt"], # files read ("-" for stdin, "cluster:CONTEXT")
      "anonymized": false,                   # names were masked before any model call
      "findings": [{
        "kind": "Deployment", "namespace": "shop", "name": "web",
        "reason": "CrashLoopBackOff",        # see knowbase.diagnose.analyzers.REASONS
        "severity": "critical",              # critical | warning | info
        "message": "container app is in CrashLoopBackOff ...",
        "evidence": [{"source": "pods.json: items[2].status.containerStatuses[0]", "text": "..."}],
        "related": [{"kind": "Pod", "namespace": "shop", "name": "web-5d9c7-x2v4q"}],
        "explanation": null | {              # only with --explain
          "error": "...", "solution": "...", "text": "...", "language": "en",
          "citations": [{"n": 1, "path": "...", "section": ["..."], "chunk_id": 7}],
          "invalid_citations": [], "model": "llamacpp:qwen2.5-coder-1.5b", "cached": false,
          "truncated": false
        }
      }],
      "errors": [{"source": "bad.yaml", "message": "line 3: ..."}],  # inputs that could not be read
      "timings": {"analyze": 0.004, "explain": 21.3, "total": 21.3}   # seconds
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """A Kubernetes object: ``kind``, ``namespace`` (empty for cluster-scoped kinds) and ``name``."""

    kind: str
    namespace: str
    name: str

    def label(self) -> str:
        """``Kind namespace/name`` (``Kind name`` when cluster-scoped)."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


@dataclass(frozen=True, slots=True)
class Evidence:
    """One line a finding came from: ``text`` as read, ``source`` the file and line or field
    (``pods.json: items[2].status``, ``events.txt:14``)."""

    source: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "text": self.text}


@dataclass(frozen=True, slots=True)
class Explanation:
    """A model's explanation of one finding, names restored.

    Attributes:
        error: the text after ``Error:``.
        solution: the text after ``Solution:`` (at most the length limit, citations excluded).
        text: the whole cleaned answer (citation markers checked against the passages).
        citations: the documentation passages cited (:class:`knowbase.knowledge.types.Citation`).
        invalid_citations: numbers cited that were not given (removed from the text).
        language: ``en`` or ``zh``.
        model: the model string that wrote it.
        cached: served from the diagnosis cache.
        truncated: the solution was cut to the length limit.
        attributed: the model cited nothing and knowbase attributed the passage sharing most words.
    """

    error: str
    solution: str
    text: str
    citations: tuple[Any, ...] = ()
    invalid_citations: tuple[int, ...] = ()
    language: str = "en"
    model: str = ""
    cached: bool = False
    truncated: bool = False
    attributed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.error, "solution": self.solution, "text": self.text, "language": self.language,
            "citations": [{"n": c.n, "path": c.chunk.path, "section": list(c.chunk.section),
                           "chunk_id": c.chunk.chunk_id} for c in self.citations],
            "invalid_citations": list(self.invalid_citations), "model": self.model, "cached": self.cached,
            "truncated": self.truncated, "attributed": self.attributed,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, grouped by root cause.

    Attributes:
        kind, namespace, name: the object the problem belongs to (for a Deployment whose
            Pods all crash: the Deployment).
        reason: a short CamelCase reason (``CrashLoopBackOff``, ``NoEndpoints``...; the list
            is :data:`knowbase.diagnose.analyzers.REASONS`).
        severity: ``critical``, ``warning`` or ``info``.
        message: one line for a person.
        evidence: the lines it came from, in input order.
        related: other objects with the same root cause (the Deployment's Pods, a Service
            selecting them).
        explanation: the model's explanation (``--explain`` only).
    """

    kind: str
    namespace: str
    name: str
    reason: str
    severity: Severity
    message: str
    evidence: tuple[Evidence, ...] = ()
    related: tuple[ObjectRef, ...] = ()
    explanation: Explanation | None = None

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "namespace": self.namespace, "name": self.name, "reason": self.reason,
            "severity": self.severity, "message": self.message,
            "evidence": [e.to_dict() for e in self.evidence],
            "related": [r.to_dict() for r in self.related],
            "explanation": self.explanation.to_dict() if self.explanation else None,
        }


@dataclass(frozen=True, slots=True)
class InputError:
    """An input that could not be read: ``source`` (file, ``-``), ``message`` (names line or field)."""

    source: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "message": self.message}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The result of :func:`knowbase.diagnose.diagnose`.

    Attributes:
        findings: most severe first, then by kind, namespace, name.
        inputs: sources read.
        errors: inputs that could not be read (the rest were analysed).
        objects, events, logs: how many of each were analysed.
        anonymized: names were masked before any model call.
    """

    findings: tuple[Finding, ...]
    inputs: tuple[str, ...] = ()
    errors: tuple[InputError, ...] = ()
    objects: int = 0
    events: int = 0
    logs: int = 0
    anonymized: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> bool:
        """True when a finding of severity ``critical`` or ``warning`` was made."""
        return any(f.severity != "info" for f in self.findings)

    def exit_code(self) -> int:
        """2 when an input could not be read, 1 when problems were found, else 0."""
        return 2 if self.errors else 1 if self.problems else 0

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON form (see this module's docstring)."""
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITY_ORDER}
        return {
            "version": 1, "problems": self.problems,
            "summary": {"findings": len(self.findings), **counts, "objects": self.objects, "events": self.events,
                        "logs": self.logs},
            "inputs": list(self.inputs), "anonymized": self.anonymized,
            "findings": [f.to_dict() for f in self.findings],
            "errors": [e.to_dict() for e in self.errors],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
