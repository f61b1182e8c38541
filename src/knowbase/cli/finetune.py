"""``knowbase finetune``: training data from traced answers, evaluation items and Q/A tables.

\b
    knowbase finetune prepare --from-feedback --eval-set qa.yaml --qa faq.csv --out ft/ --holdout test.yaml
    knowbase finetune prepare --input old.jsonl --format completion --out ft-legacy/
    knowbase finetune validate ft/train.jsonl --model openai:gpt-4o-mini --price 3.0
    knowbase finetune convert data.jsonl alpaca.jsonl --to alpaca
"""

from __future__ import annotations

import json

import click

from knowbase.cli.main import settings_from

_FORMATS = ["openai", "completion", "alpaca", "sharegpt"]


@click.group()
def finetune() -> None:
    """Prepare, validate and convert fine-tuning data."""


def _print_report(report: object, *, as_json: bool) -> None:
    from knowbase.finetune.validate import ValidationReport, brief

    assert isinstance(report, ValidationReport)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    t = report.to_dict()["tokens"]
    click.echo(f"{report.examples} examples ({report.format}) · tokens by {report.tokenizer}: total {t['total']}, "
               f"max {t['max']}, mean {t['mean']:.0f} · {report.epochs} epochs by default · "
               f"{report.billed_tokens} billed training tokens"
               + (f" · about ${report.cost_usd:.2f}" if report.cost_usd is not None else ""))
    for line in brief(report.findings):
        click.echo(line)
    errors, warnings = len(report.errors), len(report.findings) - len(report.errors)
    click.echo(f"{errors} error(s), {warnings} warning(s)")


@finetune.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default=None, help="Default: detected.")
@click.option("--model", "-m", default=None, help="Target model, for its tokenizer (e.g. openai:gpt-4o-mini).")
@click.option("--max-tokens", "token_limit", type=click.IntRange(1), default=16_385, show_default=True,
              help="Tokens per example before truncation.")
@click.option("--price", type=float, default=None, help="Training price, dollars per million tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def validate(ctx: click.Context, path: str, fmt: str | None, model: str | None, token_limit: int,
             price: float | None, as_json: bool) -> None:
    """Check a training file the way OpenAI's data checks do; exit 1 on errors."""
    from knowbase.finetune.validate import validate_file

    report = validate_file(path, fmt=fmt, model=model, token_limit=token_limit, price_per_million=price)
    _print_report(report, as_json=as_json)
    if not report.ok:
        ctx.exit(1)


@finetune.command("convert")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--to", "to_fmt", type=click.Choice(_FORMATS), required=True, help="Output format.")
@click.option("--from", "from_fmt", type=click.Choice(_FORMATS), default=None, help="Input format (default: detected).")
def convert(source: str, target: str, to_fmt: str, from_fmt: str | None) -> None:
    """Convert a training file between the openai, completion, alpaca and sharegpt formats."""
    from knowbase.finetune.formats import read_examples, write_examples

    fmt, examples = read_examples(source, fmt=from_fmt)
    usable = [ex for ex in examples if ex.text_of("assistant").strip() and ex.text_of("user").strip()]
    skipped = [ex.source for ex in examples if ex not in usable]
    n = write_examples(usable, target, to_fmt)
    click.echo(f"{n} examples converted from {fmt} to {to_fmt}: {target}")
    if skipped:
        click.echo(f"skipped {len(skipped)} example(s) without a question or an answer: {', '.join(skipped[:20])}",
                   err=True)


@finetune.command("prepare")
@click.option("--from-feedback", is_flag=True, help="Traced answers with positive feedback (logs.db).")
@click.option("--since", default=None, help="With --from-feedback: only feedback since then (7d, 2w, ISO date).")
@click.option("--eval-set", "eval_sets", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Test set whose items carry reference answers (repeatable).")
@click.option("--qa", "qa_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Question/answer CSV or JSONL (repeatable).")
@click.option("--input", "inputs", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An existing training file in any format (repeatable).")
@click.option("--holdout", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Test set whose questions must not be in the training data (repeatable).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="openai", show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--validation", "val_fraction", type=click.FloatRange(0, 0.9), default=0.1, show_default=True,
              help="Share of examples held out for validation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", "-m", default=None, help="Target model, for its tokenizer.")
@click.option("--price", type=float, default=None, help="Training price, dollars per million tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def prepare(ctx: click.Context, from_feedback: bool, since: str | None, eval_sets: tuple[str, ...],
            qa_files: tuple[str, ...], inputs: tuple[str, ...], holdout: tuple[str, ...], fmt: str, out: str,
            val_fraction: float, seed: int, model: str | None, price: float | None, as_json: bool) -> None:
    """Build train.jsonl and validation.jsonl from feedback, eval items, Q/A tables and old files."""
    from knowbase.cli.logs import parse_since
    from knowbase.finetune.prepare import (
        examples_from_feedback,
        examples_from_file,
        examples_from_qa,
        examples_from_testset,
    )
    from knowbase.finetune.prepare import prepare as run_prepare
    from knowbase.finetune.tokens import token_counter

    if not (from_feedback or eval_sets or qa_files or inputs):
        raise click.UsageError("give at least one source: --from-feedback, --eval-set, --qa or --input")
    examples = []
    if from_feedback:
        from knowbase.tracing.store import TraceStore

        store = TraceStore(settings_from(ctx).logs_path)
        examples += examples_from_feedback(store, since=parse_since(since) if since else None)
    for path in eval_sets:
        examples += examples_from_testset(path)
    for path in qa_files:
        examples += examples_from_qa(path)
    for path in inputs:
        examples += examples_from_file(path)
    result = run_prepare(examples, out_dir=out, fmt=fmt, validation_fraction=val_fraction, seed=seed,
                         holdout=holdout, counter=token_counter(model), price_per_million=price)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"{result.train} training and {result.validation} validation examples ({fmt}) in {out}; "
                   f"sources: {', '.join(f'{k} {v}' for k, v in sorted(result.sources.items()))}")
        if result.duplicates:
            click.echo(f"dropped {len(result.duplicates)} duplicate(s): {', '.join(result.duplicates[:10])}")
        for leak in result.leaks[:20]:
            click.echo(f"dropped {leak['source']}: holds evaluation question {leak['eval_item']}")
        assert result.report is not None
        _print_report(result.report, as_json=False)
    if result.report is not None and not result.report.ok:
        ctx.exit(1)
