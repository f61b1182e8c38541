"""``knowbase tools``: the tools agents can use and where they come from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from knowbase.cli.output import echo


def argument_list(parameters: dict[str, Any], notes: Mapping[str, str] | None = None) -> str:
    """``a, b?, c?`` for a JSON schema of arguments (``?`` marks optional ones), each followed
    by ``: notes[name]`` when given (an OpenAPI argument's place: path, query, body...)."""
    required = set(parameters.get("required", []))
    return ", ".join(f"{n}{'' if n in required else '?'}" + (f": {notes[n]}" if notes is not None else "")
                     for n in parameters.get("properties", {}))


@click.group()
def tools() -> None:
    """Tools and toolsets: registered through entry points, or made from OpenAPI specs."""


@tools.command("list")
@click.option("--openapi", "spec", default=None, help="Show the tools this OpenAPI spec (file or URL) would give.")
@click.option("--operations", default=None, help="Comma-separated operationIds (default: every GET).")
@click.option("--base-url", default=None, help="Server URL (default: the spec's servers[0]).")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Host the spec URL and the API may be on.")
@click.option("--allow-private", is_flag=True, help="Allow private/loopback addresses.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(spec: str | None, operations: str | None, base_url: str | None, allow_hosts: tuple[str, ...],
          allow_private: bool, as_json: bool) -> None:
    """List registered tools (name, distribution, entry point), or a spec's tools with --openapi."""
    if spec:
        from knowbase.agents.assembly import split_names
        from knowbase.tools.openapi import OpenAPIToolset

        toolset = OpenAPIToolset.from_source(spec, operations=split_names(operations) or None, base_url=base_url,
                                             allowed_hosts=list(allow_hosts) or None, allow_private=allow_private)
        data = toolset.to_dict()
        if as_json:
            echo(json.dumps(data, ensure_ascii=False, indent=2))
            return
        echo(f"{data['name']} at {data['base_url']}: {len(data['operations'])} tool(s)")
        for op in data["operations"]:
            args = argument_list(op["parameters"], {n: str(p).split(":")[0] for n, p in op["placement"].items()})
            flag = "  [needs approval]" if op["needs_approval"] else ""
            echo(f"  {op['name']}({args})  {op['method']} {op['path']}{flag}")
            echo(f"      {op['description']}")
        return
    from knowbase.tools.registry import all_entries

    entries = all_entries()
    if as_json:
        echo(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=2))
        return
    for entry in entries:
        row = entry.to_dict()
        version = f" {row['version']}" if row["version"] else ""
        note = "  (ignored: name taken by knowbase)" if entry.shadowed else ""
        echo(f"{entry.name:<16} {row['distribution']}{version}  [{row['entry_point']}]{note}")
        if row["description"]:
            echo(f"{'':<16} {row['description']}")
