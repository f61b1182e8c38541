"""Tools: typed Python functions an agent may call.

A :class:`Tool` is built from a function; its name, description and JSON Schema come
from the signature, the type hints and the Google-style docstring (parsed with
``docstring_parser``; argument models built with pydantic ``create_model``)::

    @tool
    def add(a: int, b: int = 1) -> int:
        '''Add two integers.

        Args:
            a: the first number.
            b: the second number.
        '''
        return a + b

    add.spec().parameters["required"]        # ['a']
    add.run({"a": "2", "b": 3}).output       # '5'
    add.run({"b": 3}).ok                     # False: 'a' is missing; nothing ran

Arguments are validated the way pydantic's lax mode documents
(https://docs.pydantic.dev/latest/concepts/conversion_table/): ``"2"`` becomes ``2`` for an
``int``, and, as models write them, a number becomes a string for a ``str`` parameter
(``coerce_numbers_to_str``) and a JSON-encoded string (``'["draft", "legal"]'``) is decoded
for a ``list``/``dict`` parameter. Constraints written with ``Annotated[int, Field(ge=1)]``,
``page: int = Field(1, ge=1)`` or ``Literal[...]`` stay in both the JSON Schema the model
reads and the validation, so ``page=0`` never reaches the function. The arguments the
function received are recorded in :attr:`ToolResult.validated_arguments` and in the trace.

A call runs in a worker thread inside a :mod:`~knowbase.safety.deadline` cancel scope
with the tool's timeout. On a timeout the scope is cancelled: work that honours it (SQL
queries through :func:`knowbase.sql.execute.execute`, model calls between tokens) stops,
and :attr:`ToolResult.stopped` says whether the worker ended within
:data:`CANCEL_GRACE` seconds.

:meth:`Tool.run` never raises for the tool's own failures: invalid arguments, an
exception inside the function, a guard's refusal and a timeout all come back as a
:class:`ToolResult` whose ``output`` is an observation string for the model. A
:class:`Toolbox` holds the tools an agent may use and refuses any other name.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from knowbase.errors import BudgetExceeded, KnowbaseError, SafetyError, UserError
from knowbase.models.base import ToolSpec
from knowbase.safety.deadline import CancelScope, cancel_scope
from knowbase.safety.jsonsafe import JSONLimitError, loads_lenient
from knowbase.tracing.context import span

ErrorKind = Literal["unknown_tool", "invalid_arguments", "refused", "error", "timeout"]

DEFAULT_TIMEOUT = 10.0
"""Seconds a tool call may take before its result is replaced by a timeout observation."""

CANCEL_GRACE = 1.0
"""Seconds a timed-out call is given to stop after its cancel scope is cancelled."""

MAX_OBSERVATION_CHARS = 2000
"""Longest observation given back to the model, in characters (the rest is cut)."""


class ToolDefinitionError(UserError):
    """A function cannot become a tool (``name`` of the tool, ``reason``)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call produced.

    Attributes:
        name: the tool asked for.
        arguments: the arguments as the model gave them (after JSON decoding).
        output: the observation for the model: the tool's output, or an error message.
        ok: True when the function ran and returned.
        error_kind: why it failed: ``unknown_tool``, ``invalid_arguments``, ``refused``
            (a guard said no), ``error`` (the function raised) or ``timeout``.
        value: the function's return value (None on failure).
        elapsed_ms: wall time of the call, milliseconds.
        validated_arguments: the arguments the function was called with, after
            validation and lax conversion (JSON-able); None when validation failed.
        stopped: for a timeout, whether the work stopped after being cancelled (False: the
            worker thread was still running after :data:`CANCEL_GRACE` seconds).
    """

    name: str
    arguments: Any
    output: str
    ok: bool = True
    error_kind: ErrorKind | None = None
    value: Any = None
    elapsed_ms: float = 0.0
    validated_arguments: dict[str, Any] | None = None
    stopped: bool = True


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's ``title`` keys: they add tokens and nothing a model needs."""
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def _docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    import docstring_parser

    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    summary = " ".join(p for p in (doc.short_description, doc.long_description) if p).strip()
    params = {p.arg_name: " ".join(p.description.split()) for p in doc.params if p.description}
    return summary, params


