"""The model as a shared resource: a bounded queue (503 + Retry-After when full) and a client
that abandons a stream frees the model at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from knowbase.config import Settings  # noqa: E402
from knowbase.models.base import ChatModel, ChatOptions, ChatResult, Message, Usage  # noqa: E402
from knowbase.models.registry import get_chat_model  # noqa: E402
from knowbase.server import ServerConfig, create_app  # noqa: E402
from knowbase.server.queue import ModelQueue, QueueFullError  # noqa: E402
from server_helpers import running  # noqa: E402

WORDS = 400


class SlowChat:
    """An in-process chat backend that yields one word every 20 ms and records how it ended."""

    backend_name = "fake"
    model_name = "slow"

    def __init__(self) -> None:
        self.produced = 0
        self.started = threading.Event()
        self.closed = threading.Event()
        self.finished = False

    def execute(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]:
        self.started.set()
        try:
            for _ in range(WORDS):
                time.sleep(0.02)
                self.produced += 1
                yield "word "
            self.finished = True
            yield ChatResult("word " * WORDS, usage=Usage(1, WORDS))
        finally:
            self.closed.set()


def test_queue_reserve_release_and_positions() -> None:
    q = ModelQueue(concurrency=1, max_waiting=1, retry_after=7)
    a, b = q.reserve(), q.reserve()
    assert (a.position, b.position, q.in_use) == (0, 1, 2)
    with pytest.raises(QueueFullError) as err:
        q.reserve()
    assert err.value.retry_after == 7
    a.acquire()
    a.release()
    a.release()  # twice is harmless
    assert q.in_use == 1
    b.acquire()  # does not block: a gave the slot back
    b.release()
    assert q.in_use == 0
    assert q.ticket_for("openai").queue is None  # remote backends do not queue here


def test_full_queue_503_and_abandoned_stream_frees_the_model(knowbase_home: Path) -> None:
    from knowbase.knowledge.base import KnowledgeBase

    settings = Settings.load(embedder="fake", model="fake")
    with KnowledgeBase.create("notes", settings=settings) as kb:
        kb.add_texts(["The cafeteria serves lunch from noon."])
    slow = SlowChat()

    def factory(spec: str) -> ChatModel:
        return ChatModel(slow) if spec == "slow" else get_chat_model(spec, settings=settings)

    app = create_app(settings, ServerConfig(models=("slow", "fake"), queue_concurrency=1, queue_max_waiting=0),
                     chat_model_factory=factory)
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    quick = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            first = None
            lines = resp.iter_lines()  # kept: dropping the iterator would close the connection
            for line in lines:
                if line.startswith("data: ") and '"content":"word' in line.replace(" ", ""):
                    first = json.loads(line[6:])["choices"][0]["delta"]["content"]
                    break
            assert first == "word "
            busy = client.post("/v1/chat/completions", json=quick)
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "5"
            assert "busy" in busy.json()["error"]["message"]
            assert not slow.closed.is_set()  # still generating for the connected client
            found = client.post("/api/kbs/notes/search", json={"query": "lunch", "k": 1})  # retrieval needs no model
            assert found.status_code == 200 and "lunch" in found.json()["hits"][0]["text"]
        # the client went away after the first delta: generation stops and the slot is free again
        assert slow.closed.wait(10), "the abandoned stream was not closed"
        assert not slow.finished and slow.produced < WORDS
        deadline = time.monotonic() + 10
        while True:
            after = client.post("/v1/chat/completions", json=quick)
            if after.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert after.status_code == 200, after.text
        assert after.json()["choices"][0]["message"]["content"] == "echo: hi"
        assert client.get("/api/health").json()["queue"]["in_use"] == 0


@pytest.mark.slow
def test_abandoned_stream_frees_the_llamacpp_model_at_once(knowbase_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real llama.cpp backend (SmolLM2): while a client reads, the model's lock is held;
    when it goes away after the first delta, generation stops (the call is logged as cancelled,
    not finished) and the lock is free for the next request."""
    from knowbase.tracing.store import TraceStore

    monkeypatch.setenv("KNOWBASE_N_THREADS", "1")
    spec = "llamacpp:smollm2-135m"
    settings = Settings.load(embedder="fake", model=spec)
    app = create_app(settings, ServerConfig(models=(spec,), queue_max_waiting=0))
    state = app.state.knowbase
    body = {"model": spec, "stream": True, "max_tokens": 400, "temperature": 0,
            "messages": [{"role": "user", "content": "Write a very long story about a cat who travels the world."}]}
    with running(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            for line in lines:
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    break
            lock = state.chat_model(spec).backend.loaded().lock
            assert lock.locked()  # generating for the connected client
        deadline = time.monotonic() + 30
        while lock.locked() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not lock.locked()
        [call] = [c for c in TraceStore(settings.logs_path).calls() if c["kind"] == "chat"]
        assert "cancelled by the caller after" in call["error"] and call["completion_tokens"] is None
        quick = client.post("/v1/chat/completions", json={"model": spec, "max_tokens": 3,
                                                          "messages": [{"role": "user", "content": "Hi"}]})
        assert quick.status_code == 200 and quick.json()["usage"]["completion_tokens"] <= 3
