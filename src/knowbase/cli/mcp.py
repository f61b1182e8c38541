"""``knowbase mcp``: serve knowbase to other assistants, or list an MCP server's tools."""

from __future__ import annotations

import json

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo


@click.group()
def mcp() -> None:
    """Model Context Protocol: knowbase as a server, and other servers' tools."""


@mcp.command("serve")
@click.option("--kb", "kbs", multiple=True, help="Knowledge base to expose (repeatable; default all).")
@click.option("--db", default=None, help="Database for sql_ask (SQLite path or SQLAlchemy URL; read-only).")
@click.option("--model", "model_spec", default=None, help="Chat model for kb_ask/sql_ask (default: configured).")
@click.option("--http", "http", is_flag=True, help="Serve streamable HTTP instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --http.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port for --http.")
@click.pass_context
def serve(ctx: click.Context, kbs: tuple[str, ...], db: str | None, model_spec: str | None, http: bool, host: str,
          port: int) -> None:
    """Run knowbase as an MCP server (kb search and ask with citations, Text2SQL with --db)."""
    from knowbase.mcp_server import build_server

    server = build_server(settings_from(ctx), knowledge_bases=list(kbs) or None, database=db, model=model_spec)
    if http:
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")


@mcp.command("tools")
@click.argument("server")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Host an HTTP server may be on.")
@click.option("--allow-private", is_flag=True, help="Allow private/loopback addresses.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def tools(server: str, allow_hosts: tuple[str, ...], allow_private: bool, as_json: bool) -> None:
    """List the tools of the MCP SERVER (an http(s) URL, or a command line to start over stdio)."""
    from knowbase.cli.tools import argument_list
    from knowbase.tools.mcp import MCPToolset

    toolset = MCPToolset.connect(server, allowed_hosts=list(allow_hosts) or None, allow_private=allow_private)
    data = toolset.to_dict()
    if as_json:
        echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    echo(f"{data['name']}: {len(data['tools'])} tool(s)")
    for t in data["tools"]:
        args = argument_list(t["parameters"])
        flag = "  [needs approval]" if t["needs_approval"] else ""
        echo(f"  {t['name']}({args}){flag}")
        echo(f"      {t['description']}")
