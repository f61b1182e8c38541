"""``knowbase diagnose FILE... | -``: Kubernetes problems from kubectl output, explained on request.

Exit status: 0 no problem found, 1 problems found, 2 an input could not be read (the others
are still analysed and printed).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from knowbase.cli.main import settings_from

_SEVERITY_STYLE = {"critical": "red", "warning": "yellow", "info": "blue"}


def _safe(text: str) -> str:
    """Text from the cluster shown without terminal control characters (escapes, bells)."""
    return "".join(ch if ch in "\n\t" or (ch.isprintable() and ch != "\x1b") else "?" for ch in text)


def _indent(text: str) -> str:
    """Continuation lines of a multi-line explanation indented under their label."""
    return "\n      ".join(line.strip() for line in text.splitlines() if line.strip())


def print_diagnosis(d: Any, echo: Any = click.echo) -> None:
    """The diagnosis for people: one block per finding with its evidence and explanation."""
    if not d.findings:
        echo("No problems found.")
    for i, f in enumerate(d.findings, start=1):
        where = f"{f.namespace}/{f.name}" if f.namespace else f.name
        head = click.style(f"{i}. {f.severity.upper()}", fg=_SEVERITY_STYLE[f.severity], bold=True)
        echo(f"{head} {f.kind} {_safe(where)}: {f.reason}")
        echo(f"   {_safe(f.message)}")
        if f.related:
            echo("   related: " + ", ".join(_safe(r.label()) for r in f.related))
        for ev in f.evidence:
            echo(click.style(f"   - {_safe(ev.text)}", dim=True) + (click.style(f"  ({_safe(ev.source)})", dim=True)
                                                                  if ev.source else ""))
        x = f.explanation
        if x is not None:
            echo(f"   Error: {_indent(_safe(x.error))}")
            if x.solution:
                echo(f"   Solution: {_indent(_safe(x.solution))}")
            for c in x.citations:
                echo(click.style(f"   {_safe(c.label())}", dim=True))
        echo("")
    for err in d.errors:
        echo(f"error: {_safe(err.source)}: {_safe(err.message)}", err=True)
    n = len(d.findings)
    parts = [f"{n} finding{'s' if n != 1 else ''}", f"{d.objects} objects", f"{d.events} events", f"{d.logs} logs"]
    if d.anonymized:
        parts.append("names anonymised for the model")
    echo(click.style(" · ".join(parts), dim=True))


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--context", "context", default=None, metavar="NAME",
              help="Read a live cluster (read-only) through this kubeconfig context ('' for the current one).")
@click.option("--namespace", "-n", default=None, help="With --context: only this namespace.")
@click.option("--explain", is_flag=True, help="Explain each problem with a model: Error / Solution, cited.")
@click.option("--model", "-m", default=None, help="Chat model string (default: the configured one, embedded Qwen).")
@click.option("--kb", default=None, help="Knowledge base of documentation (default: k8s-sample, built from the "
                                         "bundled sample on first use).")
@click.option("--language", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--max-chars", type=click.IntRange(20, 4000), default=280, show_default=True,
              help="Most characters of each solution.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--filter", "kinds", multiple=True, metavar="KIND",
              help="Only findings about this Kind (repeatable): Pod, Deployment, Service, Node...")
@click.option("--anonymize/--no-anonymize", default=None,
              help="Mask names before the model sees them (default: on unless the model runs in-process).")
@click.pass_context
def diagnose(ctx: click.Context, inputs: tuple[str, ...], context: str | None, namespace: str | None, explain: bool,
             model: str | None, kb: str | None, language: str, max_chars: int, output: str, kinds: tuple[str, ...],
             anonymize: bool | None) -> None:
    """Find Kubernetes problems in kubectl output (FILE... or - for stdin) or a live cluster.

    Reads `kubectl get -o json|yaml` dumps, `kubectl describe` text, `kubectl get events`
    and container logs. Exit status: 0 none found, 1 problems found, 2 bad input.
    """
    from knowbase.diagnose import diagnose as run

    if not inputs and context is None:
        if sys.stdin.isatty():
            raise click.UsageError("give FILE..., - for stdin, or --context NAME")
        inputs = ("-",)
    settings = settings_from(ctx)
    if explain and model is None and output == "text" and kb is None \
            and not (settings.kb_dir / "k8s-sample.db").exists():
        click.echo("building the knowledge base k8s-sample from the bundled sample (first time only, a few minutes)",
                   err=True)
    d = run(list(inputs), context=context, namespace=namespace, explain=explain, model=model, kb=kb,
            language=language, max_chars=max_chars, kinds=list(kinds) or None, anonymize=anonymize,
            settings=settings)
    if output == "json":
        click.echo(json.dumps(d.to_dict(), ensure_ascii=False, indent=2))
        for err in d.errors:
            click.echo(f"error: {err.source}: {err.message}", err=True)
    else:
        print_diagnosis(d)
    ctx.exit(d.exit_code())
