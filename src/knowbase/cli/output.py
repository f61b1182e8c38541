"""The CLI's printers: every line the CLI writes goes through :func:`echo` or a
:func:`console` printing :func:`~knowbase.safety.text.plain` text.

Both apply :func:`knowbase.safety.text.terminal_safe` (control sequences made visible) and
neither reads markup, so a model reply, a document passage, a SQL value or a question
containing ``\\x1b]52;...`` or ``[/x]`` prints as the characters it holds.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from knowbase.safety.text import plain, terminal_safe

__all__ = ["console", "echo", "plain", "terminal_safe"]


def echo(message: object = "", *, err: bool = False, nl: bool = True, **style: Any) -> None:
    """``click.echo`` of :func:`terminal_safe` ``message``, styled by ``click.style(**style)`` after
    sanitising (``bold=True``, ``dim=True``, ``fg="red"``)."""
    text = terminal_safe(message)
    click.echo(click.style(text, **style) if style else text, err=err, nl=nl)


def console(*, err: bool = False) -> Any:
    """A ``rich.console.Console`` that neither highlights nor reads markup in plain strings.

    Give it :func:`plain` texts (tables cells and tree labels included): a ``str`` cell is
    still rendered by rich's own rules, a ``Text`` is printed as written.
    """
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    return Console(highlight=False, markup=False, stderr=err, width=None if stream.isatty() else 140)
