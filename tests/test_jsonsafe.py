"""JSON from model text: depth-bounded in every parser, and a repair that never changes the value."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from knowbase.agents.functions import clean_answer
from knowbase.agents.parsing import (
    StepParseError,
    parse_json_object,
    parse_react_json,
    parse_react_text,
    parse_text_tool_calls,
)
from knowbase.errors import ModelResponseError, OutputParseError
from knowbase.models.base import ChatModel, ChatResult
from knowbase.models.fake import FakeChat
from knowbase.output.parsers import JsonParser, extract_json
from knowbase.output.structured import chat_structured, validate_output
from knowbase.safety.jsonsafe import (
    MAX_JSON_DEPTH,
    JSONLimitError,
    json_depth,
    loads,
    loads_lenient,
    repair,
    top_level_spans,
)

DEEP = "[" * 1500 + "]" * 1500
DEEP_OBJ = '{"a": ' * 1200 + "1" + "}" * 1200


class Items(BaseModel):
    items: list[int]


# --- limits ---------------------------------------------------------------------------------
def test_depth_is_counted_outside_strings_only() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth('"\\"[[["') == 0
    assert json_depth(DEEP) == 1500


def test_just_over_the_depth_limit_is_refused_and_at_it_accepted() -> None:
    at = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    over = "[" + at + "]"
    assert json_depth(loads(at) and at) == MAX_JSON_DEPTH
    with pytest.raises(JSONLimitError) as info:
        loads(over)
    assert (info.value.limit, info.value.value, info.value.maximum) == ("depth", MAX_JSON_DEPTH + 1, MAX_JSON_DEPTH)


@pytest.mark.parametrize("payload", [DEEP, DEEP_OBJ], ids=["array", "object"])
def test_every_model_text_parser_survives_deep_json(payload: str) -> None:
    wrapped = '{"action": "search", "action_input": ' + payload + "}"
    with pytest.raises(StepParseError) as info:
        parse_react_json(wrapped)
    assert "too large" in str(info.value) and info.value.limit == "depth"
    with pytest.raises(StepParseError) as info:
        parse_react_text("Thought: go\nAction: search\nAction Input: " + wrapped)
    assert info.value.limit == "depth"
    with pytest.raises(StepParseError):
        parse_json_object(payload)
    assert parse_text_tool_calls(f'<tool_call>{{"name": "search", "arguments": {payload}}}</tool_call>') == []
    assert parse_text_tool_calls('{"name": "search", "arguments": "' + payload.replace('"', '\\"') + '"}')[0] \
        .arguments == {"__raw__": payload}
    with pytest.raises(JSONLimitError):
        extract_json("Here: " + payload)
    with pytest.raises(JSONLimitError):
        JsonParser().parse(payload)
    with pytest.raises(OutputParseError):
        validate_output(payload, Items)
    with pytest.raises(OutputParseError):
        ChatResult(payload).json()
    assert clean_answer('{"answer": "x", "more": ' + payload + "}").startswith("x")


def test_structured_output_retries_after_deep_json_and_then_succeeds() -> None:
    model = ChatModel(FakeChat([DEEP_OBJ, '{"items": [1, 2]}']))
    out = chat_structured(model, "numbers", Items, constrained=False)
    assert out.value == Items(items=[1, 2]) and out.attempts == 2


def test_openai_compatible_tool_arguments_and_llamacpp_tool_replies_survive_deep_json() -> None:
    from knowbase.models.llamacpp import _parse_tool_reply
    from knowbase.models.openai_compat import _tool_call

    with pytest.raises(ModelResponseError):
        _tool_call({"function": {"name": "f", "arguments": DEEP_OBJ}})
    text = '{"tool": "f", "arguments": ' + DEEP_OBJ + "}"
    assert _parse_tool_reply(text) == (text, ())


# --- repair never changes meaning -------------------------------------------------------------
@pytest.mark.parametrize(("text", "value"), [
    ('{"items": [1, 2, 3],}', {"items": [1, 2, 3]}),
    ('{"items": [1, 2, 3,],}', {"items": [1, 2, 3]}),
    ('{"s": "a,}", "t": [",]",],}', {"s": "a,}", "t": [",]"]}),
    ('[{"a": 1,}, {"b": [2,\n]},\n]', [{"a": 1}, {"b": [2]}]),
])
def test_trailing_commas_are_the_only_repair(text: str, value: object) -> None:
    assert loads_lenient(text) == value
    assert extract_json(text) == value
    assert extract_json(f"Sure! Here it is:\n```json\n{text}\n```") == value
    assert extract_json(f"Result: {text} -- hope that helps") == value


def test_the_outer_object_is_returned_not_an_inner_fragment() -> None:
    assert extract_json('{"items": [1, 2, 3],}') == {"items": [1, 2, 3]}
    assert parse_json_object('{"items": [1, 2, 3],}') == {"items": [1, 2, 3]}
    assert validate_output('{"items": [1, 2, 3],}', Items) == Items(items=[1, 2, 3])
    assert parse_react_json('{"action": "search", "action_input": {"q": "x",},}').action_input == {"q": "x"}


@pytest.mark.parametrize("text", [
    '{"items": [1, 2, 3], oops}',          # cannot be repaired: the list inside is not what was written
    '{"items": [1, 2, 3] "more": 1}',      # a missing comma is not guessed
    "{'items': [1, 2, 3]}",                # single quotes are not guessed
    '{"a": {"b": 1}, ,}',                  # a doubled comma is not a trailing comma
])
def test_an_unrepairable_object_is_an_error_not_a_fragment(text: str) -> None:
    with pytest.raises(OutputParseError):
        extract_json(text)
    with pytest.raises(StepParseError):
        parse_json_object(text)
    with pytest.raises(OutputParseError):
        validate_output(text, Items)


def test_repair_touches_only_commas_before_closers() -> None:
    assert repair('{"a": [1, 2,], "s": "x,]",}') == '{"a": [1, 2], "s": "x,]"}'
    assert repair('[1,\n  ]') == "[1\n  ]"
    assert repair('"only, a string,"') == '"only, a string,"'
    with pytest.raises(json.JSONDecodeError):
        loads_lenient("[1, 2")


def test_spans_are_outermost_and_string_aware() -> None:
    text = 'see [1] and {"a": "}", "b": [2]} then {'
    assert [text[a:b] for a, b in top_level_spans(text)] == ["[1]", '{"a": "}", "b": [2]}']
    assert extract_json('I pick [1] from {"a": 1}', expect=dict) == {"a": 1}
