"""``kubectl describe`` text -> objects shaped like their ``-o json`` form, plus events.

kubectl prints one block per object, starting with ``Name:`` at column 0: top-level
``Key: value`` fields, indented sections (``Containers:``, ``Conditions:``) and an
``Events:`` table whose columns are separated by runs of spaces (``Type Reason Age From
Message``). Only the fields the analyzers read are rebuilt: metadata, container states
(``State:``/``Last State:`` with ``Reason:``/``Exit Code:``), conditions, replica counts,
selector, endpoints, storage class, phase and reason.
"""

from __future__ import annotations

import re
from typing import Any

from knowbase.diagnose.inputs import Event, K8sObject, kind_of
from knowbase.diagnose.types import ObjectRef

_FIELD = re.compile(r"^([A-Z][A-Za-z /()-]*?):(?:\s+(.*))?$")
_SUB = re.compile(r"^(\s+)([A-Za-z][A-Za-z /()-]*?):(?:\s+(.*))?$")
_SPLIT = re.compile(r"\s{2,}|\t+")


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """``(first line number, lines)`` per object (a block starts at ``Name:`` in column 0)."""
    blocks: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith("Name:") or not blocks:
            blocks.append((lineno, []))
        blocks[-1][1].append(line)
    return blocks


def _guess_kind(fields: dict[str, str], sections: set[str]) -> str:
    controlled = fields.get("Controlled By", "")
    if "Start Time" in fields or ("Containers" in sections and ("Node" in fields or "QoS Class" in fields
                                                                 or "Node-Selectors" in fields)):
        return "Pod"
    if "Roles" in fields or ("Taints" in fields and "Addresses" in sections):
        return "Node"
    if "StrategyType" in fields or "RollingUpdateStrategy" in fields:
        return "Deployment"
    if "Schedule" in fields and "Concurrency Policy" in fields:
        return "CronJob"
    if "Completions" in fields or "Pods Statuses" in fields:
        return "Job"
    if "Update Strategy" in fields and "Pods Status" in fields and "Desired Number of Nodes Scheduled" in fields:
        return "DaemonSet"
    if "Desired Number of Nodes Scheduled" in fields:
        return "DaemonSet"
    if "Update Strategy" in fields and "Replicas" in fields:
        return "StatefulSet"
    if "Pods Status" in fields and "Replicas" in fields:
        return "ReplicaSet" if controlled.startswith("Deployment/") or "pod-template-hash" in fields.get(
            "Selector", "") else "ReplicaSet"
    if "Access Modes" in fields or ("StorageClass" in fields and ({"Capacity", "Volume", "Used By", "VolumeMode"}
                                                                   & (set(fields) | sections))):
        return "PersistentVolumeClaim"
    if "Reference" in fields and ("Min replicas" in fields or "Max replicas" in fields):
        return "HorizontalPodAutoscaler"
    if "Endpoints" in fields and "Selector" in fields:
        return "Service"
    if "Rules" in sections and ("Default backend" in fields or "Ingress Class" in fields):
        return "Ingress"
    if "Allowed disruptions" in fields or "Min available" in fields or "Max unavailable" in fields:
        return "PodDisruptionBudget"
    return "Unknown"


def _labels(lines: list[str], start: int, first: str) -> dict[str, str]:
    out: dict[str, str] = {}
    values = [first] + [ln.strip() for ln in _continuation(lines, start)]
    for v in values:
        if "=" in v:
            k, _, val = v.partition("=")
            out[k.strip()] = val.strip()
    return out


def _continuation(lines: list[str], start: int) -> list[str]:
    """Lines after ``lines[start]`` that continue its value (indented, no ``Key:`` of their own)."""
    out = []
    for ln in lines[start + 1:]:
        if not ln.startswith((" ", "\t")) or not ln.strip() or _SUB.match(ln):
            break
        out.append(ln)
    return out


