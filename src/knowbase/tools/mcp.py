"""Tools from a Model Context Protocol server (official ``mcp`` Python SDK, 2.x).

::

    toolset = MCPToolset.connect("python notes_server.py")               # stdio: a command line
    toolset = MCPToolset.connect("https://mcp.example.com/mcp",          # streamable HTTP
                                 allowed_hosts=["mcp.example.com"])
    agent = ReActAgent(model, toolset.tools())

:meth:`MCPToolset.connect` lists the server's tools once; each becomes a
:class:`~knowbase.agents.tools.Tool` with the server's name, description and input schema
(arguments validated before the call, see :mod:`knowbase.tools._schema`). Each call opens its
own session (a stdio server is started for the call and stopped after it; simple and
stateless, at the cost of start-up time per call), bounded by ``timeout`` seconds. The result's
text content is trimmed to a token budget; a result flagged ``isError`` is a failed call.

Safety: an HTTP server URL must pass the :class:`~knowbase.safety.urls.UrlGuard` (allow-list,
no private addresses unless allowed) before any connection; the SDK's HTTP client then
connects by name (no address pinning as in :func:`knowbase.safety.urls.fetch`). A stdio server
gets the SDK's minimal environment (``PATH``, ``HOME``...) plus ``env``, not the caller's
secrets. Tools the server does not mark read-only (``annotations.readOnlyHint``) need a
person's approval by default (``approve="auto"``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from knowbase.errors import RuntimeFailure, UserError
from knowbase.safety.urls import UrlGuard
from knowbase.tools._schema import args_model, strip_titles
from knowbase.tools.openapi import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS, trim_to_budget


class MCPServerError(RuntimeFailure):
    """An MCP server could not be started, reached or understood (``server``)."""


@dataclass(frozen=True)
class MCPToolInfo:
    """One tool as the server lists it.

    Attributes:
        name: the tool name (also the knowbase tool name; must be ``[A-Za-z0-9_-]``).
        description: the server's description.
        parameters: its input JSON Schema (titles removed).
        read_only: the server marks it read-only (``annotations.readOnlyHint``).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    read_only: bool = False


def _target(server: str | Sequence[str], env: Mapping[str, str] | None) -> Any:
    """The SDK's connection target: a URL string, or ``StdioServerParameters`` for a command."""
    from mcp import StdioServerParameters

    if isinstance(server, str) and re.match(r"^https?://", server.strip()):
        return server.strip()
    parts = shlex.split(server) if isinstance(server, str) else list(server)
    if not parts:
        raise UserError("an MCP server is a URL or a command line", field="server")
    return StdioServerParameters(command=parts[0], args=parts[1:], env=dict(env) if env else None)


def _text(result: Any) -> str:
    out = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            out.append(str(block.text))
        elif kind == "resource":
            out.append(str(getattr(getattr(block, "resource", None), "text", "") or "[resource]"))
        else:
            out.append(f"[{kind or 'content'}]")
    if not out and getattr(result, "structured_content", None) is not None:
        import json

        out.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(out)


