"""Tools: schema from signature and docstring, validation, errors as observations,
timeouts, the toolbox's refusal of unknown names, and the built-in tools."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Literal

import pytest

from knowbase.agents.builtin import calculator, current_time, format_passages, make_http_get, make_kb_search, make_tools
from knowbase.agents.tools import Tool, Toolbox, ToolDefinitionError, tool
from knowbase.errors import SafetyError, UserError
from knowbase.tracing.context import span
from knowbase.tracing.store import TraceStore
from stub_http import serve


def lookup_order(order_id: int, *, include_items: bool = False, status: Literal["open", "all"] = "all") -> dict:
    """Look up an order by its number.

    Args:
        order_id: the order number, e.g. 1234.
        include_items: also list the items
            in the order.
        status: which orders to search.
    """
    return {"order_id": order_id, "items": ["lamp"] if include_items else [], "status": status}


def test_schema_comes_from_signature_hints_and_docstring() -> None:
    t = Tool.from_function(lookup_order)
    assert t.name == "lookup_order"
    assert t.description == "Look up an order by its number."
    assert t.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "integer", "description": "the order number, e.g. 1234."},
            "include_items": {"type": "boolean", "default": False, "description": "also list the items in the order."},
            "status": {"type": "string", "enum": ["open", "all"], "default": "all",
                       "description": "which orders to search."},
        },
        "required": ["order_id"],
    }
    spec = t.spec()
    assert spec.name == "lookup_order" and spec.parameters is t.parameters
    assert spec.to_openai()["function"]["parameters"]["required"] == ["order_id"]
    assert t.signature_text() == ('lookup_order(order_id: integer, include_items?: boolean, status?: "open" | "all"): '
                                  "Look up an order by its number.")


def test_decorator_with_and_without_arguments() -> None:
    @tool
    def add(a: int, b: int = 1) -> int:
        """Add two integers."""
        return a + b

    @tool(name="mul", description="Multiply.", timeout=2.0)
    def multiply(a: float, b: float) -> float:
        return a * b

    assert isinstance(add, Tool) and add.name == "add" and add.required == ["a"]
    assert add.run({"a": "2", "b": 3}).output == "5"   # lax pydantic coercion of "2"
    assert add(4) == 5                                   # still callable directly
    assert (multiply.name, multiply.description, multiply.timeout) == ("mul", "Multiply.", 2.0)
    assert multiply.run({"a": 1.5, "b": 4}).value == 6.0


def test_invalid_arguments_are_refused_before_the_function_runs() -> None:
    calls: list[int] = []

    def record(order_id: int) -> str:
        """Record."""
        calls.append(order_id)
        return "ok"

    t = Tool.from_function(record)
    missing = t.run({})
    wrong = t.run({"order_id": "twelve"})
    extra = t.run({"order_id": 1, "rm_rf": True})
    assert calls == []
    for res in (missing, wrong, extra):
        assert not res.ok and res.error_kind == "invalid_arguments"
        assert res.output.startswith("Error: invalid arguments for tool 'record'")
    assert "order_id: Field required" in missing.output
    assert "order_id: Input should be a valid integer" in wrong.output
    assert "rm_rf: Extra inputs are not permitted" in extra.output
    assert t.run({"order_id": 7}).output == "ok" and calls == [7]


def test_arguments_are_coerced_from_what_small_models_write() -> None:
    t = Tool.from_function(calculator)
    assert t.coerce('{"expression": "1+1"}') == {"expression": "1+1"}
    assert t.coerce("2 * 21") == {"expression": "2 * 21"}
    assert t.coerce('"2 * 21"') == {"expression": "2 * 21"}
    assert t.coerce({"input": "3+3"}) == {"expression": "3+3"}   # a wrapped single argument
    assert t.coerce(None) == {}
    assert t.run("6*7").output == "42"
    two = Tool.from_function(lookup_order)
    assert two.coerce(5) == {"order_id": 5}                      # the only required argument


def test_exceptions_become_observations() -> None:
    def boom(x: str) -> str:
        """Fail."""
        raise ValueError(f"bad value {x}")

    def guarded(url: str) -> str:
        """Refuse."""
        raise SafetyError("host 'evil' is not on the allowlist", reason="host")

    res = Tool.from_function(boom).run({"x": "q"})
    assert (res.ok, res.error_kind, res.output) == (False, "error", "Error: ValueError: bad value q")
    res = Tool.from_function(guarded).run({"url": "http://evil/"})
    assert (res.ok, res.error_kind) == (False, "refused")
    assert res.output == "Error: refused: host 'evil' is not on the allowlist"


def test_timeout_returns_an_observation_and_does_not_wait() -> None:
    release = threading.Event()

    def slow(x: int) -> int:
        """Wait."""
        release.wait(10)
        return x

    t = Tool.from_function(slow, timeout=0.2)
    try:
        res = t.run({"x": 1})
    finally:
        release.set()
    assert (res.ok, res.error_kind) == (False, "timeout")
    # the function ignores cancellation: after CANCEL_GRACE seconds the call gives up on it
    assert res.output == "Error: tool 'slow' timed out after 0.2 s (its work could not be stopped and was abandoned)"
    assert res.stopped is False
    assert res.elapsed_ms < 5000


def test_long_output_is_clipped() -> None:
    def long(n: int) -> str:
        """Long."""
        return "x" * n

    t = Tool.from_function(long, max_chars=10)
    out = t.run({"n": 25}).output
    assert out == "x" * 10 + "\n... [15 more characters cut]"


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(ToolDefinitionError) as err:
        Tool.from_function(lambda x: x)  # '<lambda>' is not a valid tool name
    assert err.value.reason == "name"
    with pytest.raises(ToolDefinitionError):
        Toolbox([calculator, calculator])


def test_toolbox_refuses_unknown_tools_and_traces_calls(tmp_path) -> None:
    store = TraceStore(tmp_path / "logs.db")
    box = Toolbox([calculator, current_time])
    assert list(box) == ["calculator", "current_time"]
    assert [s.name for s in box.specs()] == ["calculator", "current_time"]
    with span("root", store=store) as root:
        ok = box.run("calculator", {"expression": "2**10"})
        unknown = box.run("shell", {"cmd": "rm -rf /"})
    assert ok.output == "1024"
    assert (unknown.ok, unknown.error_kind) == (False, "unknown_tool")
    assert unknown.output == "Error: unknown tool 'shell'. Available tools: calculator, current_time."
    spans = {s["name"]: s for s in store.spans(root.trace_id)}
    assert set(spans) == {"root", "tool:calculator", "tool:shell"}
    assert spans["tool:calculator"]["parent_id"] == root.span_id
    assert spans["tool:calculator"]["kind"] == "tool"
    assert '"ok": true' in spans["tool:calculator"]["attributes"]
    assert '"error_kind": "unknown_tool"' in spans["tool:shell"]["attributes"]


# --- built-in tools ---------------------------------------------------------------------------
@pytest.mark.parametrize("expression, expected", [
    ("17 * 23", "391"), ("(17 + 25) * 3 / 2", "63"), ("1 / 4", "0.25"), ("sqrt(16) + 2 ** 3", "12"),
    ("2 / 3", "0.666666666667"),
])
def test_calculator(expression: str, expected: str) -> None:
    assert Tool.from_function(calculator).run({"expression": expression}).output == expected


def test_calculator_runs_no_model_written_code(tmp_path) -> None:
    marker = tmp_path / "pwned"
    t = Tool.from_function(calculator)
    for attack in (f"__import__('os').system('touch {marker}')", "open('/etc/passwd').read()",
                   "(lambda: 1)()", "().__class__.__bases__[0].__subclasses__()"):
        res = t.run({"expression": attack})
        assert not res.ok and res.error_kind == "refused", attack
        assert res.output.startswith("Error: refused:")
    assert not marker.exists()
    res = t.run({"expression": "1/0"})
    assert (res.error_kind, res.output) == ("error", "Error: cannot evaluate '1/0': division by zero")


def test_current_time() -> None:
    out = current_time("Europe/Paris")
    assert out[4] == "-" and ("+01:00" in out or "+02:00" in out) and out.endswith("day)")
    res = Tool.from_function(current_time).run({"timezone": "Mars/Olympus"})
    assert (res.error_kind, res.output) == ("error", "Error: unknown time zone 'Mars/Olympus'")


@pytest.fixture()
def small_kb():
    from knowbase.knowledge.base import KnowledgeBase

    kb = KnowledgeBase.create("agent-tools", embedder="fake")
    kb.add_texts(["A Pod is the smallest deployable unit of computing in Kubernetes.",
                  "A CronJob creates Jobs on a repeating schedule written in cron format.",
                  "Order 1234 shipped on Monday."],
                 metadatas=[{"title": "pods"}, {"title": "cron"}, {"title": "orders"}], source="notes")
    yield kb
    kb.close()


def test_kb_search_returns_numbered_passages_with_sources(small_kb) -> None:
    t = make_kb_search(small_kb, k=2)
    assert t.name == "kb_search" and t.required == ["query"]
    out = t.run({"query": "CronJob schedule"}).output
    assert out.startswith("[1] ")
    assert "CronJob creates Jobs on a repeating schedule" in out.split("\n\n")[0]
    assert out.count("\n\n") == 1  # k=2 passages


def test_format_passages_cuts_and_labels() -> None:
    from knowbase.knowledge.types import Chunk, ScoredChunk

    hit = ScoredChunk(Chunk("word " * 200, 0, 1000, section=("Pods", "Lifecycle"), path="pods.md"), 0.9)
    text = format_passages([hit], max_chars=20)
    assert text == "[1] pods.md § Pods > Lifecycle\nword word word word ..."
    assert format_passages([]) == "No passages found."


def test_excerpt_shows_the_window_that_matches_the_query() -> None:
    from knowbase.agents.builtin import excerpt

    text = ("Alpha beta gamma. Pods restart often. Delta epsilon zeta eta theta. "
            "The backoffLimit is set by default to 6. More text here and there.")
    assert excerpt(text, "default backoffLimit", 45) == "...The backoffLimit is set by default to 6. More..."
    assert excerpt(text, None, 17) == "Alpha beta gamma...."
    assert excerpt(text, "nothing matches", 17) == "Alpha beta gamma...."
    assert excerpt("short", "x", 17) == "short"


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = b"<html><body><h1>Status</h1><p>All systems normal.</p><script>x()</script></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def local_server() -> Iterator[tuple[str, list[str]]]:
    _Handler.hits = []
    with serve(_Handler) as base:
        yield base, _Handler.hits


def test_http_get_fetches_allowlisted_hosts_only(local_server) -> None:
    base, hits = local_server
    t = make_http_get(["127.0.0.1"], allow_private=True)
    res = t.run({"url": base + "/status"})
    assert res.ok and res.output == "HTTP 200\nStatus All systems normal."
    assert hits == ["/status"]
    strict = make_http_get(["127.0.0.1"])  # private addresses refused by default
    for tool_, url in ((strict, base + "/a"), (t, "http://169.254.169.254/latest/meta-data/"),
                       (t, "http://localhost:1/"), (t, "file:///etc/passwd")):
        res = tool_.run({"url": url})
        assert (res.ok, res.error_kind) == (False, "refused"), url
    assert hits == ["/status"]


def test_make_tools_by_name(small_kb) -> None:
    tools = make_tools(["calculator", "kb_search", "current_time", "http_get"], kb=small_kb,
                       allowed_hosts=["docs.python.org"])
    assert [t.name for t in tools] == ["calculator", "kb_search", "current_time", "http_get"]
    with pytest.raises(UserError) as err:
        make_tools(["calculator", "shell"])
    assert err.value.field == "tools"
    with pytest.raises(UserError) as err:
        make_tools(["kb_search"])
    assert err.value.field == "kb"
    with pytest.raises(UserError) as err:
        make_tools(["http_get"])
    assert err.value.field == "allowed_hosts"


@pytest.fixture()
def shop_db(tmp_path):
    import sqlite3

    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)")
    conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1234, "shipped"), (5678, "pending")])
    conn.commit()
    conn.close()
    return path


def test_sql_query_runs_read_only_text2sql(shop_db) -> None:
    import sqlite3

    from knowbase.agents.builtin import make_sql_query
    from knowbase.models.base import ChatModel
    from knowbase.models.fake import FakeChat
    from knowbase.sql import Text2SQL

    model = ChatModel(FakeChat(["SELECT status FROM orders WHERE id = 1234"]))
    t = make_sql_query(Text2SQL(shop_db, model=model, answer=False))
    assert t.required == ["question"]
    res = t.run({"question": "What is the status of order 1234?"})
    assert res.ok and res.output == "SQL: SELECT status FROM orders WHERE id = 1234 LIMIT 1000\nstatus\nshipped"
    # a model that writes a destructive statement gets a refusal; the table is intact
    hostile = ChatModel(FakeChat(default="DROP TABLE orders"))
    res = make_sql_query(Text2SQL(shop_db, model=hostile, answer=False)).run({"question": "drop it"})
    assert (res.ok, res.error_kind) == (False, "error")
    assert res.output.startswith("Error: no SQL answer: refused: DROP statement")
    assert sqlite3.connect(shop_db).execute("SELECT count(*) FROM orders").fetchone() == (2,)


def test_format_rows() -> None:
    from knowbase.agents.builtin import format_rows

    assert format_rows(("a", "b"), [(1, None), (2, "x")]) == "a | b\n1 | NULL\n2 | x"
    assert format_rows(("a",), [(i,) for i in range(5)], max_rows=2) == "a\n0\n1\n... (3 more rows)"
    assert format_rows(("a",), []) == "a\n(no rows)"
