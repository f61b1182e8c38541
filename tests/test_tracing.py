"""Call tracing: shared trace ids inside spans, the span tree, and switching tracing off."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli
from knowbase.config import Settings
from knowbase.errors import ModelHTTPError
from knowbase.models.base import ChatModel, Embedder
from knowbase.models.fake import FakeChat, FakeEmbedder
from knowbase.models.registry import get_chat_model, get_embedder
from knowbase.tracing.context import current_ids, span, trace
from knowbase.tracing.store import TraceStore


def _count(db: Path, table: str = "calls") -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_calls_inside_a_span_share_the_trace(knowbase_home: Path) -> None:
    store = TraceStore(knowbase_home / "logs.db")
    chat = ChatModel(FakeChat(["one", "two", "three"]), tracer=store)
    emb = Embedder(FakeEmbedder(8), tracer=store)
    with trace("ask", kind="kb", store=store) as root:
        first = chat.chat("q1")
        with span("retrieve") as inner:
            emb.embed(["some text"])
            assert current_ids() == (root.trace_id, inner.span_id)
        second = chat.chat("q2")
    outside = chat.chat("q3")
    assert first.trace_id == second.trace_id == root.trace_id
    assert outside.trace_id is None
    calls = store.calls(trace_id=root.trace_id)
    assert len(calls) == 3 and {c["kind"] for c in calls} == {"chat", "embed"}
    by_kind = {c["kind"]: c for c in calls}
    assert by_kind["embed"]["span_id"] == inner.span_id
    spans = store.spans(root.trace_id)
    assert [(s["name"], s["parent_id"]) for s in spans] == [("ask", None), ("retrieve", root.span_id)]
    # a call outside any span gets a trace of its own
    lone = [c for c in store.calls() if c["trace_id"] not in (root.trace_id,)]
    assert len(lone) == 1 and lone[0]["trace_id"] == lone[0]["id"]


def test_failed_span_is_recorded_with_its_error(knowbase_home: Path) -> None:
    store = TraceStore(knowbase_home / "logs.db")
    chat = ChatModel(FakeChat([ModelHTTPError("HTTP 500", status=500)]), tracer=store)
    with pytest.raises(ModelHTTPError):
        with trace("job", store=store) as root:
            chat.chat("x")
    (row,) = store.spans(root.trace_id)
    assert row["status"] == "error" and "HTTP 500" in row["error"]
    (call,) = store.calls(trace_id=root.trace_id)
    assert call["error"] == "ModelHTTPError: HTTP 500" and call["output"] is None


def test_env_switch_turns_tracing_off(knowbase_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWBASE_TRACING", "0")
    settings = Settings.load()
    assert settings.tracing is False
    chat = get_chat_model("fake", settings=settings)
    assert chat.tracer is None
    assert chat.chat("hello").text == "echo: hello"
    get_embedder("fake", settings=settings).embed(["a"])
    assert not (knowbase_home / "logs.db").exists()


def test_tracing_on_by_default_and_per_model_override(knowbase_home: Path) -> None:
    settings = Settings.load()
    get_chat_model("fake", settings=settings).chat("hi")
    assert _count(knowbase_home / "logs.db") == 1
    get_chat_model("fake", settings=settings, tracing=False).chat("hi")
    assert _count(knowbase_home / "logs.db") == 1


def test_no_trace_flag_writes_nothing(knowbase_home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--no-trace", "chat", "-m", "fake", "hello"])
    assert result.exit_code == 0, result.output
    assert "echo: hello" in result.output
    assert not (knowbase_home / "logs.db").exists()
    result = runner.invoke(cli, ["chat", "-m", "fake", "hello"])
    assert result.exit_code == 0
    assert _count(knowbase_home / "logs.db") == 1
