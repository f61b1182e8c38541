"""The PersistentVolumeClaim analyzer."""

from __future__ import annotations

from knowbase.diagnose.analyzers.base import (
    Context,
    _event_evidence,
    _get,
    _Raw,
    _str,
)
from knowbase.diagnose.inputs import K8sObject
from knowbase.diagnose.types import Evidence


def _pvc(obj: K8sObject, ctx: Context) -> list[_Raw]:
    phase = _str(_get(obj.data, "status", "phase"))
    events = ctx.events.get(obj.ref, [])
    out: list[_Raw] = []
    if phase == "Lost":
        out.append(_Raw(obj.ref, "ClaimLost", "the claim's PersistentVolume is gone",
                        [Evidence(f"{obj.source}.status", "phase: Lost")]))
    elif phase == "Pending":
        # FailedBinding comes as a Normal event from the persistentvolume-controller
        warn = [e for e in events if e.type == "Warning" or e.reason == "FailedBinding"]
        reason = next((e.reason for e in warn if e.reason in ("ProvisioningFailed", "FailedBinding")), None)
        message = next((e.message for e in warn if e.reason in ("ProvisioningFailed", "FailedBinding")),
                       "the claim is Pending")
        raw = _Raw(obj.ref, reason or "Pending", message, [Evidence(f"{obj.source}.status", "phase: Pending")])
        raw.evidence += [_event_evidence(e) for e in warn]
        out.append(raw)
    sc = _str(_get(obj.data, "spec", "storageClassName"))
    if sc and ctx.knows("StorageClass") and not ctx.find("StorageClass", "", sc):
        if out and out[0].reason in ("Pending", "ProvisioningFailed"):
            out[0].reason = "StorageClassNotFound"
            out[0].message = f"StorageClass {sc} does not exist"
            out[0].evidence.append(Evidence(f"{obj.source}.spec.storageClassName", f"storageClassName: {sc}"))
        elif not out:
            out.append(_Raw(obj.ref, "StorageClassNotFound", f"StorageClass {sc} does not exist", [
                Evidence(f"{obj.source}.spec.storageClassName", f"storageClassName: {sc}")]))
    return out
