"""Tools from outside the process: the plugin registry, OpenAPI toolsets, approval of calls.

* :mod:`knowbase.tools.registry` -- tools and toolsets found through the ``knowbase.tools``
  entry-point group (:func:`build_tools`, :func:`tool_entries`).
* :mod:`knowbase.tools.openapi` -- :class:`OpenAPIToolset`: an OpenAPI 3.x spec's operations as tools.
* :mod:`knowbase.tools.approval` -- a person in the loop: :func:`require_approval`,
  :class:`PendingCall`, :class:`ApprovalQueue`.

Function tools themselves (:class:`~knowbase.agents.tools.Tool`) live in
:mod:`knowbase.agents.tools`. Submodules load lazily.
"""

from __future__ import annotations

from knowbase._lazy import lazy_exports

_EXPORTS = {
    "ToolContext": "knowbase.tools.registry",
    "ToolEntry": "knowbase.tools.registry",
    "build_tools": "knowbase.tools.registry",
    "tool_entries": "knowbase.tools.registry",
    "all_entries": "knowbase.tools.registry",
    "OpenAPIToolset": "knowbase.tools.openapi",
    "ApiAuth": "knowbase.tools.openapi",
    "SpecError": "knowbase.tools.openapi",
    "load_spec": "knowbase.tools.openapi",
    "trim_to_budget": "knowbase.tools.openapi",
    "require_approval": "knowbase.tools.approval",
    "needs_approval": "knowbase.tools.approval",
    "ApprovalQueue": "knowbase.tools.approval",
    "ApprovalDenied": "knowbase.tools.approval",
    "PendingCall": "knowbase.tools.approval",
    "Decision": "knowbase.tools.approval",
}

__getattr__, __dir__ = lazy_exports("knowbase.tools", _EXPORTS, globals())

__all__ = sorted(_EXPORTS)
