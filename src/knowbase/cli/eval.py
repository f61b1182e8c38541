"""``knowbase eval``: evaluate a knowledge base (or a database, or a classifier) on a test set.

\b
    knowbase eval docs questions.yaml --out runs/a            run, write report.html/.json, junit.xml
    knowbase eval docs questions.yaml --out runs/b --model openai:gpt-4o-mini@https://api.openai.com/v1
    knowbase eval docs questions.yaml --fail-under recall@5=0.9,key_fact_coverage=0.8   a CI gate
    knowbase eval - sql.yaml --db chinook.db --out runs/sql   Text2SQL items only (no knowledge base)
    knowbase eval compare runs/a runs/b --out runs/a-vs-b     per item, and per metric with a bootstrap CI
    knowbase eval generate docs --n 20 --out draft.yaml       draft questions for a person to review
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo


class _RunByDefault(click.Group):
    """``knowbase eval KB TESTSET`` runs ``eval run``; ``compare`` and ``generate`` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(name="eval", cls=_RunByDefault)
def eval_group() -> None:
    """Evaluate on your own test set: knowledge-base questions, Text2SQL, classification.

    \b
    knowbase eval KB TESTSET --out DIR      (the same as: knowbase eval run ...)
    knowbase eval compare A B               two runs side by side
    knowbase eval generate KB               draft a question set
    """


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)


@eval_group.command("run")
@click.argument("kb_name", metavar="KB")
@click.argument("testset", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default="eval-report", show_default=True,
              help="Folder for report.html, report.json and junit.xml.")
@click.option("--model", "-m", default=None, help="Chat model under test (default: the configured one).")
@click.option("-k", "k", type=click.IntRange(1, 20), default=4, show_default=True, help="Passages given to the model.")
@click.option("--extractive", is_flag=True, help="No model: extractive answers (and embedding classification).")
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True,
              help="Retrieval mode.")
@click.option("--db", default=None, help="Database for Text2SQL items (SQLite path or SQLAlchemy URL).")
@click.option("--judge", default=None, help="Judge model string for faithfulness and answer correctness.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Run the set N times; report mean and spread.")
@click.option("--fail-under", "fail_under", default=None,
              help="Exit 1 when a metric is below its threshold: recall@5=0.9,key_fact_coverage=0.8 "
                   "(for latency/cost metrics the value is a ceiling).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--no-verify", is_flag=True, help="Score the model's answers as written (no claim checking).")
