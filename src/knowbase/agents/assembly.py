"""Assemble an agent's tools from a plain configuration (what the CLI, a server or a saved
autonomous run hold), through the tool registry and OpenAPI toolsets.

The configuration is a dict of JSON values, so it can be saved and resumed; it never holds a
secret, only the names of the environment variables that do::

    {"tools": ["calculator"], "kb": "handbook", "db": "shop.db",
     "allowed_hosts": ["shop.example.com"], "allow_private": false,
     "openapi": ["shop.yaml"], "operations": ["getOrder", "listProducts"], "base_url": null,
     "api_key_header": "X-Api-Key", "api_key_env": "SHOP_KEY", "bearer_env": null,
     "tool_max_tokens": 600, "mcp": ["python notes_server.py", "https://mcp.example.com/mcp"]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from knowbase.errors import UserError


def split_names(values: Sequence[str] | str | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (blanks dropped)."""
    if not values:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@dataclass
class AssembledTools:
    """The tools of a run and what to close when it ends.

    Attributes:
        tools: the :class:`~knowbase.agents.tools.Tool` objects, registry tools first, then
            each OpenAPI spec's operations.
        toolsets: the OpenAPI and MCP toolsets, for routers (name, description, tools).
        closing: resources to close (knowledge bases).
    """

    tools: list[Any]
    toolsets: list[Any] = field(default_factory=list)
    closing: list[Any] = field(default_factory=list)

    def plugins(self) -> list[Any]:
        """The tools as :class:`~knowbase.agents.plugins.Plugin` objects for a plugin router:
        one per OpenAPI spec or MCP server (its name and description), one per other tool."""
        from knowbase.agents.plugins import Plugin

        from_specs = [Plugin.from_toolset(ts) for ts in self.toolsets]
        spec_names = {t.name for p in from_specs for t in p.tools}
        own = [t for t in self.tools if t.name not in spec_names]
        return [*(Plugin(t.name, t.description, (t,)) for t in own), *from_specs]

    def close(self) -> None:
        """Close every resource opened for the tools."""
        for item in self.closing:
            item.close()
        self.closing.clear()


def openapi_toolsets(config: dict[str, Any], *, approver: Any = None) -> list[Any]:
    """The OpenAPI toolsets named in ``config["openapi"]`` (see the module docs for keys).

    Raises:
        SpecError, SafetyError, UserError: as :meth:`~knowbase.tools.openapi.OpenAPIToolset.from_source`.
    """
    from knowbase.tools.openapi import ApiAuth, OpenAPIToolset

    specs = split_names(config.get("openapi"))
    if not specs:
        return []
    auth = None
    if config.get("api_key_env") or config.get("bearer_env"):
        if config.get("api_key_env") and not config.get("api_key_header"):
            raise UserError("an API key needs the header it goes in (--api-key-header NAME)", field="api_key_header")
        auth = ApiAuth(header=config.get("api_key_header"), key_env=config.get("api_key_env"),
                       bearer_env=config.get("bearer_env"))
    if config.get("base_url") and len(specs) > 1:
        raise UserError("--base-url applies to one spec; with several specs each uses its own servers entry",
                        field="base_url")
    if auth is not None and len(specs) > 1:
        raise UserError("API credentials apply to one spec; with several specs, build each OpenAPIToolset "
                        "with its own ApiAuth in Python", field="openapi")
    operations = split_names(config.get("operations")) or None
    out = []
    for spec in specs:
        options: dict[str, Any] = {"auth": auth, "approver": approver}
        if config.get("tool_max_tokens"):
            options["max_tokens"] = int(config["tool_max_tokens"])
        if config.get("approval_timeout"):
            options["approval_timeout"] = float(config["approval_timeout"])
        toolset = OpenAPIToolset.from_source(
            spec, operations=operations, base_url=config.get("base_url"), skip_unknown=len(specs) > 1,
            allowed_hosts=config.get("allowed_hosts") or None, allow_private=bool(config.get("allow_private")),
            **options)
        out.append(toolset)
    if operations and len(specs) > 1:
        found = {op.name for toolset in out for op in toolset.operations}
        missing = [o for o in operations if o not in found]
        if missing:
            raise UserError(f"no spec has an operation named {', '.join(map(repr, missing))}", field="operations")
        out = [toolset for toolset in out if toolset.operations]
    return out


def mcp_toolsets(config: dict[str, Any], *, approver: Any = None) -> list[Any]:
    """The MCP toolsets of ``config["mcp"]`` (URLs or command lines; see :mod:`knowbase.tools.mcp`).

    Raises:
        MCPServerError, SafetyError: a server cannot be reached or its URL is refused.
    """
    from knowbase.tools.mcp import MCPToolset

    servers = config.get("mcp") or []
    return [MCPToolset.connect(server, allowed_hosts=config.get("allowed_hosts") or None,
                               allow_private=bool(config.get("allow_private")), approver=approver,
                               approval_timeout=float(config.get("approval_timeout") or 300.0))
            for server in ([servers] if isinstance(servers, str) else servers)]


def assemble_tools(config: dict[str, Any], *, settings: Any = None, approver: Any = None) -> AssembledTools:
    """Build the tools a configuration names.

    Without ``tools``, the defaults of :func:`~knowbase.tools.registry.default_tool_names`
    (calculator, current_time, and kb_search/http_get/sql_query when their resource is
    configured) are used, unless OpenAPI specs are given, which then are the tools.

    Args:
        config: see the module docs.
        settings: the :class:`~knowbase.config.Settings` (knowledge bases, SQL model).
        approver: who approves calls that need it (:mod:`knowbase.tools.approval`).

    Raises:
        UserError: an unknown tool, a missing resource, an unusable spec.
    """
    from knowbase.tools.registry import ToolContext, build_tools, default_tool_names

    done = AssembledTools([])
    try:
        kb = None
        if config.get("kb"):
            from knowbase.knowledge.base import KnowledgeBase

            kb = KnowledgeBase.open(config["kb"], settings=settings)
            done.closing.append(kb)
        names = split_names(config.get("tools"))
        toolsets = openapi_toolsets(config, approver=approver) + mcp_toolsets(config, approver=approver)
        if not names and not toolsets:
            names = default_tool_names(ToolContext(kb=kb, allowed_hosts=tuple(config.get("allowed_hosts") or ()),
                                                   sql=True if config.get("db") else None))
        sql = _sql_runner(config, settings) if "sql_query" in names else None
        context = ToolContext(kb=kb, sql=sql, allowed_hosts=tuple(config.get("allowed_hosts") or ()),
                              allow_private=bool(config.get("allow_private")), settings=settings)
        done.tools = build_tools(names, context)
        for toolset in toolsets:
            done.tools.extend(toolset.tools())
        done.toolsets = toolsets
    except BaseException:
        done.close()
        raise
    return done


def _sql_runner(config: dict[str, Any], settings: Any) -> Any:
    if not config.get("db"):
        raise UserError("sql_query needs a database (--db URL or SQLite path)", field="db")
    from knowbase.sql import Text2SQL

    return Text2SQL(config["db"], model=config.get("model"), settings=settings, answer=False, row_limit=200)
