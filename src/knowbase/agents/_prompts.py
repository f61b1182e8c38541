"""Render the agent prompt templates shipped in ``knowbase/prompts/templates/agent_*.txt``
(through :func:`knowbase.prompts.load_template`: ``{slot}`` placeholders, ``{{``/``}}``
for literal braces)."""

from __future__ import annotations


def render(name: str, **values: object) -> str:
    """Fill template ``name`` (without ``.txt``) and strip surrounding whitespace.

    Raises:
        TemplateError: a missing value or a malformed template.
    """
    from knowbase.prompts import load_template

    return load_template(name).format(**{k: str(v) for k, v in values.items()}).strip()
