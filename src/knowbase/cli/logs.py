"""``knowbase logs``: recorded model calls (``logs.db``): list, one call whole, a trace tree, totals.

\b
    knowbase logs                     the 20 most recent calls
    knowbase logs -n 50 --model qwen --since 2h
    knowbase logs --trace 3f2a...     every span and call of one operation, as a tree
    knowbase logs --totals            per model: calls, tokens, mean and p95 latency
    knowbase logs show 3f2a           one call whole (an id prefix is enough)
    knowbase logs stats --since 7d --by day --html usage.html   monitoring figures, with charts
    knowbase logs export calls.csv    every call as CSV
    knowbase logs feedback 3f2a... down -c "wrong version"     feedback on an answer
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import click

from knowbase.cli.main import settings_from
from knowbase.cli.output import console, echo, plain

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, *, now: float | None = None) -> float:
    """``30m``, ``1h``, ``2d``, ``1w`` (ago) or an ISO date/time -> Unix seconds.

    Examples::

        >>> parse_since("2h", now=10_000.0)
        2800.0

    Raises:
        click.BadParameter: neither form.
    """
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", value.lower())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: use a duration like 30m, 1h, 2d, 1w or an ISO date",
                                 param_hint="--since") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time
    return when.timestamp()


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _preview(row: dict[str, Any], width: int = 60) -> str:
    """The last user message of a call (or the first text embedded), on one line."""
    try:
        items = json.loads(row.get("messages") or "[]")
    except ValueError:
        items = []
    text = ""
    if row.get("kind") == "embed":
        n = json.loads(row.get("options") or "{}").get("n_texts", len(items))
        text = f"[{n} texts] " + (items[0] if items else "")
    else:
        users = [m.get("content") or "" for m in items if isinstance(m, dict) and m.get("role") == "user"]
        text = users[-1] if users else ""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("messages", "options", "tool_calls"):
        if out.get(key):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass
    out["cached"] = bool(out.get("cached"))
    return out


def _console() -> Any:
    return console()


def _store(ctx: click.Context) -> Any:
    from knowbase.tracing.store import TraceStore

    settings = settings_from(ctx)
    return TraceStore(settings.logs_path, secrets=settings.secrets())


@click.group(invoke_without_command=True)
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Calls to show.")
@click.option("-m", "--model", help="Only calls whose model string contains this.")
@click.option("--since", help="Only calls since then: 30m, 1h, 2d, 1w or an ISO date.")
@click.option("--trace", "trace_id", help="Show every span and call of one trace as a tree.")
@click.option("--totals", is_flag=True, help="Per model: calls, errors, tokens, mean and p95 latency.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def logs(ctx: click.Context, limit: int, model: str | None, since: str | None, trace_id: str | None, totals: bool,
         as_json: bool) -> None:
    """Recorded model calls (every chat and embedding call lands in logs.db unless --no-trace)."""
    if ctx.invoked_subcommand is not None:
        return
    store = _store(ctx)
    since_ts = parse_since(since) if since else None
    if totals:
        _show_totals(store, model, since_ts, as_json)
    elif trace_id:
        _show_trace(store, trace_id, as_json)
    else:
        _show_calls(store, limit, model, since_ts, as_json)


def _show_calls(store: Any, limit: int, model: str | None, since_ts: float | None, as_json: bool) -> None:
    rows = store.calls(limit=limit, model=model, since=since_ts)
    if as_json:
        echo(json.dumps([_decoded(r) for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        echo(f"no calls recorded (logs: {store.path})")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, justify in (("id", "left"), ("time", "left"), ("model", "left"), ("kind", "left"), ("tokens", "right"),
                         ("ms", "right"), ("status", "left"), ("trace", "left"), ("prompt", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "prompt")  # type: ignore[arg-type]
    for r in rows:
        tokens = "-" if r["prompt_tokens"] is None else f"{r['prompt_tokens']}+{r['completion_tokens']}"
        status = "error" if r["error"] else ("cached" if r["cached"] else (r["finish_reason"] or "ok"))
        table.add_row(*(plain(v) for v in (r["id"], _when(r["started"]), r["model"], r["kind"], tokens,
                      f"{r['latency_ms']:.0f}" if r["latency_ms"] is not None else "-", status, r["trace_id"],
                      _preview(r))))
    _console().print(table)


def _show_totals(store: Any, model: str | None, since_ts: float | None, as_json: bool) -> None:
    rows = [r for r in store.totals(since=since_ts) if not model or model in r["model"]]
    if as_json:
        echo(json.dumps(rows, indent=2))
        return
    if not rows:
        echo(f"no calls recorded (logs: {store.path})")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("model", "calls", "errors", "prompt tokens", "completion tokens", "mean ms", "p95 ms"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for r in rows:
        table.add_row(*(plain(v) for v in (r["model"], r["calls"], r["errors"], r["prompt_tokens"],
                                           r["completion_tokens"], f"{r['mean_latency_ms']:.0f}",
                                           f"{r['p95_latency_ms']:.0f}")))
    _console().print(table)


def trace_tree(spans: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest spans and calls: returns root nodes ``{"type", "row", "children"}``, oldest first.

    A call hangs under the span it was made in (``span_id``); a span under its parent;
    anything whose parent is not in the trace becomes a root.
    """
    nodes: dict[str, dict[str, Any]] = {s["id"]: {"type": "span", "row": s, "children": []} for s in spans}
    roots: list[dict[str, Any]] = []
    for s in spans:
        parent = nodes.get(s["parent_id"] or "")
        (parent["children"] if parent else roots).append(nodes[s["id"]])
    for c in sorted(calls, key=lambda c: c["started"]):
        parent = nodes.get(c["span_id"] or "")
        (parent["children"] if parent else roots).append({"type": "call", "row": c, "children": []})
    for node in nodes.values():
        node["children"].sort(key=lambda n: n["row"]["started"])
    roots.sort(key=lambda n: n["row"]["started"])
    return roots


