"""Chat and embeddings over any OpenAI-compatible HTTP endpoint (httpx).

Model strings: ``openai:MODEL@BASE_URL``; the base URL defaults to
``https://api.openai.com/v1``. Works with OpenAI, Ollama (``http://127.0.0.1:11434/v1``),
vLLM, llama.cpp's and llama-cpp-python's servers, DeepSeek and DashScope's compatible
mode. The key comes from ``settings.api_key`` (``KNOWBASE_API_KEY``, ``OPENAI_API_KEY`` or
``api_key`` in ``config.toml``); it is sent as a bearer token and never logged or shown:
every error leaving the transport is passed through :func:`knowbase.redaction.redact_error`
with the key (a server may echo it in its error body), so the message, ``body`` and ``url``
hold ``[REDACTED]`` instead.

Transport behaviour (:class:`HTTPTransport`):

* timeouts: ``settings.connect_timeout`` to connect, ``settings.timeout`` between bytes
  read (seconds);
* retries: up to ``settings.max_retries`` on HTTP 429, 5xx and connection errors, with
  exponential back-off and jitter (``backoff * 2**attempt + uniform(0, backoff)``
  seconds, the "exponential backoff and jitter" scheme of the AWS Architecture Blog,
  2015), honouring ``Retry-After`` (delta-seconds or an HTTP date, RFC 9110 §10.2.3),
  each wait capped at ``max_wait`` seconds. A read timeout is not retried: the model
  is slow, and asking again would double the wait;
* errors: 401/403 :class:`AuthenticationError`, 404 and other 4xx :class:`ModelHTTPError`,
  429 :class:`RateLimitError` (``retry_after``), 5xx :class:`ModelHTTPError` (``status``),
  a body that is not the expected JSON :class:`ModelResponseError` (``body``),
  unreachable :class:`ModelConnectionError` (``url``), a timeout
  :class:`ModelTimeoutError` (``timeout``).

Streaming uses server-sent events. A stream that breaks before ``[DONE]`` (or a final
``finish_reason``) raises :class:`ModelResponseError`; no partial result is returned,
so the call is recorded as failed, never as half an answer.
"""

from __future__ import annotations

import email.utils
import json
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from knowbase.errors import (
    AuthenticationError,
    KnowbaseError,
    ModelConnectionError,
    ModelHTTPError,
    ModelResponseError,
    ModelTimeoutError,
    RateLimitError,
)
from knowbase.models.base import ChatOptions, ChatResult, Message, ToolCall, Usage
from knowbase.redaction import redact_error
from knowbase.safety.jsonsafe import JSONLimitError, loads

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import ModelSpec, Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_BODY_LIMIT = 2000  # characters of an error body kept on the exception

