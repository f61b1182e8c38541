"""Limits for structured data files (JSON, YAML), checked before they are expanded.

A YAML "billion laughs" document is a few hundred bytes whose aliases expand to gigabytes
when constructed; a JSON document nested 100,000 deep exhausts the parser's stack. Both are
refused here from a linear scan, before any object is built:

* :func:`check_json` scans the characters (strings skipped) for nesting depth.
* :func:`check_yaml` walks PyYAML's event stream (which never expands aliases) counting
  nodes, aliases and depth.

Each limit is a named field of :class:`DataLimits`; each violation raises
:class:`~knowbase.errors.SafetyError` naming the limit and (for YAML) the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from knowbase.errors import SafetyError


@dataclass(frozen=True, slots=True)
class DataLimits:
    """Named limits for one data file.

    Attributes:
        max_bytes: largest file read, bytes (checked on the file size or while reading stdin).
        max_depth: deepest nesting of JSON arrays/objects or YAML collections.
        max_nodes: most YAML nodes (scalars, sequences, mappings) in one file.
        max_aliases: most YAML aliases (``*name``) in one file; kubectl never writes any.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 5_000_000
    max_aliases: int = 100


DEFAULT_LIMITS = DataLimits()


def check_json(text: str, limits: DataLimits = DEFAULT_LIMITS) -> None:
    """Refuse JSON nested deeper than ``limits.max_depth`` (strings are skipped).

    Raises:
        SafetyError: ``reason="depth"``, with ``line`` (1-based) where the limit was passed.
    """
    depth = 0
    in_string = escape = False
    line = 1
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limits.max_depth:
                raise SafetyError(f"line {line}: JSON nested deeper than {limits.max_depth} levels",
                                  reason="depth", line=line)
        elif ch in "]}":
            depth -= 1
        elif ch == "\n":
            line += 1


def check_yaml(text: str, limits: DataLimits = DEFAULT_LIMITS) -> None:
    """Refuse YAML with more than ``max_aliases`` aliases, ``max_nodes`` nodes or nesting deeper
    than ``max_depth``, from PyYAML's event stream (aliases are not expanded).

    Raises:
        SafetyError: ``reason`` ``aliases``, ``nodes`` or ``depth``, with ``line`` (1-based).
        yaml.YAMLError: the text is not YAML (the caller reports it with its line).
    """
    import yaml

    nodes = aliases = depth = 0
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for event in yaml.parse(text, Loader=loader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise SafetyError(f"line {line}: more than {limits.max_aliases} YAML aliases", reason="aliases",
                                  line=line)
        elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > limits.max_nodes:
                raise SafetyError(f"line {line}: more than {limits.max_nodes} YAML nodes", reason="nodes", line=line)
            if not isinstance(event, yaml.ScalarEvent):
                depth += 1
                if depth > limits.max_depth:
                    raise SafetyError(f"line {line}: YAML nested deeper than {limits.max_depth} levels",
                                      reason="depth", line=line)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
