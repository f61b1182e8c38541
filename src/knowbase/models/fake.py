"""Scripted fake chat model and deterministic fake embedder, for tests (yours and ours).

Like pydantic-ai's ``TestModel`` or simonw/llm's ``MockModel``::

    chat = ChatModel(FakeChat(["first reply", "second reply"]))
    chat.chat("hi").text        # 'first reply'
    chat.backend.calls[0]       # (messages, options) of the first call

    echo = FakeChat(lambda messages, options: messages[-1].content.upper())
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from knowbase.errors import KnowbaseError
from knowbase.models.base import ChatOptions, ChatResult, Message, ToolCall, Usage

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import ModelSpec, Settings

Reply = str | ChatResult | ToolCall | Exception
Responder = Callable[[Sequence[Message], ChatOptions], Reply]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def fake_count_tokens(text: str) -> int:
    """Tokens as the fakes count them: words and punctuation marks."""
    return len(_TOKEN.findall(text))


class FakeChat:
    """A chat backend that returns scripted replies.

    Args:
        responses: a list of replies used in order (a ``str``, a full ``ChatResult``, a
            ``ToolCall``, or an ``Exception`` to raise), or one function
            ``(messages, options) -> reply`` called for every request.
        default: reply when the list is used up; without it, running out raises
            :class:`KnowbaseError`.
        name: the model name shown in traces.
        context_window: raise ContextLengthError above this many (fake) tokens.

    Attributes:
        calls: every ``(messages, options)`` received, in order.
    """

    backend_name = "fake"

    def __init__(self, responses: Iterable[Reply] | Responder = (), *, default: Reply | None = None,
                 name: str = "scripted", context_window: int | None = None) -> None:
        self.model_name = name
        self._fn: Responder | None = responses if callable(responses) else None
        self._queue: deque[Reply] = deque() if callable(responses) else deque(responses)
        self.default = default
        self.context_window = context_window
        self.calls: list[tuple[list[Message], ChatOptions]] = []

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings | None = None, **kwargs: Any) -> FakeChat:
        """``fake`` echoes the last user message; ``fake:TEXT`` always answers TEXT."""
        if spec.name:
            return cls(default=spec.name, name="fixed", **kwargs)
        return cls(lambda msgs, _opts: "echo: " + next((m.content for m in reversed(msgs) if m.role == "user"), ""),
                   name="echo", **kwargs)

    def count_tokens(self, text: str) -> int:
        return fake_count_tokens(text)

    def push(self, *replies: Reply) -> None:
        """Queue more replies."""
        self._queue.extend(replies)

    def execute(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]:
        self.calls.append((list(messages), options))
        prompt_tokens = sum(fake_count_tokens(m.content) for m in messages)
        if self.context_window and prompt_tokens > self.context_window:
            from knowbase.errors import ContextLengthError

            raise ContextLengthError(
                f"prompt is {prompt_tokens} tokens but the context window is {self.context_window}",
                prompt_tokens=prompt_tokens, context_window=self.context_window)
        if self._fn is not None:
            reply = self._fn(messages, options)
        elif self._queue:
            reply = self._queue.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise KnowbaseError("FakeChat has no scripted response left", calls=len(self.calls))
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, ToolCall):
            reply = ChatResult("", tool_calls=(reply,), finish_reason="tool_calls")
        if isinstance(reply, ChatResult):
            if reply.text:
                yield reply.text
            yield reply
            return
        text = str(reply)
        for stop in options.stop:
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut]
        finish = "stop"
        if options.max_tokens is not None:
            pieces = _TOKEN.findall(text)
            if len(pieces) > options.max_tokens:
                # keep the text up to the end of the max_tokens-th token
                ends = [m.end() for m in _TOKEN.finditer(text)]
                text, finish = text[: ends[options.max_tokens - 1]], "length"
        yield from re.findall(r"\S+\s*|\s+", text)
        yield ChatResult(text, finish_reason=finish, usage=Usage(prompt_tokens, fake_count_tokens(text)))


def json_reply(obj: Any) -> str:
    """A convenience for scripting structured-output replies: ``json.dumps(obj)``."""
    return json.dumps(obj, ensure_ascii=False)


class FakeEmbedder:
    """A deterministic embedding backend: hashed word and character-trigram features.

    Texts that share words get similar vectors, so retrieval tests behave sensibly
    without a real model. Same text, same vector, on every machine.

    Args:
        dim: embedding width (default 64).
        max_seq_length: tokens kept (whitespace words); the rest is truncated.
    """

    backend_name = "fake"
    languages: tuple[str, ...] | None = None

    def __init__(self, dim: int = 64, *, max_seq_length: int = 256) -> None:
        self.dim = dim
        self.max_seq_length = max_seq_length
        self.model_name = f"hash-{dim}"
        self.encoded = 0  # texts encoded so far (for tests of incremental ingest)

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings | None = None, **kwargs: Any) -> FakeEmbedder:
        """``fake`` (64 dims) or ``fake:N`` / ``fake:hash-N`` (N dims)."""
        digits = re.sub(r"\D", "", spec.name or "")
        return cls(int(digits) if digits else 64, **kwargs)

    def count_tokens(self, text: str) -> int:
        return fake_count_tokens(text)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())[: self.max_seq_length]
            feats = words + [w[i:i + 3] for w in words if len(w) > 3 for i in range(len(w) - 2)]
            for feat in feats:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            if not feats:
                out[row, 0] = 1.0
        self.encoded += len(texts)
        return out
