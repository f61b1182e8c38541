"""The in-process llama.cpp backend (SmolLM2-135M): context limits, tools, grammars, bad files."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from knowbase.config import Settings
from knowbase.errors import ContextLengthError, KnowbaseError, ModelFileError, UnknownModelError, UserError
from knowbase.models.base import ChatModel, ChatOptions, Message, ToolCall, ToolSpec
from knowbase.models.llamacpp import LlamaCppChat, tool_schema
from knowbase.models.registry import get_chat_model
from knowbase.tracing.store import TraceStore

pytestmark = pytest.mark.slow

LONG = " ".join(f"Paragraph {i} talks about pods, nodes, services and deployments in a cluster." for i in range(40))


def _rows(home: Path) -> list[dict[str, Any]]:
    db = home / "logs.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY started")]
    finally:
        conn.close()


@pytest.fixture()
def small_ctx(knowbase_home: Path) -> ChatModel:
    """SmolLM2 with a 256-token context window, traced into this test's logs.db."""
    return get_chat_model("llamacpp:smollm2-135m", settings=Settings.load(), n_ctx=256)


def test_prompt_longer_than_context_names_both_counts(small_ctx: ChatModel, knowbase_home: Path) -> None:
    with pytest.raises(ContextLengthError) as err:
        small_ctx.chat(LONG, max_tokens=8)
    assert err.value.context_window == 256
    assert err.value.prompt_tokens > 256
    assert str(err.value.prompt_tokens) in str(err.value) and "256" in str(err.value)
    assert isinstance(err.value, KnowbaseError)
    rows = _rows(knowbase_home)
    assert len(rows) == 1 and rows[0]["error"].startswith("ContextLengthError")
    assert rows[0]["output"] is None and rows[0]["prompt_tokens"] is None


def test_truncate_drops_oldest_non_system_messages(small_ctx: ChatModel) -> None:
    backend = small_ctx.backend
    assert isinstance(backend, LlamaCppChat)
    messages = [Message.system("You are terse."), Message.user(LONG[:900]), Message.assistant(LONG[:700]),
                Message.user("Say OK.")]
    kept, tokens, _ = backend.fit(messages, ChatOptions(truncate=True, max_tokens=8))
    assert [m.role for m in kept][0] == "system" and kept[-1].content == "Say OK."
    assert len(kept) < len(messages) and len(tokens) <= 256 - 8
    result = small_ctx.chat(messages, truncate=True, max_tokens=8)
    assert result.usage.prompt_tokens == len(tokens)
    assert 0 < result.usage.completion_tokens <= 8


def test_count_tokens_and_context_window(knowbase_home: Path) -> None:
    llm = get_chat_model("llamacpp:smollm2-135m", settings=Settings.load())
    assert llm.context_window == 2048
    n = llm.count_tokens("Kubernetes schedules pods onto nodes.")
    assert 5 <= n <= 15
    assert llm.count_tokens("") == 0


def test_loaded_models_are_shared_per_path_and_n_ctx(knowbase_home: Path) -> None:
    settings = Settings.load()
    a = get_chat_model("llamacpp:smollm2-135m", settings=settings).backend
    b = get_chat_model("llamacpp:smollm2", settings=settings).backend
    c = get_chat_model("llamacpp:smollm2-135m", settings=settings, n_ctx=256).backend
    assert a.loaded().llama is b.loaded().llama
    assert a.loaded().llama is not c.loaded().llama
    assert c.context_window == 256


