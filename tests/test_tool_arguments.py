"""Tool arguments: lax coercion as pydantic documents it, constraints kept in the schema and
in validation, the converted arguments recorded, timeouts that stop the work."""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Literal

from pydantic import Field

from knowbase.agents.tools import Tool, Toolbox
from knowbase.tracing.context import span
from knowbase.tracing.store import TraceStore

CALLS: list[dict[str, object]] = []


def find_documents(doc_id: str, tags: list[str], page: int = Field(1, ge=1),
                   size: Annotated[int, Field(ge=1, le=50)] = 10, kind: Literal["memo", "contract"] = "memo",
                   code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "ABC",
                   title: Annotated[str, Field(min_length=2)] = "untitled",
                   filters: dict[str, int] | None = None) -> str:
    """Find documents.

    Args:
        doc_id: the document id.
        tags: tags to match.
        page: page number, from 1.
    """
    CALLS.append({"doc_id": doc_id, "tags": tags, "page": page, "size": size, "kind": kind, "filters": filters})
    return f"{doc_id}:{','.join(tags)}:{page}"


TOOL = Tool.from_function(find_documents)


def test_constraints_are_in_the_schema_the_model_reads() -> None:
    props = TOOL.parameters["properties"]
    assert props["page"] == {"default": 1, "description": "page number, from 1.", "minimum": 1, "type": "integer"}
    assert (props["size"]["minimum"], props["size"]["maximum"]) == (1, 50)
    assert props["kind"]["enum"] == ["memo", "contract"]
    assert props["code"]["pattern"] == "^[A-Z]{3}$"
    assert props["title"]["minLength"] == 2
    assert TOOL.required == ["doc_id", "tags"]
    assert TOOL.signature_text() == (
        'find_documents(doc_id: string, tags: array, page?: integer >= 1, size?: integer >= 1, <= 50, '
        'kind?: "memo" | "contract", code?: string matching ^[A-Z]{3}$, title?: string of at least 2 characters, '
        "filters?: object/null): Find documents.")


def test_constraints_are_enforced_before_the_function_runs() -> None:
    CALLS.clear()
    for bad in ({"page": 0}, {"size": 51}, {"kind": "poem"}, {"code": "abcd"}, {"title": "x"}):
        result = TOOL.run({"doc_id": "a", "tags": [], **bad})
        assert (result.ok, result.error_kind) == (False, "invalid_arguments"), bad
        assert result.validated_arguments is None
    assert "page: Input should be greater than or equal to 1" in TOOL.run({"doc_id": "a", "tags": [], "page": 0}).output
    assert CALLS == []


def test_numbers_become_strings_and_json_strings_become_lists() -> None:
    CALLS.clear()
    result = TOOL.run({"doc_id": 12345, "tags": '["draft","legal"]', "page": "2", "filters": '{"year": 2024}'})
    assert result.ok, result.output
    assert result.output == "12345:draft,legal:2"
    assert CALLS[-1]["doc_id"] == "12345" and CALLS[-1]["tags"] == ["draft", "legal"]
    assert CALLS[-1]["filters"] == {"year": 2024}
    assert result.arguments == {"doc_id": 12345, "tags": '["draft","legal"]', "page": "2", "filters": '{"year": 2024}'}
    assert result.validated_arguments == {"doc_id": "12345", "tags": ["draft", "legal"], "page": 2, "size": 10,
                                          "kind": "memo", "code": "ABC", "title": "untitled",
                                          "filters": {"year": 2024}}


def test_a_json_string_that_is_not_a_list_is_still_refused() -> None:
    for tags in ('{"a": 1}', "[1, 2", "draft", '"draft"'):
        result = TOOL.run({"doc_id": "a", "tags": tags})
        assert (result.ok, result.error_kind) == (False, "invalid_arguments"), tags
    # a string parameter keeps a JSON-looking string as the string it is
    ok = TOOL.run({"doc_id": '["x"]', "tags": []})
    assert ok.ok and ok.output.startswith('["x"]:')


def test_deeply_nested_arguments_are_refused_not_a_crash() -> None:
    result = TOOL.run('{"doc_id": "a", "tags": ' + "[" * 5000 + "]" * 5000 + "}")
    assert (result.ok, result.error_kind) == (False, "invalid_arguments")
    assert "JSON nested 5001 deep; the limit is 100" in result.output


def test_converted_arguments_are_recorded_in_the_trace(tmp_path) -> None:
    store = TraceStore(tmp_path / "logs.db")
    with span("run", kind="agent", store=store) as root:
        Toolbox([TOOL]).run("find_documents", {"doc_id": 7, "tags": '["a"]'})
    spans = store.spans(root.trace_id)
    tool_span = next(s for s in spans if s["name"] == "tool:find_documents")
    attrs = json.loads(tool_span["attributes"])
    assert json.loads(attrs["arguments"]) == {"doc_id": 7, "tags": '["a"]'}
    used = json.loads(attrs["validated_arguments"])
    assert (used["doc_id"], used["tags"], used["page"]) == ("7", ["a"], 1)


def test_a_tool_that_ignores_cancellation_is_reported_as_not_stopped() -> None:
    release = threading.Event()

    def stubborn() -> str:
        """Sleep, ignoring every request to stop."""
        release.wait(10)
        return "late"

    tool = Tool.from_function(stubborn, timeout=0.1)
    import knowbase.agents.tools as tools

    grace, tools.CANCEL_GRACE = tools.CANCEL_GRACE, 0.1
    try:
        result = tool.run({})
    finally:
        tools.CANCEL_GRACE = grace
        release.set()
    assert (result.error_kind, result.stopped) == ("timeout", False)
    assert "could not be stopped" in result.output


def test_a_cooperative_tool_stops_when_cancelled() -> None:
    from knowbase.safety.deadline import check_cancelled

    stopped = threading.Event()

    def polling() -> str:
        """Work in small steps, checking for cancellation."""
        try:
            while True:
                check_cancelled()
                time.sleep(0.01)
        finally:
            stopped.set()

    result = Tool.from_function(polling, timeout=0.2).run({})
    assert (result.error_kind, result.stopped) == ("timeout", True)
    assert stopped.is_set()
