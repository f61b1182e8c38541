"""The tool registry (entry points), `knowbase tools list`, and loop safety of every agent."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.agents import AutonomousAgent, FunctionCallingAgent, ReActAgent
from knowbase.agents.builtin import BUILTIN_NAMES
from knowbase.agents.tools import Tool
from knowbase.cli.main import cli
from knowbase.errors import UserError
from knowbase.models.base import ChatModel, ToolCall
from knowbase.models.fake import FakeChat
from knowbase.tools.registry import ToolContext, all_entries, build_tools, tool_entries
from shop_stub import SPEC


@pytest.fixture()
def acme_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A third-party distribution 'acme-tools' installed the way pip would leave it: a module
    and a dist-info folder with entry_points.txt, on sys.path. knowbase is not touched."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_tools.py").write_text(textwrap.dedent('''
        from knowbase.agents.tools import tool

        @tool
        def stock_level(sku: str) -> str:
            """Units of a product in the Acme warehouse.

            Args:
                sku: the product's stock-keeping unit.
            """
            return f"{sku}: 12 units"

        def warehouse_tools(context):
            """The Acme warehouse toolset: stock levels and the shelf of a product."""
            @tool
            def shelf(sku: str) -> str:
                """The shelf a product is on."""
                return f"{sku} is on shelf {context.options.get('acme.hall', 'A')}-7"
            return [stock_level, shelf]

        def broken(context):
            raise RuntimeError("boom")

        calculator = stock_level
    '''))
    dist = site / "acme_tools-1.4.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tools\nVersion: 1.4.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [knowbase.tools]
        stock_level = acme_tools:stock_level
        acme_warehouse = acme_tools:warehouse_tools
        acme_broken = acme_tools:nowhere
        calculator = acme_tools:calculator
    """))
    monkeypatch.syspath_prepend(str(site))
    return site


def test_builtins_are_registered_like_plugins() -> None:
    entries = tool_entries()
    assert set(BUILTIN_NAMES) <= set(entries)
    calc = entries["calculator"]
    assert calc.builtin and calc.target == "knowbase.agents.builtin:calculator_tool"
    assert calc.distribution in ("knowbase", "knowbase (source tree)")
    assert [t.name for t in build_tools(["calculator", "current_time"])] == ["calculator", "current_time"]
    with pytest.raises(UserError) as err:
        build_tools(["kb_search"])
    assert err.value.field == "kb"


def test_a_third_party_tool_is_found_without_touching_knowbase(acme_plugin: Path) -> None:
    entries = tool_entries()
    assert entries["stock_level"].distribution == "acme-tools"
    assert entries["stock_level"].version == "1.4.0"
    assert not entries["stock_level"].builtin
    tools = build_tools(["stock_level", "acme_warehouse"], ToolContext(options={"acme.hall": "C"}))
    assert [t.name for t in tools] == ["stock_level", "stock_level", "shelf"]
    assert tools[2].run({"sku": "LT-14-PRO"}).output == "LT-14-PRO is on shelf C-7"
    # an agent uses it like any built-in
    model = ChatModel(FakeChat(['Thought: check\nAction: stock_level\nAction Input: {"sku": "AC-1"}',
                                "Final Answer: 12 units of AC-1."]))
    result = ReActAgent(model, build_tools(["stock_level", "calculator"])).run("How many AC-1?")
    assert result.steps[0].observation == "AC-1: 12 units" and result.answer == "12 units of AC-1."


def test_a_plugin_cannot_take_a_builtin_name_and_broken_plugins_fail_clearly(acme_plugin: Path) -> None:
    shadowed = [e for e in all_entries() if e.name == "calculator" and e.shadowed]
    assert [e.distribution for e in shadowed] == ["acme-tools"]
    assert tool_entries()["calculator"].builtin
    with pytest.raises(UserError) as err:
        build_tools(["acme_broken"])
    assert "acme-tools" in str(err.value) and "failed to load" in str(err.value)
    with pytest.raises(UserError) as err:
        build_tools(["no_such_tool"])
    assert err.value.field == "tools" and "stock_level" in str(err.value)


def test_cli_tools_list_shows_where_each_tool_comes_from(acme_plugin: Path) -> None:
    out = CliRunner().invoke(cli, ["tools", "list"])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("stock_level"))
    assert "acme-tools 1.4.0" in line and "[stock_level = acme_tools:stock_level]" in line
    assert "Units of a product in the Acme warehouse." in out.output
    assert "(ignored: name taken by knowbase)" in out.output
    data = json.loads(CliRunner().invoke(cli, ["tools", "list", "--json"]).output)
    calc = next(d for d in data if d["name"] == "calculator" and not d["shadowed"])
    assert calc["builtin"] and calc["entry_point"] == "calculator = knowbase.agents.builtin:calculator_tool"


