"""Shared model types and the two extension points: chat backends and embedding backends.

A backend implements one method:

* chat: :meth:`ChatBackend.execute` yields text deltas (``str``) and ends with exactly
  one :class:`ChatResult`.
* embeddings: :meth:`EmbeddingBackend.encode` maps ``n`` texts to an ``(n, dim)`` array.

Everything else (tracing, caching, async forms, streaming helpers, batching,
normalisation) lives once in the concrete wrappers :class:`ChatModel` and
:class:`Embedder`, which every backend shares.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from knowbase.errors import KnowbaseError, OutputParseError

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.tracing.store import TraceStore

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for: tool ``name`` with JSON ``arguments``."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: the text.
        tool_calls: calls an assistant message made.
        tool_call_id: for ``tool`` messages, the id of the call this answers.
        name: optional author or tool name.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str, tool_calls: Sequence[ToolCall] = ()) -> Message:
        return cls("assistant", content, tuple(tool_calls))

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str | None = None, name: str | None = None) -> Message:
        return cls("tool", content, (), tool_call_id, name)

    def to_openai(self) -> dict[str, Any]:
        """This message in the OpenAI chat-completions wire format."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id or f"call_{i}", "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for i, c in enumerate(self.tool_calls)
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name and self.role == "tool":
            out["name"] = self.name
        return out


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call (tokens of the model's own tokenizer)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """Generation options. Backends ignore what they cannot do, except where noted.

    Attributes:
        temperature: sampling temperature; 0 is greedy.
        max_tokens: most tokens to generate; None means the backend's default.
        stop: stop strings (not included in the output).
        seed: sampling seed, for repeatable runs.
        json_schema: JSON Schema the output must follow (llama.cpp: grammar-constrained;
            OpenAI-compatible: ``response_format`` json_schema).
        json_mode: output any JSON object (``response_format`` json_object).
        tools: tools the model may call.
        tool_choice: ``auto``, ``none``, ``required`` or a tool name.
        grammar: a GBNF grammar (llama.cpp only; other backends ignore it).
        truncate: when the prompt overflows the context window, drop the oldest
            non-system messages instead of raising :class:`ContextLengthError`.
        top_p: nucleus sampling.
    """

    temperature: float = 0.0
    max_tokens: int | None = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    grammar: str | None = None
    truncate: bool = False
    top_p: float | None = None

    def merged(self, **changes: Any) -> ChatOptions:
        """A copy with the non-None ``changes`` applied (lists become tuples)."""
        clean: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                                 for k, v in changes.items() if v is not None}
        return replace(self, **clean) if clean else self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for traces and cache keys."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value in (None, (), False):
                continue
            if name == "tools":
                value = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in value]
            out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What a chat call returns.

    Attributes:
        text: the generated text.
        tool_calls: tool calls the model made.
        finish_reason: ``stop``, ``length``, ``tool_calls`` or ``error``.
        usage: prompt and completion tokens.
        model: the model string that answered.
        latency_ms: wall time of the call, milliseconds.
        cached: served from the response cache.
        trace_id: the trace this call was recorded under, if tracing is on.
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    latency_ms: float = 0.0
    cached: bool = False
    trace_id: str | None = None

    def json(self) -> Any:
        """Parse :attr:`text` as JSON (depth-bounded, :func:`knowbase.safety.jsonsafe.loads`); raises
        :class:`OutputParseError` with the raw text."""
        from knowbase.safety.jsonsafe import loads

        try:
            return loads(self.text)
        except json.JSONDecodeError as exc:
            raise OutputParseError(f"model output is not JSON: {exc}", raw=self.text) from exc


@runtime_checkable
class ChatBackend(Protocol):
    """The one method a chat backend implements (plus two descriptive attributes).

    ``execute`` yields text deltas as they are generated and then exactly one
    :class:`ChatResult` (whose ``text`` is the whole output). It raises a
    :class:`~knowbase.errors.KnowbaseError` subclass on failure.
    """

    backend_name: str
    model_name: str

    def execute(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]: ...


@runtime_checkable
class EmbeddingBackend(Protocol):
    """The one method an embedding backend implements, plus its description.

    Attributes:
        dim: embedding width.
        max_seq_length: longest input in the model's tokens; longer inputs are truncated.
        languages: ISO codes the model was trained for, or None when multilingual/unknown.
    """

    backend_name: str
    model_name: str
    dim: int
    max_seq_length: int
    languages: tuple[str, ...] | None

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


MessagesLike = str | Message | Sequence[Message] | Sequence[dict[str, Any]]


def to_messages(messages: MessagesLike, system: str | None = None) -> list[Message]:
    """Normalise a prompt string, a message, or a list of messages/dicts to ``list[Message]``."""
    if isinstance(messages, str):
        out = [Message.user(messages)]
    elif isinstance(messages, Message):
        out = [messages]
    else:
        out = [m if isinstance(m, Message) else Message(m["role"], m.get("content") or "") for m in messages]
    if system is not None:
        out = [Message.system(system), *[m for m in out if m.role != "system"]]
    return out


class ChatStream(Iterator[str]):
    """An iterator of text deltas; after it is exhausted :attr:`result` holds the ChatResult."""

    def __init__(self, source: Iterator[str | ChatResult]) -> None:
        self._source = source
        self.result: ChatResult | None = None

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        while True:
            item = next(self._source)
            if isinstance(item, ChatResult):
                self.result = item
                continue
            return item

    def close(self) -> None:
        """Stop generating now: closes the backend's iterator, which frees the model (a local
        model's lock is held while deltas are pending). Later iteration stops at once."""
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def finish(self) -> ChatResult:
        """Consume what is left and return the final result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


class ChatModel:
    """A chat backend with tracing, an optional response cache, streaming and async forms.

    Build one with :func:`knowbase.models.registry.get_chat_model`, or wrap any backend::

        model = ChatModel(FakeChat(["Paris"]))
        model.chat("Capital of France?").text   # 'Paris'

    Args:
        backend: anything implementing :class:`ChatBackend`.
        tracer: where calls are recorded; None disables tracing for this model.
        cache: an optional response cache with ``get(key) -> ChatResult | None`` and
            ``put(key, result)`` (see :mod:`knowbase.models.cache`).
        defaults: default :class:`ChatOptions` for every call.
    """

    def __init__(self, backend: ChatBackend, *, tracer: TraceStore | None = None, cache: Any = None,
                 defaults: ChatOptions | None = None) -> None:
        self.backend = backend
        self.tracer = tracer
        self.cache = cache
        self.defaults = defaults or ChatOptions()

    @property
    def spec(self) -> str:
        """The model string, ``backend:model``."""
        return f"{self.backend.backend_name}:{self.backend.model_name}"

    def __repr__(self) -> str:
        return f"ChatModel({self.spec!r})"

    # --- token helpers -------------------------------------------------------------
    @property
    def context_window(self) -> int | None:
        """The context window in tokens, if the backend knows it."""
        return getattr(self.backend, "context_window", None)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the backend's tokenizer; about len/4 when it has none."""
        counter: Callable[[str], int] | None = getattr(self.backend, "count_tokens", None)
        return counter(text) if counter else max(1, len(text) // 4)

    # --- calls -----------------------------------------------------------------------
    def options(self, options: ChatOptions | None = None, **overrides: Any) -> ChatOptions:
        return (options or self.defaults).merged(**overrides)

    def chat(self, messages: MessagesLike, *, system: str | None = None, options: ChatOptions | None = None,
             **overrides: Any) -> ChatResult:
        """Run one chat call and return the whole result.

        Args:
            messages: a prompt string, a Message, or a list of Messages (or OpenAI dicts).
            system: a system prompt to put first (replaces any system message given).
            options: full options; ``**overrides`` (temperature=, max_tokens=, stop=, seed=,
                json_schema=, tools=...) change single fields.

        Raises:
            KnowbaseError: a subclass naming what failed (see :mod:`knowbase.errors`).
        """
        return self.stream(messages, system=system, options=options, **overrides).finish()

    def stream(self, messages: MessagesLike, *, system: str | None = None, options: ChatOptions | None = None,
               **overrides: Any) -> ChatStream:
        """Like :meth:`chat`, but returns a :class:`ChatStream` of text deltas."""
        msgs = to_messages(messages, system)
        opts = self.options(options, **overrides)
        return ChatStream(self._run(msgs, opts))

    def _run(self, msgs: list[Message], opts: ChatOptions) -> Iterator[str | ChatResult]:
        from knowbase.safety.deadline import check_cancelled
        from knowbase.tracing.context import current_ids

        trace_id, span_id = current_ids()
        key = None
        if self.cache is not None:
            key = self.cache.key(self.spec, msgs, opts)
            hit = self.cache.get(key)
            if hit is not None:
                hit = replace(hit, cached=True, latency_ms=0.0, trace_id=trace_id)
                self._record(msgs, opts, hit, None, time.time(), trace_id, span_id)
                yield hit.text
                yield hit
                return
        started = time.time()
        t0 = time.perf_counter()
        result: ChatResult | None = None
        deltas = 0
        try:
            check_cancelled()  # a tool call that timed out stops its model calls too
            for item in self.backend.execute(msgs, opts):
                if isinstance(item, ChatResult):
                    result = item
                else:
                    check_cancelled()
                    deltas += 1
                    yield item
        except KnowbaseError as exc:
            self._record(msgs, opts, None, exc, started, trace_id, span_id, (time.perf_counter() - t0) * 1000)
            raise
        except GeneratorExit:  # the caller closed the stream (a client went away): logged as cancelled
            if result is None:
                cancelled = KnowbaseError(f"cancelled by the caller after {deltas} deltas")
                self._record(msgs, opts, None, cancelled, started, trace_id, span_id,
                             (time.perf_counter() - t0) * 1000)
            raise
        except Exception as exc:  # a backend bug or an untranslated library error
            err = KnowbaseError(f"{self.spec}: {type(exc).__name__}: {exc}")
            self._record(msgs, opts, None, err, started, trace_id, span_id, (time.perf_counter() - t0) * 1000)
            raise err from exc
        if result is None:
            raise KnowbaseError(f"{self.spec}: backend ended without a result")
        result = replace(result, model=self.spec, latency_ms=(time.perf_counter() - t0) * 1000, trace_id=trace_id)
        if key is not None:
            self.cache.put(key, result)
        self._record(msgs, opts, result, None, started, trace_id, span_id)
        yield result

    def _record(self, msgs: list[Message], opts: ChatOptions, result: ChatResult | None, error: Exception | None,
                started: float, trace_id: str | None, span_id: str | None, latency_ms: float | None = None) -> None:
        if self.tracer is None:
            return
        self.tracer.record_chat(model=self.spec, messages=msgs, options=opts, result=result, error=error,
                                started=started, trace_id=trace_id, span_id=span_id, latency_ms=latency_ms)

    async def achat(self, messages: MessagesLike, **kwargs: Any) -> ChatResult:
        """Async :meth:`chat` (runs the backend in a worker thread; context is kept)."""
        return await asyncio.to_thread(self.chat, messages, **kwargs)

    async def astream(self, messages: MessagesLike, **kwargs: Any) -> AsyncIterator[str]:
        """Async :meth:`stream`: yields text deltas without blocking the event loop."""
        stream = self.stream(messages, **kwargs)
        sentinel = object()
        while True:
            item = await asyncio.to_thread(next, stream, sentinel)
            if item is sentinel:
                return
            yield item  # type: ignore[misc]


class Embedder:
    """An embedding backend with batching, L2 normalisation and tracing.

    Args:
        backend: anything implementing :class:`EmbeddingBackend`.
        tracer: where calls are recorded (one row per :meth:`embed` call); None disables.
        batch_size: texts per forward pass.

    Inputs longer than :attr:`max_seq_length` tokens are truncated by the model: only
    their first ``max_seq_length`` tokens count (256 word pieces for all-MiniLM-L6-v2).
    """

    def __init__(self, backend: EmbeddingBackend, *, tracer: TraceStore | None = None, batch_size: int = 32) -> None:
        self.backend = backend
        self.tracer = tracer
        self.batch_size = batch_size

    @property
    def spec(self) -> str:
        return f"{self.backend.backend_name}:{self.backend.model_name}"

    @property
    def dim(self) -> int:
        return self.backend.dim

    @property
    def max_seq_length(self) -> int:
        return self.backend.max_seq_length

    @property
    def max_input_tokens(self) -> int:
        """Longest text, in :meth:`count_tokens` tokens, that is embedded without truncation:
        :attr:`max_seq_length` less the special tokens the model adds (254 for MiniLM) and
        its longest prompt (``passage: `` for E5)."""
        return self.max_seq_length - int(getattr(self.backend, "special_tokens", 0) or 0) - self.prompt_tokens

    @property
    def languages(self) -> tuple[str, ...] | None:
        return self.backend.languages

    def __repr__(self) -> str:
        return f"Embedder({self.spec!r}, dim={self.dim})"

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer (special tokens excluded)."""
        counter = getattr(self.backend, "count_tokens", None)
        return counter(text) if counter else max(1, len(text.split()))

    @property
    def prompts(self) -> dict[str, str]:
        """Text prompts the model was trained with (``{"query": "query: ", "passage": "passage: "}``
        for E5), from the backend's optional ``prompts`` attribute; empty for most models."""
        prompts = getattr(self.backend, "prompts", None)
        return dict(prompts) if isinstance(prompts, dict) else {}

    @property
    def prompt_tokens(self) -> int:
        """Tokens the longer of the query and passage prompts adds to an input (0 without prompts)."""
        return max((self.count_tokens(p) for p in self.prompts.values()), default=0)

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None, prompt: str = "passage") -> np.ndarray:
        """Embed ``texts``; returns float32 ``(len(texts), dim)``, each row L2-normalised.

        Args:
            texts: the texts (documents, chunks).
            batch_size: texts per backend call (default :attr:`batch_size`).
            prompt: which of the model's :attr:`prompts` to prepend (``passage`` for
                documents, ``query`` for search queries); nothing for a model without one.

        Raises:
            KnowbaseError: the backend failed (the error says which).
        """
        from knowbase.tracing.context import current_ids

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.prompts.get(prompt, "")
        shown = texts
        if prefix:
            texts = [prefix + t for t in texts]
        bs = batch_size or self.batch_size
        started, t0 = time.time(), time.perf_counter()
        trace_id, span_id = current_ids()
        try:
            # length-bucketed batches: sort by length so each batch pads little, restore order below
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            ordered = [texts[i] for i in order]
            parts = [np.asarray(self.backend.encode(ordered[i:i + bs]), dtype=np.float32) for i in range(0, len(texts), bs)]
        except KnowbaseError as exc:
            self._record(shown, None, exc, started, t0, trace_id, span_id)
            raise
        except Exception as exc:
            err = KnowbaseError(f"{self.spec}: {type(exc).__name__}: {exc}")
            self._record(shown, None, err, started, t0, trace_id, span_id)
            raise err from exc
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms == 0, 1.0, norms)
        self._record(shown, out, None, started, t0, trace_id, span_id)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query (with the model's ``query`` prompt, if any); returns float32
        ``(dim,)``, L2-normalised."""
        return self.embed([text], prompt="query")[0]

    def _record(self, texts: list[str], out: np.ndarray | None, error: Exception | None, started: float, t0: float,
                trace_id: str | None, span_id: str | None) -> None:
        if self.tracer is None:
            return
        self.tracer.record_embedding(model=self.spec, texts=texts, error=error, started=started,
                                     latency_ms=(time.perf_counter() - t0) * 1000, trace_id=trace_id, span_id=span_id)