# Widths and input limits of OpenAI's embedding models (platform.openai.com/docs/guides/embeddings).
_OPENAI_EMBEDDINGS = {"text-embedding-3-small": (1536, 8191), "text-embedding-3-large": (3072, 8191),
                      "text-embedding-ada-002": (1536, 8191)}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Examples::

        >>> parse_retry_after("2")
        2.0
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412475.0)
        5.0
        >>> parse_retry_after("soon") is None
        True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HTTPTransport:
    """POSTs JSON to an OpenAI-compatible API with timeouts, retries and error mapping.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (no trailing slash needed).
        api_key: bearer token, or None for servers without auth.
        timeout: read/write timeout, seconds.
        connect_timeout: connect timeout, seconds.
        max_retries: retries after the first attempt, on 429, 5xx and connection errors.
        backoff: base back-off, seconds (doubles per attempt, plus up to ``backoff`` jitter).
        max_wait: cap on any single wait (including Retry-After), seconds.
        transport: an httpx transport (tests use ``httpx.MockTransport``).
        sleep: the function that waits between retries (seconds -> None).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 connect_timeout: float = 10.0, max_retries: int = 3, backoff: float = 0.5, max_wait: float = 60.0,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], Any] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_wait = max_wait
        self._rng = random.Random()
        self._sleep = sleep
        self._secrets: tuple[str, ...] = (api_key,) if api_key else ()
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout), headers=headers,
                                    transport=transport)

    def __repr__(self) -> str:  # never show the key
        return f"HTTPTransport({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _redacted_errors(self) -> Iterator[None]:
        """Errors raised inside leave with the key (and key-like text) redacted."""
        try:
            yield
        except KnowbaseError as exc:
            redact_error(exc, self._secrets)
            raise

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after is not None else self.backoff * 2 ** attempt + self._rng.uniform(0, self.backoff)
        self._sleep(min(delay, self.max_wait))

    def _send(self, path: str, payload: dict[str, Any], *, stream: bool) -> httpx.Response:
        url = f"{self.base_url}/{path.lstrip('/')}"
        request = self._client.build_request("POST", url, json=payload)
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.send(request, stream=stream)
            except httpx.ConnectTimeout as exc:
                if not last:
                    self._wait(attempt, None)
                    continue
                raise ModelTimeoutError(f"timed out connecting to {url} after {self.connect_timeout:g} s",
                                        url=url, timeout=self.connect_timeout) from exc
            except httpx.TimeoutException as exc:
                raise ModelTimeoutError(f"no answer from {url} within {self.timeout:g} s", url=url,
                                        timeout=self.timeout) from exc
            except httpx.TransportError as exc:
                if not last:
                    self._wait(attempt, None)
                    continue
                raise ModelConnectionError(f"cannot reach {url}: {type(exc).__name__}: {exc}", url=url) from exc
            status = response.status_code
            if status < 400:
                return response
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if (status == 429 or status >= 500) and not last:
                response.close()
                self._wait(attempt, retry_after)
                continue
            body = _read_body(response)
            raise _http_error(status, url, body, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` and return the decoded JSON object.

        Raises:
            ModelHTTPError, ModelConnectionError, ModelTimeoutError: see the module docstring.
            ModelResponseError: the body is not a JSON object (``body``).
        """
        with self._redacted_errors():
            response = self._send(path, payload, stream=False)
            try:
                # depth-checked (a hostile server's [[[[...]]]] is an error, not a RecursionError);
                # no size limit: embedding batches are legitimately large
                data = loads(response.text, max_chars=sys.maxsize)
            except (json.JSONDecodeError, UnicodeDecodeError, JSONLimitError) as exc:
                raise ModelResponseError(f"{response.url} answered with malformed JSON: {exc}",
                                         body=response.text[:_BODY_LIMIT], url=str(response.url)) from exc
            if not isinstance(data, dict):
                raise ModelResponseError(f"{response.url} answered with JSON that is not an object",
                                         body=response.text[:_BODY_LIMIT], url=str(response.url))
            return data

    @contextmanager
    def stream_events(self, path: str, payload: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
        """POST and yield the server-sent events' ``data`` objects until ``[DONE]``.

        Retries happen only before the first byte of the body; once events flow, a broken
        connection raises :class:`ModelResponseError` and a stalled one
        :class:`ModelTimeoutError`.
        """
        with self._redacted_errors():
            response = self._send(path, payload, stream=True)
        url = str(response.url)

        def events() -> Iterator[dict[str, Any]]:
            with self._redacted_errors():
                yield from raw_events()

        def raw_events() -> Iterator[dict[str, Any]]:
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # comments (":"), "event:" and blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = loads(data)
                    except (json.JSONDecodeError, JSONLimitError) as exc:
                        raise ModelResponseError(f"{url} sent a malformed stream event: {exc}", body=data[:_BODY_LIMIT],
                                                 url=url) from exc
                    if isinstance(event, dict) and event.get("error"):
                        raise ModelResponseError(f"{url} reported an error mid-stream: {_error_text(event)}",
                                                 body=data[:_BODY_LIMIT], url=url)
                    if isinstance(event, dict):
                        yield event
            except httpx.TimeoutException as exc:
                raise ModelTimeoutError(f"{url} stopped streaming for {self.timeout:g} s", url=url,
                                        timeout=self.timeout) from exc
            except httpx.TransportError as exc:
                raise ModelResponseError(f"the stream from {url} broke mid-way: {type(exc).__name__}: {exc}",
                                         body=None, url=url) from exc

        try:
            yield events()
        finally:
            response.close()


def _read_body(response: httpx.Response) -> str:
    try:
        response.read()
        return response.text[:_BODY_LIMIT]
    except httpx.HTTPError:
        return ""
    finally:
        response.close()


def _error_text(data: Any) -> str:
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err or data)


