"""Load the agent prompt templates shipped in ``knowbase/prompts/templates/agent_*.txt``.

Templates use :class:`string.Template` placeholders (``$name``), so the JSON examples
inside them need no escaping.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from string import Template

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "prompts" / "templates"


@lru_cache(maxsize=32)
def _load(name: str) -> Template:
    return Template((TEMPLATE_DIR / f"{name}.txt").read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """Fill template ``name`` (without ``.txt``); raises KeyError for a missing value."""
    return _load(name).substitute({k: str(v) for k, v in values.items()}).strip()
