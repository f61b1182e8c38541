"""``knowbase finetune``: training data from traced answers, evaluation items and Q/A tables.

\b
    knowbase finetune prepare --from-feedback --eval-set qa.yaml --qa faq.csv --out ft/ --holdout test.yaml
    knowbase finetune prepare --input old.jsonl --format completion --out ft-legacy/
    knowbase finetune validate ft/train.jsonl --model openai:gpt-4o-mini --price 3.0
    knowbase finetune convert data.jsonl alpaca.jsonl --to alpaca
    knowbase finetune submit ft/train.jsonl --validation ft/validation.jsonl -m openai:gpt-4o-mini@https://api.openai.com/v1
    knowbase finetune status ftjob-abc -m openai:gpt-4o-mini     (also: events, cancel)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.finetune.remote import FineTuningClient

_FORMATS = ["openai", "completion", "alpaca", "sharegpt"]


@click.group()
def finetune() -> None:
    """Prepare, validate and convert fine-tuning data."""


def _print_report(report: object, *, as_json: bool) -> None:
    from knowbase.finetune.validate import ValidationReport, brief

    assert isinstance(report, ValidationReport)
    if as_json:
        echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    t = report.to_dict()["tokens"]
    echo(f"{report.examples} examples ({report.format}) · tokens by {report.tokenizer}: total {t['total']}, "
               f"max {t['max']}, mean {t['mean']:.0f} · {report.epochs} epochs by default · "
               f"{report.billed_tokens} billed training tokens"
               + (f" · about ${report.cost_usd:.2f}" if report.cost_usd is not None else ""))
    for line in brief(report.findings):
        echo(line)
    errors, warnings = len(report.errors), len(report.findings) - len(report.errors)
    echo(f"{errors} error(s), {warnings} warning(s)")


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
    echo(f"{n} examples converted from {fmt} to {to_fmt}: {target}")
    if skipped:
        echo(f"skipped {len(skipped)} example(s) without a question or an answer: {', '.join(skipped[:20])}",
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
        echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        echo(f"{result.train} training and {result.validation} validation examples ({fmt}) in {out}; "
                   f"sources: {', '.join(f'{k} {v}' for k, v in sorted(result.sources.items()))}")
        if result.duplicates:
            echo(f"dropped {len(result.duplicates)} duplicate(s): {', '.join(result.duplicates[:10])}")
        for leak in result.leaks[:20]:
            echo(f"dropped {leak['source']}: holds evaluation question {leak['eval_item']}")
        assert result.report is not None
        _print_report(result.report, as_json=False)
    if result.report is not None and not result.report.ok:
        ctx.exit(1)


def _client(ctx: click.Context, model: str) -> tuple[FineTuningClient, str]:
    from knowbase.finetune.remote import FineTuningClient

    settings = settings_from(ctx)
    return FineTuningClient.from_model_string(model, api_key=settings.api_key)


def _job_line(job: dict[str, Any]) -> str:
    parts = [str(job.get("id")), str(job.get("status")), f"model {job.get('model')}"]
    if job.get("fine_tuned_model"):
        parts.append(f"-> {job['fine_tuned_model']}")
    if job.get("trained_tokens"):
        parts.append(f"{job['trained_tokens']} trained tokens")
    if job.get("error") and isinstance(job["error"], dict) and job["error"].get("message"):
        parts.append(f"error: {job['error']['message']}")
    return " · ".join(parts)


_MODEL_OPT = click.option("--model", "-m", "model", required=True,
                          help="openai:MODEL@URL; MODEL is the base model, or a fine-tuned one to continue.")


@finetune.command("submit")
@click.argument("train", type=click.Path(exists=True, dir_okay=False))
@click.option("--validation", "validation", type=click.Path(exists=True, dir_okay=False), default=None)
@_MODEL_OPT
@click.option("--suffix", default=None, help="Added to the fine-tuned model's name.")
@click.option("--epochs", type=click.IntRange(1, 50), default=None, help="Default: the provider's choice.")
@click.option("--force", is_flag=True, help="Upload even when validation finds errors.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def submit(ctx: click.Context, train: str, validation: str | None, model: str, suffix: str | None,
           epochs: int | None, force: bool, as_json: bool) -> None:
    """Validate TRAIN, upload it (and --validation) and start a fine-tuning job."""
    from knowbase.errors import UserError
    from knowbase.finetune.validate import validate_file

    for path in filter(None, (train, validation)):
        report = validate_file(path, fmt="openai", model=model)
        if not report.ok and not force:
            raise UserError(f"{path}: {len(report.errors)} validation error(s), first: {report.errors[0]} "
                            "(knowbase finetune validate shows them all; --force uploads anyway)", path=path)
    client, name = _client(ctx, model)
    with client:
        train_file = client.upload(train)
        val_file = client.upload(validation) if validation else None
        job = client.create_job(name, str(train_file["id"]), validation_file=str(val_file["id"]) if val_file else None,
                                suffix=suffix, epochs=epochs)
    if as_json:
        echo(json.dumps(job, indent=2))
    else:
        echo(f"uploaded {train} as {train_file['id']}" + (f", {validation} as {val_file['id']}" if val_file else ""))
        echo(f"job {_job_line(job)}")


@finetune.command("status")
@click.argument("job_id")
@_MODEL_OPT
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, job_id: str, model: str, as_json: bool) -> None:
    """Show a fine-tuning job."""
    client, _ = _client(ctx, model)
    with client:
        job = client.job(job_id)
    echo(json.dumps(job, indent=2) if as_json else _job_line(job))


@finetune.command("events")
@click.argument("job_id")
@_MODEL_OPT
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def events(ctx: click.Context, job_id: str, model: str, limit: int, as_json: bool) -> None:
    """Show a job's events, oldest first."""
    import datetime as dt

    client, _ = _client(ctx, model)
    with client:
        items = client.events(job_id, limit=limit)
    if as_json:
        echo(json.dumps(items, indent=2))
        return
    for e in reversed(items):
        when = dt.datetime.fromtimestamp(e["created_at"]).strftime("%Y-%m-%d %H:%M:%S") if e.get("created_at") else "-"
        echo(f"{when}  {e.get('level', 'info'):5}  {e.get('message', '')}")


@finetune.command("cancel")
@click.argument("job_id")
@_MODEL_OPT
@click.pass_context
def cancel(ctx: click.Context, job_id: str, model: str) -> None:
    """Cancel a fine-tuning job."""
    client, _ = _client(ctx, model)
    with client:
        job = client.cancel(job_id)
    echo(f"job {_job_line(job)}")
