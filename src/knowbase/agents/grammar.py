"""GBNF grammars (llama.cpp) and JSON Schemas that pin an agent step to a valid tool call.

The ReAct text format is constrained by :func:`react_text_grammar`: the action is one of
the tool names, and its ``Action Input`` is a one-line JSON object with exactly that
tool's arguments (required ones first, optional ones optional), so a small model cannot
ramble or invent arguments. The JSON format uses :func:`react_json_schema`, one
alternative per tool, which the backend compiles (llama.cpp: to a grammar; OpenAI:
``response_format``).

GBNF reference: llama.cpp ``grammars/README.md``. Argument types handled exactly:
string (with ``enum``), integer, number, boolean; anything else (arrays, nested
objects) falls back to any one-line text between braces, which the tool's pydantic
validation then checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from knowbase.agents.parsing import FINAL

_STRING = r'"\"" ( [^"\\\n] | "\\" ["\\/bfnrt] ){0,200} "\""'
_PRIMITIVES = {
    "string": "str",
    "integer": "int",
    "number": "num",
    "boolean": "bool",
}
_RULES = {
    "str": _STRING,
    "int": '"-"? [0-9]{1,15}',
    "num": '"-"? [0-9]{1,15} ("." [0-9]{1,10})?',
    "bool": '"true" | "false"',
    "thought": r"[^\n]{1,160}",
    "line": r"[^\n]{1,300}",
    "anyobj": r'"{" [^\n]{0,300} "}"',
}


def _literal(text: str) -> str:
    """A GBNF string literal for ``text`` (JSON escaping is a valid GBNF escaping)."""
    return json.dumps(text, ensure_ascii=False)


def _value_rule(prop: Mapping[str, Any]) -> str | None:
    """The GBNF expression for one argument value, or None when it is not a simple type."""
    if "enum" in prop and all(isinstance(v, (str, int, float, bool)) for v in prop["enum"]):
        return " | ".join(_literal(json.dumps(v, ensure_ascii=False)) for v in prop["enum"])
    kind = prop.get("type")
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    options = prop.get("anyOf")
    if options:  # Optional[X] is anyOf [X, null]
        simple = [o for o in options if o.get("type") != "null"]
        if len(simple) == 1:
            inner = _value_rule(simple[0])
            if inner is not None:
                return f"{inner} | \"null\"" if len(simple) < len(options) else inner
    return None


def arguments_rule(parameters: Mapping[str, Any]) -> str:
    """GBNF for a one-line JSON object holding exactly these arguments.

    Required arguments come first, in schema order; each optional one may be left out.
    Falls back to ``anyobj`` (any one line in braces) for argument types it cannot spell.
    """
    props: Mapping[str, Any] = parameters.get("properties") or {}
    required = [p for p in parameters.get("required", []) if p in props]
    optional = [p for p in props if p not in required]
    if not props:
        return '"{}"'
    pairs: dict[str, str] = {}
    for name in [*required, *optional]:
        value = _value_rule(props[name])
        if value is None:
            return "anyobj"
        pairs[name] = f"{_literal(json.dumps(name) + ': ')} ({value})"
    if required:
        body = ' ", " '.join(pairs[name] for name in required)
        body += "".join(f' (", " {pairs[name]})?' for name in optional)
    else:  # optional arguments only: the first must be given for later ones to follow
        first, *rest = optional
        body = f"({pairs[first]}" + "".join(f' (", " {pairs[name]})?' for name in rest) + ")?"
    return f'"{{" {body} "}}"'


def react_text_grammar(tools: Mapping[str, Any]) -> str:
    """GBNF for one ReAct text step over ``tools`` (name -> :class:`~knowbase.agents.tools.Tool`).

    ``Thought: <at most 160 characters>`` then either ``Action: <tool>`` + ``Action Input:
    <its JSON arguments>`` or ``Final Answer: <line>``. The short thought keeps the whole
    step inside a small ``max_tokens`` (a step cut short does not parse).
    """
    lines = ['root ::= "Thought: " thought "\\n" (final | ' + (" | ".join(f"call{i}" for i in range(len(tools))) or
                                                              "final") + ")",
             'final ::= "Final Answer: " line']
    for i, (name, t) in enumerate(tools.items()):
        lines.append(f'call{i} ::= {_literal(f"Action: {name}" + chr(10) + "Action Input: ")} '
                     f"{arguments_rule(t.parameters)}")
    lines += [f"{name} ::= {rule}" for name, rule in _RULES.items()]
    return "\n".join(lines)


def react_json_schema(tools: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema of one JSON-format ReAct step: one alternative per tool, plus the final answer.

    Each tool alternative pins ``action`` to the tool's name and ``action_input`` to its
    parameters (no extra keys); ``thought`` is at most 160 characters.
    """
    variants: list[dict[str, Any]] = []
    for name, t in tools.items():
        params = dict(t.parameters)
        params["additionalProperties"] = False
        variants.append({"type": "object", "properties": {
            "thought": {"type": "string", "maxLength": 160}, "action": {"const": name}, "action_input": params},
            "required": ["thought", "action", "action_input"]})
    variants.append({"type": "object", "properties": {
        "thought": {"type": "string", "maxLength": 160}, "action": {"const": FINAL},
        "action_input": {"type": "string"}},
        "required": ["thought", "action", "action_input"]})
    return {"anyOf": variants}
