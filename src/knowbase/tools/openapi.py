"""Tools from an OpenAPI 3.x spec: each selected operation becomes a tool an agent can call.

"The user only provides the API's spec and a description, and it is plugged in"::

    toolset = OpenAPIToolset.from_source("shop.yaml", operations=["getOrder", "listProducts"],
                                         auth=ApiAuth.bearer_from_env("SHOP_TOKEN"))
    agent = ReActAgent(model, toolset.tools())

What a tool gets from its operation:

* **name**: the ``operationId`` (or ``get_orders_id`` made from method and path);
* **description**: the operation's ``summary`` and ``description``;
* **arguments**: one JSON Schema object holding the path, query and header parameters and
  the JSON request body (its properties flattened into the arguments when no name collides,
  else one ``body`` argument). Local ``$ref``s are resolved (external ones refused), ``allOf``
  merged, ``oneOf``/``anyOf`` kept as alternatives, all within :class:`~knowbase.safety.specs.SpecLimits`
  (depth, node count, enum size; a recursive ``$ref`` is refused);
* **the call**: path parameters substituted (percent-encoded), query and headers placed,
  credentials from :class:`ApiAuth` added (never shown to the model, never in traces), sent
  through :func:`knowbase.safety.urls.request` (host allow-list, no private addresses,
  redirects re-checked, credentials never sent to another origin, size and time limits);
* **the result**: ``HTTP <status>`` and the body, trimmed to a token budget before the model
  sees it (long arrays cut to their first items with a count of the rest, long strings cut;
  HolmesGPT #576: tool output flooding the context). A 4xx/5xx status is a failed call.

Only ``GET`` operations are offered unless the operator names others (``operations=``);
non-``GET`` operations need a person's approval (:mod:`knowbase.tools.approval`) unless
``approve_methods`` says otherwise. The server URL (``servers[0]``, or ``base_url=``) is
checked by the guard when the toolset is built, so a spec pointing at ``169.254.169.254``
is refused before any call.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from knowbase.errors import FetchError, InputFileError, SafetyError, UserError
from knowbase.safety.specs import DEFAULT_SPEC_LIMITS, SpecLimits, parse_document
from knowbase.safety.urls import UrlGuard, request
from knowbase.tools._schema import args_model

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_TOKENS = 600
"""Token budget of one response shown to the model."""
CHARS_PER_TOKEN = 4
"""Estimate used when no tokenizer is given: about 4 characters per token for English text
and JSON (OpenAI's rule of thumb, help.openai.com "What are tokens")."""

_SCHEMA_KEYS = {"type", "description", "enum", "const", "format", "default", "minimum", "maximum",
                "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems",
                "maxItems", "items", "properties", "required", "oneOf", "anyOf", "additionalProperties",
                "nullable"}
_SKIP_HEADERS = {"authorization", "content-type", "accept", "content-length", "host", "cookie"}
Location = Literal["path", "query", "header", "body", "body_whole"]


class SpecError(UserError):
    """An OpenAPI spec cannot be used: unreadable, not OpenAPI 3, or over a limit.

    Fields: ``source`` (file or URL), ``where`` (a JSON pointer into the spec, when known),
    ``reason`` (``parse``, ``version``, ``ref``, ``recursive_ref``, ``depth``, ``size``,
    ``enum``, ``operation``, ``server``, ``tools``).
    """


@dataclass(frozen=True)
class ApiAuth:
    """Credentials for an API, kept out of the model's sight and out of traces.

    Values are read when a call is made; give either the value or the name of an environment
    variable holding it (the usual way: ``ApiAuth.bearer_from_env("SHOP_TOKEN")``).

    Attributes:
        header: header name of an API key (``X-Api-Key``), or None.
        key: the API key value, or None.
        key_env: environment variable holding the API key.
        bearer: a bearer token (sent as ``Authorization: Bearer ...``), or None.
        bearer_env: environment variable holding the bearer token.
    """

    header: str | None = None
    key: str | None = field(default=None, repr=False)
    key_env: str | None = None
    bearer: str | None = field(default=None, repr=False)
    bearer_env: str | None = None

    @classmethod
    def bearer_from_env(cls, variable: str) -> ApiAuth:
        """A bearer token read from environment variable ``variable``."""
        return cls(bearer_env=variable)

    @classmethod
    def api_key_from_env(cls, header: str, variable: str) -> ApiAuth:
        """An API key header (``header``) whose value is read from ``variable``."""
        return cls(header=header, key_env=variable)

    def headers(self) -> dict[str, str]:
        """The credential headers.

        Raises:
            UserError: a named environment variable is not set (``field``).
        """
        out: dict[str, str] = {}
        if self.header:
            value = self.key if self.key is not None else self._env(self.key_env)
            if value:
                out[self.header] = value
        token = self.bearer if self.bearer is not None else self._env(self.bearer_env)
        if token:
            out["Authorization"] = f"Bearer {token}"
        return out

    @staticmethod
    def _env(name: str | None) -> str | None:
        if not name:
            return None
        value = os.environ.get(name)
        if not value:
            raise UserError(f"the API credential variable {name} is not set", field=name)
        return value


# --- loading and $ref resolution --------------------------------------------------------------
def load_spec(source: str | os.PathLike[str] | Mapping[str, Any], *, guard: UrlGuard | None = None,
              limits: SpecLimits = DEFAULT_SPEC_LIMITS, timeout: float = 10.0, transport: Any = None) -> dict[str, Any]:
    """Read an OpenAPI 3.x document (JSON or YAML) from a file, an http(s) URL or a dict.

    Args:
        source: a path, a URL (fetched through ``guard``), or the parsed document.
        guard: the URL guard for a URL source (required for one).
        limits: size and alias limits, checked before parsing.
        timeout: seconds for fetching a URL.
        transport: an httpx transport, for tests.

    Returns:
        the document as a dict (not yet resolved).

    Raises:
        SpecError: unreadable, not a mapping, or not OpenAPI 3.x (``reason``).
        SafetyError: over a limit, or the URL refused by the guard.
    """
    if isinstance(source, Mapping):
        doc: Any = dict(source)
        name = "<spec>"
    else:
        name = str(source)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", name):
            if guard is None:
                raise SpecError(f"{name}: a spec URL needs allowed hosts (--allow-host)", source=name, reason="server")
            fetched = request("GET", name, guard=guard, timeout=timeout, max_bytes=limits.max_bytes + 1,
                              transport=transport)
            if fetched.status >= 400:
                raise FetchError(f"{name}: HTTP {fetched.status}", url=name, status=fetched.status)
            text = fetched.text
        else:
            path = Path(name).expanduser()
            try:
                size = path.stat().st_size
                if size > limits.max_bytes:
                    raise SafetyError(f"{name}: the spec is {size} bytes, over the limit of {limits.max_bytes}",
                                      reason="size", source=name)
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise InputFileError(f"cannot read spec {name}: {exc.strerror or exc}", path=name,
                                     reason="read") from exc
        try:
            doc = parse_document(text, source=name, limits=limits)
        except ValueError as exc:
            raise SpecError(f"{name}: not valid JSON or YAML: {str(exc)[:300]}", source=name, reason="parse") from exc
    if not isinstance(doc, dict):
        raise SpecError(f"{name}: the spec is not a JSON/YAML object", source=name, reason="parse")
    version = str(doc.get("openapi", ""))
    if not version.startswith("3."):
        found = f"swagger {doc['swagger']}" if "swagger" in doc else repr(version or None)
        raise SpecError(f"{name}: not an OpenAPI 3.x spec (found {found}); convert Swagger 2.0 specs first",
                        source=name, reason="version")
    if not isinstance(doc.get("paths"), dict):
        raise SpecError(f"{name}: the spec has no 'paths' object", source=name, reason="parse")
    doc.setdefault("x-knowbase-source", name)
    return doc


class _Resolver:
    """Inlines local ``$ref``s of one document within :class:`SpecLimits`."""

    def __init__(self, doc: Mapping[str, Any], limits: SpecLimits, source: str) -> None:
        self.doc = doc
        self.limits = limits
        self.source = source
        self.nodes = 0

    def fail(self, message: str, where: str, reason: str) -> SpecError:
        return SpecError(f"{self.source}: {message} (at {where})", source=self.source, where=where, reason=reason)

    def lookup(self, ref: str, where: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise self.fail(f"only local references ('#/...') are supported, not {str(ref)[:100]!r}", where, "ref")
        node: Any = self.doc
        for raw in ref[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise self.fail(f"reference {ref!r} points at nothing", where, "ref")
        return node

    def deref(self, node: Any, where: str, stack: tuple[str, ...] = ()) -> tuple[Any, tuple[str, ...]]:
        """Follow a chain of ``$ref`` (a parameter, a request body); returns the target and the refs taken."""
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if ref in stack:
                raise self.fail(f"recursive $ref {ref!r}", where, "recursive_ref")
            stack = (*stack, ref)
            node = self.lookup(ref, where)
        return node, stack

    def schema(self, node: Any, where: str, stack: tuple[str, ...] = (), depth: int = 0) -> Any:
        """A copy of schema ``node`` with references inlined and unknown keys dropped."""
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.fail(f"schemas expand to more than {self.limits.max_nodes} nodes", where, "size")
        if depth > self.limits.max_depth:
            raise self.fail(f"schemas nest deeper than {self.limits.max_depth} levels", where, "depth")
        if isinstance(node, list):
            return [self.schema(v, f"{where}/{i}", stack, depth + 1) for i, v in enumerate(node)]
        if not isinstance(node, Mapping):
            return node
        node, stack = self.deref(node, where, stack)
        if not isinstance(node, Mapping):
            return node
        if "allOf" in node:
            return self._all_of(node, where, stack, depth)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key not in _SCHEMA_KEYS:
                continue
            if key == "enum":
                if not isinstance(value, list) or len(value) > self.limits.max_enum:
                    size = len(value) if isinstance(value, list) else "?"
                    raise self.fail(f"an enum has {size} values, over the limit of {self.limits.max_enum}",
                                    f"{where}/enum", "enum")
                out[key] = [v for v in value if isinstance(v, str | int | float | bool) or v is None]
            elif key == "properties" and isinstance(value, Mapping):
                out[key] = {str(k): self.schema(v, f"{where}/properties/{k}", stack, depth + 1)
                            for k, v in value.items()
                            if not (isinstance(v, Mapping) and v.get("readOnly"))}
            elif key in ("items", "additionalProperties", "oneOf", "anyOf"):
                out[key] = self.schema(value, f"{where}/{key}", stack, depth + 1)
            elif key == "description" and isinstance(value, str):
                out[key] = _one_line(value, 200)
            elif key == "nullable":
                continue
            else:
                out[key] = value
        if node.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out

    def _all_of(self, node: Mapping[str, Any], where: str, stack: tuple[str, ...], depth: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        parts = [dict(node, allOf=None)] + list(node.get("allOf") or [])
        for i, part in enumerate(parts):
            if not part:
                continue
            resolved = self.schema({k: v for k, v in part.items() if k != "allOf"} if i == 0 else part,
                                   f"{where}/allOf/{i}", stack, depth + 1)
            if not isinstance(resolved, Mapping):
                continue
            for key, value in resolved.items():
                if key == "properties":
                    merged.setdefault("properties", {}).update(value)
                elif key == "required":
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                else:
                    merged.setdefault(key, value)
        if "properties" in merged:
            merged.setdefault("type", "object")
        return merged


def _one_line(text: str, limit: int) -> str:
    clean = " ".join(str(text).split())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


# --- operations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Argument:
    """Where one tool argument goes in the HTTP request.

    Attributes:
        name: the argument's name as the model sees it.
        location: ``path``, ``query``, ``header``, ``body`` (one property of a JSON object
            body) or ``body_whole`` (the whole body).
        wire_name: the name in the request (parameter or property name).
        schema: its JSON Schema.
        required: the model must give it.
    """

    name: str
    location: Location
    wire_name: str
    schema: dict[str, Any]
    required: bool


@dataclass(frozen=True)
class Operation:
    """One operation of the spec, ready to become a tool.

    Attributes:
        name: the tool name.
        method: upper-case HTTP method.
        path: the path template (``/orders/{orderId}``).
        description: from the spec's summary and description.
        arguments: the tool's arguments, in order.
    """

    name: str
    method: str
    path: str
    description: str
    arguments: tuple[Argument, ...]

    @property
    def read_only(self) -> bool:
        """True for GET/HEAD/OPTIONS."""
        return self.method in READ_ONLY_METHODS

    def parameters(self) -> dict[str, Any]:
        """The JSON Schema object of the arguments."""
        props = {a.name: a.schema for a in self.arguments}
        required = [a.name for a in self.arguments if a.required]
        return {"type": "object", "properties": props, **({"required": required} if required else {})}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``knowbase tools list --openapi``)."""
        return {"name": self.name, "method": self.method, "path": self.path, "description": self.description,
                "parameters": self.parameters(),
                "placement": {a.name: f"{a.location}:{a.wire_name}" for a in self.arguments}}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _tool_name(op: Mapping[str, Any], method: str, path: str) -> str:
    raw = str(op.get("operationId") or f"{method}_{path}")
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", raw).strip("_")[:64]
    return name or method


def _operations(doc: Mapping[str, Any], resolver: _Resolver) -> Iterable[tuple[str, str, Mapping[str, Any], Any]]:
    for path, item in doc["paths"].items():
        where = f"#/paths/{str(path).replace('~', '~0').replace('/', '~1')}"
        item, _ = resolver.deref(item, where)
        if not isinstance(item, Mapping):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, Mapping):
                yield str(path), method, op, _as_list(item.get("parameters"))


def _build_operation(name: str, method: str, path: str, op: Mapping[str, Any], shared: Sequence[Any],
                     resolver: _Resolver) -> Operation:
    where = f"#/paths/{path.replace('~', '~0').replace('/', '~1')}/{method}"
    params: dict[tuple[str, str], Mapping[str, Any]] = {}
    for i, raw in enumerate([*_as_list(shared), *_as_list(op.get("parameters"))]):
        param, _ = resolver.deref(raw, f"{where}/parameters/{i}")
        if isinstance(param, Mapping) and param.get("name") and param.get("in"):
            params[(str(param["name"]), str(param["in"]))] = param
    args: list[Argument] = []
    for (pname, place), param in params.items():
        if place == "cookie" or (place == "header" and pname.lower() in _SKIP_HEADERS):
            if param.get("required") and place == "cookie":
                raise resolver.fail(f"operation {name} needs a cookie parameter {pname!r}, which tools cannot send",
                                    where, "operation")
            continue
        schema = resolver.schema(param.get("schema") or {"type": "string"}, f"{where}/parameters/{pname}")
        schema = dict(schema) if isinstance(schema, Mapping) else {"type": "string"}
        if param.get("description"):
            schema["description"] = _one_line(str(param["description"]), 200)
        arg_name = pname if pname not in {a.name for a in args} else f"{place}_{pname}"  # same name, two places
        args.append(Argument(arg_name, place, pname, schema, bool(param.get("required")) or place == "path"))  # type: ignore[arg-type]
    body = op.get("requestBody")
    if body is not None:
        body, _ = resolver.deref(body, f"{where}/requestBody")
        body = body if isinstance(body, Mapping) else {}
        raw_content = body.get("content")
        content: Mapping[str, Any] = raw_content if isinstance(raw_content, Mapping) else {}
        media = next((v for k, v in content.items() if "json" in str(k)), None)
        if media is None and (content or body.get("required")):
            raise resolver.fail(f"operation {name}: only JSON request bodies are supported", where, "operation")
        if isinstance(media, Mapping):
            schema = resolver.schema(media.get("schema") or {}, f"{where}/requestBody")
            schema = schema if isinstance(schema, Mapping) else {}
            props = schema.get("properties") if schema.get("type") in ("object", None) else None
            taken = {a.name for a in args}
            if isinstance(props, Mapping) and props and not taken & set(props):
                required = set(schema.get("required") or [])
                args += [Argument(k, "body", k, dict(v) if isinstance(v, Mapping) else {}, k in required)
                         for k, v in props.items()]
            else:
                args.append(Argument("body", "body_whole", "body", dict(schema), bool(body.get("required"))))
    summary, detail = (" ".join(str(op.get(k) or "").split()) for k in ("summary", "description"))
    joint = ". " if summary and detail and summary[-1] not in ".!?:;" else " "
    text = (summary + joint + detail).strip()
    return Operation(name, method.upper(), path, _one_line(text or f"{method.upper()} {path}", 300),
                     tuple(args))


# --- the toolset -------------------------------------------------------------------------------------
def _args_model(op: Operation) -> type[BaseModel]:
    schema = op.parameters()
    return args_model(op.name, schema["properties"], schema.get("required", []))[0]


def trim_to_budget(text: str, max_tokens: int, *, count_tokens: Callable[[str], int] | None = None) -> str:
    """``text`` cut to about ``max_tokens`` tokens; JSON is shortened structurally first.

    JSON: whitespace removed; arrays cut to their first items (halving until it fits; a
    string ``"... N more items"`` marks the cut); strings over 200 characters cut. Anything
    still too long is cut at the character estimate with a note of how much was cut.

    Args:
        text: the response body.
        max_tokens: the budget.
        count_tokens: a tokenizer's counter; default ``len(text) / 4`` (:data:`CHARS_PER_TOKEN`).
    """
    count = count_tokens or (lambda t: (len(t) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)
    if count(text) <= max_tokens:
        return text
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if value is not None:
        for keep in (50, 20, 10, 5, 3, 2, 1):
            compact = json.dumps(_shorten(value, keep, 200 if keep > 5 else 80), ensure_ascii=False,
                                 separators=(",", ":"))
            if count(compact) <= max_tokens:
                return compact
        text = compact
    limit = max(0, max_tokens * CHARS_PER_TOKEN)
    while limit and count(text[:limit]) > max_tokens:
        limit = int(limit * 0.8)
    return text[:limit] + f" ... [{len(text) - limit} more characters cut]"


def _shorten(value: Any, keep: int, max_chars: int, depth: int = 0) -> Any:
    if depth > 20:
        return "..."
    if isinstance(value, list):
        head = [_shorten(v, keep, max_chars, depth + 1) for v in value[:keep]]
        return head + ([f"... {len(value) - keep} more items"] if len(value) > keep else [])
    if isinstance(value, dict):
        return {k: _shorten(v, keep, max_chars, depth + 1) for k, v in value.items()}
    if isinstance(value, str) and len(value) > max_chars:
        return value[:max_chars] + "..."
    return value


@dataclass
class OpenAPIToolset:
    """The tools of one OpenAPI spec.

    Build with :meth:`from_source` (it reads the spec, selects and resolves operations, checks
    the server URL); :meth:`tools` makes the :class:`~knowbase.agents.tools.Tool` objects.

    Attributes:
        name: the API's name (``info.title``).
        description: the API's description (``info.description``), for routers.
        base_url: the server URL calls go to.
        operations: the selected operations.
        guard: the URL guard every call goes through.
        auth: credentials, or None.
        approve_methods: methods whose calls need approval.
        approver: who approves (see :mod:`knowbase.tools.approval`); None refuses those calls.
        max_tokens: token budget of each response shown to the model.
        count_tokens: a tokenizer's counter for the budget (default: 4 characters per token).
        timeout: seconds per call; max_bytes: response bytes read.
        transport: an httpx transport, for tests.
    """

    name: str
    description: str
    base_url: str
    operations: list[Operation]
    guard: UrlGuard
    auth: ApiAuth | None = None
    approve_methods: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
    approver: Any = None
    approval_timeout: float = 300.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    count_tokens: Callable[[str], int] | None = None
    timeout: float = 10.0
    max_bytes: int = 2_000_000
    transport: Any = None

    @classmethod
    def from_source(cls, source: str | os.PathLike[str] | Mapping[str, Any], *,
                    operations: Sequence[str] | None = None, base_url: str | None = None,
                    allowed_hosts: Sequence[str] | None = None, allow_private: bool = False,
                    guard: UrlGuard | None = None, limits: SpecLimits = DEFAULT_SPEC_LIMITS,
                    skip_unknown: bool = False, **options: Any) -> OpenAPIToolset:
        """Read a spec and select its operations.

        Args:
            source: a file path, an http(s) URL or a parsed document.
            operations: tool names (``operationId``) to offer; default every read-only
                (GET) operation. Naming a non-GET operation is how an operator allows it.
            base_url: the server URL; default the spec's first ``servers`` entry (relative
                to the spec's URL when it is one).
            allowed_hosts: hosts calls (and a spec URL) may reach; default the server's host.
            allow_private: allow private/loopback addresses (tests, trusted intranets).
            guard: a ready :class:`UrlGuard` instead of the two arguments above.
            limits: bounds on the spec.
            skip_unknown: ignore names in ``operations`` this spec lacks (several specs share
                one list); by default an unknown name is an error.
            **options: the other fields (``auth``, ``approver``, ``max_tokens``, ``timeout``...).

        Raises:
            SpecError: the spec is unusable or over a limit, an operation name is unknown,
                or there is no server URL.
            SafetyError: the spec URL or the server URL is refused by the guard.
        """
        spec_guard = guard or (UrlGuard(list(allowed_hosts), allow_private=allow_private)
                               if allowed_hosts else None)
        doc = load_spec(source, guard=spec_guard, limits=limits, transport=options.get("transport"))
        where = str(doc.get("x-knowbase-source", "<spec>"))
        resolver = _Resolver(doc, limits, where)
        found: dict[str, tuple[str, str, Mapping[str, Any], Any]] = {}
        for path, method, op, shared in _operations(doc, resolver):
            found.setdefault(_tool_name(op, method, path), (path, method, op, shared))
        if operations:
            unknown = [o for o in operations if o not in found]
            if skip_unknown:
                operations = [o for o in operations if o in found]
            elif unknown:
                raise SpecError(f"{where}: no operation named {', '.join(map(repr, unknown))}; the spec has: "
                                f"{', '.join(sorted(found)) or '(none)'}", source=where, reason="operation")
            chosen = list(dict.fromkeys(operations))
        else:
            chosen = [n for n, (_, method, _, _) in found.items() if method.upper() in READ_ONLY_METHODS]
        if len(chosen) > limits.max_tools:
            raise SpecError(f"{where}: {len(chosen)} operations selected, over the limit of {limits.max_tools}; "
                            "name the ones you need (operations=...)", source=where, reason="tools")
        ops = [_build_operation(n, found[n][1], found[n][0], found[n][2], found[n][3], resolver) for n in chosen]
        url = base_url or cls._server_url(doc, resolver, source)
        host = _host(url, where)
        call_guard = guard or UrlGuard(list(allowed_hosts) if allowed_hosts else [host], allow_private=allow_private)
        _precheck(call_guard, url, where)
        raw_info = doc.get("info")
        info: Mapping[str, Any] = raw_info if isinstance(raw_info, Mapping) else {}
        title = _one_line(str(info.get("title") or "API"), 80)
        return cls(title, _one_line(str(info.get("description") or title), 300), url.rstrip("/"), ops, call_guard,
                   **options)

    @staticmethod
    def _server_url(doc: Mapping[str, Any], resolver: _Resolver, source: Any) -> str:
        servers = doc.get("servers")
        server = servers[0] if isinstance(servers, list) and servers and isinstance(servers[0], Mapping) else None
        if server is None or not server.get("url"):
            raise resolver.fail("the spec names no server; give base_url (--base-url)", "#/servers", "server")
        url = str(server["url"])
        for var, spec in (server.get("variables") or {}).items():
            if isinstance(spec, Mapping) and "default" in spec:
                url = url.replace("{" + str(var) + "}", str(spec["default"]))
        if "{" in url:
            raise resolver.fail(f"server URL {url!r} has variables without defaults", "#/servers/0", "server")
        if not re.match(r"^https?://", url):
            src = str(source) if not isinstance(source, Mapping) else ""
            if not re.match(r"^https?://", src):
                raise resolver.fail(f"server URL {url!r} is relative; give base_url (--base-url)", "#/servers/0",
                                    "server")
            import httpx

            url = str(httpx.URL(src).join(url))
        return url

    # --- tools ----------------------------------------------------------------------------------
    def tools(self) -> list[Any]:
        """One :class:`~knowbase.agents.tools.Tool` per selected operation, in order; operations
        whose method is in ``approve_methods`` are wrapped by
        :func:`~knowbase.tools.approval.require_approval`."""
        from knowbase.agents.tools import Tool
        from knowbase.tools.approval import require_approval

        out = []
        for op in self.operations:
            model = _args_model(op)
            made = Tool(op.name, op.description, self._caller(op), model, self.timeout + 1.0,
                        max_chars=self.max_tokens * CHARS_PER_TOKEN + 200, _schema=op.parameters())
            if op.method in self.approve_methods:
                made = require_approval(made, self.approver, timeout=self.approval_timeout,
                                        action=self._describer(op))
            out.append(made)
        return out

    def _describer(self, op: Operation) -> Callable[[dict[str, Any]], str]:
        return lambda arguments: self.describe_call(op, arguments)

    def describe_call(self, op: Operation, arguments: Mapping[str, Any]) -> str:
        """``METHOD URL`` and the JSON body of a call, for a person approving it (no credentials)."""
        url, _, body = self._request_parts(op, arguments)
        return f"{op.method} {url}" + (f" body {body.decode('utf-8')}" if body else "")

    def _request_parts(self, op: Operation, arguments: Mapping[str, Any]) -> tuple[str, dict[str, str], bytes | None]:
        path = op.path
        query: list[tuple[str, str]] = []
        headers: dict[str, str] = {}
        body: dict[str, Any] = {}
        whole: Any = None
        for arg in op.arguments:
            value = arguments.get(arg.name)
            if value is None:
                continue
            if arg.location == "path":
                path = path.replace("{" + arg.wire_name + "}", quote(_scalar(value), safe=""))
            elif arg.location == "query":
                values = value if isinstance(value, list) else [value]
                query += [(arg.wire_name, _scalar(v)) for v in values]
            elif arg.location == "header":
                headers[arg.wire_name] = _scalar(value).replace("\r", " ").replace("\n", " ")
            elif arg.location == "body":
                body[arg.wire_name] = value
            else:
                whole = value
        if "{" in path:
            missing = re.findall(r"\{([^}]+)\}", path)
            raise UserError(f"missing path parameter(s) {', '.join(missing)} for {op.name}", field="arguments")
        import httpx

        url = str(httpx.URL(self.base_url + path, params=query) if query else httpx.URL(self.base_url + path))
        payload = whole if whole is not None else (body or None)
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8") if payload is not None else None
        return url, headers, data

    def _caller(self, op: Operation) -> Callable[..., str]:
        names = {f"a{i}": a.name for i, a in enumerate(op.arguments)}

        def call(**kwargs: Any) -> str:
            arguments = {names[k]: v for k, v in kwargs.items() if k in names}
            url, headers, data = self._request_parts(op, arguments)
            if data is not None:
                headers["Content-Type"] = "application/json"
            headers.setdefault("Accept", "application/json")
            secret = self.auth.headers() if self.auth is not None else None
            result = request(op.method, url, guard=self.guard, body=data, headers=headers, secret_headers=secret,
                             timeout=self.timeout, max_bytes=self.max_bytes, transport=self.transport)
            text = trim_to_budget(result.text.strip(), self.max_tokens, count_tokens=self.count_tokens)
            if result.status >= 400:
                raise FetchError(f"HTTP {result.status} from {op.method} {op.path}: {text}", status=result.status,
                                 url=url)
            return f"HTTP {result.status}\n{text}"

        call.__name__ = op.name
        return call

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary: name, description, base URL and the operations."""
        return {"name": self.name, "description": self.description, "base_url": self.base_url,
                "operations": [{**o.to_dict(), "needs_approval": o.method in self.approve_methods}
                               for o in self.operations]}


def _host(url: str, where: str) -> str:
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise SpecError(f"{where}: bad server URL {url!r}: {exc}", source=where, reason="server") from exc
    host = parsed.host.lower().rstrip(".").strip("[]")
    if parsed.scheme not in ("http", "https") or not host:
        raise SpecError(f"{where}: bad server URL {url!r} (http or https with a host)", source=where, reason="server")
    return host


def _precheck(guard: UrlGuard, url: str, where: str) -> None:
    """Check the server URL when the toolset is built: scheme, credentials, allow-list, and the
    address when the host is an IP literal (169.254.169.254). Host names are resolved and
    checked again at every call (DNS may change; building works offline)."""
    import ipaddress

    host = _host(url, where)
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    try:
        if literal:
            guard.check(url)
        elif not guard.host_allowed(host):
            raise SafetyError(f"host {host!r} is not on the allowlist", reason="host", url=url, host=host)
    except SafetyError as exc:
        raise SafetyError(f"{where}: server URL refused: {exc}", reason=getattr(exc, "reason", "server"),
                          source=where, url=url) from exc


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
