"""``knowbase chat``: talk to a model, one-shot or interactively, with streamed output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo

EXIT_WORDS = {"exit", "quit", ":q", "/exit", "/quit"}


def _stdin_is_tty() -> bool:
    """True when a person is typing (interactive session); False when input is piped."""
    return sys.stdin.isatty()


def _read_schema(path: str) -> dict[str, Any]:
    from knowbase.errors import InputFileError

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read JSON schema {path}: {exc}", path=path, reason=str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
                             path=path, reason=exc.msg, row=exc.lineno) from exc
    if not isinstance(schema, dict):
        raise InputFileError(f"{path}: a JSON schema must be an object", path=path, reason="not an object")
    return schema


@click.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", help="Model string, e.g. llamacpp:smollm2-135m or openai:NAME@URL. "
                                    "Default: the configured chat model (llamacpp:qwen2.5-coder-1.5b).")
@click.option("-s", "--system", help="System prompt.")
@click.option("-t", "--temperature", type=float, help="Sampling temperature (0 = greedy, the default).")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens to generate (default 512).")
@click.option("--json-schema", "json_schema", type=click.Path(dir_okay=False),
              help="JSON Schema file the answer must follow; prints the JSON.")
@click.option("--session", "session_id", help="Remember this conversation under ID (memory.db); continue it later.")
@click.option("--memory", "memory_type", type=click.Choice(["buffer", "summary", "summary_buffer", "entity"]),
              default="buffer", show_default=True, help="How a --session remembers earlier turns.")
@click.pass_context
def chat(ctx: click.Context, prompt: str | None, model: str | None, system: str | None, temperature: float | None,
         max_tokens: int | None, json_schema: str | None, session_id: str | None, memory_type: str) -> None:
    """Chat with a model: answer PROMPT, or read the prompt from piped stdin, or start an
    interactive session (type exit or press Ctrl-D to leave).

    \b
    Examples:
      knowbase chat "Explain a Kubernetes pod in one sentence"
      echo "Summarise: ..." | knowbase chat --model llamacpp:smollm2-135m
      knowbase chat --json-schema person.json "Invent a person"
      knowbase chat --session planning "My name is Ada."   (later: "What is my name?")
    """
    from knowbase.models.base import Message
    from knowbase.models.registry import get_chat_model
    from knowbase.tracing.context import span

    settings = settings_from(ctx)
    schema = _read_schema(json_schema) if json_schema else None
    overrides: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens, "json_schema": schema}
    if prompt is None and not _stdin_is_tty():
        prompt = sys.stdin.read().strip()
        if not prompt:
            raise click.UsageError("no prompt given (empty stdin)")
    _announce_first_use(model or settings.chat_model, settings)
    llm = get_chat_model(model, settings=settings)
    session = None
    if session_id is not None:
        from knowbase.memory.session import ConversationSession

        session = ConversationSession(session_id, memory_type=memory_type, model=llm, settings=settings, system=system)

    if prompt is not None:
        if session is not None:
            _answer_in_session(session, prompt, overrides)
        else:
            _answer(llm, [Message.user(prompt)], system, overrides)
        return

    echo(f"knowbase chat with {llm.spec} (exit or Ctrl-D to leave)", err=True)
    history: list[Message] = []
    with span("chat session", kind="cli", store=llm.tracer):
        while True:
            try:
                line = click.prompt(">", prompt_suffix=" ", default="", show_default=False)
            except (EOFError, click.exceptions.Abort):
                echo("", err=True)
                return
            if line.strip().lower() in EXIT_WORDS:
                return
            if not line.strip():
                continue
            if session is not None:
                _answer_in_session(session, line, overrides)
                continue
            history.append(Message.user(line))
            text = _answer(llm, history, system, {**overrides, "truncate": True})
            history.append(Message.assistant(text))


def _announce_first_use(spec: str, settings: Any) -> None:
    """Say so on stderr when an embedded model is about to be assembled (once per machine)."""
    from knowbase.config import ModelSpec
    from knowbase.models.catalog import AssembledParts, find_entry

    parsed = ModelSpec.parse(spec)
    entry = find_entry(parsed.name or "qwen2.5-coder-1.5b", kind="chat") if parsed.backend == "llamacpp" else None
    if entry is not None and isinstance(entry.source, AssembledParts) and not entry.source.assembled(settings):
        echo(f"Assembling {entry.title} into {settings.models_dir} (once, {entry.source.size / 1e9:.1f} GB)...", err=True)


def _answer_in_session(session: Any, text: str, overrides: dict[str, Any]) -> None:
    """One turn of a remembered conversation (:class:`knowbase.memory.ConversationSession`)."""
    if overrides.get("json_schema") is not None:
        result = session.chat(text, **overrides)
        echo(json.dumps(result.json(), indent=2, ensure_ascii=False))
        return
    for delta in session.stream(text, **{k: v for k, v in overrides.items() if k != "truncate"}):
        echo(delta, nl=False)
        sys.stdout.flush()
    echo()


def _answer(llm: Any, messages: list[Any], system: str | None, overrides: dict[str, Any]) -> str:
    """Stream one reply to stdout (or print the parsed JSON when a schema is set); returns the text."""
    stream = llm.stream(messages, system=system, **overrides)
    if overrides.get("json_schema") is not None:
        result = stream.finish()
        echo(json.dumps(result.json(), indent=2, ensure_ascii=False))
        return result.text
    for delta in stream:
        echo(delta, nl=False)
        sys.stdout.flush()
    echo()
    result = stream.result
    if result is not None and result.finish_reason == "length":
        echo(f"[stopped at --max-tokens {result.usage.completion_tokens}]", err=True)
    return result.text if result is not None else ""
