"""Zero-shot classification: by embedding similarity, or by asking the model.

* :func:`classify` embeds the text and one hypothesis per label (``"This text is
  positive."``) and ranks labels by cosine similarity -- the embedding approach to
  zero-shot classification (Yin et al. 2019 frame labels as hypotheses; with sentence
  embeddings, as in Reimers & Gurevych 2019, the hypothesis nearest the text wins).
* :class:`LLMClassifier` asks a chat model a multiple-choice question and parses the
  letter; slower, usually more accurate on subtle labels.

Example::

    classify("I loved every minute of it", ["positive", "negative"], embedder=emb)
    # [('positive', 0.41), ('negative', 0.12)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from knowbase.errors import UserError
from knowbase.output.parsers import options_block, parse_choice
from knowbase.prompts.loader import load_template

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.models.base import ChatModel, Embedder

DEFAULT_HYPOTHESIS = "This text is {label}."


def classify(text: str, labels: Sequence[str], *, embedder: Embedder,
             hypothesis: str = DEFAULT_HYPOTHESIS) -> list[tuple[str, float]]:
    """Each label's cosine similarity to ``text``, best first.

    Args:
        text: the text to classify.
        labels: the candidate labels (at least two).
        embedder: an :class:`~knowbase.models.base.Embedder` (rows are L2-normalised).
        hypothesis: how a label is phrased before embedding; ``{label}`` is replaced.
            Use ``"{label}"`` to embed the bare label.

    Returns:
        ``[(label, similarity), ...]`` sorted by similarity (-1..1), highest first.

    Raises:
        UserError: fewer than two labels.
    """
    labels = list(labels)
    if len(labels) < 2:
        raise UserError("classify needs at least two labels", labels=labels)
    vectors = embedder.embed([text, *(hypothesis.replace("{label}", label) for label in labels)])
    scores = vectors[1:] @ vectors[0]
    ranked = sorted(zip(labels, (float(s) for s in scores)), key=lambda pair: -pair[1])
    return ranked


class LLMClassifier:
    """Pick one label by asking a chat model a lettered multiple-choice question.

    Args:
        model: the chat model.
        labels: the candidate labels.
        max_tokens: reply length limit (a letter needs 1-3 tokens).

    ``classify(text)`` returns the label, or None when the reply names no option.
    """

    def __init__(self, model: ChatModel, labels: Sequence[str], *, max_tokens: int = 8) -> None:
        if len(labels) < 2:
            raise UserError("LLMClassifier needs at least two labels", labels=list(labels))
        self.model = model
        self.labels = list(labels)
        self.max_tokens = max_tokens
        self.prompt = load_template("chain_classify")
        self._options = options_block(self.labels)

    def classify(self, text: str) -> str | None:
        reply = self.model.chat(self.prompt.render({"text": text, "options": self._options}),
                                max_tokens=self.max_tokens, temperature=0.0).text
        index = parse_choice(reply, len(self.labels), labels=self.labels)
        return None if index is None else self.labels[index]
