"""``knowbase sql``: ask a SQLite or PostgreSQL database in plain language, read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import console, echo, plain, terminal_safe

_SHOWN_ROWS = 50


@click.group()
def sql() -> None:
    """Ask a database questions in English or Chinese (SELECT only, read-only connection).

    \b
    DB_URL is a SQLite file path, sqlite:///path.db or postgresql://user@host/db.
    Examples:
      knowbase sql schema chinook.sqlite
      knowbase sql ask chinook.sqlite "Which 3 genres have the most tracks?"
      knowbase sql ask chinook.sqlite "每个国家有多少客户？" --json
    """


def _examples(path: str | None) -> list[Any] | None:
    from knowbase.errors import InputFileError

    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read examples {path}: {exc}", path=path, reason=str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}", path=path,
                             reason=exc.msg, row=exc.lineno) from exc
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON list of {{\"question\", \"sql\"}} objects", path=path,
                             reason="not a list")
    for i, item in enumerate(data):
        if not (isinstance(item, dict) and isinstance(item.get("question"), str) and isinstance(item.get("sql"), str)):
            raise InputFileError(f"{path}: item {i} needs string fields question and sql", path=path, row=i,
                                 reason="bad item")
    return data


def _common(fn: Any) -> Any:
    fn = click.option("--samples", type=click.IntRange(min=0), default=3, show_default=True,
                      help="Sample values shown per text column (0: none).")(fn)
    return fn


@sql.command()
@click.argument("db_url")
@click.option("--prompt", "question", metavar="QUESTION",
              help="Print the whole first prompt for QUESTION (schema, examples, rules) instead.")
@click.option("--examples", type=click.Path(dir_okay=False), help="JSON list of {question, sql} few-shot pairs.")
@_common
@click.pass_context
def schema(ctx: click.Context, db_url: str, question: str | None, examples: str | None, samples: int) -> None:
    """Print the schema of DB_URL exactly as the model sees it."""
    from knowbase.sql.pipeline import Text2SQL

    t2s = Text2SQL(db_url, settings=settings_from(ctx), sample_values=samples, examples=_examples(examples))
    if question is None:
        echo(t2s.prompt_schema())
        for warning in t2s.schema.warnings:
            echo(f"warning: {warning}", err=True)
        return
    for message in t2s.messages(question):
        echo(f"[{message.role}]\n{message.content}")


@sql.command()
@click.argument("db_url")
@click.argument("question")
@click.option("-m", "--model", help="Chat model string (default: the configured model, the embedded Qwen).")
@click.option("--sql-only", is_flag=True, help="Print the validated SQL only; do not run it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--row-limit", type=click.IntRange(min=1), default=1000, show_default=True, help="Most rows returned.")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Time limit per query, seconds.")
@click.option("--attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Model attempts (errors are fed back).")
@click.option("--examples", type=click.Path(dir_okay=False), help="JSON list of {question, sql} few-shot pairs.")
@click.option("--no-answer", is_flag=True, help="Skip the model's answer sentence.")
@_common
@click.pass_context
def ask(ctx: click.Context, db_url: str, question: str, model: str | None, sql_only: bool, as_json: bool,
        row_limit: int, timeout: float, attempts: int, examples: str | None, no_answer: bool, samples: int) -> None:
    """Answer QUESTION from DB_URL: prints the SQL, the rows and a short answer."""
    from knowbase.sql.pipeline import Text2SQL

    t2s = Text2SQL(db_url, model=model, settings=settings_from(ctx), row_limit=row_limit, timeout=timeout,
                   sample_values=samples, examples=_examples(examples), max_attempts=attempts, answer=not no_answer)
    if sql_only:
        statement = t2s.generate(question)
        echo(json.dumps({"question": question, "sql": statement}, ensure_ascii=False) if as_json else statement)
        return
    result = t2s.ask(question)
    if as_json:
        echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print(result)
    if not result.ok:
        ctx.exit(1)


def _print(result: Any) -> None:
    """Print an SQLAnswer: SQL, rows, answer. Every value is plain, sanitised text (never markup)."""
    from rich.syntax import Syntax
    from rich.table import Table
    from rich.text import Text

    out = console()
    if result.sql and not result.ok:
        out.print(Text.assemble(("Not run.", "red"), " The last SQL the model wrote, refused or failed:"))
    if result.sql:
        out.print(Syntax(terminal_safe(result.sql), "sql", word_wrap=True))
    if not result.ok:
        out.print(Text.assemble((f"Error after {result.attempts} attempt(s):", "red"), " ", plain(result.error)))
        return
    table = Table(show_lines=False)
    for column in result.columns:
        table.add_column(plain(column))
    for row in result.rows[:_SHOWN_ROWS]:
        table.add_row(*(plain("NULL" if v is None else v) for v in row))
    out.print(table)
    more = len(result.rows) - _SHOWN_ROWS
    if more > 0 or result.truncated:
        cut = " (cut at the result size limit)" if getattr(result, "truncated_by", None) == "bytes" else ""
        out.print(plain(f"({len(result.rows)} rows{' or more' if result.truncated else ''}; "
                        f"{max(0, more)} not shown){cut}"))
    if result.answer:
        out.print(plain(result.answer))
