"""The streaming rules every front end shares (CLI, HTTP server, web page).

:func:`client_events` turns :meth:`KnowledgeBase.ask_stream` events into what a client is
shown:

* ``sources`` is passed on at once (retrieval is done; the passages can be listed).
* ``delta`` text is held back while it may still be the model's ``NOT FOUND`` (which
  becomes an abstention, never shown as an answer); once it cannot be, the held text is
  released as one delta and later deltas pass through unchanged.
* When nothing was streamed (abstention, extractive answer, a held-back ``NOT FOUND``),
  the final answer's text is sent as one delta before ``answer``, so the deltas a client
  receives always spell out an answer.
* ``answer`` comes last. :attr:`ClientStream.revised` tells whether the final, claim-checked
  text differs from what was streamed (sentences removed, citations repaired): a client
  then shows ``answer.text`` instead of the streamed text.

Example::

    stream = ClientStream(kb.ask_stream("How do I reset my password?"))
    for event in stream:
        if event.kind == "delta":
            print(event.text, end="")
    if stream.revised:
        print("\\nfinal answer:", stream.answer.text)
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator

from knowbase.knowledge.answer import AskEvent
from knowbase.knowledge.types import Answer

NOT_FOUND = "NOT FOUND"
"""The model's abstention marker (see :mod:`knowbase.knowledge.answer`)."""


def may_be_not_found(text: str) -> bool:
    """True while ``text`` (the start of an answer) may still turn out to be ``NOT FOUND``.

    Example::

        >>> may_be_not_found("NOT F"), may_be_not_found("Not found"), may_be_not_found("Pods")
        (True, True, False)
    """
    head = text.strip().upper()[:len(NOT_FOUND)]
    return NOT_FOUND.startswith(head)


class ClientStream(Iterator[AskEvent]):
    """Iterate :class:`AskEvent` s as a client should see them (see the module docstring).

    Args:
        events: an ``ask_stream`` iterator (``sources``, ``delta``..., ``answer``).

    Attributes:
        streamed: the text sent as deltas so far.
        answer: the final :class:`Answer`, once the ``answer`` event was produced.

    :meth:`close` closes the source iterator at once, which ends the model call and frees
    the model (a front end calls it when its client goes away).
    """

    def __init__(self, events: Iterable[AskEvent]) -> None:
        self._source = iter(events)
        self._gen: Generator[AskEvent, None, None] = self._run()
        self.streamed = ""
        self.answer: Answer | None = None

    def __iter__(self) -> ClientStream:
        return self

    def __next__(self) -> AskEvent:
        return next(self._gen)

    def close(self) -> None:
        """Stop: close the underlying ``ask_stream`` (ending generation)."""
        self._gen.close()
        _close(self._source)

    @property
    def revised(self) -> bool:
        """True when the final answer's text differs from the streamed text (False before the end)."""
        return self.answer is not None and self.answer.text.strip() != self.streamed.strip()

    def _run(self) -> Generator[AskEvent, None, None]:
        held = ""
        streaming = False
        try:
            for event in self._source:
                if event.kind == "delta":
                    if not streaming:
                        held += event.text
                        if may_be_not_found(held):
                            continue
                        streaming, event = True, AskEvent("delta", text=held)
                    self.streamed += event.text
                    yield event
                elif event.kind == "answer":
                    assert event.answer is not None
                    if not streaming and event.answer.text:
                        self.streamed = event.answer.text
                        yield AskEvent("delta", text=event.answer.text)
                    self.answer = event.answer
                    yield event
                else:
                    yield event
        finally:
            _close(self._source)


def _close(source: Iterator[AskEvent]) -> None:
    close = getattr(source, "close", None)  # generators have it; plain iterators need nothing
    if close is not None:
        close()
