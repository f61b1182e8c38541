"""The tool registry: tools and toolsets found through the ``knowbase.tools`` entry-point group.

knowbase registers its five built-ins there the same way a plugin would (``pyproject.toml``),
so a third-party package adds a tool without touching knowbase::

    # pyproject.toml of the package "acme-tools"
    [project.entry-points."knowbase.tools"]
    stock_level = "acme_tools:stock_level"          # a Tool (made with @tool)
    warehouse = "acme_tools:warehouse_tools"        # a factory: (ToolContext) -> Tool | [Tool, ...]

An entry point names either a ready :class:`~knowbase.agents.tools.Tool` or a *factory*:
a callable taking a :class:`ToolContext` (the resources a run has: knowledge base, SQL
pipeline, allowed hosts...) and returning one tool or a list of tools (a toolset). A factory
whose resource is missing raises :class:`~knowbase.errors.UserError` naming the flag.

A name registered by knowbase itself cannot be taken over by a plugin (a plugin cannot
silently replace ``kb_search``); the duplicate is listed with ``shadowed=True`` and ignored.
When knowbase runs from a source tree without being installed, the built-ins come from
:data:`BUILTIN_TOOLS`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from knowbase.errors import UserError

log = logging.getLogger(__name__)

TOOL_GROUP = "knowbase.tools"
"""Entry-point group of tools and toolsets."""

OWN_DISTRIBUTION = "knowbase"

BUILTIN_TOOLS: dict[str, str] = {
    "calculator": "knowbase.agents.builtin:calculator_tool",
    "current_time": "knowbase.agents.builtin:current_time_tool",
    "kb_search": "knowbase.agents.builtin:kb_search_tool",
    "http_get": "knowbase.agents.builtin:http_get_tool",
    "sql_query": "knowbase.agents.builtin:sql_query_tool",
}
"""The built-ins, as registered in knowbase's own ``pyproject.toml`` (the fallback table)."""


@dataclass(frozen=True)
class ToolContext:
    """The resources a tool factory may use; each factory takes what it needs.

    Attributes:
        kb: a knowledge base (anything with ``search(query, k=, mode=)``), for ``kb_search``.
        sql: a :class:`knowbase.sql.Text2SQL` pipeline (or ``question -> str``), for ``sql_query``.
        allowed_hosts: hosts network tools may reach (see :class:`~knowbase.safety.urls.UrlGuard`).
        allow_private: let network tools reach private/loopback addresses (tests, trusted intranets).
        k: passages per ``kb_search``.
        settings: the :class:`~knowbase.config.Settings` of the run, or None.
        options: anything else a plugin documents (``{"acme.warehouse": "north"}``).
    """

    kb: Any = None
    sql: Any = None
    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    k: int = 3
    settings: Any = None
    options: dict[str, Any] = field(default_factory=dict)


ToolFactory = Callable[[ToolContext], Any]
"""``(context) -> Tool | Sequence[Tool]``."""


