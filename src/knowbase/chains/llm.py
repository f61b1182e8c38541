"""A prompt template, a chat model and an optional output parser as one step."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from knowbase.chains.base import Chain
from knowbase.models.base import ChatOptions, Message
from knowbase.prompts.template import as_prompt

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel
    from knowbase.output.parsers import OutputParser
    from knowbase.tracing.store import TraceStore

_UNSET: Any = object()


class LLMChain(Chain):
    """Render ``prompt`` from the inputs, call ``model``, parse the reply.

    Args:
        prompt: a :class:`~knowbase.prompts.PromptTemplate`, a
            :class:`~knowbase.prompts.ChatPromptTemplate`, a
            :class:`~knowbase.prompts.FewShotPromptTemplate`, or a template string.
            Its slots are this step's ``input_keys``.
        model: a :class:`~knowbase.models.base.ChatModel`.
        output_parser: turns the reply text into the output value (anything with
            ``parse(text)``). A :class:`~knowbase.output.PydanticParser` also sends its
            JSON Schema to the backend and retries invalid replies (see
            :func:`~knowbase.output.chat_structured`).
        output_key: the single output key (default ``text``).
        options: chat options; ``**overrides`` set single fields (``max_tokens=64``...).
        name: the span name.
        tracer: where spans are written; default the model's tracer.

    Example::

        chain = LLMChain("Name one {kind} of fruit.", model, output_key="fruit")
        chain.invoke({"kind": "red"})      # {'fruit': 'Strawberry.'}
    """

    def __init__(self, prompt: Any, model: ChatModel, *, output_parser: OutputParser | None = None,
                 output_key: str = "text", options: ChatOptions | None = None, name: str = "LLMChain",
                 tracer: TraceStore | None = _UNSET, **overrides: Any) -> None:
        self.prompt = as_prompt(prompt)
        self.model = model
        self.output_parser = output_parser
        self.output_key = output_key
        self.options = options
        self.overrides = overrides
        self.name = name
        self.input_keys = tuple(getattr(self.prompt, "required", self.prompt.variables))
        self.output_keys = (output_key,)
        self.tracer = getattr(model, "tracer", None) if tracer is _UNSET else tracer

    def messages(self, inputs: dict[str, Any]) -> list[Message]:
        """The messages this step would send for ``inputs``."""
        return self.prompt.to_messages(inputs)

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        msgs = self.prompt.to_messages(inputs)
        parser = self.output_parser
        if parser is not None and hasattr(parser, "json_schema") and hasattr(parser, "output_type"):
            from knowbase.output.structured import chat_structured

            done = chat_structured(self.model, msgs, parser.output_type,
                                   max_attempts=getattr(parser, "max_attempts", 3),
                                   constrained=getattr(parser, "constrained", True), options=self.options,
                                   **self.overrides)
            return {self.output_key: done.value}
        text = self.model.chat(msgs, options=self.options, **self.overrides).text
        return {self.output_key: parser.parse(text) if parser is not None else text}

    def _stream(self, inputs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if self.output_parser is not None:
            yield self._call(inputs)
            return
        key = self.output_key
        for delta in self.model.stream(self.prompt.to_messages(inputs), options=self.options, **self.overrides):
            yield {key: delta}
