"""The knowbase exception tree.

One root, :class:`KnowbaseError`. Two families below it:

* :class:`UserError` -- the caller's mistake (bad configuration, unknown model name,
  a bad input file, SQL the validator refuses). Fix the input and try again.
* :class:`RuntimeFailure` -- the world failed (model unreachable, timeout, HTTP 5xx,
  a corrupt model file). Retrying later may help.

Every error carries structured fields (``path``, ``row``, ``status``, ``retry_after``...)
so callers can react without parsing messages. Third-party exceptions are translated
where they enter knowbase and chained with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class KnowbaseError(Exception):
    """Root of every error knowbase raises on purpose.

    Args:
        message: one line for a person.
        **detail: structured fields (for example ``path=``, ``status=``); exposed as
            attributes and in :attr:`detail`.

    Attributes:
        exit_code: the CLI's exit status for this error (1; 2 for a usage error).
    """

    exit_code: int = 1

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail
        for key, value in detail.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


class UserError(KnowbaseError):
    """The input or configuration is wrong; retrying the same call fails again."""


class RuntimeFailure(KnowbaseError):
    """Something outside the caller's control failed; a retry may succeed."""


# --- configuration and names -------------------------------------------------------
class ConfigError(UserError):
    """The settings file, an environment variable or a flag is invalid."""


class UnknownModelError(UserError):
    """A model string names no known backend or model (``spec`` holds it)."""


# --- models --------------------------------------------------------------------------
class ModelFileError(RuntimeFailure):
    """A model file is missing, corrupt, or fails its checksum (``path``, ``expected``, ``actual``)."""


class ModelUnavailableError(RuntimeFailure):
    """An optional dependency for a backend is not installed (``package``)."""


class ContextLengthError(UserError):
    """The prompt does not fit the model's context window.

    Fields: ``prompt_tokens``, ``context_window`` (both in tokens).
    """


class ModelConnectionError(RuntimeFailure):
    """The model endpoint could not be reached (``url``)."""


class ModelTimeoutError(RuntimeFailure):
    """The model did not answer within the timeout (``timeout`` in seconds)."""


class ModelHTTPError(RuntimeFailure):
    """The endpoint answered with an HTTP error (``status``, ``body``, ``retry_after`` seconds)."""

    status: int
    body: str
    url: str
    retry_after: float | None


class AuthenticationError(ModelHTTPError):
    """HTTP 401/403: the API key is missing or wrong."""


class RateLimitError(ModelHTTPError):
    """HTTP 429 after all retries (``retry_after`` in seconds, if the server gave one)."""


class ModelResponseError(RuntimeFailure):
    """The endpoint answered with something that is not a valid response (``body``)."""


# --- input data -----------------------------------------------------------------------
class InputFileError(UserError):
    """A file could not be read or parsed (``path``, ``reason``)."""


class EmptyQueryError(UserError, ValueError):
    """A search query or question has no letter or digit (empty, whitespace or punctuation
    only): nothing to search for (``field``). A usage error: the CLI exits 2."""

    exit_code = 2


class FileLimitError(InputFileError):
    """A file exceeds a per-file limit (:class:`knowbase.safety.files.FileLimits`): ``path``,
    ``limit`` (the limit's name), ``value`` (measured or declared), ``maximum``, ``reason``."""


class SkippedFileError(InputFileError):
    """A file deliberately left out, not a failure (``path``, ``reason``): for example a
    symbolic link leading outside the folder being ingested."""


class OutputParseError(UserError):
    """A model's output could not be parsed into the requested shape (``raw`` holds the text)."""


class SafetyError(UserError):
    """An operation was refused by a guard (disallowed host, unsafe expression, write SQL...)."""

    reason: str


class FetchError(RuntimeFailure):
    """A URL could not be fetched (``url``; ``status`` when the server answered)."""


class TemplateError(UserError):
    """A prompt template is malformed, cannot be loaded, or lacks values (``name``, ``missing``, ``unknown``)."""


class ChainError(UserError):
    """Chain steps do not fit together (``step``, ``missing``): raised when the chain is built."""


class BudgetExceeded(RuntimeFailure):
    """A step, token or time budget ran out (``partial`` holds what was done)."""


class KnowledgeBaseNotFoundError(UserError):
    """No knowledge base of that name or path exists (``name``, ``path``)."""


class KnowledgeBaseExistsError(UserError):
    """A knowledge base of that name already exists (``name``, ``path``)."""


class EmbedderMismatchError(UserError):
    """A knowledge base was built with one embedder and is used with another
    (``expected`` and ``actual`` model strings, ``path``)."""


class NotAKnowbaseFileError(UserError):
    """A path names a file that is not the knowbase file an operation expects (``path``,
    ``expected`` such as ``"knowledge base"``, ``reason``). Raised before anything is
    changed or deleted: knowbase never migrates, writes or deletes a file it did not make."""

    path: str
    expected: str
    reason: str


class StoreError(RuntimeFailure):
    """A store (knowledge base, trace log, memory) is damaged or cannot be opened (``path``)."""