def _show_trace(store: Any, trace_id: str, as_json: bool) -> None:
    from knowbase.errors import UserError

    spans = store.spans(trace_id)
    calls = store.calls(trace_id=trace_id, limit=100_000)
    if not spans and not calls:
        raise UserError(f"no trace {trace_id!r} in {store.path}", trace_id=trace_id)
    roots = trace_tree(spans, calls)
    if as_json:
        def clean(node: dict[str, Any]) -> dict[str, Any]:
            row = _decoded(node["row"]) if node["type"] == "call" else dict(node["row"])
            return {"type": node["type"], **row, "children": [clean(c) for c in node["children"]]}
        echo(json.dumps({"trace_id": trace_id, "nodes": [clean(r) for r in roots]}, indent=2, ensure_ascii=False))
        return
    from rich.tree import Tree

    tree = Tree(plain(f"trace {trace_id}"))

    def label(node: dict[str, Any]) -> str:
        r = node["row"]
        if node["type"] == "span":
            took = f"{(r['ended'] - r['started']) * 1000:.0f} ms" if r["ended"] else "-"
            err = f"  error: {r['error']}" if r["error"] else ""
            return f"{r['name']} ({r['kind']})  {took}  {r['status']}{err}  [{r['id']}]"
        tokens = "" if r["prompt_tokens"] is None else f"  {r['prompt_tokens']}+{r['completion_tokens']} tokens"
        err = f"  error: {r['error']}" if r["error"] else ""
        return f"{r['kind']} {r['model']}{tokens}  {r['latency_ms'] or 0:.0f} ms{err}  [{r['id']}]  {_preview(r, 40)}"

    def add(branch: Any, node: dict[str, Any]) -> None:
        sub = branch.add(plain(label(node)))
        for child in node["children"]:
            add(sub, child)

    for root in roots:
        add(tree, root)
    _console().print(tree)


