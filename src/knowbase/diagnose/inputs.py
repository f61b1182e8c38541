"""Read what ``kubectl`` prints into one :class:`Snapshot` of objects, events and log lines.

Recognised inputs (several files at once, ``-`` for stdin; the format is detected from
the text, not the file name):

* ``kubectl get KINDS -A -o json`` / ``-o yaml``: a ``List`` (or ``PodList``...), single
  objects, several YAML documents. ``Event`` objects (``v1`` and ``events.k8s.io/v1``)
  become events.
* ``kubectl describe KIND [NAME]`` text, one or more objects (Pod, Node, Deployment,
  ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Service, PersistentVolumeClaim,
  HorizontalPodAutoscaler, Ingress...): its fields, container states, conditions and the
  ``Events:`` table.
* ``kubectl get events`` text (with or without ``-A``; the old column set too).
* ``kubectl get pods`` / ``kubectl get nodes`` tables (``-o wide`` too).
* anything else is a container log (``kubectl logs``; ``--prefix`` lines
  ``[pod/NAME/CONTAINER] ...`` name their Pod, otherwise the file name is matched
  against Pod names).

Bad input never crashes or exhausts memory: a file larger than
:attr:`DataLimits.max_bytes` is refused from its size, before it is read; JSON depth and
YAML aliases/nodes are checked before expansion (:mod:`knowbase.safety.datafiles`); binary
data is refused. Errors name the file and the line or field; the other inputs are still read.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from knowbase.diagnose.types import InputError, ObjectRef
from knowbase.errors import InputFileError, SafetyError
from knowbase.safety.datafiles import DEFAULT_LIMITS, DataLimits, check_json, check_yaml

# kubectl's short, singular and plural resource names -> Kind
KINDS: dict[str, str] = {}
for _kind, _names in {
    "Pod": "pod pods po", "Node": "node nodes no", "Deployment": "deployment deployments deploy",
    "ReplicaSet": "replicaset replicasets rs", "StatefulSet": "statefulset statefulsets sts",
    "DaemonSet": "daemonset daemonsets ds", "Job": "job jobs", "CronJob": "cronjob cronjobs cj",
    "Service": "service services svc", "Endpoints": "endpoints ep", "Ingress": "ingress ingresses ing",
    "IngressClass": "ingressclass ingressclasses", "PersistentVolumeClaim": "persistentvolumeclaim "
    "persistentvolumeclaims pvc", "PersistentVolume": "persistentvolume persistentvolumes pv",
    "HorizontalPodAutoscaler": "horizontalpodautoscaler horizontalpodautoscalers hpa",
    "PodDisruptionBudget": "poddisruptionbudget poddisruptionbudgets pdb",
    "NetworkPolicy": "networkpolicy networkpolicies netpol", "ConfigMap": "configmap configmaps cm",
    "Secret": "secret secrets", "Namespace": "namespace namespaces ns", "StorageClass": "storageclass sc",
    "ServiceAccount": "serviceaccount serviceaccounts sa", "Event": "event events ev",
}.items():
    for _n in _names.split():
        KINDS[_n] = _kind


def kind_of(name: str) -> str:
    """The Kind for a kubectl resource name (``pod``, ``deployment.apps``, ``svc``); the name
    title-cased when unknown."""
    base = name.split(".", 1)[0].lower()
    return KINDS.get(base, name[:1].upper() + name[1:])


@dataclass(frozen=True, slots=True)
class K8sObject:
    """One object as kubectl would print it with ``-o json`` (``data``), and where it was read."""

    kind: str
    namespace: str
    name: str
    data: dict[str, Any]
    source: str

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.kind, self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Event:
    """One Kubernetes event: the object it is about, ``type`` (Normal/Warning), ``reason``,
    ``message``, ``count``, the line as read (``text``) and where (``source``)."""

    object: ObjectRef
    type: str
    reason: str
    message: str
    count: int
    source: str
    text: str


@dataclass(frozen=True, slots=True)
class LogText:
    """Container log lines: ``target`` names the Pod (from ``--prefix``) or is the file stem;
    ``lines`` are ``(line number, text)``."""

    target: str
    container: str
    source: str
    lines: tuple[tuple[int, str], ...]


@dataclass
class Snapshot:
    """Everything read: objects, events, logs, the inputs named and the errors met."""

    objects: list[K8sObject] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    logs: list[LogText] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    def extend(self, other: Snapshot) -> None:
        self.objects += other.objects
        self.events += other.events
        self.logs += other.logs
        self.inputs += other.inputs
        self.errors += other.errors


# --- reading files ----------------------------------------------------------------------
def read_bytes(path: str, *, limits: DataLimits = DEFAULT_LIMITS, stdin: IO[bytes] | None = None) -> bytes:
    """The bytes of ``path`` (``-``: stdin), refused before reading when over ``limits.max_bytes``.

    Raises:
        InputFileError: missing, unreadable, or too large (``path``, ``reason``).
    """
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            raise InputFileError(f"-: standard input is larger than the limit of {limits.max_bytes} bytes",
                                 path="-", reason="size")
        return data
    try:
        size = os.stat(path).st_size
        if size > limits.max_bytes:
            raise InputFileError(f"{path}: {size} bytes, larger than the limit of {limits.max_bytes} bytes",
                                 path=path, reason="size")
        with open(path, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)  # a file that grew since stat is still bounded
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file", path=path, reason="missing") from exc
    except IsADirectoryError as exc:
        raise InputFileError(f"{path}: is a folder, not a file", path=path, reason="folder") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror or exc}", path=path, reason="unreadable") from exc
    if len(data) > limits.max_bytes:
        raise InputFileError(f"{path}: larger than the limit of {limits.max_bytes} bytes", path=path, reason="size")
    return data


def decode(data: bytes, source: str) -> str:
    """UTF-8 text (a BOM dropped); binary data refused.

    Raises:
        InputFileError: NUL bytes or invalid UTF-8 (names the byte offset).
    """
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise InputFileError(f"{source}: binary data (a NUL byte at offset {nul}), not kubectl output",
                             path=source, reason="binary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputFileError(f"{source}: line {line}: not UTF-8 text (byte offset {exc.start})", path=source,
                             reason="encoding", line=line) from exc
    return text.removeprefix("\ufeff")


EMPTY_INPUT = "empty: no Kubernetes objects, events or log lines in it (did kubectl fail?)"


def _is_empty(part: Snapshot) -> bool:
    """True when an input gave nothing to analyse (blank lines do not count as a log)."""
    has_log = any(text.strip() for log in part.logs for _, text in log.lines)
    return not (part.objects or part.events or has_log or part.errors)


def read_inputs(paths: Sequence[str], *, limits: DataLimits = DEFAULT_LIMITS,
                stdin: IO[bytes] | None = None) -> Snapshot:
    """Read every input into one :class:`Snapshot`; a file that cannot be read is recorded in
    :attr:`Snapshot.errors` and the others are still read.

    Args:
        paths: files, or ``-`` for stdin (read once).
        limits: size, depth and YAML limits per file.
        stdin: the stream for ``-`` (default ``sys.stdin.buffer``).
    """
    snap = Snapshot()
    for path in paths:
        source = "-" if path == "-" else path
        try:
            text = decode(read_bytes(path, limits=limits, stdin=stdin), source)
            part = parse_text(text, source=source, name=Path(path).name if path != "-" else "stdin",
                              limits=limits)
        except InputFileError as exc:
            snap.errors.append(InputError(source, _without_source(str(exc), source)))
            continue
        if _is_empty(part):
            # an empty file (a failed `kubectl ... > dump.json`) must not read as a healthy cluster
            snap.errors.append(InputError(source, EMPTY_INPUT))
            continue
        snap.extend(part)
    return snap


def read_texts(documents: Sequence[tuple[str, str]], *, limits: DataLimits = DEFAULT_LIMITS) -> Snapshot:
    """Parse kubectl output given as text (the HTTP API): ``(name, text)`` pairs, all or nothing.

    Every document's size (UTF-8 bytes) is checked against ``limits.max_bytes`` before any is
    parsed; then each is checked for binary data (NUL, unpaired surrogates) and parsed as a
    file of that name would be (:func:`parse_text`; ``name`` is the source of errors and
    evidence and is matched against Pod names for plain logs). Objects a document holds
    that lack a field (``items[3].metadata.name``) are recorded in :attr:`Snapshot.errors`.

    Raises:
        InputFileError: the first document that is too large (``reason="size"``), binary
            (``"binary"``), not text (``"encoding"``) or malformed JSON/YAML (``"json"``,
            ``"yaml"``, ``"limit"``, with ``line``); ``path`` is its name and ``index`` its
            position in ``documents``.
    """
    for i, (name, text) in enumerate(documents):
        size = len(text) if len(text) * 4 <= limits.max_bytes else len(text.encode("utf-8", "surrogatepass"))
        if size > limits.max_bytes:
            raise InputFileError(f"{name}: {size} bytes, larger than the limit of {limits.max_bytes} bytes",
                                 path=name, reason="size", index=i)
    snap = Snapshot()
    for i, (name, text) in enumerate(documents):
        try:
            nul = text.find("\x00")
            if nul >= 0:
                line = text.count("\n", 0, nul) + 1
                raise InputFileError(f"{name}: line {line}: binary data (a NUL character), not kubectl output",
                                     path=name, reason="binary", line=line)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                line = text.count("\n", 0, exc.start) + 1
                raise InputFileError(f"{name}: line {line}: not text (an unpaired surrogate)", path=name,
                                     reason="encoding", line=line) from exc
            part = parse_text(text.removeprefix("\ufeff"), source=name, name=name, limits=limits)
            if _is_empty(part):
                raise InputFileError(f"{name}: {EMPTY_INPUT}", path=name, reason="empty")
            snap.extend(part)
        except InputFileError as exc:
            exc.detail["index"] = i
            setattr(exc, "index", i)  # noqa: B010 - a structured field, as KnowbaseError sets them
            raise
    return snap


def _without_source(message: str, source: str) -> str:
    return message[len(source) + 2:] if message.startswith(source + ": ") else message


# --- detection ----------------------------------------------------------------------------
_YAML_START = re.compile(r"^(?:---|apiVersion:|kind:|items:|metadata:)", re.MULTILINE)
_JSON_START = re.compile(r"^(?:\{|\[\s*(?:[{[\]]|$))")
_DESCRIBE_START = re.compile(r"^Name:\s+\S")
_TABLE_SPLIT = re.compile(r"\s{2,}|\t+")


def parse_text(text: str, *, source: str, name: str = "", limits: DataLimits = DEFAULT_LIMITS) -> Snapshot:
    """Parse one input's text (the format detected from the text).

    Args:
        text: the whole input.
        source: how errors and evidence name it (the path, ``-``).
        name: the file name, matched against Pod names for plain logs.

    Raises:
        InputFileError: malformed JSON/YAML (names the line), a limit passed, or an object
            without the fields every object has (names the field).
    """
    snap = Snapshot(inputs=[source])
    body = text.lstrip()
    first = _first_line(text)
    if _JSON_START.match(body) and not _is_json_lines(body):
        _add_objects(snap, _load_json(text, source, limits), source)
    elif _YAML_START.match(body):
        for i, doc in enumerate(_load_yaml(text, source, limits)):
            if doc is None:
                continue
            _add_objects(snap, doc, source if i == 0 else f"{source}: document {i + 1}")
    elif _DESCRIBE_START.match(first):
        from knowbase.diagnose.describe import parse_describe

        objects, events = parse_describe(text, source)
        snap.objects += objects
        snap.events += events
    elif _is_events_header(first):
        snap.events += parse_events_table(text, source)
    elif _is_table_header(first):
        snap.objects += parse_get_table(text, source)
    else:
        snap.logs += parse_logs(text, source, name)
    return snap


def _is_json_lines(body: str) -> bool:
    """A structured log (one JSON object per line) rather than one JSON document."""
    lines = [ln for ln in body.splitlines()[:5] if ln.strip()]
    if len(lines) < 2 or not lines[0].rstrip().endswith("}"):
        return False
    try:
        json.loads(lines[0])
    except ValueError:
        return False
    return True


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _is_events_header(line: str) -> bool:
    cols = set(_TABLE_SPLIT.split(line.strip()))
    return {"REASON", "MESSAGE"} <= cols and ("OBJECT" in cols or "NAME" in cols or "KIND" in cols)


def _is_table_header(line: str) -> bool:
    cols = _TABLE_SPLIT.split(line.strip())
    return "NAME" in cols[:2] and "STATUS" in cols and ("READY" in cols or "ROLES" in cols)


def _load_json(text: str, source: str, limits: DataLimits) -> Any:
    try:
        check_json(text, limits)
    except SafetyError as exc:
        raise InputFileError(f"{source}: {exc}", path=source, reason="limit", line=getattr(exc, "line", None)) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}",
                             path=source, reason="json", line=exc.lineno) from exc
    except RecursionError as exc:  # pragma: no cover - check_json refuses depth first
        raise InputFileError(f"{source}: JSON nested too deeply", path=source, reason="limit") from exc


def _load_yaml(text: str, source: str, limits: DataLimits) -> list[Any]:
    import yaml

    try:
        check_yaml(text, limits)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return list(yaml.load_all(text, Loader=loader))
    except SafetyError as exc:
        raise InputFileError(f"{source}: {exc}", path=source, reason="limit", line=getattr(exc, "line", None)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputFileError(f"{source}: {where}invalid YAML: {problem}", path=source, reason="yaml",
                             line=mark.line + 1 if mark is not None else None) from exc


# --- objects --------------------------------------------------------------------------------
def _add_objects(snap: Snapshot, doc: Any, source: str) -> None:
    """Add a List's items or one object; Events go to ``snap.events``."""
    if isinstance(doc, list):
        items, where, list_kind = doc, "", ""
    elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
        items, where, list_kind = doc["items"], "items", str(doc.get("kind") or "")
    elif isinstance(doc, dict):
        items, where, list_kind = [doc], "", ""
    else:
        raise InputFileError(f"{source}: expected a Kubernetes object or List, found {type(doc).__name__}",
                             path=source, reason="shape")
    default_kind = list_kind[:-4] if list_kind.endswith("List") and list_kind != "List" else ""
    for i, item in enumerate(items):
        field_path = f"{where}[{i}]" if where or len(items) > 1 or isinstance(doc, list) else "(object)"
        here = f"{source}: {field_path}"
        if not isinstance(item, dict):
            snap.errors.append(InputError(source, f"{field_path}: expected an object, found {type(item).__name__}"))
            continue
        kind = item.get("kind") or default_kind
        meta = item.get("metadata")
        if not isinstance(kind, str) or not kind:
            snap.errors.append(InputError(source, f"{field_path}.kind: missing"))
            continue
        if kind.endswith("List") and isinstance(item.get("items"), list):
            _add_objects(snap, item, here)
            continue
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
            snap.errors.append(InputError(source, f"{field_path}.metadata.name: missing or not a string"))
            continue
        namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
        if kind == "Event":
            event = event_from_object(item, here)
            if event is not None:
                snap.events.append(event)
            continue
        snap.objects.append(K8sObject(kind, namespace or "", meta["name"], item, here))


