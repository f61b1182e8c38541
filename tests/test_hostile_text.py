"""Every model-text parser and the Text2SQL executor against the hostile corpus
(``tests/hostile_text.py``): each case gives the expected error class or value, and a
whole parser's run over the corpus happens in a child process with a time limit, so a
hang or a crash (RecursionError, MemoryError, a native fault) fails the test instead of
the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from hostile_text import CASES, LENIENT_PARSERS, PARSERS, SQL_CASES
from knowbase.errors import KnowbaseError

HERE = Path(__file__).parent
#: Seconds one parser may take over the whole corpus (a few seconds on a 2-core machine;
#: the super-linear regexes this guards against took minutes on these inputs).
CORPUS_SECONDS = 180


class Items(BaseModel):
    items: list[int]


def _run(parser: str, text: str) -> Any:
    from knowbase.agents.parsing import parse_react_json, parse_react_text, parse_text_tool_calls
    from knowbase.output.parsers import extract_json
    from knowbase.output.structured import validate_output
    from knowbase.sql.validate import validate_sql

    if parser == "react_text":
        step = parse_react_text(text)
        return (step.action, step.action_input)
    if parser == "react_json":
        step = parse_react_json(text)
        return (step.action, step.action_input)
    if parser == "tool_calls":
        return [(c.name, c.arguments) for c in parse_text_tool_calls(text)]
    if parser == "extract_json":
        return extract_json(text)
    if parser == "structured":
        return validate_output(text, Items).items
    if parser == "sql":
        validate_sql(text, dialect="sqlite")
        return "ok"
    from knowbase.agents.parsing import parse_choice as agent_choice
    from knowbase.output.parsers import parse_choice, parse_key_values, parse_list
    from knowbase.sql.generate import extract_sql

    lenient = {"list": parse_list, "key_values": parse_key_values, "choice": lambda t: parse_choice(t, 4),
               "agent_choice": lambda t: agent_choice(t, 4), "extract_sql": extract_sql}
    return lenient[parser](text)


def outcome(parser: str, text: str) -> dict[str, Any]:
    """``{"value": repr}`` or ``{"error": class name, "mro": [...], "limit": ...}`` of one parse."""
    try:
        return {"value": repr(_run(parser, text))}
    except KnowbaseError as exc:
        return {"error": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                "limit": exc.detail.get("limit")}
    except BaseException as exc:  # any other exception is a defect the test reports
        return {"error": type(exc).__name__, "mro": ["crash"], "message": str(exc)[:200]}


def _child(parser: str) -> None:
    print(json.dumps({case.id: outcome(parser, case.make()) for case in CASES}))


@pytest.mark.parametrize("parser", PARSERS)
def test_parser_survives_the_corpus(parser: str) -> None:
    proc = subprocess.run([sys.executable, str(Path(__file__)), parser], capture_output=True, text=True,
                          timeout=CORPUS_SECONDS, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    problems = []
    for case in CASES:
        expected, got = case.expected(parser), results[case.id]
        if expected.startswith("value:"):
            ok = got.get("value") == expected[len("value:"):]
        else:
            ok = expected in got.get("mro", ())
        if not ok:
            problems.append(f"{case.id}: expected {expected[:120]}, got {str(got)[:200]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("parser", LENIENT_PARSERS)
def test_lenient_parser_survives_the_corpus_in_bounded_time(parser: str) -> None:
    proc = subprocess.run([sys.executable, str(Path(__file__)), parser], capture_output=True, text=True,
                          timeout=CORPUS_SECONDS, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    crashes = {k: v for k, v in results.items() if "crash" in v.get("mro", ())}
    assert not crashes
    assert set(results) == {c.id for c in CASES}


def test_corpus_covers_every_limit() -> None:
    limits = {c.limit for c in CASES}
    assert {"json depth", "json chars", "sql depth", "sql chars", "recursion"} <= limits
    assert len({c.id for c in CASES}) == len(CASES) >= 30


# --- the Text2SQL executor on Chinook -------------------------------------------------------
@pytest.mark.parametrize(("case", "sql", "expected"), SQL_CASES, ids=[c[0] for c in SQL_CASES])
def test_text2sql_executor_against_the_corpus(shared_data: Path, case: str, sql: str, expected: str) -> None:
    from knowbase.models.base import ChatModel
    from knowbase.models.fake import FakeChat
    from knowbase.sql.pipeline import Text2SQL

    path = shared_data / "chinook" / "Chinook_Sqlite.sqlite"
    model = ChatModel(FakeChat(default=f"```sql\n{sql}\n```"))
    t2s = Text2SQL(path, model=model, timeout=0.5, max_attempts=1, answer=False, sample_values=0,
                   max_bytes=20_000_000)
    result = t2s.ask("hostile")
    if expected == "ok":
        assert result.error is None and result.rows == [(3503,)]
    elif expected == "bytes":
        assert result.error is None and result.truncated_by == "bytes" and len(result.rows) == 2
    elif expected == "refused":
        assert result.error is not None and result.error.startswith("refused"), result.error
    elif expected == "timeout":
        assert result.error == "query stopped at the time limit of 0.5 s"
    else:
        assert result.error is not None and not result.error.startswith("refused"), result.error
        assert "nested" in result.error or "cannot analyse" in result.error
    assert result.attempts == 1


# --- random model-like text: only knowbase errors, never a crash ------------------------------
_SQL_WORDS = ["SELECT", "FROM", "WHERE", "Track", "t", "Name", "(", ")", ",", "*", "1", "1e6+1", "0x10", "'x'",
              '"q"', "`b`", "[c]", "AND", "NOT", "=", "||", "-", "JOIN", "ON", "GROUP BY", "ORDER BY", "LIMIT",
              "UNION", "WITH", "AS", "CASE", "WHEN", "THEN", "END", "zeroblob", "randomblob", "printf", "count",
              "json_each", "IN", "CAST", "NULL", "?", ":x", ";", "--", "/*", "*/", "\n", "OVER", "main.", "x.y.z",
              "e", ".", "1.", "'", '"', "\\", "\x00", "é", "中"]
_JSON_WORDS = ["{", "}", "[", "]", ",", ":", '"a"', '"action"', '"final_answer"', '"name"', '"arguments"', "1",
               "-0.5e3", "true", "null", '"\\u0000"', '"\\ud800"', "```json", "```", "<tool_call>", "</tool_call>",
               "Thought:", "Action:", "Action Input:", "Final Answer:", "Observation:", "\n", " ", "[/x]", "\x1b]52;",
               "'", "\\"]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(_SQL_WORDS), max_size=30).map(" ".join))
def test_sql_validation_raises_only_knowbase_errors(text: str) -> None:
    from knowbase.sql.validate import validate_sql

    try:
        validate_sql(text, dialect="sqlite", limit=10)
    except KnowbaseError:
        pass


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(_JSON_WORDS), max_size=40).map("".join))
def test_model_text_parsers_raise_only_knowbase_errors(text: str) -> None:
    for parser in PARSERS[:5]:
        result = outcome(parser, text)
        assert "crash" not in result.get("mro", ()), (parser, result)


if __name__ == "__main__":  # the child process of test_parser_survives_the_corpus
    sys.path.insert(0, str(HERE))
    _child(sys.argv[1])