def test_tool_call_is_grammar_constrained(knowbase_home: Path) -> None:
    tools = (ToolSpec("get_weather", "Current weather for a city.",
                      {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                       "required": ["city"]}),
             ToolSpec("add", "Add two integers.",
                      {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}))
    llm = get_chat_model("llamacpp:smollm2-135m", settings=Settings.load())
    result = llm.chat("What is the weather in Paris?", tools=tools, tool_choice="required", max_tokens=30)
    assert result.finish_reason == "tool_calls" and result.text == ""
    (call,) = result.tool_calls
    assert isinstance(call, ToolCall) and call.name in {"get_weather", "add"} and call.id.startswith("call_")
    required = {"get_weather": {"city"}, "add": {"a", "b"}}[call.name]
    assert required <= set(call.arguments)
    row = _rows(knowbase_home)[0]
    assert json.loads(row["tool_calls"])[0]["name"] == call.name
    # a conversation that carries the call and its result renders and answers
    follow = llm.chat([Message.user("What is the weather in Paris?"), Message.assistant("", [call]),
                       Message.tool("sunny, 21 C", tool_call_id=call.id, name=call.name)],
                      tools=tools, tool_choice="none", max_tokens=6)
    assert follow.text and follow.tool_calls == ()
    sent = json.loads(_rows(knowbase_home)[1]["messages"])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]


def test_tool_schema_shapes() -> None:
    tools = [ToolSpec("a", "first", {"type": "object"}), ToolSpec("b", "second", {"type": "object"})]
    auto = tool_schema(tools)
    assert len(auto["anyOf"]) == 3 and auto["anyOf"][-1]["required"] == ["answer"]
    only_b = tool_schema(tools, "b")
    assert [v["properties"]["tool"]["const"] for v in only_b["anyOf"]] == ["b"]
    with pytest.raises(UserError):
        tool_schema(tools, "c")


def test_raw_gbnf_grammar_and_a_bad_one(knowbase_home: Path) -> None:
    llm = get_chat_model("llamacpp:smollm2-135m", settings=Settings.load())
    result = llm.chat("Is the sky blue? Answer yes or no.", grammar='root ::= "yes" | "no"', max_tokens=4)
    assert result.text in {"yes", "no"}
    with pytest.raises(UserError) as err:
        llm.chat("Is the sky blue?", grammar='root ::= "yes | ', max_tokens=4)
    assert err.value.field == "grammar"


def test_missing_gguf(tmp_path: Path, knowbase_home: Path) -> None:
    with pytest.raises(ModelFileError) as err:
        get_chat_model(f"llamacpp:{tmp_path / 'nowhere.gguf'}", settings=Settings.load())
    assert err.value.path == str(tmp_path / "nowhere.gguf")


def test_corrupt_gguf_fails_on_load_with_a_clean_error(tmp_path: Path, knowbase_home: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 4096)
    llm = get_chat_model(f"llamacpp:{bad}", settings=Settings.load())
    with pytest.raises(ModelFileError) as err:
        llm.chat("hi")
    assert err.value.path == str(bad) and "cannot load" in str(err.value)
    rows = _rows(knowbase_home)
    assert len(rows) == 1 and rows[0]["error"].startswith("ModelFileError") and rows[0]["output"] is None


def test_unknown_model_name(knowbase_home: Path) -> None:
    with pytest.raises(UnknownModelError) as err:
        get_chat_model("llamacpp:llama-9000", settings=Settings.load())
    assert err.value.spec == "llama-9000"
    assert not TraceStore(knowbase_home / "logs.db").calls()


KB_MESSAGES = [
    Message.system("You answer questions using only the numbered passages the user gives you. Cite passages like "
                   "[1]. If the passages do not contain the answer, reply exactly: NOT FOUND"),
    Message.user("Passages:\n[1] A Deployment's maxSurge defaults to 25%. maxUnavailable defaults to 25%.\n\n"
                 "Question: What is the default maxSurge?"),
]


def _fresh(settings: Settings, **kwargs: Any) -> ChatModel:
    """SmolLM2 loaded anew (its own model cache), as in a new process."""
    from knowbase.models.llamacpp import ModelCache

    return get_chat_model("llamacpp:smollm2-135m", settings=settings, tracing=False, models=ModelCache(), **kwargs)


