"""``knowbase doctor``: check that knowbase can run here, one line per check with a fix.

\b
    knowbase doctor            every check (Python, CPU, llama.cpp build, model smoke test,
                               embedded models and checksums, SQLite, disk, user directory)
    knowbase doctor --smoke    only the model smoke test (scripts/setup.sh runs it)
    knowbase doctor --json     the same as JSON

Exit status 1 when a check fails.
"""

from __future__ import annotations

import json

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import echo

_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


@click.command()
@click.option("--smoke", is_flag=True, help="Only the model smoke test (a child process).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds the smoke test may take (default 180).")
@click.option("--no-hash", is_flag=True, help="Check that model files are present without hashing them.")
@click.pass_context
def doctor(ctx: click.Context, smoke: bool, as_json: bool, timeout: float | None, no_hash: bool) -> None:
    """Check that knowbase can run on this machine."""
    from knowbase import doctor as api
    from knowbase.models.smoke import DEFAULT_TIMEOUT

    settings = settings_from(ctx)
    limit = timeout or DEFAULT_TIMEOUT
    report = (api.run_smoke(settings, timeout=limit) if smoke
              else api.run_checks(settings, smoke_timeout=limit, hash_models=not no_hash))
    if as_json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        width = max(len(c.name) for c in report.checks)
        for check in report.checks:
            echo(f"{_MARK[check.status]}  {check.name:<{width}}  {check.summary}")
            if check.fix and check.status != "ok":
                echo(f"      {'':<{width}}  fix: {check.fix}")
    if not report.ok:
        ctx.exit(1)
