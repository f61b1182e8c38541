"""The reasons, the finding under construction, safe field access, lookups over the inputs and
the meaning of events, shared by the analyzers."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from knowbase.diagnose.inputs import Event, K8sObject, Snapshot
from knowbase.diagnose.types import Evidence, ObjectRef, Severity

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


@dataclass
class _Raw:
    """A finding while it is being grouped."""

    ref: ObjectRef
    reason: str
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    related: set[ObjectRef] = field(default_factory=set)
    _seen: set[Evidence] = field(default_factory=set, repr=False, compare=False)

    def absorb(self, other: _Raw) -> None:
        """Take ``other``'s evidence (no duplicates) and objects. Linear in ``other``'s size:
        membership is a set lookup (a list scan made grouping 8,000 Pods of one Deployment
        quadratic, found by a new user: 7.4 s, and a 60 MB dump did not finish in 120 s)."""
        if len(self._seen) != len(self.evidence):  # evidence appended directly since the last call
            self._seen = set(self.evidence)
        for e in other.evidence:
            if e not in self._seen:
                self._seen.add(e)
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


def _severity(reason: str) -> Severity:
    return REASONS.get(reason, ("warning", ""))[0]
