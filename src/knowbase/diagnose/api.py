"""``diagnose()``: inputs or a cluster -> analyzers -> (anonymise -> docs -> explain -> restore) -> Diagnosis."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any

from knowbase.config import ModelSpec, Settings
from knowbase.diagnose.analyzers import analyze
from knowbase.diagnose.inputs import Snapshot, read_inputs
from knowbase.diagnose.types import Diagnosis
from knowbase.safety.datafiles import DEFAULT_LIMITS, DataLimits

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel

IN_PROCESS_BACKENDS = frozenset({"llamacpp", "fake"})
"""Chat backends that run inside this process; any other model gets anonymised text by default."""


def needs_anonymizing(model: str) -> bool:
    """True unless the model string names an in-process backend (``llamacpp:``, ``fake``); an
    unknown plugin backend is treated as remote."""
    from knowbase.models.registry import _ALIASES

    backend = ModelSpec.parse(model).backend
    return _ALIASES.get(backend, backend) not in IN_PROCESS_BACKENDS


def diagnose(inputs: Sequence[str | os.PathLike[str]] = (), *, snapshot: Snapshot | None = None,
             context: str | None = None, namespace: str | None = None, explain: bool = False,
             model: str | ChatModel | None = None, kb: str | KnowledgeBase | None = None, language: str = "en",
             max_chars: int | None = None, kinds: Sequence[str] | None = None, anonymize: bool | None = None,
             settings: Settings | None = None, stdin: IO[bytes] | None = None,
             limits: DataLimits = DEFAULT_LIMITS) -> Diagnosis:
    """Diagnose Kubernetes problems from kubectl output files, a snapshot or a live cluster.

    Example::

        from knowbase.diagnose import diagnose

        d = diagnose(["pods.json", "events.txt"])          # analyzers only, no model
        for f in d.findings:
            print(f.severity, f.kind, f.name, f.reason)
        d = diagnose(["pods.json"], explain=True, model="openai:gpt-4o-mini@https://api.openai.com/v1")
        print(d.findings[0].explanation.solution)          # names restored; the model saw tokens

    Args:
        inputs: files (``-`` for stdin) of kubectl JSON/YAML, describe text, events, logs.
        snapshot: already-read inputs (added to ``inputs``).
        context: read a live cluster through this kubeconfig context (``""``: the current
            context), read-only (:mod:`knowbase.diagnose.cluster`).
        namespace: with ``context``, read only this namespace.
        explain: explain each problem with a model (``Error:`` / ``Solution:``, cited).
        model: model string or ChatModel; default the configured model.
        kb: knowledge base (name, path or object) for documentation; default ``k8s-sample``,
            built from the bundled sample on first use.
        language: ``en`` or ``zh``.
        max_chars: most characters of each solution (default 280, as K8sGPT).
        kinds: keep only findings of these Kinds (``--filter``).
        anonymize: mask names before the model sees them; default: on unless the model runs
            in-process (``llamacpp:``, ``fake``).
        settings: default :meth:`Settings.load`.
        stdin: the stream for ``-``.
        limits: size/depth/YAML limits per input.

    Returns:
        a :class:`~knowbase.diagnose.types.Diagnosis` (``exit_code()``: 2 when an input could
        not be read, 1 when problems were found, 0 otherwise).

    Raises:
        UserError: nothing to read, an unknown language, a bad model string.
        KnowbaseError: the model, the knowledge base or the cluster failed.
    """
    t0 = time.perf_counter()
    settings = settings or Settings.load()
    snap = read_inputs([os.fspath(p) for p in inputs], limits=limits, stdin=stdin) if inputs else Snapshot()
    if snapshot is not None:
        snap.extend(snapshot)
    if context is not None:
        from knowbase.diagnose.cluster import read_cluster

        snap.extend(read_cluster(context or None, namespace=namespace))
    if not snap.inputs and not snap.errors:
        from knowbase.errors import UserError

        raise UserError("nothing to diagnose: give files, - for stdin, or a cluster context", field="inputs")
    findings = analyze(snap, kinds=kinds)
    timings = {"analyze": time.perf_counter() - t0}
    anonymized = False
    if explain and any(f.severity != "info" for f in findings):
        findings, anonymized = _explain(findings, snap, settings=settings, model=model, kb=kb, language=language,
                                        max_chars=max_chars, anonymize=anonymize)
        timings["explain"] = time.perf_counter() - t0 - timings["analyze"]
    timings["total"] = time.perf_counter() - t0
    return Diagnosis(tuple(findings), tuple(snap.inputs), tuple(snap.errors), objects=len(snap.objects),
                     events=len(snap.events), logs=len(snap.logs), anonymized=anonymized, timings=timings)


def _explain(findings: list[Any], snap: Snapshot, *, settings: Settings, model: Any, kb: Any, language: str,
             max_chars: int | None, anonymize: bool | None) -> tuple[list[Any], bool]:
    from knowbase.diagnose.anonymise import Anonymizer
    from knowbase.diagnose.explain import DEFAULT_MAX_CHARS, Explainer
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.cache import ResponseCache
    from knowbase.models.registry import check_chat_spec, get_chat_model
    from knowbase.tracing.context import current_span, span

    spec = model.spec if model is not None and not isinstance(model, str) else (model or settings.chat_model)
    if isinstance(model, str) or model is None:
        check_chat_spec(spec)
    masked = needs_anonymizing(spec) if anonymize is None else anonymize
    anonymizer = None
    if masked:
        anonymizer = Anonymizer.for_home(settings.home)
        anonymizer.collect(snap)
    opened = False
    if kb is None:
        from knowbase.knowledge.sample import open_sample_kb

        base, opened = open_sample_kb(settings), True
    elif isinstance(kb, str | os.PathLike):
        base, opened = KnowledgeBase.open(kb, settings=settings), True
    else:
        base = kb
    chat = (lambda: get_chat_model(spec, settings=settings)) if model is None or isinstance(model, str) else \
        (lambda: model)
    explainer = Explainer(model=chat, search=lambda q, k: base.search(q, k=k), doc_freqs=base.store.doc_freqs,
                          anonymizer=anonymizer, language=language, max_chars=max_chars or DEFAULT_MAX_CHARS,
                          cache=ResponseCache(settings.home / "cache.db"))
    store = None
    if settings.tracing and current_span() is None:
        from knowbase.tracing.store import TraceStore

        store = TraceStore(settings.logs_path)
    out = []
    try:
        with span("diagnose", kind="diagnose", store=store, findings=len(findings), anonymized=masked,
                  language=language):
            for f in findings:
                out.append(replace(f, explanation=explainer.explain(f)) if f.severity != "info" else f)
    finally:
        if opened:
            base.close()
    return out, masked