def event_from_object(item: dict[str, Any], source: str) -> Event | None:
    """An :class:`Event` from a ``v1`` or ``events.k8s.io/v1`` Event object (None if it names no object)."""
    inv = item.get("involvedObject") or item.get("regarding")
    if not isinstance(inv, dict):
        return None
    ref = ObjectRef(str(inv.get("kind") or ""), str(inv.get("namespace") or ""), str(inv.get("name") or ""))
    message = str(item.get("message") or item.get("note") or "")
    reason = str(item.get("reason") or "")
    etype = str(item.get("type") or "")
    count = item.get("count") or (item.get("series") or {}).get("count") or 1
    count = count if isinstance(count, int) else 1
    text = f"{etype} {reason} {ref.kind.lower()}/{ref.name}: {message}".strip()
    return Event(ref, etype, reason, message, count, source, text)


# --- tables ---------------------------------------------------------------------------------
def _header_starts(header_line: str) -> list[int]:
    """Start offsets of the header's columns (names may hold one space: ``LAST SEEN``)."""
    return [m.start() for m in re.finditer(r"\S+(?: \S+)*", header_line)]


def _split_row(line: str, n: int, starts: list[int] | None = None) -> list[str]:
    """The ``n`` cells of a table row. kubectl aligns columns (tabwriter), so cells are cut at
    the header's column starts when the row fits them (an empty cell, such as the old events
    table's SUBOBJECT, stays in its place); otherwise at runs of two or more spaces."""
    if starts and len(starts) == n and len(line) > starts[-1] and all(line[s - 1] == " " for s in starts[1:]):
        return [line[a:b].strip() for a, b in zip(starts, [*starts[1:], len(line)])]
    parts = _TABLE_SPLIT.split(line.strip(), maxsplit=n - 1)
    return parts + [""] * (n - len(parts))


