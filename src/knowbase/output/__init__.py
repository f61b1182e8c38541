"""Structured output and parsers: pydantic objects from model replies, lists, choices, key-values.

* :func:`structured` / :func:`chat_structured` -- schema to the backend (grammar or
  ``response_format``), a hint in the prompt, validate-and-retry.
* :func:`extract_json`, :func:`parse_list`, :func:`parse_choice`, :func:`parse_key_values`
  and the parser objects wrapping them.
"""

from knowbase.output.parsers import (
    ChoiceParser,
    JsonParser,
    KeyValueParser,
    ListParser,
    OutputParser,
    StrParser,
    extract_json,
    parse_choice,
    parse_key_values,
    parse_list,
)
from knowbase.output.structured import (
    PydanticParser,
    Structured,
    chat_structured,
    json_schema_of,
    schema_hint,
    structured,
    validate_output,
)

__all__ = [
    "ChoiceParser", "JsonParser", "KeyValueParser", "ListParser", "OutputParser", "PydanticParser", "StrParser",
    "Structured", "chat_structured", "extract_json", "json_schema_of", "parse_choice", "parse_key_values",
    "parse_list", "schema_hint", "structured", "validate_output",
]