@logs.command("show")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, call_id: str, as_json: bool) -> None:
    """Show one call whole: messages, options, output, tool calls, tokens, latency, error."""
    from knowbase.errors import UserError

    store = _store(ctx)
    row = store.call(call_id)
    if row is None:
        raise UserError(f"no call {call_id!r} in {store.path} (or the prefix is ambiguous)", call_id=call_id)
    data = _decoded(row)
    if as_json:
        echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    tokens = "-" if data["prompt_tokens"] is None else f"{data['prompt_tokens']} prompt + {data['completion_tokens']} completion"
    for key, value in (("call", data["id"]), ("trace", data["trace_id"]), ("span", data["span_id"] or "-"),
                       ("time", _when(data["started"])), ("model", data["model"]), ("kind", data["kind"]),
                       ("tokens", tokens), ("latency", f"{data['latency_ms'] or 0:.0f} ms"),
                       ("finish", data["finish_reason"] or "-"), ("cached", "yes" if data["cached"] else "no"),
                       ("options", json.dumps(data.get("options") or {}, ensure_ascii=False))):
        echo(f"{key + ':':9} {value}")
    if data["error"]:
        echo(f"{'error:':9} {data['error']}")
    echo("\n--- messages ---")
    for m in data.get("messages") or []:
        if isinstance(m, dict):
            echo(f"[{m.get('role')}] {m.get('content') or ''}")
            for tc in m.get("tool_calls") or []:
                echo(f"  tool call: {tc.get('function', {}).get('name')} {tc.get('function', {}).get('arguments')}")
        else:
            echo(f"[text] {m}")
    if data.get("output") is not None:
        echo("\n--- output ---")
        echo(data["output"])
    if data.get("tool_calls"):
        echo("\n--- tool calls ---")
        for tc in data["tool_calls"]:
            echo(f"{tc['name']} {json.dumps(tc['arguments'], ensure_ascii=False)}")


@logs.command("stats")
@click.option("--since", help="Only since then: 30m, 1h, 7d, 1w or an ISO date (default: everything).")
@click.option("--by", "by", type=click.Choice(["model", "kb", "day"]), default="model", show_default=True,
              help="Group by model string, knowledge base or day.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML page with charts.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also export the calls as CSV.")
@click.pass_context
def stats(ctx: click.Context, since: str | None, by: str, as_json: bool, html_path: str | None,
          csv_path: str | None) -> None:
    """Calls, errors, latency p50/p95, tokens, cost, abstention rate and feedback, per group."""
    from pathlib import Path

    from knowbase.evals.monitoring import calls_csv, stats_html, usage_stats
    from knowbase.tracing.pricing import Prices

    settings = settings_from(ctx)
    store = _store(ctx)
    since_ts = parse_since(since) if since else None
    rows = usage_stats(store, since=since_ts, by=by, prices=Prices.from_settings(settings))
    if html_path:
        Path(html_path).write_text(stats_html(rows, by=by), encoding="utf-8")
    if csv_path:
        Path(csv_path).write_text(calls_csv(store, since=since_ts), encoding="utf-8")
    if as_json:
        echo(json.dumps([r.to_dict() for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        echo(f"no calls recorded (logs: {store.path})")
        return
    from rich.table import Table

    def num(v: float | None, fmt: str = "{:.0f}") -> str:
        return "-" if v is None else fmt.format(v)

    table = Table(box=None, pad_edge=False)
    for col in (by, "calls", "errors", "p50 ms", "p95 ms", "tokens in", "tokens out", "cost $", "asks",
                "abstained", "👍", "👎"):
        table.add_column(col, justify="left" if col == by else "right", no_wrap=True)
    for r in rows:
        table.add_row(r.group, str(r.calls), str(r.errors), num(r.latency_p50_ms), num(r.latency_p95_ms),
                      str(r.prompt_tokens), str(r.completion_tokens), num(r.cost_usd, "{:.4f}"), str(r.asks),
                      num(r.abstention_rate, "{:.0%}"), str(r.feedback_up), str(r.feedback_down))
    _console().print(table)


@logs.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--since", help="Only calls since then: 30m, 1h, 7d, 1w or an ISO date.")
@click.pass_context
def export(ctx: click.Context, path: str, since: str | None) -> None:
    """Write every call (no message text) as CSV to PATH ('-' for standard output)."""
    from pathlib import Path

    from knowbase.evals.monitoring import calls_csv

    text = calls_csv(_store(ctx), since=parse_since(since) if since else None)
    if path == "-":
        echo(text, nl=False)
    else:
        Path(path).write_text(text, encoding="utf-8")
        echo(f"{text.count(chr(10)) - 1} calls written to {path}")


@logs.command("feedback")
@click.argument("trace_id")
@click.argument("rating", type=click.Choice(["up", "down"]))
@click.option("--comment", "-c", default=None, help="What was good or wrong.")
@click.pass_context
def feedback(ctx: click.Context, trace_id: str, rating: str, comment: str | None) -> None:
    """Record feedback (up or down) on the answer of trace TRACE_ID (printed by `knowbase ask`)."""
    fid = _store(ctx).add_feedback(trace_id, rating, comment=comment, source="cli")
    echo(f"feedback {fid} recorded on trace {trace_id}")
