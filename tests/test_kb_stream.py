"""ClientStream: the streaming rules shared by the CLI and the server."""

from __future__ import annotations

from collections.abc import Iterator

from knowbase.knowledge.answer import AskEvent
from knowbase.knowledge.stream import ClientStream, may_be_not_found
from knowbase.knowledge.types import Answer


def events(*deltas: str, final: str, abstained: bool = False) -> Iterator[AskEvent]:
    yield AskEvent("sources", ())
    for d in deltas:
        yield AskEvent("delta", text=d)
    yield AskEvent("answer", answer=Answer(question="q", text=final, abstained=abstained))


def kinds_and_text(stream: ClientStream) -> tuple[list[str], str]:
    got = list(stream)
    return [e.kind for e in got], "".join(e.text for e in got if e.kind == "delta")


def test_may_be_not_found() -> None:
    assert may_be_not_found("") and may_be_not_found(" NOT") and may_be_not_found("not found.")
    assert not may_be_not_found("Nothing") and not may_be_not_found("Pods run")


def test_deltas_pass_through_after_the_hold_back() -> None:
    stream = ClientStream(events("No", "de", "s run [1].", final="Nodes run [1]."))
    kinds, text = kinds_and_text(stream)
    assert kinds == ["sources", "delta", "delta", "answer"]  # "No" + "de" held back, then released together
    assert text == "Nodes run [1]." and not stream.revised


def test_not_found_is_never_streamed_and_the_abstention_is_sent_as_text() -> None:
    stream = ClientStream(events("NOT", " FOUND", final="The knowledge base does not say.", abstained=True))
    kinds, text = kinds_and_text(stream)
    assert kinds == ["sources", "delta", "answer"]
    assert text == "The knowledge base does not say." and not stream.revised


def test_revised_when_checking_changed_the_text() -> None:
    stream = ClientStream(events("Pods run [1]. ", "Cats fly [2].", final="Pods run [1]."))
    _, text = kinds_and_text(stream)
    assert text == "Pods run [1]. Cats fly [2]." and stream.revised
    assert stream.answer is not None and stream.answer.text == "Pods run [1]."


def test_close_closes_the_source_at_once() -> None:
    closed = []

    def source() -> Iterator[AskEvent]:
        try:
            yield AskEvent("sources", ())
            for _ in range(1000):
                yield AskEvent("delta", text="word ")
        finally:
            closed.append(True)

    stream = ClientStream(source())
    assert next(stream).kind == "sources"
    assert next(stream).text == "word "
    stream.close()
    assert closed == [True]
    assert list(stream) == []