def _args_model(fn: Callable[..., Any], name: str, param_docs: Mapping[str, str]) -> type[BaseModel]:
    try:
        hints = get_type_hints(fn, include_extras=True)  # keep Annotated[int, Field(ge=1)]
    except Exception as exc:  # unresolvable forward references
        raise ToolDefinitionError(f"tool {name!r}: cannot resolve type hints: {exc}", name=name,
                                  reason=str(exc)) from exc
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, str)
        if isinstance(param.default, FieldInfo):  # page: int = Field(1, ge=1)
            info = param.default
            if info.description is None and param_docs.get(pname):
                info = FieldInfo.merge_field_infos(info, description=param_docs[pname])
            fields[pname] = (annotation, info)
            continue
        default = ... if param.default is param.empty else param.default
        fields[pname] = (annotation, Field(default, description=param_docs.get(pname)))
    model_name = "".join(part.title() for part in name.split("_")) + "Args"
    return create_model(model_name, __config__=ConfigDict(extra="forbid", coerce_numbers_to_str=True), **fields)


_CONSTRAINTS = (("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"),
                ("exclusiveMaximum", "< {}"), ("minLength", "of at least {} characters"),
                ("maxLength", "of at most {} characters"), ("minItems", "of at least {} items"),
                ("maxItems", "of at most {} items"), ("pattern", "matching {}"))


def _constraint_text(prop: Mapping[str, Any]) -> str:
    """``" >= 1, <= 50"``: the JSON Schema constraints of ``prop`` in words ("" when none)."""
    words = [fmt.format(prop[key]) for key, fmt in _CONSTRAINTS if key in prop]
    return (" " + ", ".join(words)) if words else ""


def _accepts_container(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> bool:
    """The JSON Schema ``prop`` accepts an array or object (directly, by ``$ref`` or in ``anyOf``)."""
    if "$ref" in prop:
        prop = defs.get(str(prop["$ref"]).rsplit("/", 1)[-1], {})
    if prop.get("type") in ("array", "object"):
        return True
    return any(_accepts_container(p, defs) for p in prop.get("anyOf", []) if isinstance(p, Mapping)) and \
        not any(p.get("type") == "string" for p in prop.get("anyOf", []) if isinstance(p, Mapping))


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters cut]"