def _http_error(status: int, url: str, body: str, retry_after: float | None) -> ModelHTTPError:
    try:
        detail = _error_text(loads(body))
    except (json.JSONDecodeError, ValueError, JSONLimitError):
        detail = body.strip().splitlines()[0][:200] if body.strip() else ""
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        return AuthenticationError(f"HTTP {status} from {url}: the API key is missing or wrong{suffix}",
                                   status=status, body=body, url=url, retry_after=None)
    if status == 404:
        return ModelHTTPError(f"HTTP 404 from {url}: model or URL not found{suffix}", status=status, body=body,
                              url=url, retry_after=None)
    if status == 429:
        return RateLimitError(f"HTTP 429 from {url}: rate limited{suffix}", status=status, body=body, url=url,
                              retry_after=retry_after)
    return ModelHTTPError(f"HTTP {status} from {url}{suffix}", status=status, body=body, url=url,
                          retry_after=retry_after)


def _transport_for(spec: ModelSpec, settings: Settings, kwargs: dict[str, Any]) -> HTTPTransport:
    return HTTPTransport(
        spec.base_url or DEFAULT_BASE_URL, api_key=kwargs.pop("api_key", None) or settings.api_key,
        timeout=kwargs.pop("timeout", settings.timeout), connect_timeout=kwargs.pop("connect_timeout", settings.connect_timeout),
        max_retries=kwargs.pop("max_retries", settings.max_retries), backoff=kwargs.pop("backoff", 0.5),
        max_wait=kwargs.pop("max_wait", 60.0), transport=kwargs.pop("transport", None),
        sleep=kwargs.pop("sleep", time.sleep))


