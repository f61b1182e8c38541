"""Grouping by root cause: events about objects not given, owners, symptoms folded into causes,
Services joining their Pods' finding, log lines joining their Pod's finding."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from knowbase.diagnose.analyzers.base import (
    Context,
    _event_evidence,
    _get,
    _list,
    _Raw,
    _severity,
    _str,
    event_reason,
)
from knowbase.diagnose.analyzers.pods import _fold_pod
from knowbase.diagnose.inputs import LogText
from knowbase.diagnose.types import SEVERITY_ORDER, Evidence, ObjectRef


def _orphan_events(ctx: Context, analysed: set[ObjectRef]) -> list[_Raw]:
    """Findings from Warning events about objects the inputs do not hold (an events file alone)."""
    out: dict[tuple[ObjectRef, str], _Raw] = {}
    for ref, events in ctx.events.items():
        if ref in analysed:
            continue
        for ev in events:
            reason = event_reason(ev)
            if reason is None:
                continue
            raw = out.setdefault((ref, reason), _Raw(ref, reason, f"{ev.reason}: {ev.message}"))
            raw.evidence.append(_event_evidence(ev))
    by_ref: dict[ObjectRef, list[_Raw]] = defaultdict(list)
    for (ref, _), raw in out.items():
        by_ref[ref].append(raw)
    return [r for raws in by_ref.values() for r in (_fold_pod(raws) if raws[0].ref.kind == "Pod" else raws)]


# --- ownership and grouping ------------------------------------------------------------------------
_HASHED = re.compile(r"^(?P<owner>.+)-[a-z0-9]{5,10}$")
_JOB_FROM_CRON = re.compile(r"^(?P<owner>.+)-\d{8,10}$")


def _owner(ref: ObjectRef, ctx: Context) -> ObjectRef | None:
    """The controlling owner of ``ref`` one level up (from ownerReferences, else from the
    name when an object of that name and kind is in the inputs)."""
    obj = ctx.by_ref.get(ref)
    owners = _list(_get(obj.data, "metadata", "ownerReferences")) if obj else []
    ctrl = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if ctrl is not None and ctrl.get("kind") and ctrl.get("name"):
        kind, name = _str(ctrl.get("kind")), _str(ctrl.get("name"))
        if kind == "ReplicaSet" and not ctx.find("ReplicaSet", ref.namespace, name):
            m = _HASHED.match(name)
            hash_label = _str(_get(obj.data if obj else {}, "metadata", "labels", "pod-template-hash"))
            if hash_label and name.endswith("-" + hash_label):
                return ObjectRef("Deployment", ref.namespace, name[:-len(hash_label) - 1])
            if m and ctx.find("Deployment", ref.namespace, m.group("owner")):
                return ObjectRef("Deployment", ref.namespace, m.group("owner"))
        return ObjectRef(kind, ref.namespace, name)
    if ref.kind == "Pod":
        for kind in ("StatefulSet",):
            m = re.match(r"^(.+)-\d+$", ref.name)
            if m and ctx.find(kind, ref.namespace, m.group(1)):
                return ObjectRef(kind, ref.namespace, m.group(1))
        m = _HASHED.match(ref.name)
        if m:
            rs = m.group("owner")
            if ctx.find("ReplicaSet", ref.namespace, rs):
                return ObjectRef("ReplicaSet", ref.namespace, rs)
            m2 = _HASHED.match(rs)
            if m2 and ctx.find("Deployment", ref.namespace, m2.group("owner")):
                return ObjectRef("Deployment", ref.namespace, m2.group("owner"))
            for kind in ("DaemonSet", "Job"):
                if ctx.find(kind, ref.namespace, rs):
                    return ObjectRef(kind, ref.namespace, rs)
    if ref.kind == "Job":
        m = _JOB_FROM_CRON.match(ref.name)
        if m and ctx.find("CronJob", ref.namespace, m.group("owner")):
            return ObjectRef("CronJob", ref.namespace, m.group("owner"))
    if ref.kind == "ReplicaSet":
        m = _HASHED.match(ref.name)
        if m and ctx.find("Deployment", ref.namespace, m.group("owner")):
            return ObjectRef("Deployment", ref.namespace, m.group("owner"))
    return None


def _top_owner(ref: ObjectRef, ctx: Context) -> ObjectRef:
    seen = {ref}
    cur = ref
    while True:
        up = _owner(cur, ctx)
        if up is None or up in seen or up.kind not in ("ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job",
                                                       "CronJob"):
            return cur
        seen.add(up)
        cur = up


_OWNER_SYMPTOMS = ("ProgressDeadlineExceeded", "BackoffLimitExceeded", "ReplicasUnavailable")
"""An owner's reasons that its Pods' failures explain, most telling first (the rollout stalled,
the Job gave up, replicas are missing): they become evidence of the Pods' cause."""
_WEAK_POD_REASONS = {"Error"}
"""Pod reasons that say less than the owner's own (a Job's BackoffLimitExceeded over its Pods' exit codes)."""