def test_system_prefix_state_is_saved_and_restored_by_a_new_process(knowbase_home: Path, tmp_path: Path) -> None:
    settings = Settings.load()
    kv = tmp_path / "kv"
    first = _fresh(settings, prefix_cache=kv)
    a = first.chat(KB_MESSAGES, max_tokens=24, temperature=0.0).text
    assert first.backend.prefix_restored is False  # evaluated, then saved
    files = list(kv.glob("*.npz"))
    assert len(files) == 1 and files[0].stat().st_size > 10_000
    assert not list(kv.glob("*.tmp"))
    second = _fresh(settings, prefix_cache=kv)
    b = second.chat(KB_MESSAGES, max_tokens=24, temperature=0.0).text
    assert second.backend.prefix_restored is True and b == a
    # same process, same prefix: llama.cpp's in-memory prefix reuse, the disk is not read
    second.chat(KB_MESSAGES[:1] + [Message.user("Question: What is maxUnavailable?")], max_tokens=4)
    assert second.backend.prefix_restored is None
    # a corrupt file is rebuilt, the answer unchanged
    files[0].write_bytes(b"not a state")
    third = _fresh(settings, prefix_cache=kv)
    assert third.chat(KB_MESSAGES, max_tokens=24, temperature=0.0).text == a
    assert third.backend.prefix_restored is False
    # off: no restore attempted
    off = _fresh(settings, prefix_cache=None)
    assert off.chat(KB_MESSAGES, max_tokens=24, temperature=0.0).text == a and off.backend.prefix_restored is None
    assert _fresh(settings).backend._prefix_cache == settings.models_dir / "kv-cache"  # the default place


def test_prompt_lookup_decoding_keeps_greedy_output(knowbase_home: Path) -> None:
    settings = Settings.load()
    plain = _fresh(settings, prompt_lookup=0, prefix_cache=None).chat(KB_MESSAGES, max_tokens=32, temperature=0.0)
    model = _fresh(settings, prompt_lookup=4, prefix_cache=None)
    assert model.backend.loaded().llama.draft_model is not None
    fast = model.chat(KB_MESSAGES, max_tokens=32, temperature=0.0)
    assert fast.text == plain.text and fast.usage.completion_tokens == plain.usage.completion_tokens
    again = model.chat(KB_MESSAGES, max_tokens=32, temperature=0.0)  # the cached prompt path too
    assert again.text == plain.text


def test_prompt_lookup_setting_must_be_a_number(knowbase_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from knowbase.errors import ConfigError

    monkeypatch.setenv("KNOWBASE_PROMPT_LOOKUP", "lots")
    with pytest.raises(ConfigError) as err:
        get_chat_model("llamacpp:smollm2-135m", settings=Settings.load())
    assert err.value.field == "prompt_lookup"
    monkeypatch.setenv("KNOWBASE_PROMPT_LOOKUP", "3")
    assert get_chat_model("llamacpp:smollm2-135m", settings=Settings.load()).backend._llama_kwargs["prompt_lookup"] == 3


@pytest.mark.slow
def test_loading_a_model_in_a_thread_does_not_swallow_other_output(tmp_path: Path) -> None:
    """knowbase prints the sources while the model loads in a background thread; llama-cpp-python's
    quiet mode used to point fds 1 and 2 at /dev/null during the load, losing those lines."""
    import subprocess
    import sys

    script = (
        "import threading, time\n"
        "from knowbase.config import Settings\n"
        "from knowbase.models.catalog import model_path\n"
        "from knowbase.models.llamacpp import load_gguf\n"
        "path = model_path('smollm2-135m', Settings.load())\n"
        "t = threading.Thread(target=load_gguf, args=(path,), kwargs={'n_ctx': 512}); t.start()\n"
        "n = 0\n"
        "while t.is_alive():\n"
        "    print(f'line {n}', flush=True); n += 1; time.sleep(0.005)\n"
        "t.join(); print(f'printed {n}', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KNOWBASE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    printed = int(lines[-1].split()[1])
    assert printed > 0 and lines[:-1] == [f"line {i}" for i in range(printed)]   # none lost
    assert "Model metadata" not in proc.stderr and "llama_model_loader" not in proc.stderr  # and still quiet
