"""The grammars and schemas that constrain agent steps: exact text, and (when llama.cpp is
installed) that llama.cpp's own GBNF parser and JSON-Schema converter accept them."""

from __future__ import annotations

import re
from typing import Literal

import pytest

from knowbase.agents.builtin import calculator, current_time
from knowbase.agents.grammar import arguments_rule, react_json_schema, react_text_grammar
from knowbase.agents.router import choice_grammar
from knowbase.agents.tools import Tool, Toolbox


def order(order_id: int, express: bool = False, region: Literal["eu", "us"] = "eu", note: str | None = None) -> str:
    """Order.

    Args:
        order_id: number.
        express: fast.
        region: where.
        note: free text.
    """
    return ""


def tags(names: list[str]) -> str:
    """Tags."""
    return ""


def test_arguments_rule_pins_names_types_and_order() -> None:
    rule = arguments_rule(Tool.from_function(order).parameters)
    assert rule == ('"{" "\\"order_id\\": " (int) (", " "\\"express\\": " (bool))? '
                    '(", " "\\"region\\": " ("\\"eu\\"" | "\\"us\\""))? (", " "\\"note\\": " (str | "null"))? "}"')
    assert arguments_rule(Tool.from_function(current_time).parameters) == '"{" ("\\"timezone\\": " (str))? "}"'
    assert arguments_rule(Tool.from_function(tags).parameters) == "anyobj"   # arrays: any one line in braces
    assert arguments_rule({"type": "object", "properties": {}}) == '"{}"'


def test_react_text_grammar_lists_every_tool() -> None:
    box = Toolbox([calculator, current_time])
    g = react_text_grammar(box)
    assert g.splitlines()[0] == 'root ::= "Thought: " thought "\\n" (final | call0 | call1)'
    assert 'call1 ::= "Action: current_time\\nAction Input: "' in g
    defined = set(re.findall(r"^(\w+) ::=", g, re.M))
    used = set(re.findall(r"\b(call\d+|final|thought|line|str|int|num|bool|anyobj)\b", g))
    assert used <= defined


def test_react_json_schema_has_one_alternative_per_tool() -> None:
    schema = react_json_schema(Toolbox([calculator, order]))
    assert [v["properties"]["action"]["const"] for v in schema["anyOf"]] == ["calculator", "order", "final_answer"]
    assert schema["anyOf"][1]["properties"]["action_input"]["additionalProperties"] is False
    assert schema["anyOf"][2]["properties"]["action_input"] == {"type": "string"}


@pytest.mark.slow
def test_llama_cpp_parses_the_grammars() -> None:
    """llama.cpp's own parser (through a vocabulary-only load of SmolLM2) accepts every grammar."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import json

    from knowbase.config import Settings
    from knowbase.errors import UserError
    from knowbase.models.catalog import model_path
    from knowbase.models.llamacpp import check_grammar

    llama = llama_cpp.Llama(model_path=str(model_path("smollm2-135m", Settings.load())), vocab_only=True,
                            verbose=False)
    box = Toolbox([calculator, current_time, order, tags])
    converted = llama_cpp.llama_grammar.json_schema_to_gbnf(json.dumps(react_json_schema(box)))
    for gbnf in (react_text_grammar(box), choice_grammar(5), converted):
        check_grammar(llama, gbnf)
    with pytest.raises(UserError):
        check_grammar(llama, 'root ::= "a" undefined-rule')
    assert "final_answer" in converted and "order_id" in converted