@dataclass
class MCPToolset:
    """The tools of one MCP server.

    Attributes:
        server: the URL or command line it was reached with.
        name: the server's name (``serverInfo.name``).
        description: its instructions or title, for routers.
        infos: the listed tools (after ``only``).
        approve: ``auto`` (approval unless the server marks a tool read-only), ``all``,
            ``none``, or a list of tool names that need approval.
        approver: who approves (see :mod:`knowbase.tools.approval`); None refuses those calls.
        max_tokens: token budget of each result shown to the model.
        timeout: seconds per call (start-up of a stdio server included).
    """

    server: str | list[str]
    name: str
    description: str
    infos: list[MCPToolInfo]
    env: dict[str, str] | None = None
    approve: Literal["auto", "all", "none"] | list[str] = "auto"
    approver: Any = None
    approval_timeout: float = 300.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float = 30.0
    _target: Any = field(default=None, repr=False)

    @classmethod
    def connect(cls, server: str | Sequence[str], *, allowed_hosts: Sequence[str] | None = None,
                allow_private: bool = False, guard: UrlGuard | None = None, env: Mapping[str, str] | None = None,
                only: Sequence[str] | None = None, timeout: float = 30.0, **options: Any) -> MCPToolset:
        """Connect once, list the server's tools, and return the toolset.

        Args:
            server: an ``http(s)://`` URL (streamable HTTP) or a command line (stdio).
            allowed_hosts, allow_private, guard: the URL guard for an HTTP server; default
                the URL's own host, private addresses refused.
            env: extra environment variables for a stdio server.
            only: tool names to keep (default all).
            timeout: seconds for connecting and listing, and per call.
            **options: the other fields (``approve``, ``approver``, ``max_tokens``...).

        Raises:
            SafetyError: the URL is refused by the guard.
            MCPServerError: the server cannot be started or reached, or fails to list tools.
            UserError: a name in ``only`` is not offered by the server.
        """
        import anyio

        target = _target(server, env)
        if isinstance(target, str):
            host = target.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":")[0].strip("[]")
            (guard or UrlGuard(list(allowed_hosts or [host]), allow_private=allow_private)).check(target)

        async def listing() -> tuple[Any, list[Any], str]:
            from mcp import Client

            with anyio.fail_after(timeout):
                async with Client(target, read_timeout_seconds=timeout) as client:
                    info = client.server_info
                    tools = (await client.list_tools()).tools
                    return info, list(tools), client.instructions or ""

        try:
            info, tools, instructions = anyio.run(listing)
        except (Exception, BaseExceptionGroup) as exc:
            raise MCPServerError(f"MCP server {server!r} could not be reached: {_reason(exc)}",
                                 server=str(server)) from exc
        infos = []
        for t in tools:
            annotations = getattr(t, "annotations", None)
            schema = strip_titles(dict(getattr(t, "input_schema", None) or getattr(t, "inputSchema", None) or {}))
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})
            infos.append(MCPToolInfo(t.name, " ".join((t.description or t.name).split())[:300], schema,
                                     bool(getattr(annotations, "read_only_hint", False))))
        if only:
            missing = [n for n in only if n not in {i.name for i in infos}]
            if missing:
                raise UserError(f"MCP server {server!r} has no tool {', '.join(map(repr, missing))}; it has: "
                                f"{', '.join(i.name for i in infos)}", field="tools")
            infos = [i for i in infos if i.name in set(only)]
        name = str(getattr(info, "name", "") or "MCP server")
        description = " ".join((instructions or getattr(info, "title", None) or f"Tools of the {name} MCP server")
                               .split())[:300]
        return cls(list(server) if not isinstance(server, str) else server, name, description, infos, dict(env or {}),
                   timeout=timeout, _target=target, **options)

    def needs_approval(self, info: MCPToolInfo) -> bool:
        """Whether calls of this tool wait for a person (see ``approve``)."""
        if isinstance(self.approve, list):
            return info.name in self.approve
        return self.approve == "all" or (self.approve == "auto" and not info.read_only)

    def call(self, name: str, arguments: Mapping[str, Any]) -> str:
        """Call one tool in a fresh session; returns its text content trimmed to ``max_tokens``.

        Raises:
            MCPServerError: the server failed or did not answer within ``timeout``.
            UserError: the tool reported an error (``isError``).
        """
        import anyio

        target = self._target if self._target is not None else _target(self.server, self.env)
        clean = {k: v for k, v in arguments.items() if v is not None}

        async def calling() -> Any:
            from mcp import Client

            with anyio.fail_after(self.timeout):
                async with Client(target, read_timeout_seconds=self.timeout) as client:
                    return await client.call_tool(name, clean)

        try:
            result = anyio.run(calling)
        except (Exception, BaseExceptionGroup) as exc:
            raise MCPServerError(f"MCP tool {name} failed: {_reason(exc)}", server=str(self.server)) from exc
        text = trim_to_budget(_text(result).strip(), self.max_tokens)
        if getattr(result, "is_error", False):
            raise UserError(f"MCP tool {name} reported an error: {text}", tool=name)
        return text

    def tools(self) -> list[Any]:
        """One :class:`~knowbase.agents.tools.Tool` per listed tool; those needing approval
        wrapped by :func:`~knowbase.tools.approval.require_approval`."""
        from knowbase.agents.tools import Tool
        from knowbase.tools.approval import require_approval

        out = []
        for info in self.infos:
            model, names = args_model(info.name, info.parameters.get("properties", {}),
                                      info.parameters.get("required", []))

            def run(_info: MCPToolInfo = info, _names: dict[str, str] = names, **kwargs: Any) -> str:
                return self.call(_info.name, {_names[k]: v for k, v in kwargs.items() if k in _names})

            made = Tool(info.name, info.description, run, model, self.timeout + 1.0,
                        max_chars=self.max_tokens * CHARS_PER_TOKEN + 200, _schema=info.parameters)
            if self.needs_approval(info):
                made = require_approval(made, self.approver, timeout=self.approval_timeout,
                                        action=self._describer(info.name))
            out.append(made)
        return out

    def _describer(self, tool: str) -> Any:
        import json

        return lambda arguments: f"MCP {self.name}: {tool}({json.dumps(arguments, ensure_ascii=False)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (``knowbase mcp tools``)."""
        return {"server": self.server, "name": self.name, "description": self.description,
                "tools": [{"name": i.name, "description": i.description, "parameters": i.parameters,
                           "read_only": i.read_only, "needs_approval": self.needs_approval(i)} for i in self.infos]}


def _reason(exc: BaseException) -> str:
    """The innermost useful message of an exception (task groups wrap the real one)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if type(exc).__name__ in ("TimeoutError", "CancelledError"):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"[:300]
