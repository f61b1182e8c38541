"""Limits on API description documents (OpenAPI specs), checked before anything is expanded.

A spec comes from an operator, but often from somewhere else first (a vendor, a URL): a
hostile or broken one must be refused with a clear error, never exhaust memory or hang.
Each limit is a field of :class:`SpecLimits`; :func:`parse_document` applies the byte and
YAML-alias limits before parsing, the resolver in :mod:`knowbase.tools.openapi` the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from knowbase.errors import SafetyError


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """Bounds on one spec.

    Attributes:
        max_bytes: size of the document, bytes (2 MB holds the largest public specs we know,
            e.g. GitHub's REST spec is about 10 MB and needs a raised limit on purpose).
        max_yaml_aliases: YAML aliases (``*name``) in the document ("billion laughs" guard).
        max_depth: nesting of schemas after ``$ref`` resolution.
        max_nodes: schema nodes produced by ``$ref`` resolution over the selected operations
            (bounds expansion of shared, non-recursive references).
        max_enum: values in one ``enum``.
        max_tools: operations made into tools from one spec.
    """

    max_bytes: int = 2_000_000
    max_yaml_aliases: int = 100
    max_depth: int = 24
    max_nodes: int = 20_000
    max_enum: int = 200
    max_tools: int = 64


DEFAULT_SPEC_LIMITS = SpecLimits()
"""The limits used when none are given."""


def parse_document(text: str, *, source: str, limits: SpecLimits = DEFAULT_SPEC_LIMITS) -> Any:
    """Parse a JSON or YAML document within ``limits``.

    Args:
        text: the document.
        source: its file name or URL, for messages.
        limits: the bounds (``max_bytes``, ``max_yaml_aliases`` are used here).

    Raises:
        SafetyError: over a limit (``reason`` ``size`` or ``aliases``; ``source``).
        ValueError: not valid JSON or YAML (the caller names the file).
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > limits.max_bytes:
        raise SafetyError(f"{source}: the spec is {size} bytes, over the limit of {limits.max_bytes}",
                          reason="size", source=source)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return json.loads(stripped)
    import yaml

    aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.max_yaml_aliases:
                    raise SafetyError(f"{source}: more than {limits.max_yaml_aliases} YAML aliases",
                                      reason="aliases", source=source)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc
