"""Built-in tools: ``calculator``, ``kb_search``, ``http_get``, ``current_time`` (and
``sql_query`` when a Text2SQL pipeline is given).

None of them runs code a model wrote: the calculator walks an arithmetic syntax tree
(:func:`knowbase.safety.math.safe_eval`), ``http_get`` fetches only allowlisted hosts
through :class:`knowbase.safety.urls.UrlGuard` (private, loopback and link-local
addresses such as ``169.254.169.254`` refused, every redirect re-checked), and
``sql_query`` runs only what the read-only SQL validator of :mod:`knowbase.sql` accepts.

Tools that need a resource are made by factories (``make_kb_search(kb)``,
``make_http_get(["docs.python.org"])``). Each built-in is registered in the
``knowbase.tools`` entry-point group through a ``*_tool(context)`` factory, the same way a
plugin registers; :func:`make_tools` builds a list by name.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from typing import Any, Protocol

from knowbase.agents.tools import Tool
from knowbase.errors import SafetyError, UserError
from knowbase.tools.registry import ToolContext

BUILTIN_NAMES = ("calculator", "kb_search", "sql_query", "http_get", "current_time")

_MATH_FAILURES = {"zero-division", "domain", "overflow", "syntax", "size", "power", "length"}


def _format_number(value: int | float) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".12g")
    return str(value)


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the number.

    Args:
        expression: the expression to compute: numbers, + - * / // % **, parentheses, sqrt, log, round.
    """
    from knowbase.safety.math import safe_eval

    try:
        return _format_number(safe_eval(expression))
    except SafetyError as exc:
        if exc.detail.get("reason") in _MATH_FAILURES:
            raise UserError(f"cannot evaluate {expression!r}: {exc}", reason=exc.reason) from exc
        raise


def current_time(timezone: str = "UTC") -> str:
    """The current date and time, ISO 8601 with the weekday.

    Args:
        timezone: an IANA time zone name such as "UTC" or "Europe/Paris".
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(timezone.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UserError(f"unknown time zone {timezone!r}", field="timezone") from exc
    now = _dt.datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now.strftime('%A')})"


class Searchable(Protocol):
    """What ``kb_search`` needs: :meth:`knowbase.knowledge.base.KnowledgeBase.search`."""

    def search(self, query: str, *, k: int = 5, mode: str = "hybrid") -> list[Any]: ...


_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?:;])\s+)(?=\S)")


def excerpt(text: str, query: str | None, max_chars: int) -> str:
    """The ``max_chars`` window of ``text`` (starting at a sentence) holding most query words.

    Small models answer from what they are shown; a chunk cut at its first ``max_chars``
    characters often loses the sentence that matched. Windows start at sentence
    boundaries; the score is the number of query-word occurrences (words of 3+
    characters, case-insensitive); ties go to the earliest window. ``...`` marks a cut.
    """
    if len(text) <= max_chars:
        return text
    terms = {w.lower() for w in _WORD.findall(query or "") if len(w) > 2}
    best, best_score = 0, -1
    if terms:
        for m in _SENTENCE_START.finditer(text):
            window = text[m.end():m.end() + max_chars].lower()
            score = sum(1 for w in _WORD.findall(window) if w in terms)
            if score > best_score:
                best, best_score = m.end(), score
    out = text[best:best + max_chars]
    return ("..." if best else "") + out + ("..." if best + max_chars < len(text) else "")


def format_passages(hits: Sequence[Any], *, max_chars: int = 600, query: str | None = None) -> str:
    """Number retrieved chunks for a prompt: ``[1] folder/file § section`` then the text.

    The source is the last two parts of the chunk's path (prompt tokens are precious).

    Args:
        hits: :class:`~knowbase.knowledge.types.ScoredChunk` (or Chunk) objects, best first.
        max_chars: each passage is cut to this many characters (see :func:`excerpt`).
        query: when given, long passages show the window that best matches it.
    """
    if not hits:
        return "No passages found."
    out = []
    for n, hit in enumerate(hits, 1):
        chunk = getattr(hit, "chunk", hit)
        source = "/".join(str(getattr(chunk, "path", "") or "?").replace("\\", "/").split("/")[-2:])
        section = getattr(chunk, "section", ())
        if section:
            source += " § " + " > ".join(section)
        text = excerpt(" ".join(str(getattr(chunk, "text", "")).split()), query, max_chars)
        out.append(f"[{n}] {source}\n{text}")
    return "\n\n".join(out)


def make_kb_search(kb: Searchable, *, k: int = 3, mode: str = "hybrid", max_chars: int = 600,
                   name: str = "kb_search", description: str | None = None) -> Tool:
    """A tool searching a knowledge base; returns numbered passages with their sources.

    Args:
        kb: a :class:`~knowbase.knowledge.base.KnowledgeBase` (or anything with ``search``).
        k: passages returned per search.
        mode: ``hybrid`` (BM25 and dense, fused), ``bm25`` or ``dense``.
        max_chars: each passage cut to this many characters.
        name: the tool name.
        description: default "Search the knowledge base ...".
    """

    def kb_search(query: str) -> str:
        """Search the knowledge base; returns numbered passages with their sources.

        Args:
            query: what to look for, in a few keywords.
        """
        return format_passages(kb.search(query, k=k, mode=mode), max_chars=max_chars, query=query)

    return Tool.from_function(kb_search, name=name, description=description)


def make_http_get(allowed_hosts: Sequence[str] | Any, *, allow_private: bool = False, timeout: float = 10.0,
                  max_bytes: int = 2_000_000, max_chars: int = 2000, transport: Any = None) -> Tool:
    """A tool fetching a URL from allowlisted hosts only (SSRF rules of :class:`UrlGuard`).

    Args:
        allowed_hosts: host names (``docs.python.org``, ``*.example.com``) or a ready
            :class:`~knowbase.safety.urls.UrlGuard`. Empty allows nothing.
        allow_private: allow private/loopback addresses (tests, trusted intranets).
        timeout: seconds for the whole fetch.
        max_bytes: body cut after this many bytes.
        max_chars: observation cut after this many characters.
        transport: an httpx transport, for tests.
    """
    from knowbase.safety.urls import UrlGuard, fetch

    guard = allowed_hosts if isinstance(allowed_hosts, UrlGuard) else UrlGuard(list(allowed_hosts),
                                                                               allow_private=allow_private)

    def http_get(url: str) -> str:
        """Fetch a web page (http or https) from an allowed host; returns its status and text.

        Args:
            url: the full URL, e.g. "https://docs.python.org/3/".
        """
        result = fetch(url, guard=guard, timeout=timeout, max_bytes=max_bytes, transport=transport)
        text = result.text
        if "html" in result.headers.get("content-type", ""):
            from knowbase.chains.requests import html_to_text

            text = html_to_text(text)
        return f"HTTP {result.status}\n" + " ".join(text.split())

    return Tool.from_function(http_get, timeout=timeout + 1.0, max_chars=max_chars)


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_rows: int = 20,
                truncated: bool = False) -> str:
    """A compact text table: a header line, then one ``a | b | c`` line per row (at most ``max_rows``)."""
    if not rows:
        return " | ".join(columns) + "\n(no rows)"
    lines = [" | ".join(columns)] + [" | ".join("NULL" if v is None else str(v) for v in row) for row in rows[:max_rows]]
    more = len(rows) - max_rows
    if more > 0 or truncated:
        lines.append(f"... ({more if more > 0 else 'more'} more rows)")
    return "\n".join(lines)


def make_sql_query(pipeline: Any, *, description: str | None = None, max_rows: int = 20,
                   timeout: float = 120.0) -> Tool:
    """A read-only SQL tool over a Text2SQL pipeline.

    Args:
        pipeline: a :class:`knowbase.sql.Text2SQL` (its ``ask`` writes SQL, validates it as
            one read-only SELECT and runs it with row and time limits), or any callable
            ``question -> str``. Write statements are refused by the pipeline's validator.
        description: what the database holds, for the model.
        max_rows: rows shown to the model.
        timeout: seconds per call (SQL generation is a model call).
    """
    ask = getattr(pipeline, "ask", None)

    def sql_query(question: str) -> str:
        """Answer a question from the SQL database (read-only); returns the SQL and the rows.

        Args:
            question: the question in plain words.
        """
        if ask is None:
            return str(pipeline(question))
        answer = ask(question)
        if answer.error:
            raise UserError(f"no SQL answer: {answer.error}", sql=answer.sql)
        return f"SQL: {answer.sql}\n" + format_rows(answer.columns, answer.rows, max_rows=max_rows,
                                                     truncated=answer.truncated)

    return Tool.from_function(sql_query, description=description, timeout=timeout)


def calculator_tool(context: ToolContext) -> Tool:
    """Evaluate arithmetic safely (no code runs): + - * / // % **, sqrt, log, round."""
    return Tool.from_function(calculator)


