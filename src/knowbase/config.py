"""Settings: the user directory, the config file, environment variables, model strings.

Resolution order for every setting (first wins): an explicit argument, an environment
variable, ``$KNOWBASE_HOME/config.toml``, the built-in default.

=====================  ==========================  ==================================
setting                environment variable        default
=====================  ==========================  ==================================
home                   ``KNOWBASE_HOME``           ``~/.knowbase``
chat model             ``KNOWBASE_MODEL``          ``llamacpp:qwen2.5-coder-1.5b``
embedder               ``KNOWBASE_EMBEDDER``       ``onnx:all-minilm-l6-v2``
tracing on/off         ``KNOWBASE_TRACING``        on (``0``/``false``/``off`` turn it off)
OpenAI-compatible key  ``KNOWBASE_API_KEY`` then   none
                       ``OPENAI_API_KEY``
assembled models       ``KNOWBASE_MODELS_DIR``     ``home/models``
=====================  ==========================  ==================================

Example ``config.toml``::

    model = "openai:gpt-4o-mini@https://api.openai.com/v1"
    embedder = "onnx:all-minilm-l6-v2"      # or sentence-transformers:all-minilm-l6-v2 (fp32, torch)
    tracing = true
    api_key = "sk-..."          # or leave it in the environment
    timeout = 60                # seconds, read timeout for HTTP backends

    [file_limits]               # see knowbase.safety.files.FileLimits
    pdf_max_pages = 20000
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from knowbase.errors import ConfigError
from knowbase.redaction import REDACTED, is_secret_name, redact, redact_value
from knowbase.safety.files import FileLimits

DEFAULT_CHAT_MODEL = "llamacpp:qwen2.5-coder-1.5b"
DEFAULT_EMBEDDER = "onnx:all-minilm-l6-v2"  # int8 MiniLM; see knowbase.models.onnx_embedder
_FALSE = {"0", "false", "off", "no"}


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings; immutable. Build with :meth:`load`, derive with :meth:`with_`.

    Attributes:
        home: the user directory (config, ``logs.db``, knowledge bases, models).
        chat_model: model string of the default chat model.
        embedder: model string of the default embedder.
        tracing: record every model call in ``home/logs.db``.
        api_key: key for OpenAI-compatible endpoints, or None.
        timeout: read timeout for HTTP backends, seconds.
        connect_timeout: connect timeout for HTTP backends, seconds.
        max_retries: retries on 429, 5xx and connection errors.
        file_limits: per-file limits applied when loading documents
            (:class:`knowbase.safety.files.FileLimits`; ``[file_limits]`` table in
            ``config.toml``, e.g. ``pdf_max_pages = 20000``).
        extra: any other keys from the config file, untouched.
    """

    home: Path
    chat_model: str = DEFAULT_CHAT_MODEL
    embedder: str = DEFAULT_EMBEDDER
    tracing: bool = True
    api_key: str | None = None
    timeout: float = 120.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    file_limits: FileLimits = field(default_factory=FileLimits)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, home: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
        """Read settings from the environment and ``config.toml``.

        Args:
            home: the user directory; default ``$KNOWBASE_HOME`` or ``~/.knowbase``.
            **overrides: explicit values that beat everything else (None is ignored).

        Raises:
            ConfigError: the config file is not valid TOML or has a value of the wrong type.
        """
        home_path = Path(home or os.environ.get("KNOWBASE_HOME") or Path.home() / ".knowbase")
        home_path = home_path.expanduser()
        file_values = _read_config(home_path / "config.toml")
        env = os.environ

        def pick(key: str, env_name: str | None, default: Any) -> Any:
            if overrides.get(key) is not None:
                return overrides[key]
            if env_name and env.get(env_name):
                return env[env_name]
            return file_values.pop(key, default)

        tracing = pick("tracing", "KNOWBASE_TRACING", True)
        if isinstance(tracing, str):
            tracing = tracing.strip().lower() not in _FALSE
        api_key = overrides.get("api_key") or env.get("KNOWBASE_API_KEY") or env.get("OPENAI_API_KEY")
        api_key = api_key or file_values.pop("api_key", None)
        try:
            settings = cls(
                home=home_path,
                chat_model=str(pick("model", "KNOWBASE_MODEL", DEFAULT_CHAT_MODEL)),
                embedder=str(pick("embedder", "KNOWBASE_EMBEDDER", DEFAULT_EMBEDDER)),
                tracing=bool(tracing),
                api_key=api_key,
                timeout=float(pick("timeout", "KNOWBASE_TIMEOUT", 120.0)),
                connect_timeout=float(pick("connect_timeout", None, 10.0)),
                max_retries=int(pick("max_retries", None, 3)),
                file_limits=_file_limits(pick("file_limits", None, None)),
                extra=file_values,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid setting in {home_path / 'config.toml'}: {exc}", path=str(home_path)) from exc
        return settings

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    def secrets(self) -> tuple[str, ...]:
        """The secret values these settings hold: ``api_key`` and any ``extra`` string whose
        key names a secret (``token``, ``password``...). Pass them to
        :func:`knowbase.redaction.redact`."""
        found = [self.api_key] if self.api_key else []
        found += [v for k, v in self.extra.items() if isinstance(v, str) and v and is_secret_name(str(k))]
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        """Every setting as JSON-ready values, secrets shown as ``[REDACTED]`` (never the key)."""
        known = self.secrets()
        return {
            "home": str(self.home), "chat_model": redact(self.chat_model, known),
            "embedder": redact(self.embedder, known), "tracing": self.tracing,
            "api_key": REDACTED if self.api_key else None, "timeout": self.timeout,
            "connect_timeout": self.connect_timeout, "max_retries": self.max_retries,
            "extra": redact_value(self.extra, known),
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Settings({fields})"

    __str__ = __repr__

    @property
    def logs_path(self) -> Path:
        """``home/logs.db``: the trace store."""
        return self.home / "logs.db"

    @property
    def kb_dir(self) -> Path:
        """``home/kb``: one SQLite file per knowledge base."""
        return self.home / "kb"

    @property
    def models_dir(self) -> Path:
        """Assembled model files (the Qwen GGUF): ``$KNOWBASE_MODELS_DIR`` or ``home/models``."""
        override = self.extra.get("models_dir") or os.environ.get("KNOWBASE_MODELS_DIR")
        return Path(override).expanduser() if override else self.home / "models"


def _file_limits(value: Any) -> FileLimits:
    if value is None:
        return FileLimits()
    if isinstance(value, FileLimits):
        return value
    if not isinstance(value, dict):
        raise TypeError(f"file_limits must be a table, got {type(value).__name__}")
    return FileLimits.from_mapping(value)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return dict(tomllib.load(fh))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", path=str(path)) from exc


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed model string ``backend:name[@base_url]``.

    Examples::

        >>> ModelSpec.parse("llamacpp:qwen2.5-coder-1.5b")
        ModelSpec(backend='llamacpp', name='qwen2.5-coder-1.5b', base_url=None, raw='llamacpp:qwen2.5-coder-1.5b')
        >>> ModelSpec.parse("openai:gpt-4o-mini@https://api.openai.com/v1").base_url
        'https://api.openai.com/v1'
        >>> ModelSpec.parse("fake").backend
        'fake'

    A bare path ending in ``.gguf`` means ``llamacpp:<path>``.
    """

    backend: str
    name: str
    base_url: str | None
    raw: str

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        """Split a model string; raises ConfigError when it is empty."""
        raw = (spec or "").strip()
        if not raw:
            raise ConfigError("empty model string")
        if raw.lower().endswith(".gguf") and ":" not in raw.split("/")[0]:
            return cls("llamacpp", raw, None, raw)
        backend, _, rest = raw.partition(":")
        base_url = None
        url_at = re.search(r"@(?=https?://)", rest, re.IGNORECASE)
        if url_at is not None:  # the URL may hold an '@' of its own (user:password@host)
            rest, base_url = rest[: url_at.start()], rest[url_at.end():]
        elif "@" in rest:
            rest, _, base_url = rest.rpartition("@")
        return cls(backend.strip().lower(), rest.strip(), (base_url or None), raw)
