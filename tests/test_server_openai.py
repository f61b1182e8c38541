"""The OpenAI-compatible API, driven by the official ``openai`` client against a real uvicorn
server on 127.0.0.1, with the scripted fake model and the fake embedder."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from knowbase.config import Settings  # noqa: E402
from knowbase.server import ServerConfig, create_app  # noqa: E402
from server_helpers import ANSWER, QUESTION, handbook_settings, running  # noqa: E402


@pytest.fixture
def settings(knowbase_home: Path, tmp_path: Path) -> Settings:
    s = handbook_settings(tmp_path)
    return s


@pytest.fixture
def client(settings: Settings):
    app = create_app(settings, ServerConfig(models=(f"fake:{ANSWER}", "fake")))
    with running(app) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_served_models_and_knowledge_bases(client) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [f"fake:{ANSWER}", "fake", "kb:handbook"]


def test_kb_completion_non_streamed_carries_citations(client) -> None:
    reply = client.chat.completions.create(model="kb:handbook", messages=[{"role": "user", "content": QUESTION}])
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    kb = reply.model_extra["knowbase"]
    assert kb["answer"] == ANSWER and kb["abstained"] is False and kb["revised"] is False
    [cite] = kb["citations"]
    assert cite["n"] == 1 and cite["path"].endswith("handbook.md") and cite["section"] == ["Leave"]
    assert cite["end"] - cite["start"] == len(cite["text"]) and "25 days of paid leave" in cite["text"]
    assert [p["n"] for p in kb["passages"]] == list(range(1, len(kb["passages"]) + 1))
    assert kb["trace_id"]
    assert reply.usage.completion_tokens > 0


def test_kb_completion_streamed_true_deltas_then_citations(client) -> None:
    stream = client.chat.completions.create(model="kb:handbook", stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    deltas, finals = [], []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        choice = chunk.choices[0]
        if choice.delta.content:
            deltas.append(choice.delta.content)
        if choice.finish_reason:
            finals.append(chunk.model_extra["knowbase"])
    assert len(deltas) > 3  # word by word, not one blob
    assert "".join(deltas) == ANSWER  # increments, not the growing text
    assert all(not ANSWER.startswith(d) or i == 0 for i, d in enumerate(deltas))
    [final] = finals
    assert final["answer"] == ANSWER and final["revised"] is False
    assert [c["n"] for c in final["citations"]] == [1]
    assert final["citations"][0]["section"] == ["Leave"]


def test_kb_stream_abstention_is_sent_as_text(client, settings: Settings) -> None:
    stream = client.chat.completions.create(model="kb:handbook", stream=True,
                                            messages=[{"role": "user", "content": "Which GPU does the cluster use?"}])
    text, final = "", None
    for chunk in stream:
        text += chunk.choices[0].delta.content or ""
        if chunk.choices[0].finish_reason:
            final = chunk.model_extra["knowbase"]
    assert final is not None and final["abstained"] is True and final["citations"] == []
    assert text == final["answer"] and text  # the abstention message arrives as deltas too


def test_plain_model_completion_streamed_and_not(client) -> None:
    reply = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hello there"}])
    assert reply.choices[0].message.content == "echo: hello there"
    stream = client.chat.completions.create(model="fake", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "hello there"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_unknown_model_and_knowledge_base_are_404(client) -> None:
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.chat.completions.create(model="openai:gpt-4o@http://10.0.0.1/v1",
                                       messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError, match="nope"):
        client.chat.completions.create(model="kb:nope", messages=[{"role": "user", "content": "hi"}])


def test_embeddings_float_and_base64_match_the_embedder(client, settings: Settings) -> None:
    from knowbase.models.registry import get_embedder

    expected = get_embedder("fake", settings=settings).embed(["paid leave", "office hours"])
    got = client.embeddings.create(model="kb:handbook", input=["paid leave", "office hours"])  # base64 by default
    assert [d.index for d in got.data] == [0, 1]
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), expected, rtol=1e-6, atol=1e-6)
    flt = client.embeddings.create(model="fake", input="paid leave", encoding_format="float")
    np.testing.assert_allclose(flt.data[0].embedding, expected[0], rtol=1e-6, atol=1e-6)
    assert flt.usage.prompt_tokens == 2
    raw = client.embeddings.with_raw_response.create(model="fake", input="paid leave", encoding_format="base64")
    b64 = raw.http_response.json()["data"][0]["embedding"]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(b64), dtype="<f4"), expected[0], rtol=1e-6)
