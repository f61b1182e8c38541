"""In-process GGUF models through llama-cpp-python.

Model strings: ``llamacpp:qwen2.5-coder-1.5b`` (the default chat model),
``llamacpp:smollm2-135m``, or ``llamacpp:/path/to/any.gguf``.

How a call runs (:meth:`LlamaCppChat.execute`):

1. the messages are rendered with the GGUF's own chat template (``tokenizer.chat_template``
   in its metadata, rendered by llama-cpp-python's ``Jinja2ChatFormatter``; ChatML when the
   file has none) and tokenized by the model's tokenizer: the template's markers as special
   tokens, message content as plain text (:mod:`knowbase.models.llamacpp_prompt`);
2. a prompt that does not fit the context window raises :class:`ContextLengthError` with
   both counts, or, with ``options.truncate``, loses its oldest non-system messages until
   it fits;
3. ``json_schema`` becomes a GBNF grammar (``LlamaGrammar.from_json_schema``), so the
   sampler can only produce JSON that follows the schema, even from SmolLM2-135M;
   ``grammar`` (raw GBNF) is passed through; ``tools`` become a grammar over
   ``{"tool": <name>, "arguments": {...}}`` or ``{"answer": "..."}`` (see :func:`tool_schema`);
4. tokens stream from ``Llama.create_completion(stream=True)``.

Loaded models are kept in a small process-wide LRU (:data:`MODELS`, keyed by path and
``n_ctx``) and each is guarded by a lock, because a ``Llama`` object is not thread-safe.
Reusing the same ``Llama`` instance keeps llama.cpp's KV-cache prefix reuse effective:
when a prompt starts with the same tokens as the previous one (same system prompt,
same few-shot examples, a growing conversation) only the new suffix is evaluated.
Threads: ``n_threads`` = the CPU cores this process may use, unless configured
(see :meth:`LlamaCppChat.from_spec`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.errors import ContextLengthError, ModelFileError, ModelUnavailableError, UserError
from knowbase.models.base import ChatOptions, ChatResult, Message, ToolCall, ToolSpec, Usage
from knowbase.models.loaded import LoadedCache

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import ModelSpec, Settings

DEFAULT_N_CTX = 4096
DEFAULT_PROMPT_LOOKUP = 0
"""Prompt-lookup decoding off by default (see ``benches/kb_answers.py --prompt-lookup``)."""


def cpu_cores() -> int:
    """CPU cores this process may run on (``sched_getaffinity``, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --- loaded models ---------------------------------------------------------------------------------
@dataclass(slots=True)
class LoadedModel:
    """A loaded ``Llama`` with its lock and chat template (one per path and n_ctx)."""

    llama: Any
    lock: threading.Lock
    formatter: Any
    path: Path
    n_ctx: int
    drafts: bool = False
    """Loaded for a draft model (per-position logits switched on only while generating)."""


class ModelCache(LoadedCache[LoadedModel]):
    """A bounded LRU of loaded GGUF models, keyed by ``(path, n_ctx, options)``.

    Args:
        size: models kept loaded at once (the least recently used is released).
    """

    def load(self, path: Path, *, n_ctx: int, **llama_kwargs: Any) -> LoadedModel:
        """The loaded model for ``path`` (loading it on first use).

        Raises:
            ModelUnavailableError: llama-cpp-python is not installed.
            ModelFileError: the file is missing or llama.cpp cannot load it.
        """
        key = (str(path.resolve()), n_ctx, tuple(sorted(llama_kwargs.items())))
        return self.get(key, lambda: load_gguf(path, n_ctx=n_ctx, **llama_kwargs))


MODELS = ModelCache()
"""The process-wide cache of loaded GGUF models."""


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelUnavailableError("llama-cpp-python is not installed (pip install 'knowbase[local]')",
                                    package="llama-cpp-python") from exc
    _quiet_native_log(llama_cpp)
    return llama_cpp


class _ThreadQuietStream:
    """``sys.stderr`` stand-in that drops what one thread writes and passes on the rest."""

    def __init__(self, real: Any, thread: int) -> None:
        self._real, self._thread = real, thread

    def write(self, text: str) -> int:
        return len(text) if threading.get_ident() == self._thread else self._real.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextlib.contextmanager
def _this_thread_quiet() -> Iterator[None]:
    """Drop the calling thread's writes to ``sys.stderr`` (llama-cpp-python's load messages
    with ``verbose=True``); other threads' output is untouched."""
    import sys

    real = sys.stderr
    sys.stderr = _ThreadQuietStream(real, threading.get_ident())
    try:
        yield
    finally:
        if isinstance(sys.stderr, _ThreadQuietStream):
            sys.stderr = real


_LOG_CALLBACK: list[Any] = []  # keeps the ctypes callback alive for the process (set once)


def _quiet_native_log(llama_cpp: Any) -> None:
    """Route llama.cpp's native log to a callback that drops it (load and decode failures
    still surface as exceptions from llama-cpp-python).

    Why not ``Llama(verbose=False)``: that silences loading with llama-cpp-python's
    ``suppress_stdout_stderr``, which points the process's file descriptors 1 and 2 (and
    ``sys.stdout``) at ``/dev/null`` while the model loads. knowbase loads the model in a
    background thread while retrieval runs (:class:`knowbase.knowledge.answer.Preload`), so
    the sources printed meanwhile by the main thread vanished. Loading with ``verbose=True``
    and this callback keeps the output quiet without touching the descriptors.
    """
    if _LOG_CALLBACK:
        return
    import ctypes

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        return None

    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    _LOG_CALLBACK.append(_callback)


def load_gguf(path: Path, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None, prompt_lookup: int = 0,
              **llama_kwargs: Any) -> LoadedModel:
    """Load a GGUF file quietly (llama.cpp's logging off) and prepare its chat template.

    Args:
        path: the GGUF file.
        n_ctx: context window in tokens (capped at the model's training context).
        n_threads: threads for generation and prompt evaluation; default all cores.
        prompt_lookup: tokens drafted per step by prompt-lookup decoding; 0 turns it off
            (see :mod:`knowbase.models.llamacpp_state`).
        **llama_kwargs: passed to ``llama_cpp.Llama`` (``n_batch``, ``seed``...).

    Raises:
        ModelFileError: missing, not a GGUF, or llama.cpp refuses it (``path``).
    """
    from knowbase.models.catalog import check_gguf

    check_gguf(path)
    llama_cpp = _import_llama_cpp()
    threads = n_threads or cpu_cores()
    holder: list[Any] = []
    if prompt_lookup > 0:
        from knowbase.models.llamacpp_state import prompt_lookup_draft

        # logits_all sizes the score buffer for every position; the draft switches the
        # per-position logits on only after the prompt (see llamacpp_state)
        llama_kwargs.update(draft_model=prompt_lookup_draft(holder, num_pred_tokens=prompt_lookup), logits_all=True)
    try:
        # verbose=True: no descriptor redirection while loading (see _quiet_native_log); the
        # Python-side messages of llama-cpp-python are switched off right after
        with _this_thread_quiet():
            llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                    n_gpu_layers=0, verbose=True, **llama_kwargs)
        llama.verbose = False
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelFileError(f"llama.cpp cannot load {path}: {exc} (corrupt or unsupported GGUF?)",
                             path=str(path)) from exc
    holder.append(llama)
    return LoadedModel(llama=llama, lock=threading.Lock(), formatter=_formatter(llama), path=path, n_ctx=llama.n_ctx(),
                       drafts=prompt_lookup > 0)


