"""Structured output (schema to backend, hint, validate-and-retry) and the text parsers."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from knowbase.errors import OutputParseError
from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat, json_reply
from knowbase.output import (
    ChoiceParser,
    KeyValueParser,
    ListParser,
    PydanticParser,
    chat_structured,
    extract_json,
    json_schema_of,
    parse_choice,
    parse_key_values,
    parse_list,
    schema_hint,
    structured,
)


class Address(BaseModel):
    city: str


class Person(BaseModel):
    name: str
    age: int = Field(description="in years")
    tags: list[str] = []
    kind: Literal["staff", "guest"] = "guest"
    address: Address | None = None


# --- JSON extraction --------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('  [1, 2] ', [1, 2]),
    ('Sure! ```json\n{"a": 1}\n``` Hope that helps.', {"a": 1}),
    ('```\n{"a": [1, {"b": null}]}\n```', {"a": [1, {"b": None}]}),
    ('Here it is: {"a": "x}y"} and more {"b": 2}', {"a": "x}y"}),
    ('The {weird} thing, then {"ok": true}', {"ok": True}),
])
def test_extract_json(text: str, expected: object) -> None:
    assert extract_json(text) == expected


def test_extract_json_expect_and_failure() -> None:
    assert extract_json('list [1] then {"k": 2}', expect=dict) == {"k": 2}
    with pytest.raises(OutputParseError) as info:
        extract_json("no json here {oops")
    assert info.value.raw == "no json here {oops"


# --- lists, choices, key-values -----------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("1. apples\n2) pears\n- **plums**.", ["apples", "pears", "plums"]),
    ("Here are three:\n* red\n* green\n* blue\nEnjoy!", ["red", "green", "blue"]),
    ("red, green and blue", ["red", "green", "blue"]),
    ("red; green; blue.", ["red", "green", "blue"]),
    ("alpha\nbeta\n", ["alpha", "beta"]),
    ("• one\n• two", ["one", "two"]),
    ("single", ["single"]),
])
def test_parse_list(text: str, expected: list[str]) -> None:
    assert parse_list(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("B", 1), ("b", 1), ("B)", 1), ("(B)", 1), ("**B**", 1), ("B.", 1), ("The answer is B.", 1),
    ("Answer: C", 2), ("**Answer:** c", 2), ("option b", 1), ("B) billing questions", 1), ("I would choose B", 1),
    ("billing", 1), ("It is about Billing.", 1), ("A", 0), ("a)", 0), ("none of these", 2), ("C. None of these", 2),
    ("D", None), ("I cannot tell", None), ("", None),
])
def test_parse_choice(text: str, expected: int | None) -> None:
    assert parse_choice(text, 3, labels=["sales", "billing", "none of these"]) == expected


def test_choice_parser() -> None:
    p = ChoiceParser(["positive", "negative"])
    assert p.options_text() == "A) positive\nB) negative"
    assert p.parse("**B**") == "negative"
    with pytest.raises(OutputParseError):
        p.parse("hmm")
    assert ChoiceParser(["x", "y"], default="x").parse("hmm") == "x"


def test_key_values() -> None:
    text = "Here you go:\n**Name**: Ada Lovelace\n- Role = engineer\nborn: 1815\nName: other"
    assert parse_key_values(text) == {"Name": "Ada Lovelace", "Role": "engineer", "born": "1815"}
    assert KeyValueParser(["name", "Born"]).parse(text) == {"name": "Ada Lovelace", "Born": "1815"}
    with pytest.raises(OutputParseError):
        parse_key_values("no pairs")
    assert ListParser().parse("1. a\n2. b") == ["a", "b"]


# --- schema hint ------------------------------------------------------------------------------
def test_schema_hint() -> None:
    hint = schema_hint(json_schema_of(Person))
    assert hint == ('{"name": string, "age": integer, "tags"?: [string], "kind"?: "staff" | "guest", '
                    '"address"?: {"city": string} | null}\n- age: in years')


# --- structured output with retries -----------------------------------------------------------------
def test_structured_first_try() -> None:
    fake = FakeChat([json_reply({"name": "Ada", "age": 36})])
    person = structured(ChatModel(fake), "Ada Lovelace died at 36.", Person)
    assert person == Person(name="Ada", age=36)
    messages, options = fake.calls[0]
    assert options.json_schema == json_schema_of(Person)
    assert messages[-1].content.startswith("Ada Lovelace died at 36.\n\nReply with only one JSON object")
    assert '"name": string' in messages[-1].content


def test_structured_retries_with_error_fed_back() -> None:
    fake = FakeChat(["I think she was 36", 'Sure: {"name": "Ada", "age": "thirty-six"}',
                     '```json\n{"name": "Ada", "age": 36, "kind": "staff"}\n```'])
    done = chat_structured(ChatModel(fake), "Ada Lovelace died at 36.", Person, max_attempts=3)
    assert done.value == Person(name="Ada", age=36, kind="staff")
    assert done.attempts == 3
    second = fake.calls[1][0]
    assert [m.role for m in second] == ["user", "assistant", "user"]
    assert second[1].content == "I think she was 36"
    assert second[2].content.startswith("That reply was not valid: no JSON found")
    third = fake.calls[2][0]
    assert "age: Input should be a valid integer" in third[-1].content


def test_structured_gives_up_with_raw_text() -> None:
    fake = FakeChat(["nope", "still nope"])
    with pytest.raises(OutputParseError) as info:
        chat_structured(ChatModel(fake), "x", Person, max_attempts=2)
    assert info.value.raw == "still nope"
    assert info.value.attempts == 2
    assert len(info.value.errors) == 2
    assert len(fake.calls) == 2


def test_structured_unconstrained_and_no_hint() -> None:
    fake = FakeChat([json_reply({"name": "Bo", "age": 3})])
    structured(ChatModel(fake), "x", Person, constrained=False, hint=False)
    messages, options = fake.calls[0]
    assert options.json_schema is None
    assert messages[-1].content == "x"


def test_pydantic_parser() -> None:
    p = PydanticParser(Person)
    assert p.parse('{"name": "A", "age": 1}') == Person(name="A", age=1)
    assert p.json_schema["required"] == ["name", "age"]
    assert p.instructions().startswith("Reply with only one JSON object")
    with pytest.raises(OutputParseError):
        p.parse('{"name": "A"}')


def test_structured_list_type() -> None:
    fake = FakeChat(['{"items": [1, 2, 3]}'])

    class Items(BaseModel):
        items: list[int]

    assert structured(ChatModel(fake), "x", Items).items == [1, 2, 3]
