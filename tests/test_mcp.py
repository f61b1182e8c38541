"""MCP: knowbase using the tools of a small MCP server started by the test (stdio), and an
MCP client using knowbase as a server (stdio, the `knowbase mcp serve` command)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from knowbase.agents import ReActAgent
from knowbase.errors import SafetyError
from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat
from knowbase.tools.approval import Decision
from knowbase.tools.mcp import MCPServerError, MCPToolset

SERVER = '''
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("notes", instructions="Notes of the team: read and delete notes.")
NOTES = {"standup": "Standup moved to 9:30 on Mondays."}

@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def read_note(title: str) -> str:
    """Read a note by its title."""
    if title not in NOTES:
        raise ToolError(f"no note {title!r}")
    return NOTES[title]

@server.tool()
def delete_note(title: str) -> str:
    """Delete a note."""
    return f"deleted {title}"

@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def long_list(n: int = 500) -> str:
    """A long listing."""
    return "\\n".join(f"note number {i} with some words in it" for i in range(n))

if __name__ == "__main__":
    server.run("stdio")
'''


@pytest.fixture(scope="module")
def notes_server(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("mcp") / "notes_server.py"
    path.write_text(textwrap.dedent(SERVER))
    return f"{sys.executable} {path}"


def test_mcp_tools_become_knowbase_tools(notes_server: str) -> None:
    denied = []
    toolset = MCPToolset.connect(notes_server, approver=lambda call: denied.append(call.tool) or Decision(False),
                                 max_tokens=100)
    assert toolset.name == "notes"
    assert toolset.description == "Notes of the team: read and delete notes."
    data = {t["name"]: t for t in toolset.to_dict()["tools"]}
    assert data["read_note"]["parameters"]["required"] == ["title"]
    assert (data["read_note"]["needs_approval"], data["delete_note"]["needs_approval"]) == (False, True)
    tools = {t.name: t for t in toolset.tools()}
    model = ChatModel(FakeChat([
        'Thought: read it\nAction: read_note\nAction Input: {"title": "standup"}',
        "Final Answer: Standup is at 9:30 on Mondays.",
    ]))
    result = ReActAgent(model, list(tools.values())).run("When is standup?")
    assert result.steps[0].observation == "Standup moved to 9:30 on Mondays."
    assert result.answer == "Standup is at 9:30 on Mondays."
    missing = tools["read_note"].run({"title": "nope"})
    assert (missing.ok, missing.error_kind) == (False, "error") and "no note 'nope'" in missing.output
    refused = tools["delete_note"].run({"title": "standup"})
    assert refused.error_kind == "refused" and denied == ["delete_note"]
    long = tools["long_list"].run({}).output
    assert len(long) <= 100 * 4 + 40 and long.endswith("more characters cut]")


def test_mcp_server_problems_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MCPServerError) as err:
        MCPToolset.connect(f"{sys.executable} {tmp_path / 'missing.py'}", timeout=20)
    assert "could not be reached" in str(err.value)
    with pytest.raises(SafetyError) as err:
        MCPToolset.connect("http://169.254.169.254/mcp")
    assert err.value.reason == "address"


def test_knowbase_as_an_mcp_server(tmp_path: Path) -> None:
    import anyio
    from mcp import Client, StdioServerParameters

    from knowbase.config import Settings
    from knowbase.knowledge.base import KnowledgeBase

    home = tmp_path / "home"
    kb = KnowledgeBase.create("handbook", embedder="fake", settings=Settings.load(home))
    kb.add_texts(["Signing keys are rotated every 90 days by the platform team.",
                  "Laptops are replaced every four years."])
    kb.close()
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "knowbase", "--home", str(home), "mcp", "serve", "--model",
                                      "fake:Keys are rotated every 90 days [1]."],
        env={"KNOWBASE_TRACING": "0", "HF_HUB_OFFLINE": "1"})

    async def session() -> tuple[list[str], str, str, str, bool]:
        async with Client(params, read_timeout_seconds=60) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            listed = (await client.call_tool("list_knowledge_bases", {})).content[0].text
            found = (await client.call_tool("kb_search", {"knowledge_base": "handbook", "query": "signing keys",
                                                          "k": 1})).content[0].text
            asked = (await client.call_tool("kb_ask", {"knowledge_base": "handbook",
                                                       "question": "How often are signing keys rotated?"}))
            wrong = await client.call_tool("kb_ask", {"knowledge_base": "secret", "question": "x"})
            return names, listed, found, asked.content[0].text, bool(wrong.is_error)

    names, listed, found, asked, wrong = anyio.run(session)
    assert names == ["list_knowledge_bases", "kb_search", "kb_ask"]
    assert listed == "handbook: 2 documents, 2 chunks"
    assert found.startswith("[1] ") and "rotated every 90 days" in found
    assert asked.startswith("Keys are rotated every 90 days [1].")
    assert "Sources:\n[1] " in asked
    assert wrong


def test_cli_mcp_tools_lists_a_server(notes_server: str) -> None:
    from click.testing import CliRunner

    from knowbase.cli.main import cli

    out = CliRunner().invoke(cli, ["mcp", "tools", notes_server])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "notes: 3 tool(s)"
    assert lines[1] == "  read_note(title)"
    assert lines[3] == "  delete_note(title)  [needs approval]"
