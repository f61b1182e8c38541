"""Few-shot prompts: a prefix, some worked examples, and the question.

Which examples go in is decided by an :class:`ExampleSelector` (one method,
``select(examples, inputs) -> examples``):

* :class:`AllExamples` -- every example, in order;
* :class:`TokenBudgetSelector` -- examples in order while they fit a token budget;
* :class:`SimilaritySelector` -- the ``k`` examples whose text is nearest to the input by
  cosine similarity of embeddings (as in Liu et al. 2021, "What Makes Good In-Context
  Examples for GPT-3?").

Example::

    fewshot = FewShotPromptTemplate(
        examples=[{"word": "happy", "antonym": "sad"}, {"word": "tall", "antonym": "short"}],
        example_template=PromptTemplate("Word: {word}\\nAntonym: {antonym}"),
        prefix="Give the antonym of every word.",
        suffix=PromptTemplate("Word: {input}\\nAntonym:"),
    )
    fewshot.render({"input": "big"})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from knowbase.errors import TemplateError
from knowbase.models.base import Message
from knowbase.prompts.template import PromptTemplate, as_prompt

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import Embedder

Example = Mapping[str, Any]


class ExampleSelector(Protocol):
    """Chooses the examples for one input."""

    def select(self, examples: Sequence[Example], inputs: Mapping[str, Any]) -> list[Example]: ...


class AllExamples:
    """Every example, in the given order."""

    def select(self, examples: Sequence[Example], inputs: Mapping[str, Any]) -> list[Example]:
        return list(examples)


class TokenBudgetSelector:
    """Examples in the given order while their rendered text fits ``max_tokens``.

    Args:
        example_template: how each example is rendered (for counting).
        max_tokens: budget for all examples together, in tokens of ``count_tokens``.
        count_tokens: a tokenizer's counter (e.g. ``model.count_tokens``); default about
            one token per 4 characters.
    """

    def __init__(self, example_template: PromptTemplate | str, *, max_tokens: int,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.example_template = as_prompt(example_template)
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens or (lambda text: max(1, len(text) // 4))

    def select(self, examples: Sequence[Example], inputs: Mapping[str, Any]) -> list[Example]:
        chosen: list[Example] = []
        used = 0
        for example in examples:
            cost = self.count_tokens(self.example_template.render(example))
            if used + cost > self.max_tokens:
                break
            chosen.append(example)
            used += cost
        return chosen


class SimilaritySelector:
    """The ``k`` examples nearest to the input, most similar first.

    Args:
        embedder: an :class:`~knowbase.models.base.Embedder` (rows L2-normalised, so the
            dot product is the cosine similarity).
        k: how many examples.
        input_keys: the input keys whose values are embedded (joined by spaces); default
            every string value of the input.
        example_keys: the example keys embedded; default every key.

    Example embeddings are computed once per examples list and reused.
    """

    def __init__(self, embedder: Embedder, *, k: int = 3, input_keys: Sequence[str] | None = None,
                 example_keys: Sequence[str] | None = None) -> None:
        self.embedder = embedder
        self.k = k
        self.input_keys = tuple(input_keys) if input_keys else None
        self.example_keys = tuple(example_keys) if example_keys else None
        self._cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def _text(self, values: Mapping[str, Any], keys: tuple[str, ...] | None) -> str:
        picked = keys or tuple(k for k, v in values.items() if isinstance(v, str))
        return " ".join(str(values[k]) for k in picked if k in values)

    def select(self, examples: Sequence[Example], inputs: Mapping[str, Any]) -> list[Example]:
        if not examples:
            return []
        texts = tuple(self._text(e, self.example_keys) for e in examples)
        if self._cache is None or self._cache[0] != texts:
            self._cache = (texts, self.embedder.embed(list(texts)))
        matrix = self._cache[1]
        query = self.embedder.embed_query(self._text(inputs, self.input_keys))
        scores = matrix @ query
        order = np.argsort(-scores, kind="stable")[: self.k]
        return [examples[int(i)] for i in order]


class FewShotPromptTemplate:
    """``prefix``, the selected examples, then ``suffix``, joined by ``separator``.

    Args:
        examples: dicts with the keys ``example_template`` uses.
        example_template: renders one example.
        suffix: the part with the actual input (its slots are the template's variables).
        prefix: instructions before the examples (may have slots too).
        separator: between parts, default a blank line.
        selector: an :class:`ExampleSelector`; default :class:`AllExamples`.

    Raises:
        TemplateError: an example lacks a key its template needs (checked when built).
    """

    def __init__(self, examples: Sequence[Example], example_template: PromptTemplate | str, *,
                 suffix: PromptTemplate | str, prefix: PromptTemplate | str = "", separator: str = "\n\n",
                 selector: ExampleSelector | None = None) -> None:
        self.examples = list(examples)
        self.example_template: PromptTemplate = as_prompt(example_template)
        self.prefix: PromptTemplate = as_prompt(prefix)
        self.suffix: PromptTemplate = as_prompt(suffix)
        self.separator = separator
        self.selector = selector or AllExamples()
        for i, example in enumerate(self.examples):
            missing = [v for v in self.example_template.variables if v not in example]
            if missing:
                raise TemplateError(f"example {i} lacks {', '.join(missing)} needed by the example template",
                                    missing=missing, row=i)
        self.variables: tuple[str, ...] = tuple(dict.fromkeys([*self.prefix.variables, *self.suffix.variables]))

    def __repr__(self) -> str:
        return f"FewShotPromptTemplate({len(self.examples)} examples, variables={list(self.variables)})"

    def render(self, inputs: Mapping[str, Any]) -> str:
        """The full prompt text for ``inputs``."""
        chosen = self.selector.select(self.examples, inputs)
        parts = [self.prefix.render(inputs)] if self.prefix.template else []
        parts.extend(self.example_template.render(e) for e in chosen)
        parts.append(self.suffix.render(inputs))
        return self.separator.join(parts)

    def format(self, **values: Any) -> str:
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise TemplateError(f"unknown slot(s) {', '.join(unknown)} for few-shot template", unknown=unknown)
        return self.render(values)

    def to_messages(self, inputs: Mapping[str, Any]) -> list[Message]:
        return [Message.user(self.render(inputs))]
