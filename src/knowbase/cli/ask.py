"""``knowbase ask NAME [QUESTION]``: cited answers from a knowledge base.

Sources are printed as soon as retrieval is done, then the answer streams, then the cited
sources are listed as ``[n] path § section (p. N)``. Without QUESTION on a terminal, an
interactive loop asks for questions until an empty line or Ctrl-D.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo as safe_echo


def _source(chunk: Any) -> str:
    from knowbase.cli.kb import _source as fmt

    return fmt(chunk)


def source_lines(numbered: Any) -> list[str]:
    """One line per distinct source: ``[1][3] path § section (p. N)``.

    Args:
        numbered: ``(n, chunk)`` pairs, in display order.

    Passages from the same place (same label) share one line listing all their numbers,
    so a source is never printed twice.
    """
    groups: dict[str, list[int]] = {}
    for n, chunk in numbered:
        groups.setdefault(_source(chunk), []).append(n)
    return [f"{''.join(f'[{n}]' for n in nums)} {label}" for label, nums in groups.items()]


def print_stream(base: Any, question: str, *, model: str | None, k: int, extractive: bool,
                 echo: Any = None, verify: bool = True, filter_: str | None = None) -> Any:
    """Run one question through ``base.ask_stream`` and print it as it happens; returns the Answer.

    What is held back and when (the model's "NOT FOUND") is decided by
    :class:`knowbase.knowledge.stream.ClientStream`, shared with the HTTP server. ``echo``
    (default :func:`knowbase.cli.output.echo`, which makes control sequences visible) is
    called as ``echo(text, nl=..., err=..., bold=..., dim=...)``.
    """
    from knowbase.knowledge.stream import ClientStream

    echo = echo or safe_echo
    stream = ClientStream(base.ask_stream(question, model=model, k=k, extractive=extractive, verify=verify,
                                          filter=filter_))
    streaming = False
    for event in stream:
        if event.kind == "sources":
            heading = "sources" if not event.abstained else "nearest sources"
            echo(f"{heading}:", bold=True)
            for line in source_lines((n, hit.chunk) for n, hit in enumerate(event.passages, start=1)):
                echo(f"  {line}")
            if not event.passages:
                echo("  (none)")
        elif event.kind == "delta":
            if not streaming:
                echo("answer:", bold=True)
                streaming = True
            echo(event.text, nl=False)
    answer = stream.answer
    assert answer is not None
    if streaming:
        echo("")
    if stream.revised:
        if answer.verification == "fallback":
            echo("final answer (no sentence of the model's answer is supported by the passages it cites; "
                 "quoting them instead):", bold=True)
        elif answer.removed_claims:
            echo("final answer (checked against the cited passages; sentences they contradict removed):", bold=True)
        else:
            echo("final answer:", bold=True)
        echo(answer.text)
    if answer.citations:
        echo("cited (attributed by knowbase: the model gave no marker):" if answer.attributed else "cited:",
             bold=True)
        for line in source_lines((c.n, c.chunk) for c in answer.citations):
            echo(f"  {line}")
    for removed in answer.removed_claims:
        echo(f"removed (not supported by its cited passage): {removed}", err=True)
    if answer.invalid_citations:
        echo(f"removed citations of passages not given: {', '.join(f'[{n}]' for n in answer.invalid_citations)}",
             err=True)
    t = answer.timings
    parts = [f"first source {t.get('retrieve', 0):.2f} s"]
    if "first_token" in t:
        parts.append(f"first answer token {t['first_token']:.1f} s")
    parts.append(f"total {t.get('total', 0):.1f} s")
    if answer.trace_id:
        parts.append(f"trace {answer.trace_id}")
    echo(" · ".join(parts), dim=True)
    return answer


def answer_json(answer: Any) -> dict[str, Any]:
    """An Answer as a JSON-serialisable dict (:meth:`~knowbase.knowledge.types.Answer.to_dict`)."""
    return dict(answer.to_dict())


@click.command()
@click.argument("name")
@click.argument("question", required=False)
@click.option("--model", "-m", default=None, help="Chat model string (default: the configured one, embedded Qwen).")
@click.option("-k", "k", type=click.IntRange(1, 20), default=4, show_default=True, help="Passages given to the model.")
@click.option("--extractive", is_flag=True, help="No model: answer with the best supporting sentences.")
@click.option("--filter", "filter_", default=None,
              help="Only documents matching this filter, e.g. 'team=infra and year>=2023' (see kb search --help).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option("--no-verify", is_flag=True,
              help="Do not check the answer's sentences against the passages they cite (kept as the model wrote them).")
@click.pass_context
def ask(ctx: click.Context, name: str, question: str | None, model: str | None, k: int, extractive: bool,
        filter_: str | None, as_json: bool, no_verify: bool) -> None:
    """Answer QUESTION from knowledge base NAME, citing its sources.

    Without QUESTION on a terminal: ask questions one after another (empty line to stop).
    """
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.registry import check_chat_spec

    if model and not extractive:
        check_chat_spec(model)  # a typo fails now, not after retrieval
    if question:
        from knowbase.knowledge.bm25 import has_cjk, warm_segmenter

        if has_cjk(question):
            warm_segmenter()  # jieba's dictionary (about 0.8 s) loads while the knowledge base opens
    base = KnowledgeBase.open(name, settings=settings_from(ctx))
    with base:
        if question is None:
            if not sys.stdin.isatty():
                question = sys.stdin.read().strip()
                if not question:
                    raise click.UsageError("no QUESTION given")
            else:
                _interactive(base, model=model, k=k, extractive=extractive, verify=not no_verify, filter_=filter_)
                return
        if as_json:
            safe_echo(json.dumps(answer_json(base.ask(question, model=model, k=k, extractive=extractive,
                                                      verify=not no_verify, filter=filter_)),
                                  ensure_ascii=False, indent=2))
            return
        print_stream(base, question, model=model, k=k, extractive=extractive, verify=not no_verify, filter_=filter_)


def _interactive(base: Any, *, model: str | None, k: int, extractive: bool, verify: bool = True,
                 filter_: str | None = None) -> None:
    from knowbase.errors import EmptyQueryError

    safe_echo(f"Asking {base.name}. Empty line or Ctrl-D to stop.")
    while True:
        try:
            question = click.prompt(click.style("question", bold=True), default="", show_default=False)
        except (EOFError, click.exceptions.Abort):
            safe_echo("")
            return
        if not question.strip():
            return
        try:
            print_stream(base, question.strip(), model=model, k=k, extractive=extractive, verify=verify,
                         filter_=filter_)
        except EmptyQueryError as exc:  # "?" on its own: say so and ask again
            safe_echo(f"Error: {exc}", err=True)
        safe_echo("")