def _group(raws: list[_Raw], ctx: Context) -> list[_Raw]:
    """Move Pod/ReplicaSet/Job findings to their top owner, one finding per (owner, reason).

    When the owner's Pods have a telling cause (``OOMKilled``, ``ImagePullBackOff``...), the
    owner's symptoms (:data:`_OWNER_SYMPTOMS`) fold into it; when they only exited with an
    error, they fold into the owner's own finding (``BackoffLimitExceeded``). Several
    symptoms alone fold into the most telling one.
    """
    by_owner: dict[ObjectRef, list[_Raw]] = defaultdict(list)
    for raw in raws:
        top = _top_owner(raw.ref, ctx) if raw.ref.kind in ("Pod", "ReplicaSet", "Job") else raw.ref
        by_owner[top].append(raw)
    out: list[_Raw] = []
    for owner, items in by_owner.items():
        own = [r for r in items if r.ref == owner]
        children = [r for r in items if r.ref != owner]
        strong = [c for c in children if c.reason not in _WEAK_POD_REASONS]
        weak = [c for c in children if c.reason in _WEAK_POD_REASONS]
        symptoms = sorted((r for r in own if r.reason in _OWNER_SYMPTOMS), key=lambda r: _OWNER_SYMPTOMS.index(r.reason))
        causes = [r for r in own if r.reason not in _OWNER_SYMPTOMS]
        merged: dict[str, _Raw] = {}
        for child in strong:
            merged.setdefault(child.reason, _Raw(owner, child.reason, child.message)).absorb(child)
        if merged:
            worst = min(merged.values(), key=lambda r: SEVERITY_ORDER[_severity(r.reason)])
            for r in symptoms + weak:
                worst.absorb(r)
            symptoms = []
        elif weak and (causes or symptoms):
            for r in weak:
                (causes or symptoms)[0].absorb(r)
        elif weak:
            for child in weak:
                merged.setdefault(child.reason, _Raw(owner, child.reason, child.message)).absorb(child)
        if causes and symptoms:
            for r in symptoms:
                causes[0].absorb(r)
            symptoms = []
        elif len(symptoms) > 1:
            for r in symptoms[1:]:
                symptoms[0].absorb(r)
            symptoms = symptoms[:1]
        by_reason: dict[str, _Raw] = {}
        for raw in causes + symptoms + list(merged.values()):  # a Deployment's and its ReplicaSet's FailedCreate: one
            if raw.reason in by_reason:
                by_reason[raw.reason].absorb(raw)
            else:
                by_reason[raw.reason] = raw
        out += by_reason.values()
    return out


def _fold_services(raws: list[_Raw], ctx: Context) -> list[_Raw]:
    """A Service whose matched Pods all have findings joins the finding of those Pods."""
    out = [r for r in raws if not (r.ref.kind == "Service" and r.reason == "NoEndpoints" and r.related)]
    for svc in [r for r in raws if r.ref.kind == "Service" and r.reason == "NoEndpoints" and r.related]:
        pods = svc.related
        holders = [r for r in out if r.ref in pods or r.related & pods]
        covered = set().union(*[{r.ref} | r.related for r in holders]) if holders else set()
        if holders and pods <= covered:
            target = min(holders, key=lambda r: SEVERITY_ORDER[_severity(r.reason)])
            target.related.add(svc.ref)
            target.evidence += [e for e in svc.evidence if e not in target.evidence]
        else:
            svc.related = set()
            out.append(svc)
    return out


_LOG_ERROR = re.compile(
    r"\b(panic|fatal|FATAL|Fatal|ERROR|Error|error|Exception|Traceback|OOM|[Oo]ut of memory|[Cc]onnection refused|"
    r"[Pp]ermission denied|[Nn]o such file or directory|[Aa]ddress already in use|[Tt]imed out|[Uu]nauthorized|"
    r"[Ff]orbidden|[Ss]egmentation fault|ECONNREFUSED|could not|cannot|unable to|failed)\b")
MAX_LOG_LINES = 5
"""Log lines kept as evidence per log (the first error lines, and the last line)."""


def _attach_logs(raws: list[_Raw], logs: Iterable[LogText], ctx: Context) -> list[_Raw]:
    out = list(raws)
    for log in logs:
        errors = [(n, t) for n, t in log.lines if _LOG_ERROR.search(t)]
        if not errors:
            continue
        lines = errors[:MAX_LOG_LINES]
        evidence = [Evidence(f"{log.source}:{n}", t.strip()[:500]) for n, t in lines]
        pod_ref = next((r for r in ctx.by_ref if r.kind == "Pod" and r.name == log.target), None)
        holder = None
        for r in out:
            refs = {r.ref} | r.related
            if any(x.name == log.target for x in refs) or (pod_ref is None and any(
                    log.target.startswith(x.name + "-") or (len(log.target) >= 3 and log.target in x.name)
                    for x in refs)):
                holder = r
                break
        if holder is not None:
            holder.evidence += [e for e in evidence if e not in holder.evidence]
            continue
        ref = pod_ref or ObjectRef("Log", "", log.target)
        out.append(_Raw(ref, "ErrorsInLog", f"{len(errors)} error lines in the log of {log.target}", evidence))
    return out
