"""The Node analyzer: Ready and pressure conditions, and the node's events."""

from __future__ import annotations

from knowbase.diagnose.analyzers.base import (
    Context,
    _event_evidence,
    _get,
    _list,
    _Raw,
    _str,
    event_reason,
)
from knowbase.diagnose.inputs import K8sObject
from knowbase.diagnose.types import Evidence

_PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def _node(obj: K8sObject, ctx: Context) -> list[_Raw]:
    out = []
    for c in _list(_get(obj.data, "status", "conditions")):
        ctype, cstat, creason, msg = (_str(c.get(k)) for k in ("type", "status", "reason", "message"))
        ev = Evidence(f"{obj.source}.status.conditions", f"{ctype} {cstat} {creason}: {msg}".replace(" : ", ": "))
        if ctype == "Ready" and cstat != "True":
            why = "the kubelet stopped posting node status (NodeStatusUnknown)" if cstat == "Unknown" else msg
            out.append(_Raw(obj.ref, "NotReady", f"node is NotReady: {why}".strip(": "), [ev]))
        elif ctype in _PRESSURE and cstat == "True":
            out.append(_Raw(obj.ref, ctype, msg or ctype, [ev]))
    for event in ctx.events.get(obj.ref, []):
        ereason = event_reason(event)
        hit = next((r for r in out if r.reason == ereason), None)
        if hit is not None:
            hit.evidence.append(_event_evidence(event))
        elif ereason in ("MemoryPressure", "DiskPressure", "OOMKilled", "NotReady"):
            out.append(_Raw(obj.ref, ereason, event.message, [_event_evidence(event)]))
    return out
