"""The hostile model-text corpus, generated at test time (nothing large is committed).

Each case is a :class:`Case`: an ``id``, a ``make()`` that builds the text, the ``limit``
it is meant to hit (a named limit of :mod:`knowbase.safety.jsonsafe` or
:mod:`knowbase.sql.validate`, or None when the input is merely awkward) and, per parser,
what must come out: the name of the error class raised, or ``"value:<repr>"`` for the
exact value returned. Parsers (see ``tests/test_hostile_text.py``):

* ``react_text`` -- :func:`knowbase.agents.parsing.parse_react_text`
* ``react_json`` -- :func:`knowbase.agents.parsing.parse_react_json`
* ``tool_calls`` -- :func:`knowbase.agents.parsing.parse_text_tool_calls` (never raises)
* ``extract_json`` -- :func:`knowbase.output.parsers.extract_json`
* ``structured`` -- :func:`knowbase.output.structured.validate_output` into ``Items``
* ``sql`` -- :func:`knowbase.sql.validate.validate_sql` (SQLite, no schema)

``SQL_CASES`` are model replies for the Text2SQL executor on Chinook:
``(id, sql, expected)`` with ``expected`` one of ``refused``, ``invalid``, ``timeout``,
``bytes`` (runs, result cut at the byte budget) or ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from knowbase.safety.jsonsafe import MAX_JSON_CHARS, MAX_JSON_DEPTH
from knowbase.sql.validate import MAX_SQL_CHARS, MAX_SQL_DEPTH

PARSERS = ("react_text", "react_json", "tool_calls", "extract_json", "structured", "sql")
#: Parsers run over every case for bounded time and no crash only (their values on prose
#: are not specified here): list, key-value, multiple-choice parsers and SQL extraction.
LENIENT_PARSERS = ("list", "key_values", "choice", "agent_choice", "extract_sql")

#: What every parser gives for text with no usable content.
_NOTHING = {"react_text": "StepParseError", "react_json": "StepParseError", "tool_calls": "value:[]",
            "extract_json": "OutputParseError", "structured": "OutputParseError", "sql": "UserError"}
#: ... and for JSON over a limit of :mod:`knowbase.safety.jsonsafe`.
_JSON_LIMIT = {**_NOTHING, "extract_json": "JSONLimitError", "structured": "JSONLimitError"}


@dataclass(frozen=True)
class Case:
    """One hostile input: ``expect[parser]`` is an error class name or ``value:<repr>``."""

    id: str
    make: Callable[[], str]
    limit: str | None
    expect: dict[str, str] = field(default_factory=dict)

    def expected(self, parser: str) -> str:
        return self.expect[parser]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def _nested(n: int) -> object:
    value: object = 1
    for _ in range(n):
        value = [value]
    return value


def _deep_obj(n: int) -> str:
    return '{"a": ' * n + "1" + "}" * n


OSC52 = "\x1b]52;c;ZXZpbA==\x07"

CASES: list[Case] = [
    # --- depth ----------------------------------------------------------------------------
    Case("deep-array-1500", lambda: _deep(1500), "json depth", _JSON_LIMIT),
    Case("deep-object-1200", lambda: _deep_obj(1200), "json depth", _JSON_LIMIT),
    Case("deep-just-over", lambda: _deep(MAX_JSON_DEPTH + 1), "json depth", _JSON_LIMIT),
    Case("deep-at-limit", lambda: "[" * MAX_JSON_DEPTH + "1" + "]" * MAX_JSON_DEPTH, None,
         {**_NOTHING, "extract_json": "value:" + repr(_nested(MAX_JSON_DEPTH)), "structured": "OutputParseError"}),
    Case("deep-unclosed-100k", lambda: "[" * 100_000, "json depth", {**_NOTHING, "extract_json": "JSONLimitError",
                                                                    "structured": "JSONLimitError"}),
    Case("deep-in-fence", lambda: "Here:\n```json\n" + _deep(3000) + "\n```", "json depth", _JSON_LIMIT),
    Case("deep-react-input", lambda: 'Thought: t\nAction: search\nAction Input: {"q": ' + _deep(2000) + "}",
         "json depth", {**_JSON_LIMIT, "react_json": "StepParseError"}),
    Case("deep-react-json", lambda: '{"thought": "t", "action": "search", "action_input": ' + _deep(2000) + "}",
         "json depth", _JSON_LIMIT),
    Case("deep-tool-call", lambda: '<tool_call>{"name": "search", "arguments": ' + _deep_obj(2000) + "}</tool_call>",
         "json depth", _JSON_LIMIT),
    Case("deep-tool-call-string-args",
         lambda: '{"name": "search", "arguments": "' + _deep(2000) + '"}', "json depth",
         {**_NOTHING, "tool_calls": "value:[('search', {'__raw__': '" + _deep(2000) + "'})]",
          "react_json": "StepParseError", "extract_json": "value:{'name': 'search', 'arguments': '" + _deep(2000) + "'}",
          "structured": "OutputParseError"}),
    # --- size ------------------------------------------------------------------------------
    Case("json-over-chars", lambda: '{"items": [1], "pad": "' + "x" * (MAX_JSON_CHARS + 10) + '"}', "json chars",
         {**_JSON_LIMIT, "sql": "SQLValidationError"}),
    Case("blank-lines-200k", lambda: "\n" * 200_000 + "Action: search", None,
         {**_NOTHING, "react_text": "value:('search', None)"}),
    Case("thoughts-50k", lambda: "Thought: hmm\n" * 50_000, None, _NOTHING),
    Case("action-lines-50k", lambda: "Action:\n" * 50_000, None, _NOTHING),
    Case("action-then-spaces", lambda: "Action" + " " * 200_000 + "x", None, _NOTHING),
    Case("action-then-tabs-digits", lambda: "Action" + "\t" * 100_000 + "1" * 100_000, None, _NOTHING),
    Case("input-then-spaces", lambda: "Action: search\nAction Input" + " \t" * 100_000, None,
         {**_NOTHING, "react_text": "value:('search', None)"}),
    Case("final-then-spaces", lambda: "Final" + " " * 200_000 + "Answer", None, _NOTHING),
    Case("key-value-spaces", lambda: " " * 200_000 + "x, y", None, _NOTHING),
    Case("key-value-trailing", lambda: "k: a" + " " * 200_000 + "b", None, _NOTHING),
    Case("list-and-spaces", lambda: "a" + " " * 200_000 + "andx, y", None, _NOTHING),
    Case("choice-spaces", lambda: "answer" + " " * 200_000 + "is" + " " * 200_000, None, _NOTHING),
    Case("emphasis-run", lambda: "a" + "*" * 200_000 + "b, c", None, _NOTHING),
    Case("braces-50k-unbalanced", lambda: "{" * 50_000 + "}", "json depth",
         {**_NOTHING, "extract_json": "JSONLimitError", "structured": "JSONLimitError"}),
    Case("empty-objects-100k", lambda: "{}" * 100_000, None,
         {**_NOTHING, "react_json": "StepParseError", "extract_json": "value:{}", "structured": "OutputParseError"}),
    Case("bracket-prose-then-object", lambda: "[x] " * 50_000 + '{"items": [4]}', None,
         {**_NOTHING, "extract_json": "value:{'items': [4]}", "structured": "value:[4]"}),
    # --- meaning ----------------------------------------------------------------------------
    Case("trailing-comma", lambda: '{"items": [1, 2, 3],}', None,
         {**_NOTHING, "extract_json": "value:{'items': [1, 2, 3]}", "structured": "value:[1, 2, 3]",
          "react_json": "StepParseError"}),
    Case("trailing-comma-in-string", lambda: '{"items": [1], "note": "a,}",}', None,
         {**_NOTHING, "extract_json": "value:{'items': [1], 'note': 'a,}'}", "structured": "value:[1]"}),
    Case("unrepairable-outer", lambda: '{"items": [1, 2, 3], oops}', None, _NOTHING),
    Case("missing-comma", lambda: '{"items": [1, 2, 3] "more": true}', None, _NOTHING),
    Case("react-trailing-comma", lambda: '{"thought": "t", "action": "search", "action_input": {"q": "x",},}', None,
         {**_NOTHING, "react_json": "value:('search', {'q': 'x'})",
          "extract_json": "value:{'thought': 't', 'action': 'search', 'action_input': {'q': 'x'}}"}),
    # --- markup and control sequences ----------------------------------------------------------
    Case("markup-and-osc52", lambda: f"[/x] [red]Final Answer: done {OSC52}", None,
         {**_NOTHING, "react_text": "value:('final_answer', " + repr(f"done {OSC52}") + ")"}),
    Case("raw-nul-in-json", lambda: 'Action: search\nAction Input: {"q": "\x00"}', None, _NOTHING),
    Case("nul-and-surrogate", lambda: 'Action: search\nAction Input: {"q": "\\u0000\\ud800"}', None,
         {**_NOTHING, "react_text": "value:('search', {'q': '\\x00\\ud800'})",
          "extract_json": "value:{'q': '\\x00\\ud800'}", "structured": "OutputParseError"}),
    # --- SQL ----------------------------------------------------------------------------------
    Case("sql-zeroblob-1e6+1", lambda: "SELECT zeroblob(1e6+1)", None, {**_NOTHING, "sql": "SQLRefusedError"}),
    Case("sql-parens-just-over", lambda: "SELECT " + "(" * (MAX_SQL_DEPTH + 1) + "1" + ")" * (MAX_SQL_DEPTH + 1),
         "sql depth", _NOTHING),
    Case("sql-parens-5000", lambda: "SELECT " + "(" * 5000 + "1" + ")" * 5000, "sql depth", _NOTHING),
    Case("sql-not-chain", lambda: "SELECT 1 WHERE " + "NOT " * 3000 + "1", "recursion", _NOTHING),
    Case("sql-case-nesting", lambda: "SELECT " + "CASE WHEN 1 THEN " * 500 + "1" + " END" * 500, "recursion", _NOTHING),
    Case("sql-union-chain", lambda: "SELECT 1" + " UNION SELECT 1" * 3000, None,
         {**_NOTHING, "sql": "value:'ok'"}),
    Case("sql-over-chars", lambda: "SELECT 1 -- " + "x" * MAX_SQL_CHARS, "sql chars", _NOTHING),
    Case("sql-unclosed-string", lambda: "SELECT 'abc", None, _NOTHING),
    Case("sql-huge-number", lambda: "SELECT randomblob(1e999999)", None, {**_NOTHING, "sql": "SQLRefusedError"}),
]

#: Model replies for the Text2SQL executor (Chinook): (id, sql, expected outcome).
SQL_CASES: list[tuple[str, str, str]] = [
    ("printf-2e9", "SELECT length(printf('%.*c', 2000000000, 'x')) FROM Track LIMIT 4", "refused"),
    ("printf-width-2e9", "SELECT printf('%2000000000d', 1) FROM Track LIMIT 4", "refused"),
    ("zeroblob-1e6+1", "SELECT zeroblob(1e6+1)", "refused"),
    ("replace-blowup", "SELECT length(replace(hex(zeroblob(900000)), '0', '00000000000000000000')) FROM Track", "refused"),
    ("rows-of-9mb", "SELECT printf('%.*c', 9000000, 'x') AS big FROM Track LIMIT 150", "bytes"),
    ("cross-join", "SELECT count(*) FROM Track a, Track b, Track c", "timeout"),
    ("recursive-forever", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
     "timeout"),
    ("deep-parens", "SELECT " + "(" * 200 + "1" + ")" * 200, "invalid"),
    ("not-chain", "SELECT 1 WHERE " + "NOT " * 3000 + "1", "invalid"),
    ("legit", "SELECT count(*) AS n FROM Track", "ok"),
]
