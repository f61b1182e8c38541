"""The shared LRU of loaded models (knowbase.models.loaded)."""

from __future__ import annotations

import threading

import pytest

from knowbase.models.loaded import LoadedCache


def test_hits_do_not_reload_and_the_least_recent_is_dropped() -> None:
    loads: list[str] = []

    def loader(key: str):
        return lambda: loads.append(key) or f"model-{key}"

    cache: LoadedCache[str] = LoadedCache(size=2)
    assert cache.get("a", loader("a")) == "model-a"
    assert cache.get("b", loader("b")) == "model-b"
    assert cache.get("a", loader("a")) == "model-a"          # hit; "a" becomes the most recent
    assert cache.get("c", loader("c")) == "model-c"          # drops "b", the least recent
    assert cache.keys() == ["a", "c"] and loads == ["a", "b", "c"]
    cache.get("b", loader("b"))
    assert loads == ["a", "b", "c", "b"]
    cache.clear()
    assert cache.keys() == [] and bool(cache)   # empty, yet truthy for `cache or DEFAULT`


def test_a_failed_load_caches_nothing() -> None:
    cache: LoadedCache[int] = LoadedCache()

    def broken() -> int:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        cache.get("k", broken)
    assert cache.keys() == [] and cache.get("k", lambda: 7) == 7


def test_concurrent_requests_load_once() -> None:
    calls = []
    gate = threading.Event()

    def slow() -> object:
        calls.append(1)
        gate.wait(1)
        return object()

    cache: LoadedCache[object] = LoadedCache()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("m", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