@click.pass_context
def run(ctx: click.Context, kb_name: str, testset: str, out: str, model: str | None, k: int, extractive: bool,
        mode: str, db: str | None, judge: str | None, repeat: int, fail_under: str | None, as_json: bool,
        no_verify: bool) -> None:
    """Run TESTSET (YAML or JSONL) against knowledge base KB ('-' for none) and write reports."""
    from knowbase.evals.datasets import load_testset
    from knowbase.evals.report import format_value, write_report
    from knowbase.evals.runner import EvalRunner
    from knowbase.evals.summary import METRICS, check_thresholds, parse_thresholds
    from knowbase.models.registry import check_chat_spec

    thresholds = parse_thresholds(fail_under) if fail_under else {}
    for spec in (model, judge):
        if spec:
            check_chat_spec(spec)
    tset = load_testset(testset)
    if not len(tset):
        raise click.UsageError(f"{testset}: the test set has no items")
    settings = settings_from(ctx)
    base = None
    if kb_name != "-":
        from knowbase.knowledge.base import KnowledgeBase

        base = KnowledgeBase.open(kb_name, settings=settings)
    try:
        judge_obj = None
        if judge:
            from knowbase.evals.judge import Judge

            judge_obj = Judge.from_spec(judge, settings=settings)
        runner = EvalRunner(kb=base, db=db, model=model, k=k, extractive=extractive, mode=mode, judge=judge_obj,
                            settings=settings, verify=not no_verify)
        runner.check(tset)
        report = _run_with_progress(runner, tset, repeat)
    finally:
        if base is not None:
            base.close()
    metrics = report.metrics
    failed = check_thresholds(metrics, thresholds)
    paths = write_report(report, out, threshold_failures=failed,
                         thresholds=[f"{n}={v:g}" for n, v in thresholds.items()])
    errors = [r for r in report.records if r.get("error")]
    if as_json:
        echo(json.dumps({"metrics": metrics, "spread": report.spread if repeat > 1 else None,
                               "threshold_failures": failed, "reports": {k: str(v) for k, v in paths.items()}},
                              indent=2))
    else:
        from rich.table import Table

        spread = report.spread if repeat > 1 else None
        table = Table(box=None, pad_edge=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        if spread:
            table.add_column("± std", justify="right")
        for name, m in METRICS.items():
            if metrics.get(name) is None:
                continue
            row = [name, format_value(metrics[name], m.unit)]
            if spread:
                row.append(format_value(spread[name]["std"], m.unit))
            table.add_row(*row)
        _console().print(table)
        passed = sum(1 for r in report.records if r.get("passed"))
        echo(f"{passed}/{len(report.records)} items passed every check · report: {paths['html']}")
    for line in failed:
        echo(f"below threshold: {line}", err=True)
    if errors:
        echo(f"{len(errors)} item(s) could not run; first: {errors[0]['id']}: {errors[0]['error']}", err=True)
    if failed or errors:
        ctx.exit(1)


def _run_with_progress(runner: Any, tset: Any, repeat: int) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(tset.name, total=len(tset) * repeat)

        def progress(done: int, total: int, record: dict[str, Any]) -> None:
            mark = "ok" if record.get("passed") else "FAIL"
            bar.update(task, completed=done, description=f"{tset.name} · {record['id']} {mark}")

        return runner.run(tset, repeat=repeat, progress=progress)


@eval_group.command("compare")
@click.argument("a", type=click.Path(exists=True))
@click.argument("b", type=click.Path(exists=True))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for comparison.html and comparison.json.")
@click.option("--resamples", type=click.IntRange(100, 100_000), default=1000, show_default=True,
              help="Bootstrap resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(a: str, b: str, out: str | None, resamples: int, as_json: bool) -> None:
    """Compare run B with run A (report folders or report.json files), per item and per metric."""
    from knowbase.evals.compare import compare_reports
    from knowbase.evals.report import format_value, write_comparison
    from knowbase.evals.runner import EvalReport

    ra, rb = EvalReport.load(a), EvalReport.load(b)
    cmp = compare_reports(ra, rb, resamples=resamples, a_name=Path(a).name or "A", b_name=Path(b).name or "B")
    paths = write_comparison(cmp, ra, rb, out) if out else {}
    if as_json:
        echo(json.dumps(cmp.to_dict(), indent=2, ensure_ascii=False, default=str))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("metric", "A", "B", "B - A", "95% interval", "verdict"):
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for m in cmp.metrics:
        table.add_row(m["name"], format_value(m["a"], m["unit"]), format_value(m["b"], m["unit"]),
                      "" if m["diff"] is None else f"{m['diff']:+.3g}",
                      "" if m["low"] is None else f"[{m['low']:+.3g}, {m['high']:+.3g}]", m["verdict"])
    _console().print(table)
    fixed = sum(1 for i in cmp.items if i["change"] == "fixed")
    broken = sum(1 for i in cmp.items if i["change"] == "broken")
    echo(f"{len(cmp.items)} paired items: {fixed} fixed, {broken} broken by B"
               + (f" · report: {paths['html']}" if paths else ""))


@eval_group.command("generate")
@click.argument("kb_name", metavar="KB")
@click.option("-n", "n", type=click.IntRange(1, 1000), default=20, show_default=True, help="Questions wanted.")
@click.option("--model", "-m", default=None, help="Model that writes the questions (default: the configured one).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the chunk sample.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="YAML file to write (default: print it).")
@click.pass_context
def generate(ctx: click.Context, kb_name: str, n: int, model: str | None, seed: int, out: str | None) -> None:
    """Draft N questions from knowledge base KB (each chunk's document becomes the expected source)."""
    from knowbase.evals.datasets import dump_items
    from knowbase.evals.generate import generate_questions
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.registry import check_chat_spec, get_chat_model

    if model:
        check_chat_spec(model)
    settings = settings_from(ctx)
    with KnowledgeBase.open(kb_name, settings=settings) as base:
        chat = get_chat_model(model, settings=settings)
        drafts = generate_questions(base, model=chat, n=n, seed=seed)
    header = (f"Draft questions generated from knowledge base {kb_name!r} by {chat.spec} (seed {seed}).\n"
              "Review each one: fix or delete it, add key_facts, mark unanswerable ones.\n"
              f"{len(drafts.items)} kept, {len(drafts.rejected)} rejected by the filters.")
    text = dump_items(drafts.items, name=f"{kb_name}-draft", header=header)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        echo(f"{len(drafts.items)} questions written to {out} ({len(drafts.rejected)} drafts rejected)")
    else:
        echo(text, nl=False)
    reasons: dict[str, int] = {}
    for r in drafts.rejected:
        reasons[r["reason"].split(" (")[0]] = reasons.get(r["reason"].split(" (")[0], 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda x: -x[1]):
        echo(f"rejected {count}: {reason}", err=True)
