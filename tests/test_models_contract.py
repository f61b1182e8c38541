"""One contract, every backend: each chat backend and each embedder keeps the same promises.

Chat backends: ``fake``, ``llamacpp`` (SmolLM2-135M in-process) and ``openai`` (against
llama-cpp-python's own OpenAI-compatible server serving the same SmolLM2 file, started
once for the session on 127.0.0.1). Embedders: ``fake``, all-MiniLM-L6-v2 and ``openai``
(against a tiny local /v1/embeddings stub: llama-cpp-python's server returns per-token
vectors for a causal model like SmolLM2, not one pooled vector per text).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from knowbase.config import Settings
from knowbase.models.base import ChatModel, Embedder
from knowbase.models.fake import FakeChat, FakeEmbedder, json_reply
from knowbase.models.registry import get_chat_model, get_embedder

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 24}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
}


class City(pydantic.BaseModel):
    city: str
    population: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from knowbase.models.catalog import model_path

    return model_path("smollm2-135m", Settings.load())


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free 127.0.0.1 port, serving SmolLM2."""
    port = _free_port()
    threads = int(os.environ.get("KNOWBASE_N_THREADS") or os.cpu_count() or 2)  # as the in-process backend
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads), "--n_threads_batch", str(threads),
             "--model_alias", "smollm2"],
            stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fake_reply(messages: Any, options: Any) -> str:
    if options.json_schema is not None:
        return json_reply({"city": "Paris", "population": 2100000})
    return "Paris is the capital of France."


@pytest.fixture(params=["fake", pytest.param("llamacpp", marks=pytest.mark.slow),
                        pytest.param("openai", marks=pytest.mark.slow)])
def chat_model(request: pytest.FixtureRequest, knowbase_home: Path) -> ChatModel:
    settings = Settings.load()
    if request.param == "fake":
        from knowbase.tracing.store import TraceStore

        return ChatModel(FakeChat(_fake_reply, name="contract"), tracer=TraceStore(settings.logs_path))
    if request.param == "llamacpp":
        return get_chat_model("llamacpp:smollm2-135m", settings=settings)
    base = request.getfixturevalue("llama_server")
    return get_chat_model(f"openai:smollm2@{base}", settings=settings, backoff=0.05)


QUESTION = "What is the capital of France? Answer in one short sentence."


def test_chat_contract(chat_model: ChatModel, knowbase_home: Path) -> None:
    result = chat_model.chat(QUESTION, max_tokens=24, seed=1)
    assert isinstance(result.text, str) and result.text.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 25
    assert result.model == chat_model.spec
    assert result.tool_calls == ()
    # every call is recorded whole
    from knowbase.tracing.store import TraceStore

    rows = TraceStore(knowbase_home / "logs.db").calls(limit=5)
    assert len(rows) == 1
    assert rows[0]["model"] == chat_model.spec and rows[0]["output"] == result.text
    assert rows[0]["prompt_tokens"] == result.usage.prompt_tokens and rows[0]["error"] is None


def test_streaming_contract(chat_model: ChatModel) -> None:
    stream = chat_model.stream(QUESTION, max_tokens=24, seed=1)
    deltas = list(stream)
    assert stream.result is not None
    assert len(deltas) >= 2 and all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas) == stream.result.text


def test_max_tokens_contract(chat_model: ChatModel) -> None:
    result = chat_model.chat("Count from one to fifty in words, separated by commas.", max_tokens=3)
    assert result.finish_reason == "length"
    assert 1 <= result.usage.completion_tokens <= 4


def test_json_schema_contract(chat_model: ChatModel) -> None:
    result = chat_model.chat("Name a large city and its population as JSON.", json_schema=SCHEMA, max_tokens=80)
    city = City.model_validate_json(result.text)
    assert city.city.strip() and len(city.city) <= 24 and city.population >= 0
    assert result.json() == city.model_dump()


def test_greedy_is_repeatable(chat_model: ChatModel) -> None:
    first = chat_model.chat(QUESTION, max_tokens=12, temperature=0.0, seed=7).text
    second = chat_model.chat(QUESTION, max_tokens=12, temperature=0.0, seed=7).text
    assert first == second and first


# --- embedders ----------------------------------------------------------------------------------
class _EmbedStub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        vecs = FakeEmbedder(32).encode(body["input"])
        data = json.dumps({"data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def embed_stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbedStub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["fake", pytest.param("minilm", marks=pytest.mark.slow),
                        pytest.param("onnx-int8", marks=pytest.mark.slow), "openai"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    settings = Settings.load()
    if request.param == "fake":
        return get_embedder("fake:64", settings=settings)
    if request.param == "minilm":
        return get_embedder("sentence-transformers:all-minilm-l6-v2", settings=settings)
    if request.param == "onnx-int8":
        return get_embedder("onnx:all-minilm-l6-v2", settings=settings)
    return get_embedder(f"openai:stub-embed@{request.getfixturevalue('embed_stub')}", settings=settings)


def test_embedding_contract(embedder: Embedder) -> None:
    texts = ["The cat sat on the mat.", "A quarterly revenue report for the finance team.",
             "A cat was sitting on a mat.", ""]
    out = embedder.embed(texts)
    assert out.shape == (4, embedder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # input order is kept (rows equal single-text calls), same text gives the same vector;
    # int8 ONNX scales activations per batch, so there a row equals its single-text call up to
    # quantisation noise (cosine > 0.98) and is still the nearest row to it
    quantised = embedder.spec == "onnx:all-minilm-l6-v2"
    for i, text in enumerate(texts[:3]):
        single = embedder.embed([text])[0]
        if quantised:
            assert float(single @ out[i]) > 0.98 and int(np.argmax(out @ single)) == i
        else:
            np.testing.assert_allclose(single, out[i], atol=1e-5)
    np.testing.assert_array_equal(embedder.embed(texts), out)  # the same batch gives the same vectors
    sims = out[:3] @ out[:3].T
    assert sims[0, 2] > sims[0, 1]  # paraphrase beats an unrelated sentence
    assert embedder.embed([]).shape == (0, embedder.dim)
    assert embedder.count_tokens("The cat sat on the mat.") >= 6
    assert embedder.max_seq_length > 0
