"""The Pod analyzer: container states, scheduling, eviction and the Pod's events; symptoms folded
into their cause."""

from __future__ import annotations

from knowbase.diagnose.analyzers.base import (
    REASONS,
    Context,
    _dict,
    _event_evidence,
    _get,
    _int,
    _list,
    _Raw,
    _str,
    event_reason,
)
from knowbase.diagnose.inputs import K8sObject
from knowbase.diagnose.types import Evidence


def _pod(obj: K8sObject, ctx: Context) -> list[_Raw]:
    st = _dict(obj.data.get("status"))
    out: dict[str, _Raw] = {}

    def add(reason: str, message: str, ev: Evidence) -> None:
        raw = out.setdefault(reason, _Raw(obj.ref, reason, message))
        if ev not in raw.evidence:
            raw.evidence.append(ev)

    if _str(st.get("reason")) == "Evicted":
        add("Evicted", f"evicted: {_str(st.get('message'))}".strip(": "),
            Evidence(f"{obj.source}.status", f"status.reason: Evicted; message: {_str(st.get('message'))}"))
    for c in _list(st.get("conditions")):
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            add("Unschedulable", _str(c.get("message")) or "no node can run the Pod",
                Evidence(f"{obj.source}.status.conditions", f"PodScheduled False Unschedulable: {_str(c.get('message'))}"))
    for key in ("initContainerStatuses", "containerStatuses"):
        for i, cs in enumerate(_list(st.get(key))):
            name = _str(cs.get("name")) or "?"
            where = f"{obj.source}.status.{key}[{i}]"
            waiting = _dict(_get(cs, "state", "waiting"))
            term = _dict(_get(cs, "state", "terminated"))
            last = _dict(_get(cs, "lastState", "terminated"))
            wr = _str(waiting.get("reason"))
            last_text = (f"; last state: terminated {_str(last.get('reason'))} exit code {last.get('exitCode')}"
                         if last else "")
            init = "init container" if key.startswith("init") else "container"
            if wr in REASONS or wr == "ErrImagePull":
                reason = "ImagePullBackOff" if wr == "ErrImagePull" else wr
                if wr == "CrashLoopBackOff" and _str(last.get("reason")) == "OOMKilled":
                    reason = "OOMKilled"
                text = f"{init} {name}: waiting {wr}: {_str(waiting.get('message'))}".rstrip(": ") + last_text
                add(reason, f"{init} {name} is waiting: {wr}" + (
                    f" (last terminated OOMKilled, exit code {last.get('exitCode')})" if reason == "OOMKilled" else ""),
                    Evidence(where, text))
            elif _str(term.get("reason")) == "OOMKilled":
                add("OOMKilled", f"{init} {name} was OOMKilled", Evidence(
                    where, f"{init} {name}: terminated OOMKilled exit code {term.get('exitCode')}"))
            elif term and _int(term.get("exitCode")) != 0 and _str(st.get("phase")) in ("Failed", "Running"):
                add("Error", f"{init} {name} exited with code {term.get('exitCode')}", Evidence(
                    where, f"{init} {name}: terminated {_str(term.get('reason'))} exit code {term.get('exitCode')}"
                           f" {_str(term.get('message'))}".rstrip()))
    for event in ctx.events.get(obj.ref, []):
        ereason = event_reason(event)
        if ereason is None:
            continue
        if ereason == "Error" and "Error" not in out and any(r in out for r in REASONS if r != "Error"):
            ereason = next(iter(out))  # "Error: ..." of a container already found waiting: the same problem
        add(ereason, f"{event.reason}: {event.message}", _event_evidence(event))
    return _fold_pod(list(out.values()))


_ABSORBS: dict[str, tuple[str, ...]] = {
    "OOMKilled": ("CrashLoopBackOff", "Error"),
    "LivenessProbeFailed": ("CrashLoopBackOff", "Error", "ReadinessProbeFailed"),
    "StartupProbeFailed": ("CrashLoopBackOff", "Error", "LivenessProbeFailed", "ReadinessProbeFailed"),
    "CrashLoopBackOff": ("Error",),
    "ImagePullBackOff": ("Error",),
    "InvalidImageName": ("ImagePullBackOff", "Error"),
    "CreateContainerConfigError": ("Error",),
    "RunContainerError": ("Error", "CrashLoopBackOff"),
    "Unschedulable": (),
    "FailedMount": ("Error",),
    "Evicted": ("Error",),
}


def _fold_pod(raws: list[_Raw]) -> list[_Raw]:
    """Fold a Pod's symptoms into their cause (see :data:`_ABSORBS`)."""
    by = {r.reason: r for r in raws}
    for cause, symptoms in _ABSORBS.items():
        if cause not in by:
            continue
        for s in symptoms:
            if s in by and s != cause:
                by[cause].absorb(by.pop(s))
    return list(by.values())