def parse_events_table(text: str, source: str) -> list[Event]:
    """Events from ``kubectl get events`` text (``-A`` or not; the old column set too).

    Columns are split at runs of two or more spaces (kubectl pads columns with at least three);
    the message is the rest of the line.
    """
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip())
    header = _TABLE_SPLIT.split(lines[start].strip())
    starts = _header_starts(lines[start])
    cols = {h: i for i, h in enumerate(header)}
    out: list[Event] = []
    for lineno in range(start + 1, len(lines)):
        line = lines[lineno]
        if not line.strip() or _is_events_header(line):
            continue
        row = _split_row(line, len(header), starts)
        def get(name: str, row: list[str] = row) -> str:
            return row[cols[name]].strip() if name in cols else ""

        obj = get("OBJECT")
        if obj and "/" in obj:
            kind_name, _, name = obj.partition("/")
            kind = kind_of(kind_name)
        else:
            kind, name = get("KIND"), get("NAME") or obj
        count = get("COUNT")
        ref = ObjectRef(kind, get("NAMESPACE"), name)
        etype, reason, message = get("TYPE"), get("REASON"), get("MESSAGE")
        out.append(Event(ref, etype, reason, message, int(count) if count.isdigit() else 1,
                         f"{source}:{lineno + 1}", " ".join(line.split())))
    return _namespaces_from_messages(out)


_ASSIGNED = re.compile(r"Successfully assigned ([\w.-]+)/([\w.-]+) to ")


def _namespaces_from_messages(events: list[Event]) -> list[Event]:
    """Events of a table without a NAMESPACE column (``kubectl get events`` in one namespace)
    get the namespace the scheduler's ``Successfully assigned NS/NAME to NODE`` names, when
    exactly one namespace is named."""
    if any(e.object.namespace for e in events):
        return events
    named = {m.group(1) for e in events if (m := _ASSIGNED.search(e.message))}
    if len(named) != 1:
        return events
    ns = named.pop()
    return [replace(e, object=ObjectRef(e.object.kind, "" if e.object.kind == "Node" else ns, e.object.name))
            for e in events]


_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
            "CreateContainerError", "RunContainerError", "InvalidImageName", "ErrImageNeverPull",
            "ContainerCreating", "PodInitializing"}
_TERMINATED = {"OOMKilled", "Error", "Completed", "ContainerCannotRun", "DeadlineExceeded", "StartError"}


def parse_get_table(text: str, source: str) -> list[K8sObject]:
    """Pods or Nodes from ``kubectl get pods`` / ``kubectl get nodes`` tables (``-A``, ``-o wide``).

    The STATUS column becomes the status kubectl derived it from: a waiting or terminated
    container reason (``Init:`` prefixes for init containers), ``Evicted``, ``Pending``,
    ``NotReady`` nodes.
    """
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip())
    header = _TABLE_SPLIT.split(lines[start].strip())
    starts = _header_starts(lines[start])
    cols = {h: i for i, h in enumerate(header)}
    is_node = "ROLES" in cols
    out: list[K8sObject] = []
    for lineno in range(start + 1, len(lines)):
        line = lines[lineno]
        if not line.strip():
            continue
        row = _split_row(line, len(header), starts)

        def get(name: str, row: list[str] = row) -> str:
            return row[cols[name]].strip() if name in cols else ""

        name, ns, status = get("NAME"), get("NAMESPACE"), get("STATUS")
        here = f"{source}:{lineno + 1}"
        if is_node:
            ready = "True" if status.split(",")[0] == "Ready" else "Unknown" if "Unknown" in status else "False"
            data: dict[str, Any] = {"kind": "Node", "metadata": {"name": name},
                                    "status": {"conditions": [{"type": "Ready", "status": ready,
                                                               "message": f"kubectl get nodes: {status}"}]},
                                    "spec": {"unschedulable": "SchedulingDisabled" in status}}
            out.append(K8sObject("Node", "", name, data, here))
            continue
        out.append(K8sObject("Pod", ns, name, _pod_from_status(name, ns, status, get("READY"), get("RESTARTS")),
                             here))
    return out


