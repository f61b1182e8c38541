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

from collections.abc import Callable, Iterable

from knowbase.diagnose.analyzers.base import MAX_EVIDENCE, REASONS, Context, _Raw, _severity, event_reason
from knowbase.diagnose.analyzers.grouping import _attach_logs, _fold_services, _group, _orphan_events
from knowbase.diagnose.analyzers.network import _ingress, _netpol, _service
from knowbase.diagnose.analyzers.nodes import _node
from knowbase.diagnose.analyzers.pods import _pod
from knowbase.diagnose.analyzers.scaling import _hpa, _pdb
from knowbase.diagnose.analyzers.storage import _pvc
from knowbase.diagnose.analyzers.workloads import _cronjob, _daemonset, _job, _workload_replicas, valid_cron
from knowbase.diagnose.inputs import K8sObject, Snapshot
from knowbase.diagnose.types import SEVERITY_ORDER, Evidence, Finding, ObjectRef

__all__ = ["ANALYZERS", "MAX_EVIDENCE", "REASONS", "Context", "analyze", "event_reason", "valid_cron"]


ANALYZERS: dict[str, Callable[[K8sObject, Context], list[_Raw]]] = {
    "Pod": _pod, "Deployment": _workload_replicas, "ReplicaSet": _workload_replicas,
    "StatefulSet": _workload_replicas, "DaemonSet": _daemonset, "Job": _job, "CronJob": _cronjob,
    "Service": _service, "Ingress": _ingress, "PersistentVolumeClaim": _pvc, "Node": _node,
    "HorizontalPodAutoscaler": _hpa, "PodDisruptionBudget": _pdb, "NetworkPolicy": _netpol,
}
"""Analyzer per Kind (K8sGPT's core set)."""


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