def _formatter(llama: Any) -> Any:
    """The GGUF's chat template as a ``Jinja2ChatFormatter``; llama-cpp-python's ChatML formatter if none."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return llama_chat_format.format_chatml
    eos_id, bos_id = llama.token_eos(), llama.token_bos()

    def text(token: int) -> str:
        return llama.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

    return llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=text(eos_id), bos_token=text(bos_id),
                                                 stop_token_ids=[eos_id] if eos_id >= 0 else None)


def check_grammar(llama: Any, gbnf: str) -> None:
    """Parse a GBNF grammar once before sampling with it.

    llama.cpp returns a null sampler for a grammar it cannot parse, and adding that to
    a sampler chain crashes the process; parsing here turns it into an error.

    Raises:
        UserError: the grammar does not parse (``field="grammar"``).
    """
    llama_cpp = _import_llama_cpp()
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        raise UserError("the grammar does not parse as GBNF (llama.cpp grammars/README.md describes the format)",
                        field="grammar", grammar=gbnf[:500])
    llama_cpp.llama_sampler_free(sampler)


# --- tools as a grammar ----------------------------------------------------------------------------
def _tools_prompt() -> str:
    return resources.files("knowbase.models").joinpath("templates/tools.txt").read_text(encoding="utf-8")


def tool_schema(tools: Sequence[ToolSpec], tool_choice: str | None = None) -> dict[str, Any]:
    """The JSON Schema a tool-using reply must follow.

    Each tool is one alternative ``{"tool": <its name>, "arguments": <its parameters>}``;
    unless ``tool_choice`` is ``required`` or a tool name, ``{"answer": "<text>"}`` is
    allowed too. Example::

        >>> tool_schema([ToolSpec("add", "add two numbers", {"type": "object"})], "required")
        {'anyOf': [{'type': 'object', 'properties': {'tool': {'const': 'add'}, 'arguments': {'type': 'object'}}, 'required': ['tool', 'arguments']}]}
    """
    chosen = [t for t in tools if t.name == tool_choice] if tool_choice not in (None, "auto", "required") else list(tools)
    if not chosen:
        raise UserError(f"tool_choice {tool_choice!r} names no offered tool", field="tool_choice")
    variants: list[dict[str, Any]] = [
        {"type": "object", "properties": {"tool": {"const": t.name}, "arguments": t.parameters or {"type": "object"}},
         "required": ["tool", "arguments"]} for t in chosen]
    if tool_choice in (None, "auto"):
        variants.append({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})
    return {"anyOf": variants}


def _with_tools(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[Message]:
    listing = "\n".join(f"- {t.name}: {t.description} Arguments (JSON Schema): {json.dumps(t.parameters)}"
                        for t in tools)
    instructions = _tools_prompt().replace("{tools}", listing).strip()
    out = list(messages)
    if out and out[0].role == "system":
        out[0] = Message.system(f"{out[0].content}\n\n{instructions}")
    else:
        out.insert(0, Message.system(instructions))
    return out


def _wire(message: Message) -> dict[str, str]:
    """A message as the dict a chat template expects (tool turns in our JSON call format)."""
    if message.role == "assistant" and message.tool_calls:
        call = message.tool_calls[0]
        return {"role": "assistant", "content": json.dumps({"tool": call.name, "arguments": call.arguments})}
    if message.role == "tool":
        return {"role": "user", "content": f"Result of tool {message.name or 'call'}: {message.content}"}
    return {"role": message.role, "content": message.content}


# --- the backend -------------------------------------------------------------------------------------
class LlamaCppChat:
    """Chat backend running a GGUF model in this process (llama-cpp-python).

    Args:
        path: the GGUF file.
        name: the model name in traces (catalogue name or file name).
        n_ctx: context window, tokens (default 4096, or the catalogue's value).
        models: the loaded-model cache (default: the process-wide :data:`MODELS`).
        prefix_cache: a folder for the KV state after the system prompt, so that a new
            process skips reading it again (None: off; see
            :class:`~knowbase.models.llamacpp_state.PrefixStateCache`).
        sha256: the model file's SHA-256 when known (keys the prefix cache).
        **llama_kwargs: passed to ``llama_cpp.Llama`` (``n_threads``, ``n_batch``,
            ``prompt_lookup``: tokens drafted per step by prompt-lookup decoding, 0 = off).

    The file is loaded on the first call (or on :meth:`count_tokens` /
    :attr:`context_window`), not when the object is built.
    """

    backend_name = "llamacpp"

    def __init__(self, path: Path, *, name: str | None = None, n_ctx: int = DEFAULT_N_CTX,
                 models: ModelCache | None = None, prefix_cache: Path | None = None, sha256: str | None = None,
                 **llama_kwargs: Any) -> None:
        self.path = Path(path)
        self.model_name = name or self.path.name
        self.n_ctx = n_ctx
        self._models = MODELS if models is None else models
        self._llama_kwargs = llama_kwargs
        self._prefix_cache = prefix_cache
        self._sha256 = sha256
        self.prefix_restored: bool | None = None
        """Whether the last call's system prefix came from the disk cache (None: not used)."""

    def __repr__(self) -> str:
        return f"LlamaCppChat({self.model_name!r}, n_ctx={self.n_ctx})"

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings, **kwargs: Any) -> LlamaCppChat:
        """Build from ``llamacpp:NAME`` (catalogue name, default ``qwen2.5-coder-1.5b``) or ``llamacpp:/path.gguf``.

        The Qwen GGUF is assembled from its part packages on first use (see
        :mod:`knowbase.models.catalog`). Keyword args: ``n_ctx``, ``n_threads``, ``n_batch``...
        ``n_threads`` defaults to ``n_threads`` in ``config.toml``, else ``$KNOWBASE_N_THREADS``,
        else all cores. ``prompt_lookup`` (tokens drafted per step, 0 = off) defaults to
        ``prompt_lookup`` in ``config.toml``, else ``$KNOWBASE_PROMPT_LOOKUP``, else
        :data:`DEFAULT_PROMPT_LOOKUP`. The KV state after the system prompt is kept in
        ``<models dir>/kv-cache`` unless ``prefix_cache = false`` in ``config.toml`` (or
        ``$KNOWBASE_PREFIX_CACHE=0``). On a machine whose cores are busy with other work, fewer threads
        can be much faster: llama.cpp's threads wait for each other at every layer, so one
        descheduled thread stalls the rest (measured here: SmolLM2 on 2 busy cores, 30
        tokens took 30 s with 2 threads and 4 s with 1).

        Raises:
            UnknownModelError: not a catalogue name nor a path.
            ModelFileError: missing, corrupt, or checksum mismatch.
            ModelUnavailableError: the package holding the file is not installed.
        """
        from knowbase.models.catalog import resolve_gguf

        path, entry = resolve_gguf(spec.name or "qwen2.5-coder-1.5b", settings)
        kwargs.setdefault("n_ctx", entry.n_ctx if entry else DEFAULT_N_CTX)
        threads = settings.extra.get("n_threads") or os.environ.get("KNOWBASE_N_THREADS")
        if threads and "n_threads" not in kwargs:
            try:
                kwargs["n_threads"] = max(1, int(threads))
            except ValueError as exc:
                from knowbase.errors import ConfigError

                raise ConfigError(f"n_threads must be a whole number, got {threads!r}", field="n_threads") from exc
        lookup = settings.extra.get("prompt_lookup", os.environ.get("KNOWBASE_PROMPT_LOOKUP"))
        if "prompt_lookup" not in kwargs:
            try:
                kwargs["prompt_lookup"] = max(0, int(lookup)) if lookup not in (None, "") else DEFAULT_PROMPT_LOOKUP
            except (TypeError, ValueError) as exc:
                from knowbase.errors import ConfigError

                raise ConfigError(f"prompt_lookup must be a whole number of tokens, got {lookup!r}",
                                  field="prompt_lookup") from exc
        use_cache = settings.extra.get("prefix_cache", os.environ.get("KNOWBASE_PREFIX_CACHE", "1"))
        if "prefix_cache" not in kwargs and str(use_cache).lower() not in ("0", "false", "no", "off"):
            kwargs["prefix_cache"] = settings.models_dir / "kv-cache"
        kwargs.setdefault("sha256", getattr(entry.source, "sha256", None) if entry else None)
        return cls(path, name=entry.name if entry else path.name, **kwargs)

    # --- loading and tokens ----------------------------------------------------------------------
    def loaded(self) -> LoadedModel:
        """The loaded model (from the cache, loading it if needed)."""
        return self._models.load(self.path, n_ctx=self.n_ctx, **self._llama_kwargs)

    @property
    def context_window(self) -> int:
        """The context window, tokens."""
        return self.loaded().n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's tokenizer (no BOS)."""
        model = self.loaded()
        with model.lock:
            return len(model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render(self, messages: Sequence[Message], model: LoadedModel | None = None) -> tuple[list[int], Any]:
        """The prompt tokens for ``messages`` (chat template applied) and the formatter's response.

        Message content is tokenized as text: a ``<|im_start|>`` inside a document, tool
        result or question never becomes a control token (see :mod:`knowbase.models.llamacpp_prompt`).
        """
        from knowbase.models.llamacpp_prompt import tokenize_chat

        model = model or self.loaded()
        try:
            # only the template's own markers become special tokens; content stays text
            return tokenize_chat(model.llama, model.formatter, [_wire(m) for m in messages])
        except Exception as exc:  # jinja2 errors (raise_exception in a template, bad roles)
            raise UserError(f"{self.model_name}: the chat template refused these messages: {exc}",
                            field="messages") from exc

    def fit(self, messages: Sequence[Message], options: ChatOptions,
            model: LoadedModel | None = None) -> tuple[list[Message], list[int], Any]:
        """Render ``messages``, truncating the oldest non-system ones when asked and needed.

        With ``options.truncate``, messages go until the prompt leaves room for
        ``min(max_tokens, n_ctx // 2)`` new tokens (the last message is always kept).

        Raises:
            ContextLengthError: the prompt does not fit (``prompt_tokens``, ``context_window``).
        """
        model = model or self.loaded()
        n_ctx = model.n_ctx
        msgs = list(messages)
        tokens, response = self.render(msgs, model)
        if options.truncate:
            budget = n_ctx - min(options.max_tokens or 0, n_ctx // 2)
            while len(tokens) > budget:
                droppable = [i for i, m in enumerate(msgs[:-1]) if m.role != "system"]
                if not droppable:
                    break
                del msgs[droppable[0]]
                tokens, response = self.render(msgs, model)
        if len(tokens) >= n_ctx:
            raise ContextLengthError(
                f"{self.model_name}: the prompt is {len(tokens)} tokens but the context window is {n_ctx} "
                f"(shorten it, or pass truncate=True to drop the oldest messages)",
                prompt_tokens=len(tokens), context_window=n_ctx)
        return msgs, tokens, response

    def _restore_prefix(self, model: LoadedModel, msgs: Sequence[Message], prompt: list[int]) -> None:
        """Restore the KV state after the system prompt from disk when the loaded model does
        not hold it already (a new process). Caller holds ``model.lock``."""
        self.prefix_restored = None
        if self._prefix_cache is None or len(msgs) < 2 or msgs[0].role != "system":
            return
        try:
            alone, _ = self.render(msgs[:1], model)
        except UserError:
            return
        n = 0
        for a, b in zip(alone, prompt):
            if a != b:
                break
            n += 1
        if n < 16 or n >= len(prompt):
            return
        llama = model.llama
        if llama.n_tokens >= n and list(llama.input_ids[:n]) == prompt[:n]:
            return  # already in memory
        from knowbase.models.llamacpp_state import PrefixStateCache, model_identity

        cache = PrefixStateCache(self._prefix_cache, model_identity(self.path, self._sha256))
        self.prefix_restored = cache.restore(llama, prompt[:n])

    # --- the one method --------------------------------------------------------------------------
    def execute(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]:
        """Generate a reply; yields text deltas then one :class:`ChatResult`.

        Raises:
            ContextLengthError: the prompt does not fit the context window.
            UserError: an invalid JSON schema, grammar or tool choice.
            ModelFileError: the model cannot be loaded.
        """
        llama_cpp = _import_llama_cpp()
        schema = options.json_schema
        use_tools = bool(options.tools) and options.tool_choice != "none"
        if use_tools:
            messages = _with_tools(messages, options.tools)
            schema = tool_schema(options.tools, options.tool_choice)
        gbnf: str | None = None
        if options.grammar:
            gbnf = options.grammar
        elif schema is not None:
            try:
                gbnf = llama_cpp.llama_grammar.json_schema_to_gbnf(json.dumps(schema))
            except (ValueError, KeyError, TypeError, AssertionError, NotImplementedError, RecursionError) as exc:
                raise UserError(f"cannot turn the JSON schema into a grammar: {exc}", field="json_schema") from exc
        elif options.json_mode:
            gbnf = llama_cpp.llama_grammar.JSON_GBNF
        grammar = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False) if gbnf else None

        model = self.loaded()
        # The lock is held while deltas are yielded: consume or close() the stream.
        with model.lock:
            msgs, prompt, response = self.fit(messages, options, model)
            if model.drafts:
                model.llama._logits_all = False  # the draft turns it on after the prompt (llamacpp_state)
            self._restore_prefix(model, msgs, prompt)
            if gbnf:
                check_grammar(model.llama, gbnf)
            stop = list(options.stop) + ([response.stop] if isinstance(response.stop, str) else list(response.stop or []))
            kwargs: dict[str, Any] = {
                "max_tokens": options.max_tokens if options.max_tokens is not None else -1,
                "temperature": options.temperature, "stop": [s for s in stop if s], "seed": options.seed,
                "grammar": grammar, "stopping_criteria": response.stopping_criteria, "stream": True,
            }
            if options.top_p is not None:
                kwargs["top_p"] = options.top_p
            parts: list[str] = []
            finish = "stop"
            try:
                for chunk in model.llama.create_completion(prompt, **kwargs):
                    choice = chunk["choices"][0]
                    piece = choice.get("text") or ""
                    if piece:
                        parts.append(piece)
                        if not use_tools:
                            yield piece
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            except (RuntimeError, ValueError) as exc:
                raise ModelFileError(f"{self.model_name}: llama.cpp failed while generating: {exc}",
                                     path=str(self.path)) from exc
            text = "".join(parts)
            completion_tokens = len(model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0
        usage = Usage(len(prompt), completion_tokens)
        if use_tools:
            reply, calls = _parse_tool_reply(text)
            if calls:
                yield ChatResult("", tool_calls=calls, finish_reason="tool_calls", usage=usage)
                return
            if reply:
                yield reply
            yield ChatResult(reply, finish_reason=finish, usage=usage)
            return
        yield ChatResult(text, finish_reason=finish, usage=usage)


def _parse_tool_reply(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """``(answer text, tool calls)`` from a grammar-constrained tool reply; raw text if it is cut short."""
    from knowbase.safety.jsonsafe import JSONLimitError, loads

    try:
        data = loads(text)
    except (json.JSONDecodeError, JSONLimitError):
        return text, ()
    if isinstance(data, dict) and isinstance(data.get("tool"), str):
        raw_args = data.get("arguments")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        return "", (ToolCall(name=data["tool"], arguments=args, id=f"call_{uuid.uuid4().hex[:12]}"),)
    if isinstance(data, dict) and "answer" in data:
        return str(data["answer"]), ()
    return text, ()
