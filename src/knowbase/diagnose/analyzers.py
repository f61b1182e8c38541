"""Deterministic analyzers (no model): objects, events and logs -> findings grouped by root cause.

K8sGPT's core analyzer set (``pkg/analyzer``: pod, deployment, replicaset, statefulset,
daemonset, job, cronjob, service, ingress, pvc, node, hpa, pdb, netpol, events), each a
function ``(object, context) -> list[Finding]``, then three grouping steps:

1. per Pod, symptoms fold into their cause (``CrashLoopBackOff`` with a last termination
   ``OOMKilled`` is ``OOMKilled``; with failing liveness probes it is
   ``LivenessProbeFailed``; ``ErrImagePull`` is ``ImagePullBackOff``);
2. Pod (and ReplicaSet/Job) findings move to their top owner (Deployment, StatefulSet,
   DaemonSet, CronJob), one finding per (owner, reason) listing the Pods in ``related``;
   the owner's own symptoms (``ReplicasUnavailable``, ``ProgressDeadlineExceeded``) become
   evidence of that finding;
3. a Service whose selected Pods all have findings joins their finding instead of standing
   alone, and log lines join the finding of the Pod they came from.

A reference (an Ingress's backend Service, a StatefulSet's ``serviceName``, an HPA's target)
is reported missing only when the inputs hold objects of that kind at all: a dump of Pods
alone says nothing about Services.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from knowbase.diagnose.inputs import Event, K8sObject, LogText, Snapshot
from knowbase.diagnose.types import SEVERITY_ORDER, Evidence, Finding, ObjectRef, Severity

REASONS: dict[str, tuple[Severity, str]] = {
    # Pods and containers
    "CrashLoopBackOff": ("critical", "a container keeps exiting and is restarted with back-off"),
    "OOMKilled": ("critical", "a container was killed for exceeding its memory limit"),
    "ImagePullBackOff": ("critical", "the image cannot be pulled (ErrImagePull, then back-off)"),
    "InvalidImageName": ("critical", "the image reference cannot be parsed"),
    "ErrImageNeverPull": ("critical", "imagePullPolicy Never and the image is not on the node"),
    "CreateContainerConfigError": ("critical", "a ConfigMap, Secret or key the container needs is missing"),
    "CreateContainerError": ("critical", "the container runtime could not create the container"),
    "RunContainerError": ("critical", "the container runtime could not start the container"),
    "Error": ("warning", "a container exited with a non-zero code"),
    "Evicted": ("warning", "the kubelet evicted the Pod to reclaim node resources"),
    "Unschedulable": ("critical", "no node can run the Pod"),
    "FailedMount": ("critical", "a volume cannot be attached or mounted"),
    "FailedCreatePodSandBox": ("critical", "the Pod sandbox (network, runtime) cannot be created"),
    "LivenessProbeFailed": ("critical", "the liveness probe fails, so the kubelet restarts the container"),
    "ReadinessProbeFailed": ("warning", "the readiness probe fails, so the Pod receives no traffic"),
    "StartupProbeFailed": ("critical", "the startup probe fails, so the container is restarted"),
    "ErrorsInLog": ("warning", "error lines in a container log"),
    # workloads
    "ReplicasUnavailable": ("critical", "fewer replicas are available than desired"),
    "ProgressDeadlineExceeded": ("critical", "a rollout made no progress within its deadline"),
    "FailedCreate": ("critical", "the controller cannot create Pods (quota, admission, service account)"),
    "Misscheduled": ("warning", "DaemonSet Pods run on nodes they should not"),
    "BackoffLimitExceeded": ("critical", "the Job's Pods failed more often than its backoffLimit"),
    "DeadlineExceeded": ("critical", "the Job ran longer than activeDeadlineSeconds"),
    "InvalidSchedule": ("critical", "the CronJob schedule is not a valid cron expression"),
    "Suspended": ("info", "the CronJob is suspended"),
    "ServiceNotFound": ("warning", "the StatefulSet's governing Service does not exist"),
    "StorageClassNotFound": ("critical", "the StorageClass named does not exist"),
    # networking
    "NoEndpoints": ("critical", "the Service has no ready endpoints"),
    "NoPodsMatchSelector": ("warning", "the selector matches no Pod"),
    "MissingIngressClass": ("warning", "the Ingress names no IngressClass and there is no default"),
    "IngressClassNotFound": ("warning", "the IngressClass named does not exist"),
    "BackendServiceNotFound": ("critical", "the Ingress routes to a Service that does not exist"),
    "TLSSecretNotFound": ("critical", "the Ingress TLS Secret does not exist"),
    # storage
    "Pending": ("warning", "the PersistentVolumeClaim is not bound"),
    "ProvisioningFailed": ("critical", "the volume could not be provisioned"),
    "FailedBinding": ("critical", "no PersistentVolume matches the claim and none can be provisioned"),
    "ClaimLost": ("critical", "the PersistentVolume behind the claim is gone"),
    # nodes
    "NotReady": ("critical", "the node is not Ready (or its kubelet stopped reporting)"),
    "MemoryPressure": ("warning", "the node is short of memory"),
    "DiskPressure": ("warning", "the node is short of disk space"),
    "PIDPressure": ("warning", "the node is short of process ids"),
    "NetworkUnavailable": ("critical", "the node's network is not configured"),
    # autoscaling, disruption budgets
    "ScaleTargetNotFound": ("critical", "the HPA's scale target does not exist"),
    "FailedGetResourceMetric": ("warning", "the HPA cannot read a resource metric"),
    "MissingResourceRequests": ("warning", "the HPA scales on a resource the target's containers do not request"),
    "InsufficientPods": ("warning", "the PodDisruptionBudget allows no disruption"),
}
"""Every reason the analyzers give: ``{reason: (severity, what it means)}``. Other Warning
event reasons pass through as their own reason with severity ``warning``."""

MAX_EVIDENCE = 12
"""Evidence lines kept per finding (the rest are counted in the last line)."""

_IMAGE_REASONS = {"ImagePullBackOff", "ErrImagePull"}


@dataclass
class _Raw:
    """A finding while it is being grouped."""

    ref: ObjectRef
    reason: str
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    related: set[ObjectRef] = field(default_factory=set)

    def absorb(self, other: _Raw) -> None:
        for e in other.evidence:
            if e not in self.evidence:
                self.evidence.append(e)
        self.related |= other.related
        if other.ref != self.ref:
            self.related.add(other.ref)


# --- safe access ------------------------------------------------------------------------------
def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _list(x: Any) -> list[Any]:
    return [i for i in x if isinstance(i, dict)] if isinstance(x, list) else []


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _int(x: Any, default: int = 0) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else default


def _str(x: Any) -> str:
    return x if isinstance(x, str) else "" if x is None else str(x)


def _labels(obj: K8sObject) -> dict[str, str]:
    return {str(k): _str(v) for k, v in _dict(_get(obj.data, "metadata", "labels")).items()}


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """``matchLabels`` (or a plain map) and ``matchExpressions`` (In, NotIn, Exists, DoesNotExist)."""
    plain = selector.get("matchLabels") if "matchLabels" in selector or "matchExpressions" in selector else selector
    for k, v in _dict(plain).items():
        if labels.get(str(k)) != _str(v):
            return False
    for expr in _list(selector.get("matchExpressions")):
        key, op, values = _str(expr.get("key")), _str(expr.get("operator")), [_str(v) for v in expr.get("values") or []]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _empty_selector(selector: dict[str, Any]) -> bool:
    return not _dict(selector.get("matchLabels", selector if "matchExpressions" not in selector else {})) and \
        not _list(selector.get("matchExpressions"))


# --- context ----------------------------------------------------------------------------------
class Context:
    """Lookups over a :class:`Snapshot`: objects by kind/namespace/name, events per object,
    which kinds the inputs hold at all."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.by_ref: dict[ObjectRef, K8sObject] = {}
        self.by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        for obj in snap.objects:
            self.by_ref.setdefault(obj.ref, obj)
            self.by_kind[obj.kind].append(obj)
        self.events: dict[ObjectRef, list[Event]] = defaultdict(list)
        names: dict[tuple[str, str], list[ObjectRef]] = defaultdict(list)
        for ref in self.by_ref:
            names[(ref.namespace, ref.name)].append(ref)
        for ev in snap.events:
            ref = ev.object
            if not ref.kind:  # old events tables without KIND: match the name
                candidates = names.get((ref.namespace, ref.name), [])
                ref = candidates[0] if len(candidates) == 1 else ObjectRef("Pod", ref.namespace, ref.name)
            elif ref.kind != "Node" and not ref.namespace:
                same = [r for r in self.by_ref if r.kind == ref.kind and r.name == ref.name]
                ref = same[0] if len(same) == 1 else ref
            self.events[ref].append(replace(ev, object=ref))

    def knows(self, kind: str) -> bool:
        """True when the inputs hold at least one object of ``kind``."""
        return bool(self.by_kind.get(kind))

    def find(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        return self.by_ref.get(ObjectRef(kind, namespace, name))

    def labelled_pods(self, namespace: str) -> list[K8sObject] | None:
        """Pods of ``namespace`` whose labels are known (None when no Pod of it was given with labels)."""
        pods = [p for p in self.by_kind.get("Pod", []) if p.namespace == namespace
                and not p.data.get("_table") and isinstance(_get(p.data, "metadata", "labels"), dict)]
        return pods or None


# --- events -----------------------------------------------------------------------------------
def event_reason(ev: Event) -> str | None:
    """The finding reason an event points to (None for an event that is no problem).

    Sources: kubelet and controller event reasons (``pkg/kubelet/events/event.go``,
    K8sGPT's events and pod analyzers).
    """
    r, msg = ev.reason, ev.message
    low = msg.lower()
    if ev.type == "Normal":
        if r == "Killing" and "liveness probe" in low:
            return "LivenessProbeFailed"
        if r == "Killing" and "startup probe" in low:
            return "StartupProbeFailed"
        return None
    if r == "FailedScheduling":
        return "Unschedulable"
    if r in ("FailedMount", "FailedAttachVolume", "FailedMapVolume"):
        return "FailedMount"
    if r == "BackOff":
        return "ImagePullBackOff" if "pulling image" in low or "image" in low and "pull" in low else "CrashLoopBackOff"
    if r == "Unhealthy":
        for kind in ("Liveness", "Readiness", "Startup"):
            if kind.lower() + " probe" in low:
                return f"{kind}ProbeFailed"
        return "ReadinessProbeFailed"
    if r in ("Failed", "InspectFailed", "ErrImageNeverPull"):
        for name in ("InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError",
                     "RunContainerError", "ImagePullBackOff"):
            if name in msg:
                return name
        if r == "InspectFailed" or "couldn't parse image" in low or "invalid reference format" in low:
            return "InvalidImageName"
        if "failed to pull" in low or "errimagepull" in low or "pull access denied" in low:
            return "ImagePullBackOff"
        if re.search(r'(configmap|secret) "[^"]*" not found|couldn\'t find key', low):
            return "CreateContainerConfigError"
        if "oci runtime" in low or "failed to create containerd task" in low or "executable file not found" in low:
            return "RunContainerError"
        return "Error" if r == "Failed" else r
    if r in ("Evicted", "Preempting"):
        return "Evicted"
    if r == "OOMKilling":
        return "OOMKilled"
    if r == "EvictionThresholdMet":
        return "MemoryPressure" if "memory" in low else "DiskPressure"
    if r in ("FreeDiskSpaceFailed", "ImageGCFailed"):
        return "DiskPressure"
    if r in ("NodeNotReady",):
        return "NotReady"
    if r in ("FailedGetResourceMetric", "FailedComputeMetricsReplicas"):
        return "FailedGetResourceMetric"
    if r == "FailedGetScale":
        return "ScaleTargetNotFound"
    return r or None


def _event_evidence(ev: Event) -> Evidence:
    text = ev.text if ev.count <= 1 or f"x{ev.count}" in ev.text else f"{ev.text} (x{ev.count})"
    return Evidence(ev.source, text)


# --- per-kind analyzers --------------------------------------------------------------------------
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


def _endpoints(obj: K8sObject, ctx: Context) -> tuple[bool | None, list[Evidence], list[str]]:
    """``(has ready endpoints or None if unknown, evidence, not-ready target names)``."""
    if "_endpoints" in obj.data:
        eps = obj.data["_endpoints"]
        return bool(eps), [Evidence(obj.source, f"Endpoints: {', '.join(eps) or '<none>'}")], []
    ep = ctx.find("Endpoints", obj.namespace, obj.name)
    if ep is None:
        return None, [], []
    subsets = _list(ep.data.get("subsets"))
    ready = [a for s in subsets for a in _list(s.get("addresses"))]
    not_ready = [a for s in subsets for a in _list(s.get("notReadyAddresses"))]
    names = [_str(_get(a, "targetRef", "name")) for a in not_ready if _get(a, "targetRef", "name")]
    text = (f"subsets: {len(subsets)}; ready addresses: {len(ready)}; not ready: {len(not_ready)}"
            + (f" ({', '.join(names)})" if names else ""))
    return bool(ready), [Evidence(ep.source, f"Endpoints {obj.name}: {text}")], names


def _service(obj: K8sObject, ctx: Context) -> list[_Raw]:
    spec = _dict(obj.data.get("spec"))
    selector = {str(k): _str(v) for k, v in _dict(spec.get("selector")).items()}
    if not selector or spec.get("type") == "ExternalName":
        return []
    sel_text = ",".join(f"{k}={v}" for k, v in selector.items())
    pods = ctx.labelled_pods(obj.namespace)
    matched = [p for p in pods or [] if _matches(selector, _labels(p))]
    ready, ev, _ = _endpoints(obj, ctx)
    ev = [Evidence(f"{obj.source}.spec.selector", f"selector: {sel_text}"), *ev]
    if pods is not None and not matched:
        return [_Raw(obj.ref, "NoPodsMatchSelector", f"selector {sel_text} matches no Pod in namespace "
                                                     f"{obj.namespace}", ev)]
    if ready is False:
        raw = _Raw(obj.ref, "NoEndpoints", f"no ready endpoints for selector {sel_text}", ev)
        raw.related = {p.ref for p in matched}
        return [raw]
    return []


def _ingress(obj: K8sObject, ctx: Context) -> list[_Raw]:
    spec = _dict(obj.data.get("spec"))
    ann = _dict(_get(obj.data, "metadata", "annotations"))
    out = []
    cls = _str(spec.get("ingressClassName")) or _str(ann.get("kubernetes.io/ingress.class"))
    classes = ctx.by_kind.get("IngressClass", [])
    if not cls:
        default = any(_str(_get(c.data, "metadata", "annotations", "ingressclass.kubernetes.io/is-default-class"))
                      == "true" for c in classes)
        if not default:
            out.append(_Raw(obj.ref, "MissingIngressClass", "no ingressClassName and no default IngressClass", [
                Evidence(f"{obj.source}.spec", "spec.ingressClassName: (not set)")]))
    elif classes and not ctx.find("IngressClass", "", cls):
        out.append(_Raw(obj.ref, "IngressClassNotFound", f"IngressClass {cls} does not exist", [
            Evidence(f"{obj.source}.spec.ingressClassName", f"ingressClassName: {cls}")]))
    backends: list[tuple[str, str]] = []
    default_backend = _dict(spec.get("defaultBackend") or spec.get("backend"))
    if default_backend:
        backends.append(("spec.defaultBackend", _str(_get(default_backend, "service", "name"))
                         or _str(default_backend.get("serviceName"))))
    for i, rule in enumerate(_list(spec.get("rules"))):
        for j, path in enumerate(_list(_get(rule, "http", "paths"))):
            b = _dict(path.get("backend"))
            backends.append((f"spec.rules[{i}].http.paths[{j}]", _str(_get(b, "service", "name"))
                             or _str(b.get("serviceName"))))
    if ctx.knows("Service"):
        missing = [(w, n) for w, n in backends if n and not ctx.find("Service", obj.namespace, n)]
        if missing:
            out.append(_Raw(obj.ref, "BackendServiceNotFound", "backend Service "
                            + ", ".join(dict.fromkeys(n for _, n in missing)) + " does not exist",
                            [Evidence(f"{obj.source}.{w}", f"backend service: {n}") for w, n in missing]))
    if ctx.knows("Secret"):
        for i, tls in enumerate(_list(spec.get("tls"))):
            secret = _str(tls.get("secretName"))
            if secret and not ctx.find("Secret", obj.namespace, secret):
                out.append(_Raw(obj.ref, "TLSSecretNotFound", f"TLS Secret {secret} does not exist", [
                    Evidence(f"{obj.source}.spec.tls[{i}]", f"secretName: {secret}")]))
    return out


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


def _hpa(obj: K8sObject, ctx: Context) -> list[_Raw]:
    spec = _dict(obj.data.get("spec"))
    ref = _dict(spec.get("scaleTargetRef"))
    kind, name = _str(ref.get("kind")), _str(ref.get("name"))
    out: list[_Raw] = []
    target = ctx.find(kind, obj.namespace, name) if kind and name else None
    if kind and name and ctx.knows(kind) and target is None:
        out.append(_Raw(obj.ref, "ScaleTargetNotFound", f"scale target {kind}/{name} does not exist", [
            Evidence(f"{obj.source}.spec.scaleTargetRef", f"scaleTargetRef: {kind}/{name}")]))
    resources = [_str(_get(m, "resource", "name")) for m in _list(spec.get("metrics")) if m.get("type") == "Resource"]
    if spec.get("targetCPUUtilizationPercentage") is not None:
        resources.append("cpu")
    if target is not None:
        containers = _list(_get(target.data, "spec", "template", "spec", "containers"))
        lacking = [f"{_str(c.get('name'))} ({res})" for res in dict.fromkeys(resources) for c in containers
                   if not _get(c, "resources", "requests", res)]
        if lacking:
            out.append(_Raw(obj.ref, "MissingResourceRequests", "containers without the requests the HPA scales on: "
                            + ", ".join(lacking), [Evidence(f"{target.source}.spec.template.spec.containers",
                                                            "no resources.requests for " + ", ".join(lacking))]))
    for c in _list(_get(obj.data, "status", "conditions")):
        if c.get("type") in ("ScalingActive", "AbleToScale") and c.get("status") == "False":
            reason = _str(c.get("reason")) or "FailedGetResourceMetric"
            reason = "ScaleTargetNotFound" if reason == "FailedGetScale" else reason
            out.append(_Raw(obj.ref, reason, _str(c.get("message")) or reason, [Evidence(
                f"{obj.source}.status.conditions", f"{c.get('type')} False {reason}: {_str(c.get('message'))}")]))
    for event in ctx.events.get(obj.ref, []):
        ereason = event_reason(event)
        if ereason:
            out.append(_Raw(obj.ref, ereason, event.message, [_event_evidence(event)]))
    by: dict[str, _Raw] = {}
    for raw in out:
        if raw.reason in by:
            by[raw.reason].absorb(raw)
        else:
            by[raw.reason] = raw
    if "MissingResourceRequests" in by and "FailedGetResourceMetric" in by:
        by["MissingResourceRequests"].absorb(by.pop("FailedGetResourceMetric"))
    if "ScaleTargetNotFound" in by:
        for other in [r for r in by if r != "ScaleTargetNotFound"]:
            by["ScaleTargetNotFound"].absorb(by.pop(other))
    return list(by.values())


def _pdb(obj: K8sObject, ctx: Context) -> list[_Raw]:
    out = []
    selector = _dict(_get(obj.data, "spec", "selector"))
    pods = ctx.labelled_pods(obj.namespace)
    if pods is not None and not _empty_selector(selector) and not any(_matches(selector, _labels(p)) for p in pods):
        out.append(_Raw(obj.ref, "NoPodsMatchSelector", "the budget's selector matches no Pod", [
            Evidence(f"{obj.source}.spec.selector", f"selector: {selector}")]))
    st = _dict(obj.data.get("status"))
    for c in _list(st.get("conditions")):
        if c.get("type") == "DisruptionAllowed" and c.get("status") == "False":
            reason = _str(c.get("reason")) or "InsufficientPods"
            text = (f"DisruptionAllowed False {reason}: currentHealthy {st.get('currentHealthy')}, desiredHealthy "
                    f"{st.get('desiredHealthy')}, expectedPods {st.get('expectedPods')}")
            out.append(_Raw(obj.ref, reason, f"no disruption allowed: {st.get('currentHealthy')} healthy of "
                            f"{st.get('desiredHealthy')} required", [Evidence(f"{obj.source}.status", text)]))
    return out


def _netpol(obj: K8sObject, ctx: Context) -> list[_Raw]:
    selector = _dict(_get(obj.data, "spec", "podSelector"))
    pods = ctx.labelled_pods(obj.namespace)
    if pods is None or _empty_selector(selector) or any(_matches(selector, _labels(p)) for p in pods):
        return []
    return [_Raw(obj.ref, "NoPodsMatchSelector", "the policy's podSelector matches no Pod, so it applies to none", [
        Evidence(f"{obj.source}.spec.podSelector", f"podSelector: {selector}")])]


ANALYZERS: dict[str, Callable[[K8sObject, Context], list[_Raw]]] = {
    "Pod": _pod, "Deployment": _workload_replicas, "ReplicaSet": _workload_replicas,
    "StatefulSet": _workload_replicas, "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob,
    "Service": _service, "Ingress": _ingress, "PersistentVolumeClaim": _pvc, "Node": _node,
    "HorizontalPodAutoscaler": _hpa, "PodDisruptionBudget": _pdb, "NetworkPolicy": _netpol,
}
"""Analyzer per Kind (K8sGPT's core set)."""


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


def _severity(reason: str) -> Severity:
    return REASONS.get(reason, ("warning", ""))[0]


def analyze(snap: Snapshot, *, kinds: Iterable[str] | None = None) -> list[Finding]:
    """Run every analyzer over ``snap`` and group the results by root cause.

    Args:
        snap: what :func:`knowbase.diagnose.inputs.read_inputs` read.
        kinds: keep only findings of these Kinds (case-insensitive; ``pod`` keeps Pods
            and owners whose findings came from Pods). None keeps all.

    Returns:
        findings, most severe first, then by kind, namespace, name and reason; each with at
        most :data:`MAX_EVIDENCE` evidence lines.
    """
    ctx = Context(snap)
    raws: list[_Raw] = []
    analysed: set[ObjectRef] = set()
    for obj in snap.objects:
        fn = ANALYZERS.get(obj.kind)
        analysed.add(obj.ref)
        if fn is not None:
            raws += fn(obj, ctx)
    raws += _orphan_events(ctx, analysed)
    raws = _group(raws, ctx)
    raws = _fold_services(raws, ctx)
    raws = _attach_logs(raws, snap.logs, ctx)
    wanted = {k.lower() for k in kinds} if kinds else None
    findings = []
    for raw in raws:
        if wanted is not None and raw.ref.kind.lower() not in wanted and not any(
                r.kind.lower() in wanted for r in raw.related):
            continue
        evidence = raw.evidence[:MAX_EVIDENCE]
        if len(raw.evidence) > MAX_EVIDENCE:
            evidence.append(Evidence("", f"... and {len(raw.evidence) - MAX_EVIDENCE} more lines"))
        findings.append(Finding(raw.ref.kind, raw.ref.namespace, raw.ref.name, raw.reason, _severity(raw.reason),
                                raw.message, tuple(evidence), tuple(sorted(raw.related - {raw.ref}))))
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.kind, f.namespace, f.name, f.reason))
    return findings
