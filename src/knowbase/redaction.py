"""Redaction of secrets (API keys, bearer tokens, passwords) from text knowbase shows or stores.

One function, :func:`redact`, used wherever text may carry a secret out of the process:
``Settings`` repr and ``to_dict``, errors from HTTP model backends (a server may echo the
key in its error body), rows written to ``logs.db``, and the CLI's error line. It replaces

* every *known* secret value passed in (the configured API key, for example), wherever it
  appears, when it is at least :data:`MIN_SECRET_LENGTH` characters long (shorter values
  would blank out ordinary words);
* values that look like keys whatever their source: ``sk-...`` (OpenAI, Anthropic,
  DeepSeek), ``Bearer ...`` and ``Basic ...`` credentials, ``ghp_``/``github_pat_`` (GitHub),
  ``hf_`` (Hugging Face), ``xox?-`` (Slack), ``AKIA...`` (AWS access key ids), ``AIza...``
  (Google), ``glpat-`` (GitLab);
* the value after a secret-sounding name: ``api_key=...``, ``"password": "..."``,
  ``Authorization: ...``, ``token=...`` in query strings, JSON, headers and config lines;
* the credentials of a URL (``https://user:pass@host`` becomes ``https://[REDACTED]@host``).

Each is replaced by :data:`REDACTED`. The pattern list follows the token formats the
vendors document and the rules of secret scanners such as gitleaks and GitHub secret
scanning; it is a safety net, not a guarantee: pass the known values whenever you have them.

    >>> redact("HTTP 401: invalid key sk-proj-abcdefghijklmnop1234")
    'HTTP 401: invalid key [REDACTED]'
    >>> redact("key s3cr3t-value rejected", ["s3cr3t-value"])
    'key [REDACTED] rejected'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "is_secret_name", "redact", "redact_error", "redact_value"]

#: What a secret is replaced by.
REDACTED = "[REDACTED]"
#: Known secret values shorter than this (characters) are not searched for: they would
#: match ordinary text. Patterns still apply to them.
MIN_SECRET_LENGTH = 6

# Names whose values are secrets: a word of a snake/kebab/dotted name ("OPENAI_API_KEY",
# "x-api-key", "db.password"), never a longer word ("prompt_tokens", "tokenizer", "author").
_NAMES = (r"api[_-]?key|apikey|access[_-]?key|secret(?:[_-]?key)?|client[_-]?secret|(?:access|auth|refresh|"
          r"bearer|id|api)?[_-]?token|passw(?:or)?d|passwd|pwd|authorization|credentials?|private[_-]?key|"
          r"session[_-]?key")
_SECRET_NAME = re.compile(rf"(?i)(?:^|[_.\-])(?:{_NAMES})$")

# Token formats, each matched as a whole word.
_TOKENS = re.compile(
    r"(?<![\w-])(?:"
    r"sk-[A-Za-z0-9_\-]{8,}"                      # OpenAI / Anthropic / DeepSeek style
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_\-]{16,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|A(?:KIA|SIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r")")
# "Bearer <token>" (headers, messages): a token with a digit, so prose ("bearer bonds") stays.
_SCHEME = re.compile(r"(?i)\b(bearer)(\s+)(?=[A-Za-z0-9._~+/\-]*\d)[A-Za-z0-9._~+/\-]{8,}=*")
# name = value, name: value, "name": "value", name=value in a query string.
_ASSIGNMENT = re.compile(
    rf"""(?ix)
    (?P<name>(?<![\w.-])["']?(?:[\w.-]{{0,64}}[_.-])?(?:{_NAMES})(?![\w])["']?)
    (?P<sep>\s*[:=]\s*)
    (?P<value>"(?:[^"\\]|\\.){{0,1000}}"|'[^']{{0,1000}}'|(?:bearer\s+|basic\s+)?[^\s"',;&}}<>)\]]+)
    """)
# scheme://user:password@host
_URL_USERINFO = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]{0,30}://)[^/\s:@]+:[^/\s@]+@")


def is_secret_name(name: str) -> bool:
    """True when a field or setting called ``name`` holds a secret (``api_key``, ``OPENAI_API_KEY``,
    ``token``, ``password``, ``authorization``...); ``prompt_tokens`` or ``author`` do not."""
    return bool(_SECRET_NAME.search(name))


def _mask_assignment(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in "\"'" else ""
    if not value.strip("\"'") or REDACTED in value or value.lower() in ("none", "null", "true", "false"):
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{quote}{REDACTED}{quote}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known ``secrets`` and anything that looks like a key replaced by :data:`REDACTED`.

    Args:
        text: any text (an error message, a response body, a JSON row, a URL).
        secrets: values known to be secret (None and values shorter than
            :data:`MIN_SECRET_LENGTH` are skipped). Longer values are replaced first, so a
            key that contains another is removed whole.

    Returns:
        The text with every secret replaced; unchanged when there is none. Time is linear
        in the length of ``text`` (every repeated part of a pattern is bounded or cannot
        backtrack), times the number of known secrets.
    """
    if not text:
        return text
    known = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _ASSIGNMENT.sub(_mask_assignment, text)
    text = _TOKENS.sub(REDACTED, text)
    return _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_value(value: Any, secrets: Iterable[str | None] = (), *, name: str = "") -> Any:
    """A copy of ``value`` with every string redacted (dicts, lists and tuples walked).

    A string under a secret-sounding key (``name`` or a dict key, see :func:`is_secret_name`)
    is replaced whole; other values (numbers, None) are returned as they are.
    """
    known = tuple(secrets)
    if isinstance(value, str):
        return REDACTED if value and name and is_secret_name(name) else redact(value, known)
    if isinstance(value, Mapping):
        return {k: redact_value(v, known, name=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, known, name=name) for v in value)
    return value


def redact_error(exc: BaseException, secrets: Iterable[str | None] = ()) -> BaseException:
    """Redact an exception in place: its ``args``, and for a :class:`~knowbase.errors.KnowbaseError`
    its ``message`` and every string field in ``detail`` (``body``, ``url``...). Returns ``exc``.

    Use it where an exception leaves code that knows a secret, before anyone prints or
    stores it.
    """
    known = tuple(secrets)
    exc.args = tuple(redact_value(a, known) for a in exc.args)
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        exc.message = redact(message, known)  # type: ignore[attr-defined]  # KnowbaseError.message
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict):
        for key, item in list(detail.items()):
            clean = redact_value(item, known, name=key)
            detail[key] = clean
            if hasattr(exc, key):
                setattr(exc, key, clean)
    return exc
