"""Production monitoring from ``logs.db``: calls, errors, latency, tokens, cost, abstention rate
and feedback, grouped by model, knowledge base or day (``knowbase logs stats``; the same
figures for a server's operator view).

Example::

    store = TraceStore(settings.logs_path)
    for row in usage_stats(store, since=time.time() - 7 * 86400, by="day"):
        print(row.group, row.calls, row.latency_p95_ms, row.abstention_rate, row.feedback_down)

Where the figures come from:

* calls, errors, latency, tokens: the ``calls`` table (every chat and embedding call);
  latency percentiles use linear interpolation (:func:`knowbase.evals.stats.percentile`);
* cost: tokens times the ``[prices]`` of ``config.toml`` (:class:`knowbase.tracing.pricing.Prices`);
  None when a remote model has no price;
* asks and abstentions: ``kb.ask`` spans (their ``abstained`` attribute);
* the knowledge base of a call, ask or feedback: the ``kb`` (or ``eval.item``) span of its trace; its model: the
  first chat model of its trace;
* feedback: the ``feedback`` table (:meth:`TraceStore.add_feedback`), counted in the group of its
  trace (by day: the day it was given).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from knowbase.errors import UserError
from knowbase.evals.stats import percentile

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.tracing.pricing import Prices
    from knowbase.tracing.store import TraceStore

__all__ = ["StatsRow", "usage_stats", "calls_csv", "stats_html", "GROUPINGS"]

GROUPINGS = ("model", "kb", "day")


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Figures of one group (a model string, a knowledge base name, or a ``YYYY-MM-DD`` day).

    Attributes:
        group: the group's key.
        calls, errors: model calls (chat and embedding) and those that failed.
        chat_calls: chat calls only.
        latency_p50_ms, latency_p95_ms: call latency percentiles (milliseconds), None without calls.
        prompt_tokens, completion_tokens: sums over chat calls.
        cost_usd: estimated dollars, None when a price is unknown.
        asks, abstentions: knowledge-base questions and those answered "not in the knowledge base".
        feedback_up, feedback_down: feedback counts.
    """

    group: str
    calls: int = 0
    errors: int = 0
    chat_calls: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    asks: int = 0
    abstentions: int = 0
    feedback_up: int = 0
    feedback_down: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def abstention_rate(self) -> float | None:
        return self.abstentions / self.asks if self.asks else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(error_rate=self.error_rate, abstention_rate=self.abstention_rate)
        return out


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d")