def test_cli_tools_list_openapi() -> None:
    out = CliRunner().invoke(cli, ["tools", "list", "--openapi", str(SPEC), "--operations", "getOrder,cancelOrder"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "Acme Shop API at https://eu.shop.example.com/v1: 2 tool(s)"
    assert lines[1] == "  getOrder(orderId: path, X-Request-Id?: header)  GET /orders/{orderId}"
    assert lines[3] == ("  cancelOrder(orderId: path, reason: body, comment?: body)  POST /orders/{orderId}/cancel"
                        "  [needs approval]")
    bad = CliRunner().invoke(cli, ["tools", "list", "--openapi", str(SPEC), "--base-url", "http://169.254.169.254/"])
    assert bad.exit_code != 0


# --- loop safety ------------------------------------------------------------------------------
def _failing() -> Tool:
    def lookup(order_id: str) -> str:
        """Look up an order."""
        raise UserError(f"no order {order_id}")

    return Tool.from_function(lookup)


def test_react_stops_when_the_same_failing_call_repeats() -> None:
    step = 'Thought: try\nAction: lookup\nAction Input: {"order_id": "X1"}'
    model = ChatModel(FakeChat([step] * 10))
    result = ReActAgent(model, [_failing()], max_steps=8).run("order X1?")
    assert result.status == "repeated_failure"
    assert len(result.steps) == 2
    assert result.message == 'stopped: the call lookup({\'order_id\': \'X1\'}) failed 2 times with the same arguments'


def test_react_keeps_going_when_the_arguments_change() -> None:
    steps = [f'Thought: try\nAction: lookup\nAction Input: {{"order_id": "X{i}"}}' for i in range(3)]
    model = ChatModel(FakeChat([*steps, "Final Answer: none found"]))
    result = ReActAgent(model, [_failing()], max_steps=8).run("orders?")
    assert (result.status, len(result.steps)) == ("finished", 4)


def test_function_agent_stops_on_repeated_failures() -> None:
    model = ChatModel(FakeChat([ToolCall("lookup", {"order_id": "X1"})] * 6))
    result = FunctionCallingAgent(model, [_failing()], max_steps=6).run("order X1?")
    assert (result.status, len(result.tool_calls)) == ("repeated_failure", 2)


def test_autonomous_agent_stops_when_tasks_repeat_a_failing_call() -> None:
    call = 'Thought: try\nAction: lookup\nAction Input: {"order_id": "X1"}'
    model = ChatModel(FakeChat([
        '{"tasks": ["find order X1", "find order X1 again"]}',
        call, "Final Answer: not found",              # task 1: one failure, then an answer
        call, "Final Answer: not found",              # task 2: the same failing call again
    ]))
    result = AutonomousAgent(model, [_failing()], max_steps=10).run("find order X1")
    assert result.status == "repeated_failure"
    assert [s.kind for s in result.steps] == ["plan", "task", "task"]


def test_assemble_tools_over_several_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from knowbase.agents.assembly import assemble_tools

    calendar = tmp_path / "calendar.json"
    calendar.write_text(json.dumps({
        "openapi": "3.1.0", "info": {"title": "Calendar", "description": "Meetings of the user."},
        "servers": [{"url": "https://calendar.example.com/api"}],
        "paths": {"/events/next": {"get": {"operationId": "nextMeeting", "summary": "The next meeting"}},
                  "/events": {"post": {"operationId": "createEvent", "summary": "Add an event"}}}}))
    config = {"openapi": [str(SPEC), str(calendar)], "operations": ["getOrder", "createEvent"]}
    built = assemble_tools(config)
    assert [t.name for t in built.tools] == ["getOrder", "createEvent"]
    assert [(p.name, [t.name for t in p.tools]) for p in built.plugins()] == [
        ("Acme Shop API", ["getOrder"]), ("Calendar", ["createEvent"])]
    built = assemble_tools({"openapi": [str(SPEC), str(calendar)], "tools": ["calculator"]})
    assert [p.name for p in built.plugins()] == ["calculator", "Acme Shop API", "Calendar"]
    with pytest.raises(UserError) as err:
        assemble_tools({**config, "operations": ["getOrder", "nope"]})
    assert err.value.field == "operations"
    with pytest.raises(UserError) as err:  # one token must not be sent to every API
        assemble_tools({**config, "bearer_env": "SHOP_TOKEN"})
    assert err.value.field == "openapi"
    monkeypatch.delenv("SHOP_TOKEN", raising=False)
    one = assemble_tools({"openapi": [str(SPEC)], "bearer_env": "SHOP_TOKEN"})
    with pytest.raises(UserError) as err:  # the variable is read at call time, and named when missing
        one.toolsets[0].auth.headers()
    assert "SHOP_TOKEN" in str(err.value)


def test_terminal_approver_refuses_without_a_terminal() -> None:
    from knowbase.cli.agent import terminal_approver
    from knowbase.tools.approval import PendingCall

    decision = terminal_approver(5)(PendingCall("cancelOrder", {"orderId": "A1"}, "POST https://x/orders/A1/cancel"))
    assert (decision.approved, decision.reason) == (False, "no terminal to ask on")
