"""HorizontalPodAutoscaler and PodDisruptionBudget analyzers."""

from __future__ import annotations

from knowbase.diagnose.analyzers.base import (
    Context,
    _dict,
    _empty_selector,
    _event_evidence,
    _get,
    _labels,
    _list,
    _matches,
    _Raw,
    _str,
    event_reason,
)
from knowbase.diagnose.inputs import K8sObject
from knowbase.diagnose.types import Evidence


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
