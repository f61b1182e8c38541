"""Tools from outside the process: the plugin registry, OpenAPI toolsets, approval of calls.

* :mod:`knowbase.tools.registry` -- tools and toolsets found through the ``knowbase.tools``
  entry-point group (:func:`build_tools`, :func:`tool_entries`).

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
}

__getattr__, __dir__ = lazy_exports("knowbase.tools", _EXPORTS, globals())

__all__ = sorted(_EXPORTS)
