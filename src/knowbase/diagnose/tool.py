"""``diagnose_kubernetes``: the analyzers as an agent tool (no model call inside the tool).

An agent passes kubectl output it has (a ``describe``, ``get events``, a JSON dump, a log)
and gets the findings back as short text: kind, namespace/name, reason, message and the
first evidence lines. Registered in the ``knowbase.tools`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from knowbase.diagnose.analyzers import analyze
from knowbase.diagnose.inputs import parse_text
from knowbase.errors import UserError

MAX_TOOL_INPUT = 2_000_000
"""Most characters of kubectl output one tool call accepts."""


def diagnose_kubernetes(kubectl_output: str) -> str:
    """Find Kubernetes problems in kubectl output (get -o json/yaml, describe, get events, logs).

    Args:
        kubectl_output: the text kubectl printed.
    """
    if len(kubectl_output) > MAX_TOOL_INPUT:
        raise UserError(f"kubectl output longer than {MAX_TOOL_INPUT} characters", field="kubectl_output")
    snap = parse_text(kubectl_output, source="input")
    findings = analyze(snap)
    if not findings:
        return "No problems found." + (f" Unreadable parts: {'; '.join(e.message for e in snap.errors)}"
                                      if snap.errors else "")
    lines = []
    for f in findings:
        where = f"{f.namespace}/{f.name}" if f.namespace else f.name
        lines.append(f"{f.severity.upper()} {f.kind} {where}: {f.reason}: {f.message}")
        lines += [f"  - {e.text[:200]}" for e in f.evidence[:3]]
    return "\n".join(lines)


def make_diagnose_tool(**_: Any) -> Any:
    """The :class:`~knowbase.agents.tools.Tool` wrapping :func:`diagnose_kubernetes`."""
    from knowbase.agents.tools import Tool

    return Tool.from_function(diagnose_kubernetes, max_chars=3000)
