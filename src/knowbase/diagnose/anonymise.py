"""Stable keyed tokens for names, namespaces, labels, hosts, IPs, registries and paths.

Before any text reaches a model that is not in-process, every identifying value is replaced
by a token ``CATEGORY-HEX``: the first 6 (on a clash, 10) hex digits of
``HMAC-SHA256(key, category + ":" + value)`` (RFC 2104). The same value under the same key
always gets the same token, so a response cached for one run serves the next; a per-home key
(``$KNOWBASE_HOME/diagnose.key``, 32 random bytes, mode 0600) keeps tokens stable across
runs, a per-run key (:meth:`Anonymizer.per_run`) makes them unlinkable.

Masked: object names, namespaces (except the built-in ``default``, ``kube-system``,
``kube-public``, ``kube-node-lease``), label and selector values, container, volume, node,
Service, Secret, ConfigMap and claim names (from the objects and the events' objects, and
quoted after a kind word in messages: ``configmap "app-config" not found``), host names
(except public Kubernetes and registry domains), IPv4 addresses, private registries
(``registry.corp:5000/``), UIDs and absolute paths outside the system folders. Masking is
applied to object fields, events and logs alike (K8sGPT masks object names but sends event
text as is, k8sgpt #560).

:meth:`Anonymizer.unmask` restores the originals in the model's answer. The mapping lives only
in this object: it is never printed, logged or traced, and ``repr`` shows only a count.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from knowbase.diagnose.inputs import Snapshot

BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# Kubernetes vocabulary that appears in name fields but identifies nothing (resource names,
# protocols, well-known ports) and would break the text if masked
_VOCABULARY = frozenset({
    "cpu", "memory", "storage", "ephemeral-storage", "pods", "http", "https", "tcp", "udp", "sctp", "grpc", "metrics",
    "true", "false", "none", "tmp", "kube-api-access", "default", "kubernetes", "standard", "Pod", "Node", "Service",
}) | BUILTIN_NAMESPACES
_PUBLIC_DOMAINS = ("kubernetes.io", "k8s.io", "docker.io", "docker.com", "gcr.io", "ghcr.io", "quay.io", "github.com",
                   "golang.org", "googleapis.com", "cluster.local", "svc")
_FILE_TLDS = frozenset({
    "yaml", "yml", "json", "go", "py", "js", "ts", "java", "jar", "class", "conf", "cfg", "ini", "log", "txt", "sh",
    "so", "html", "xml", "toml", "md", "pem", "crt", "key", "sock", "pid", "lock", "rb", "php", "cs", "kt", "scala",
    "exe", "dll", "tar", "gz", "zip", "jpg", "png", "csv", "sql", "db", "properties", "env", "lang", "util", "err", "out", "status", "spec", "metadata", "containers", "apps", "batch", "v1", "v2", "proto", "main",
})
_SYSTEM_PATHS = ("/var/run/secrets/", "/var/lib/kubelet", "/var/log", "/proc", "/sys", "/dev", "/usr", "/bin",
                 "/sbin", "/lib", "/etc", "/run/containerd", "/var/lib/containerd", "/opt/cni", "/tmp", "/var/run/docker",
                 "/run/", "/pause", "/healthz", "/readyz", "/livez", "/metrics")

_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.]*\d)")
_UID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_REGISTRY_PORT = re.compile(r"(?<![\w./-])([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?:\d{2,5})(?=/)")
_HOST = re.compile(r"(?<![\w.@/-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24}))(?!\.?[A-Za-z0-9_-])")
_PATH = re.compile(r"(?<![\w.:/~-])((?:/[\w.@+-]+){2,})/?")
_QUOTED = re.compile(
    r'\b(?:configmaps?|secrets?|persistentvolumeclaims?|pvc|serviceaccounts?|services?|pods?|nodes?|namespaces?|'
    r'storageclass(?:es)?|deployments?|ingressclass(?:es)?|endpoints|volumes?|claim|statefulsets?|daemonsets?|'
    r'replicasets?|jobs?|cronjobs?|ingress(?:es)?|key)[ =]+"([^"\s]{1,253})"', re.IGNORECASE)
_IMAGE = re.compile(r'(?i)\bimage(?:\s+|:\s*|=)"?([a-z0-9][\w.:/@-]*\w)')
_PUBLIC_REGISTRIES = ("docker.io", "registry.k8s.io", "k8s.gcr.io", "quay.io", "ghcr.io", "gcr.io", "mcr.microsoft.com",
                      "public.ecr.aws", "registry-1.docker.io")
_ASSIGNED = re.compile(r"Successfully assigned ([\w.-]+)/([\w.-]+) to ([\w.-]+)")
_KUBELET_POD = re.compile(r"\bpod=([\w.-]+)_([\w.-]+)\(")

_SHORT_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?:ns|obj|lbl|ctr|node|host|registry|ip|uid|path)-[0-9a-f]{4,5}"
                          r"(?![A-Za-z0-9])")
_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?:ns|obj|lbl|ctr|node|host|registry|ip|uid|path)-[0-9a-f]{6}(?:[0-9a-f]{4})?"
                    r"(?:\.example)?(?![A-Za-z0-9])")

# fields whose string values are names worth masking, by category
_NAME_FIELDS: dict[str, str] = {
    "name": "obj", "generateName": "obj", "claimName": "obj", "secretName": "obj", "serviceName": "obj",
    "serviceAccountName": "obj", "serviceAccount": "obj", "volumeName": "obj", "ingressClassName": "obj",
    "storageClassName": "obj", "configMapRef": "obj", "nodeName": "node", "hostname": "host", "host": "host",
    "subdomain": "obj", "clusterName": "obj",
}


def _hmac_hex(key: bytes, category: str, value: str) -> str:
    return hmac.new(key, f"{category}:{value}".encode(), hashlib.sha256).hexdigest()


class Anonymizer:
    """Replace identifying values with keyed tokens and restore them.

    Args:
        key: the HMAC key (at least 16 bytes).

    Example::

        anon = Anonymizer(b"k" * 32)
        anon.add("payments", "ns")              # 'ns-3f9a1c' (depends on the key)
        masked = anon.mask("pod payments/api-1 on 10.0.0.7")
        anon.unmask(masked)                     # 'pod payments/api-1 on 10.0.0.7'
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the anonymisation key must be at least 16 bytes")
        self._key = key
        self._forward: dict[str, str] = {}
        self._reverse: dict[str, str] = {}
        self._known: re.Pattern[str] | None = None

    @classmethod
    def per_run(cls) -> Anonymizer:
        """A fresh random key: tokens differ from run to run (and the cache never hits)."""
        return cls(os.urandom(32))

    @classmethod
    def for_home(cls, home: str | os.PathLike[str]) -> Anonymizer:
        """The key stored in ``home/diagnose.key`` (created, mode 0600, on first use); a per-run
        key when the folder cannot be written."""
        path = Path(home) / "diagnose.key"
        try:
            return cls(path.read_bytes())
        except (FileNotFoundError, ValueError):
            pass
        except OSError:
            return cls.per_run()
        key = os.urandom(32)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        except OSError:
            return cls.per_run()
        return cls(key)

    def __repr__(self) -> str:
        return f"Anonymizer({len(self._forward)} values masked)"

    def __len__(self) -> int:
        return len(self._forward)

    # --- building the table ---------------------------------------------------------------
    def add(self, value: str, category: str = "obj") -> str:
        """The token for ``value`` (registered on first use); values shorter than 3 characters
        and words of the Kubernetes vocabulary (``cpu``, ``http``; for namespaces only the
        built-in ones) are returned as is."""
        value = value.strip()
        # a namespace is masked even when it is a common word ("storage", "metrics"): it names the tenant
        vocabulary = value in BUILTIN_NAMESPACES if category == "ns" else value in _VOCABULARY
        if len(value) < 3 or vocabulary or _TOKEN.fullmatch(value):
            return value
        if value in self._forward:
            return self._forward[value]
        digest = _hmac_hex(self._key, category, value)
        suffix = ".example" if category in ("host", "registry") else ""
        token = f"{category}-{digest[:6]}{suffix}"
        if token in self._reverse:
            token = f"{category}-{digest[:10]}{suffix}"
        self._forward[value] = token
        self._reverse[token] = value
        self._known = None
        return token

    def collect(self, snap: Snapshot) -> None:
        """Register the names in ``snap``'s objects (name fields, labels, selectors, namespaces)
        and events' objects; text patterns (hosts, IPs, paths) are found by :meth:`mask`."""
        for obj in snap.objects:
            self._walk(obj.data)
            self.add(obj.name, "obj")
            if obj.namespace not in BUILTIN_NAMESPACES:
                self.add(obj.namespace, "ns")
        for ev in snap.events:
            self.add(ev.object.name, "node" if ev.object.kind == "Node" else "obj")
            if ev.object.namespace and ev.object.namespace not in BUILTIN_NAMESPACES:
                self.add(ev.object.namespace, "ns")
            for m in _ASSIGNED.finditer(ev.message):
                if m.group(1) not in BUILTIN_NAMESPACES:
                    self.add(m.group(1), "ns")
                self.add(m.group(2), "obj")
                self.add(m.group(3), "node")
        for log in snap.logs:
            self.add(log.target, "obj")
            self.add(log.container, "ctr")

    def _walk(self, node: Any, key: str = "", depth: int = 0) -> None:
        if depth > 40:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                k = str(k)
                if k in ("labels", "matchLabels", "selector", "nodeSelector") and isinstance(v, dict):
                    for lv in v.values():
                        if isinstance(lv, str):
                            self.add(lv, "lbl")
                    if k == "selector" and ("matchLabels" in v or "matchExpressions" in v):
                        self._walk(v, k, depth + 1)
                    continue
                if k == "namespace" and isinstance(v, str):
                    if v not in BUILTIN_NAMESPACES:
                        self.add(v, "ns")
                    continue
                if k == "values" and isinstance(v, list):
                    for lv in v:
                        if isinstance(lv, str):
                            self.add(lv, "lbl")
                    continue
                if k in ("annotations", "managedFields", "resources", "limits", "requests"):
                    continue
                if k in _NAME_FIELDS and isinstance(v, str):
                    self.add(v, _NAME_FIELDS[k])
                    continue
                self._walk(v, k, depth + 1)
        elif isinstance(node, list):
            for item in node:
                self._walk(item, key, depth + 1)

    # --- masking ----------------------------------------------------------------------------
    def _known_pattern(self) -> re.Pattern[str] | None:
        if self._known is None and self._forward:
            names = sorted(self._forward, key=len, reverse=True)
            # names hold no "_", so "pod=web-1_shop(uid)" (kubelet's back-off message) splits at it
            self._known = re.compile(r"(?<![A-Za-z0-9.-])(?:" + "|".join(re.escape(n) for n in names)
                                     + r")(?![A-Za-z0-9-]|\.[A-Za-z0-9])")
        return self._known

    def mask(self, text: str) -> str:
        """``text`` with every registered value and every host, IP, UID, registry and path
        pattern replaced by its token (new values are registered on the way)."""
        if not text:
            return text
        text = _IMAGE.sub(lambda m: m.group(0).replace(m.group(1), self._image(m.group(1))), text)
        text = _QUOTED.sub(lambda m: m.group(0).replace(f'"{m.group(1)}"', f'"{self._quoted(m.group(1))}"'), text)
        for m in _KUBELET_POD.finditer(text):
            self.add(m.group(1), "obj")
            if m.group(2) not in BUILTIN_NAMESPACES:
                self.add(m.group(2), "ns")
        known = self._known_pattern()
        if known is not None:
            text = known.sub(lambda m: self._forward.get(m.group(0), m.group(0)), text)
        text = _UID.sub(lambda m: self.add(m.group(0), "uid"), text)
        text = _REGISTRY_PORT.sub(lambda m: self.add(m.group(1), "registry"), text)
        text = _IPV4.sub(lambda m: self.add(m.group(0), "ip"), text)
        text = _HOST.sub(self._host, text)
        text = _PATH.sub(self._path, text)
        return text

    def _image(self, ref: str) -> str:
        """An image reference with a private registry and its folders masked; the last path part
        (the image's own name) and the tag or digest stay, since they carry the error
        (``registry.corp/team/app:v2`` -> ``registry-1a2b3c.example/obj-4d5e6f/app:v2``)."""
        parts = ref.split("/")
        if len(parts) < 2:
            return ref
        first = parts[0]
        is_registry = "." in first or ":" in first or first == "localhost"
        if is_registry and first in _PUBLIC_REGISTRIES:
            return ref
        head = [self.add(first, "registry")] if is_registry else [self.add(first, "obj")]
        middle = [self.add(p, "obj") for p in parts[1:-1]]
        return "/".join([*head, *middle, parts[-1]])

    def _quoted(self, value: str) -> str:
        if "/" in value:
            return "/".join(self._quoted(p) for p in value.split("/"))
        if value in BUILTIN_NAMESPACES:
            return value
        return self._forward.get(value) or self.add(value, "obj")

    def _host(self, m: re.Match[str]) -> str:
        host, tld = m.group(1), m.group(2)
        if tld in _FILE_TLDS or _TOKEN.fullmatch(host) or any(host == d or host.endswith("." + d)
                                                             for d in _PUBLIC_DOMAINS):
            return host
        if host.count(".") == 1 and len(tld) > 6:  # "values.yaml"-like words, "pod.spec"
            return host
        return self.add(host, "host")

    def _path(self, m: re.Match[str]) -> str:
        path = m.group(1)
        if path.startswith(_SYSTEM_PATHS) or _TOKEN.search(path):
            return m.group(0)
        return m.group(0).replace(path, self.add(path, "path"))

    def unmask(self, text: str) -> str:
        """``text`` with every token restored to its original value, also a token a model
        shortened by a digit or two when only one token starts so (tokens a model invented stay
        as they are)."""
        for _ in range(4):  # a host token may hold a name token: restore until nothing changes
            new = _TOKEN.sub(lambda m: self._reverse.get(m.group(0), m.group(0)), text)
            if new == text:
                break
            text = new
        # a small model sometimes drops a hex digit ("obj-94d5f" for "obj-94d5fa"): restore a
        # shortened token when exactly one registered token starts with it
        return _SHORT_TOKEN.sub(self._restore_short, text)

    def _restore_short(self, m: re.Match[str]) -> str:
        found = [t for t in self._reverse if t.startswith(m.group(0))]
        return self._reverse[found[0]] if len(found) == 1 else m.group(0)

    def leaks(self, text: str, values: Iterable[str] | None = None) -> list[str]:
        """The registered originals (or ``values``) that occur in ``text`` as whole words: what
        a leak check looks for."""
        check = list(values) if values is not None else list(self._forward)
        return [v for v in check if re.search(r"(?<![A-Za-z0-9.-])" + re.escape(v) + r"(?![A-Za-z0-9-])", text)]