@dataclass(frozen=True)
class ToolEntry:
    """One registered tool or toolset.

    Attributes:
        name: the entry-point name (the name given to ``--tools``).
        target: ``module:attribute`` it points at.
        distribution: the installed distribution that declares it (``knowbase``, ``acme-tools``),
            or ``knowbase (source tree)`` for the fallback table.
        version: that distribution's version, when known.
        shadowed: True when a knowbase built-in already has this name (the entry is ignored).
    """

    name: str
    target: str
    distribution: str
    version: str | None = None
    shadowed: bool = False

    @property
    def builtin(self) -> bool:
        """True for knowbase's own tools."""
        return self.distribution.split(" ")[0] == OWN_DISTRIBUTION

    def load(self) -> Any:
        """Import the object the entry point names (a Tool or a factory).

        Raises:
            UserError: the module or attribute cannot be imported (``field="tools"``).
        """
        module, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a broken plugin must not take the registry down
            raise UserError(f"tool {self.name!r} from {self.distribution} ({self.target}) failed to load: "
                            f"{type(exc).__name__}: {exc}", field="tools", name=self.name) from exc
        return obj

    def describe(self) -> str:
        """The tool's description, or a factory's docstring summary ('' if it cannot load)."""
        try:
            obj = self.load()
        except UserError as exc:
            return f"(failed to load: {exc})"
        text = getattr(obj, "description", None)
        if not isinstance(text, str):
            text = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
        return " ".join(text.split())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``knowbase tools list --json``)."""
        return {"name": self.name, "entry_point": f"{self.name} = {self.target}", "group": TOOL_GROUP,
                "distribution": self.distribution, "version": self.version, "builtin": self.builtin,
                "shadowed": self.shadowed, "description": self.describe()}


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=TOOL_GROUP))


def all_entries() -> list[ToolEntry]:
    """Every registered tool entry, knowbase's own first, then plugins by name; shadowed
    duplicates included (``shadowed=True``)."""
    found: list[ToolEntry] = []
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        name = getattr(dist, "name", None) or "unknown distribution"
        found.append(ToolEntry(ep.name, ep.value, name, getattr(dist, "version", None)))
    own = {e.name for e in found if e.builtin}
    for tool_name, target in BUILTIN_TOOLS.items():
        if tool_name not in own:
            found.append(ToolEntry(tool_name, target, f"{OWN_DISTRIBUTION} (source tree)"))
    found.sort(key=lambda e: (not e.builtin, e.name, e.distribution))
    out: list[ToolEntry] = []
    taken: set[str] = set()
    for entry in found:
        if entry.name in taken:
            log.warning("tool %r of %s is ignored: the name is taken", entry.name, entry.distribution)
            entry = ToolEntry(entry.name, entry.target, entry.distribution, entry.version, shadowed=True)
        taken.add(entry.name)
        out.append(entry)
    return out


def tool_entries() -> dict[str, ToolEntry]:
    """``{name: entry}`` of the usable (not shadowed) registered tools."""
    return {e.name: e for e in all_entries() if not e.shadowed}


def _as_tools(entry: ToolEntry, obj: Any, context: ToolContext) -> list[Any]:
    from knowbase.agents.tools import Tool

    made = obj if isinstance(obj, Tool) else obj(context) if callable(obj) else obj
    items = [made] if isinstance(made, Tool) else list(made) if isinstance(made, Iterable) else [made]
    bad = [type(i).__name__ for i in items if not isinstance(i, Tool)]
    if bad:
        raise UserError(f"tool entry {entry.name!r} ({entry.target}) gave {', '.join(bad)}, not Tool objects",
                        field="tools", name=entry.name)
    return items


def build_tools(names: Sequence[str], context: ToolContext | None = None) -> list[Any]:
    """The tools registered under ``names``, in that order (a toolset adds all its tools).

    Args:
        names: entry-point names (see :func:`tool_entries`); blanks are skipped.
        context: the resources factories may use; default an empty :class:`ToolContext`.

    Returns:
        a list of :class:`~knowbase.agents.tools.Tool`.

    Raises:
        UserError: an unknown name (``field="tools"``), a plugin that fails to load, or a
            factory whose resource is missing (its own ``field``, e.g. ``kb``).
    """
    ctx = context or ToolContext()
    entries = tool_entries()
    out: list[Any] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        entry = entries.get(name)
        if entry is None:
            raise UserError(f"unknown tool {name!r}; registered tools: {', '.join(sorted(entries))}", field="tools")
        out.extend(_as_tools(entry, entry.load(), ctx))
    return out


def default_tool_names(context: ToolContext) -> list[str]:
    """The tools a run gets when none are named: ``calculator`` and ``current_time``, plus
    ``kb_search`` with a knowledge base, ``http_get`` with allowed hosts and ``sql_query``
    with a SQL pipeline."""
    return ["calculator", "current_time"] + (["kb_search"] if context.kb is not None else []) + \
        (["http_get"] if context.allowed_hosts else []) + (["sql_query"] if context.sql is not None else [])
