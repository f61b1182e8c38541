"""End-to-end runs against the embedded models (plumbing with SmolLM2, one structured call to Qwen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from knowbase.chains import LLMChain, Route, RouterChain, TransformChain
from knowbase.config import Settings
from knowbase.memory import ConversationSession
from knowbase.output import structured


@pytest.fixture(scope="module")
def smol():
    from knowbase.models.registry import get_chat_model

    return get_chat_model("llamacpp:smollm2-135m", tracing=False)


@pytest.mark.slow
def test_smollm2_pipeline_and_router(smol, tmp_path: Path) -> None:
    from knowbase.models.base import ChatModel
    from knowbase.tracing.store import TraceStore

    store = TraceStore(tmp_path / "logs.db")
    model = ChatModel(smol.backend, tracer=store)
    chain = LLMChain("Name one colour. Reply with one word.\nColour:", model, output_key="colour", max_tokens=4) \
        | TransformChain(lambda d: {"length": len(d["colour"].strip())}, ["colour"], ["length"])
    out = chain.invoke({})
    assert isinstance(out["colour"], str) and out["length"] == len(out["colour"].strip())
    calls = store.conn.execute("SELECT model, output, trace_id FROM calls").fetchall()
    spans = store.conn.execute("SELECT name, trace_id FROM spans").fetchall()
    assert calls[0][0] == "llamacpp:smollm2-135m" and calls[0][1] == out["colour"]
    assert sorted(s[0] for s in spans) == ["LLMChain", "SequentialChain", "transform"]
    assert {s[1] for s in spans} == {calls[0][2]}

    echo = TransformChain(lambda d: {"answer": "routed"}, ["input"], ["answer"], name="echo")
    router = RouterChain(model, [Route("weather", "questions about the weather", echo)], fallback=echo)
    routed = router.invoke({"input": "Will it rain tomorrow?"})
    assert routed["answer"] == "routed" and routed["destination"] in {"weather", "fallback"}


@pytest.mark.slow
def test_smollm2_conversation_session(smol, knowbase_home: Path) -> None:
    session = ConversationSession("smol", model=smol, settings=Settings.load(), k=2)
    first = session.chat("Hello, my name is Ada.", max_tokens=8)
    second = session.chat("What is my name?", max_tokens=8)
    assert first.text and second.text
    sent = session.messages("again")
    assert [m.content for m in sent[:2]] == ["Hello, my name is Ada.", first.text]
    again = ConversationSession("smol", model=smol, settings=Settings.load())
    assert [t.user for t in again.history()] == ["Hello, my name is Ada.", "What is my name?"]


class Person(BaseModel):
    name: str
    age: int
    city: str


@pytest.mark.slow
@pytest.mark.qwen
def test_qwen_structured_output_one_call() -> None:
    from knowbase.models.registry import get_chat_model

    qwen = get_chat_model("llamacpp:qwen2.5-coder-1.5b", tracing=False)
    person = structured(qwen, "Extract the person: Maria Lopez, 34, lives in Madrid.", Person, max_attempts=1,
                        max_tokens=40)
    assert person == Person(name="Maria Lopez", age=34, city="Madrid")
