"""Agents and tools: the model decides which tool to use.

* :class:`Tool`, :func:`tool`, :class:`Toolbox` -- typed functions with validated arguments.
* built-in tools in :mod:`knowbase.agents.builtin` (calculator, kb_search, http_get,
  current_time, sql_query).
* :class:`RouterAgent` (multiple choice of one tool), :class:`ReActAgent` (Thought /
  Action / Observation loop), :class:`FunctionCallingAgent` (native tool calls),
  :class:`AutonomousAgent` (plans tasks toward a goal, with memory and saved state),
  :class:`PluginRouter` (picks one plugin -- an OpenAPI spec, a toolset -- then its operation).

Submodules load lazily so ``import knowbase.agents`` stays cheap.
"""

from __future__ import annotations

from knowbase._lazy import lazy_exports

_EXPORTS = {
    "Tool": "knowbase.agents.tools",
    "ToolResult": "knowbase.agents.tools",
    "Toolbox": "knowbase.agents.tools",
    "tool": "knowbase.agents.tools",
    "ToolDefinitionError": "knowbase.agents.tools",
    "AgentStep": "knowbase.agents.steps",
    "AgentResult": "knowbase.agents.steps",
    "Budget": "knowbase.agents.steps",
    "RouterAgent": "knowbase.agents.router",
    "ReActAgent": "knowbase.agents.react",
    "FunctionCallingAgent": "knowbase.agents.functions",
    "AutonomousAgent": "knowbase.agents.autonomous",
    "AgentStore": "knowbase.agents.state",
    "make_tools": "knowbase.agents.builtin",
    "PluginRouter": "knowbase.agents.plugins",
    "Plugin": "knowbase.agents.plugins",
    "assemble_tools": "knowbase.agents.assembly",
}


__getattr__, __dir__ = lazy_exports('knowbase.agents', _EXPORTS, globals())


__all__ = sorted(_EXPORTS)
