"""Token counting for training data, with the target model's tokenizer where one is available.

* OpenAI models (``openai:gpt-4o-mini``, ``gpt-3.5-turbo``...): the model's own BPE
  (``o200k_base``, ``cl100k_base``...) from the ``bpe-openai`` package, whose token tables are
  built in (no download);
* knowbase model strings (``llamacpp:...``, ``fake``): the model's own ``count_tokens``;
* otherwise an approximation: ``cl100k_base`` when ``bpe-openai`` is installed, else the fake
  models' word-and-punctuation count; :attr:`TokenCounter.exact` says which.

Chat examples add the per-message overhead of OpenAI's counting recipe (3 tokens per message,
3 to prime the reply; the "How to count tokens with tiktoken" cookbook).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["TokenCounter", "token_counter", "PER_MESSAGE", "REPLY_PRIMING"]

PER_MESSAGE = 3
REPLY_PRIMING = 3


@dataclass(frozen=True)
class TokenCounter:
    """``count(text) -> tokens``; ``name`` says which tokenizer; ``exact`` is False for an approximation."""

    name: str
    count: Callable[[str], int]
    exact: bool

    def count_messages(self, messages: Sequence[dict[str, str]]) -> int:
        """Tokens of a chat example, with the per-message overhead."""
        return sum(PER_MESSAGE + self.count(m.get("content", "")) for m in messages) + REPLY_PRIMING


def _bpe(name: str | None, model: str | None) -> TokenCounter | None:
    try:
        import bpe_openai
    except ImportError:
        return None
    try:
        enc = bpe_openai.encoding_for_model(model) if model else bpe_openai.get_encoding(name or "cl100k_base")
    except Exception:  # an unknown model name: the caller falls back
        return None
    return TokenCounter(f"{enc.name}" + (f" ({model})" if model else ""), lambda t: len(enc.encode(t)),
                        exact=model is not None)


def token_counter(model: str | None = None) -> TokenCounter:
    """The best token counter for ``model`` (a knowbase model string or an OpenAI model name).

    Loading a local GGUF model to count tokens takes seconds (its vocabulary only is used).
    """
    from knowbase.models.fake import fake_count_tokens

    if model:
        backend, _, name = model.partition(":")
        if backend in ("llamacpp", "fake") or model.endswith(".gguf"):
            from knowbase.models.registry import get_chat_model

            chat = get_chat_model(model, tracing=False)
            return TokenCounter(chat.spec, chat.count_tokens, exact=True)
        bare = (name if backend == "openai" else model).split("@", 1)[0]
        exact = _bpe(None, bare)
        if exact is not None:
            return exact
    approx = _bpe("cl100k_base", None)
    if approx is not None:
        return TokenCounter("cl100k_base (approximation)", approx.count, exact=False)
    return TokenCounter("words and punctuation (approximation)", fake_count_tokens, exact=False)
