"""Structured output: get a model's answer as a validated pydantic object.

How it works (one call of :func:`chat_structured`):

1. The output type's JSON Schema (pydantic) goes into ``ChatOptions.json_schema``: the
   llama.cpp backend compiles it into a grammar so decoding can only produce matching
   JSON; OpenAI-compatible backends send it as ``response_format``.
2. A short shape hint (``{"name": string, "age": integer}``) is appended to the last
   user message, so models without constrained decoding know the format too.
3. The reply is parsed (JSON found even inside prose or code fences) and validated. On
   failure the model sees its reply and the validation error and tries again, up to
   ``max_attempts`` calls in all; then :class:`~knowbase.errors.OutputParseError` is
   raised with ``raw`` (the last reply), ``errors`` (one per attempt) and ``attempts``.

Example::

    class Person(BaseModel):
        name: str
        age: int

    person = structured(model, "Ada Lovelace was 36.", Person)
    person.age    # 36
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from knowbase.errors import OutputParseError
from knowbase.models.base import ChatOptions, ChatResult, Message, MessagesLike, to_messages
from knowbase.output.parsers import extract_json
from knowbase.safety.jsonsafe import check_limits

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel

T = TypeVar("T")


@lru_cache(maxsize=256)
def _cached_adapter(output_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(output_type)


def _adapter(output_type: Any) -> TypeAdapter[Any]:
    """The pydantic adapter of ``output_type`` (types are hashable: one adapter per type)."""
    return _cached_adapter(output_type)


def json_schema_of(output_type: Any) -> dict[str, Any]:
    """The JSON Schema of a pydantic model or any type pydantic can validate."""
    return _adapter(output_type).json_schema()


def schema_hint(schema: dict[str, Any]) -> str:
    """A compact, JSON-like picture of a schema for the prompt.

    ``{"name": string, "age"?: integer, "tags": [string], "kind": "a" | "b"}``;
    ``?`` marks optional fields. Field descriptions follow on their own lines.
    """
    defs = schema.get("$defs", {})
    notes: list[str] = []

    def shape(node: dict[str, Any], depth: int, path: str) -> str:
        if depth > 8:
            return "any"
        if "$ref" in node:
            ref = node["$ref"].rsplit("/", 1)[-1]
            return shape(defs.get(ref, {}), depth + 1, path)
        if "enum" in node:
            return " | ".join(json.dumps(v) for v in node["enum"])
        if "const" in node:
            return json.dumps(node["const"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                return " | ".join(shape(n, depth + 1, path) for n in node[key])
        kind = node.get("type")
        if isinstance(kind, list):
            return " | ".join(shape({**node, "type": k}, depth + 1, path) for k in kind)
        if kind == "object" or "properties" in node:
            props = node.get("properties", {})
            if not props:
                return "object"
            required = set(node.get("required", []))
            fields = []
            for name, sub in props.items():
                where = f"{path}.{name}" if path else name
                if sub.get("description"):
                    notes.append(f"{where}: {sub['description']}")
                fields.append(f"{json.dumps(name)}{'' if name in required else '?'}: {shape(sub, depth + 1, where)}")
            return "{" + ", ".join(fields) + "}"
        if kind == "array":
            return "[" + shape(node.get("items", {}), depth + 1, path + "[]") + "]"
        return {"string": "string", "integer": "integer", "number": "number", "boolean": "true | false",
                "null": "null"}.get(kind or "", "any")

    text = shape(schema, 0, "")
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes)
    return text


def validate_output(text: str, output_type: type[T] | Any) -> T:
    """Parse ``text`` (JSON anywhere in it) into ``output_type``.

    Raises:
        OutputParseError: no JSON, or it does not validate (``raw``, ``errors``);
            :class:`~knowbase.safety.jsonsafe.JSONLimitError` when the text is longer or
            nests deeper than :mod:`knowbase.safety.jsonsafe` allows.
    """
    check_limits(text)
    adapter = _adapter(output_type)
    try:
        return adapter.validate_json(text.strip())
    except ValidationError:
        pass
    value = extract_json(text)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise OutputParseError(f"output does not match the schema: {_brief(exc)}", raw=text,
                               errors=[_brief(exc)]) from exc


def _brief(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Structured(Generic[T]):
    """A validated value with the call that produced it.

    Attributes:
        value: the parsed object.
        result: the last :class:`ChatResult` (text, usage, trace id).
        attempts: model calls made (1 when the first reply was valid).
    """

    value: T
    result: ChatResult
    attempts: int


def structured_messages(messages: MessagesLike, output_type: Any, *, hint: bool = True) -> list[Message]:
    """The messages with the schema hint appended to the last user message."""
    from knowbase.prompts.loader import load_template

    msgs = to_messages(messages)
    if not hint:
        return msgs
    note = load_template("output_schema").format(schema=schema_hint(json_schema_of(output_type)))
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i].role == "user":
            msgs[i] = Message.user(msgs[i].content + "\n\n" + note)
            return msgs
    return [*msgs, Message.user(note)]


def chat_structured(model: ChatModel, messages: MessagesLike, output_type: type[T] | Any, *,
                    max_attempts: int = 3, constrained: bool = True, hint: bool = True,
                    system: str | None = None, options: ChatOptions | None = None,
                    **overrides: Any) -> Structured[T]:
    """Ask ``model`` and parse the reply into ``output_type``, retrying with the error.

    Args:
        model: a :class:`~knowbase.models.base.ChatModel`.
        messages: the prompt (string, message or messages).
        output_type: a pydantic model class (or any type pydantic validates).
        max_attempts: model calls at most (the first plus retries).
        constrained: pass the JSON Schema to the backend (grammar / ``response_format``).
        hint: append the schema hint to the prompt.
        system: a system prompt.
        options, **overrides: chat options (``max_tokens=``, ``temperature=``...).

    Returns:
        :class:`Structured` with the value, the last result and the number of attempts.

    Raises:
        OutputParseError: still invalid after ``max_attempts`` calls (``raw`` is the last
            reply, ``errors`` one message per attempt, ``attempts``).
        KnowbaseError: the model call itself failed.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    msgs = structured_messages(to_messages(messages, system), output_type, hint=hint)
    if constrained:
        overrides["json_schema"] = json_schema_of(output_type)
    from knowbase.prompts.loader import load_template

    retry = load_template("output_retry")
    errors: list[str] = []
    result: ChatResult | None = None
    for attempt in range(1, max_attempts + 1):
        result = model.chat(msgs, options=options, **overrides)
        try:
            return Structured(validate_output(result.text, output_type), result, attempt)
        except OutputParseError as exc:
            errors.append(exc.message)
            msgs = [*msgs, Message.assistant(result.text), Message.user(retry.format(error=exc.message))]
    assert result is not None
    raise OutputParseError(f"model output did not match {getattr(output_type, '__name__', output_type)} after "
                           f"{max_attempts} attempt(s): {errors[-1]}", raw=result.text, errors=errors,
                           attempts=max_attempts)


def structured(model: ChatModel, messages: MessagesLike, output_type: type[T] | Any, **kwargs: Any) -> T:
    """Like :func:`chat_structured`, returning only the value."""
    return chat_structured(model, messages, output_type, **kwargs).value


class PydanticParser(Generic[T]):
    """An output parser for a pydantic type; :class:`LLMChain` also uses its schema for
    constrained decoding and retries (see :func:`chat_structured`).

    Args:
        output_type: the pydantic model class (or any type pydantic validates).
        max_attempts: model calls at most, when used by a chain.
        constrained: pass the schema to the backend.
    """

    def __init__(self, output_type: type[T] | Any, *, max_attempts: int = 3, constrained: bool = True) -> None:
        self.output_type = output_type
        self.max_attempts = max_attempts
        self.constrained = constrained

    @property
    def json_schema(self) -> dict[str, Any]:
        return json_schema_of(self.output_type)

    def parse(self, text: str) -> T:
        return validate_output(text, self.output_type)

    def instructions(self) -> str:
        from knowbase.prompts.loader import load_template

        return load_template("output_schema").format(schema=schema_hint(self.json_schema))
