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

_NOT_FOUND = "NOT FOUND"


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
                 echo: Any = click.echo, filter_: str | None = None) -> Any:
    """Run one question through ``base.ask_stream`` and print it as it happens; returns the Answer."""
    answer = None
    streaming = False
    held = ""  # text held back while it may still be the model's "NOT FOUND" (shown as an abstention instead)
    for event in base.ask_stream(question, model=model, k=k, extractive=extractive, filter=filter_):
        if event.kind == "delta" and not streaming:
            held += event.text
            if _NOT_FOUND.startswith(held.strip().upper()[:len(_NOT_FOUND)]):
                continue
            event = type(event)("delta", text=held)
        if event.kind == "sources":
            t = "sources" if not event.abstained else "nearest sources"
            echo(click.style(f"{t}:", bold=True))
            for line in source_lines((n, hit.chunk) for n, hit in enumerate(event.passages, start=1)):
                echo(f"  {line}")
            if not event.passages:
                echo("  (none)")
        elif event.kind == "delta":
            if not streaming:
                echo(click.style("answer:", bold=True))
                streaming = True
            echo(event.text, nl=False)
        else:
            answer = event.answer
    assert answer is not None
    if streaming:
        echo("")
    if not streaming or answer.abstained or answer.invalid_citations or answer.attributed:
        if streaming:
            echo(click.style("final answer:", bold=True))
        else:
            echo(click.style("answer:", bold=True))
        echo(answer.text)
    if answer.citations:
        echo(click.style("cited (attributed by knowbase: the model gave no marker):" if answer.attributed
                         else "cited:", bold=True))
        for line in source_lines((c.n, c.chunk) for c in answer.citations):
            echo(f"  {line}")
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
    echo(click.style(" · ".join(parts), dim=True))
    return answer


def answer_json(answer: Any) -> dict[str, Any]:
    """An Answer as a JSON-serialisable dict."""
    def chunk(c: Any) -> dict[str, Any]:
        return {"path": c.path, "section": list(c.section), "page": c.page, "chunk_id": c.chunk_id, "text": c.text}

    return {
        "question": answer.question, "answer": answer.text, "abstained": answer.abstained,
        "language": answer.language, "extractive": answer.extractive,
        "citations": [{"n": c.n, **chunk(c.chunk)} for c in answer.citations],
        "invalid_citations": list(answer.invalid_citations), "attributed": answer.attributed,
        "passages": [{"n": i, "score": p.score, **chunk(p.chunk)} for i, p in enumerate(answer.passages, start=1)],
        "timings": {k: round(v, 4) for k, v in answer.timings.items()}, "trace_id": answer.trace_id,
        "usage": ({"prompt_tokens": answer.usage.prompt_tokens, "completion_tokens": answer.usage.completion_tokens}
                  if answer.usage is not None else None),
    }


@click.command()
@click.argument("name")
@click.argument("question", required=False)
@click.option("--model", "-m", default=None, help="Chat model string (default: the configured one, embedded Qwen).")
@click.option("-k", "k", type=click.IntRange(1, 20), default=4, show_default=True, help="Passages given to the model.")
@click.option("--extractive", is_flag=True, help="No model: answer with the best supporting sentences.")
@click.option("--filter", "filter_", default=None,
              help="Only documents matching this filter, e.g. 'team=infra and year>=2023' (see kb search --help).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_context
def ask(ctx: click.Context, name: str, question: str | None, model: str | None, k: int, extractive: bool,
        filter_: str | None, as_json: bool) -> None:
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
                _interactive(base, model=model, k=k, extractive=extractive, filter_=filter_)
                return
        if as_json:
            click.echo(json.dumps(answer_json(base.ask(question, model=model, k=k, extractive=extractive, filter=filter_)),
                                  ensure_ascii=False, indent=2))
            return
        print_stream(base, question, model=model, k=k, extractive=extractive, filter_=filter_)


def _interactive(base: Any, *, model: str | None, k: int, extractive: bool, filter_: str | None = None) -> None:
    click.echo(f"Asking {base.name}. Empty line or Ctrl-D to stop.")
    while True:
        try:
            question = click.prompt(click.style("question", bold=True), default="", show_default=False)
        except (EOFError, click.exceptions.Abort):
            click.echo("")
            return
        if not question.strip():
            return
        print_stream(base, question.strip(), model=model, k=k, extractive=extractive, filter_=filter_)
        click.echo("")
