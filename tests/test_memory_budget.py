"""Every memory type loads at most its token budget, whatever history the store holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowbase.config import Settings
from knowbase.errors import ContextLengthError
from knowbase.memory import (
    BufferWindowMemory,
    ConversationSession,
    EntityMemory,
    MemoryStore,
    SummaryBufferMemory,
    SummaryMemory,
    make_memory,
)
from knowbase.memory.types import clip_to_tokens, estimate_tokens, messages_tokens, newest_within
from knowbase.models.base import ChatModel, Message
from knowbase.models.fake import FakeChat, fake_count_tokens, json_reply

TURNS = 20


def _long_history(store: MemoryStore, session_id: str = "s", memory_type: str = "buffer") -> None:
    """20 turns of 76 fake tokens each (1,520 in all), stored as ``memory_type``."""
    for i in range(1, TURNS + 1):
        store.add_turn(session_id, f"question {i}: " + "tell me more about the cluster " * 5,
                       f"answer {i}: " + "the cluster has three nodes and one ingress " * 5, memory_type=memory_type)


def _tokens(messages: list[Message]) -> int:
    return messages_tokens(messages, fake_count_tokens)


def test_helpers() -> None:
    assert estimate_tokens("") == 1 and estimate_tokens("abcdef") == 3 and estimate_tokens("冰雪节") == 4
    assert clip_to_tokens("one two three four", 2, fake_count_tokens) == "one two"
    assert clip_to_tokens("one", 0, fake_count_tokens) == ""
    store = MemoryStore(None)
    _long_history(store)
    kept = newest_within(store.turns("s"), 200, fake_count_tokens)
    assert [t.n for t in kept] == [19, 20]  # each turn costs 76: two fit in 200, never a part of one


def test_buffer_memory_has_a_token_budget() -> None:
    store = MemoryStore(None)
    _long_history(store)
    mem = BufferWindowMemory(k=50, max_tokens=200, model=ChatModel(FakeChat()), store=store, session_id="s")
    loaded = mem.load("next")
    assert mem.token_budget == 200 and _tokens(loaded) == 152  # two turns of 76
    assert loaded[-1].content.startswith("answer 20:") and loaded[0].content.startswith("question 19:")
    # no model: the conservative estimate (UTF-8 bytes / 3) counts
    plain = BufferWindowMemory(k=50, max_tokens=200, store=store, session_id="s").load("next")
    assert 0 < messages_tokens(plain, estimate_tokens) <= 200
    assert messages_tokens(plain, fake_count_tokens) < 200  # the estimate over-counts English


def test_summary_memory_clips_a_stored_summary() -> None:
    store = MemoryStore(None)
    _long_history(store)
    store.set_summary("s", "The user asked about the cluster. " * 100, 20)  # 700 fake tokens
    mem = SummaryMemory(ChatModel(FakeChat()), max_tokens=100, store=store, session_id="s")
    loaded = mem.load("next")
    assert len(loaded) == 1 and loaded[0].content.startswith("Summary of the earlier conversation:\nThe user")
    assert 90 <= _tokens(loaded) <= 100


def test_summary_buffer_folds_history_stored_by_buffer_memory() -> None:
    """The reported case: a buffer conversation reopened with a 200-token summary buffer."""
    store = MemoryStore(None)
    _long_history(store)
    fake = FakeChat(default="The user asked about the cluster; it has three nodes.")
    mem = SummaryBufferMemory(ChatModel(fake), max_tokens=200, summary_tokens=64, store=store, session_id="s")
    loaded = mem.load("next")
    # turns 1-18 folded, two turns (152 tokens) per call so that no call exceeds the budget
    assert len(fake.calls) == 9
    first = fake.calls[0][0][-1].content
    assert "User: question 1:" in first and "User: question 2:" in first and "question 3:" not in first
    assert store.summary("s") == ("The user asked about the cluster; it has three nodes.", 18)
    assert [m.content.split(":")[0] for m in loaded[1:]] == ["question 19", "answer 19", "question 20", "answer 20"]
    assert _tokens(loaded) <= mem.token_budget == 264
    assert mem.load("again") == loaded and len(fake.calls) == 9  # folded once, saved


def test_entity_memory_budget_covers_notes_and_turns() -> None:
    store = MemoryStore(None)
    _long_history(store)
    store.add_turn("s", "Ada runs the cluster.", "Noted.", memory_type="entity",
                   entities={"Ada": [f"fact number {i} about Ada and her work" for i in range(40)]})
    mem = EntityMemory(ChatModel(FakeChat()), k=5, context_tokens=150, store=store, session_id="s")
    loaded = mem.load("What does Ada do?")
    assert loaded[0].role == "system" and "- Ada: fact number 0" in loaded[0].content
    assert _tokens(loaded) <= 150 and mem.token_budget == 150
    assert loaded[-1].content == "Noted."


def test_every_memory_type_honours_its_budget() -> None:
    for kind, params in (("buffer", {"k": 50, "max_tokens": 120}), ("window", {"k": 50, "max_tokens": 120}),
                         ("summary", {"max_tokens": 60}), ("summary-buffer", {"max_tokens": 120, "summary_tokens": 30}),
                         ("entity", {"k": 50, "context_tokens": 200})):
        store = MemoryStore(None)
        _long_history(store)
        store.set_summary("s", "a long summary " * 200, 0)
        mem = make_memory(kind, model=ChatModel(FakeChat(default="short summary")), store=store, session_id="s",
                          **params)
        assert 0 < _tokens(mem.load("cluster")) <= mem.token_budget, kind


def test_session_reopened_with_another_memory_type_fits_the_context(knowbase_home: Path) -> None:
    settings = Settings.load()
    store = MemoryStore(knowbase_home / "memory.db")
    old = ConversationSession("talk", memory_type="buffer", model=ChatModel(FakeChat(["ok"] * TURNS)),
                              settings=settings, store=store, k=50, max_tokens=10_000)
    for i in range(TURNS):
        old.chat(f"question {i}: " + "tell me more about the cluster and its nodes " * 8)
    # a model with a 400-token window: the whole history (about 1,900 tokens) would not fit
    def reply(messages: list[Message], _options: object) -> str:
        return "summary of the talk" if "New lines:" in messages[-1].content else "the answer"

    small = ChatModel(FakeChat(reply, context_window=400))
    with pytest.raises(ContextLengthError):
        small.chat(old.messages("next"))
    small = ChatModel(FakeChat(reply, context_window=400))
    again = ConversationSession("talk", memory_type="summary_buffer", model=small, settings=settings,
                                store=MemoryStore(knowbase_home / "memory.db"), max_tokens=200, summary_tokens=64)
    assert again.chat("next").text == "the answer"
    calls = small.backend.calls
    assert len(calls) > 2  # the 18 turns beyond the budget were folded in several calls, each within the window
    sent = calls[-1][0]
    assert _tokens(sent[:-1]) <= 264 and sent[-1] == Message.user("next")


def test_entity_extraction_reply_budget_is_unchanged() -> None:
    fake = FakeChat([json_reply({"entities": []})])
    mem = EntityMemory(ChatModel(fake), max_tokens=77)
    mem.save("hi", "hello")
    assert fake.calls[0][1].max_tokens == 77


@pytest.mark.slow
def test_budgets_with_the_real_tokenizer() -> None:
    from knowbase.models.registry import get_chat_model

    llm = get_chat_model("llamacpp:smollm2-135m", settings=Settings.load(), tracing=False)
    store = MemoryStore(None)
    _long_history(store)
    store.set_summary("s", "The user asked about the cluster and its three nodes. " * 60, 0)
    buffer = BufferWindowMemory(k=50, max_tokens=200, model=llm, store=store, session_id="s")
    loaded = buffer.load("next")
    assert 100 < messages_tokens(loaded, llm.count_tokens) <= 200
    summary = SummaryMemory(llm, max_tokens=80, store=store, session_id="s").load("next")
    assert 60 < messages_tokens(summary, llm.count_tokens) <= 80
