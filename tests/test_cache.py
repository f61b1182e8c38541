"""The SQLite response cache as ChatModel uses it: keys, hits marked cached, traces."""

from __future__ import annotations

from pathlib import Path

from knowbase.models.base import ChatModel, ChatOptions, ChatResult, Message, ToolCall, Usage
from knowbase.models.cache import ResponseCache
from knowbase.models.fake import FakeChat
from knowbase.tracing.store import TraceStore


def test_hit_skips_backend_and_is_marked(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    fake = FakeChat(["first", "second"])
    tracer = TraceStore(tmp_path / "logs.db")
    model = ChatModel(fake, cache=cache, tracer=tracer)
    a = model.chat("hello", max_tokens=10)
    b = model.chat("hello", max_tokens=10)
    assert (a.text, a.cached) == ("first", False)
    assert (b.text, b.cached) == ("first", True)
    assert len(fake.calls) == 1
    assert model.chat("hello", max_tokens=11).text == "second"      # other options, other key
    assert cache.stats() == {"entries": 2, "hits": 1}
    rows = tracer.conn.execute("SELECT output, cached FROM calls ORDER BY started").fetchall()
    assert rows == [("first", 0), ("first", 1), ("second", 0)]


def test_cache_persists_and_keys_cover_prompt(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    ChatModel(FakeChat(["stored"]), cache=ResponseCache(path)).chat([Message.system("s"), Message.user("q")])
    again = ChatModel(FakeChat(["fresh"]), cache=ResponseCache(path))
    assert again.chat([Message.system("s"), Message.user("q")]).text == "stored"
    assert again.chat([Message.system("other"), Message.user("q")]).text == "fresh"
    cache = ResponseCache(path)
    k1 = cache.key("fake:x", [Message.user("q")], ChatOptions())
    assert k1 == cache.key("fake:x", [Message.user("q")], ChatOptions())
    assert k1 != cache.key("fake:y", [Message.user("q")], ChatOptions())
    assert k1 != cache.key("fake:x", [Message.user("q")], ChatOptions(json_schema={"type": "object"}))
    assert len(k1) == 64


def test_round_trip_of_tool_calls_and_usage(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.db")
    result = ChatResult("", tool_calls=(ToolCall("search", {"q": "x"}, "c1"),), finish_reason="tool_calls",
                        usage=Usage(5, 2), model="fake:m", latency_ms=3.0)
    cache.put("k", result)
    got = cache.get("k")
    assert got == result
    assert cache.get("missing") is None
    assert cache.clear() == 1 and cache.get("k") is None


def test_only_deterministic_and_max_age(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.db", only_deterministic=True)
    model = ChatModel(FakeChat(["a", "b", "c", "d"]), cache=cache)
    assert model.chat("q", temperature=0.8).text == "a"
    assert model.chat("q", temperature=0.8).text == "b"            # sampled: not cached
    assert model.chat("q", temperature=0.8, seed=1).text == "c"
    assert model.chat("q", temperature=0.8, seed=1).text == "c"    # seeded: cached
    expired = ResponseCache(tmp_path / "c.db", max_age=-1)
    assert expired.get(cache.key("fake:scripted", [Message.user("q")], ChatOptions(temperature=0.8, seed=1))) is None


def test_errors_are_not_cached(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.db")
    cache.put("k", ChatResult("partial", finish_reason="error"))
    assert cache.get("k") is None