def _selector(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        if "=" in part and "!=" not in part:
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
    return out


def _section(lines: list[str], title: str) -> list[tuple[int, str]]:
    """``(index, line)`` of the indented lines under ``Title:`` (to the next top-level line)."""
    out: list[tuple[int, str]] = []
    inside = False
    for i, ln in enumerate(lines):
        if inside:
            if ln and not ln.startswith((" ", "\t")):
                break
            out.append((i, ln))
        elif ln.rstrip() == f"{title}:" or ln.startswith(f"{title}:"):
            inside = True
    return out


def _containers(lines: list[str], title: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(spec containers, container statuses)`` from a ``Containers:`` section."""
    specs: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    state_key: str | None = None
    sub: str | None = None
    for _, ln in _section(lines, title):
        m = _SUB.match(ln)
        if not m:
            continue
        indent, key, value = len(m.group(1)), m.group(2), (m.group(3) or "").strip()
        if indent <= 2 and not value:  # "  app:" starts a container
            current = {"name": key, "state": {}, "lastState": {}, "ready": False, "restartCount": 0}
            statuses.append(current)
            specs.append({"name": key, "resources": {}})
            state_key = sub = None
            continue
        if current is None:
            continue
        spec = specs[-1]
        if indent <= 4:
            sub = None
            if key in ("State", "Last State"):
                state_key = "state" if key == "State" else "lastState"
                phase = value.split()[0].lower() if value else ""
                if phase in ("waiting", "running", "terminated"):
                    current[state_key] = {phase: {}}
                continue
            state_key = None
            if key == "Image":
                spec["image"] = value
                current["image"] = value
            elif key == "Ready":
                current["ready"] = value == "True"
            elif key == "Restart Count" and value.isdigit():
                current["restartCount"] = int(value)
            elif key in ("Limits", "Requests"):
                sub = key.lower()
                spec["resources"][sub] = {}
            elif key in ("Liveness", "Readiness", "Startup"):
                spec[f"{key.lower()}Probe"] = {"describe": value}
        elif state_key and current[state_key]:
            phase = next(iter(current[state_key]))
            name = {"Reason": "reason", "Exit Code": "exitCode", "Message": "message", "Signal": "signal"}.get(key)
            if name:
                current[state_key][phase][name] = int(value) if name == "exitCode" and value.lstrip("-").isdigit() \
                    else value
        elif sub:
            spec["resources"][sub][key] = value
    return specs, statuses


def _conditions(lines: list[str]) -> list[dict[str, Any]]:
    rows = [ln for _, ln in _section(lines, "Conditions")]
    if not rows:
        return []
    header = _SPLIT.split(rows[0].strip())
    out = []
    for ln in rows[1:]:
        if not ln.strip() or set(ln.strip()) <= {"-", " "}:
            continue
        parts = _SPLIT.split(ln.strip(), maxsplit=len(header) - 1)
        row = dict(zip(header, parts))
        out.append({"type": row.get("Type", ""), "status": row.get("Status", ""), "reason": row.get("Reason", ""),
                    "message": row.get("Message", "")})
    return out


def _events(lines: list[str], first_line: int, source: str, ref: ObjectRef) -> list[Event]:
    out: list[Event] = []
    rows = _section(lines, "Events")
    header = next((_SPLIT.split(ln.strip()) for _, ln in rows if ln.strip().startswith("Type")), None)
    if not header:
        return out
    for i, ln in rows:
        text = ln.strip()
        if not text or text.startswith("Type") or set(text) <= {"-", " "}:
            continue
        parts = _SPLIT.split(text, maxsplit=len(header) - 1)
        row = dict(zip(header, parts))
        age = row.get("Age", "")
        m = re.search(r"\(x(\d+) over", age)
        out.append(Event(ref, row.get("Type", ""), row.get("Reason", ""), row.get("Message", ""),
                         int(m.group(1)) if m else 1, f"{source}:{first_line + i}", " ".join(text.split())))
    return out


def _int(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def parse_describe(text: str, source: str) -> tuple[list[K8sObject], list[Event]]:
    """Objects and events from ``kubectl describe`` output (one or more objects).

    Returns:
        ``(objects, events)``; each object's ``data`` has the ``-o json`` shape for the fields
        read, and ``data["_describe"] = True``.
    """
    objects: list[K8sObject] = []
    events: list[Event] = []
    for first_line, lines in _blocks(text):
        fields: dict[str, str] = {}
        field_line: dict[str, int] = {}
        sections: set[str] = set()
        for i, ln in enumerate(lines):
            m = _FIELD.match(ln)
            if m:
                key, value = m.group(1).strip(), (m.group(2) or "").strip()
                if value:
                    fields.setdefault(key, value)
                    field_line.setdefault(key, i)
                else:
                    sections.add(key)
        name = fields.get("Name", "")
        if not name:
            continue
        ns = fields.get("Namespace", "")
        kind = _guess_kind(fields, sections)
        here = f"{source}:{first_line}"
        meta: dict[str, Any] = {"name": name}
        if ns:
            meta["namespace"] = ns
        if "Labels" in field_line:
            meta["labels"] = _labels(lines, field_line["Labels"], fields["Labels"])
        controlled = fields.get("Controlled By", "")
        if "/" in controlled:
            ck, _, cn = controlled.partition("/")
            meta["ownerReferences"] = [{"kind": kind_of(ck), "name": cn, "controller": True}]
        data: dict[str, Any] = {"kind": kind, "metadata": meta, "spec": {}, "status": {}, "_describe": True}
        conditions = _conditions(lines)
        if conditions:
            data["status"]["conditions"] = conditions
        _fill(kind, data, fields, lines)
        ref = ObjectRef(kind, ns, name)
        objects.append(K8sObject(kind, ns, name, data, here))
        events += _events(lines, first_line, source, ref)
    return objects, events


def _fill(kind: str, data: dict[str, Any], fields: dict[str, str], lines: list[str]) -> None:
    spec, status = data["spec"], data["status"]
    if kind == "Pod":
        status["phase"] = fields.get("Status", "")
        for key in ("Reason", "Message"):
            if key in fields:
                status[key.lower()] = fields[key]
        node = fields.get("Node", "")
        if node and node != "<none>":
            spec["nodeName"] = node.split("/")[0]
        specs, statuses = _containers(lines, "Containers")
        ispecs, istatuses = _containers(lines, "Init Containers")
        spec["containers"], spec["initContainers"] = specs, ispecs
        status["containerStatuses"], status["initContainerStatuses"] = statuses, istatuses
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        rep = fields.get("Replicas", "")
        desired = _int(rep, r"(\d+)\s+desired") or _int(rep, r"^(\d+)")
        spec["replicas"] = desired if desired is not None else 1
        pods = fields.get("Pods Status", "")
        ready = _int(pods, r"(\d+)\s+Running")
        avail = _int(rep, r"(\d+)\s+available")
        status["replicas"] = _int(rep, r"(\d+)\s+(?:total|current)") or spec["replicas"]
        status["readyReplicas"] = ready if ready is not None else avail if avail is not None else 0
        status["availableReplicas"] = avail if avail is not None else status["readyReplicas"]
        spec["selector"] = {"matchLabels": _selector(fields.get("Selector", ""))}
    elif kind == "DaemonSet":
        desired = _int(fields.get("Desired Number of Nodes Scheduled", ""), r"(\d+)") or 0
        ready = _int(fields.get("Number of Nodes Scheduled with Available Pods", ""), r"(\d+)")
        status["desiredNumberScheduled"] = desired
        status["numberReady"] = ready if ready is not None else _int(fields.get("Pods Status", ""), r"(\d+)\s+Running")
        status["numberMisscheduled"] = _int(fields.get("Number of Nodes Misscheduled", ""), r"(\d+)") or 0
    elif kind == "Job":
        pods = fields.get("Pods Statuses", "")
        status["failed"] = _int(pods, r"(\d+)\s+Failed") or 0
        status["succeeded"] = _int(pods, r"(\d+)\s+Succeeded") or 0
        status["active"] = _int(pods, r"(\d+)\s+Active") or 0
        spec["backoffLimit"] = _int(fields.get("Backoff Limit", ""), r"(\d+)")
    elif kind == "CronJob":
        spec["schedule"] = fields.get("Schedule", "")
        spec["suspend"] = fields.get("Suspend", "False").lower() == "true"
    elif kind == "Service":
        spec["selector"] = _selector(fields.get("Selector", ""))
        spec["type"] = fields.get("Type", "ClusterIP")
        endpoints = fields.get("Endpoints", "")
        data["_endpoints"] = [] if endpoints in ("", "<none>") else [e.strip() for e in endpoints.split(",")]
    elif kind == "PersistentVolumeClaim":
        status["phase"] = fields.get("Status", "")
        sc = fields.get("StorageClass", "")
        if sc and sc != "<none>":
            spec["storageClassName"] = sc
    elif kind == "HorizontalPodAutoscaler":
        ref = fields.get("Reference", "")
        if "/" in ref:
            k, _, n = ref.partition("/")
            spec["scaleTargetRef"] = {"kind": kind_of(k), "name": n}