def _validation_message(name: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return f"Error: invalid arguments for tool {name!r}: " + "; ".join(problems)


@dataclass(frozen=True)
class Tool:
    """A callable the model may use, with its name, description and argument schema.

    Build one with :meth:`from_function` or the :func:`tool` decorator.

    Attributes:
        name: the name the model calls (``[A-Za-z0-9_-]``, as OpenAI requires).
        description: one or two sentences for the model.
        fn: the function; called with validated keyword arguments.
        args_model: the pydantic model that validates arguments (``extra="forbid"``).
        timeout: seconds a call may take; None waits forever.
        max_chars: longest observation returned, in characters.
    """

    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    timeout: float | None = DEFAULT_TIMEOUT
    max_chars: int = MAX_OBSERVATION_CHARS
    _schema: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                      timeout: float | None = DEFAULT_TIMEOUT, max_chars: int = MAX_OBSERVATION_CHARS) -> Tool:
        """Make a tool from a typed function.

        Args:
            fn: the function. Parameters without a type hint are taken as ``str``;
                ``*args``/``**kwargs`` are not offered to the model.
            name: default ``fn.__name__``.
            description: default the docstring's summary (and long description).
            timeout: seconds per call (default 10); None for no limit.
            max_chars: longest observation, in characters (default 2000).

        Raises:
            ToolDefinitionError: the name is not a valid tool name or a hint cannot be resolved.
        """
        tool_name = name or getattr(fn, "__name__", "")
        if not tool_name or not all(c.isalnum() or c in "_-" for c in tool_name) or len(tool_name) > 64:
            raise ToolDefinitionError(f"invalid tool name {tool_name!r}: use letters, digits, '_' or '-'",
                                      name=tool_name, reason="name")
        summary, param_docs = _docstring(fn)
        model = _args_model(fn, tool_name, param_docs)
        return cls(tool_name, description or summary or tool_name.replace("_", " "), fn, model, timeout, max_chars)

    def __post_init__(self) -> None:
        if not self._schema:
            schema = _strip_titles(self.args_model.model_json_schema())
            schema.pop("additionalProperties", None)
            schema.setdefault("properties", {})
            object.__setattr__(self, "_schema", schema)

    # --- description -------------------------------------------------------------------
    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON Schema (an ``object``) of the arguments, without pydantic titles."""
        return self._schema

    @property
    def required(self) -> list[str]:
        """Names of the required arguments, in signature order."""
        return list(self._schema.get("required", []))

    def spec(self) -> ToolSpec:
        """The :class:`ToolSpec` for native function calling."""
        return ToolSpec(self.name, self.description, self.parameters)

    def signature_text(self) -> str:
        """A compact one-line form for text prompts: ``name(arg: type, ...): description``.

        Constraints follow the type: ``page: integer >= 1``, ``kind: "a" | "b"``,
        ``code: string matching ^[A-Z]{3}$``.
        """
        parts = []
        for pname, prop in self._schema.get("properties", {}).items():
            if "enum" in prop:
                kind = " | ".join(json.dumps(v, ensure_ascii=False) for v in prop["enum"])
            else:
                kind = prop.get("type") or "/".join(p.get("type", "any") for p in prop.get("anyOf", [])) or "any"
                kind += _constraint_text(prop)
            optional = "" if pname in self.required else "?"
            parts.append(f"{pname}{optional}: {kind}")
        return f"{self.name}({', '.join(parts)}): {self.description}"

    # --- calling -------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (no validation, no timeout)."""
        return self.fn(*args, **kwargs)

    def coerce(self, arguments: Any) -> dict[str, Any]:
        """Turn what a model wrote into a dict of arguments (not yet validated).

        A dict is used as is; a JSON object string is decoded; any other string or scalar
        goes to the tool's only (or only required) parameter; None means no arguments.
        """
        if arguments is None or arguments == "":
            return {}
        if isinstance(arguments, BaseModel):
            return arguments.model_dump()
        if isinstance(arguments, str):
            text = arguments.strip()
            if text.startswith("{"):
                try:
                    decoded = loads_lenient(text)
                except json.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, dict):
                    return self._decode_json_strings(self._unwrap(decoded))
            arguments = text
        if isinstance(arguments, Mapping):
            return self._decode_json_strings(self._unwrap(dict(arguments)))
        props = list(self._schema.get("properties", {}))
        target = props[0] if len(props) == 1 else (self.required[0] if len(self.required) == 1 else None)
        if target is None:
            return {"__value__": arguments}  # fails validation with a clear message
        if isinstance(arguments, str) and len(arguments) >= 2 and arguments[0] == arguments[-1] and arguments[0] in "\"'":
            arguments = arguments[1:-1]
        return self._decode_json_strings({target: arguments})

    def _decode_json_strings(self, args: dict[str, Any]) -> dict[str, Any]:
        """Decode a JSON-encoded string given for a list or dict parameter (``'["a", "b"]'``).

        Only a string that decodes (trailing commas aside) to a list or dict is replaced;
        anything else is left for validation to report.
        """
        props = self._schema.get("properties", {})
        defs = self._schema.get("$defs", {})
        out = dict(args)
        for key, value in args.items():
            prop = props.get(key)
            if not isinstance(value, str) or not isinstance(prop, Mapping) or not _accepts_container(prop, defs):
                continue
            text = value.strip()
            if not text.startswith(("[", "{")):
                continue
            try:
                decoded = loads_lenient(text)
            except (json.JSONDecodeError, JSONLimitError):
                continue
            if isinstance(decoded, (list, dict)):
                out[key] = decoded
        return out

    def _unwrap(self, args: dict[str, Any]) -> dict[str, Any]:
        # Small models often wrap a single argument: {"input": "2+2"} for calculator(expression).
        props = self._schema.get("properties", {})
        if len(args) == 1 and len(props) == 1:
            (key, value), = args.items()
            if key not in props and not isinstance(value, dict):
                return {next(iter(props)): value}
        return args

    def validate(self, arguments: Any) -> BaseModel:
        """Validate arguments; raises pydantic's ``ValidationError``."""
        return self.args_model.model_validate(self.coerce(arguments))

    def run(self, arguments: Any = None) -> ToolResult:
        """Validate the arguments, call the function with a timeout, return a :class:`ToolResult`.

        Never raises for the tool's own failures (see :class:`ToolResult.error_kind`).
        The call runs in a worker thread that carries the current trace context, inside a
        cancel scope with the tool's timeout; on a timeout the scope is cancelled (see the
        module docstring) and the result says whether the work stopped.
        """
        t0 = time.perf_counter()

        def done(output: str, ok: bool, kind: ErrorKind | None = None, value: Any = None) -> ToolResult:
            return ToolResult(self.name, arguments, _clip(output, self.max_chars), ok, kind, value,
                              (time.perf_counter() - t0) * 1000)

        try:
            validated = self.validate(arguments)
        except ValidationError as exc:
            return done(_validation_message(self.name, exc) + f". Expected arguments: {json.dumps(self.parameters)}",
                        False, "invalid_arguments")
        except JSONLimitError as exc:
            return done(f"Error: invalid arguments for tool {self.name!r}: {exc}", False, "invalid_arguments")
        kwargs = {k: getattr(validated, k) for k in type(validated).model_fields}
        try:
            used = validated.model_dump(mode="json")
        except Exception:  # a value pydantic cannot serialise (an arbitrary type)
            used = {k: _to_text(v) for k, v in kwargs.items()}
        box: dict[str, Any] = {}
        ctx = contextvars.copy_context()
        scope = CancelScope(None if self.timeout is None else time.monotonic() + self.timeout)

        def call() -> Any:
            with cancel_scope(scope=scope):
                return self.fn(**kwargs)

        def target() -> None:
            try:
                box["value"] = ctx.run(call)
            except BaseException as exc:  # delivered to the agent as an observation
                box["error"] = exc

        def finish(output: str, ok: bool, kind: ErrorKind | None = None, value: Any = None,
                   stopped: bool = True) -> ToolResult:
            return replace(done(output, ok, kind, value), validated_arguments=used, stopped=stopped)

        worker = threading.Thread(target=target, name=f"tool-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            scope.cancel(f"tool {self.name!r} timed out after {self.timeout:g} s")
            worker.join(CANCEL_GRACE)
            stopped = not worker.is_alive()
            note = "its work was stopped" if stopped else "its work could not be stopped and was abandoned"
            return finish(f"Error: tool {self.name!r} timed out after {self.timeout:g} s ({note})", False, "timeout",
                          stopped=stopped)
        if "error" in box:
            error = box["error"]
            if isinstance(error, BudgetExceeded) and (scope.cancelled or scope.remaining() == 0):
                # the work honoured the scope's deadline and stopped itself (a query timed out at it)
                return finish(f"Error: tool {self.name!r} timed out after {self.timeout:g} s (its work was stopped: "
                              f"{error})", False, "timeout")
            if isinstance(error, SafetyError):
                return finish(f"Error: refused: {error}", False, "refused")
            if isinstance(error, KnowbaseError):
                return finish(f"Error: {error}", False, "error")
            if isinstance(error, ValidationError):
                return finish(_validation_message(self.name, error), False, "invalid_arguments")
            return finish(f"Error: {type(error).__name__}: {error}", False, "error")
        value = box.get("value")
        return finish(_to_text(value), True, None, value)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None,
         timeout: float | None = DEFAULT_TIMEOUT) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None,
         timeout: float | None = DEFAULT_TIMEOUT) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator form of :meth:`Tool.from_function`: ``@tool`` or ``@tool(name=..., timeout=...)``."""
    if fn is not None:
        return Tool.from_function(fn)

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(f, name=name, description=description, timeout=timeout)

    return wrap


class Toolbox(Mapping[str, Tool]):
    """The tools one agent may use, by name. Calls to any other name are refused.

    Args:
        tools: :class:`Tool` objects or plain functions (made into tools).

    Raises:
        ToolDefinitionError: two tools share a name.
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            t = item if isinstance(item, Tool) else Tool.from_function(item)
            if t.name in self._tools:
                raise ToolDefinitionError(f"two tools are named {t.name!r}", name=t.name, reason="duplicate")
            self._tools[t.name] = t

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        """:class:`ToolSpec` of every tool, for ``ChatOptions.tools``."""
        return tuple(t.spec() for t in self._tools.values())

    def describe(self) -> str:
        """One line per tool (see :meth:`Tool.signature_text`)."""
        return "\n".join(f"- {t.signature_text()}" for t in self._tools.values())

    def run(self, name: str, arguments: Any = None) -> ToolResult:
        """Run tool ``name`` inside a ``tool:<name>`` span; unknown names are refused.

        Returns:
            the :class:`ToolResult`; an unknown name gives ``error_kind="unknown_tool"``
            and an observation listing the tools that exist.
        """
        clean = (name or "").strip()
        with span(f"tool:{clean or '?'}", kind="tool", arguments=_to_text(arguments)[:500]) as sp:
            t = self._tools.get(clean)
            if t is None:
                known = ", ".join(self._tools) or "(none)"
                result = ToolResult(clean, arguments, f"Error: unknown tool {clean!r}. Available tools: {known}.",
                                    False, "unknown_tool")
            else:
                result = t.run(arguments)
            sp.set(ok=result.ok, error_kind=result.error_kind, elapsed_ms=round(result.elapsed_ms, 2),
                   output=result.output[:500])
            if result.validated_arguments is not None:
                sp.set(validated_arguments=_to_text(result.validated_arguments)[:500])
            if result.error_kind == "timeout":
                sp.set(stopped=result.stopped)
        return result