def usage_stats(store: TraceStore, *, since: float | None = None, by: str = "model",
                prices: Prices | None = None) -> list[StatsRow]:
    """Figures per group, sorted by group key.

    Args:
        store: the trace store.
        since: only calls, asks and feedback from this Unix time on.
        by: ``model``, ``kb`` or ``day`` (local time).
        prices: for the cost estimate (default: local models free, remote unknown).

    Raises:
        UserError: an unknown grouping.
    """
    from knowbase.tracing.pricing import Prices

    if by not in GROUPINGS:
        raise UserError(f"group by one of {', '.join(GROUPINGS)}, not {by!r}", field="by")
    prices = prices or Prices()
    calls = store.call_rows(since=since)
    asks = store.span_rows(["kb.ask"], since=since)
    kb_spans = store.span_rows(["kb", "kb.ingest", "eval.item"], since=since)
    feedback = store.feedback(since=since)
    trace_kb = {s["trace_id"]: str(s["attributes"].get("kb")) for s in kb_spans if s["attributes"].get("kb")}
    trace_model: dict[str, str] = {}
    for c in calls:
        if c["kind"] == "chat":
            trace_model.setdefault(c["trace_id"], c["model"])

    def key(trace_id: str, ts: float, model: str | None = None) -> str:
        if by == "day":
            return _day(ts)
        if by == "kb":
            return trace_kb.get(trace_id, "-")
        return model or trace_model.get(trace_id, "(no model)")

    groups: dict[str, dict[str, Any]] = {}

    def group(name: str) -> dict[str, Any]:
        return groups.setdefault(name, {"lat": [], "calls": 0, "errors": 0, "chat": 0, "pt": 0, "ct": 0,
                                        "cost": 0.0, "asks": 0, "abst": 0, "up": 0, "down": 0})

    for c in calls:
        g = group(key(c["trace_id"], c["started"], c["model"]))
        g["calls"] += 1
        g["errors"] += bool(c["error"])
        if c["latency_ms"] is not None:
            g["lat"].append(float(c["latency_ms"]))
        if c["kind"] == "chat":
            g["chat"] += 1
            g["pt"] += c["prompt_tokens"] or 0
            g["ct"] += c["completion_tokens"] or 0
            if not c["cached"] and c["prompt_tokens"] is not None and g["cost"] is not None:
                cost = prices.cost(c["model"], c["prompt_tokens"], c["completion_tokens"])
                g["cost"] = None if cost is None else g["cost"] + cost
    for s in asks:
        g = group(key(s["trace_id"], s["started"]))
        g["asks"] += 1
        g["abst"] += bool(s["attributes"].get("abstained"))
    for f in feedback:
        g = group(key(f["trace_id"], f["created"]))
        g["up" if f["rating"] > 0 else "down"] += 1
    return [StatsRow(group=name, calls=g["calls"], errors=g["errors"], chat_calls=g["chat"],
                     latency_p50_ms=percentile(g["lat"], 50), latency_p95_ms=percentile(g["lat"], 95),
                     prompt_tokens=g["pt"], completion_tokens=g["ct"], cost_usd=g["cost"], asks=g["asks"],
                     abstentions=g["abst"], feedback_up=g["up"], feedback_down=g["down"])
            for name, g in sorted(groups.items())]


CSV_COLUMNS = ("id", "trace_id", "started", "model", "kind", "prompt_tokens", "completion_tokens", "latency_ms",
               "cached", "finish_reason", "error")


def _csv_cell(value: Any) -> Any:
    """Cells that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``) get a
    leading apostrophe (OWASP's CSV-injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def calls_csv(store: TraceStore, *, since: float | None = None) -> str:
    """Every call since ``since`` as CSV (:data:`CSV_COLUMNS`; ``started`` as ISO-8601 local time),
    oldest first, without message text."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for r in store.call_rows(since=since):
        r["started"] = dt.datetime.fromtimestamp(r["started"]).isoformat(timespec="seconds")
        writer.writerow([_csv_cell(r[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def stats_html(rows: Sequence[StatsRow], *, by: str, title: str = "knowbase usage") -> str:
    """A self-contained HTML page (inline SVG, no script) of :func:`usage_stats` rows."""
    from html import escape

    from knowbase.evals.charts import bar_chart

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    peak_calls = max([r.calls for r in rows] + [1])
    peak_lat = max([r.latency_p95_ms or 0.0 for r in rows] + [1.0])
    charts = [
        bar_chart([(r.group, [float(r.calls)]) for r in rows], max_value=float(peak_calls), title=f"calls by {by}"),
        bar_chart([(r.group, [r.latency_p50_ms, r.latency_p95_ms]) for r in rows], series=("p50 ms", "p95 ms"),
                  max_value=peak_lat, title="latency (ms)"),
        bar_chart([(r.group, [r.abstention_rate, r.error_rate]) for r in rows], series=("abstention rate", "error rate"),
                  title="rates"),
        bar_chart([(r.group, [float(r.feedback_up), float(r.feedback_down)]) for r in rows],
                  series=("feedback up", "feedback down"),
                  max_value=float(max([r.feedback_up + r.feedback_down for r in rows] + [1])), title="feedback"),
    ]
    cols = list(rows[0].to_dict()) if rows else ["group"]
    table = ["<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        d = r.to_dict()
        table.append("<tr>" + "".join(f"<td>{escape(fmt(d[c]))}</td>" for c in cols) + "</tr>")
    table.append("</table>")
    css = ("body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
           "td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:right}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{css}</style></head><body><h1>{escape(title)} by {escape(by)}</h1>"
            + "".join(charts) + "".join(table) + "</body></html>\n")