def current_time_tool(context: ToolContext) -> Tool:
    """The current date and time in a time zone."""
    return Tool.from_function(current_time)


def kb_search_tool(context: ToolContext) -> Tool:
    """Search the knowledge base given with --kb; numbered passages with their sources."""
    if context.kb is None:
        raise UserError("kb_search needs a knowledge base (--kb NAME)", field="kb")
    return make_kb_search(context.kb, k=context.k)


def http_get_tool(context: ToolContext) -> Tool:
    """Fetch a page from an allowed host (--allow-host); private addresses refused, redirects re-checked."""
    if not context.allowed_hosts:
        raise UserError("http_get needs at least one allowed host (--allow-host HOST)", field="allowed_hosts")
    return make_http_get(context.allowed_hosts, allow_private=context.allow_private)


def sql_query_tool(context: ToolContext) -> Tool:
    """Answer a question from the database given with --db (read-only SELECT only)."""
    if context.sql is None:
        raise UserError("sql_query needs a database (--db URL)", field="sql")
    return make_sql_query(context.sql)


def make_tools(names: Sequence[str], *, kb: Searchable | None = None, allowed_hosts: Sequence[str] = (),
               allow_private: bool = False, sql: Any = None, k: int = 3) -> list[Tool]:
    """Registered tools by name, in the order given (see :mod:`knowbase.tools.registry`).

    Args:
        names: entry-point names of the ``knowbase.tools`` group (the built-ins are
            :data:`BUILTIN_NAMES`; plugins add more).
        kb: the knowledge base for ``kb_search``.
        allowed_hosts: hosts ``http_get`` may fetch.
        allow_private: let ``http_get`` reach private addresses.
        sql: the :class:`knowbase.sql.Text2SQL` pipeline (or a callable) for ``sql_query``.
        k: passages per ``kb_search``.

    Raises:
        UserError: an unknown name, or a tool whose resource was not given (``field``).
    """
    from knowbase.tools.registry import build_tools

    return build_tools(names, ToolContext(kb=kb, sql=sql, allowed_hosts=tuple(allowed_hosts),
                                          allow_private=allow_private, k=k))