# --- chat ------------------------------------------------------------------------------------------
class OpenAIChat:
    """Chat backend for an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the model name the server knows (``gpt-4o-mini``, ``qwen2.5:1.5b``...).
        transport: the :class:`HTTPTransport` to use.
        stream: use SSE streaming (default). Servers that send no usage in a stream
            (llama.cpp's) then get estimated usage: completion tokens = content events,
            prompt tokens = characters / 4. ``stream=False`` asks for one JSON answer with
            exact usage, yielded as a single delta.

    Structured output: ``json_schema`` is sent as ``response_format`` type
    ``json_schema`` (OpenAI, vLLM, Ollama); a server that refuses it (HTTP 400/422, or a
    5xx whose body names ``response_format``, as llama-cpp-python's server answers) is
    asked again once with ``{"type": "json_object", "schema": ...}`` (the form llama.cpp's
    and llama-cpp-python's servers accept), and this model remembers the choice. ``json_mode``
    sends type ``json_object``. Tools use the native ``tools`` field.
    """

    backend_name = "openai"

    def __init__(self, model: str, transport: HTTPTransport, *, stream: bool = True) -> None:
        self.model_name = model
        self.transport = transport
        self.stream = stream
        self._schema_style = "json_schema"

    def __repr__(self) -> str:
        return f"OpenAIChat({self.model_name!r} @ {self.transport.base_url!r})"

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings, **kwargs: Any) -> OpenAIChat:
        """Build from ``openai:MODEL[@BASE_URL]``.

        Keyword args: ``api_key``, ``timeout``, ``connect_timeout``, ``max_retries``, ``backoff``,
        ``max_wait``, ``transport``, ``sleep`` (see :class:`HTTPTransport`; they override settings),
        ``stream``.
        """
        from knowbase.errors import ConfigError

        if not spec.name:
            raise ConfigError(f"model string {spec.raw!r} names no model; use openai:MODEL@BASE_URL", spec=spec.raw)
        stream = kwargs.pop("stream", True)
        return cls(spec.name, _transport_for(spec, settings, kwargs), stream=stream)

    def payload(self, messages: Sequence[Message], options: ChatOptions, *, stream: bool) -> dict[str, Any]:
        """The request body for ``messages`` and ``options``."""
        body: dict[str, Any] = {"model": self.model_name, "messages": [m.to_openai() for m in messages],
                                "temperature": options.temperature, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if options.max_tokens is not None:
            body["max_tokens"] = options.max_tokens
        if options.stop:
            body["stop"] = list(options.stop)
        if options.seed is not None:
            body["seed"] = options.seed
        if options.top_p is not None:
            body["top_p"] = options.top_p
        if options.tools:
            body["tools"] = [t.to_openai() for t in options.tools]
            if options.tool_choice in ("auto", "none", "required"):
                body["tool_choice"] = options.tool_choice
            elif options.tool_choice:
                body["tool_choice"] = {"type": "function", "function": {"name": options.tool_choice}}
        if options.json_schema is not None:
            if self._schema_style == "json_schema":
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": str(options.json_schema.get("title") or "output").replace(" ", "_")[:64],
                    "schema": options.json_schema}}
            else:
                body["response_format"] = {"type": "json_object", "schema": options.json_schema}
        elif options.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def execute(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]:
        """Send the chat request; yields text deltas then one :class:`ChatResult`."""
        if self.stream:
            yield from self._with_schema_fallback(lambda: self._streamed(messages, options), options)
        else:
            yield from self._with_schema_fallback(lambda: self._whole(messages, options), options)

    def _with_schema_fallback(self, run: Callable[[], Iterator[str | ChatResult]],
                              options: ChatOptions) -> Iterator[str | ChatResult]:
        if options.json_schema is None or self._schema_style != "json_schema":
            yield from run()
            return
        try:
            first = run()
            items = [next(first)]  # the request is sent (and may be refused) on the first step
        except ModelHTTPError as exc:
            refused = exc.status in (400, 422) or (exc.status >= 500 and "response_format" in (exc.body or ""))
            if not refused:
                raise
            self._schema_style = "json_object"
            yield from run()
            return
        except StopIteration:  # pragma: no cover - a backend always yields a result
            return
        yield from items
        yield from first

    def _whole(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]:
        data = self.transport.post("chat/completions", self.payload(messages, options, stream=False))
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            text = message.get("content") or ""
            calls = tuple(_tool_call(c) for c in message.get("tool_calls") or ())
            usage = data.get("usage") or {}
            result = ChatResult(text, tool_calls=calls, finish_reason=_finish(choice.get("finish_reason"), calls),
                                usage=Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)))
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise ModelResponseError(f"unexpected chat response shape: {type(exc).__name__}: {exc}",
                                     body=json.dumps(data)[:_BODY_LIMIT]) from exc
        if text:
            yield text
        yield result

    def _streamed(self, messages: Sequence[Message], options: ChatOptions) -> Iterator[str | ChatResult]:
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage: dict[str, Any] | None = None
        events_seen = 0
        with self.transport.stream_events("chat/completions", self.payload(messages, options, stream=True)) as events:
            for event in events:
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or ():
                    delta = choice.get("delta") or {}
                    piece = delta.get("content")
                    if piece:
                        parts.append(piece)
                        events_seen += 1
                        yield piece
                    for tc in delta.get("tool_calls") or ():
                        slot = calls.setdefault(int(tc.get("index", len(calls))), {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.get("id") or slot["id"]
                        fn = tc.get("function") or {}
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"] += fn.get("arguments") or ""
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            # leaving the loop without [DONE] raises inside events(); [DONE] without a finish is broken too
        if finish is None:
            raise ModelResponseError("the stream ended without a finish_reason (broken mid-way)", body="".join(parts)[-_BODY_LIMIT:])
        tool_calls = tuple(_tool_call({"id": s["id"], "function": {"name": s["name"], "arguments": s["arguments"]}})
                           for _, s in sorted(calls.items()))
        text = "".join(parts)
        if usage:
            counted = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        else:
            chars = sum(len(m.content) for m in messages)
            counted = Usage(max(1, chars // 4), events_seen + len(tool_calls))
        yield ChatResult(text, tool_calls=tool_calls, finish_reason=_finish(finish, tool_calls), usage=counted)


def _finish(reason: str | None, calls: Sequence[ToolCall]) -> str:
    if calls:
        return "tool_calls"
    return {"function_call": "tool_calls", "eos": "stop", None: "stop"}.get(reason, reason or "stop")


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    fn = raw.get("function") or {}
    args = fn.get("arguments") or "{}"
    if isinstance(args, str):
        try:
            args = loads(args)
        except (json.JSONDecodeError, JSONLimitError) as exc:
            raise ModelResponseError(f"tool call {fn.get('name')!r} has arguments that are not JSON: {exc}",
                                     body=args[:_BODY_LIMIT]) from exc
    if not isinstance(args, dict):
        raise ModelResponseError(f"tool call {fn.get('name')!r} arguments are not a JSON object", body=str(args))
    return ToolCall(name=str(fn.get("name") or ""), arguments=args, id=str(raw.get("id") or ""))


# --- embeddings ------------------------------------------------------------------------------------
class OpenAIEmbedder:
    """Embedding backend for an OpenAI-compatible ``/embeddings`` endpoint.

    Args:
        model: the model name the server knows.
        transport: the :class:`HTTPTransport` to use.
        dim: embedding width if known; otherwise learnt from the first answer (one probe
            request when :attr:`dim` is read before any call).
        max_seq_length: the server's input limit in tokens (8191 for OpenAI's models; the
            server truncates or refuses longer inputs, depending on the server).
    """

    backend_name = "openai"
    languages: tuple[str, ...] | None = None

    def __init__(self, model: str, transport: HTTPTransport, *, dim: int | None = None,
                 max_seq_length: int | None = None) -> None:
        known = _OPENAI_EMBEDDINGS.get(model, (None, 512))
        self.model_name = model
        self.transport = transport
        self._dim = dim or known[0]
        self.max_seq_length = max_seq_length or known[1]

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.model_name!r} @ {self.transport.base_url!r})"

    @classmethod
    def from_spec(cls, spec: ModelSpec, settings: Settings, **kwargs: Any) -> OpenAIEmbedder:
        """Build from ``openai:MODEL[@BASE_URL]`` (keyword args as for :class:`OpenAIChat`, plus ``dim``)."""
        from knowbase.errors import ConfigError

        if not spec.name:
            raise ConfigError(f"model string {spec.raw!r} names no model; use openai:MODEL@BASE_URL", spec=spec.raw)
        dim, max_len = kwargs.pop("dim", None), kwargs.pop("max_seq_length", None)
        return cls(spec.name, _transport_for(spec, settings, kwargs), dim=dim, max_seq_length=max_len)

    @property
    def dim(self) -> int:
        """Embedding width (probes the server once if not known yet)."""
        if self._dim is None:
            self.encode(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 ``(len(texts), dim)`` in input order.

        Raises:
            ModelResponseError: the answer lacks vectors, has the wrong count, or ragged widths.
        """
        data = self.transport.post("embeddings", {"model": self.model_name, "input": list(texts)})
        try:
            rows = sorted(data["data"], key=lambda r: int(r.get("index", 0)))
            out = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelResponseError(f"unexpected embeddings response: {type(exc).__name__}: {exc}",
                                     body=json.dumps(data)[:_BODY_LIMIT]) from exc
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise ModelResponseError(f"embeddings response has shape {out.shape}, expected ({len(texts)}, dim)",
                                     body=json.dumps(data)[:_BODY_LIMIT])
        self._dim = out.shape[1]
        return out
