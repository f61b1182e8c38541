"""Evaluation reports on disk: ``report.json``, ``report.html`` (one self-contained file with
inline SVG charts, no script or CDN) and ``junit.xml`` (one test case per item, plus one per
``--fail-under`` threshold, for CI systems that read JUnit XML).

Every string that came from a test set, a document or a model is escaped before it enters
HTML or XML, so it never becomes markup.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from xml.sax.saxutils import quoteattr

from knowbase.errors import UserError
from knowbase.evals.charts import bar_chart, diff_chart, histogram
from knowbase.evals.compare import Comparison
from knowbase.evals.runner import EvalReport
from knowbase.evals.summary import METRICS, Record

__all__ = ["write_report", "write_comparison", "report_html", "comparison_html", "junit_xml", "format_value"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;white-space:nowrap}
.fail{color:#b00020;font-weight:bold}.pass{color:#2e7d32}.muted{color:#777}
.out{max-width:420px;white-space:pre-wrap;word-break:break-word}
"""


def format_value(value: float | None, unit: str = "") -> str:
    """A metric for people: shares as ``0.875``, seconds as ``1.24 s``, None as ``unmeasured``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unmeasured"
    if unit == "$":
        return f"${value:.6f}"
    if unit:
        return f"{value:.3g} {unit}"
    return f"{value:.3f}"


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "eval"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")


def _share_metrics(metrics: dict[str, float | None]) -> list[str]:
    return [n for n, m in METRICS.items() if not m.unit and metrics.get(n) is not None]


def report_html(report: EvalReport, *, threshold_failures: Sequence[str] = ()) -> str:
    """The HTML page of one evaluation (string)."""
    metrics, cfg = report.metrics, report.config
    spread = report.spread if len(report.runs) > 1 else None
    when = dt.datetime.fromtimestamp(report.created).strftime("%Y-%m-%d %H:%M")
    parts = [f"<h1>Evaluation: {escape(report.name)}</h1>",
             f'<p class="muted">{escape(when)} · ' + " · ".join(
                 f"{escape(k)}: {escape(str(v))}" for k, v in cfg.items() if v not in (None, "", False)) + "</p>"]
    if threshold_failures:
        parts.append('<p class="fail">Below threshold: ' + "; ".join(escape(f) for f in threshold_failures) + "</p>")
    names = _share_metrics(metrics)
    rows = [(n, [metrics[n]]) for n in names]
    errs = [[(spread[n]["std"] if spread else None)] for n in names] if spread else None
    parts.append("<h2>Metrics</h2>")
    parts.append(bar_chart(rows, errors=errs, title="shares (0-1)" + (" · mean ± std over runs" if spread else "")))
    table = ["<table><tr><th>metric</th><th>value</th>" + ("<th>std</th><th>min</th><th>max</th>" if spread else "")
             + "<th>definition</th></tr>"]
    for name, m in METRICS.items():
        value = metrics.get(name)
        if value is None and name not in ("faithfulness", "answer_correctness"):
            continue
        cells = f'<td>{escape(name)}</td><td class="num">{escape(format_value(value, m.unit))}</td>'
        if spread:
            s = spread[name]
            cells += "".join(f'<td class="num">{escape(format_value(s[key], m.unit))}</td>'
                             for key in ("std", "min", "max"))
        table.append(f"<tr>{cells}<td>{escape(m.description)}</td></tr>")
    table.append("</table>")
    parts.append("".join(table))
    latencies = [r["latency_s"] for r in report.records if r.get("latency_s") is not None]
    parts.append("<h2>Latency</h2>" + histogram(latencies, unit="s", title=f"seconds per item ({len(latencies)} items)"))
    parts.append("<h2>Items (failures first)</h2>" + _items_table(report.records))
    return _page(f"knowbase eval {report.name}", "".join(parts))


def _items_table(records: Sequence[Record]) -> str:
    ordered = sorted(records, key=lambda r: (r.get("passed") is not False, r.get("id", "")))
    out = ["<table><tr><th>id</th><th>kind</th><th>result</th><th>input</th><th>output</th><th>why</th>"
           "<th>s</th></tr>"]
    for r in ordered:
        status = '<span class="pass">pass</span>' if r.get("passed") else '<span class="fail">FAIL</span>'
        why = "<br>".join(escape(f) for f in r.get("failures") or [])
        extra = r.get("details", {}).get("invalid_citations") or []
        if extra:
            why += "<br>" + "<br>".join(f'<span class="muted">{escape(x)}</span>' for x in extra)
        lat = r.get("latency_s")
        out.append(f"<tr><td>{escape(str(r.get('id')))}</td><td>{escape(str(r.get('kind')))}</td><td>{status}</td>"
                   f'<td class="out">{escape(str(r.get("prompt", "")))}</td>'
                   f'<td class="out">{escape(str(r.get("output", ""))[:1500])}</td><td>{why}</td>'
                   f'<td class="num">{"" if lat is None else f"{lat:.2f}"}</td></tr>')
    out.append("</table>")
    return "".join(out)


def junit_xml(report: EvalReport, *, threshold_failures: Sequence[str] = (), thresholds: Sequence[str] = ()) -> str:
    """JUnit XML: a ``testsuite`` of items (first run) and one of metric thresholds."""
    records = report.records
    failures = sum(1 for r in records if r.get("passed") is False and not r.get("error"))
    errors = sum(1 for r in records if r.get("error"))
    total_time = sum(r.get("latency_s") or 0.0 for r in records)
    suite = _safe_name(report.name)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>",
             f'<testsuite name={quoteattr("knowbase-eval." + suite)} tests="{len(records)}" failures="{failures}" '
             f'errors="{errors}" time="{total_time:.3f}">']
    for r in records:
        head = (f'<testcase classname={quoteattr(suite + "." + str(r.get("kind")))} name={quoteattr(str(r.get("id")))} '
                f'time="{(r.get("latency_s") or 0.0):.3f}"')
        if r.get("error"):
            lines.append(f"{head}><error message={quoteattr(str(r['error'])[:500])}/></testcase>")
        elif r.get("passed") is False:
            msg = "; ".join(r.get("failures") or ["failed"])
            lines.append(f"{head}><failure message={quoteattr(msg[:1000])}/></testcase>")
        else:
            lines.append(f"{head}/>")
    lines.append("</testsuite>")
    if thresholds:
        failed = set(threshold_failures)
        lines.append(f'<testsuite name={quoteattr("knowbase-eval." + suite + ".thresholds")} tests="{len(thresholds)}" '
                     f'failures="{len(failed)}" errors="0">')
        for t in thresholds:
            bad = next((f for f in threshold_failures if f.split(" ", 1)[0] == t.split("=", 1)[0]), None)
            head = f'<testcase classname={quoteattr(suite + ".thresholds")} name={quoteattr(t)}'
            lines.append(f"{head}><failure message={quoteattr(bad)}/></testcase>" if bad else f"{head}/>")
        lines.append("</testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _out_dir(out: str | Path) -> Path:
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create report folder {p}: {exc.strerror or exc}", path=str(p)) from exc
    return p


def write_report(report: EvalReport, out: str | Path, *, threshold_failures: Sequence[str] = (),
                 thresholds: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``report.json``, ``report.html`` and ``junit.xml`` under ``out`` (created).

    Returns ``{"json": path, "html": path, "junit": path}``.

    Raises:
        UserError: the folder cannot be created.
    """
    folder = _out_dir(out)
    paths = {"json": folder / "report.json", "html": folder / "report.html", "junit": folder / "junit.xml"}
    data = report.to_dict()
    data["threshold_failures"] = list(threshold_failures)
    _write(paths["json"], json.dumps(data, ensure_ascii=False, indent=1, default=str))
    _write(paths["html"], report_html(report, threshold_failures=threshold_failures))
    _write(paths["junit"], junit_xml(report, threshold_failures=threshold_failures, thresholds=thresholds))
    return paths


