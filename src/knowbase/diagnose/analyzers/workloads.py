"""Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and CronJob analyzers."""

from __future__ import annotations

import re

from knowbase.diagnose.analyzers.base import (
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


def _workload_replicas(obj: K8sObject, ctx: Context) -> list[_Raw]:
    """Deployment, StatefulSet and ReplicaSet: unavailable replicas and failure conditions."""
    spec, st = _dict(obj.data.get("spec")), _dict(obj.data.get("status"))
    out: list[_Raw] = []
    for c in _list(st.get("conditions")):
        ctype, cstat, creason = _str(c.get("type")), _str(c.get("status")), _str(c.get("reason"))
        ev = Evidence(f"{obj.source}.status.conditions", f"{ctype} {cstat} {creason}: {_str(c.get('message'))}")
        if ctype == "Progressing" and cstat == "False" and creason == "ProgressDeadlineExceeded":
            out.append(_Raw(obj.ref, "ProgressDeadlineExceeded", _str(c.get("message")) or creason, [ev]))
        elif ctype == "ReplicaFailure" and cstat == "True":
            out.append(_Raw(obj.ref, "FailedCreate", _str(c.get("message")) or creason, [ev]))
    desired = _int(spec.get("replicas"), 1)
    ready_key = "availableReplicas" if obj.kind == "Deployment" else "readyReplicas"
    ready = _int(st.get(ready_key))
    if desired > 0 and ready < desired and obj.kind != "ReplicaSet":
        out.append(_Raw(obj.ref, "ReplicasUnavailable", f"{ready} of {desired} replicas available", [
            Evidence(f"{obj.source}.status", f"spec.replicas: {desired}; status.{ready_key}: {ready}")]))
    for event in ctx.events.get(obj.ref, []):
        if event_reason(event) == "FailedCreate":
            hit = next((r for r in out if r.reason == "FailedCreate"), None)
            if hit is None:
                out.append(_Raw(obj.ref, "FailedCreate", event.message, [_event_evidence(event)]))
            else:
                hit.evidence.append(_event_evidence(event))
    if obj.kind == "StatefulSet":
        svc = _str(spec.get("serviceName"))
        if svc and ctx.knows("Service") and not ctx.find("Service", obj.namespace, svc):
            out.append(_Raw(obj.ref, "ServiceNotFound", f"serviceName {svc} names no Service", [
                Evidence(f"{obj.source}.spec.serviceName", f"serviceName: {svc}")]))
        for i, t in enumerate(_list(spec.get("volumeClaimTemplates"))):
            sc = _str(_get(t, "spec", "storageClassName"))
            if sc and ctx.knows("StorageClass") and not ctx.find("StorageClass", "", sc):
                out.append(_Raw(obj.ref, "StorageClassNotFound", f"StorageClass {sc} does not exist", [
                    Evidence(f"{obj.source}.spec.volumeClaimTemplates[{i}]", f"storageClassName: {sc}")]))
    return out


def _daemonset(obj: K8sObject, ctx: Context) -> list[_Raw]:
    st = _dict(obj.data.get("status"))
    desired, ready = _int(st.get("desiredNumberScheduled")), _int(st.get("numberReady"))
    out = []
    if ready < desired or _int(st.get("numberUnavailable")) > 0:
        out.append(_Raw(obj.ref, "ReplicasUnavailable", f"{ready} of {desired} Pods ready", [Evidence(
            f"{obj.source}.status", f"desiredNumberScheduled: {desired}; numberReady: {ready}; numberUnavailable: "
                                    f"{_int(st.get('numberUnavailable'))}")]))
    if _int(st.get("numberMisscheduled")) > 0:
        out.append(_Raw(obj.ref, "Misscheduled", f"{st.get('numberMisscheduled')} Pods on nodes they should not run on",
                        [Evidence(f"{obj.source}.status", f"numberMisscheduled: {st.get('numberMisscheduled')}")]))
    for event in ctx.events.get(obj.ref, []):
        if event_reason(event) == "FailedCreate":
            out.append(_Raw(obj.ref, "FailedCreate", event.message, [_event_evidence(event)]))
    return out


def _job(obj: K8sObject, ctx: Context) -> list[_Raw]:
    st = _dict(obj.data.get("status"))
    out: list[_Raw] = []
    for c in _list(st.get("conditions")):
        if c.get("type") == "Failed" and c.get("status") == "True":
            reason = _str(c.get("reason")) or "BackoffLimitExceeded"
            out.append(_Raw(obj.ref, reason, _str(c.get("message")) or reason, [
                Evidence(f"{obj.source}.status.conditions", f"Failed True {reason}: {_str(c.get('message'))}")]))
    for event in ctx.events.get(obj.ref, []):
        ereason = event_reason(event)
        if ereason in ("BackoffLimitExceeded", "DeadlineExceeded", "FailedCreate"):
            hit = next((r for r in out if r.reason == ereason), None)
            if hit is None:
                out.append(_Raw(obj.ref, ereason, event.message, [_event_evidence(event)]))
            else:
                hit.evidence.append(_event_evidence(event))
    return out


_CRON_FIELD = re.compile(r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/\d+)?$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def valid_cron(schedule: str) -> bool:
    """True for a standard five-field cron expression (or ``@hourly``-style macro), as the
    CronJob controller accepts (robfig/cron's standard parser): ``*``, ``?``, numbers in range,
    names (``MON``, ``JAN``), ranges, lists and steps; a ``TZ=``/``CRON_TZ=`` prefix is allowed."""
    text = schedule.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        text = text.partition(" ")[2].strip()
    if text in _CRON_MACROS or text.startswith("@every "):
        return True
    fields = text.split()
    if len(fields) != 5:
        return False
    for f, (lo, hi) in zip(fields, _CRON_RANGES):
        for part in f.split(","):
            if not _CRON_FIELD.match(part):
                return False
            for num in re.findall(r"\d+", part.split("/")[0]):
                if not lo <= int(num) <= hi:
                    return False
    return True


def _cronjob(obj: K8sObject, ctx: Context) -> list[_Raw]:
    spec = _dict(obj.data.get("spec"))
    out = []
    schedule = _str(spec.get("schedule"))
    if schedule and not valid_cron(schedule):
        out.append(_Raw(obj.ref, "InvalidSchedule", f"schedule {schedule!r} is not a valid cron expression",
                        [Evidence(f"{obj.source}.spec.schedule", f"schedule: {schedule}")]))
    if spec.get("suspend") is True:
        out.append(_Raw(obj.ref, "Suspended", "the CronJob is suspended", [
            Evidence(f"{obj.source}.spec.suspend", "suspend: true")]))
    return out
