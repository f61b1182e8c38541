"""Argument models for tools described by a JSON Schema (OpenAPI operations, MCP tools).

A :class:`~knowbase.agents.tools.Tool` validates arguments with a pydantic model; tools that
arrive with a JSON Schema get a model whose fields carry the top-level properties (typed from
``type``/``enum``, so ``"20"`` becomes ``20.0`` for a number and an unknown enum value is
refused before any call), aliased to the property names, which need not be Python identifiers
(``X-Request-Id``). Nested values are passed through as given; the server validates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                             "array": list[Any], "object": dict[str, Any]}


def py_type(schema: Mapping[str, Any]) -> Any:
    """The Python type for a JSON Schema node (``Any`` when it is not one simple type)."""
    enum = schema.get("enum")
    if enum and all(isinstance(v, str | int | bool) for v in enum):
        return Literal[tuple(enum)]
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return _PY_TYPES.get(kind, Any) if isinstance(kind, str) else Any


def args_model(name: str, properties: Mapping[str, Any], required: Iterable[str]) -> tuple[type[BaseModel], dict[str, str]]:
    """A pydantic model for these arguments, and ``{field name: argument name}``.

    Fields are ``a0, a1, ...`` aliased to the property names (``extra="forbid"``; optional
    arguments default to None).
    """
    needed = set(required)
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for i, (prop, schema) in enumerate(properties.items()):
        annotation = py_type(schema if isinstance(schema, Mapping) else {})
        if prop in needed:
            fields[f"a{i}"] = (annotation, Field(..., alias=prop))
        else:
            fields[f"a{i}"] = (annotation | None, Field(None, alias=prop))
        names[f"a{i}"] = prop
    model_name = re.sub(r"\W", "_", name) + "_args"
    model = create_model(model_name, __config__=ConfigDict(extra="forbid", populate_by_name=True), **fields)
    return model, names


def strip_titles(schema: Any) -> Any:
    """The schema without ``title`` keys (pydantic adds them; they cost tokens and say nothing)."""
    if isinstance(schema, dict):
        return {k: strip_titles(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [strip_titles(v) for v in schema]
    return schema
