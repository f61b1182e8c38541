"""Service (endpoints, selector), Ingress (class, backends, TLS Secret) and NetworkPolicy analyzers."""

from __future__ import annotations

from knowbase.diagnose.analyzers.base import (
    Context,
    _dict,
    _empty_selector,
    _get,
    _labels,
    _list,
    _matches,
    _Raw,
    _str,
)
from knowbase.diagnose.inputs import K8sObject
from knowbase.diagnose.types import Evidence


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


def _netpol(obj: K8sObject, ctx: Context) -> list[_Raw]:
    selector = _dict(_get(obj.data, "spec", "podSelector"))
    pods = ctx.labelled_pods(obj.namespace)
    if pods is None or _empty_selector(selector) or any(_matches(selector, _labels(p)) for p in pods):
        return []
    return [_Raw(obj.ref, "NoPodsMatchSelector", "the policy's podSelector matches no Pod, so it applies to none", [
        Evidence(f"{obj.source}.spec.podSelector", f"podSelector: {selector}")])]