def _pod_from_status(name: str, ns: str, status: str, ready: str, restarts: str) -> dict[str, Any]:
    reason = status.split(":", 1)[1] if status.startswith("Init:") else status
    key = "initContainerStatuses" if status.startswith("Init:") else "containerStatuses"
    restart_count = int(restarts.split()[0]) if restarts[:1].isdigit() else 0
    cs: dict[str, Any] = {"name": "", "ready": False, "restartCount": restart_count}
    st: dict[str, Any] = {"phase": "Running"}
    if reason in _WAITING:
        cs["state"] = {"waiting": {"reason": reason}}
        st["phase"] = "Pending" if reason in {"ContainerCreating", "PodInitializing"} else "Running"
    elif reason in _TERMINATED:
        cs["state"] = {"terminated": {"reason": reason}}
        st["phase"] = "Succeeded" if reason == "Completed" else "Running"
    elif reason == "Evicted":
        st.update(phase="Failed", reason="Evicted")
    elif reason == "Pending":
        st["phase"] = "Pending"
    else:
        done, _, total = ready.partition("/")
        cs["ready"] = bool(done) and done == total
        cs["state"] = {"running": {}}
        st["phase"] = "Running" if reason == "Running" else reason
    st[key] = [cs]
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns}, "status": st, "_table": True}


# --- logs -------------------------------------------------------------------------------------
_PREFIX = re.compile(r"^\[pod/([^/\]\s]+)/([^\]\s]+)\]\s?(.*)$")


def parse_logs(text: str, source: str, name: str) -> list[LogText]:
    """Container log lines, grouped by the Pod named in ``--prefix`` lines, else under the file
    name's stem (``web-7d9c-abcde.log`` -> ``web-7d9c-abcde``)."""
    stem = re.sub(r"\.(log|txt|out)$", "", name) if name else "stdin"
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _PREFIX.match(line)
        key = (m.group(1), m.group(2)) if m else (stem, "")
        body = m.group(3) if m else line
        groups.setdefault(key, []).append((lineno, body))
    return [LogText(target, container, source, tuple(lines)) for (target, container), lines in groups.items()]
