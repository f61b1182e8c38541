"""``knowbase``: the command group. Subcommands load lazily so ``--help`` stays fast.

Each command group lives in its own module and imports only click at module level;
heavy libraries (torch, llama.cpp, sentence-transformers) load inside the commands.
A :class:`~knowbase.errors.KnowbaseError` becomes one line on stderr and its ``exit_code``
(1; 2 for usage errors such as an empty query; ``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

COMMAND_GROUP = "knowbase.commands"
"""Entry-point group of CLI commands: ``name = "module:attribute"`` naming a click command.
The built-in commands are registered there too (pyproject.toml), so a third-party package
adds a command the same way, without touching knowbase."""


def _command_targets() -> dict[str, str]:
    """Command name -> ``"module:attribute"`` from the installed entry points; the first
    distribution found wins a name (importlib.metadata de-duplicates distributions)."""
    from importlib.metadata import entry_points

    targets: dict[str, str] = {}
    for ep in entry_points(group=COMMAND_GROUP):
        targets.setdefault(ep.name, ep.value)
    return targets


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used (or listed)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_command_targets())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._find(cmd_name)

    @staticmethod
    def _find(name: str) -> click.Command | None:
        target = _command_targets().get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="KNOWBASE_HOME",
              help="User directory (config, logs.db, knowledge bases). Default ~/.knowbase.")
@click.option("--no-trace", is_flag=True, help="Do not record model calls in logs.db.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="knowbase")
@click.pass_context
def cli(ctx: click.Context, home: str | None, no_trace: bool, debug: bool) -> None:
    """knowbase: language models on your own knowledge, data and tools.

    Offline by default (embedded Qwen2.5-Coder-1.5B and all-MiniLM-L6-v2); any
    OpenAI-compatible model by URL with --model openai:NAME@URL.
    """
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    ctx.obj["no_trace"] = no_trace
    ctx.obj["debug"] = debug


def settings_from(ctx: click.Context, **overrides: Any) -> Any:
    """The :class:`~knowbase.config.Settings` for this invocation (flags beat env and file)."""
    from knowbase.config import Settings

    obj = ctx.find_root().obj or {}
    if obj.get("no_trace"):
        overrides["tracing"] = False
    return Settings.load(obj.get("home"), **overrides)


def _known_secrets() -> tuple[str, ...]:
    """The configured secrets (API key...), for redacting an error line; none if the settings cannot load."""
    from knowbase.config import Settings
    from knowbase.errors import KnowbaseError

    try:
        return Settings.load().secrets()
    except KnowbaseError:
        return ()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``knowbase`` script."""
    from knowbase.cli.output import echo
    from knowbase.errors import KnowbaseError
    from knowbase.redaction import redact

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="knowbase", standalone_mode=False)
        if isinstance(code, int) and code:  # ctx.exit(N) returns N when standalone_mode is off
            sys.exit(code)
    except click.exceptions.Abort:
        echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KnowbaseError as exc:
        if debug:
            raise
        echo(f"Error: {redact(str(exc), _known_secrets())}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
