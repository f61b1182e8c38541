"""Knowledge-base question answering as a chain step."""

from __future__ import annotations

from typing import Any, Protocol

from knowbase.chains.base import Chain
from knowbase.knowledge.types import Answer


class AsksQuestions(Protocol):
    """What :class:`RetrievalQAChain` needs: ``KnowledgeBase.ask``."""

    def ask(self, question: str, *, model: Any = None, k: int = 4) -> Answer: ...


class RetrievalQAChain(Chain):
    """Answer from a knowledge base: wraps ``kb.ask(question, model=, k=)``.

    Args:
        kb: a :class:`knowbase.knowledge.base.KnowledgeBase` (or anything with ``ask``).
        model: the chat model passed to ``ask`` (None: the knowledge base's default).
        k: passages retrieved.
        input_key: the question's key (default ``question``).
        output_key: the answer text's key (default ``answer``).

    Outputs: ``answer`` (text with ``[n]`` citation markers), ``citations``
    (tuple of :class:`~knowbase.knowledge.types.Citation`), ``abstained`` (bool).
    """

    def __init__(self, kb: AsksQuestions, *, model: Any = None, k: int = 4, input_key: str = "question",
                 output_key: str = "answer", name: str = "RetrievalQAChain") -> None:
        self.kb, self.model, self.k = kb, model, k
        self.input_key, self.output_key = input_key, output_key
        self.name = name
        self.input_keys = (input_key,)
        self.output_keys = (output_key, "citations", "abstained")
        self.tracer = getattr(model, "tracer", None) or getattr(kb, "tracer", None)

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        answer = self.kb.ask(str(inputs[self.input_key]), model=self.model, k=self.k)
        return {self.output_key: answer.text, "citations": answer.citations, "abstained": answer.abstained}
