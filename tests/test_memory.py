"""Memory types, persistence in memory.db, ConversationSession and the `knowbase memory` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from knowbase.cli.main import cli
from knowbase.config import Settings
from knowbase.errors import ConfigError, UserError
from knowbase.memory import (
    BufferWindowMemory,
    ConversationSession,
    EntityMemory,
    MemoryStore,
    SummaryBufferMemory,
    SummaryMemory,
    make_memory,
)
from knowbase.models.base import ChatModel, Message
from knowbase.models.fake import FakeChat, json_reply


def model(replies) -> ChatModel:
    return ChatModel(FakeChat(replies))


def test_buffer_window_keeps_last_k(tmp_path: Path) -> None:
    mem = BufferWindowMemory(2, store=MemoryStore(tmp_path / "memory.db"), session_id="s")
    for i in range(3):
        mem.save(f"u{i}", f"a{i}")
    assert mem.load("next") == [Message.user("u1"), Message.assistant("a1"), Message.user("u2"),
                                Message.assistant("a2")]
    assert [t.n for t in mem.turns()] == [1, 2, 3]


def test_memory_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    BufferWindowMemory(store=MemoryStore(path), session_id="s").save("hello", "hi")
    again = BufferWindowMemory(store=MemoryStore(path), session_id="s")
    assert again.load("x") == [Message.user("hello"), Message.assistant("hi")]
    other = BufferWindowMemory(store=MemoryStore(path), session_id="other")
    assert other.load("x") == []


def test_summary_memory() -> None:
    fake = FakeChat(["Ada introduced herself.", "Ada, an engineer, introduced herself."])
    mem = SummaryMemory(ChatModel(fake), session_id="s")
    assert mem.load("x") == []
    mem.save("I am Ada.", "Hello Ada!")
    mem.save("I am an engineer.", "Nice.")
    assert mem.summary == "Ada, an engineer, introduced herself."
    assert mem.load("x") == [Message.system("Summary of the earlier conversation:\n"
                                            "Ada, an engineer, introduced herself.")]
    second_prompt = fake.calls[1][0][-1].content
    assert "Current summary:\nAda introduced herself.\n" in second_prompt
    assert "New lines:\nUser: I am an engineer.\nAssistant: Nice.\n" in second_prompt
    assert mem.store.summary("s") == ("Ada, an engineer, introduced herself.", 2)


def test_summary_buffer_folds_oldest_turns() -> None:
    fake = FakeChat(["S1", "S2"])
    # fake tokens: words and punctuation; each turn below costs 4 tokens ("u1 a" style: 2 + 2)
    mem = SummaryBufferMemory(ChatModel(fake), max_tokens=9, session_id="s")
    mem.save("one one", "one one")        # 4 tokens, total 4
    mem.save("two two", "two two")        # total 8
    assert fake.calls == []
    assert len(mem.load("x")) == 4
    mem.save("three three", "three three")  # total 12 > 9 -> fold turn 1
    assert len(fake.calls) == 1
    assert "New lines:\nUser: one one\nAssistant: one one\n" in fake.calls[0][0][-1].content
    assert mem.load("x") == [Message.system("Summary of the earlier conversation:\nS1"),
                             Message.user("two two"), Message.assistant("two two"),
                             Message.user("three three"), Message.assistant("three three")]
    mem.save("a b c d e f g h", "i")       # 9 tokens alone: folds turns 2 and 3
    assert "Current summary:\nS1" in fake.calls[1][0][-1].content
    assert "User: two two\nAssistant: two two\nUser: three three" in fake.calls[1][0][-1].content
    assert mem.load("x") == [Message.system("Summary of the earlier conversation:\nS2"),
                             Message.user("a b c d e f g h"), Message.assistant("i")]
    assert mem.store.summary("s") == ("S2", 3)


def test_entity_memory_extracts_and_recalls() -> None:
    fake = FakeChat([
        json_reply({"entities": [{"name": "Ada", "facts": ["is an engineer", "lives in London"]},
                                 {"name": "Acme", "facts": ["is Ada's employer"]}]}),
        json_reply({"entities": [{"name": "ada", "facts": ["likes tea", "is an engineer"]}]}),
    ])
    mem = EntityMemory(ChatModel(fake), k=1, session_id="s")
    mem.save("Ada is an engineer at Acme in London.", "Noted.")
    mem.save("Ada likes tea.", "Good to know.")
    assert mem.entities == {"Acme": ["is Ada's employer"], "Ada": ["is an engineer", "lives in London", "likes tea"]}
    assert fake.calls[0][1].json_schema["title"] == "ExtractedEntities"
    loaded = mem.load("Where does Ada live?")
    assert loaded[0] == Message.system("What you know about the people and things mentioned:\n"
                                       "- Ada: is an engineer; lives in London; likes tea")
    assert loaded[1:] == [Message.user("Ada likes tea."), Message.assistant("Good to know.")]
    assert "Acme" in mem.load("Tell me about acme.")[0].content
    mem2 = EntityMemory(ChatModel(FakeChat([])), k=0, session_id="s", store=mem.store)
    assert mem2.load("What is the weather?") == []


def test_entity_memory_keeps_turn_when_extraction_fails() -> None:
    fake = FakeChat(["not json", "still not json"])
    mem = EntityMemory(ChatModel(fake), session_id="s")
    mem.save("Bob is here.", "Hi Bob.")
    assert mem.entities == {}
    assert mem.last_error is not None and mem.last_error.raw == "still not json"
    assert [t.user for t in mem.turns()] == ["Bob is here."]


def test_make_memory_and_errors() -> None:
    assert isinstance(make_memory("summary-buffer", model=model([]), store=None, session_id="x"), SummaryBufferMemory)
    with pytest.raises(ConfigError):
        make_memory("vector", model=None, store=None, session_id="x")
    with pytest.raises(ConfigError):
        make_memory("summary", model=None, store=None, session_id="x")
    with pytest.raises(UserError):
        BufferWindowMemory(session_id="")
    with pytest.raises(UserError):
        BufferWindowMemory(session_id="x" * 201)


# --- ConversationSession ------------------------------------------------------------------------------
def test_session_chat_remembers_across_restarts(knowbase_home: Path) -> None:
    fake = FakeChat(lambda msgs, opts: f"seen {len(msgs)} messages")
    m = ChatModel(fake)
    settings = Settings.load()
    s1 = ConversationSession("trip", model=m, settings=settings, system="Be brief.", k=5)
    assert s1.chat("My name is Ada.").text == "seen 2 messages"
    assert s1.chat("I like tea.", max_tokens=10).text == "seen 4 messages"
    assert fake.calls[1][1].max_tokens == 10
    s2 = ConversationSession("trip", model=m, settings=settings)    # a new object: as after a restart
    assert s2.messages("What is my name?") == [
        Message.user("My name is Ada."), Message.assistant("seen 2 messages"),
        Message.user("I like tea."), Message.assistant("seen 4 messages"), Message.user("What is my name?")]
    assert (knowbase_home / "memory.db").exists()
    assert [t.n for t in s2.history()] == [1, 2]
    assert s2.delete() is True and s2.history() == []


def test_session_stream_saves_when_done(knowbase_home: Path) -> None:
    s = ConversationSession("st", model=ChatModel(FakeChat(["hello there friend"])))
    assert list(s.stream("hi")) == ["hello ", "there ", "friend"]
    assert s.last_result is not None and s.last_result.text == "hello there friend"
    assert [(t.user, t.assistant) for t in s.history()] == [("hi", "hello there friend")]


def test_session_with_model_string_and_summary(knowbase_home: Path) -> None:
    s = ConversationSession("sum", memory_type="summary", model="fake:OK")
    assert s.chat("remember 42").text == "OK"
    assert s.store.summary("sum") == ("OK", 1)
    assert s.messages("x")[0] == Message.system("Summary of the earlier conversation:\nOK")


def test_session_traces_turn(knowbase_home: Path) -> None:
    from knowbase.tracing.store import TraceStore

    store = TraceStore(knowbase_home / "logs.db")
    s = ConversationSession("tr", model=ChatModel(FakeChat(["a"]), tracer=store))
    s.chat("q")
    spans = store.conn.execute("SELECT name, kind, attributes FROM spans").fetchall()
    assert [(n, k) for n, k, _ in spans] == [("conversation", "chat")]
    assert json.loads(spans[0][2])["session_id"] == "tr"


# --- CLI -----------------------------------------------------------------------------------------------
def test_memory_cli(knowbase_home: Path) -> None:
    store = MemoryStore(knowbase_home / "memory.db")
    BufferWindowMemory(store=store, session_id="alpha").save("hello", "hi there")
    mem = EntityMemory(ChatModel(FakeChat([json_reply({"entities": [{"name": "Ada", "facts": ["codes"]}]})])),
                       store=store, session_id="beta")
    mem.save("Ada codes.", "Cool.")
    runner = CliRunner()
    out = runner.invoke(cli, ["memory", "list", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [(r["id"], r["memory_type"], r["turns"]) for r in rows] == [("beta", "entity", 1), ("alpha", "buffer", 1)]
    out = runner.invoke(cli, ["memory", "show", "beta"])
    assert out.exit_code == 0
    assert "Ada: codes" in out.output and "[1] user: Ada codes." in out.output
    out = runner.invoke(cli, ["memory", "show", "alpha", "--json"])
    assert json.loads(out.output)["turns"] == [{"n": 1, "user": "hello", "assistant": "hi there"}]
    out = runner.invoke(cli, ["memory", "delete", "alpha"])
    assert out.exit_code == 0 and "Deleted session alpha" in out.output
    out = runner.invoke(cli, ["memory", "list"])
    assert "alpha" not in out.output and out.output.startswith("beta\tentity\t1 turn\t")
    out = runner.invoke(cli, ["memory", "show", "nope"])
    assert out.exit_code != 0
