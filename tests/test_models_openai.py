"""The OpenAI-compatible backend against a small local stub server: every failure path.

The stub (http.server on 127.0.0.1 in a thread) picks its behaviour from the first path
segment: ``http://127.0.0.1:PORT/<scenario>/v1``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowbase.config import Settings
from knowbase.errors import (
    AuthenticationError,
    ConfigError,
    KnowbaseError,
    ModelConnectionError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
    RateLimitError,
)
from knowbase.models.base import ToolSpec
from knowbase.models.fake import FakeEmbedder
from knowbase.models.openai_compat import parse_retry_after
from knowbase.models.registry import get_chat_model, get_embedder

KEY = "sk-test-0123456789secret"


def _completion(text: str = "Paris", **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text, **extra}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12}}


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _sse(self, events: list[Any], *, finish: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for ev in events:
            data = ev if isinstance(ev, str) else json.dumps(ev)
            chunk = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        if finish:
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.close_connection = True  # drop the connection in the middle of the chunked body

    def do_POST(self) -> None:
        scenario = self.path.strip("/").split("/")[0]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        srv = self.server
        with srv.lock:
            srv.hits[scenario] += 1
            n = srv.hits[scenario]
            srv.requests.append((scenario, self.path, dict(self.headers), body))
        if self.path.endswith("/embeddings"):
            if scenario == "error500":
                self._json(500, {"error": {"message": "boom"}})
                return
            vecs = FakeEmbedder(16).encode(body["input"])
            self._json(200, {"data": [{"index": i, "embedding": v.tolist()} for i, v in reversed(list(enumerate(vecs)))]})
            return
        if scenario == "ok":
            if body.get("stream"):
                self._sse([{"choices": [{"delta": {"role": "assistant"}}]},
                           {"choices": [{"delta": {"content": "Par"}}]},
                           {"choices": [{"delta": {"content": "is"}, "finish_reason": "stop"}]},
                           {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}, "[DONE]"])
            else:
                self._json(200, _completion())
        elif scenario == "auth":
            self._json(401, {"error": {"message": "Incorrect API key provided"}})
        elif scenario == "notfound":
            self._json(404, {"error": {"message": "The model `nope` does not exist"}})
        elif scenario == "ratelimit":
            if n == 1:
                self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
            else:
                self._json(200, _completion())
        elif scenario == "ratelimitdate":
            if n == 1:
                self._json(429, {"error": {"message": "slow down"}},
                           {"Retry-After": formatdate(time.time() + 30, usegmt=True)})
            else:
                self._json(200, _completion())
        elif scenario == "ratelimitalways":
            self._json(429, {"error": {"message": "quota"}}, {"Retry-After": "2"})
        elif scenario == "error500":
            self._json(500, {"error": {"message": "internal failure"}})
        elif scenario == "flaky":
            if n == 1:
                self._json(503, b"upstream unavailable")
            else:
                self._json(200, _completion("recovered"))
        elif scenario == "malformed":
            self._json(200, b'{"choices": [ {"message": ')
        elif scenario == "brokensse":
            self._sse([{"choices": [{"delta": {"content": "The answer "}}]},
                       {"choices": [{"delta": {"content": "is"}}]}], finish=False)
        elif scenario == "cleanclose":  # stream that ends cleanly but without finish_reason or [DONE]
            self._sse([{"choices": [{"delta": {"content": "half"}}]}])
        elif scenario == "slow":
            time.sleep(3)
            self._json(200, _completion())
        elif scenario == "schema422":
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema":
                self._json(422, {"detail": "response_format.type: Input should be 'text' or 'json_object'"})
            else:
                self._json(200, _completion('{"city": "Paris"}'))
        elif scenario == "tools":
            if body.get("stream"):
                self._sse([{"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_a", "function": {
                              "name": "lookup", "arguments": '{"ci'}}]}}]},
                           {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}}]},
                           {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}, "[DONE]"])
            else:
                self._json(200, _completion("", tool_calls=[{"id": "call_b", "type": "function", "function": {
                    "name": "lookup", "arguments": '{"city": "Oslo"}'}}]))
        else:
            self._json(400, {"error": {"message": f"unknown scenario {scenario}"}})


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Stub)
        self.lock = threading.Lock()
        self.hits: defaultdict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, str, dict[str, str], dict[str, Any]]] = []

    def url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{scenario}/v1"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture()
def waits() -> list[float]:
    return []


def model(stub: StubServer, scenario: str, waits: list[float], **kw: Any):
    kw.setdefault("sleep", waits.append)
    kw.setdefault("backoff", 0.01)
    return get_chat_model(f"openai:gpt-test@{stub.url(scenario)}", settings=Settings.load().with_(api_key=KEY), **kw)


def rows(home: Path) -> list[dict[str, Any]]:
    db = home / "logs.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY started")]
    finally:
        conn.close()


def assert_one_error_row(home: Path, kind: type[Exception]) -> dict[str, Any]:
    recorded = rows(home)
    assert len(recorded) == 1
    row = recorded[0]
    assert row["error"].startswith(kind.__name__)
    assert row["output"] is None and row["finish_reason"] == "error"
    assert row["prompt_tokens"] is None and row["completion_tokens"] is None
    assert KEY not in json.dumps(row)
    return row


# --- success paths -------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False])
def test_chat_ok_streamed_and_whole(stub: StubServer, waits: list[float], stream: bool, knowbase_home: Path) -> None:
    llm = model(stub, "ok", waits, stream=stream)
    result = llm.chat("Capital of France?")
    assert result.text == "Paris"
    assert result.usage.prompt_tokens == (9 if stream else 11)
    assert result.usage.completion_tokens == (2 if stream else 1)
    scenario, path, headers, body = stub.requests[-1]
    assert path == "/ok/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-test" and body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert body["stream"] is stream
    assert KEY not in repr(llm.backend) and KEY not in repr(llm.backend.transport)
    assert rows(knowbase_home)[0]["output"] == "Paris"


@pytest.mark.parametrize("stream", [True, False])
def test_native_tool_calls(stub: StubServer, waits: list[float], stream: bool) -> None:
    tool = ToolSpec("lookup", "Find a city", {"type": "object", "properties": {"city": {"type": "string"}}})
    result = model(stub, "tools", waits, stream=stream).chat("Where?", tools=[tool], tool_choice="lookup")
    assert result.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("lookup", {"city": "Oslo"})]
    body = stub.requests[-1][3]
    assert body["tools"][0]["function"]["name"] == "lookup"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}


def test_json_schema_falls_back_to_json_object_once(stub: StubServer, waits: list[float]) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    llm = model(stub, "schema422", waits, stream=False)
    assert llm.chat("City?", json_schema=schema).json() == {"city": "Paris"}
    sent = [r[3]["response_format"] for r in stub.requests if r[0] == "schema422"]
    assert sent[0]["type"] == "json_schema" and sent[0]["json_schema"]["schema"] == schema
    assert sent[1] == {"type": "json_object", "schema": schema}
    llm.chat("Again?", json_schema=schema)  # remembered: no second refusal
    sent = [r[3]["response_format"] for r in stub.requests if r[0] == "schema422"]
    assert len(sent) == 3 and sent[2]["type"] == "json_object"


def test_embeddings_in_input_order(stub: StubServer, waits: list[float]) -> None:
    emb = get_embedder(f"openai:embed-test@{stub.url('ok')}", settings=Settings.load(), sleep=waits.append)
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    out = emb.embed(texts)
    expected = FakeEmbedder(16).encode(texts)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert out.shape == (3, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert emb.dim == 16


# --- failure paths -----------------------------------------------------------------------------
def test_401_is_an_authentication_error(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(AuthenticationError) as err:
        model(stub, "auth", waits).chat("hi")
    assert err.value.status == 401 and "Incorrect API key" in str(err.value)
    assert KEY not in str(err.value)
    assert stub.hits["auth"] == 1  # never retried
    assert_one_error_row(knowbase_home, AuthenticationError)


def test_404_names_model_or_url(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(ModelHTTPError) as err:
        model(stub, "notfound", waits).chat("hi")
    assert err.value.status == 404 and "not found" in str(err.value) and "nope" in str(err.value)
    assert_one_error_row(knowbase_home, ModelHTTPError)


def test_429_waits_retry_after_then_succeeds(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    result = model(stub, "ratelimit", waits, stream=False).chat("hi")
    assert result.text == "Paris"
    assert stub.hits["ratelimit"] == 2
    assert waits == [1.0]
    assert len(rows(knowbase_home)) == 1 and rows(knowbase_home)[0]["error"] is None


def test_retry_after_http_date_is_capped(stub: StubServer, waits: list[float]) -> None:
    model(stub, "ratelimitdate", waits, stream=False, max_wait=5.0).chat("hi")
    assert waits == [5.0]


def test_429_after_all_retries(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(RateLimitError) as err:
        model(stub, "ratelimitalways", waits, max_retries=2).chat("hi")
    assert err.value.retry_after == 2.0 and err.value.status == 429
    assert stub.hits["ratelimitalways"] == 3
    assert waits == [2.0, 2.0]
    assert_one_error_row(knowbase_home, RateLimitError)


def test_500_retried_with_backoff_then_raised(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(ModelHTTPError) as err:
        model(stub, "error500", waits, max_retries=3).chat("hi")
    assert err.value.status == 500 and "internal failure" in str(err.value)
    assert stub.hits["error500"] == 4
    assert len(waits) == 3 and waits[0] < waits[1] < waits[2]  # exponential back-off (plus jitter)
    assert_one_error_row(knowbase_home, ModelHTTPError)


def test_503_then_success(stub: StubServer, waits: list[float]) -> None:
    assert model(stub, "flaky", waits, stream=False).chat("hi").text == "recovered"
    assert stub.hits["flaky"] == 2


def test_malformed_json(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(ModelResponseError) as err:
        model(stub, "malformed", waits, stream=False).chat("hi")
    assert err.value.body == '{"choices": [ {"message": '
    assert_one_error_row(knowbase_home, ModelResponseError)


def test_sse_broken_mid_stream(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    stream = model(stub, "brokensse", waits).stream("hi")
    got: list[str] = []
    with pytest.raises(ModelResponseError, match="broke mid-way"):
        for delta in stream:
            got.append(delta)
    assert got == ["The answer ", "is"]
    assert stream.result is None  # no half result
    assert_one_error_row(knowbase_home, ModelResponseError)


def test_sse_ending_without_finish_is_broken(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(ModelResponseError, match="without a finish_reason"):
        model(stub, "cleanclose", waits).chat("hi")
    assert_one_error_row(knowbase_home, ModelResponseError)


def test_read_timeout(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    with pytest.raises(ModelTimeoutError) as err:
        model(stub, "slow", waits, timeout=0.3, stream=False).chat("hi")
    assert err.value.timeout == 0.3
    assert stub.hits["slow"] == 1  # a read timeout is not retried
    assert_one_error_row(knowbase_home, ModelTimeoutError)


def test_unreachable_port(waits: list[float], knowbase_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = get_chat_model(f"openai:gpt-test@{url}", settings=Settings.load(), sleep=waits.append, backoff=0.01,
                         max_retries=2)
    with pytest.raises(ModelConnectionError) as err:
        llm.chat("hi")
    assert err.value.url == f"{url}/chat/completions"
    assert len(waits) == 2  # connection errors are retried
    assert isinstance(err.value, KnowbaseError)
    assert_one_error_row(knowbase_home, ModelConnectionError)


def test_embeddings_500(stub: StubServer, waits: list[float], knowbase_home: Path) -> None:
    emb = get_embedder(f"openai:e@{stub.url('error500')}", settings=Settings.load(), sleep=waits.append, max_retries=1)
    with pytest.raises(ModelHTTPError) as err:
        emb.embed(["x"])
    assert err.value.status == 500
    recorded = rows(knowbase_home)
    assert len(recorded) == 1 and recorded[0]["kind"] == "embed" and recorded[0]["error"].startswith("ModelHTTPError")


def test_spec_without_model_name() -> None:
    with pytest.raises(ConfigError):
        get_chat_model("openai:@http://127.0.0.1:9/v1", settings=Settings.load())


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == 30.0
    assert parse_retry_after(formatdate(1_000_000, usegmt=True), now=2_000_000) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
