"""Monitoring from logs.db: feedback on traces, usage statistics by model / knowledge base / day,
CSV export and ``knowbase logs stats`` (fake embedder and fake model, tracing on)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli
from knowbase.config import Settings
from knowbase.errors import UserError
from knowbase.evals.monitoring import calls_csv, stats_html, usage_stats
from knowbase.knowledge.base import KnowledgeBase
from knowbase.models.base import ChatOptions, ChatResult, Message, Usage
from knowbase.tracing.pricing import Prices
from knowbase.tracing.store import MAX_COMMENT_CHARS, TraceStore


@pytest.fixture
def traced(tmp_path: Path) -> tuple[TraceStore, list[str]]:
    """Two answered questions and one abstention on knowledge base 'docs', recorded in logs.db."""
    d = tmp_path / "docs"
    d.mkdir()
    (d / "pods.md").write_text("# Pods\n\nA Pod is the smallest deployable unit of computing in Kubernetes.\n",
                               encoding="utf-8")
    settings = Settings.load()
    kb = KnowledgeBase.create("docs", embedder="fake", settings=settings)
    kb.ingest([str(d)])
    traces = []
    for model in ("fake:A Pod is the smallest deployable unit [1].", "fake:A Pod is the smallest unit [1].",
                  "fake:NOT FOUND"):
        answer = kb.ask("What is the smallest deployable unit of computing in Kubernetes?", model=model)
        assert answer.trace_id
        traces.append(answer.trace_id)
    kb.close()
    return TraceStore(settings.logs_path), traces


def test_feedback_on_a_trace(traced: tuple[TraceStore, list[str]]) -> None:
    store, traces = traced
    fid = store.add_feedback(traces[0], "up", comment="right", source="test")
    store.add_feedback(traces[2], -1)
    rows = store.feedback()
    assert [(r["trace_id"], r["rating"]) for r in rows] == [(traces[2], -1), (traces[0], 1)]
    assert store.feedback(trace_id=traces[0])[0] | {"created": 0} == {
        "id": fid, "trace_id": traces[0], "rating": 1, "comment": "right", "created": 0, "source": "test"}
    with pytest.raises(UserError, match="no trace 'nope'"):
        store.add_feedback("nope", "up")
    with pytest.raises(UserError, match="'up' or 'down'"):
        store.add_feedback(traces[0], "meh")
    with pytest.raises(UserError, match="over"):
        store.add_feedback(traces[0], "up", comment="x" * (MAX_COMMENT_CHARS + 1))
    names = [r[0] for r in store.conn.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == ["m001_calls", "m002_spans", "m003_feedback", "m004_spans_started"]


def test_usage_stats_groupings(traced: tuple[TraceStore, list[str]]) -> None:
    store, traces = traced
    store.add_feedback(traces[0], "up")
    store.add_feedback(traces[1], "down")
    by_kb = usage_stats(store, by="kb")
    assert [r.group for r in by_kb] == ["docs"]  # the ingest's embedding calls too (its kb.ingest span)
    docs = by_kb[0]
    assert docs.asks == 3 and docs.abstentions == 1 and docs.abstention_rate == pytest.approx(1 / 3)
    assert docs.feedback_up == 1 and docs.feedback_down == 1 and docs.errors == 0
    assert docs.chat_calls == 3 and docs.prompt_tokens > 0 and docs.cost_usd == 0.0
    by_model = {r.group: r for r in usage_stats(store, by="model")}
    assert by_model["fake:fixed"].chat_calls == 3 and by_model["fake:fixed"].asks == 3
    assert by_model["fake:hash-64"].calls >= 3 and by_model["fake:hash-64"].chat_calls == 0
    day = usage_stats(store, by="day")
    assert len(day) == 1 and day[0].group == time.strftime("%Y-%m-%d")
    assert day[0].calls == sum(r.calls for r in by_kb) and day[0].latency_p95_ms is not None
    assert usage_stats(store, since=time.time() + 60) == []
    with pytest.raises(UserError, match="group by"):
        usage_stats(store, by="week")


def test_errors_and_cost_with_prices(knowbase_home: Path) -> None:
    store = TraceStore(Settings.load().logs_path)
    now = time.time()
    msgs = [Message.user("hi")]
    for err in (None, None, RuntimeError("boom")):
        result = None if err else ChatResult("ok", usage=Usage(1000, 500), latency_ms=100.0)
        store.record_chat(model="openai:gpt-4o-mini", messages=msgs, options=ChatOptions(), result=result,
                          error=err, started=now, trace_id=None, span_id=None, latency_ms=300.0)
    prices = Prices.from_mapping({"openai:gpt-4o-mini": {"prompt": 0.15, "completion": 0.60}})
    (row,) = usage_stats(store, prices=prices)
    assert (row.calls, row.errors, row.prompt_tokens, row.completion_tokens) == (3, 1, 2000, 1000)
    assert row.cost_usd == pytest.approx((2000 * 0.15 + 1000 * 0.60) / 1e6)
    assert row.latency_p50_ms == 100.0 and row.latency_p95_ms == pytest.approx(280.0)
    assert usage_stats(store)[0].cost_usd is None  # a remote model without a price: unknown, not 0


def test_calls_csv_and_html(traced: tuple[TraceStore, list[str]]) -> None:
    store, _ = traced
    store.record_chat(model="=HYPERLINK(\"x\")", messages=[Message.user("secret prompt")], options=ChatOptions(),
                      result=ChatResult("out", usage=Usage(1, 1)), error=None, started=time.time(), trace_id=None,
                      span_id=None)
    text = calls_csv(store)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(store.call_rows()) and "secret prompt" not in text
    assert rows[-1]["model"] == "'=HYPERLINK(\"x\")"
    html = stats_html(usage_stats(store, by="model"), by="model")
    assert html.count("<svg") == 4 and "=HYPERLINK(&quot;x&quot;)" in html and "<script" not in html


def test_logs_stats_cli(traced: tuple[TraceStore, list[str]], tmp_path: Path) -> None:
    _, traces = traced
    runner = CliRunner()
    res = runner.invoke(cli, ["logs", "feedback", traces[0], "down", "-c", "outdated"], catch_exceptions=False)
    assert res.exit_code == 0 and "recorded" in res.stdout
    res = runner.invoke(cli, ["logs", "stats", "--by", "kb", "--json", "--html", str(tmp_path / "s.html"),
                              "--csv", str(tmp_path / "c.csv")], catch_exceptions=False)
    data = {r["group"]: r for r in json.loads(res.stdout)}
    assert data["docs"]["asks"] == 3 and data["docs"]["feedback_down"] == 1
    assert (tmp_path / "s.html").exists() and (tmp_path / "c.csv").read_text().startswith("id,trace_id")
    res = runner.invoke(cli, ["logs", "stats", "--since", "1h"], catch_exceptions=False)
    assert res.exit_code == 0 and "fake:fixed" in res.stdout
    res = runner.invoke(cli, ["logs", "export", "-"], catch_exceptions=False)
    assert res.stdout.startswith("id,trace_id,started,model")