def comparison_html(cmp: Comparison, a: EvalReport, b: EvalReport) -> str:
    """The HTML page of a comparison (string)."""
    parts = [f"<h1>Comparison: {escape(cmp.a_name)} → {escape(cmp.b_name)}</h1>",
             f'<p class="muted">A: {escape(str(a.config.get("model")))} on {escape(a.name)} · '
             f'B: {escape(str(b.config.get("model")))} on {escape(b.name)} · {len(cmp.items)} paired items · '
             f"{int(cmp.confidence * 100)}% paired bootstrap intervals, {cmp.resamples} resamples "
             "(Efron &amp; Tibshirani 1993)</p>"]
    shares = [m for m in cmp.metrics if not m["unit"]]
    parts.append("<h2>Metrics</h2>")
    parts.append(bar_chart([(m["name"], [m["a"], m["b"]]) for m in shares], series=(cmp.a_name, cmp.b_name),
                           title="A and B"))
    parts.append(diff_chart([(m["name"], m["diff"], m["low"], m["high"]) for m in shares],
                            title="B − A with confidence interval"))
    table = ["<table><tr><th>metric</th><th>A</th><th>B</th><th>B − A</th><th>interval</th><th>verdict</th></tr>"]
    for m in cmp.metrics:
        interval = "" if m["low"] is None else f"[{m['low']:+.3g}, {m['high']:+.3g}]"
        diff = "" if m["diff"] is None else f"{m['diff']:+.3g}"
        cls = "pass" if m["verdict"] == "better" else "fail" if m["verdict"] == "worse" else "muted"
        table.append(f"<tr><td>{escape(m['name'])}</td><td class=num>{escape(format_value(m['a'], m['unit']))}</td>"
                     f"<td class=num>{escape(format_value(m['b'], m['unit']))}</td><td class=num>{diff}</td>"
                     f'<td class=num>{interval}</td><td class="{cls}">{escape(m["verdict"])}</td></tr>')
    table.append("</table>")
    parts.append("".join(table))
    parts.append("<h2>Items (changes first)</h2><table><tr><th>id</th><th>change</th><th>input</th>"
                 "<th>A output</th><th>B output</th></tr>")
    for it in cmp.items:
        cls = "fail" if it["change"] == "broken" else "pass" if it["change"] == "fixed" else "muted"
        parts.append(f"<tr><td>{escape(str(it['id']))}</td><td class='{cls}'>{escape(it['change'])}</td>"
                     f"<td class=out>{escape(str(it['prompt']))}</td>"
                     f"<td class=out>{escape(str(it['a_output'])[:800])}</td>"
                     f"<td class=out>{escape(str(it['b_output'])[:800])}</td></tr>")
    parts.append("</table>")
    if cmp.only_a or cmp.only_b:
        parts.append(f"<p class=muted>only in A: {escape(', '.join(cmp.only_a)) or '-'}; only in B: "
                     f"{escape(', '.join(cmp.only_b)) or '-'}</p>")
    return _page("knowbase eval compare", "".join(parts))


def write_comparison(cmp: Comparison, a: EvalReport, b: EvalReport, out: str | Path) -> dict[str, Path]:
    """Write ``comparison.json`` and ``comparison.html`` under ``out``."""
    folder = _out_dir(out)
    paths = {"json": folder / "comparison.json", "html": folder / "comparison.html"}
    _write(paths["json"], json.dumps(cmp.to_dict(), ensure_ascii=False, indent=1, default=str))
    _write(paths["html"], comparison_html(cmp, a, b))
    return paths
